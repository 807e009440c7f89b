//! The orchestrator: one request through the stages, in order.
//!
//! 3 well-known → route → Origin/CORS → 4 authenticate → rate limits → read
//! body → 5 JSON-RPC envelope → 6 authorize → session unwrap → 7 forward →
//! session wrap → 8 filter lists. Each stage is a plain function with typed
//! inputs and outputs; this file only wires them and writes the one log event
//! per request. Nothing reaches the upstream unless every earlier stage
//! returned `Ok`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tracing::Instrument;

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use crate::authn::{Authenticator, AuthnError, Principal};
use crate::authz::{self, Decision, DenyMode};
use crate::body::Body;
use crate::body::Guarded;
use crate::config::{Config, Route};
use crate::cors;
use crate::filter::{self, ListFilter};
use crate::forward::{self, ClientConn, HttpClient};
use crate::jsonrpc::{self, Envelope, RpcCall, Target};
use crate::reject::{self, Challenge, Denied, Rejection};
use crate::session::SessionBinder;
use crate::telemetry::metrics::{self, Metrics, RequestLabels, RouteLabels, StreamGauge};
use crate::throttle::{Throttle, Throttled};
use crate::well_known;

/// The request id header, sent upstream and back to the client.
const X_REQUEST_ID: &str = "x-request-id";

/// How often idle rate-limiter keys are pruned.
const HOUSEKEEPING: Duration = Duration::from_secs(30);

/// Everything derived from one config: swapped whole on reload, loaded once
/// per request.
pub struct Snapshot {
    /// The validated config.
    pub config: Arc<Config>,
    authn: Authenticator,
    sessions: SessionBinder,
    throttle: Arc<Throttle>,
}

/// The gateway: the current snapshot and what outlives reloads.
pub struct Gateway {
    snapshot: ArcSwap<Snapshot>,
    client: HttpClient,
    metrics: Arc<Metrics>,
    /// Set on SIGTERM: `/readyz` fails from then on.
    draining: AtomicBool,
    /// Used when `session_binding.key` is not set; kept across reloads so
    /// sessions survive them.
    fallback_session_key: [u8; 32],
    next_request_id: AtomicU64,
    request_id_prefix: u32,
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
    /// limiter housekeeping). Fails only when the system random number
    /// generator does: the fallback session key must never be all zeros.
    pub fn start(
        config: Arc<Config>,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, aws_lc_rs::error::Unspecified> {
        let client = crate::http_client::build(config.limits.upstream_connect_timeout);
        let (fallback_session_key, prefix) = random_keys(aws_lc_rs::rand::fill)?;
        let snapshot = build_snapshot(config, &client, &metrics, None, &fallback_session_key);
        let gateway = Arc::new(Self {
            snapshot: ArcSwap::from_pointee(snapshot),
            client,
            metrics,
            draining: AtomicBool::new(false),
            fallback_session_key,
            next_request_id: AtomicU64::new(0),
            request_id_prefix: u32::from_be_bytes(prefix),
        });
        let weak = Arc::downgrade(&gateway);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(HOUSEKEEPING).await;
                match weak.upgrade() {
                    Some(g) => g.snapshot.load().throttle.housekeeping(),
                    None => return,
                }
            }
        });
        Ok(gateway)
    }

    /// Swaps in a snapshot built from `config`. Requests in flight keep the
    /// snapshot they started with; open streams are untouched. Issuers whose
    /// config is unchanged keep their loaded keys; new ones are given up to
    /// their fetch timeout to load before the swap.
    pub async fn reload(&self, config: Config) {
        let config = Arc::new(config);
        let old = self.snapshot.load_full();
        let next = build_snapshot(
            config.clone(),
            &self.client,
            &self.metrics,
            Some(&old),
            &self.fallback_session_key,
        );
        let deadline =
            Instant::now() + config.limits.jwks_fetch_timeout + Duration::from_millis(500);
        while !next.authn.ready() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if !next.authn.ready() {
            tracing::warn!(
                "reloaded config has issuers whose keys are not loaded yet; their tokens get 503 until they are"
            );
        }
        if config.listen != old.config.listen || config.tls.is_some() != old.config.tls.is_some() {
            tracing::warn!("`listen` and `tls` are read at start only; restart to change them");
        }
        self.snapshot.store(Arc::new(next));
    }

    /// The config currently in force.
    pub fn config(&self) -> Arc<Config> {
        self.snapshot.load().config.clone()
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Stops reporting ready (SIGTERM): load balancers stop sending new work.
    pub fn begin_drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Whether the gateway should receive traffic: not draining, and every
    /// issuer has keys.
    pub fn ready(&self) -> bool {
        !self.draining.load(Ordering::SeqCst) && self.snapshot.load().authn.ready()
    }

    /// A process-unique request id (random prefix + counter).
    fn request_id(&self) -> String {
        let n = self.next_request_id.fetch_add(1, Ordering::Relaxed);
        format!("{:08x}-{n:08x}", self.request_id_prefix)
    }

    /// Handles one request end to end. Never fails: rejections become responses.
    /// `upstream` is the calling worker's connection pool.
    pub async fn handle(
        &self,
        mut req: Request<Incoming>,
        conn: ClientConn,
        upstream: &HttpClient,
    ) -> Response<Body> {
        let request_id = self.request_id();
        let span = tracing::info_span!("request", request_id = %request_id);
        if let Ok(v) = http::HeaderValue::from_str(&request_id) {
            req.headers_mut().insert(X_REQUEST_ID, v);
        }
        let mut resp = self
            .handle_inner(req, conn, upstream)
            .instrument(span)
            .await;
        if let Ok(v) = http::HeaderValue::from_str(&request_id) {
            resp.headers_mut().insert(X_REQUEST_ID, v);
        }
        resp
    }

    async fn handle_inner(
        &self,
        req: Request<Incoming>,
        conn: ClientConn,
        upstream: &HttpClient,
    ) -> Response<Body> {
        let snap = self.snapshot.load_full();
        let started = Instant::now();
        let method = req.method().clone();
        let path = req.uri().path().to_owned();

        // Stage 3: answered without a token.
        if let Some(answer) = well_known::respond(&method, &path, &snap.config, self.ready()) {
            return answer.unwrap_or_else(|e| reject::respond(&e.into(), None));
        }

        let Some(route) = snap.config.route(&path).cloned() else {
            return self.refuse(&method, &path, None, Rejection::NoRoute, started);
        };

        // Origin first, before anything else (DNS rebinding); then CORS preflight.
        let origin = match cors::check(&route, req.headers()) {
            Ok(origin) => origin,
            Err(rejection) => {
                return self.refuse(&method, &path, Some(&route), rejection.into(), started);
            }
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
        let result = self
            .proxy(
                &snap,
                &mut parts,
                body,
                &route,
                conn,
                upstream,
                &mut outcome,
                started,
            )
            .await;
        let mut resp = match result {
            Ok(resp) => {
                self.log(
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
                self.log(
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
        self.log(
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
    #[expect(
        clippy::too_many_arguments,
        reason = "one value per stage input; grouping them would hide the flow"
    )]
    async fn proxy(
        &self,
        snap: &Snapshot,
        parts: &mut http::request::Parts,
        body: Incoming,
        route: &Arc<Route>,
        conn: ClientConn,
        upstream: &HttpClient,
        outcome: &mut Outcome,
        started: Instant,
    ) -> Result<Response<Body>, Rejection> {
        if !matches!(parts.method, Method::POST | Method::GET | Method::DELETE) {
            return Err(Rejection::MethodNotAllowed);
        }

        // Stage 4: authenticate. Failures are rate-limited per client IP, so an
        // unauthenticated flood costs bounded memory and CPU.
        let principal = match snap
            .authn
            .authenticate(&parts.headers, parts.uri.query(), route)
            .await
        {
            Ok(p) => p,
            Err(e) => {
                let dependency_down = matches!(
                    e,
                    AuthnError::KeysUnavailable { .. }
                        | AuthnError::IntrospectionUnavailable { .. }
                );
                if !dependency_down {
                    snap.throttle
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

        // A legacy HTTP+SSE session id in the query is never bound to a
        // principal, so it is never forwarded.
        if crate::session::query_names_session(parts.uri.query()) {
            return Err(Rejection::SessionInQuery);
        }
        // The body is read as UTF-8 JSON; so must the upstream read it.
        if parts.method == Method::POST {
            jsonrpc::media::check(&parts.headers)?;
        }
        // The body is buffered (capped) so that later stages can inspect it and
        // forward exactly the same bytes.
        let limits = &snap.config.limits;
        let body = read_body(body, limits.max_body, limits.body_read_timeout).await?;

        // Stages 5 + 6: read the JSON-RPC envelope, apply rate limits, and
        // authorize every call in it. GET (the SSE stream) and DELETE (end
        // session) carry no call: the route's scopes, checked above, suffice.
        if parts.method == Method::POST {
            let parse_limits = jsonrpc::ParseLimits {
                max_depth: limits.max_json_depth,
                max_batch: limits.max_batch,
            };
            let envelope = parse_envelope(&body, parse_limits).await?;
            let mut envelope = envelope;
            let version = jsonrpc::version::check(&parts.headers, &envelope).map_err(|m| {
                Rejection::HeaderMismatch {
                    header: m.header,
                    id: match &envelope {
                        Envelope::Single(call) => call.id.clone(),
                        Envelope::Batch(_) => None,
                    },
                }
            })?;
            envelope.resolve(&version)?;
            rate_limit(&snap.throttle, &principal, Some(&envelope))?;
            outcome.calls = authorize(route, &principal, envelope)?;
            filter::refuse_batched_lists(route, &outcome.calls)?;
        } else {
            // Nothing inspects a GET or DELETE body, so none is forwarded.
            if !body.is_empty() {
                return Err(Rejection::BodyNotAllowed);
            }
            rate_limit(&snap.throttle, &principal, None)?;
        }

        // The upstream sees its own session id, and only for the principal that created it.
        snap.sessions
            .unwrap_request(&principal, &mut parts.headers)
            .map_err(|_| Rejection::SessionNotFound)?;
        let slot =
            snap.throttle
                .open_stream(&principal)
                .map_err(|throttled| Rejection::Throttled {
                    throttled,
                    id: single_id(outcome),
                })?;
        forward::headers::add_identity(&mut parts.headers, route, &principal);

        // Stage 7: forward and stream.
        let labels = RouteLabels {
            route: route.path.clone(),
        };
        self.metrics
            .gateway_seconds
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
        let upstream_started = Instant::now();
        let resp = forward::forward(upstream, route, parts, body, conn).await?;
        self.metrics
            .upstream_seconds
            .get_or_create(&labels)
            .observe(upstream_started.elapsed().as_secs_f64());
        // A request answered with 202 has its answer on another stream: the
        // legacy HTTP+SSE transport, whose session the gateway cannot bind.
        let is_request = |c: &RpcCall| c.method.is_some() && c.id.is_some();
        if resp.status() == http::StatusCode::ACCEPTED && outcome.calls.iter().any(is_request) {
            return Err(Rejection::LegacyTransport);
        }
        let (mut head, body) = resp.into_parts();
        snap.sessions.wrap_response(&principal, &mut head.headers);
        let gauge = forward::headers::is_event_stream(&head.headers)
            .then(|| StreamGauge::open(&self.metrics.open_streams));
        let resp = Response::from_parts(head, Guarded::new(body, (slot, gauge)).boxed());

        // Stage 8: hide list entries the caller could not use.
        let list = ListFilter::for_request(
            route,
            &parts.method,
            &outcome.calls,
            &principal.scopes,
            limits.max_filtered_event,
        );
        Ok(match list {
            Some(f) => filter::filter_response(resp, f).await,
            None => resp,
        })
    }

    /// The one structured event per request, and its metrics. Never logs
    /// tokens or bodies.
    #[expect(clippy::too_many_arguments, reason = "the fields of one log event")]
    fn log(
        &self,
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
        let rpc_method = match (outcome.calls.as_slice(), rejection) {
            ([one], _) => one.method().to_owned(),
            ([], Some(Rejection::Denied(d))) => d.call.method().to_owned(),
            ([], _) => String::new(),
            (_, _) => "batch".to_owned(),
        };
        let decision = match rejection {
            None => "allow",
            Some(Rejection::Denied(_) | Rejection::InsufficientScope { .. }) => "deny",
            Some(_) => "reject",
        };
        self.metrics
            .requests
            .get_or_create(&RequestLabels {
                route: route.map_or_else(|| "none".to_owned(), |r| r.path.clone()),
                method: if rpc_method.is_empty() {
                    method.as_str().to_owned()
                } else {
                    metrics::method_label(&rpc_method).to_owned()
                },
                decision: decision.to_owned(),
                status: status.as_u16(),
            })
            .inc();
        let route = route.map(|r| r.path.as_str());
        match rejection {
            None => tracing::info!(
                target: "mcp_auth_gateway::request",
                route, http.method = %method, path, rpc.method = rpc_method, status = status.as_u16(), latency_us, sub, client_id,
                "request"
            ),
            Some(r) => tracing::info!(
                target: "mcp_auth_gateway::request",
                route, http.method = %method, path, rpc.method = rpc_method, status = status.as_u16(), latency_us, sub, client_id,
                decision, reason = %r.reason(),
                "request rejected"
            ),
        }
    }
}

/// The fallback session key and the request-id prefix, from `fill` (the
/// system RNG); its failure is the caller's error, never a zero key.
fn random_keys(
    fill: impl Fn(&mut [u8]) -> Result<(), aws_lc_rs::error::Unspecified>,
) -> Result<([u8; 32], [u8; 4]), aws_lc_rs::error::Unspecified> {
    let mut key = [0u8; 32];
    fill(&mut key)?;
    let mut prefix = [0u8; 4];
    fill(&mut prefix)?;
    Ok((key, prefix))
}

/// Builds a snapshot; `previous` lends its loaded key stores and, for a
/// generated session key, continuity.
fn build_snapshot(
    config: Arc<Config>,
    client: &HttpClient,
    metrics: &Arc<Metrics>,
    previous: Option<&Snapshot>,
    fallback_session_key: &[u8; 32],
) -> Snapshot {
    let authn = Authenticator::start(
        &config,
        client.clone(),
        metrics.clone(),
        previous.map(|p| &p.authn),
    );
    let sessions = match &config.session_key {
        Some(key) => SessionBinder::new(&key.0),
        None => {
            if previous.is_none() {
                tracing::warn!(
                    "session_binding.key is not set: using a random key, so session ids \
                     do not survive a restart and do not work across replicas"
                );
            }
            SessionBinder::new(fallback_session_key)
        }
    };
    // Admission state outlives reloads: budgets and open streams carry over.
    let throttle = Arc::new(match previous {
        Some(p) => p
            .throttle
            .reconfigured(&config.rate_limits, config.limits.max_streams_per_principal),
        None => Throttle::new(&config.rate_limits, config.limits.max_streams_per_principal),
    });
    Snapshot {
        config,
        authn,
        sessions,
        throttle,
    }
}

/// Per-principal and per-tool rate limits.
fn rate_limit(
    throttle: &Throttle,
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
    throttle.check_principal(principal).map_err(throttled)?;
    for call in envelope.map(Envelope::calls).unwrap_or_default() {
        if let Target::Tool(tool) = &call.target {
            throttle.check_tool(principal, tool).map_err(throttled)?;
        }
    }
    Ok(())
}

/// The id of a single JSON-RPC request, for JSON-RPC-shaped refusals.
fn single_id(outcome: &Outcome) -> Option<serde_json::Value> {
    match outcome.calls.as_slice() {
        [call] => call.id.clone(),
        _ => None,
    }
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
        authz::audit::record(route, principal, call, d);
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

/// Bodies up to this size are parsed on the worker thread (well under a
/// millisecond); larger ones on the runtime's blocking pool, so that a
/// worst-case 4 MiB body (tens of milliseconds) never holds up the other
/// connections of its worker.
const PARSE_INLINE_MAX: usize = 64 << 10;

/// Stage 5, off the worker thread when the body is large.
async fn parse_envelope(body: &Bytes, limits: jsonrpc::ParseLimits) -> Result<Envelope, Rejection> {
    if body.len() <= PARSE_INLINE_MAX {
        return Ok(jsonrpc::parse(body, limits)?);
    }
    let body = body.clone();
    tokio::task::spawn_blocking(move || jsonrpc::parse(&body, limits))
        .await
        .map_err(|_| Rejection::BodyRead)?
        .map_err(Rejection::from)
}

/// The whole body, capped in size and in time: a body that trickles in
/// (slowloris on the body) is cut off with 408 rather than holding a
/// connection and a stream slot.
async fn read_body(body: Incoming, limit: usize, timeout: Duration) -> Result<Bytes, Rejection> {
    let read = tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await;
    let Ok(read) = read else {
        return Err(Rejection::BodyTimeout(timeout));
    };
    match read {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(Rejection::BodyTooLarge { limit })
        }
        Err(_) => Err(Rejection::BodyRead),
    }
}

#[cfg(test)]
mod tests {
    use super::random_keys;

    #[test]
    fn a_failing_rng_is_an_error_not_a_zero_key() {
        let failing = |_: &mut [u8]| Err(aws_lc_rs::error::Unspecified);
        assert!(random_keys(failing).is_err());
        let (key, _) = random_keys(aws_lc_rs::rand::fill).unwrap();
        assert_ne!(key, [0u8; 32]);
    }
}
