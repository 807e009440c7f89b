//! The orchestrator: one request through the stages, in order.
//!
//! 3 well-known → route → 4 authenticate → read body → 5 JSON-RPC envelope →
//! 6 authorize → 7 forward → 8 filter lists. Each stage
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
use crate::authz::{self, CallDecision, Decision, DenyMode};
use crate::body::Body;
use crate::config::{Config, Route};
use crate::filter::{self, ListFilter, ListKind};
use crate::forward::{self, ClientConn, HttpClient};
use crate::jsonrpc::{self, Envelope, RpcCall, Target};
use crate::reject::{self, Challenge, Denied, Rejection};
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
    /// The authorized JSON-RPC calls of a POST.
    calls: Vec<RpcCall>,
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
        route: &Arc<Route>,
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

        // Stages 5 + 6: read the JSON-RPC envelope and authorize every call in it.
        // GET (the SSE stream) and DELETE (end session) carry no call: the route's
        // scopes, checked above, are all they need.
        if parts.method == Method::POST {
            let limits = jsonrpc::ParseLimits {
                max_depth: self.config.limits.max_json_depth,
                max_batch: self.config.limits.max_batch,
            };
            let envelope = jsonrpc::parse(&body, limits)?;
            jsonrpc::check_headers(&parts.headers, &envelope)?;
            let principal = outcome.principal.as_ref().ok_or(Rejection::BodyRead)?;
            outcome.calls = authorize(route, principal, envelope)?;
        }

        // Stage 7: forward and stream.
        let resp = forward::forward(&self.client, route, parts, body, conn).await?;

        // Stage 8: hide list entries the caller could not use.
        Ok(
            match list_filter(route, outcome, self.config.limits.max_filtered_event) {
                Some(f) => filter::filter_response(resp, f).await,
                None => resp,
            },
        )
    }
}

/// The list filter for a single `*/list` request on a route that filters lists.
fn list_filter(
    route: &Arc<Route>,
    outcome: &Outcome,
    max_event_bytes: usize,
) -> Option<ListFilter> {
    route.policy.as_ref().filter(|p| p.filter_lists)?;
    let [call] = outcome.calls.as_slice() else {
        return None;
    };
    let kind = ListKind::from_method(call.method())?;
    let id = call.id.clone()?;
    let granted = outcome.principal.as_ref()?.scopes.clone();
    let route = route.clone();
    // An entry is visible when the call that uses it would be allowed.
    let allow: filter::Allow = Arc::new(move |kind: ListKind, key: &str| {
        let (method, target) = match kind {
            ListKind::Tools => ("tools/call", Target::Tool(key.to_owned())),
            ListKind::Prompts => ("prompts/get", Target::Prompt(key.to_owned())),
            ListKind::Resources | ListKind::ResourceTemplates => {
                ("resources/read", Target::Resource(key.to_owned()))
            }
        };
        let call = RpcCall {
            method: Some(method.to_owned()),
            id: None,
            target,
        };
        authz::decide_call(
            route.policy.as_ref(),
            &route.required_scopes,
            &granted,
            &call,
        )
        .allowed()
    });
    Some(ListFilter {
        id,
        kind,
        allow,
        max_event_bytes,
    })
}

/// Stage 6: decide, write the audit events, and turn a denial into a rejection.
fn authorize(
    route: &Route,
    principal: &Principal,
    envelope: Envelope,
) -> Result<Vec<RpcCall>, Rejection> {
    let policy = route.policy.as_ref();
    let (decision, per_call) =
        authz::decide(policy, &route.required_scopes, &principal.scopes, &envelope);
    for (call, d) in envelope.calls().iter().zip(&per_call) {
        audit(route, principal, call, d);
    }
    let calls = match envelope {
        Envelope::Single(c) => vec![c],
        Envelope::Batch(cs) => cs,
    };
    match decision {
        Decision::Allow => Ok(calls),
        Decision::Deny {
            index,
            unlisted,
            required,
        } => {
            let ids = calls.iter().filter_map(|c| c.id.clone()).collect();
            let call = calls.into_iter().nth(index).ok_or(Rejection::BodyRead)?;
            Err(Rejection::Denied(Box::new(Denied {
                mode: policy.map_or(DenyMode::Challenge, |p| p.on_insufficient_scope),
                call,
                unlisted,
                required,
                ids,
            })))
        }
    }
}

/// One audit event per authorization decision. Never logs arguments or tokens.
fn audit(route: &Route, principal: &Principal, call: &RpcCall, d: &CallDecision) {
    let (tool, resource, prompt) = match &call.target {
        Target::Tool(n) => (Some(n.as_str()), None, None),
        Target::Resource(u) => (None, Some(u.as_str()), None),
        Target::Prompt(n) => (None, None, Some(n.as_str())),
        Target::None => (None, None, None),
    };
    let decision = if d.allowed() {
        "allow"
    } else if d.unlisted {
        "deny_unlisted"
    } else {
        "deny_scope"
    };
    tracing::info!(
        target: "mcp_auth_gateway::audit",
        route = %route.path,
        sub = principal.subject.as_deref(),
        client_id = principal.client_id.as_deref(),
        method = call.method(),
        tool, resource, prompt,
        rule = d.rule.as_deref(),
        decision,
        missing_scopes = %d.missing.join(" "),
        "authorization"
    );
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
    let rpc_method = match outcome.calls.as_slice() {
        [one] => one.method(),
        [] => "",
        _ => "batch",
    };
    match rejection {
        None => tracing::info!(
            target: "mcp_auth_gateway::request",
            route, http.method = %method, path, rpc.method = rpc_method, status = status.as_u16(), latency_us, sub, client_id,
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
