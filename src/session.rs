//! Session binding: an upstream `Mcp-Session-Id` is usable only by the
//! principal that created it (MCP security best practices, session hijacking).
//!
//! Stateless, so it works across replicas with no shared store: the client
//! gets `S.MAC`, where MAC = HMAC-SHA256(key, iss ‖ sub ‖ S), base64url. On
//! every later request the MAC is checked against the caller's verified
//! `iss`+`sub` and the upstream sees only `S`. A wrapper that is invalid or
//! belongs to someone else is "session not found" (404) and never reaches the
//! upstream. Binding to `iss`+`sub` rather than the token lets a refreshed
//! token keep its session. Only headers are touched, never SSE bodies.

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, HeaderValue};

use crate::authn::Principal;

/// The session header.
pub const MCP_SESSION_ID: &str = "mcp-session-id";

/// Base64url length of an HMAC-SHA256 tag.
const TAG_LEN: usize = 43;

/// Why a presented session id is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SessionError {
    /// Not a wrapper this gateway issued, or issued for another principal.
    #[error("session not found")]
    NotFound,
}

/// Wraps and unwraps session ids under one key.
pub struct SessionBinder {
    key: hmac::Key,
}

impl SessionBinder {
    /// A binder keyed by `secret`.
    pub fn new(secret: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// A binder with a random key (sessions do not survive a restart and do
    /// not work across replicas).
    pub fn random() -> Self {
        let mut secret = [0u8; 32];
        // aws-lc's RNG only fails if the OS has no entropy source at all.
        let _ = aws_lc_rs::rand::fill(&mut secret);
        Self::new(&secret)
    }

    /// `S` → `S.MAC` for the client.
    pub fn wrap(&self, principal: &Principal, session: &str) -> String {
        let tag = hmac::sign(&self.key, &message(principal, session));
        format!("{session}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// `S.MAC` → `S`, if the MAC is valid for `principal`.
    pub fn unwrap<'a>(
        &self,
        principal: &Principal,
        wrapped: &'a str,
    ) -> Result<&'a str, SessionError> {
        let (session, tag) = wrapped.rsplit_once('.').ok_or(SessionError::NotFound)?;
        if tag.len() != TAG_LEN {
            return Err(SessionError::NotFound);
        }
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| SessionError::NotFound)?;
        // Constant-time comparison.
        hmac::verify(&self.key, &message(principal, session), &tag)
            .map_err(|_| SessionError::NotFound)?;
        Ok(session)
    }

    /// Replaces the client's wrapped `Mcp-Session-Id` with the upstream's own.
    pub fn unwrap_request(
        &self,
        principal: &Principal,
        headers: &mut HeaderMap,
    ) -> Result<(), SessionError> {
        let mut values = headers.get_all(MCP_SESSION_ID).iter();
        let Some(value) = values.next() else {
            return Ok(());
        };
        if values.next().is_some() {
            return Err(SessionError::NotFound);
        }
        let wrapped = value.to_str().map_err(|_| SessionError::NotFound)?;
        let session = self.unwrap(principal, wrapped)?;
        let session = HeaderValue::from_str(session).map_err(|_| SessionError::NotFound)?;
        headers.insert(MCP_SESSION_ID, session);
        Ok(())
    }

    /// Replaces the upstream's `Mcp-Session-Id` with the wrapped one.
    pub fn wrap_response(&self, principal: &Principal, headers: &mut HeaderMap) {
        let Some(session) = headers.get(MCP_SESSION_ID).and_then(|v| v.to_str().ok()) else {
            return;
        };
        match HeaderValue::from_str(&self.wrap(principal, session)) {
            Ok(v) => {
                headers.insert(MCP_SESSION_ID, v);
            }
            // The upstream sent a value that is not visible ASCII: the spec
            // forbids it, and passing it unwrapped would skip the binding.
            Err(_) => {
                headers.remove(MCP_SESSION_ID);
            }
        }
    }
}

/// The MAC input: length-prefixed `iss`, owner and `S`, so the three fields
/// can never be re-split differently.
fn message(principal: &Principal, session: &str) -> Vec<u8> {
    let fields = [principal.issuer.as_str(), owner(principal), session];
    let mut out = Vec::with_capacity(fields.iter().map(|f| f.len() + 8).sum());
    for field in fields {
        out.extend_from_slice(&(field.len() as u64).to_be_bytes());
        out.extend_from_slice(field.as_bytes());
    }
    out
}

/// Who owns a session: `sub`, or the client for tokens without one
/// (`client_credentials` at some providers).
fn owner(principal: &Principal) -> &str {
    principal
        .subject
        .as_deref()
        .or(principal.client_id.as_deref())
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(iss: &str, sub: &str) -> Principal {
        Principal::for_tests(iss, sub)
    }

    #[test]
    fn round_trips_for_the_same_principal_only() {
        let b = SessionBinder::new(b"0123456789abcdef0123456789abcdef");
        let alice = principal("https://as", "alice");
        let wrapped = b.wrap(&alice, "abc-123.x");
        assert!(wrapped.bytes().all(|c| c.is_ascii_graphic()));
        assert_eq!(b.unwrap(&alice, &wrapped), Ok("abc-123.x"));
        assert_eq!(
            b.unwrap(&principal("https://as", "bob"), &wrapped),
            Err(SessionError::NotFound)
        );
        assert_eq!(
            b.unwrap(&principal("https://other", "alice"), &wrapped),
            Err(SessionError::NotFound)
        );
        // Field boundaries cannot be shifted: iss "a" + sub "bc" differs from iss "ab" + sub "c".
        let w = b.wrap(&principal("a", "bc"), "s");
        assert!(b.unwrap(&principal("ab", "c"), &w).is_err());
    }

    #[test]
    fn forged_and_foreign_wrappers_are_not_found() {
        let b = SessionBinder::new(b"k1k1k1k1k1k1k1k1k1k1k1k1k1k1k1k1");
        let other = SessionBinder::new(b"k2k2k2k2k2k2k2k2k2k2k2k2k2k2k2k2");
        let alice = principal("https://as", "alice");
        for bad in [
            "raw-upstream-id",
            "",
            ".",
            "abc.",
            "abc.!!!!",
            &other.wrap(&alice, "abc"),
        ] {
            assert_eq!(b.unwrap(&alice, bad), Err(SessionError::NotFound), "{bad}");
        }
        let mut tampered = b.wrap(&alice, "abc");
        tampered.replace_range(0..1, "x");
        assert!(b.unwrap(&alice, &tampered).is_err());
    }
}
