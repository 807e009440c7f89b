//! The gateway as a real child process on port 0. Ready when its startup line
//! `listening on <scheme>://<addr>` appears on stderr; stderr is forwarded
//! with a `[gateway]` prefix; `Drop` kills it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::Reply;
use super::issuer::TestIssuer;

/// Builds a gateway config and starts the process.
pub struct GatewayBuilder {
    issuers: Vec<String>,
    routes: Vec<String>,
    extra: String,
    tls: Option<(PathBuf, PathBuf)>,
    port: u16,
    workers: Option<usize>,
    env: Vec<(String, String)>,
    dir: tempfile::TempDir,
}

/// A running gateway.
pub struct Gateway {
    child: Child,
    /// Bound address.
    pub addr: SocketAddr,
    /// `http` or `https`.
    pub scheme: &'static str,
    /// Everything the gateway wrote to stderr so far.
    pub log: Arc<Mutex<Vec<String>>>,
    /// The config file the gateway runs with (rewrite it to test reloads).
    pub config_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl GatewayBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self {
            issuers: Vec::new(),
            routes: Vec::new(),
            extra: String::new(),
            tls: None,
            port: 0,
            workers: None,
            env: Vec::new(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Sets an environment variable for the gateway process.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Trusts `issuer` (its JWKS file or URL).
    pub fn issuer(mut self, issuer: &TestIssuer) -> Self {
        self.issuers.push(issuer.config_yaml());
        self
    }

    /// Adds a raw YAML issuer entry (indented list item body).
    pub fn issuer_yaml(mut self, yaml: &str) -> Self {
        self.issuers.push(yaml.to_owned());
        self
    }

    /// Adds a route `path` → `upstream`, resource `resource`, plus extra YAML lines.
    pub fn route(mut self, path: &str, upstream: &str, resource: &str, extra: &str) -> Self {
        let mut r =
            format!("  - path: {path}\n    upstream: {upstream}\n    resource: {resource}\n");
        // Keep nesting: strip only the indentation common to every line.
        let lines: Vec<&str> = extra.lines().filter(|l| !l.trim().is_empty()).collect();
        let indent = lines
            .iter()
            .map(|l| l.len() - l.trim_start().len())
            .min()
            .unwrap_or(0);
        for line in lines {
            r.push_str(&format!("    {}\n", &line[indent..]));
        }
        self.routes.push(r);
        self
    }

    /// Adds top-level YAML (e.g. a `limits:` block).
    pub fn extra(mut self, yaml: &str) -> Self {
        self.extra.push_str(yaml);
        self.extra.push('\n');
        self
    }

    /// Listens on this port instead of 0 (for OAuth tests whose resource URL
    /// must be known before the gateway starts).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Serves HTTPS with these PEM files.
    pub fn tls(mut self, cert: PathBuf, key: PathBuf) -> Self {
        self.tls = Some((cert, key));
        self
    }

    /// The config file text.
    pub fn yaml(&self) -> String {
        let mut y = format!("listen: 127.0.0.1:{}\n", self.port);
        if let Some((cert, key)) = &self.tls {
            y.push_str(&format!(
                "tls:\n  cert: {}\n  key: {}\n",
                cert.display(),
                key.display()
            ));
        }
        y.push_str("issuers:\n");
        for i in &self.issuers {
            y.push_str(i);
        }
        y.push_str("routes:\n");
        for r in &self.routes {
            y.push_str(r);
        }
        y.push_str(&self.extra);
        y
    }

    /// Runs with `--workers n` (default: one per CPU).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = Some(n);
        self
    }

    /// Writes the config and starts the gateway; waits for its startup line.
    pub fn spawn(self) -> Gateway {
        let path = self.dir.path().join("gateway.yaml");
        std::fs::write(&path, self.yaml()).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mcp-auth-gateway"));
        if let Some(n) = self.workers {
            cmd.arg("--workers").arg(n.to_string());
        }
        let mut child = cmd
            .arg("--config")
            .arg(&path)
            .env("RUST_LOG", "info,mcp_auth_gateway=debug")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the gateway binary");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[gateway] {line}");
                if let Some(url) = line.split("listening on ").nth(1) {
                    let url = url.split_whitespace().next().unwrap_or_default().to_owned();
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(url);
                    }
                }
                sink.lock().unwrap().push(line);
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "gateway did not print its startup line; log: {:?}",
                    log.lock().unwrap()
                );
            }
        };
        let (scheme, addr) = url.split_once("://").unwrap();
        Gateway {
            child,
            addr: addr.parse().unwrap(),
            scheme: if scheme == "https" { "https" } else { "http" },
            log,
            config_path: path,
            _dir: self.dir,
        }
    }
}

impl Gateway {
    /// `scheme://addr{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{}", self.scheme, self.addr, path)
    }

    /// POSTs `body` to `path` with `authorization: <auth>` as its only
    /// header; check the reply with [`Reply::assert_status`].
    pub async fn post(&self, path: &str, auth: &str, body: &str) -> Reply {
        super::send("POST", &self.url(path), &[("authorization", auth)], body).await
    }

    /// Sends a signal (`HUP`, `TERM`) to the gateway process.
    /// The names of the process's threads (`/proc/<pid>/task/*/comm`).
    pub fn thread_names(&self) -> Vec<String> {
        let tasks = format!("/proc/{}/task", self.child.id());
        std::fs::read_dir(tasks)
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .map(|n| n.trim().to_owned())
            .collect()
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// The admin listener's URL for `path` (needs `admin_listen` in the config).
    pub fn admin_url(&self, path: &str) -> String {
        let log = self.log.lock().unwrap();
        let line = log
            .iter()
            .find_map(|l| l.split("admin listener on ").nth(1))
            .expect("no admin listener in the log");
        format!("{}{path}", line.split_whitespace().next().unwrap())
    }

    /// Waits until a stderr line contains `needle`.
    pub async fn wait_for_log(&self, needle: &str) {
        for _ in 0..200 {
            if self.logged(needle) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("gateway never logged {needle:?}");
    }

    /// Waits until everything logged so far has been written: the log writer
    /// is a FIFO, so once a marker request's line shows up, all earlier lines
    /// have too. Negative log checks must call this first.
    pub async fn sync_logs(&self) {
        let marker = format!("/log-sync-{}", std::process::id());
        let _ = super::send("GET", &self.url(&marker), &[], "").await;
        self.wait_for_log(&marker).await;
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        self.child.try_wait().unwrap().is_some()
    }

    /// Whether any stderr line so far contains `needle`.
    pub fn logged(&self, needle: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    /// Waits until `/readyz` answers 200 (keys loaded).
    pub async fn wait_ready(&self) {
        for _ in 0..100 {
            if super::send("GET", &self.url("/readyz"), &[], "")
                .await
                .status
                == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("gateway never became ready");
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
