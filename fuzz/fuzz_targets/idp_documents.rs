//! Invariant: the documents fetched from identity providers never panic the
//! gateway, and never yield more than they say. The first byte picks one:
//! - a JWKS (`KeySet::parse`): never an HMAC key (anyone who reads a JWKS
//!   could mint tokens with one), and a key found by `kid` is one of the
//!   document's;
//! - RFC 8414 / OIDC metadata (`jwks_uri_from_metadata`): a `jwks_uri` only
//!   from a document that names the expected issuer exactly;
//! - an RFC 7662 introspection answer (`Introspector::read_answer`, with the
//!   second byte as status class): active only for a 2xx answer saying
//!   `"active": true`, and then never for another issuer.
#![no_main]

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use mcp_auth_gateway::authn::introspect::{Introspector, Outcome};
use mcp_auth_gateway::authn::jwks::{KeySet, jwks_uri_from_metadata};
use mcp_auth_gateway::config::{Introspection, Issuer, KeySource, Secret};

const ISS: &str = "https://as.example";

static INTROSPECTOR: LazyLock<(tokio::runtime::Runtime, Introspector)> = LazyLock::new(|| {
    rustls::crypto::aws_lc_rs::default_provider().install_default().ok();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let issuer = Arc::new(Issuer {
        issuer: ISS.into(),
        keys: KeySource::IntrospectionOnly,
        algorithms: vec![],
        scope_claims: vec![],
        leeway: Duration::from_secs(30),
        require_typ: true,
        introspection: None,
    });
    let settings = Introspection {
        endpoint: url::Url::parse("https://as.example/introspect").expect("url"),
        client_id: "gateway".into(),
        client_secret: Secret(b"s".to_vec()),
        post_credentials: false,
        cache_ttl: Duration::from_secs(60),
        negative_cache_ttl: Duration::from_secs(5),
        require_audience: true,
    };
    let introspector = runtime.block_on(async {
        Introspector::new(
            issuer,
            settings,
            mcp_auth_gateway::http_client::build(Duration::from_secs(1)),
            Duration::from_secs(1),
        )
    });
    (runtime, introspector)
});

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => {
            if let Ok(set) = KeySet::parse(rest) {
                for alg in [jsonwebtoken::Algorithm::HS256, jsonwebtoken::Algorithm::HS384, jsonwebtoken::Algorithm::HS512] {
                    assert!(set.candidates(None, alg).is_empty(), "an HMAC key was taken from a JWKS");
                }
                let doc: serde_json::Value = serde_json::from_slice(rest).expect("accepted JWKS is JSON");
                for key in doc["keys"].as_array().into_iter().flatten() {
                    if let Some(kid) = key["kid"].as_str() {
                        let _ = set.candidates(Some(kid), jsonwebtoken::Algorithm::ES256);
                    }
                }
                assert!(!set.is_empty());
            }
        }
        1 => {
            if jwks_uri_from_metadata(rest, ISS).is_ok() {
                let doc: serde_json::Value = serde_json::from_slice(rest).expect("accepted metadata is JSON");
                assert_eq!(doc["issuer"], ISS, "jwks_uri taken from another issuer's metadata");
            }
        }
        _ => {
            let Some((&class, body)) = rest.split_first() else {
                return;
            };
            let status = http::StatusCode::from_u16(200 + u16::from(class % 4) * 100).expect("status");
            let (_, introspector) = &*INTROSPECTOR;
            if let Ok(Outcome::Active(p)) = introspector.read_answer(status, body) {
                assert!(status.is_success(), "active on a {status}");
                let doc: serde_json::Value = serde_json::from_slice(body).expect("accepted answer is JSON");
                assert_eq!(doc["active"], true, "active without `active: true`");
                assert_eq!(p.issuer, ISS);
                if let Some(iss) = doc.get("iss") {
                    assert_eq!(iss, ISS, "accepted another issuer's answer");
                }
            }
        }
    }
});
