//! Invariant: the `Authorization` parser never panics, and it yields a token
//! only for exactly `Bearer <b64token>` (scheme case-insensitive, one space):
//! it never accepts what the reference reading below would refuse.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_auth_gateway::authn::bearer;

fn reference(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let body = token.trim_end_matches('=');
    let ok = !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b));
    ok.then_some(token)
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(Some(token)) = bearer::parse(value) {
        assert_eq!(reference(value), Some(token), "accepted a credential the reference refuses");
    }
});
