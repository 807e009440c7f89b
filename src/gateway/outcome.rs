//! What the one log event per request records, and how it is written
//! (the event and its metrics themselves are telemetry/request.rs).

use std::sync::Arc;
use std::time::Instant;

use http::{Method, Response, StatusCode};

use super::Gateway;
use crate::authn::Principal;
use crate::body::Body;
use crate::config::Route;
use crate::jsonrpc::{RpcCall, Target};
use crate::reject::{self, Rejection};
use crate::telemetry::request::RequestEvent;
use crate::telemetry::spans;
use crate::telemetry::traces::DECISION;

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
        let refusal = rejection.map(|r| (decision(r), r.reason()));
        if spans::enabled() {
            trace_request(outcome, rejection, status);
        }
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

/// The authorize stage's verdict on its span: `mcp_gateway.decision`
/// (`allow`, `deny`, `reject`), and for a policy denial the scopes the body
/// needs and the ones the caller lacks (never the arguments).
pub(super) fn trace_decision(
    span: &tracing::Span,
    principal: &Principal,
    refused: Option<&Rejection>,
) {
    if !spans::enabled() {
        return;
    }
    let Some(rejection) = refused else {
        spans::attribute(span, DECISION, "allow");
        return;
    };
    spans::attribute(span, DECISION, decision(rejection));
    spans::attribute(span, "mcp_gateway.reason", rejection.reason());
    let required = match rejection {
        Rejection::Denied(d) => {
            spans::attribute(span, "mcp_gateway.unlisted", d.unlisted);
            d.required.clone()
        }
        Rejection::InsufficientScope { required, .. } => required.clone(),
        _ => return,
    };
    let missing: Vec<&str> = required
        .iter()
        .filter(|s| !principal.scopes.iter().any(|g| g == *s))
        .map(String::as_str)
        .collect();
    spans::attribute(span, "mcp_gateway.required_scopes", required.join(" "));
    spans::attribute(span, "mcp_gateway.missing_scopes", missing.join(" "));
}

/// `deny` for policy and scope refusals, `reject` for everything else.
fn decision(rejection: &Rejection) -> &'static str {
    match rejection {
        Rejection::Denied(_) | Rejection::InsufficientScope { .. } => "deny",
        _ => "reject",
    }
}

/// The request's span (the current one): its MCP attributes (for one call;
/// a batch is `mcp.method.name` = `batch`), its status and decision.
fn trace_request(outcome: &Outcome, rejection: Option<&Rejection>, status: StatusCode) {
    let span = tracing::Span::current();
    let call = match (outcome.calls.as_slice(), rejection) {
        ([one], _) => Some(one),
        ([], Some(Rejection::Denied(d))) => Some(&d.call),
        _ => None,
    };
    if let Some(call) = call {
        spans::attribute(&span, "mcp.method.name", call.method().to_owned());
        if let Some(id) = &call.id {
            let id = id.as_str().map_or_else(|| id.to_string(), str::to_owned);
            spans::attribute(&span, "jsonrpc.request.id", id);
        }
        match &call.target {
            Target::Tool(name) => {
                spans::attribute(&span, "gen_ai.operation.name", "execute_tool");
                spans::attribute(&span, "gen_ai.tool.name", name.clone());
            }
            Target::Prompt(name) => spans::attribute(&span, "gen_ai.prompt.name", name.clone()),
            Target::Resource(uri) => {
                // Without its query, which may carry what the operator did not mean to export.
                let uri = uri.split(['?', '#']).next().unwrap_or_default();
                spans::attribute(&span, "mcp.resource.uri", uri.to_owned());
            }
            _ => {}
        }
        if let Some(version) = &call.meta_version {
            spans::attribute(&span, "mcp.protocol.version", version.clone());
        }
        if let Some(traceparent) = &call.meta_traceparent {
            spans::link_meta(&span, traceparent);
        }
    } else if outcome.calls.len() > 1 {
        spans::attribute(&span, "mcp.method.name", "batch");
    }
    spans::attribute(&span, DECISION, rejection.map_or("allow", decision));
    spans::status(&span, status);
}
