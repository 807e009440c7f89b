//! Invariant: loading any config text never panics; it yields a config or a
//! list of problems, and a loaded config has at least one issuer and route.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mcp_auth_gateway::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok((config, _warnings)) = Config::from_yaml(text, Path::new("/etc/mcp-auth-gateway")) {
        assert!(!config.issuers.is_empty() && !config.routes.is_empty());
    }
});
