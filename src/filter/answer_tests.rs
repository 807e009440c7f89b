//! Tests for stage 8 beyond list answers: GET and transport-only streams,
//! every answer on a filtering route (answers are routed by id), media types,
//! caching hints, what the filter plans per request, and which entries can be
//! shown at all.

use std::sync::Arc;

use http::StatusCode;
use http::header::CONTENT_TYPE;
use serde_json::json;

use super::tests::{chunked, list_filter, response, run};
use super::{ListFilter, ListKind};

/// A GET stream on a route that does not filter lists: only the transport
/// is checked.
fn transport_only() -> ListFilter {
    ListFilter {
        id: serde_json::Value::Null,
        kind: None,
        allow: None,
        max_event_bytes: 64,
        pass_oversize: true,
    }
}

#[tokio::test]
async fn legacy_endpoint_events_end_the_stream_on_every_route() {
    let input = "event: endpoint\ndata: /message?sessionId=abc\n\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n";
    for filter in [list_filter(ListKind::Tools, 4096), transport_only()] {
        let resp = response("text/event-stream", chunked(input.as_bytes(), 7));
        let (_, out) = run(resp, filter).await;
        let out = String::from_utf8(out.to_vec()).unwrap();
        assert!(out.starts_with("event: error\n"), "{out}");
        assert!(!out.contains("sessionId"), "{out}");
    }
}

#[tokio::test]
async fn transport_only_streams_pass_lists_and_large_events_unchanged() {
    let list = "id: 1\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"tools\":[{\"name\":\"secret\"}]}}\n\n";
    let input = format!("{list}{list}");
    let resp = response("text/event-stream", chunked(input.as_bytes(), 9));
    let (_, out) = run(resp, transport_only()).await;
    assert_eq!(
        out,
        input.as_bytes(),
        "over max_event_bytes, still passed whole"
    );
    let json = r#"{"jsonrpc":"2.0","id":7,"result":{"tools":[{"name":"secret"}]}}"#;
    let (_, out) = run(
        response("application/json", vec![json.into()]),
        transport_only(),
    )
    .await;
    assert_eq!(out, json);
}

/// What an upstream that routes answers by `id` can put on the stream of a
/// `ping` that reused the `id` of an in-flight `tools/list`.
#[tokio::test]
async fn any_answer_on_a_filtering_route_has_its_lists_filtered() {
    let mut ping = list_filter(ListKind::Tools, 4096);
    ping.kind = None;
    let stolen =
        r#"{"jsonrpc":"2.0","id":"7","result":{"tools":[{"name":"secret"},{"name":"a"}]}}"#;
    let (_, out) = run(
        response("application/json", vec![stolen.into()]),
        ping.clone(),
    )
    .await;
    let got: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(got["result"]["tools"], json!([{"name": "a"}]));
    // A batch answer to a batch request is filtered, not refused.
    let batch = format!("[{stolen},{{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{{}}}}]");
    let (parts, out) = run(response("application/json", vec![batch.into()]), ping).await;
    assert_eq!(parts.status, StatusCode::OK);
    let got: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(got[0]["result"]["tools"], json!([{"name": "a"}]));
    assert_eq!(got[1]["result"], json!({}));
}

#[test]
fn every_post_and_get_on_a_filtering_route_is_planned_for_filtering() {
    use crate::jsonrpc::{RpcCall, Target};
    let route = |policy: &str| {
        let yaml = format!(
            "issuers: [{{issuer: \"https://as\", jwks_uri: \"https://as/jwks\"}}]\nroutes: [{{path: /mcp, upstream: \"http://127.0.0.1:1/mcp\", resource: \"https://gw/mcp\"{policy}}}]\n"
        );
        crate::config::Config::from_yaml(&yaml, std::path::Path::new("."))
            .unwrap()
            .0
            .routes[0]
            .clone()
    };
    let ping = [RpcCall {
        method: Some("ping".into()),
        id: Some(json!(7)),
        target: Target::None,
        meta_version: None,
        meta_traceparent: None,
        raw_name: None,
    }];
    let filtering = route(", policy: {tools: {echo: []}}");
    let plan = |r: &Arc<crate::config::Route>, m: http::Method, calls: &[RpcCall]| {
        ListFilter::for_request(r, &m, calls, &[], 4096)
    };
    let f = plan(&filtering, http::Method::POST, &ping).unwrap();
    assert!(f.allow.is_some() && f.kind.is_none() && f.id == json!(7));
    assert!(
        plan(&filtering, http::Method::GET, &[])
            .unwrap()
            .allow
            .is_some()
    );
    assert!(plan(&filtering, http::Method::DELETE, &[]).is_none());
    let plain = route("");
    assert!(plan(&plain, http::Method::POST, &ping).is_none());
    let get = plan(&plain, http::Method::GET, &[]).unwrap();
    assert!(get.allow.is_none(), "transport checks only");
}

#[tokio::test]
async fn accepted_and_untyped_answers_to_other_requests_pass() {
    let mut ping = list_filter(ListKind::Tools, 4096);
    ping.kind = None;
    let body = r#"{"jsonrpc":"2.0","id":7,"result":{"tools":[{"name":"secret"}]}}"#;
    let mut accepted = response("application/json", vec![body.into()]);
    *accepted.status_mut() = StatusCode::ACCEPTED;
    accepted.headers_mut().remove(CONTENT_TYPE);
    let (parts, _) = run(accepted, ping.clone()).await;
    assert_eq!(parts.status, StatusCode::ACCEPTED);
    let mut untyped = response("application/json", vec![body.into()]);
    untyped.headers_mut().remove(CONTENT_TYPE);
    let (parts, _) = run(untyped, ping.clone()).await;
    assert_eq!(
        parts.status,
        StatusCode::OK,
        "no SDK client parses an untyped body"
    );
    // A type a client does parse, but the filter does not read, fails closed.
    let mut rpc = response("application/json-rpc", vec![body.into()]);
    rpc.headers_mut()
        .insert(CONTENT_TYPE, "application/json-rpc".parse().unwrap());
    let (parts, _) = run(rpc, ping).await;
    assert_eq!(parts.status, StatusCode::BAD_GATEWAY);
}

#[test]
fn list_entries_that_could_not_be_called_are_hidden() {
    let yaml = "issuers: [{issuer: \"https://as\", jwks_uri: \"https://as/jwks\"}]\nroutes: [{path: /mcp, upstream: \"http://127.0.0.1:1/mcp\", resource: \"https://gw/mcp\", policy: {unlisted: allow, resources: [{uri: \"file:///secret/**\", scopes: [admin]}]}}]\n";
    let route = crate::config::Config::from_yaml(yaml, std::path::Path::new("."))
        .unwrap()
        .0
        .routes[0]
        .clone();
    let allow = super::list_visibility(route, vec![]);
    assert!(allow(ListKind::Tools, "echo"));
    for bad in ["echo\u{0}", " echo", "echo\n", "ec\u{85}ho"] {
        assert!(!allow(ListKind::Tools, bad), "{bad:?}");
        assert!(!allow(ListKind::Prompts, bad), "{bad:?}");
    }
    // Resources are judged canonically: a scheme-case twin of a protected
    // URI is protected, and an unjudgeable URI is hidden.
    assert!(!allow(ListKind::Resources, "FILE:///secret/a"));
    assert!(!allow(ListKind::Resources, "file:///public/.\t./secret/a"));
    assert!(allow(ListKind::Resources, "file:///public/a"));
}

#[tokio::test]
async fn answers_the_gateway_filtered_or_authorized_are_private_to_the_caller() {
    let mut any = list_filter(ListKind::Tools, 4096);
    any.kind = None;
    let run_json_any = |body: &'static str| {
        let f = any.clone();
        async move {
            let (_, out) = run(response("application/json", vec![body.into()]), f).await;
            serde_json::from_slice::<serde_json::Value>(&out).unwrap()
        }
    };
    // A 2026-07-28 list: filtered, so private; ttlMs kept.
    let got = run_json_any(r#"{"jsonrpc":"2.0","id":7,"result":{"tools":[{"name":"a"},{"name":"secret"}],"ttlMs":60000,"cacheScope":"public"}}"#).await;
    assert_eq!(got["result"]["cacheScope"], "private");
    assert_eq!(got["result"]["ttlMs"], 60000);
    assert_eq!(got["result"]["tools"], json!([{"name": "a"}]));
    // A hint-bearing list without cacheScope gets one.
    let got = run_json_any(r#"{"jsonrpc":"2.0","id":7,"result":{"tools":[],"ttlMs":5}}"#).await;
    assert_eq!(got["result"]["cacheScope"], "private");
    // A read result marked public is made private; a private one is left.
    let got = run_json_any(
        r#"{"jsonrpc":"2.0","id":7,"result":{"contents":[],"cacheScope":"public","ttlMs":1}}"#,
    )
    .await;
    assert_eq!(got["result"]["cacheScope"], "private");
    let private = r#"{"jsonrpc":"2.0","id":7,"result":{"contents":[],"cacheScope":"private"}}"#;
    let (_, out) = run(
        response("application/json", vec![private.into()]),
        any.clone(),
    )
    .await;
    assert_eq!(out, private, "untouched, byte for byte");
    // Older versions carry no hints: none is added.
    let got = run_json_any(r#"{"jsonrpc":"2.0","id":7,"result":{"tools":[{"name":"a"}]}}"#).await;
    assert!(got["result"].get("cacheScope").is_none());
}
