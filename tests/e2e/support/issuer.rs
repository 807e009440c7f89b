//! A test token issuer: real keys (rcgen), a JWKS file the gateway reads, and
//! minting of good and deliberately bad tokens.

use std::path::PathBuf;

use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// A signing key and its JWK.
pub struct SigningKey {
    /// `kid`.
    pub kid: String,
    /// Private key.
    pub key: EncodingKey,
    /// Public JWK (with `kid`).
    pub jwk: Jwk,
    /// Algorithm.
    pub alg: Algorithm,
}

/// An issuer whose JWKS lives in a temp file.
pub struct TestIssuer {
    /// `iss`.
    pub iss: String,
    /// Current keys; the first one signs by default.
    pub keys: Vec<SigningKey>,
    /// The JWKS file the gateway reads.
    pub jwks_path: PathBuf,
    dir: tempfile::TempDir,
}

impl SigningKey {
    /// Generates a key of `alg` (ES256 or RS256).
    pub fn generate(kid: &str, alg: Algorithm) -> Self {
        let pair = match alg {
            Algorithm::RS256 => rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap(),
            _ => rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap(),
        };
        let pem = pair.serialize_pem();
        let key = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
            _ => EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
        };
        let mut jwk = Jwk::from_encoding_key(&key, alg).unwrap();
        jwk.common.key_id = Some(kid.to_owned());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        Self {
            kid: kid.to_owned(),
            key,
            jwk,
            alg,
        }
    }
}

impl TestIssuer {
    /// An issuer with one ES256 key (`kid` "k1") and one RS256 key ("r1").
    pub fn new(iss: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let me = Self {
            iss: iss.to_owned(),
            keys: vec![
                SigningKey::generate("k1", Algorithm::ES256),
                SigningKey::generate("r1", Algorithm::RS256),
            ],
            jwks_path: dir.path().join("jwks.json"),
            dir,
        };
        me.write_jwks();
        me
    }

    /// The JWKS document for the current keys.
    pub fn jwks(&self) -> Value {
        serde_json::to_value(JwkSet {
            keys: self.keys.iter().map(|k| k.jwk.clone()).collect(),
        })
        .unwrap()
    }

    /// Rewrites the JWKS file atomically.
    pub fn write_jwks(&self) {
        let tmp = self.dir.path().join("jwks.tmp");
        std::fs::write(&tmp, self.jwks().to_string()).unwrap();
        std::fs::rename(tmp, &self.jwks_path).unwrap();
    }

    /// Adds a new signing key (published in the JWKS file) and returns its kid.
    pub fn rotate(&mut self, kid: &str) -> &SigningKey {
        self.keys.push(SigningKey::generate(kid, Algorithm::ES256));
        self.write_jwks();
        self.keys.last().unwrap()
    }

    /// The issuer entry for the gateway config.
    pub fn config_yaml(&self) -> String {
        format!(
            "  - issuer: {}\n    jwks_file: {}\n",
            self.iss,
            self.jwks_path.display()
        )
    }

    /// Standard claims for `aud` and `scope`, valid for an hour.
    pub fn claims(&self, aud: &str, scope: &str) -> Value {
        let now = jsonwebtoken::get_current_timestamp();
        json!({
            "iss": self.iss, "sub": "alice", "aud": aud, "scope": scope,
            "client_id": "test-client", "iat": now, "exp": now + 3600, "jti": "j1",
        })
    }

    /// A valid token for `aud` with `scope`.
    pub fn token(&self, aud: &str, scope: &str) -> String {
        self.sign(&self.claims(aud, scope))
    }

    /// Signs `claims` with the first key (ES256, `typ: at+jwt`).
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with(&self.keys[0], claims)
    }

    /// Signs `claims` with `key`.
    pub fn sign_with(&self, key: &SigningKey, claims: &Value) -> String {
        let mut header = Header::new(key.alg);
        header.typ = Some("at+jwt".into());
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &key.key).unwrap()
    }

    /// Signs with an arbitrary header (e.g. a `kid` the JWKS does not have).
    pub fn sign_header(&self, header: &Header, claims: &Value) -> String {
        jsonwebtoken::encode(header, claims, &self.keys[0].key).unwrap()
    }
}

/// base64url without padding.
pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A token with `alg: none` and an empty signature.
pub fn unsigned(claims: &Value) -> String {
    format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(claims.to_string().as_bytes())
    )
}

/// HS256 "signed" with the RSA public key's JWK text: the classic key-confusion attack.
pub fn hs256_confusion(issuer: &TestIssuer, claims: &Value) -> String {
    let public = serde_json::to_vec(&issuer.keys[1].jwk).unwrap();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("r1".into());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(&public)).unwrap()
}
