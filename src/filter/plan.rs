//! Stage 8, before forwarding: which requests get their answer filtered, and
//! which cannot be filtered and are refused up front.
//!
//! Decided from the authorized calls, so nothing is forwarded that stage 8
//! could not vouch for.

use std::sync::Arc;

use super::{ListFilter, ListKind};
use crate::authz;
use crate::config::Route;
use crate::jsonrpc::{JsonRpcError, RpcCall};

impl ListFilter {
    /// The filter for a single `*/list` call on a route that filters lists,
    /// for a caller holding `granted`.
    pub fn for_calls(
        route: &Arc<Route>,
        calls: &[RpcCall],
        granted: &[String],
        max_event_bytes: usize,
    ) -> Option<Self> {
        let pass_oversize = route
            .policy
            .as_ref()
            .filter(|p| p.filter_lists)?
            .pass_oversize_lists;
        let [call] = calls else {
            return None;
        };
        let kind = ListKind::from_method(call.method())?;
        // A list notification gets no answer from a conforming server; if one
        // comes anyway, it is filtered like any other.
        let id = call.id.clone().unwrap_or(serde_json::Value::Null);
        let allow = authz::list_visibility(route.clone(), granted.to_vec());
        Some(Self {
            id,
            kind,
            allow,
            max_event_bytes,
            pass_oversize,
        })
    }
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
