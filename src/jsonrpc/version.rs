//! Stage 5, protocol versions: which MCP revision a request speaks, and the
//! header checks that revision asks of an intermediary that reads the body
//! (`docs/protocol-versions.md`).
//!
//! The version is the `MCP-Protocol-Version` header; without it, the
//! 2026-07-28 per-request `_meta["io.modelcontextprotocol/protocolVersion"]`;
//! without either, 2025-03-26 (the transport spec's default). Requests of
//! every version share a route; authorization always reads the body.
//!
//! A 2026-07-28 request mirrors its body in headers (`Mcp-Method` on every
//! message, `Mcp-Name` for `tools/call`, `prompts/get` and `resources/read`),
//! and a component that reads the body MUST refuse a missing or mismatching
//! one with 400 and JSON-RPC `-32020` (HeaderMismatch): intermediaries in
//! front may route on the headers. Values compare exactly, after decoding the
//! `=?base64?…?=` form (canonical base64 of UTF-8 only, as the Python SDK
//! does). A routing header sent twice is a mismatch, since first-copy and
//! last-copy readers would disagree. Older requests need no mirror headers,
//! but any that arrive must agree with the body too. `Mcp-Param-*` headers
//! are forwarded untouched (forward/headers.rs).

use base64::Engine;
use http::HeaderMap;

use super::{Envelope, Target};

/// The `_meta` key carrying a 2026-07-28 request's protocol version.
pub const META_KEY: &str = "io.modelcontextprotocol/protocolVersion";
/// The stateless revision, with per-request headers and `_meta`.
pub const MODERN: &str = "2026-07-28";
/// The version of a request that names none (transport spec, 2025-06-18).
pub const DEFAULT: &str = "2025-03-26";

/// Methods 2026-07-28 removed (or never had) that name a target in older
/// revisions: a 2026-07-28 request for one is the upstream's to answer
/// (404, `-32601`), never a gateway 400 for its missing target.
const REMOVED_IN_MODERN: [&str; 2] = ["resources/subscribe", "resources/unsubscribe"];

/// The version a request speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version(String);

/// A header that is missing, repeated or disagrees with the body: 400 with
/// JSON-RPC `-32020`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{header} header is missing, repeated or does not match the body")]
pub struct HeaderMismatch {
    /// The header, as the spec spells it.
    pub header: &'static str,
}

impl Version {
    /// Whether this is the stateless 2026-07-28 revision.
    pub fn is_modern(&self) -> bool {
        self.0 == MODERN
    }

    /// The version string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Decides the request's version and checks its routing headers against the
/// body. `envelope` must be the parsed body of the same request.
pub fn check(headers: &HeaderMap, envelope: &Envelope) -> Result<Version, HeaderMismatch> {
    let header_version = one(headers, "mcp-protocol-version", "MCP-Protocol-Version")?;
    let method = one(headers, "mcp-method", "Mcp-Method")?;
    let name = one(headers, "mcp-name", "Mcp-Name")?;
    let meta_version = match envelope {
        Envelope::Single(call) => call.meta_version.as_deref(),
        Envelope::Batch(_) => None,
    };
    let version = Version(
        header_version
            .or(meta_version)
            .unwrap_or(DEFAULT)
            .to_owned(),
    );
    let mismatch = |header| Err(HeaderMismatch { header });
    if version.is_modern() {
        // The header is the version's carrier: required, and equal to the
        // body's own statement when it makes one.
        if header_version.is_none() || meta_version.is_some_and(|m| Some(m) != header_version) {
            return mismatch("MCP-Protocol-Version");
        }
    }
    let call = match envelope {
        Envelope::Single(call) => call,
        // 2026-07-28 has no batches; older ones carry no mirror headers.
        Envelope::Batch(_) if version.is_modern() || method.is_some() || name.is_some() => {
            return mismatch("Mcp-Method");
        }
        Envelope::Batch(_) => return Ok(version),
    };
    let Some(body_method) = call.method.as_deref() else {
        // A response from the client: nothing to mirror.
        return match (method, name) {
            (None, None) => Ok(version),
            _ => mismatch("Mcp-Method"),
        };
    };
    match method {
        Some(m) if m == body_method => {}
        None if !version.is_modern() => {}
        _ => return mismatch("Mcp-Method"),
    }
    let name_required = version.is_modern() && call.raw_name.is_some();
    match (name, call.raw_name.as_deref()) {
        (Some(h), Some(body)) if decode(h).as_deref() == Some(body) => {}
        (None, _) if !name_required => {}
        _ => return mismatch("Mcp-Name"),
    }
    Ok(version)
}

impl Envelope {
    /// Settles targets whose presence depends on the version: a 2026-07-28
    /// request for a method that version removed goes to the upstream
    /// without one; any other missing target is a 400.
    pub fn resolve(&mut self, version: &Version) -> Result<(), super::JsonRpcError> {
        let calls: &mut [super::RpcCall] = match self {
            Envelope::Single(c) => std::slice::from_mut(c),
            Envelope::Batch(cs) => cs,
        };
        for call in calls {
            if let Target::Missing(method, what) = call.target {
                if version.is_modern() && REMOVED_IN_MODERN.contains(&method) {
                    call.target = Target::None;
                } else {
                    return Err(super::JsonRpcError::MissingTarget(method, what));
                }
            }
        }
        Ok(())
    }
}

/// The single value of a header: `None` when absent, a mismatch when
/// repeated or not visible ASCII.
fn one<'h>(
    headers: &'h HeaderMap,
    name: &str,
    spelled: &'static str,
) -> Result<Option<&'h str>, HeaderMismatch> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(HeaderMismatch { header: spelled });
    }
    first
        .map(|v| v.to_str().map_err(|_| HeaderMismatch { header: spelled }))
        .transpose()
}

/// An `Mcp-Name` value: verbatim, or the UTF-8 behind `=?base64?…?=`, which
/// must be canonical base64 (padding included; no stray bits) so that one
/// name has one spelling. `None` for a malformed sentinel.
fn decode(value: &str) -> Option<String> {
    let Some(payload) = value
        .strip_prefix("=?base64?")
        .and_then(|r| r.strip_suffix("?="))
    else {
        return Some(value.to_owned());
    };
    let engine = base64::engine::general_purpose::STANDARD;
    let bytes = engine.decode(payload).ok()?;
    if engine.encode(&bytes) != payload {
        return None;
    }
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests;
