use std::collections::HashMap;

use super::*;
use crate::config::rules::{DenyMode, NameRules, Policy, ResourceRules, Unlisted};
use crate::jsonrpc::{Envelope, RpcCall, Target};

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn policy(unlisted: Unlisted) -> Policy {
    let pairs = |v: &[(&str, &[&str])]| {
        v.iter()
            .map(|(p, sc)| (p.to_string(), s(sc)))
            .collect::<Vec<_>>()
    };
    Policy {
        methods: HashMap::from([
            ("logging/setLevel".to_owned(), s(&["mcp:admin"])),
            ("tools/call".to_owned(), s(&["mcp:tools"])),
        ]),
        tools: NameRules::compile(pairs(&[
            ("echo", &[]),
            ("get_weather", &["weather:read"]),
            ("admin_*", &["mcp:admin"]),
        ]))
        .unwrap(),
        resources: ResourceRules::compile(pairs(&[
            ("file:///public/**", &[]),
            ("db://customers/{id}", &["crm:read"]),
        ]))
        .unwrap(),
        prompts: NameRules::compile(pairs(&[("summarize", &["mcp:prompts"])])).unwrap(),
        unlisted,
        unknown_methods: Unlisted::Allow,
        on_insufficient_scope: DenyMode::Challenge,
        filter_lists: true,
        pass_oversize_lists: false,
    }
}

fn call(method: &str, target: Target) -> RpcCall {
    RpcCall {
        method: Some(method.into()),
        id: Some(serde_json::json!(1)),
        target,
        meta_version: None,
        meta_traceparent: None,
        raw_name: None,
    }
}

#[test]
fn scopes_add_up_from_route_method_and_rule() {
    let p = policy(Unlisted::Deny);
    let d = decide_call(
        Some(&p),
        &s(&["base"]),
        &s(&["base", "mcp:tools"]),
        &call("tools/call", Target::Tool("get_weather".into())),
    );
    assert_eq!(d.required, s(&["base", "mcp:tools", "weather:read"]));
    assert_eq!(d.missing, s(&["weather:read"]));
    assert_eq!(d.rule.as_deref(), Some("get_weather"));
    assert!(!d.allowed());
    let d = decide_call(
        Some(&p),
        &s(&["base"]),
        &s(&["base", "mcp:tools", "weather:read"]),
        &call("tools/call", Target::Tool("get_weather".into())),
    );
    assert!(d.allowed());
}

#[test]
fn unlisted_targets_follow_the_policy() {
    let granted = s(&["mcp:tools"]);
    let nope = call("tools/call", Target::Tool("nope".into()));
    assert!(decide_call(Some(&policy(Unlisted::Deny)), &[], &granted, &nope).unlisted);
    assert!(decide_call(Some(&policy(Unlisted::Allow)), &[], &granted, &nope).allowed());
    let secret = call(
        "resources/read",
        Target::Resource("file:///private/x".into()),
    );
    assert!(!decide_call(Some(&policy(Unlisted::Deny)), &[], &granted, &secret).allowed());
}

#[test]
fn methods_without_rules_need_only_the_route_scopes() {
    let p = policy(Unlisted::Deny);
    let d = decide_call(
        Some(&p),
        &s(&["base"]),
        &s(&["base"]),
        &call("tools/list", Target::None),
    );
    assert!(d.allowed());
    let d = decide_call(
        Some(&p),
        &s(&["base"]),
        &s(&["base"]),
        &call("logging/setLevel", Target::None),
    );
    assert_eq!(d.missing, s(&["mcp:admin"]));
    // No policy at all: only the route's scopes.
    let d = decide_call(
        None,
        &s(&["base"]),
        &s(&["base"]),
        &call("tools/call", Target::Tool("anything".into())),
    );
    assert!(d.allowed());
}

#[test]
fn a_notification_cannot_smuggle_a_tool_call() {
    let p = policy(Unlisted::Deny);
    let mut c = call("tools/call", Target::Tool("admin_reset".into()));
    c.id = None;
    assert!(!decide_call(Some(&p), &[], &s(&["mcp:tools"]), &c).allowed());
}

#[test]
fn a_batch_is_refused_if_any_call_is_and_names_every_scope() {
    let p = policy(Unlisted::Deny);
    let env = Envelope::Batch(vec![
        call("tools/call", Target::Tool("echo".into())),
        call("tools/call", Target::Tool("admin_reset".into())),
        call("prompts/get", Target::Prompt("summarize".into())),
    ]);
    let (d, per_call) = decide(Some(&p), &[], &s(&["mcp:tools"]), &env);
    assert_eq!(
        d,
        Decision::Deny {
            index: 1,
            unlisted: false,
            required: s(&["mcp:admin", "mcp:prompts", "mcp:tools"])
        }
    );
    assert!(per_call[0].allowed());
    let (d, _) = decide(
        Some(&p),
        &[],
        &s(&["mcp:admin", "mcp:prompts", "mcp:tools"]),
        &env,
    );
    assert_eq!(d, Decision::Allow);
}

/// Property: whatever the granted scopes, a call is allowed exactly when every
/// required scope is granted and the target is listed (or unlisted is allowed).
#[test]
fn property_missing_scope_always_denies() {
    let p = policy(Unlisted::Deny);
    let universe = [
        "base",
        "mcp:tools",
        "mcp:admin",
        "weather:read",
        "crm:read",
        "mcp:prompts",
    ];
    let calls = [
        call("tools/call", Target::Tool("echo".into())),
        call("tools/call", Target::Tool("get_weather".into())),
        call("tools/call", Target::Tool("admin_delete".into())),
        call("tools/call", Target::Tool("unknown".into())),
        call(
            "resources/read",
            Target::Resource("db://customers/7".into()),
        ),
        call(
            "resources/read",
            Target::Resource("file:///public/a".into()),
        ),
        call("prompts/get", Target::Prompt("summarize".into())),
        call("logging/setLevel", Target::None),
    ];
    for mask in 0u32..(1 << universe.len()) {
        let mut granted: Vec<String> = universe
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, x)| x.to_string())
            .collect();
        granted.sort();
        for c in &calls {
            let d = decide_call(Some(&p), &s(&["base"]), &granted, c);
            let all_granted = d.required.iter().all(|r| granted.contains(r));
            assert_eq!(
                d.allowed(),
                all_granted && !d.unlisted,
                "{c:?} with {granted:?}"
            );
            assert!(d.required.contains(&"base".to_owned()));
        }
    }
}

#[test]
fn every_subscription_is_judged_as_resources_subscribe() {
    let mut p = policy(Unlisted::Deny);
    p.methods
        .insert("resources/subscribe".to_owned(), s(&["subs"]));
    let listen = |uris: &[&str]| {
        call(
            "subscriptions/listen",
            Target::Resources(uris.iter().map(|u| u.to_string()).collect()),
        )
    };
    let d = decide_call(
        Some(&p),
        &[],
        &s(&["subs"]),
        &listen(&["file:///public/a", "db://customers/7"]),
    );
    assert_eq!(d.required, s(&["crm:read", "subs"]));
    assert_eq!(d.missing, s(&["crm:read"]));
    assert!(!d.allowed());
    let d = decide_call(Some(&p), &[], &s(&["subs"]), &listen(&["file:///public/a"]));
    assert!(d.allowed());
    let d = decide_call(
        Some(&p),
        &[],
        &s(&["subs", "crm:read"]),
        &listen(&["file:///public/a", "file:///private/x"]),
    );
    assert!(d.unlisted, "one unlisted subscription refuses the call");
    let d = decide_call(Some(&p), &[], &s(&[]), &listen(&[]));
    assert!(d.allowed(), "no subscriptions, nothing to judge");
}

#[test]
fn unknown_methods_are_refused_only_when_the_policy_says_so() {
    let mut p = policy(Unlisted::Deny);
    let x = call("x/unknown", Target::None);
    assert!(
        decide_call(Some(&p), &[], &[], &x).allowed(),
        "default allow"
    );
    p.unknown_methods = Unlisted::Deny;
    let d = decide_call(Some(&p), &[], &[], &x);
    assert!(d.unlisted && !d.allowed());
    // MCP methods and methods the policy lists still pass.
    assert!(decide_call(Some(&p), &[], &[], &call("ping", Target::None)).allowed());
    assert!(
        decide_call(
            Some(&p),
            &[],
            &[],
            &call("notifications/cancelled", Target::None)
        )
        .allowed()
    );
    p.methods.insert("x/unknown".into(), vec![]);
    assert!(decide_call(Some(&p), &[], &[], &x).allowed());
    // A client's response to a server request has no method: unaffected.
    let response = RpcCall {
        method: None,
        id: Some(serde_json::json!(1)),
        target: Target::None,
        meta_version: None,
        meta_traceparent: None,
        raw_name: None,
    };
    assert!(decide_call(Some(&p), &[], &[], &response).allowed());
}

#[test]
fn a_uri_with_a_query_is_judged_with_and_without_it() {
    let pairs = |v: &[(&str, &[&str])]| {
        v.iter()
            .map(|(p, sc)| (p.to_string(), s(sc)))
            .collect::<Vec<_>>()
    };
    let mut p = policy(Unlisted::Deny);
    p.resources = ResourceRules::compile(pairs(&[
        ("db://customers/vip", &["crm:admin"]),
        ("db://customers/{id}", &["crm:read"]),
        ("db://customers/**", &["crm:read"]),
    ]))
    .unwrap();
    let read = |uri: &str| call("resources/read", Target::Resource(uri.into()));
    let d = decide_call(
        Some(&p),
        &[],
        &s(&["crm:read"]),
        &read("db://customers/vip?fields=x"),
    );
    assert_eq!(d.missing, s(&["crm:admin"]), "{d:?}");
    let d = decide_call(
        Some(&p),
        &[],
        &s(&["crm:read"]),
        &read("db://customers/7?fields=x"),
    );
    assert!(d.allowed(), "{d:?}");
    assert_eq!(
        d.rule.as_deref(),
        Some("db://customers/** db://customers/{id}")
    );
}
