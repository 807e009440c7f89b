//! Invariant: JWT handling before the signature check never panics, and no
//! token whose header or claims the fuzzer wrote ever verifies. Each input
//! is split into a header and a payload (at the first 0xFF byte), both
//! base64url-encoded as they are, with either a junk signature or the
//! signature of a real token for other bytes; issuer selection
//! (`unverified_issuer`) and `verify` run against a store holding a real
//! ES256 key of the issuer the payloads usually name. Only bytes signed by
//! that key may pass, and the fuzzer never has it.
#![no_main]

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use mcp_auth_gateway::authn::jwks::{KeySet, KeyStore};
use mcp_auth_gateway::authn::jwt;
use mcp_auth_gateway::config::{Issuer, KeySource};

const ISS: &str = "https://as.example";

/// The P-256 example key of RFC 7517 (appendix A.1): the fuzzer cannot sign with it.
const JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","use":"sig","alg":"ES256",
 "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;

struct Env {
    runtime: tokio::runtime::Runtime,
    stores: std::collections::HashMap<String, Arc<KeyStore>>,
}

static ENV: LazyLock<Env> = LazyLock::new(|| {
    rustls::crypto::aws_lc_rs::default_provider().install_default().ok();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let issuer = Arc::new(Issuer {
        issuer: ISS.into(),
        keys: KeySource::IntrospectionOnly,
        algorithms: vec![jsonwebtoken::Algorithm::ES256, jsonwebtoken::Algorithm::RS256],
        scope_claims: vec!["scope".into(), "scp".into()],
        leeway: Duration::from_secs(30),
        require_typ: true,
        introspection: None,
    });
    let keys = KeySet::parse(JWKS.as_bytes()).expect("jwks");
    let client = runtime.block_on(async {
        mcp_auth_gateway::http_client::build(Duration::from_secs(1))
    });
    let store = KeyStore::preloaded(issuer, client, Duration::from_millis(1), keys);
    let stores = std::iter::once((ISS.to_owned(), store)).collect();
    Env { runtime, stores }
});

fuzz_target!(|data: &[u8]| {
    let env = &*ENV;
    let (header, payload) = match data.iter().position(|&b| b == 0xFF) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &b"{}"[..]),
    };
    let signatures = [
        URL_SAFE_NO_PAD.encode(payload.get(..64).unwrap_or(payload)),
        "MEUCIQDPXR2_Nd0C2JYw0sYbVAqoQsFbP3V0E4D2q6wYgC8_lQIgYdjLNQ4Qh6n3WYJ6L9zS5cCgE9r6x3p_8pJ1Wc4p8q0".into(),
    ];
    for sig in signatures {
        let token = format!("{}.{}.{sig}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(payload));
        let _ = jwt::unverified_issuer(&token);
        let verdict = env.runtime.block_on(jwt::verify(&token, &env.stores));
        assert!(verdict.is_err(), "a token the fuzzer wrote verified: {token}");
    }
});
