//! Config, phase two for `routes[].policy`: raw rules → compiled [`Policy`],
//! with every bad pattern or scope reported at its YAML path, and rules that
//! can never match reported as warnings.

use std::collections::HashMap;

use super::file::{RawDenyMode, RawPolicy, RawUnlisted};
use super::rules::{DenyMode, Policy, Unlisted};
use super::validate::{Report, is_scope_token};
use crate::config::rules::{NameRules, ResourceRules, is_conforming_name_glob};
use crate::mcp::KNOWN_METHODS;

/// Compiles a route's policy; `None` when it has errors (already reported).
pub(super) fn compile(raw: RawPolicy, path: &str, report: &mut Report) -> Option<Policy> {
    let mut ok = true;
    let mut scopes = |where_: String, list: &[String], report: &mut Report| {
        for (j, s) in list.iter().enumerate() {
            if !is_scope_token(s) {
                report.error(
                    format!("{where_}[{j}]"),
                    "a scope is visible ASCII without spaces, `\"` or `\\`",
                );
                ok = false;
            }
        }
    };

    for (method, list) in &raw.methods {
        scopes(format!("{path}.methods.{method}"), list, report);
        if !KNOWN_METHODS.contains(&method.as_str()) {
            report.warn(
                format!("{path}.methods.{method}"),
                "not an MCP method this gateway knows; check the spelling",
            );
        }
    }
    for (name, list) in &raw.tools {
        scopes(format!("{path}.tools.{name}"), list, report);
        if !is_conforming_name_glob(name) {
            report.warn(
                format!("{path}.tools.{name}"),
                "can never match a spec-conforming tool name (1-128 of A-Z a-z 0-9 _ - .)",
            );
        }
    }
    for (name, list) in &raw.prompts {
        scopes(format!("{path}.prompts.{name}"), list, report);
    }
    for (i, rule) in raw.resources.iter().enumerate() {
        scopes(
            format!("{path}.resources[{i}].scopes"),
            &rule.scopes,
            report,
        );
    }
    // Requests are judged in canonical form (jsonrpc/uri.rs); a pattern in
    // another form would silently never match.
    for (i, rule) in raw.resources.iter().enumerate() {
        if let Some(problem) = crate::uri::pattern_problem(&rule.uri) {
            report.error(
                format!("{path}.resources[{i}].uri"),
                format!("not in the canonical form requests are matched in: {problem}"),
            );
            ok = false;
        }
    }

    let tools = NameRules::compile(raw.tools.into_iter().collect()).map_err(|errors| {
        for (pattern, e) in errors {
            report.error(format!("{path}.tools.{pattern}"), format!("bad glob: {e}"));
        }
    });
    let prompts = NameRules::compile(raw.prompts.into_iter().collect()).map_err(|errors| {
        for (pattern, e) in errors {
            report.error(
                format!("{path}.prompts.{pattern}"),
                format!("bad glob: {e}"),
            );
        }
    });
    let resources = ResourceRules::compile(
        raw.resources
            .into_iter()
            .map(|r| (r.uri, r.scopes))
            .collect(),
    )
    .map_err(|errors| {
        for (i, e) in errors {
            report.error(
                format!("{path}.resources[{i}].uri"),
                format!("bad pattern: {e}"),
            );
        }
    });
    if let Ok(resources) = &resources {
        for i in resources.shadowed() {
            report.warn(
                format!("{path}.resources[{i}]"),
                "can never match: an earlier rule matches every URI this one does (first match wins)",
            );
        }
        for (i, earlier) in resources.overlapped() {
            report.warn(
                format!("{path}.resources[{i}]"),
                format!(
                    "partly shadowed: resources[{earlier}] comes first and also matches some of its URIs \
                     (first match wins; put the narrower rule first)"
                ),
            );
        }
    }
    let (Ok(tools), Ok(prompts), Ok(resources), true) = (tools, prompts, resources, ok) else {
        return None;
    };
    Some(Policy {
        methods: raw.methods.into_iter().collect::<HashMap<_, _>>(),
        tools,
        resources,
        prompts,
        unlisted: match raw.unlisted {
            None | Some(RawUnlisted::Deny) => Unlisted::Deny,
            Some(RawUnlisted::Allow) => Unlisted::Allow,
        },
        // `allow` by default, for compatibility; docs recommend `deny`.
        unknown_methods: match raw.unknown_methods {
            None | Some(RawUnlisted::Allow) => Unlisted::Allow,
            Some(RawUnlisted::Deny) => Unlisted::Deny,
        },
        on_insufficient_scope: match raw.on_insufficient_scope {
            None | Some(RawDenyMode::Challenge) => DenyMode::Challenge,
            Some(RawDenyMode::JsonrpcError) => DenyMode::JsonRpcError,
        },
        filter_lists: raw.filter_lists.unwrap_or(true),
        pass_oversize_lists: raw.pass_oversize_lists.unwrap_or(false),
    })
}
