//! Drives the corpus through the gateway: one MCP session per lane
//! (`initialize` + `notifications/initialized`), then the lane's cases in
//! order, then, on resumption lanes, a `GET` with `Last-Event-ID` for every
//! event id the session's earlier streams carried.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::sync::Semaphore;

use super::corpus::{Case, Expect, Req};
use super::{Lane, Outcome, Route};

/// The pooled test client.
pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// The protocol revision the sessions negotiate (the SDK servers send SSE
/// priming events with ids from 2025-11-25 on).
const PROTOCOL: &str = "2025-11-25";

/// A buffered answer.
#[derive(Debug, Default)]
pub struct Answer {
    /// HTTP status; 0 when there was no response.
    pub status: u16,
    /// `X-Request-Id`: the key of the gateway's audit events.
    pub request_id: String,
    /// `Mcp-Session-Id`.
    pub session: String,
    /// `Content-Type`.
    pub content_type: String,
    /// The body as far as it was read.
    pub body: Vec<u8>,
    /// What went wrong on the wire, if anything.
    pub error: Option<String>,
}

/// Runs one lane on its own session; one request in flight per permit.
pub async fn run_lane(
    client: &HttpClient,
    permits: &Semaphore,
    routes: &[Route],
    lane: Lane,
) -> Vec<Outcome> {
    let route = &routes[lane.route];
    let auth = format!(
        "Bearer {}",
        if lane.admin {
            &route.admin
        } else {
            &route.caller
        }
    );
    let session = open_session(client, &route.url, &auth).await;
    let mut outcomes = Vec::new();
    let mut event_ids = Vec::new();
    for case in lane.cases {
        let answer = {
            let _permit = permits.acquire().await.unwrap();
            send_case(client, &route.url, &auth, &session, &case.req).await
        };
        if lane.resume && answer.content_type.contains("text/event-stream") {
            event_ids.extend(
                String::from_utf8_lossy(&answer.body)
                    .lines()
                    .filter_map(|l| l.strip_prefix("id:"))
                    .map(|id| id.trim().to_owned()),
            );
        }
        outcomes.push(Outcome {
            route: lane.route,
            admin: lane.admin,
            case,
            answer,
        });
    }
    // Replay after every event id seen on this session's earlier streams.
    for (n, last_event_id) in event_ids.into_iter().enumerate() {
        let case = Case {
            id: format!("r{}-{n}", lane.route),
            class: "resumption",
            label: format!("GET Last-Event-ID: {last_event_id}"),
            req: Req::Resume { last_event_id },
            expect: Expect::Any,
        };
        let answer = {
            let _permit = permits.acquire().await.unwrap();
            send_case(client, &route.url, &auth, &session, &case.req).await
        };
        outcomes.push(Outcome {
            route: lane.route,
            admin: lane.admin,
            case,
            answer,
        });
    }
    outcomes
}

/// `initialize` + `notifications/initialized` through the gateway; the session id.
async fn open_session(client: &HttpClient, url: &str, auth: &str) -> String {
    let init = format!(
        r#"{{"jsonrpc":"2.0","id":"init","method":"initialize","params":{{"protocolVersion":"{PROTOCOL}","capabilities":{{}},"clientInfo":{{"name":"differential","version":"1"}}}}}}"#
    );
    let mut headers = vec![
        ("authorization", auth.to_owned()),
        ("accept", "application/json, text/event-stream".to_owned()),
        ("content-type", "application/json".to_owned()),
    ];
    let answer = exchange(client, "POST", url, &headers, init.into_bytes(), None).await;
    assert_eq!(answer.status, 200, "initialize via {url}: {answer:?}");
    assert!(
        !answer.session.is_empty(),
        "no session id from {url}: {answer:?}"
    );
    let session = answer.session;
    headers.push(("mcp-session-id", session.clone()));
    headers.push(("mcp-protocol-version", PROTOCOL.to_owned()));
    let body = br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.to_vec();
    let answer = exchange(client, "POST", url, &headers, body, None).await;
    assert_eq!(
        answer.status, 202,
        "notifications/initialized via {url}: {answer:?}"
    );
    session
}

async fn send_case(client: &HttpClient, url: &str, auth: &str, session: &str, req: &Req) -> Answer {
    let mut headers = vec![
        ("authorization", auth.to_owned()),
        ("mcp-session-id", session.to_owned()),
        ("mcp-protocol-version", PROTOCOL.to_owned()),
    ];
    match req {
        Req::Post {
            content_type,
            encoding,
            body,
        } => {
            headers.push(("accept", "application/json, text/event-stream".to_owned()));
            headers.push(("content-type", content_type.clone()));
            if let Some(enc) = encoding {
                headers.push(("content-encoding", (*enc).to_owned()));
            }
            exchange(client, "POST", url, &headers, body.clone(), None).await
        }
        Req::Resume { last_event_id } => {
            headers.push(("accept", "text/event-stream".to_owned()));
            headers.push(("last-event-id", last_event_id.clone()));
            // A resumed stream stays open: read what is replayed, then hang up.
            exchange(
                client,
                "GET",
                url,
                &headers,
                Vec::new(),
                Some(Duration::from_millis(250)),
            )
            .await
        }
    }
}

/// One request; reads the body to its end (or, with `idle`, until nothing
/// arrives for that long).
async fn exchange(
    client: &HttpClient,
    method: &str,
    url: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
    idle: Option<Duration>,
) -> Answer {
    let mut req = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, v.as_str());
    }
    let req = req.body(Full::new(Bytes::from(body))).unwrap();
    let resp = match tokio::time::timeout(Duration::from_secs(10), client.request(req)).await {
        Ok(Ok(resp)) => resp,
        Ok(Err(e)) => {
            return Answer {
                error: Some(format!("request failed: {e}")),
                ..Answer::default()
            };
        }
        Err(_) => {
            return Answer {
                error: Some("no response in 10 s".into()),
                ..Answer::default()
            };
        }
    };
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let mut answer = Answer {
        status: resp.status().as_u16(),
        request_id: header("x-request-id"),
        session: header("mcp-session-id"),
        content_type: header("content-type"),
        ..Answer::default()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut body = resp.into_body();
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let wait = idle.map_or(left, |i| i.min(left));
        match tokio::time::timeout(wait, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    answer.body.extend_from_slice(&data);
                }
            }
            Ok(Some(Err(e))) => {
                answer.error = Some(format!("body: {e}"));
                break;
            }
            Ok(None) => break,
            Err(_) => {
                if idle.is_none() {
                    answer.error = Some("body stalled for 10 s".into());
                }
                break;
            }
        }
    }
    answer
}
