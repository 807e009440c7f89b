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

use http::{Method, Request, Response};
use hyper::body::Incoming;
use tracing::Instrument;

use crate::body::Body;
use crate::config::Route;
use crate::filter::{self, ListFilter};
use crate::forward::{self, ClientConn, Upstream};
use crate::reject::{self, Challenge, Rejection};
use crate::telemetry::spans;
use crate::{cors, well_known};

mod outcome;
mod stages;
mod state;

pub use state::{Gateway, Snapshot, StartError};

use outcome::Outcome;

/// The request id header, sent upstream and back to the client.
const X_REQUEST_ID: &str = "x-request-id";

impl Gateway {
    /// Handles one request end to end. Never fails: rejections become responses.
    /// `upstream` is the calling worker's way to the upstreams.
    pub async fn handle(
        &self,
        mut req: Request<Incoming>,
        conn: ClientConn,
        upstream: &Arc<Upstream>,
    ) -> Response<Body> {
        // With tracing on, the trace id is the request id: logs, metrics
        // and traces join on one value.
        let route = spans::enabled()
            .then(|| {
                let (snap, path) = (self.snapshot.load(), req.uri().path());
                let route = snap.config.route(path).map(|r| r.path.clone());
                route.or_else(|| snap.authserver.as_ref()?.span_route(path))
            })
            .flatten();
        let (span, request_id) =
            spans::request(req.method(), route.as_deref(), req.headers(), || {
                self.request_id()
            });
        let id = http::HeaderValue::from_str(&request_id).ok();
        if let Some(id) = &id {
            req.headers_mut().insert(X_REQUEST_ID, id.clone());
        }
        let mut resp = self
            .handle_inner(req, conn, upstream)
            .instrument(span)
            .await;
        if let Some(id) = id {
            resp.headers_mut().insert(X_REQUEST_ID, id);
        }
        resp
    }

    async fn handle_inner(
        &self,
        req: Request<Incoming>,
        conn: ClientConn,
        upstream: &Arc<Upstream>,
    ) -> Response<Body> {
        let snap = self.snapshot.load_full();
        let mut outcome = Outcome::new(req.method(), req.uri().path());
        let (method, path) = (req.method(), req.uri().path());

        // The built-in authorization server's own endpoints.
        if let Some(authserver) = snap.authserver.as_ref().filter(|a| a.owns(path)) {
            return authserver.handle(req, conn.peer.ip()).await;
        }
        // Stage 3: answered without a token.
        if let Some(answer) =
            well_known::respond(method, path, &snap.config, || self.readiness().public())
        {
            return answer.unwrap_or_else(|e| reject::respond(&e.into(), None));
        }
        let Some(route) = snap.config.route(path).cloned() else {
            return self.refuse(&outcome, None, Rejection::NoRoute);
        };
        let scheme = if conn.tls { "https" } else { "http" };
        spans::url(path, scheme);
        // Origin first, before anything else (DNS rebinding); then CORS preflight.
        let origin = match cors::check(&route, req.headers()) {
            Ok(origin) => origin,
            Err(e) => return self.refuse(&outcome, Some(&route), e.into()),
        };
        if method == Method::OPTIONS {
            return match origin {
                Some(origin) => cors::preflight(origin),
                None => self.refuse(&outcome, Some(&route), Rejection::MethodNotAllowed),
            };
        }

        let (mut parts, body) = req.into_parts();
        let result = self
            .proxy(
                &snap,
                &mut parts,
                body,
                &route,
                conn,
                upstream,
                &mut outcome,
            )
            .await;
        let mut resp = match result {
            Ok(resp) => {
                self.log(&outcome, Some(&route), None, resp.status());
                resp
            }
            Err(rejection) => {
                let url = well_known::metadata_url(&route, &parts.headers);
                let challenge = Challenge {
                    resource_metadata: &url,
                    scopes: &route.required_scopes,
                };
                let resp = reject::respond(&rejection, Some(&challenge));
                self.log(&outcome, Some(&route), Some(&rejection), resp.status());
                resp
            }
        };
        if let Some(origin) = origin {
            cors::decorate(&mut resp, origin);
        }
        resp
    }

    /// Stages 4 → 8 for a request on `route`: nothing reaches the upstream
    /// unless every stage before `forward` returned `Ok`.
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
        upstream: &Arc<Upstream>,
        outcome: &mut Outcome,
    ) -> Result<Response<Body>, Rejection> {
        if !matches!(parts.method, Method::POST | Method::GET | Method::DELETE) {
            return Err(Rejection::MethodNotAllowed);
        }
        // Stage 4: who is calling, and may they use this route at all.
        let principal = stages::authenticate(snap, parts, route, conn.peer.ip())
            .instrument(spans::stage("authenticate"))
            .await?;
        outcome.principal = Some(principal.clone());
        stages::route_scopes(route, &principal)?;
        // The body, capped, read as the upstream will read it.
        stages::check_framing(parts)?;
        let limits = &snap.config.limits;
        let body =
            crate::body::read_capped(body, limits.max_body, limits.body_read_timeout).await?;
        // Stages 5 + 6: the JSON-RPC calls, rate limits, the policy.
        let authorize = spans::stage("authorize");
        let calls = stages::authorize(snap, parts, &body, route, &principal)
            .instrument(authorize.clone())
            .await;
        outcome::trace_decision(&authorize, &principal, calls.as_ref().err());
        outcome.calls = calls?;
        spans::headers(&parts.headers);
        // The upstream sees its own session id, and only for the principal that created it.
        snap.sessions
            .unwrap_request(&principal, &mut parts.headers)
            .map_err(|_| Rejection::SessionNotFound)?;
        let slot = snap
            .throttle
            .open_stream_everywhere(&principal)
            .await
            .map_err(|throttled| Rejection::Throttled {
                throttled,
                id: outcome.single_id(),
            })?;
        forward::headers::add_identity(&mut parts.headers, route, &principal);

        // Stage 7: forward and stream.
        self.metrics.observe_gateway(&route.path, outcome.started);
        let upstream_started = Instant::now();
        let target = &route.upstream;
        let call = spans::upstream(
            &parts.method,
            &target.scheme,
            &target.authority,
            &target.path_and_query,
        );
        spans::inject(&call, &mut parts.headers);
        let resp = forward::forward(upstream, route, parts, body, conn)
            .instrument(call.clone())
            .await;
        if let Ok(resp) = &resp {
            spans::status(&call, resp.status());
        }
        let resp = resp?;
        self.metrics.observe_upstream(&route.path, upstream_started);
        stages::refuse_legacy_transport(&resp, &outcome.calls)?;
        let resp = stages::wrap_answer(snap, &self.metrics, &principal, resp, slot);

        // Stage 8: hide list entries the caller could not use.
        let max = limits.max_filtered_event;
        let list =
            ListFilter::for_request(route, &parts.method, &outcome.calls, &principal.scopes, max);
        Ok(match list {
            Some(f) => {
                filter::filter_response(resp, f)
                    .instrument(spans::stage("filter"))
                    .await
            }
            None => resp,
        })
    }
}
