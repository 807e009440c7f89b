use serde_json::json;

use super::*;

const LIMITS: ParseLimits = ParseLimits {
    max_depth: 32,
    max_batch: 16,
};

fn one(body: &str) -> RpcCall {
    match parse(body.as_bytes(), LIMITS).unwrap() {
        Envelope::Single(c) => c,
        Envelope::Batch(_) => panic!("expected a single message"),
    }
}

fn err(body: &str) -> JsonRpcError {
    parse(body.as_bytes(), LIMITS).unwrap_err()
}

#[test]
fn reads_targets_of_every_targeted_method() {
    let c = one(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"x":[1,{"y":2}]}}}"#,
    );
    assert_eq!(c.method(), "tools/call");
    assert_eq!(c.id, Some(json!(1)));
    assert_eq!(c.target, Target::Tool("echo".into()));
    for m in [
        "resources/read",
        "resources/subscribe",
        "resources/unsubscribe",
    ] {
        let c = one(&format!(
            r#"{{"jsonrpc":"2.0","id":"a","method":"{m}","params":{{"uri":"file:///x"}}}}"#
        ));
        assert_eq!(c.target, Target::Resource("file:///x".into()), "{m}");
    }
    let c = one(r#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"summarize"}}"#);
    assert_eq!(c.target, Target::Prompt("summarize".into()));
    let c = one(
        r#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"p"},"argument":{"name":"a","value":"b"}}}"#,
    );
    assert_eq!(c.target, Target::Prompt("p".into()));
    let c = one(
        r#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/resource","uri":"db://x/{id}"}}}"#,
    );
    assert_eq!(c.target, Target::Resource("db://x/{id}".into()));
    let c = one(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#);
    assert_eq!(c.target, Target::None);
}

#[test]
fn unicode_escapes_are_decoded_before_matching() {
    let c = one(
        r#"{"jsonrpc":"2.0","id":1,"m\u0065thod":"tools\u002fcall","params":{"n\u0061me":"admin\u005freset"}}"#,
    );
    assert_eq!(c.method(), "tools/call");
    assert_eq!(c.target, Target::Tool("admin_reset".into()));
}

#[test]
fn duplicate_keys_at_any_depth_are_refused() {
    for body in [
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"x"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ok","name":"admin"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ok","arguments":{"a":1,"a":2}}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools\/call","method":"ping","params":{"name":"x"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"ping","meth\u006fd":"tools/call"}"#,
    ] {
        assert!(
            matches!(err(body), JsonRpcError::Invalid(m) if m.contains("duplicate")),
            "{body}"
        );
    }
}

#[test]
fn not_json_rpc_is_refused() {
    for body in [
        "",
        "null",
        "42",
        "\u{feff}{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}",
        r#"{"id":1,"method":"ping"}"#,
        r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":7}"#,
        r#"{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}"#,
        r#"{"jsonrpc":"2.0","id":1}"#,
        r#"{"jsonrpc":"2.0","id":1,"result":{},"error":{}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"ping","result":{}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"ping"} trailing"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"ping""#,
        "[1]",
    ] {
        assert!(parse(body.as_bytes(), LIMITS).is_err(), "{body:?}");
    }
}

#[test]
fn targeted_methods_need_a_string_target() {
    assert!(matches!(
        err(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#),
        JsonRpcError::MissingTarget(..)
    ));
    assert!(matches!(
        err(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":["echo"]}}"#),
        JsonRpcError::MissingTarget(..)
    ));
    assert!(matches!(
        err(r#"{"jsonrpc":"2.0","id":1,"method":"resources/read"}"#),
        JsonRpcError::MissingTarget(..)
    ));
    assert!(matches!(
        err(
            r#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/other"}}}"#
        ),
        JsonRpcError::MissingTarget(..)
    ));
    let long = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{}"}}}}"#,
        "a".repeat(MAX_TARGET_LEN + 1)
    );
    assert_eq!(err(&long), JsonRpcError::TargetTooLong);
}

#[test]
fn notifications_responses_and_ids() {
    let c = one(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
    assert_eq!((c.id, c.target), (None, Target::None));
    let c = one(r#"{"jsonrpc":"2.0","id":"s-1","result":{"roots":[]}}"#);
    assert_eq!(c.method, None);
    let c = one(r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#);
    assert_eq!(c.id, Some(serde_json::Value::Null));
    let c = one(r#"{"jsonrpc":"2.0","id":1.5e3,"method":"ping"}"#);
    assert_eq!(c.id, Some(json!(1500.0)));
}

#[test]
fn batches_are_read_element_by_element_and_bounded() {
    let b = parse(
        br#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"b"}}]"#,
        LIMITS,
    )
    .unwrap();
    let targets: Vec<_> = b.calls().iter().map(|c| c.target.clone()).collect();
    assert_eq!(
        targets,
        vec![Target::Tool("a".into()), Target::Tool("b".into())]
    );
    assert_eq!(err("[]"), JsonRpcError::EmptyBatch);
    let big = format!(
        "[{}]",
        vec![r#"{"jsonrpc":"2.0","method":"ping","id":1}"#; 17].join(",")
    );
    assert!(matches!(err(&big), JsonRpcError::Invalid(m) if m.contains("batch")));
    // A duplicate inside any element refuses the whole batch.
    assert!(parse(br#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"id":3,"method":"ping"}]"#, LIMITS).is_err());
}

#[test]
fn deep_nesting_is_refused() {
    let deep = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"x","arguments":{}{}}}}}"#,
        "[".repeat(40),
        "]".repeat(40)
    );
    assert!(matches!(err(&deep), JsonRpcError::Invalid(m) if m.contains("nesting")));
}

#[test]
fn resource_uris_that_a_server_could_normalize_are_refused() {
    for uri in [
        "file:///public/../private/secret.txt",
        "file:///public/./x",
        "file:///public/..",
        "file:///public/%2e%2e/private",
        "file:///public%2fsecret",
        "file:///public\\..\\secret",
    ] {
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{{"uri":{}}}}}"#,
            serde_json::json!(uri)
        );
        assert!(matches!(err(&body), JsonRpcError::AmbiguousUri(_)), "{uri}");
    }
    let ok = one(
        r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///public/a..b/c.txt"}}"#,
    );
    assert_eq!(
        ok.target,
        Target::Resource("file:///public/a..b/c.txt".into())
    );
}

#[test]
fn resource_uris_are_judged_in_canonical_form() {
    for (uri, canonical) in [
        (
            "DEMO://resource/dynamic/text/1",
            "demo://resource/dynamic/text/1",
        ),
        ("file:///public/caf%C3%A9", "file:///public/café"),
    ] {
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{{"uri":{}}}}}"#,
            serde_json::json!(uri)
        );
        assert_eq!(
            one(&body).target,
            Target::Resource(canonical.into()),
            "{uri}"
        );
    }
    for uri in [
        "demo://resource/static/document/.\\t./.\\t./dynamic/text/1",
        " demo://resource/dynamic/text/1",
        "demo://resource/dynamic/text/1\\n",
        "db://customers/vi%70",
    ] {
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{{"uri":"{uri}"}}}}"#
        );
        assert!(matches!(err(&body), JsonRpcError::AmbiguousUri(_)), "{uri}");
    }
}

#[test]
fn names_and_methods_with_controls_or_edge_whitespace_are_refused() {
    for (method, name) in [
        ("tools/call\\u0000", "echo"),
        ("tools/call\\n", "echo"),
        ("tools/call ", "echo"),
        ("notifications/initialized\\u0000", "echo"),
        ("tools/call", "admin_reset\\u0000"),
        ("tools/call", " admin_reset"),
        ("tools/call", "admin_reset\\t"),
        ("tools/call", "admin\\u0085reset"),
        ("prompts/get", "admin\\r"),
    ] {
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{{"name":"{name}"}}}}"#
        );
        assert!(
            matches!(err(&body), JsonRpcError::AmbiguousName(_)),
            "{method:?} {name:?}"
        );
    }
}

#[test]
fn subscriptions_listen_names_its_resources() {
    let call = one(
        r#"{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":{"resourcesListChanged":true,"resourceSubscriptions":["file:///public/a","DEMO://x/y"]}}}"#,
    );
    assert_eq!(
        call.target,
        Target::Resources(vec!["file:///public/a".into(), "demo://x/y".into()])
    );
    let none = one(
        r#"{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":{"toolsListChanged":true}}}"#,
    );
    assert_eq!(none.target, Target::None);
    for bad in [
        r#"{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":{"resourceSubscriptions":"file:///x"}}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":{"resourceSubscriptions":[1]}}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":{"resourceSubscriptions":["file:///a/../b"]}}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":{"resourceSubscriptions":[],"resourceSubscriptions":[]}}}"#,
    ] {
        assert!(parse(bad.as_bytes(), LIMITS).is_err(), "{bad}");
    }
}

#[test]
fn meta_trace_context_is_read_and_bounded() {
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let c = one(&format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"echo","_meta":{{"traceparent":"{tp}","tracestate":"a=b"}}}}}}"#
    ));
    assert_eq!(c.meta_traceparent.as_deref(), Some(tp));
    let long = "0".repeat(129);
    let c = one(&format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"_meta":{{"traceparent":"{long}"}}}}}}"#
    ));
    assert_eq!(c.meta_traceparent, None, "longer than any traceparent");
    let c = one(r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_meta":{"traceparent":7}}}"#);
    assert_eq!(c.meta_traceparent, None);
    // Still strict: a duplicate key inside _meta is refused.
    err(
        r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_meta":{"traceparent":"a","traceparent":"b"}}}"#,
    );
}
