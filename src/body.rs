//! The one response/request body type used across stages.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, combinators::BoxBody};

/// Errors a body stream may yield.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A boxed body: buffered bytes we built, or a stream relayed from a peer.
pub type Body = BoxBody<Bytes, BoxError>;

/// A body with these bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// An empty body.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}
