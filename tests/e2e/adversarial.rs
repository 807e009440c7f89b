//! The adversarial corpus (`tests/adversarial/cases.json`, written by
//! `generate.py` there): every case is sent to a real gateway process and must
//! get its expected status, and none may reach the upstream except the
//! positive controls, which prove the runner would notice if one did.

use std::io::{Read, Write};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

use crate::support::issuer::SigningKey;
use crate::support::upstream::{Behavior, Upstream};
use crate::support::{GatewayBuilder, TestIssuer, send};
use crate::{ISS, RESOURCE};

const ROUTE: &str = r#"
required_scopes: [mcp:tools]
policy:
  unknown_methods: deny
  methods: {logging/setLevel: [mcp:admin]}
  tools: {echo: [], "admin_*": [mcp:admin]}
  resources:
    - uri: "file:///public/**"
  prompts: {summarize: []}
"#;

struct Ctx {
    issuer: TestIssuer,
    attacker: SigningKey,
    token: String,
    token_admin: String,
}

fn now_plus(delta: i64) -> i64 {
    jsonwebtoken::get_current_timestamp() as i64 + delta
}

/// Worst-case bodies for each parser, built here rather than stored in
/// `cases.json` (they are megabytes): a `tools/call` of `echo` whose
/// `arguments` is the named shape, just under (or just over) the 4 MiB cap.
fn generated_body(kind: &str) -> String {
    const CAP: usize = 4 << 20;
    let arguments = match kind {
        "max_keys" => {
            let keys: Vec<String> = (0..(CAP - 1024) / 12)
                .map(|i| format!("\"{i:x}\":0"))
                .collect();
            format!("{{{}}}", keys.join(","))
        }
        "many_objects" => format!(
            "[{}]",
            vec![r#"{"a":1,"b":2}"#; (CAP - 1024) / 14].join(",")
        ),
        "max_depth" => format!("{}1{}", "[".repeat(60), "]".repeat(60)),
        "over_depth" => format!("{}1{}", "[".repeat(70), "]".repeat(70)),
        "escape_run" => format!("\"{}\"", "\\u0041".repeat((CAP - 1024) / 6)),
        "over_cap" => format!("\"{}\"", "a".repeat(CAP)),
        "duplicate_after_max_keys" => {
            let keys: Vec<String> = (0..(CAP - 1024) / 12)
                .map(|i| format!("\"{i:x}\":0"))
                .collect();
            format!("{{{},\"0\":1}}", keys.join(","))
        }
        other => panic!("unknown body_gen {other}"),
    };
    format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"echo","arguments":{arguments}}}}}"#
    )
}

/// `{{now+N}}` / `{{now-N}}` / `{{token}}` in text.
fn expand_text(text: &str, ctx: &Ctx) -> String {
    let mut out = text
        .replace("{{token_admin}}", &ctx.token_admin)
        .replace("{{token}}", &ctx.token);
    while let Some(start) = out.find("{{now") {
        let end = out[start..].find("}}").map(|e| start + e).unwrap();
        let delta: i64 = out[start + 5..end].parse().unwrap();
        out.replace_range(start..end + 2, &now_plus(delta).to_string());
    }
    out
}

/// A claim or header value from the corpus: placeholders become values.
fn expand_value(v: &Value, ctx: &Ctx) -> Value {
    match v.as_str() {
        Some("{{null}}") => Value::Null,
        Some("{{attacker_jwk}}") => serde_json::to_value(&ctx.attacker.jwk).unwrap(),
        Some(s) if s.starts_with("{{now") => json!(expand_text(s, ctx).parse::<i64>().unwrap()),
        _ => v.clone(),
    }
}

fn patch(base: &mut Value, with: Option<&Value>, ctx: &Ctx) {
    for (k, v) in with.and_then(Value::as_object).into_iter().flatten() {
        if v.is_null() {
            base.as_object_mut().unwrap().remove(k);
        } else {
            base[k] = expand_value(v, ctx);
        }
    }
}

/// Builds the token a case describes (see tests/adversarial/README.md).
fn build_token(spec: &Value, ctx: &Ctx) -> String {
    let alg = spec["alg"].as_str().unwrap_or("ES256");
    let attacker = spec["key"].as_str() == Some("attacker");
    let (header_alg, kid) = match alg {
        "RS256" | "PS256" => (alg, "r1"),
        "none" => ("none", "k1"),
        "HS256-public-ec" => ("HS256", "k1"),
        a if a.ends_with("-public") => (&a[..5], "r1"),
        _ if attacker => ("ES256", "attacker"),
        _ => ("ES256", "k1"),
    };
    let header = match spec["raw_header"].as_str() {
        Some(raw) => raw.to_owned(),
        None => {
            let mut h = json!({ "alg": header_alg, "typ": "at+jwt", "kid": kid });
            patch(&mut h, spec.get("header"), ctx);
            h.to_string()
        }
    };
    let payload = match spec["raw_payload"].as_str() {
        Some(raw) => expand_text(raw, ctx),
        None => {
            let mut c = ctx.issuer.claims(RESOURCE, "mcp:tools");
            patch(&mut c, spec.get("claims"), ctx);
            c.to_string()
        }
    };
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let sign = |key: &EncodingKey, alg: Algorithm| {
        jsonwebtoken::crypto::sign(input.as_bytes(), key, alg).unwrap()
    };
    let public_secret =
        |i: usize| EncodingKey::from_secret(&serde_json::to_vec(&ctx.issuer.keys[i].jwk).unwrap());
    let signature = match (spec["sig"].as_str(), alg) {
        (Some("empty"), _) => String::new(),
        (Some("copy-valid"), _) => ctx.token.rsplit('.').next().unwrap().to_owned(),
        (_, "none") => String::new(),
        (_, "RS256") => sign(&ctx.issuer.keys[1].key, Algorithm::RS256),
        (_, "PS256") => sign(&ctx.issuer.keys[1].key, Algorithm::PS256),
        (_, "HS256-public") => sign(&public_secret(1), Algorithm::HS256),
        (_, "HS384-public") => sign(&public_secret(1), Algorithm::HS384),
        (_, "HS512-public") => sign(&public_secret(1), Algorithm::HS512),
        (_, "HS256-public-ec") => sign(&public_secret(0), Algorithm::HS256),
        _ if attacker => sign(&ctx.attacker.key, Algorithm::ES256),
        _ => sign(&ctx.issuer.keys[0].key, Algorithm::ES256),
    };
    let signature = if spec["sig"].as_str() == Some("tampered") {
        let mut s = signature.into_bytes();
        let last = s.len() - 2;
        s[last] = if s[last] == b'A' { b'B' } else { b'A' };
        String::from_utf8(s).unwrap()
    } else {
        signature
    };
    format!("{input}.{signature}")
}

/// Sends raw bytes and returns the status of the first response.
fn send_raw(addr: std::net::SocketAddr, bytes: &[u8]) -> u16 {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = stream.write_all(bytes);
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    while !reply.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&reply);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

async fn send_h2(url: &str, headers: &[(String, String)], body: String) -> u16 {
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let mut req = http::Request::post(url);
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    client
        .request(req.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn the_adversarial_corpus_never_reaches_the_upstream() {
    let path = crate::support::repo_root().join("tests/adversarial/cases.json");
    let cases: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(cases.len() >= 150, "corpus shrank to {}", cases.len());

    let issuer = TestIssuer::new(ISS);
    let upstream = Upstream::start(Behavior::Json).await;
    let gw = GatewayBuilder::new()
        .issuer(&issuer)
        .route("/mcp", &upstream.url(), RESOURCE, ROUTE)
        .route(
            "/admin",
            &upstream.url(),
            "https://mcp.example.test/admin",
            "",
        )
        .extra("rate_limits:\n  unauthenticated_per_ip: 100000/s")
        .spawn();
    gw.wait_ready().await;
    let ctx = Ctx {
        token: issuer.token(RESOURCE, "mcp:tools"),
        token_admin: issuer.token(RESOURCE, "mcp:tools mcp:admin"),
        attacker: SigningKey::generate("attacker", Algorithm::ES256),
        issuer,
    };

    let mut failures = Vec::new();
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let expect = case["expect"].as_u64().unwrap() as u16;
        let before = upstream.count();
        let status = if let Some(raw) = case["raw"].as_str() {
            send_raw(gw.addr, expand_text(raw, &ctx).as_bytes())
        } else {
            let case_token = case
                .get("token")
                .map(|t| build_token(t, &ctx))
                .unwrap_or_default();
            let fill = |s: &str| expand_text(&s.replace("{{case_token}}", &case_token), &ctx);
            // `content_type`: absent = application/json, null = no header.
            let mut headers: Vec<(String, String)> = match case.get("content_type") {
                None => vec![("content-type".into(), "application/json".into())],
                Some(Value::Null) => vec![],
                Some(t) => vec![("content-type".into(), t.as_str().unwrap().into())],
            };
            if let Some(auth) = case["auth"].as_str() {
                headers.push(("authorization".into(), fill(auth)));
            }
            for pair in case["headers"].as_array().into_iter().flatten() {
                headers.push((
                    pair[0].as_str().unwrap().into(),
                    fill(pair[1].as_str().unwrap()),
                ));
            }
            let url = gw.url(&fill(case["path"].as_str().unwrap()));
            let body = match case["body_gen"].as_str() {
                Some(kind) => generated_body(kind),
                None => fill(case["body"].as_str().unwrap()),
            };
            if case["h2"].as_bool() == Some(true) {
                send_h2(&url, &headers, body).await
            } else {
                let refs: Vec<(&str, &str)> = headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                send(case["method"].as_str().unwrap(), &url, &refs, &body)
                    .await
                    .status
            }
        };
        tokio::time::sleep(Duration::from_millis(2)).await;
        let reached = upstream.count() - before;
        let should_reach = usize::from(case["upstream"].as_bool() == Some(true));
        if status != expect || reached != should_reach {
            failures.push(format!(
                "{name}: status {status} (expected {expect}), reached upstream {reached} time(s)"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    gw.sync_logs().await;
    assert!(!gw.logged(&ctx.token_admin), "a token was logged");
}
