//! Stage 5, before the body is read as JSON: the body is UTF-8 JSON with no
//! content coding, because that is how the gateway reads it.
//!
//! Upstreams read bodies by their headers: body-parser (`express.json()`, the
//! TS SDK's `createMcpExpressApp()`) decodes any `charset=utf-*`, UTF-7
//! included, and inflates gzip, deflate and brotli. A body the gateway
//! authorized as UTF-8 could then run as something else upstream. So a
//! JSON-RPC POST must be `application/json` with no charset or
//! `charset=utf-8`, and no `Content-Encoding` but `identity`; the upstream
//! always gets the canonical `Content-Type: application/json` and no
//! `Content-Encoding` (forward/headers.rs).

use http::HeaderMap;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE};

/// Why a POST body's headers are refused (HTTP 415).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    /// `Content-Type` is not `application/json`, or appears twice.
    #[error("Content-Type must be application/json")]
    NotJson,
    /// A `charset` other than UTF-8.
    #[error("the only accepted charset is utf-8")]
    Charset,
    /// A `Content-Encoding` other than `identity`.
    #[error("request bodies must not be content-encoded")]
    Encoded,
}

/// Checks a JSON-RPC POST's `Content-Type` and `Content-Encoding`. A missing
/// `Content-Type` is accepted: the upstream is sent the canonical one.
pub fn check(headers: &HeaderMap) -> Result<(), MediaError> {
    let mut types = headers.get_all(CONTENT_TYPE).iter();
    if let Some(value) = types.next() {
        if types.next().is_some() {
            return Err(MediaError::NotJson);
        }
        let value = value.to_str().map_err(|_| MediaError::NotJson)?;
        check_content_type(value)?;
    }
    for value in &headers.get_all(CONTENT_ENCODING) {
        let value = value.to_str().map_err(|_| MediaError::Encoded)?;
        let identity = value
            .split(',')
            .map(str::trim)
            .all(|coding| coding.is_empty() || coding.eq_ignore_ascii_case("identity"));
        if !identity {
            return Err(MediaError::Encoded);
        }
    }
    Ok(())
}

/// `application/json` with at most a `charset=utf-8` parameter (RFC 9110
/// §8.3.1: case-insensitive names and charset, optionally quoted). Other
/// parameters are refused too: no reader of JSON needs one, and an unknown
/// one may change how a server decodes.
fn check_content_type(value: &str) -> Result<(), MediaError> {
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(MediaError::NotJson);
    }
    for param in parts {
        let param = param.trim();
        if param.is_empty() {
            continue;
        }
        let (name, v) = param.split_once('=').ok_or(MediaError::NotJson)?;
        if !name.trim().eq_ignore_ascii_case("charset") {
            return Err(MediaError::NotJson);
        }
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(v);
        if !v.eq_ignore_ascii_case("utf-8") {
            return Err(MediaError::Charset);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn utf8_json_passes() {
        for ok in [
            &[][..],
            &[("content-type", "application/json")],
            &[("content-type", "Application/JSON; charset=UTF-8")],
            &[("content-type", "application/json;charset=\"utf-8\"")],
            &[
                ("content-type", "application/json"),
                ("content-encoding", "identity"),
            ],
        ] {
            assert_eq!(check(&headers(ok)), Ok(()), "{ok:?}");
        }
    }

    #[test]
    fn other_charsets_types_and_codings_are_refused() {
        for (bad, want) in [
            (
                &[("content-type", "application/json; charset=utf-7")][..],
                MediaError::Charset,
            ),
            (
                &[("content-type", "application/json; charset=utf-16le")],
                MediaError::Charset,
            ),
            (
                &[("content-type", "application/json; charset=iso-8859-1")],
                MediaError::Charset,
            ),
            (
                &[("content-type", "application/json; charset=\"utf-8 \"")],
                MediaError::Charset,
            ),
            (&[("content-type", "text/plain")], MediaError::NotJson),
            (
                &[("content-type", "application/json-rpc")],
                MediaError::NotJson,
            ),
            (
                &[("content-type", "application/json; boundary=x")],
                MediaError::NotJson,
            ),
            (
                &[
                    ("content-type", "application/json"),
                    ("content-type", "text/plain"),
                ],
                MediaError::NotJson,
            ),
            (&[("content-encoding", "gzip")], MediaError::Encoded),
            (&[("content-encoding", "identity, br")], MediaError::Encoded),
            (
                &[
                    ("content-encoding", "identity"),
                    ("content-encoding", "deflate"),
                ],
                MediaError::Encoded,
            ),
        ] {
            assert_eq!(check(&headers(bad)), Err(want), "{bad:?}");
        }
    }
}
