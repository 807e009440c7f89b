//! The orchestrator: one request through the stages, in order.
//!
//! 3 well-known → route → Origin/CORS → 4 authenticate → rate limits → read
//! body → 5 JSON-RPC envelope → 6 authorize → session unwrap → 7 forward →
//! session wrap → 8 filter lists. Each stage is a plain function with typed
//! inputs and outputs; this file only wires them and writes the one log event
//! per request. Nothing reaches the upstream unless every earlier stage
//! returned `Ok`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use crate::authn::{Authenticator, AuthnError, Principal};
use crate::authz::{self, CallDecision, Decision, DenyMode};
use crate::body::Body;
use crate::config::{Config, Route};
use crate::cors;
use crate::filter::{self, ListFilter, ListKind};
use crate::forward::{self, ClientConn, HttpClient};
use crate::jsonrpc::{self, Envelope, RpcCall, Target};
use crate::reject::{self, Challenge, Denied, Rejection};
use crate::session::SessionBinder;
use crate::throttle::{Guarded, Throttle, Throttled};
use crate::well_known;

/// How often idle rate-limiter keys are pruned.
const HOUSEKEEPING: Duration = Duration::from_secs(30);

/// Shared state for every request: the config snapshot and its services.
pub struct Gateway {
    config: Arc<Config>,
    authn: Authenticator,
    client: HttpClient,
    sessions: SessionBinder,
    throttle: Arc<Throttle>,
}

/// What the request log event records about a proxied request.
#[derive(Default)]
struct Outcome {
    principal: Option<Arc<Principal>>,
    /// The authorized JSON-RPC calls of a POST.
    calls: Vec<RpcCall>,
}

impl Gateway {
    /// Builds the gateway and starts its background tasks (key refresh,
    /// limiter housekeeping).
    pub fn start(config: Arc<Config>) -> Self {
        let client = forward::client::build(config.limits.upstream_connect_timeout);
        let authn = Authenticator::start(&config, client.clone());
        let sessions = match &config.session_key {
            Some(key) => SessionBinder::new(&key.0),
            None => {
                tracing::warn!(
                    "session_binding.key is not set: using a random key, so session ids \
                     do not survive a restart and do not work across replicas"
                );
                SessionBinder::random()
            }
        };
        let throttle = Arc::new(Throttle::new(
            &config.rate_limits,
            config.limits.max_streams_per_principal,
        ));
        let weak = Arc::downgrade(&throttle);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(HOUSEKEEPING).await;
                match weak.upgrade() {
                    Some(t) => t.housekeeping(),
                    None => return,
                }
            }
        });
        Self {
            config,
            authn,
            client,
            sessions,
            throttle,
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
            return self.refuse(&method, &path, None, Rejection::NoRoute, started);
        };

        // Origin first, before anything else (DNS rebinding); then CORS preflight.
        let origin = match cors::check(&route, req.headers()) {
            Ok(origin) => origin,
            Err(rejection) => return self.refuse(&method, &path, Some(&route), rejection, started),
        };
        if method == Method::OPTIONS {
            return match origin {
                Some(origin) => cors::preflight(origin),
                None => self.refuse(
                    &method,
                    &path,
                    Some(&route),
                    Rejection::MethodNotAllowed,
                    started,
                ),
            };
        }

        let (mut parts, body) = req.into_parts();
        let mut outcome = Outcome::default();
        let mut resp = match self
            .proxy(&mut parts, body, &route, conn, &mut outcome)
            .await
        {
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
        };
        if let Some(origin) = origin {
            cors::decorate(&mut resp, origin);
        }
        resp
    }

    /// Logs and answers a rejection that happened before the proxy stages.
    fn refuse(
        &self,
        method: &Method,
        path: &str,
        route: Option<&Route>,
        rejection: Rejection,
        started: Instant,
    ) -> Response<Body> {
        let resp = reject::respond(&rejection, None);
        log(
            method,
            path,
            route,
            &Outcome::default(),
            Some(&rejection),
            started,
            resp.status(),
        );
        resp
    }

    /// Stages 4 → 8 for a request on `route`.
    async fn proxy(
        &self,
        parts: &mut http::request::Parts,
        body: Incoming,
        route: &Arc<Route>,
        conn: ClientConn,
        outcome: &mut Outcome,
    ) -> Result<Response<Body>, Rejection> {
        if !matches!(parts.method, Method::POST | Method::GET | Method::DELETE) {
            return Err(Rejection::MethodNotAllowed);
        }

        // Stage 4: authenticate. Failures are rate-limited per client IP, so an
        // unauthenticated flood costs bounded memory and CPU.
        let principal = match self
            .authn
            .authenticate(&parts.headers, parts.uri.query(), route)
            .await
        {
            Ok(p) => p,
            Err(e) => {
                if !matches!(e, AuthnError::KeysUnavailable { .. }) {
                    self.throttle
                        .check_unauthenticated(conn.peer.ip())
                        .map_err(|throttled| Rejection::Throttled {
                            throttled,
                            id: None,
                        })?;
                }
                return Err(e.into());
            }
        };
        outcome.principal = Some(principal.clone());
        if !principal.has_all(&route.required_scopes) {
            let mut required = route.required_scopes.clone();
            required.sort_unstable();
            required.dedup();
            return Err(Rejection::InsufficientScope { required });
        }

        // The body is buffered (capped) so that later stages can inspect it and
        // forward exactly the same bytes.
        let body = read_body(body, self.config.limits.max_body).await?;

        // Stages 5 + 6: read the JSON-RPC envelope, apply rate limits, and
        // authorize every call in it. GET (the SSE stream) and DELETE (end
        // session) carry no call: the route's scopes, checked above, suffice.
        if parts.method == Method::POST {
            let limits = jsonrpc::ParseLimits {
                max_depth: self.config.limits.max_json_depth,
                max_batch: self.config.limits.max_batch,
            };
            let envelope = jsonrpc::parse(&body, limits)?;
            jsonrpc::check_headers(&parts.headers, &envelope)?;
            self.rate_limit(&principal, Some(&envelope))?;
            outcome.calls = authorize(route, &principal, envelope)?;
        } else {
            self.rate_limit(&principal, None)?;
        }

        // The upstream sees its own session id, and only for the principal that created it.
        self.sessions
            .unwrap_request(&principal, &mut parts.headers)
            .map_err(|_| Rejection::SessionNotFound)?;
        let slot =
            self.throttle
                .open_stream(&principal)
                .map_err(|throttled| Rejection::Throttled {
                    throttled,
                    id: single_id(outcome),
                })?;

        // Stage 7: forward and stream.
        let resp = forward::forward(&self.client, route, parts, body, conn).await?;
        let (mut head, body) = resp.into_parts();
        self.sessions.wrap_response(&principal, &mut head.headers);
        let resp = Response::from_parts(head, Guarded::new(body, slot).boxed());

        // Stage 8: hide list entries the caller could not use.
        Ok(
            match list_filter(route, outcome, self.config.limits.max_filtered_event) {
                Some(f) => filter::filter_response(resp, f).await,
                None => resp,
            },
        )
    }

    /// Per-principal and per-tool rate limits.
    fn rate_limit(
        &self,
        principal: &Principal,
        envelope: Option<&Envelope>,
    ) -> Result<(), Rejection> {
        let id = match envelope {
            Some(Envelope::Single(call)) => call.id.clone(),
            _ => None,
        };
        let throttled = |throttled: Throttled| Rejection::Throttled {
            throttled,
            id: id.clone(),
        };
        self.throttle
            .check_principal(principal)
            .map_err(throttled)?;
        for call in envelope.map(Envelope::calls).unwrap_or_default() {
            if let Target::Tool(tool) = &call.target {
                self.throttle
                    .check_tool(principal, tool)
                    .map_err(throttled)?;
            }
        }
        Ok(())
    }
}

/// The id of a single JSON-RPC request, for JSON-RPC-shaped refusals.
fn single_id(outcome: &Outcome) -> Option<serde_json::Value> {
    match outcome.calls.as_slice() {
        [call] => call.id.clone(),
        _ => None,
    }
}

/// The list filter for a single `*/list` request on a route that filters lists.
fn list_filter(
    route: &Arc<Route>,
    outcome: &Outcome,
    max_event_bytes: usize,
) -> Option<ListFilter> {
    let pass_oversize = route
        .policy
        .as_ref()
        .filter(|p| p.filter_lists)?
        .pass_oversize_lists;
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
        pass_oversize,
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
