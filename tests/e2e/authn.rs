//! Bearer token validation: every 401 shape, key rotation, and failing closed
//! when keys are unavailable. The upstream records what reaches it, so each
//! test also proves that refused requests never got there.

use std::time::Duration;

use jsonwebtoken::{Algorithm, Header};
use serde_json::json;

use crate::support::issuer::{hs256_confusion, unsigned};
use crate::support::upstream::{Behavior, Upstream};
use crate::support::{GatewayBuilder, TestIssuer, send};
use crate::{ISS, PRM_URL, RESOURCE};

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;

async fn setup() -> (TestIssuer, Upstream, crate::support::Gateway) {
    let (issuer, upstream, gw) =
        crate::support::start(Behavior::Json, "audiences: [legacy-api-id]", "").await;
    (issuer, upstream, gw)
}

async fn post(gw: &crate::support::Gateway, auth: Option<&str>) -> crate::support::Reply {
    let mut headers = vec![("content-type", "application/json")];
    let value;
    if let Some(a) = auth {
        value = a.to_owned();
        headers.push(("authorization", &value));
    }
    send("POST", &gw.url("/mcp"), &headers, INIT).await
}

#[tokio::test]
async fn missing_token_gets_a_challenge_without_error_code() {
    let (_issuer, upstream, gw) = setup().await;
    let r = post(&gw, None).await.assert_status(401, &[]);
    assert_eq!(
        r.header("www-authenticate"),
        format!("Bearer resource_metadata=\"{PRM_URL}\"")
    );
    assert_eq!(r.json()["error"], "invalid_request");
    // Another scheme is "no bearer credentials" too (RFC 6750 §3.1).
    let r = post(&gw, Some("Basic dXNlcjpwYXNz"))
        .await
        .assert_status(401, &[]);
    assert!(!r.header("www-authenticate").contains("error="));
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn every_bad_token_gets_401_invalid_token_and_never_reaches_upstream() {
    let (issuer, upstream, gw) = setup().await;
    let now = jsonwebtoken::get_current_timestamp();
    let good = issuer.claims(RESOURCE, "");
    let with = |patch: serde_json::Value| {
        let mut c = good.clone();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    };
    let mut unknown_kid = Header::new(Algorithm::ES256);
    unknown_kid.kid = Some("never-published".into());
    let other = TestIssuer::new(ISS);
    let good_token = issuer.sign(&good);
    let (head, rest) = good_token.split_once('.').unwrap();
    let (payload, _sig) = rest.split_once('.').unwrap();
    let tampered = format!(
        "{head}.{}.{}",
        crate::support::issuer::b64(with(json!({"sub": "mallory"})).to_string().as_bytes()),
        _sig
    );

    let cases: Vec<(&str, String)> = vec![
        ("malformed", "Bearer not-a-jwt".into()),
        ("two segments", format!("Bearer {head}.{payload}")),
        (
            "expired",
            format!("Bearer {}", issuer.sign(&with(json!({"exp": now - 3600})))),
        ),
        (
            "not yet valid",
            format!("Bearer {}", issuer.sign(&with(json!({"nbf": now + 3600})))),
        ),
        (
            "issued in the future",
            format!("Bearer {}", issuer.sign(&with(json!({"iat": now + 3600})))),
        ),
        (
            "wrong audience",
            format!(
                "Bearer {}",
                issuer.sign(&with(json!({"aud": "https://other.example.test/mcp"})))
            ),
        ),
        (
            "no audience",
            format!("Bearer {}", issuer.sign(&with(json!({"aud": null})))),
        ),
        (
            "wrong issuer",
            format!(
                "Bearer {}",
                issuer.sign(&with(json!({"iss": "https://evil.example.test"})))
            ),
        ),
        (
            "issuer with trailing slash",
            format!(
                "Bearer {}",
                issuer.sign(&with(json!({"iss": format!("{ISS}/")})))
            ),
        ),
        (
            "no exp",
            format!("Bearer {}", issuer.sign(&with(json!({"exp": null})))),
        ),
        (
            "bad signature (other key, same kid)",
            format!("Bearer {}", other.sign(&good)),
        ),
        ("tampered payload", format!("Bearer {tampered}")),
        ("alg none", format!("Bearer {}", unsigned(&good))),
        (
            "HS256 with the RSA public key",
            format!("Bearer {}", hs256_confusion(&issuer, &good)),
        ),
        (
            "unknown kid",
            format!("Bearer {}", issuer.sign_header(&unknown_kid, &good)),
        ),
    ];
    for (name, auth) in &cases {
        let r = post(&gw, Some(auth)).await;
        assert_eq!(r.status, 401, "{name}: {}", r.text());
        assert_eq!(
            r.header("www-authenticate"),
            format!("Bearer error=\"invalid_token\", resource_metadata=\"{PRM_URL}\""),
            "{name}"
        );
        assert_eq!(r.json()["error"], "invalid_token", "{name}");
        assert!(
            !r.text().contains(auth.trim_start_matches("Bearer ")),
            "{name}: body echoes the token"
        );
    }
    assert_eq!(
        upstream.count(),
        0,
        "a refused request reached the upstream"
    );

    // The same claims, correctly signed, pass; so does an extra configured audience
    // and an `aud` array that contains the resource.
    for token in [
        good_token.clone(),
        issuer.sign(&with(json!({"aud": "legacy-api-id"}))),
        issuer.sign(&with(
            json!({"aud": ["https://other.example.test", RESOURCE]}),
        )),
        issuer.sign_with(&issuer.keys[1], &good),
    ] {
        post(&gw, Some(&format!("Bearer {token}")))
            .await
            .assert_status(200, &[]);
    }
    assert_eq!(upstream.count(), 4);
    gw.sync_logs().await;
    assert!(!gw.logged(&good_token), "a token was logged");
}

#[tokio::test]
async fn query_tokens_and_duplicate_headers_are_bad_requests() {
    let (issuer, upstream, gw) = setup().await;
    let token = issuer.token(RESOURCE, "");
    let auth = format!("Bearer {token}");
    let r = gw
        .post(&format!("/mcp?access_token={token}"), &auth, INIT)
        .await
        .assert_status(400, &[]);
    assert!(
        r.header("www-authenticate")
            .starts_with("Bearer error=\"invalid_request\"")
    );
    send(
        "POST",
        &gw.url("/mcp"),
        &[("authorization", &auth), ("authorization", &auth)],
        INIT,
    )
    .await
    .assert_status(400, &[]);
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn rotated_keys_are_picked_up_without_restart() {
    let (mut issuer, upstream, gw) = setup().await;
    let claims = issuer.claims(RESOURCE, "");
    let new_key = issuer.rotate("k2");
    let mut header = Header::new(Algorithm::ES256);
    header.typ = Some("at+jwt".into());
    header.kid = Some(new_key.kid.clone());
    let token = jsonwebtoken::encode(&header, &claims, &new_key.key).unwrap();
    post(&gw, Some(&format!("Bearer {token}")))
        .await
        .assert_status(200, &[]);
    assert_eq!(upstream.count(), 1);
    gw.wait_for_log("JWKS refetched for unknown kid").await;
}

#[tokio::test]
async fn route_scopes_are_required_and_advertised() {
    let (issuer, upstream, gw) = crate::support::start(
        Behavior::Json,
        "required_scopes: [mcp:tools, mcp:basic]",
        "",
    )
    .await;
    let r = post(&gw, None).await;
    assert_eq!(
        r.header("www-authenticate"),
        format!("Bearer scope=\"mcp:tools mcp:basic\", resource_metadata=\"{PRM_URL}\"")
    );
    let r = post(
        &gw,
        Some(&format!("Bearer {}", issuer.token(RESOURCE, "mcp:tools"))),
    )
    .await
    .assert_status(403, &[]);
    let challenge = r.header("www-authenticate").to_owned();
    assert_eq!(
        challenge,
        format!(
            "Bearer error=\"insufficient_scope\", scope=\"mcp:basic mcp:tools\", resource_metadata=\"{PRM_URL}\""
        )
    );
    // Byte-identical for the same request.
    let again = post(
        &gw,
        Some(&format!("Bearer {}", issuer.token(RESOURCE, "mcp:tools"))),
    )
    .await;
    assert_eq!(again.header("www-authenticate"), challenge);
    assert_eq!(upstream.count(), 0);
    post(
        &gw,
        Some(&format!(
            "Bearer {}",
            issuer.token(RESOURCE, "mcp:basic mcp:tools extra")
        )),
    )
    .await
    .assert_status(200, &[]);
}

#[tokio::test]
async fn unreachable_jwks_fails_closed_with_503() {
    let issuer = TestIssuer::new(ISS);
    let upstream = Upstream::start(Behavior::Json).await;
    let dead = crate::support::free_port();
    let gw = GatewayBuilder::new()
        .issuer_yaml(&format!(
            "  - issuer: {ISS}\n    jwks_uri: http://127.0.0.1:{dead}/jwks\n"
        ))
        .route("/mcp", &upstream.url(), RESOURCE, "")
        .spawn();
    let r = post(&gw, Some(&format!("Bearer {}", issuer.token(RESOURCE, ""))))
        .await
        .assert_status(503, &[]);
    assert!(!r.header("retry-after").is_empty());
    assert!(
        r.header("www-authenticate").is_empty(),
        "a 503 must not blame the token"
    );
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn a_cached_token_is_still_checked_against_each_routes_audience() {
    let issuer = TestIssuer::new(ISS);
    let upstream = Upstream::start(Behavior::Json).await;
    let gw = GatewayBuilder::new()
        .issuer(&issuer)
        .route("/mcp", &upstream.url(), RESOURCE, "")
        .route(
            "/other",
            &upstream.url(),
            "https://other.example.test/other",
            "required_scopes: [other:use]",
        )
        .spawn();
    gw.wait_ready().await;
    let auth = format!("Bearer {}", issuer.token(RESOURCE, "other:use"));
    for _ in 0..2 {
        gw.post("/mcp", &auth, INIT).await.assert_status(200, &[]);
        // Verified (and cached) for /mcp, but minted for another resource than /other.
        let r = gw.post("/other", &auth, INIT).await.assert_status(401, &[]);
        assert!(r.header("www-authenticate").contains("invalid_token"));
    }
    assert_eq!(upstream.count(), 2);
}

/// A JWKS endpoint that answers the first fetch at once and stalls every
/// later one: the refetch an unknown `kid` triggers must not delay tokens
/// whose key is already loaded, and must give up within the fetch timeout.
#[tokio::test]
async fn an_unknown_kid_refetch_never_delays_known_keys() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let issuer = TestIssuer::new(ISS);
    let jwks = issuer.jwks().to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut served = 0;
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            served += 1;
            let jwks = jwks.clone();
            let stall = served > 1;
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                if stall {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{jwks}",
                    jwks.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    let upstream = Upstream::start(Behavior::Json).await;
    let gw = GatewayBuilder::new()
        .issuer_yaml(&format!(
            "  - issuer: {ISS}\n    jwks_uri: http://127.0.0.1:{port}/jwks\n"
        ))
        .route("/mcp", &upstream.url(), RESOURCE, "")
        .extra("limits:\n  jwks_fetch_timeout: 1s\n")
        .spawn();
    gw.wait_ready().await;

    let mut header = Header::new(Algorithm::ES256);
    header.typ = Some("at+jwt".into());
    header.kid = Some("not-yet-published".into());
    let unknown = issuer.sign_header(&header, &issuer.claims(RESOURCE, ""));
    let url = gw.url("/mcp");
    let unknown_req = tokio::spawn(async move {
        let started = std::time::Instant::now();
        let r = send(
            "POST",
            &url,
            &[("authorization", &format!("Bearer {unknown}"))],
            INIT,
        )
        .await;
        (r.status, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The refetch is in flight (and stalled): a known key answers at once.
    let started = std::time::Instant::now();
    let known = format!("Bearer {}", issuer.token(RESOURCE, ""));
    post(&gw, Some(&known)).await.assert_status(200, &[]);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "a known kid waited {:?} for a refetch",
        started.elapsed()
    );
    let (status, waited) = unknown_req.await.unwrap();
    assert_eq!(status, 401, "unknown kid");
    assert!(
        waited < Duration::from_millis(2500),
        "an unknown kid waited {waited:?}, past the fetch timeout"
    );
}
