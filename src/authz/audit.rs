//! Stage 6c: the audit trail. One structured event per authorization
//! decision (target `mcp_auth_gateway::audit`): route, caller, method, target,
//! matched rule, verdict and missing scopes. Never arguments, never tokens.

use super::CallDecision;
use crate::authn::Principal;
use crate::config::Route;
use crate::jsonrpc::{RpcCall, Target};

/// One audit event per authorization decision. Never logs arguments or tokens.
pub fn record(route: &Route, principal: &Principal, call: &RpcCall, d: &CallDecision) {
    // Several subscriptions are logged as one JSON array, so a URI with a
    // space cannot be mistaken for two.
    let subscriptions;
    let (tool, resource, prompt) = match &call.target {
        Target::Tool(n) => (Some(n.as_str()), None, None),
        Target::Resource(u) => (None, Some(u.as_str()), None),
        Target::Prompt(n) => (None, None, Some(n.as_str())),
        Target::Resources(us) => {
            subscriptions = serde_json::to_string(us).unwrap_or_default();
            (None, Some(subscriptions.as_str()), None)
        }
        Target::None | Target::Missing(..) => (None, None, None),
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
