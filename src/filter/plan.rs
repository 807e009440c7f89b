//! Stage 8, before forwarding: which requests get their answer filtered, and
//! which cannot be filtered and are refused up front.
//!
//! Decided from the authorized calls, so nothing is forwarded that stage 8
//! could not vouch for.

use std::sync::Arc;

use http::Method;
use serde_json::Value;

use super::{Allow, ListFilter, ListKind};
use crate::authz;
use crate::config::Route;
use crate::jsonrpc::{JsonRpcError, RpcCall};

impl ListFilter {
    /// The filter for a response on `route` to `method` carrying `calls`, for
    /// a caller holding `granted`; `None` when the response needs none.
    ///
    /// On a route that filters lists, every POST answer and every GET stream:
    /// - a list answer, obviously;
    /// - any other POST answer too, because upstreams route answers by
    ///   JSON-RPC `id` (the TS SDK by `id`, the Python SDK by `str(id)`): a
    ///   `ping` sent with the `id` of an in-flight `tools/list` on the same
    ///   session can receive that list on its own stream;
    /// - a GET stream, because an upstream with an event store replays
    ///   earlier answers, lists included, on a GET with `Last-Event-ID`.
    ///
    /// On any other route, a GET stream is watched for the legacy HTTP+SSE
    /// transport only (`allow: None`).
    pub fn for_request(
        route: &Arc<Route>,
        method: &Method,
        calls: &[RpcCall],
        granted: &[String],
        max_event_bytes: usize,
    ) -> Option<Self> {
        let filtering = route.policy.as_ref().filter(|p| p.filter_lists);
        let allow = || Some(list_visibility(route.clone(), granted.to_vec()));
        match (filtering, calls) {
            (None, _) if *method == Method::GET => Some(Self {
                id: Value::Null,
                kind: None,
                allow: None,
                max_event_bytes,
                pass_oversize: true,
            }),
            (None, _) => None,
            (Some(policy), _) if *method == Method::GET => Some(Self {
                id: Value::Null,
                kind: None,
                allow: allow(),
                max_event_bytes,
                pass_oversize: policy.pass_oversize_lists,
            }),
            (Some(policy), _) if *method == Method::POST => {
                let (id, kind) = match calls {
                    // A list notification gets no answer from a conforming
                    // server; if one comes anyway, it is filtered like any other.
                    [call] => (
                        call.id.clone().unwrap_or(Value::Null),
                        ListKind::from_method(call.method()),
                    ),
                    _ => (Value::Null, None),
                };
                Some(Self {
                    id,
                    kind,
                    allow: allow(),
                    max_event_bytes,
                    pass_oversize: policy.pass_oversize_lists,
                })
            }
            (Some(_), _) => None,
        }
    }
}

/// Stage 8's predicate for list filtering: an entry is visible when the call
/// that would use it (`tools/call`, `prompts/get`, `resources/read`) would be
/// allowed for these scopes on this route.
pub fn list_visibility(route: Arc<Route>, granted: Vec<String>) -> Allow {
    use crate::jsonrpc::{RpcCall, Target};
    Arc::new(move |kind: ListKind, key: &str| {
        // A name the gateway would refuse to call (control characters, edge
        // whitespace) is not shown either.
        let callable = !key.chars().any(char::is_control)
            && !key.starts_with(char::is_whitespace)
            && !key.ends_with(char::is_whitespace);
        let (method, target) = match kind {
            ListKind::Tools | ListKind::Prompts if !callable => return false,
            ListKind::Tools => ("tools/call", Target::Tool(key.to_owned())),
            ListKind::Prompts => ("prompts/get", Target::Prompt(key.to_owned())),
            // Judged in the form a `resources/read` of it would be; an entry
            // that could not be read through the gateway is not shown.
            ListKind::Resources | ListKind::ResourceTemplates => match crate::uri::canonical(key) {
                Ok(uri) => ("resources/read", Target::Resource(uri)),
                Err(_) => return false,
            },
        };
        let call = RpcCall {
            method: Some(method.to_owned()),
            id: None,
            target,
            meta_version: None,
            meta_traceparent: None,
            raw_name: None,
        };
        authz::decide_call(
            route.policy.as_ref(),
            &route.required_scopes,
            &granted,
            &call,
        )
        .allowed()
    })
}

/// A list call in a batch, on a route that filters lists, is refused: the
/// filter answers one list request, not an array of answers, and batches
/// left MCP in 2025-06-18.
pub fn refuse_batched_lists(route: &Route, calls: &[RpcCall]) -> Result<(), JsonRpcError> {
    let filters = route.policy.as_ref().is_some_and(|p| p.filter_lists);
    if !filters || calls.len() < 2 {
        return Ok(());
    }
    match calls
        .iter()
        .find(|c| ListKind::from_method(c.method()).is_some())
    {
        Some(call) => Err(JsonRpcError::BatchedList(call.method().to_owned())),
        None => Ok(()),
    }
}
