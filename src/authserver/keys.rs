//! The server's signing key: ES256 (P-256). With a `cookie_key` it is kept in
//! the store, sealed, so tokens survive a restart (`mod.rs`, `signing_key`);
//! without, it is new per process. The public half is published at
//! `jwks_uri` and handed to the resource side in-process. Keys rotate with
//! overlap (`KeyRing`): after a rotation the previous key still verifies.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use serde_json::json;

/// One signing key.
pub(crate) struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    /// The public key as a JWK.
    jwk: serde_json::Value,
}

/// Why a key could not be made or read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KeyError {
    /// The system RNG or the key parser failed.
    #[error("signing key: {0}")]
    Crypto(String),
}

impl SigningKey {
    /// A fresh key; returns it and its PKCS#8 bytes to store.
    pub(crate) fn generate() -> Result<(Self, Vec<u8>), KeyError> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|e| KeyError::Crypto(e.to_string()))?;
        let der = pkcs8.as_ref().to_vec();
        Ok((Self::from_pkcs8(&der)?, der))
    }

    /// The key stored as PKCS#8.
    pub(crate) fn from_pkcs8(der: &[u8]) -> Result<Self, KeyError> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
            .map_err(|e| KeyError::Crypto(e.to_string()))?;
        // Uncompressed point: 0x04 || x (32) || y (32).
        let point = pair.public_key().as_ref();
        let (Some(x), Some(y)) = (point.get(1..33), point.get(33..65)) else {
            return Err(KeyError::Crypto("unexpected public key length".into()));
        };
        let (x, y) = (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y));
        // RFC 7638 thumbprint as the kid: stable for the key, nothing else.
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
        let kid = URL_SAFE_NO_PAD.encode(digest.as_ref());
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "x": x, "y": y,
            "kid": kid, "use": "sig", "alg": "ES256",
        });
        Ok(Self {
            kid,
            encoding: EncodingKey::from_ec_der(der),
            jwk,
        })
    }

    /// Signs `claims` as an RFC 9068 access token (`typ: at+jwt`).
    pub(crate) fn sign_access_token(&self, claims: &impl Serialize) -> Result<String, KeyError> {
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("at+jwt".into());
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .map_err(|e| KeyError::Crypto(e.to_string()))
    }
}

/// The keys in use: `current` signs; `previous` still verifies what it
/// signed before the last rotation (overlap).
pub(crate) struct KeyRing {
    current: SigningKey,
    previous: Option<SigningKey>,
}

impl KeyRing {
    /// A ring of one key.
    pub(crate) fn new(current: SigningKey, previous: Option<SigningKey>) -> Self {
        Self { current, previous }
    }

    /// The public JWK set (the `jwks_uri` document): current first.
    pub(crate) fn jwks(&self) -> serde_json::Value {
        let keys: Vec<&serde_json::Value> = std::iter::once(&self.current.jwk)
            .chain(self.previous.as_ref().map(|k| &k.jwk))
            .collect();
        json!({ "keys": keys })
    }

    /// Signs with the current key.
    pub(crate) fn sign_access_token(&self, claims: &impl Serialize) -> Result<String, KeyError> {
        self.current.sign_access_token(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rotated_ring_publishes_both_keys_and_signs_with_the_new_one() {
        let (old, _) = SigningKey::generate().unwrap();
        let (new, _) = SigningKey::generate().unwrap();
        let (old_kid, new_kid) = (old.kid.clone(), new.kid.clone());
        let ring = KeyRing::new(new, Some(old));
        let jwks = ring.jwks();
        let kids: Vec<&str> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect();
        assert_eq!(kids, [new_kid.as_str(), old_kid.as_str()]);
        assert!(
            jwks.to_string().find("\"d\"").is_none(),
            "never the private part"
        );
        let token = ring.sign_access_token(&json!({"sub": "x"})).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(new_kid.as_str()));
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    }
}
