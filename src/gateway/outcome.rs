//! What the one log event per request records, and how it is written
//! (the event and its metrics themselves are telemetry/request.rs).

use std::sync::Arc;
use std::time::Instant;

use http::{Method, Response, StatusCode};

use super::Gateway;
use crate::authn::Principal;
use crate::body::Body;
use crate::config::Route;
use crate::jsonrpc::RpcCall;
use crate::reject::{self, Rejection};
use crate::telemetry::request::RequestEvent;

/// What is known about a request so far, for its log event.
pub(super) struct Outcome {
    pub(super) method: Method,
    pub(super) path: String,
    pub(super) started: Instant,
    pub(super) principal: Option<Arc<Principal>>,
    /// The authorized JSON-RPC calls of a POST.
    pub(super) calls: Vec<RpcCall>,
}

impl Outcome {
    /// A request that just arrived.
    pub(super) fn new(method: &Method, path: &str) -> Self {
        Self {
            method: method.clone(),
            path: path.to_owned(),
            started: Instant::now(),
            principal: None,
            calls: Vec::new(),
        }
    }

    /// The id of a single JSON-RPC request, for JSON-RPC-shaped refusals.
    pub(super) fn single_id(&self) -> Option<serde_json::Value> {
        match self.calls.as_slice() {
            [call] => call.id.clone(),
            _ => None,
        }
    }
}

impl Gateway {
    /// Logs and answers a rejection that happened before the proxy stages.
    pub(super) fn refuse(
        &self,
        outcome: &Outcome,
        route: Option<&Route>,
        rejection: Rejection,
    ) -> Response<Body> {
        let resp = reject::respond(&rejection, None);
        self.log(outcome, route, Some(&rejection), resp.status());
        resp
    }

    /// The one structured event per request, and its metrics.
    pub(super) fn log(
        &self,
        outcome: &Outcome,
        route: Option<&Route>,
        rejection: Option<&Rejection>,
        status: StatusCode,
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
            method: &outcome.method,
            path: &outcome.path,
            route: route.map(|r| r.path.as_str()),
            rpc_method,
            sub: principal.and_then(|p| p.subject.as_deref()),
            client_id: principal.and_then(|p| p.client_id.as_deref()),
            refusal,
            started: outcome.started,
            status,
        });
    }
}
