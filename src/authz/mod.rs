//! Stage 6: authorize each JSON-RPC call against the route's policy.
//!
//! `policy.rs` holds the rules compiled at load; `decide.rs` is the pure
//! decision. Nothing here does I/O or reads the request: inputs are the
//! verified scopes and the parsed calls, output is a [`Decision`].

pub mod audit;
pub mod decide;
pub mod policy;

pub use decide::{CallDecision, Decision, decide, decide_call};
pub use policy::{DenyMode, Policy, Unlisted};

/// Stage 8's predicate for list filtering: an entry is visible when the call
/// that would use it (`tools/call`, `prompts/get`, `resources/read`) would be
/// allowed for these scopes on this route.
pub fn list_visibility(
    route: std::sync::Arc<crate::config::Route>,
    granted: Vec<String>,
) -> crate::filter::Allow {
    use crate::filter::ListKind;
    use crate::jsonrpc::{RpcCall, Target};
    std::sync::Arc::new(move |kind: ListKind, key: &str| {
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
            ListKind::Resources | ListKind::ResourceTemplates => {
                match crate::jsonrpc::uri::canonical(key) {
                    Ok(uri) => ("resources/read", Target::Resource(uri)),
                    Err(_) => return false,
                }
            }
        };
        let call = RpcCall {
            method: Some(method.to_owned()),
            id: None,
            target,
            meta_version: None,
            raw_name: None,
        };
        decide_call(
            route.policy.as_ref(),
            &route.required_scopes,
            &granted,
            &call,
        )
        .allowed()
    })
}
