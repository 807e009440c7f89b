//! The orchestrator: one request through the stages, in order.
//!
//! 3 well-known → route → Origin/CORS → 4 authenticate → rate limits → read
//! body → 5 JSON-RPC envelope → 6 authorize → session unwrap → 7 forward →
//! session wrap → 8 filter lists. Each stage is a plain function with typed
//! inputs and outputs; this file only wires them and writes the one log event
//! per request. Nothing reaches the upstream unless every earlier stage
//! returned `Ok`.

use std::sync::Arc;
use std::time::Instant;

use tracing::Instrument;

use http::{Method, Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::authn::{AuthnError, Principal};
use crate::authz;
use crate::body::Body;
use crate::body::Guarded;
use crate::config::Route;
use crate::cors;
use crate::filter::{self, ListFilter};
use crate::forward::{self, ClientConn, HttpClient};
use crate::jsonrpc::{self, Envelope, RpcCall};
use crate::reject::{self, Challenge, Rejection};
use crate::telemetry::metrics::{RouteLabels, StreamGauge};
use crate::telemetry::request::RequestEvent;
use crate::well_known;

mod state;

pub use state::{Gateway, Snapshot};

/// The request id header, sent upstream and back to the client.
const X_REQUEST_ID: &str = "x-request-id";

/// What the request log event records about a proxied request.
#[derive(Default)]
struct Outcome {
    principal: Option<Arc<Principal>>,
    /// The authorized JSON-RPC calls of a POST.
    calls: Vec<RpcCall>,
}

impl Gateway {
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
        let body =
            crate::body::read_capped(body, limits.max_body, limits.body_read_timeout).await?;

        // Stages 5 + 6: read the JSON-RPC envelope, apply rate limits, and
        // authorize every call in it. GET (the SSE stream) and DELETE (end
        // session) carry no call: the route's scopes, checked above, suffice.
        if parts.method == Method::POST {
            let parse_limits = jsonrpc::ParseLimits {
                max_depth: limits.max_json_depth,
                max_batch: limits.max_batch,
            };
            let envelope = jsonrpc::parse_off_thread(&body, parse_limits).await?;
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
            snap.throttle
                .admit(
                    &principal,
                    envelope.calls().iter().filter_map(RpcCall::tool),
                )
                .map_err(|throttled| Rejection::Throttled {
                    throttled,
                    id: envelope.single_id(),
                })?;
            outcome.calls =
                authz::authorize(route, &principal, envelope).map_err(Rejection::Denied)?;
            filter::refuse_batched_lists(route, &outcome.calls)?;
        } else {
            // Nothing inspects a GET or DELETE body, so none is forwarded.
            if !body.is_empty() {
                return Err(Rejection::BodyNotAllowed);
            }
            snap.throttle
                .admit(&principal, std::iter::empty())
                .map_err(|throttled| Rejection::Throttled {
                    throttled,
                    id: None,
                })?;
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

    /// The one structured event per request, and its metrics
    /// (telemetry/request.rs).
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
        let principal = outcome.principal.as_deref();
        let rpc_method = match (outcome.calls.as_slice(), rejection) {
            ([one], _) => one.method(),
            ([], Some(Rejection::Denied(d))) => d.call.method(),
            ([], _) => "",
            (_, _) => "batch",
        };
        let refusal = rejection.map(|r| {
            let decision = match r {
                Rejection::Denied(_) | Rejection::InsufficientScope { .. } => "deny",
                _ => "reject",
            };
            (decision, r.reason())
        });
        self.metrics.record_request(&RequestEvent {
            method,
            path,
            route: route.map(|r| r.path.as_str()),
            rpc_method,
            sub: principal.and_then(|p| p.subject.as_deref()),
            client_id: principal.and_then(|p| p.client_id.as_deref()),
            refusal,
            started,
            status,
        });
    }
}

/// The id of a single JSON-RPC request, for JSON-RPC-shaped refusals.
fn single_id(outcome: &Outcome) -> Option<serde_json::Value> {
    match outcome.calls.as_slice() {
        [call] => call.id.clone(),
        _ => None,
    }
}
