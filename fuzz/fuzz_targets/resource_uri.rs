//! Invariant: whenever `jsonrpc::uri::canonical` accepts a resource URI, the
//! URI the gateway judges is the URI every upstream reads:
//! - a WHATWG URL parser (the `url` crate: what pydantic's `AnyUrl` in the
//!   Python SDK uses, and the algorithm of `new URL()` in the TS SDK) reads
//!   the input and the canonical form as the same URL, so no deleted TAB,
//!   trimmed space, resolved dot-segment or lowercased scheme separates them;
//! - percent-decoding that URL (as Python templates do) gives back the
//!   canonical form, with exactly the URL's `/`, `?` and `#` and no `%`;
//! - the canonical form is a fixed point (judging it again changes nothing);
//! - it holds no control character and no backslash.
//! And it never panics, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_auth_gateway::uri;

fn upper_escapes(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '%' {
            for h in chars.by_ref().take(2) {
                out.push(h.to_ascii_uppercase());
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(canonical) = uri::canonical(input) else {
        return;
    };
    let read = url::Url::parse(input).expect("accepted what a WHATWG parser refuses");
    let read_canonical = url::Url::parse(&canonical).expect("canonical form does not parse");
    assert_eq!(
        upper_escapes(read.as_str()),
        upper_escapes(read_canonical.as_str()),
        "input and canonical form are different URLs"
    );
    let decoded = percent_encoding::percent_decode_str(read.as_str())
        .decode_utf8()
        .expect("accepted escapes that are not UTF-8");
    assert_eq!(decoded, canonical, "decoding the URL does not give the canonical form");
    assert!(!canonical.contains('%'), "an escape survived decoding");
    for delimiter in ['/', '?', '#'] {
        assert_eq!(
            read.as_str().matches(delimiter).count(),
            canonical.matches(delimiter).count(),
            "decoding created or removed a {delimiter:?}"
        );
    }
    assert_eq!(uri::canonical(&canonical).as_deref(), Ok(canonical.as_str()), "not a fixed point");
    assert!(!canonical.chars().any(|c| c.is_control() || c == '\\'));
});
