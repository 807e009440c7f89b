//! The orchestrator: one request through the stages, in order.
//!
//! 3 well-known → route → 4 authenticate → read body → 7 forward. Each stage
//! is a plain function with typed inputs and outputs; this file only wires
//! them and writes the one log event per request. Nothing reaches the
//! upstream unless every earlier stage returned `Ok`.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use crate::authn::{Authenticator, Principal};
use crate::body::Body;
use crate::config::{Config, Route};
use crate::forward::{self, ClientConn, HttpClient};
use crate::reject::{self, Challenge, Rejection};
use crate::well_known;

/// Shared state for every request: the config snapshot and its services.
pub struct Gateway {
    config: Arc<Config>,
    authn: Authenticator,
    client: HttpClient,
}

/// What the request log event records about a proxied request.
#[derive(Default)]
struct Outcome {
    principal: Option<Principal>,
}

impl Gateway {
    /// Builds the gateway and starts background key refresh for every issuer.
    pub fn start(config: Arc<Config>) -> Self {
        let client = forward::client::build(config.limits.upstream_connect_timeout);
        let authn = Authenticator::start(&config, client.clone());
        Self {
            config,
            authn,
            client,
        }
    }

    /// Whether every issuer has keys (`/readyz`).
    pub fn ready(&self) -> bool {
        self.authn.ready()
    }

    /// Handles one request end to end. Never fails: rejections become responses.
    pub async fn handle(&self, req: Request<Incoming>, conn: ClientConn) -> Response<Body> {
        let started = Instant::now();
        let method = req.method().clone();
        let path = req.uri().path().to_owned();

        // Stage 3: answered without a token.
        if let Some(answer) = well_known::respond(&method, &path, &self.config, self.ready()) {
            return answer.unwrap_or_else(|rejection| reject::respond(&rejection, None));
        }

        let Some(route) = self.config.route(&path).cloned() else {
            let rejection = Rejection::NoRoute;
            log(
                &method,
                &path,
                None,
                &Outcome::default(),
                Some(&rejection),
                started,
                rejection.status(),
            );
            return reject::respond(&rejection, None);
        };

        let (parts, body) = req.into_parts();
        let mut outcome = Outcome::default();
        match self.proxy(&parts, body, &route, conn, &mut outcome).await {
            Ok(resp) => {
                log(
                    &method,
                    &path,
                    Some(&route),
                    &outcome,
                    None,
                    started,
                    resp.status(),
                );
                resp
            }
            Err(rejection) => {
                let url = well_known::metadata_url(&route, &parts.headers);
                let challenge = Challenge {
                    resource_metadata: &url,
                    scopes: &route.required_scopes,
                };
                let resp = reject::respond(&rejection, Some(&challenge));
                log(
                    &method,
                    &path,
                    Some(&route),
                    &outcome,
                    Some(&rejection),
                    started,
                    resp.status(),
                );
                resp
            }
        }
    }

    /// Stages 4 → 7 for a request on `route`.
    async fn proxy(
        &self,
        parts: &http::request::Parts,
        body: Incoming,
        route: &Route,
        conn: ClientConn,
        outcome: &mut Outcome,
    ) -> Result<Response<Body>, Rejection> {
        if !matches!(parts.method, Method::POST | Method::GET | Method::DELETE) {
            return Err(Rejection::MethodNotAllowed);
        }

        // Stage 4: authenticate.
        let principal = self
            .authn
            .authenticate(&parts.headers, parts.uri.query(), route)
            .await?;
        let has_base_scopes = principal.has_all(&route.required_scopes);
        outcome.principal = Some(principal);
        if !has_base_scopes {
            let mut required = route.required_scopes.clone();
            required.sort_unstable();
            required.dedup();
            return Err(Rejection::InsufficientScope { required });
        }

        // The body is buffered (capped) so that later stages can inspect it and
        // forward exactly the same bytes.
        let body = read_body(body, self.config.limits.max_body).await?;

        // Stage 7: forward and stream.
        Ok(forward::forward(&self.client, route, parts, body, conn).await?)
    }
}

async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, Rejection> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(Rejection::BodyTooLarge { limit })
        }
        Err(_) => Err(Rejection::BodyRead),
    }
}

/// The one structured event per request. Never logs tokens or bodies.
fn log(
    method: &Method,
    path: &str,
    route: Option<&Route>,
    outcome: &Outcome,
    rejection: Option<&Rejection>,
    started: Instant,
    status: http::StatusCode,
) {
    let latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    let sub = outcome
        .principal
        .as_ref()
        .and_then(|p| p.subject.as_deref());
    let client_id = outcome
        .principal
        .as_ref()
        .and_then(|p| p.client_id.as_deref());
    let route = route.map(|r| r.path.as_str());
    match rejection {
        None => tracing::info!(
            target: "mcp_auth_gateway::request",
            route, http.method = %method, path, status = status.as_u16(), latency_us, sub, client_id,
            "request"
        ),
        Some(r) => tracing::info!(
            target: "mcp_auth_gateway::request",
            route, http.method = %method, path, status = status.as_u16(), latency_us, sub, client_id,
            reason = %r.reason(),
            "request rejected"
        ),
    }
}
