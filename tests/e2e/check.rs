//! `mcp-auth-gateway check`: every problem at once, before any port is bound.

use std::process::Command;

fn check(path: &std::path::Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mcp-auth-gateway"))
        .args(["check", "--config"])
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_lists_every_problem_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        r#"
listen: not-an-address
issuers:
  - issuer: https://issuer.example.test
    jwks_uri: https://issuer.example.test/jwks
    algorithms: [HS256, none, ES256]
    leeway: a while
routes:
  - path: /mcp
    upstream: ftp://127.0.0.1/mcp
    resource: https://mcp.example.test/mcp#fragment
    required_scopes: ["has space"]
  - path: /mcp
    upstream: http://127.0.0.1:3001/mcp
    resource: https://mcp.example.test/mcp
limits:
  max_body: huge
"#,
    )
    .unwrap();
    let (code, _stdout, stderr) = check(&path);
    assert_ne!(code, 0);
    for expected in [
        "listen:",
        "issuers[0].algorithms[0]:",
        "issuers[0].algorithms[1]:",
        "issuers[0].leeway:",
        "routes[0].upstream:",
        "routes[0].resource:",
        "routes[0].required_scopes[0]:",
        "routes[1].path: duplicate",
        "limits.max_body:",
    ] {
        assert!(
            stderr.contains(expected),
            "missing `{expected}` in:\n{stderr}"
        );
    }
}

#[test]
fn check_names_an_unknown_key_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typo.yaml");
    std::fs::write(
        &path,
        "issuers: [{issuer: https://i.example, jwks_uri: https://i.example/j}]\nroutes:\n  - path: /mcp\n    upstrem: http://x\n",
    )
    .unwrap();
    let (code, _, stderr) = check(&path);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("routes[0]") && stderr.contains("upstrem"),
        "{stderr}"
    );
}

#[test]
fn the_example_config_passes_check() {
    let path = crate::support::repo_root().join("gateway.example.yaml");
    let (code, stdout, stderr) = check(&path);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("OK"), "{stdout}");
}
