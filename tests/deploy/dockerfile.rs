//! The Dockerfile: a multi-stage build with pinned bases, a distroless
//! non-root runtime stage, an exec-form entry point, and `hadolint` clean when
//! `hadolint` is installed.

use std::collections::BTreeSet;
use std::process::Command;

use crate::support::{deploy, read, run, tool};

/// Dockerfile instructions: comments dropped, continuation lines joined.
fn instructions(src: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in src.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                let (op, args) = current.split_once(' ').unwrap_or((&current, ""));
                out.push((op.to_uppercase(), args.trim().to_owned()));
                current.clear();
            }
        }
    }
    out
}

#[test]
fn dockerfile_has_the_required_properties() {
    let all = instructions(&read(&deploy("Dockerfile")));
    let froms: Vec<_> = all.iter().filter(|(op, _)| op == "FROM").collect();
    assert!(froms.len() >= 2, "multi-stage build expected");
    for (_, from) in &froms {
        let image = from.split_whitespace().next().unwrap();
        let tagged = image.contains('@') || image.rsplit('/').next().unwrap().contains(':');
        assert!(tagged || image == "scratch", "untagged base image {image}");
        assert!(!image.ends_with(":latest"), "{image}");
    }
    let last = all.iter().rposition(|(op, _)| op == "FROM").unwrap();
    let runtime = &all[last..];
    let base = &runtime[0].1;
    assert!(
        base.starts_with("gcr.io/distroless/") || base == "scratch",
        "{base}"
    );
    let find = |op: &'static str| {
        runtime
            .iter()
            .filter(move |(o, _)| o == op)
            .map(|(_, a)| a.as_str())
    };
    let user = find("USER").next_back().expect("USER in the final stage");
    assert!(
        ["65532", "65532:65532", "nonroot", "nonroot:nonroot"].contains(&user),
        "{user}"
    );
    assert!(
        find("RUN").next().is_none(),
        "nothing to run in a distroless stage"
    );

    let build = all
        .iter()
        .find(|(op, a)| op == "RUN" && a.contains("cargo build"))
        .unwrap();
    assert!(
        build.1.contains("--locked") && build.1.contains("--release"),
        "{}",
        build.1
    );
    assert!(
        !all.iter().any(|(op, a)| op == "ADD" && a.contains("http")),
        "no ADD <url>"
    );

    let entry = find("ENTRYPOINT").next_back().expect("ENTRYPOINT");
    let argv: Vec<String> = serde_json::from_str(entry).expect("ENTRYPOINT in exec form");
    assert!(
        find("COPY").any(|c| c.ends_with(&format!(" {}", argv[0]))),
        "{argv:?} not copied"
    );
    let env = find("ENV").collect::<Vec<_>>().join(" ");
    assert!(
        env.contains("MCP_GATEWAY_CONFIG=/etc/mcp-auth-gateway/gateway.yaml"),
        "{env}"
    );
    assert!(env.contains("MCP_GATEWAY_LOG_FORMAT=json"), "{env}");
    let exposed: BTreeSet<_> = find("EXPOSE").flat_map(str::split_whitespace).collect();
    assert_eq!(exposed, ["8443", "9090"].into_iter().collect());
}

#[test]
fn dockerfile_passes_hadolint() {
    let Some(hadolint) = tool("hadolint") else {
        return;
    };
    run(Command::new(hadolint)
        .arg("--no-color")
        .arg(deploy("Dockerfile")));
}
