//! The Grafana dashboard (`deploy/grafana/mcp-auth-gateway.json`) parses and
//! queries only metrics the gateway registers (`src/telemetry/metrics.rs`),
//! so a renamed metric cannot leave an empty panel behind.

use std::collections::BTreeSet;

use crate::support::{deploy, read};

/// `mcp_gateway_<name>` of every `registry.register("<name>", …)`.
fn registered() -> BTreeSet<String> {
    let src =
        read(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/telemetry/metrics.rs"));
    src.split("registry.register(")
        .skip(1)
        .filter_map(|rest| rest.split('"').nth(1))
        .map(|name| format!("mcp_gateway_{name}"))
        .collect()
}

/// The metric names in a PromQL expression.
fn metrics_in(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("mcp_gateway_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        out.push(name);
    }
    out
}

#[test]
fn the_dashboard_queries_only_registered_metrics() {
    let text = read(&deploy("grafana/mcp-auth-gateway.json"));
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let known = registered();
    assert!(known.contains("mcp_gateway_requests"), "{known:?}");
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 8);
    let mut used = BTreeSet::new();
    for panel in panels {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let names = metrics_in(expr);
            assert!(!names.is_empty(), "{}: {expr}", panel["title"]);
            for name in names {
                let base = ["_total", "_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s))
                    .unwrap_or(&name)
                    .to_owned();
                assert!(
                    known.contains(&base),
                    "{}: {name} is not registered ({known:?})",
                    panel["title"]
                );
                used.insert(base);
            }
        }
    }
    // What the dashboard promises: requests, decisions, latency, open
    // streams, key refreshes and the authorization server's logins.
    for needed in [
        "mcp_gateway_requests",
        "mcp_gateway_gateway_duration_seconds",
        "mcp_gateway_upstream_duration_seconds",
        "mcp_gateway_open_streams",
        "mcp_gateway_jwks_fetches",
        "mcp_gateway_authorization_server_events",
    ] {
        assert!(used.contains(needed), "no panel shows {needed}");
    }
}

#[test]
fn the_collector_listens_on_loopback_only() {
    let docs = crate::support::docs(
        &read(&deploy("kubernetes/otel-collector.yaml")),
        "otel-collector.yaml",
    );
    let config = crate::support::yaml_str(docs[0]["data"]["config.yaml"].as_str().unwrap());
    let endpoint = config["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
        .as_str()
        .unwrap();
    assert!(endpoint.starts_with("127.0.0.1:"), "{endpoint}");
    let pipeline = &config["service"]["pipelines"]["traces"];
    assert_eq!(pipeline["receivers"][0], "otlp");
}
