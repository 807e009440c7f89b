//! The glue between the orchestrator and the stages it calls: each function
//! here runs one stage (or a guard between two) and turns its result into the
//! orchestrator's `Result<_, Rejection>`, so that `mod.rs` reads as the chain.

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use http_body_util::BodyExt;

use super::Snapshot;
use crate::authn::Principal;
use crate::body::{Body, Guarded};
use crate::config::Route;
use crate::jsonrpc::{self, Envelope, RpcCall};
use crate::reject::Rejection;
use crate::telemetry::metrics::{Metrics, StreamGauge};
use crate::throttle::StreamGuard;
use crate::{authz, filter, forward};

/// Stage 4: authenticates the bearer token. Failures are rate-limited per
/// client IP (across replicas with `shared_state`), so an unauthenticated
/// flood costs bounded memory and CPU.
pub(super) async fn authenticate(
    snap: &Snapshot,
    parts: &http::request::Parts,
    route: &Route,
    peer: IpAddr,
) -> Result<Arc<Principal>, Rejection> {
    match snap
        .authn
        .authenticate(&parts.headers, parts.uri.query(), route)
        .await
    {
        Ok(principal) => Ok(principal),
        Err(e) => {
            snap.throttle
                .authn_failed(&e, peer)
                .await
                .map_err(|throttled| Rejection::Throttled {
                    throttled,
                    id: None,
                })?;
            Err(e.into())
        }
    }
}

/// The route's own scopes, needed for any request on it.
pub(super) fn route_scopes(route: &Route, principal: &Principal) -> Result<(), Rejection> {
    if principal.has_all(&route.required_scopes) {
        return Ok(());
    }
    let mut required = route.required_scopes.clone();
    required.sort_unstable();
    required.dedup();
    Err(Rejection::InsufficientScope { required })
}

/// What must hold before the body is read: no legacy HTTP+SSE session id in
/// the query (it is never bound to a principal, so it is never forwarded),
/// and a POST body the upstream reads as the gateway does (UTF-8 JSON).
pub(super) fn check_framing(parts: &http::request::Parts) -> Result<(), Rejection> {
    if crate::session::query_names_session(parts.uri.query()) {
        return Err(Rejection::SessionInQuery);
    }
    if parts.method == Method::POST {
        jsonrpc::media::check(&parts.headers)?;
    }
    Ok(())
}

/// Stages 5 + 6: reads the JSON-RPC envelope of a POST, applies the rate
/// limits and authorizes every call in it; returns the authorized calls.
/// GET (the SSE stream) and DELETE (end session) carry no call: the route's
/// scopes suffice, and nothing inspects their body, so none may be sent.
pub(super) async fn authorize(
    snap: &Snapshot,
    parts: &http::request::Parts,
    body: &Bytes,
    route: &Route,
    principal: &Arc<Principal>,
) -> Result<Vec<RpcCall>, Rejection> {
    let throttled = |id| move |throttled| Rejection::Throttled { throttled, id };
    if parts.method != Method::POST {
        if !body.is_empty() {
            return Err(Rejection::BodyNotAllowed);
        }
        snap.throttle
            .admit_everywhere(principal, &[])
            .await
            .map_err(throttled(None))?;
        return Ok(Vec::new());
    }
    let limits = &snap.config.limits;
    let parse_limits = jsonrpc::ParseLimits {
        max_depth: limits.max_json_depth,
        max_batch: limits.max_batch,
    };
    let mut envelope = jsonrpc::parse_off_thread(body, parse_limits).await?;
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
    let tools: Vec<&str> = envelope.calls().iter().filter_map(RpcCall::tool).collect();
    snap.throttle
        .admit_everywhere(principal, &tools)
        .await
        .map_err(throttled(envelope.single_id()))?;
    let calls = authz::authorize(route, principal, envelope).map_err(Rejection::Denied)?;
    filter::refuse_batched_lists(route, &calls)?;
    Ok(calls)
}

/// A request answered with 202 has its answer on another stream: the legacy
/// HTTP+SSE transport, whose session the gateway cannot bind.
pub(super) fn refuse_legacy_transport<B>(
    resp: &Response<B>,
    calls: &[RpcCall],
) -> Result<(), Rejection> {
    let is_request = |c: &RpcCall| c.method.is_some() && c.id.is_some();
    if resp.status() == StatusCode::ACCEPTED && calls.iter().any(is_request) {
        return Err(Rejection::LegacyTransport);
    }
    Ok(())
}

/// The upstream's answer as the client sees it: its session id wrapped for
/// this principal, and the stream slot (and open-stream gauge) held until
/// the body ends.
pub(super) fn wrap_answer(
    snap: &Snapshot,
    metrics: &Metrics,
    principal: &Principal,
    resp: Response<Body>,
    slot: StreamGuard,
) -> Response<Body> {
    let (mut head, body) = resp.into_parts();
    snap.sessions.wrap_response(principal, &mut head.headers);
    let gauge = forward::headers::is_event_stream(&head.headers)
        .then(|| StreamGauge::open(&metrics.open_streams));
    Response::from_parts(head, Guarded::new(body, (slot, gauge)).boxed())
}
