//! Stage 4c: verify a JWT access token (RFC 9068, RFC 8725) for one route.
//!
//! Order matters: the unverified `iss` only selects which issuer's keys to
//! try; nothing from the payload is trusted until the signature verifies.
//! Header parameters that point at keys (`jku`, `x5u`, `jwk`) are ignored.

use std::collections::HashMap;
use std::sync::Arc;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{AuthnError, KeyStore, Principal};
use crate::config::Route;

/// Refuse absurdly large tokens before any decoding work.
const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Claims read after the signature verified.
#[derive(Debug, Deserialize)]
struct Claims {
    iss: String,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    aud: Option<OneOrMany>,
    #[serde(default)]
    iat: Option<u64>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    azp: Option<String>,
    #[serde(flatten)]
    rest: HashMap<String, serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct Unverified {
    iss: String,
}

/// Verifies `token`'s signature, issuer and times against the issuers in
/// `stores`. The result does not depend on the route, so it may be cached;
/// [`check_audience`] binds it to a route.
pub async fn verify(
    token: &str,
    stores: &HashMap<String, Arc<KeyStore>>,
) -> Result<Principal, AuthnError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(AuthnError::Malformed("token too large"));
    }
    if token.split('.').count() != 3 {
        return Err(AuthnError::Malformed("not a JWS compact serialization"));
    }
    // `decode_header` refuses unknown algorithms, including `none`.
    let header = jsonwebtoken::decode_header(token).map_err(|e| match e.kind() {
        ErrorKind::InvalidAlgorithmName => AuthnError::AlgorithmNotAllowed("unknown".into()),
        _ => AuthnError::Malformed("undecodable JWT header"),
    })?;
    if header.crit.is_some() {
        return Err(AuthnError::CriticalHeader);
    }
    // Nested JWTs (RFC 7519 §5.2 `cty`) are never expected for access tokens.
    if header.cty.is_some() {
        return Err(AuthnError::Malformed("nested or typed-content JWT"));
    }
    // A duplicate header parameter or claim could be read differently by
    // another parser; refuse it before trusting anything.
    for segment in token.split('.').take(2) {
        let json = URL_SAFE_NO_PAD
            .decode(segment)
            .map_err(|_| AuthnError::Malformed("JWT segment is not base64url"))?;
        crate::json::check_strict(&json, 16)
            .map_err(|_| AuthnError::Malformed("JWT header or claims are not strict JSON"))?;
    }
    let unverified: Unverified = jsonwebtoken::dangerous::insecure_decode_claims(token)
        .map_err(|_| AuthnError::Malformed("undecodable JWT payload"))?;
    let store = stores
        .get(&unverified.iss)
        .ok_or(AuthnError::UnknownIssuer)?;
    let issuer = store.issuer();
    check_typ(header.typ.as_deref(), issuer.require_typ)?;
    if !issuer.algorithms.contains(&header.alg) {
        return Err(AuthnError::AlgorithmNotAllowed(format!("{:?}", header.alg)));
    }

    let keys = store.keys().ok_or_else(|| AuthnError::KeysUnavailable {
        issuer: issuer.issuer.clone(),
    })?;
    let kid = header.kid.as_deref();
    let keys = match kid {
        Some(kid) if !keys.has_kid(kid) => store
            .refetch_for_unknown_kid()
            .await
            .filter(|k| k.has_kid(kid))
            .ok_or(AuthnError::UnknownKid)?,
        _ => keys,
    };
    let candidates = keys.candidates(kid, header.alg);
    if candidates.is_empty() {
        return Err(match kid {
            Some(_) => AuthnError::AlgorithmNotAllowed(format!("{:?} for this key", header.alg)),
            None => AuthnError::UnknownKid,
        });
    }

    let validation = validation(header.alg, issuer);
    let mut last = AuthnError::BadSignature;
    for key in candidates {
        match jsonwebtoken::decode::<Claims>(token, key, &validation) {
            Ok(data) => return principal(data.claims, issuer),
            Err(e) => last = map_error(e.into_kind()),
        }
    }
    Err(last)
}

fn validation(alg: Algorithm, issuer: &crate::config::Issuer) -> Validation {
    let mut v = Validation::new(alg);
    v.leeway = issuer.leeway.as_secs();
    v.validate_exp = true;
    v.validate_nbf = true;
    // The audience depends on the route, and is checked in `principal`.
    v.validate_aud = false;
    v.set_issuer(&[&issuer.issuer]);
    v.set_required_spec_claims(&["exp", "iss"]);
    v
}

fn map_error(kind: ErrorKind) -> AuthnError {
    match kind {
        ErrorKind::ExpiredSignature => AuthnError::Expired,
        ErrorKind::ImmatureSignature => AuthnError::NotYetValid,
        ErrorKind::InvalidSignature => AuthnError::BadSignature,
        ErrorKind::InvalidIssuer => AuthnError::UnknownIssuer,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            AuthnError::AlgorithmNotAllowed("mismatch".into())
        }
        ErrorKind::MissingRequiredClaim(c) => AuthnError::InvalidClaims(format!("missing `{c}`")),
        ErrorKind::InvalidClaimFormat(c) => AuthnError::InvalidClaims(format!("malformed `{c}`")),
        ErrorKind::Json(_) => {
            AuthnError::InvalidClaims("claims do not have the expected types".into())
        }
        _ => AuthnError::Malformed("undecodable JWT"),
    }
}

fn principal(claims: Claims, issuer: &crate::config::Issuer) -> Result<Principal, AuthnError> {
    // jsonwebtoken does not look at `iat`; a token "issued" in the future is forged or broken.
    let now = jsonwebtoken::get_current_timestamp();
    if claims
        .iat
        .is_some_and(|iat| iat > now + issuer.leeway.as_secs())
    {
        return Err(AuthnError::NotYetValid);
    }
    let audiences = match claims.aud {
        Some(OneOrMany::One(a)) => vec![a],
        Some(OneOrMany::Many(list)) => list,
        None => Vec::new(),
    };
    let mut scopes = scopes(&claims.rest, &issuer.scope_claims);
    scopes.sort_unstable();
    scopes.dedup();
    let expires_at = claims
        .rest
        .get("exp")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    Ok(Principal {
        issuer: claims.iss,
        subject: claims.sub,
        client_id: claims.client_id.or(claims.azp),
        scopes,
        audiences,
        expires_at,
        audience_unchecked: false,
    })
}

/// The `iss` of a JWS-shaped token, unverified: only to pick how to verify it.
pub fn unverified_issuer(token: &str) -> Option<String> {
    if token.len() > MAX_TOKEN_LEN || token.split('.').count() != 3 {
        return None;
    }
    jsonwebtoken::dangerous::insecure_decode_claims::<Unverified>(token)
        .ok()
        .map(|u| u.iss)
}

/// RFC 8707 / MCP: the token must have been issued for this route's resource
/// (or one of its configured extra audiences).
///
/// The one exception is an introspection answer without `aud` from an issuer
/// with `require_audience: false` (`audience_unchecked`): it is accepted on
/// routes that list no `audiences` beyond their `resource`, and on no other.
pub fn check_audience(principal: &Principal, route: &Route) -> Result<(), AuthnError> {
    let named = principal
        .audiences
        .iter()
        .any(|a| route.audiences.contains(a));
    if named || (principal.audience_unchecked && !route.extra_audiences) {
        Ok(())
    } else {
        Err(AuthnError::AudienceMismatch)
    }
}

/// The `typ` header (RFC 9068 §2.1, RFC 8725 §3.11): with `require`, only
/// `at+jwt` (or `application/at+jwt`), so an ID token signed by the same
/// issuer (`typ: JWT`) is never taken for an access token; without it, also
/// `JWT` or none, for issuers that do not type their access tokens.
fn check_typ(typ: Option<&str>, require: bool) -> Result<(), AuthnError> {
    let is = |t: &str| typ.is_some_and(|typ| typ.eq_ignore_ascii_case(t));
    let access_token = is("at+jwt") || is("application/at+jwt");
    if access_token || (!require && (typ.is_none() || is("JWT"))) {
        Ok(())
    } else {
        Err(AuthnError::BadType)
    }
}

/// Scopes from the first configured claim present: a string of scopes
/// separated by single spaces (RFC 6749 §3.3; a TAB or LF is not a
/// separator, so `"a\tb"` is one scope that matches nothing) or an array of
/// strings, one scope each (`scp` at some IdPs), never split again.
fn scopes(claims: &HashMap<String, serde_json::Value>, names: &[String]) -> Vec<String> {
    for name in names {
        match claims.get(name) {
            Some(serde_json::Value::String(s)) => return split_scopes(s),
            Some(serde_json::Value::Array(items)) => {
                return items
                    .iter()
                    .filter_map(|v| v.as_str())
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
            _ => {}
        }
    }
    Vec::new()
}

/// An RFC 6749 §3.3 `scope` string split on SP only.
pub(super) fn split_scopes(s: &str) -> Vec<String> {
    s.split(' ')
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scope_claims_as_string_or_array() {
        let mut claims = HashMap::new();
        claims.insert("scp".to_owned(), json!(["a", "b c"]));
        let names = vec!["scope".to_owned(), "scp".to_owned()];
        assert_eq!(
            scopes(&claims, &names),
            vec!["a", "b c"],
            "array entries are never split"
        );
        claims.insert("scope".to_owned(), json!("x  y"));
        assert_eq!(scopes(&claims, &names), vec!["x", "y"]);
        claims.insert("scope".to_owned(), json!("x\ty\nz\rw"));
        assert_eq!(
            scopes(&claims, &names),
            vec!["x\ty\nz\rw"],
            "only SP separates"
        );
    }

    #[test]
    fn typ_is_at_jwt_unless_the_issuer_opts_out() {
        for ok in ["at+jwt", "AT+JWT", "application/at+jwt"] {
            assert!(check_typ(Some(ok), true).is_ok(), "{ok}");
        }
        for bad in [None, Some("JWT"), Some("jwt"), Some("JOSE"), Some("id+jwt")] {
            assert!(check_typ(bad, true).is_err(), "{bad:?}");
        }
        for ok in [None, Some("JWT"), Some("at+jwt")] {
            assert!(check_typ(ok, false).is_ok(), "{ok:?}");
        }
        assert!(check_typ(Some("JOSE"), false).is_err());
    }
}
