//! Envelope parse + policy decision for a 1 KiB `tools/call` against a route
//! with 1,000 tool rules (900 exact names, 100 globs) and 50 resource rules.
//! The hot path must not grow with the number of rules; compare the
//! `rules_10` and `rules_1000` figures.

#![expect(clippy::expect_used, reason = "a benchmark: bad set-up must stop it")]

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use mcp_auth_gateway::authz;
use mcp_auth_gateway::config::Config;
use mcp_auth_gateway::jsonrpc::{self, ParseLimits};

fn config(tools: usize) -> Config {
    let mut yaml = String::from(
        "issuers: [{issuer: \"https://as.example.com\", jwks_uri: \"https://as.example.com/jwks\"}]\n\
         routes:\n  - path: /mcp\n    upstream: http://127.0.0.1:3001/mcp\n    resource: https://mcp.example.com/mcp\n\
         \x20   required_scopes: [mcp:tools]\n    policy:\n      tools:\n",
    );
    let globs = tools / 10;
    for i in 0..tools - globs {
        yaml.push_str(&format!("        tool_{i:04}: [scope:{}]\n", i % 7));
    }
    for i in 0..globs {
        yaml.push_str(&format!("        \"family_{i:03}_*\": [scope:glob]\n"));
    }
    yaml.push_str("      resources:\n");
    for i in 0..50 {
        yaml.push_str(&format!(
            "        - {{uri: \"db://tenant{i}/{{id}}\", scopes: [crm:read]}}\n"
        ));
    }
    Config::from_yaml(&yaml, Path::new("."))
        .expect("bench config")
        .0
}

/// A `tools/call` padded to about 1 KiB with realistic arguments.
fn body(name: &str) -> Vec<u8> {
    let pad = "x".repeat(820);
    format!(
        r#"{{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{{"name":"{name}","arguments":{{"query":"{pad}","limit":10,"filters":{{"region":"eu","tags":["a","b"]}}}},"_meta":{{"progressToken":"p-1"}}}}}}"#
    )
    .into_bytes()
}

fn bench(c: &mut Criterion) {
    let limits = ParseLimits {
        max_depth: 64,
        max_batch: 32,
    };
    let granted: Vec<String> = vec!["mcp:tools".into(), "scope:3".into(), "scope:glob".into()];
    for rules in [10, 1000] {
        let config = config(rules);
        let route = &config.routes[0];
        for (label, name) in [
            ("exact", "tool_0003"),
            ("glob", "family_000_search"),
            ("unlisted", "nope"),
        ] {
            let body = body(name);
            assert!((900..1200).contains(&body.len()), "{} bytes", body.len());
            c.bench_function(&format!("parse+decide/rules_{rules}/{label}"), |b| {
                b.iter(|| {
                    let env = jsonrpc::parse(black_box(&body), limits).expect("valid body");
                    let (decision, _) = authz::decide(
                        route.policy.as_ref(),
                        &route.required_scopes,
                        &granted,
                        &env,
                    );
                    black_box(decision)
                })
            });
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
