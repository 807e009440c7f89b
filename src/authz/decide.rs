//! Stage 6b: the pure decision. (`Policy`, granted scopes, `RpcCall`) → `Decision`.
//!
//! The scopes an operation needs are the union of the route's
//! `required_scopes`, the method's scopes, and the matched tool/resource/prompt
//! rule's scopes. A call passes only if every one is granted. The rule is
//! chosen from the call's method and target whether or not the message has an
//! `id`, so a "notification" cannot smuggle a `tools/call` past a rule.

use crate::jsonrpc::{Envelope, RpcCall, Target};
use crate::mcp::KNOWN_METHODS;

use crate::config::rules::{Policy, ResourceRules, Rule, Unlisted};

/// The verdict for one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallDecision {
    /// Every scope the call needs, sorted and deduplicated.
    pub required: Vec<String>,
    /// Required scopes the caller lacks, sorted.
    pub missing: Vec<String>,
    /// The target matched no rule and the policy denies unlisted targets.
    pub unlisted: bool,
    /// The pattern of the rule that matched the target, if any.
    pub rule: Option<String>,
}

/// The verdict for a whole body (one call or a batch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Every call may pass.
    Allow,
    /// At least one call may not; the whole body is refused.
    Deny {
        /// Index of the first refused call.
        index: usize,
        /// Whether any refused call was an unlisted target (not fixable by scopes).
        unlisted: bool,
        /// Every scope the body needs (union over the calls), sorted.
        required: Vec<String>,
    },
}

impl CallDecision {
    /// Whether the call may pass.
    pub fn allowed(&self) -> bool {
        !self.unlisted && self.missing.is_empty()
    }
}

/// Decides one call. `granted` must be sorted (as in `Principal::scopes`).
pub fn decide_call(
    policy: Option<&Policy>,
    base: &[String],
    granted: &[String],
    call: &RpcCall,
) -> CallDecision {
    let mut required: Vec<String> = base.to_vec();
    // Settled before authorization (`Envelope::resolve`); refused if not.
    let mut unlisted = matches!(call.target, Target::Missing(..));
    let mut rule = None;
    if let Some(policy) = policy {
        match call.method.as_deref().map(|m| (m, policy.methods.get(m))) {
            Some((_, Some(method_scopes))) => required.extend(method_scopes.iter().cloned()),
            // Neither an MCP method nor listed: refused like an unlisted
            // target when the policy says so (no scope can fix it).
            Some((m, None))
                if policy.unknown_methods == Unlisted::Deny && !KNOWN_METHODS.contains(&m) =>
            {
                unlisted = true;
            }
            _ => {}
        }
        let matched: Vec<Option<&Rule>> = match &call.target {
            Target::None | Target::Missing(..) => vec![],
            Target::Tool(name) => vec![policy.tools.find(name)],
            Target::Prompt(name) => vec![policy.prompts.find(name)],
            Target::Resource(uri) => resource_rules(&policy.resources, uri),
            // Each subscription is judged as its own `resources/subscribe`.
            Target::Resources(uris) => {
                let subscribe = policy.methods.get("resources/subscribe");
                if let Some(s) = subscribe.filter(|_| !uris.is_empty()) {
                    required.extend(s.iter().cloned());
                }
                uris.iter()
                    .flat_map(|u| resource_rules(&policy.resources, u))
                    .collect()
            }
        };
        let mut rules = Vec::new();
        for found in matched {
            match found {
                Some(r) => {
                    required.extend(r.scopes.iter().cloned());
                    rules.push(r.pattern.as_str());
                }
                None => unlisted |= policy.unlisted == Unlisted::Deny,
            }
        }
        rules.dedup();
        if !rules.is_empty() {
            rule = Some(rules.join(" "));
        }
    }
    required.sort_unstable();
    required.dedup();
    let missing = required
        .iter()
        .filter(|s| granted.binary_search(s).is_err())
        .cloned()
        .collect();
    CallDecision {
        required,
        missing,
        unlisted,
        rule,
    }
}

/// The rules a resource URI must satisfy: its own, and, when it has a query,
/// that of the URI without it, since a template server (`{id}{?q}`) may act
/// on the part before `?` alone.
fn resource_rules<'p>(rules: &'p ResourceRules, uri: &str) -> Vec<Option<&'p Rule>> {
    let mut out = vec![rules.find(uri)];
    if let Some(base) = crate::uri::without_query(uri) {
        out.push(rules.find(base));
    }
    out
}

/// Decides a whole body: all calls must pass, or the body is refused.
pub fn decide(
    policy: Option<&Policy>,
    base: &[String],
    granted: &[String],
    envelope: &Envelope,
) -> (Decision, Vec<CallDecision>) {
    let decisions: Vec<CallDecision> = envelope
        .calls()
        .iter()
        .map(|c| decide_call(policy, base, granted, c))
        .collect();
    let Some(index) = decisions.iter().position(|d| !d.allowed()) else {
        return (Decision::Allow, decisions);
    };
    let mut required: Vec<String> = decisions
        .iter()
        .flat_map(|d| d.required.iter().cloned())
        .collect();
    required.sort_unstable();
    required.dedup();
    let unlisted = decisions.iter().any(|d| d.unlisted);
    (
        Decision::Deny {
            index,
            unlisted,
            required,
        },
        decisions,
    )
}

#[cfg(test)]
mod tests;
