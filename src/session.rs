//! Session binding: an upstream `Mcp-Session-Id` is usable only by the
//! principal that created it (MCP security best practices, session hijacking).
//!
//! Stateless, so it works across replicas with no shared store: the client
//! gets `S.MAC`, where MAC = HMAC-SHA256(key, iss ‖ owner ‖ S), base64url. On
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

    /// `S` → `S.MAC` for the client; `None` for a principal that cannot own
    /// a session (neither `sub` nor `client_id`).
    pub fn wrap(&self, principal: &Principal, session: &str) -> Option<String> {
        let tag = hmac::sign(&self.key, &message(principal, session)?);
        Some(format!(
            "{session}.{}",
            URL_SAFE_NO_PAD.encode(tag.as_ref())
        ))
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
        let message = message(principal, session).ok_or(SessionError::NotFound)?;
        // Constant-time comparison.
        hmac::verify(&self.key, &message, &tag).map_err(|_| SessionError::NotFound)?;
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
        let wrapped = self
            .wrap(principal, session)
            .and_then(|w| HeaderValue::from_str(&w).ok());
        match wrapped {
            Some(v) => {
                headers.insert(MCP_SESSION_ID, v);
            }
            // No owner to bind to, or the upstream sent a value that is not
            // visible ASCII (the spec forbids it): passing it unwrapped would
            // skip the binding, so the client gets no session.
            None => {
                headers.remove(MCP_SESSION_ID);
            }
        }
    }
}

/// The MAC input: length-prefixed `iss`, owner kind, owner and `S`, so the
/// fields can never be re-split differently; `None` without an owner.
fn message(principal: &Principal, session: &str) -> Option<Vec<u8>> {
    let (kind, owner) = owner(principal)?;
    let fields = [principal.issuer.as_str(), kind, owner, session];
    let mut out = Vec::with_capacity(fields.iter().map(|f| f.len() + 8).sum());
    for field in fields {
        out.extend_from_slice(&(field.len() as u64).to_be_bytes());
        out.extend_from_slice(field.as_bytes());
    }
    Some(out)
}

/// Who owns a session: the user (`sub`), or else the client for tokens
/// without one (`client_credentials` at some providers). The two are kept
/// apart, so a token with no `sub` and `client_id: alice` is not the user
/// `alice`; a principal with neither (or only empty ones) owns no session.
fn owner(principal: &Principal) -> Option<(&'static str, &str)> {
    fn present(v: &Option<String>) -> Option<&str> {
        v.as_deref().filter(|s| !s.is_empty())
    }
    present(&principal.subject)
        .map(|sub| ("sub", sub))
        .or_else(|| present(&principal.client_id).map(|client| ("client", client)))
}

/// Whether a query string names a session (`sessionId`, `session_id`, in any
/// case or percent-encoding), as the legacy HTTP+SSE transport does: such an
/// id is bound to no principal, so it is never forwarded.
pub fn query_names_session(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        q.split(';').any(|part| {
            url::form_urlencoded::parse(part.as_bytes()).any(|(k, _)| {
                // `sessionId[]` and `sessionId[0]` are arrays to `qs`-style
                // parsers, which hand back the string.
                let k = k.split('[').next().unwrap_or_default();
                let k: String = k.chars().filter(|c| *c != '_' && *c != '-').collect();
                k.eq_ignore_ascii_case("sessionid")
            })
        })
    })
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
        let wrapped = b.wrap(&alice, "abc-123.x").unwrap();
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
        let w = b.wrap(&principal("a", "bc"), "s").unwrap();
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
            &other.wrap(&alice, "abc").unwrap(),
        ] {
            assert_eq!(b.unwrap(&alice, bad), Err(SessionError::NotFound), "{bad}");
        }
        let mut tampered = b.wrap(&alice, "abc").unwrap();
        tampered.replace_range(0..1, "x");
        assert!(b.unwrap(&alice, &tampered).is_err());
    }

    #[test]
    fn users_and_clients_are_different_owners() {
        let b = SessionBinder::new(b"0123456789abcdef0123456789abcdef");
        let alice = principal("https://as", "alice");
        let mut client_alice = principal("https://as", "");
        client_alice.subject = None;
        client_alice.client_id = Some("alice".into());
        let w = b.wrap(&alice, "s").unwrap();
        assert_eq!(b.unwrap(&client_alice, &w), Err(SessionError::NotFound));
        let w = b.wrap(&client_alice, "s").unwrap();
        assert_eq!(b.unwrap(&client_alice, &w), Ok("s"));
        assert_eq!(b.unwrap(&alice, &w), Err(SessionError::NotFound));

        let mut nobody = principal("https://as", "");
        nobody.subject = Some(String::new());
        nobody.client_id = None;
        assert_eq!(b.wrap(&nobody, "s"), None, "no owner, no session");
        let mut headers = HeaderMap::new();
        headers.insert(MCP_SESSION_ID, HeaderValue::from_static("s"));
        b.wrap_response(&nobody, &mut headers);
        assert!(headers.get(MCP_SESSION_ID).is_none());
    }

    #[test]
    fn legacy_session_queries_are_recognized() {
        for q in [
            "sessionId=1",
            "a=1&SESSIONID=2",
            "session_id=3",
            "session%49d=4",
            "sessionid",
            "sessionId[]=5",
            "sessionId%5B0%5D=6",
        ] {
            assert!(query_names_session(Some(q)), "{q}");
        }
        for q in ["", "a=1", "session=2", "id=3"] {
            assert!(!query_names_session(Some(q)), "{q}");
        }
        assert!(!query_names_session(None));
    }
}
