use http::{HeaderMap, HeaderName, HeaderValue};

use super::*;
use crate::jsonrpc::{JsonRpcError, ParseLimits, parse};

const LIMITS: ParseLimits = ParseLimits {
    max_depth: 64,
    max_batch: 32,
};

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

/// A 2026-07-28 body: `_meta` carries the version.
fn modern(method: &str, params: &str) -> Envelope {
    let comma = if params.is_empty() { "" } else { "," };
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":7,"method":"{method}","params":{{"_meta":{{"{META_KEY}":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{{}}}}{comma}{params}}}}}"#
    );
    parse(body.as_bytes(), LIMITS).unwrap()
}

fn legacy(body: &str) -> Envelope {
    parse(body.as_bytes(), LIMITS).unwrap()
}

fn err(header: &'static str) -> Result<Version, HeaderMismatch> {
    Err(HeaderMismatch { header })
}

const V: (&str, &str) = ("mcp-protocol-version", "2026-07-28");

#[test]
fn the_version_comes_from_the_header_then_meta_then_the_default() {
    let ping = legacy(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#);
    assert_eq!(check(&headers(&[]), &ping).unwrap().as_str(), DEFAULT);
    let v = check(&headers(&[("mcp-protocol-version", "2025-06-18")]), &ping).unwrap();
    assert_eq!(v.as_str(), "2025-06-18");
    assert!(!v.is_modern());
    let list = modern("tools/list", "");
    let v = check(&headers(&[V, ("mcp-method", "tools/list")]), &list).unwrap();
    assert!(v.is_modern());
    // `_meta` says 2026-07-28 but the header is missing, or says otherwise.
    assert_eq!(
        check(&headers(&[("mcp-method", "tools/list")]), &list),
        err("MCP-Protocol-Version")
    );
    assert_eq!(
        check(
            &headers(&[
                ("mcp-protocol-version", "2025-11-25"),
                ("mcp-method", "tools/list")
            ]),
            &list
        ),
        Ok(Version("2025-11-25".into())),
        "an older header makes it an older request: the body is still what is judged"
    );
}

#[test]
fn a_modern_request_needs_its_mirror_headers() {
    let call = modern("tools/call", r#""name":"get_weather""#);
    let ok = [V, ("mcp-method", "tools/call"), ("mcp-name", "get_weather")];
    assert!(check(&headers(&ok), &call).unwrap().is_modern());
    assert_eq!(check(&headers(&[V]), &call), err("Mcp-Method"));
    assert_eq!(
        check(&headers(&[V, ("mcp-method", "tools/call")]), &call),
        err("Mcp-Name")
    );
    assert_eq!(
        check(
            &headers(&[V, ("mcp-method", "tools/list"), ("mcp-name", "get_weather")]),
            &call
        ),
        err("Mcp-Method")
    );
    assert_eq!(
        check(
            &headers(&[V, ("mcp-method", "Tools/call"), ("mcp-name", "get_weather")]),
            &call
        ),
        err("Mcp-Method"),
        "values compare exactly"
    );
    assert_eq!(
        check(
            &headers(&[V, ("mcp-method", "tools/call"), ("mcp-name", "echo")]),
            &call
        ),
        err("Mcp-Name")
    );
    for method in ["resources/read", "prompts/get"] {
        let (key, value) = if method == "resources/read" {
            ("uri", "file:///a")
        } else {
            ("name", "p")
        };
        let env = modern(method, &format!(r#""{key}":"{value}""#));
        assert_eq!(
            check(&headers(&[V, ("mcp-method", method)]), &env),
            err("Mcp-Name"),
            "{method}"
        );
        assert!(
            check(
                &headers(&[V, ("mcp-method", method), ("mcp-name", value)]),
                &env
            )
            .is_ok()
        );
    }
    // Methods that name nothing need only Mcp-Method.
    let listen = modern(
        "subscriptions/listen",
        r#""notifications":{"toolsListChanged":true}"#,
    );
    assert!(
        check(
            &headers(&[V, ("mcp-method", "subscriptions/listen")]),
            &listen
        )
        .is_ok()
    );
}

#[test]
fn names_compare_exactly_after_canonical_base64() {
    let call = modern("tools/call", r#""name":"wetter_münchen""#);
    let m = ("mcp-method", "tools/call");
    // "wetter_münchen" in canonical base64.
    assert!(
        check(
            &headers(&[V, m, ("mcp-name", "=?base64?d2V0dGVyX23DvG5jaGVu?=")]),
            &call
        )
        .is_ok()
    );
    for bad in [
        "=?base64?d2V0dGVyX23DvG5jaGVu?",
        "=?base64?d2V0dGVyX23DvG5jaGVu==?=",
        "=?base64?d2V0dGVyX23DvG5jaGVv?=",
        "=?base64?!!?=",
        "wetter_m",
    ] {
        assert_eq!(
            check(&headers(&[V, m, ("mcp-name", bad)]), &call),
            err("Mcp-Name"),
            "{bad}"
        );
    }
    // The body's own string, not its canonical form: a header that says
    // `DEMO://x` for a body `demo://x` disagrees.
    let read = modern("resources/read", r#""uri":"demo://x""#);
    let m = ("mcp-method", "resources/read");
    assert!(check(&headers(&[V, m, ("mcp-name", "demo://x")]), &read).is_ok());
    assert_eq!(
        check(&headers(&[V, m, ("mcp-name", "DEMO://x")]), &read),
        err("Mcp-Name")
    );
}

#[test]
fn repeated_routing_headers_and_modern_batches_are_mismatches() {
    let call = modern("tools/call", r#""name":"echo""#);
    for dup in ["mcp-protocol-version", "mcp-method", "mcp-name"] {
        let mut h = headers(&[V, ("mcp-method", "tools/call"), ("mcp-name", "echo")]);
        let value = h[dup].clone();
        h.append(HeaderName::from_bytes(dup.as_bytes()).unwrap(), value);
        assert!(check(&h, &call).is_err(), "{dup} twice");
    }
    let batch = legacy(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#);
    assert_eq!(
        check(&headers(&[V, ("mcp-method", "ping")]), &batch),
        err("Mcp-Method")
    );
    assert!(
        check(&headers(&[]), &batch).is_ok(),
        "an old batch needs no headers"
    );
}

#[test]
fn older_requests_are_judged_by_the_body_and_any_headers_must_agree() {
    let call = legacy(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#);
    assert!(check(&headers(&[]), &call).is_ok());
    assert!(
        check(
            &headers(&[("mcp-method", "tools/call"), ("mcp-name", "echo")]),
            &call
        )
        .is_ok()
    );
    assert_eq!(
        check(&headers(&[("mcp-name", "admin_reset")]), &call),
        err("Mcp-Name")
    );
    assert_eq!(
        check(&headers(&[("mcp-method", "tools/list")]), &call),
        err("Mcp-Method")
    );
    let response = legacy(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#);
    assert!(check(&headers(&[]), &response).is_ok());
    assert_eq!(
        check(&headers(&[("mcp-method", "x")]), &response),
        err("Mcp-Method")
    );
}

#[test]
fn methods_2026_removed_go_to_the_upstream_only_for_2026_requests() {
    let modern_subscribe = || modern("resources/subscribe", "");
    let mut env = modern_subscribe();
    let v = check(&headers(&[V, ("mcp-method", "resources/subscribe")]), &env).unwrap();
    env.resolve(&v).unwrap();
    assert_eq!(env.calls()[0].target, Target::None);

    let mut old = legacy(r#"{"jsonrpc":"2.0","id":1,"method":"resources/subscribe","params":{}}"#);
    let v = check(&headers(&[]), &old).unwrap();
    assert_eq!(
        old.resolve(&v),
        Err(JsonRpcError::MissingTarget(
            "resources/subscribe",
            "params.uri"
        ))
    );
    // With a URI, it is judged as always, whatever the version.
    let mut named = modern("resources/subscribe", r#""uri":"file:///private/x""#);
    let v = check(
        &headers(&[V, ("mcp-method", "resources/subscribe")]),
        &named,
    )
    .unwrap();
    named.resolve(&v).unwrap();
    assert_eq!(
        named.calls()[0].target,
        Target::Resource("file:///private/x".into())
    );
}
