//! Stage 6: authorize each JSON-RPC call against the route's policy.
//!
//! `policy.rs` holds the rules compiled at load; `decide.rs` is the pure
//! decision. Nothing here does I/O or reads the request: inputs are the
//! verified scopes and the parsed calls, output is a [`Decision`].

pub mod audit;
pub mod decide;

pub use crate::config::rules::{DenyMode, Policy, Unlisted};

use crate::authn::Principal;
use crate::config::Route;
use crate::jsonrpc::{Envelope, RpcCall};
pub use decide::{CallDecision, Decision, decide, decide_call};

/// A policy refusal, with what the response needs to say.
#[derive(Debug)]
pub struct Denied {
    /// How the route answers denials.
    pub mode: DenyMode,
    /// The first refused call.
    pub call: RpcCall,
    /// Whether it was refused for matching no rule (no scope can fix that).
    pub unlisted: bool,
    /// Every scope the body needs, sorted.
    pub required: Vec<String>,
    /// Ids of every request in the body, for JSON-RPC error answers.
    pub ids: Vec<serde_json::Value>,
}

impl Denied {
    /// `tools/call \`admin_reset\`` etc., for messages and logs.
    pub fn describe(&self) -> String {
        match self.call.target.name() {
            Some(name) => format!("{} `{}`", self.call.method(), name),
            None => self.call.method().to_owned(),
        }
    }
}

/// Stage 6: decides every call of `envelope`, writes one audit event per
/// call, and hands back the calls, or the denial to answer with.
pub fn authorize(
    route: &Route,
    principal: &Principal,
    envelope: Envelope,
) -> Result<Vec<RpcCall>, Box<Denied>> {
    let policy = route.policy.as_ref();
    let (decision, per_call) = decide(policy, &route.required_scopes, &principal.scopes, &envelope);
    for (call, d) in envelope.calls().iter().zip(&per_call) {
        audit::record(route, principal, call, d);
    }
    let mut calls = match envelope {
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
            // `decide` names a call of this body; the fallback is never taken.
            let call = if index < calls.len() {
                calls.swap_remove(index)
            } else {
                calls.pop().unwrap_or(RpcCall {
                    method: None,
                    id: None,
                    target: crate::jsonrpc::Target::None,
                    meta_version: None,
                    meta_traceparent: None,
                    raw_name: None,
                })
            };
            Err(Box::new(Denied {
                mode: policy.map_or(DenyMode::Challenge, |p| p.on_insufficient_scope),
                call,
                unlisted,
                required,
                ids,
            }))
        }
    }
}
