//! Worst-case inputs for every strict JSON reader, under the 4 MiB body cap:
//! the JSON-RPC envelope (stage 5), the JWT reader (`json::check_strict`)
//! and the list filter (stage 8). Cost must be linear in the input: compare
//! each worst case's throughput (MiB/s) with a typical MCP body. Figures are
//! in bench/README.md ("Parse cost").

#![expect(clippy::expect_used, reason = "a benchmark: bad set-up must stop it")]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mcp_auth_gateway::filter::{ListFilter, ListKind, filter_response};
use mcp_auth_gateway::json;
use mcp_auth_gateway::jsonrpc::{self, ParseLimits};

const CAP: usize = 4 << 20;
const LIMITS: ParseLimits = ParseLimits {
    max_depth: 64,
    max_batch: 32,
};

fn call_with(arguments: &str) -> Vec<u8> {
    format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"echo","arguments":{arguments}}}}}"#
    )
    .into_bytes()
}

/// `(name, body)` pairs, each just under the cap.
fn cases() -> Vec<(&'static str, Vec<u8>)> {
    let typical = call_with(r#"{"message":"hello","city":"Paris","units":"metric","limit":10}"#);
    // One object with as many short keys as fit.
    let n_keys = (CAP - 1024) / 12;
    let mut keys = String::with_capacity(CAP);
    keys.push('{');
    for i in 0..n_keys {
        if i > 0 {
            keys.push(',');
        }
        keys.push_str(&format!("\"{i:x}\":0"));
    }
    keys.push('}');
    // Many small objects.
    let small = format!(
        "[{}]",
        vec![r#"{"a":1,"b":2}"#; (CAP - 1024) / 14].join(",")
    );
    // Maximum legal depth, repeated.
    let deep_one = format!("{}1{}", "[".repeat(60), "]".repeat(60));
    let deep = format!(
        "[{}]",
        vec![deep_one.as_str(); (CAP - 1024) / 124].join(",")
    );
    // A long run of escapes.
    let escapes = format!("\"{}\"", "\\u0041".repeat((CAP - 1024) / 6));
    vec![
        ("typical_tools_call", typical),
        ("one_object_max_keys", call_with(&keys)),
        ("many_small_objects", call_with(&small)),
        ("max_depth", call_with(&deep)),
        ("escape_run", call_with(&escapes)),
    ]
}

fn envelope(c: &mut Criterion) {
    let mut group = c.benchmark_group("envelope");
    for (name, body) in cases() {
        assert!(body.len() <= CAP, "{name}: {}", body.len());
        assert!(jsonrpc::parse(&body, LIMITS).is_ok(), "{name} must parse");
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| jsonrpc::parse(black_box(&body), LIMITS))
        });
    }
    group.finish();
}

fn strict(c: &mut Criterion) {
    let mut group = c.benchmark_group("strict_json");
    for (name, body) in cases() {
        // The floor: serde_json walking the same bytes, checking nothing.
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(format!("{name}/serde_ignored_any"), |b| {
            b.iter(|| serde_json::from_slice::<serde::de::IgnoredAny>(black_box(&body)))
        });
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| json::check_strict(black_box(&body), 64))
        });
    }
    group.finish();
}

fn list_filter(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let tool = r#"{"name":"tool_00000","description":"A tool.","inputSchema":{"type":"object"}}"#;
    let n = CAP / (tool.len() + 1) - 10;
    let tools: Vec<String> = (0..n)
        .map(|i| tool.replace("tool_00000", &format!("tool_{i:05}")))
        .collect();
    let bodies = [
        (
            "tools_list_60",
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"result":{{"tools":[{}]}}}}"#,
                tools[..60].join(",")
            ),
        ),
        (
            "tools_list_max_entries",
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"result":{{"tools":[{}]}}}}"#,
                tools.join(",")
            ),
        ),
        (
            "result_max_keys",
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"result":{{{}}}}}"#,
                (0..CAP / 12)
                    .map(|i| format!("\"{i:x}\":0"))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        ),
    ];
    let filter = ListFilter {
        id: serde_json::json!(1),
        kind: Some(ListKind::Tools),
        allow: Some(Arc::new(|_, name: &str| !name.ends_with('7'))),
        max_event_bytes: CAP + 1024,
        pass_oversize: false,
    };
    let mut group = c.benchmark_group("list_filter");
    for (name, body) in bodies {
        group.throughput(Throughput::Bytes(body.len() as u64));
        let bytes = bytes::Bytes::from(body);
        group.bench_function(name, |b| {
            b.iter(|| {
                let resp = http::Response::builder()
                    .header("content-type", "application/json")
                    .body(mcp_auth_gateway::body::full(bytes.clone()))
                    .expect("response");
                let out = rt.block_on(filter_response(resp, filter.clone()));
                assert_eq!(out.status(), 200);
                black_box(out)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, envelope, strict, list_filter);
criterion_main!(benches);
