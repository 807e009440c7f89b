//! Stage 4a: find the bearer token in the request (RFC 6750 §2.1).
//!
//! Only the `Authorization` header is a credential. The MCP authorization spec
//! forbids tokens in the query string, so one there is refused outright rather
//! than ignored, and a form-body token is never looked for.

use http::HeaderMap;
use http::header::AUTHORIZATION;

use super::AuthnError;

/// The bearer token from `headers`, or `None` when no bearer credentials were
/// sent (no header, or another scheme such as Basic).
pub fn extract<'a>(
    headers: &'a HeaderMap,
    query: Option<&str>,
) -> Result<Option<&'a str>, AuthnError> {
    if query.is_some_and(has_access_token_param) {
        return Err(AuthnError::TokenInQuery);
    }
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthnError::MultipleAuthorization);
    }
    let value = value
        .to_str()
        .map_err(|_| AuthnError::Malformed("Authorization header is not visible ASCII"))?;
    parse(value)
}

/// Parses `Bearer <b64token>`. The scheme is case-insensitive (RFC 9110
/// §11.1); exactly one space separates it from the token, and the token must
/// match RFC 6750's `b64token`.
pub fn parse(value: &str) -> Result<Option<&str>, AuthnError> {
    let Some((scheme, token)) = value.split_once(' ') else {
        return if value.eq_ignore_ascii_case("bearer") {
            Err(AuthnError::Malformed("empty bearer token"))
        } else {
            Ok(None)
        };
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Ok(None);
    }
    if is_b64token(token) {
        Ok(Some(token))
    } else {
        Err(AuthnError::Malformed("bearer token is not a b64token"))
    }
}

/// `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

/// Whether the query names `access_token` once decoded as form parsers
/// decode it (`access%5Ftoken` too), with `&` or `;` between pairs.
fn has_access_token_param(query: &str) -> bool {
    query.split(';').any(|part| {
        url::form_urlencoded::parse(part.as_bytes())
            .any(|(k, _)| k.eq_ignore_ascii_case("access_token"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn parses_bearer_case_insensitively() {
        assert_eq!(parse("Bearer abc.def-ghi").unwrap(), Some("abc.def-ghi"));
        assert_eq!(parse("bearer abc==").unwrap(), Some("abc=="));
        assert_eq!(parse("BEARER abc").unwrap(), Some("abc"));
    }

    #[test]
    fn other_schemes_are_no_credentials() {
        assert_eq!(parse("Basic dXNlcjpwYXNz").unwrap(), None);
        assert_eq!(parse("Token").unwrap(), None);
    }

    #[test]
    fn malformed_bearer_is_refused() {
        for bad in [
            "Bearer",
            "Bearer ",
            "Bearer  abc",
            "Bearer a b",
            "Bearer a\"b",
            "Bearer ==",
            "Bearer abc ",
        ] {
            assert!(matches!(parse(bad), Err(AuthnError::Malformed(_))), "{bad}");
        }
    }

    #[test]
    fn two_headers_are_refused() {
        let h = headers(&["Bearer a", "Bearer b"]);
        assert!(matches!(
            extract(&h, None),
            Err(AuthnError::MultipleAuthorization)
        ));
    }

    #[test]
    fn query_tokens_are_refused_even_with_a_header() {
        let h = headers(&["Bearer a"]);
        assert!(matches!(
            extract(&h, Some("x=1&access_token=t")),
            Err(AuthnError::TokenInQuery)
        ));
        assert!(matches!(
            extract(&h, Some("ACCESS_TOKEN")),
            Err(AuthnError::TokenInQuery)
        ));
        assert_eq!(extract(&h, Some("access_tokens=1")).unwrap(), Some("a"));
        for encoded in ["access%5Ftoken=t", "x=1;access_token=t", "ACCESS%5fTOKEN=t"] {
            assert!(
                matches!(extract(&h, Some(encoded)), Err(AuthnError::TokenInQuery)),
                "{encoded}"
            );
        }
    }
}
