//! Hot reload: on SIGHUP, and when the config file changes, build and validate
//! a whole new config off the request path and swap it in; an invalid one is
//! logged and the old one kept.
//!
//! The watcher observes the file's *directory*, so editors' atomic renames and
//! Kubernetes ConfigMap updates (a `..data` symlink swap) are seen. Events are
//! debounced: one reload per burst.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::Config;
use crate::gateway::Gateway;

/// Quiet time after the last file event before reloading.
const DEBOUNCE: Duration = Duration::from_millis(250);

/// Starts the reload loop for `path`.
pub fn spawn(path: PathBuf, gateway: Arc<Gateway>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<&'static str>();

    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let file_tx = tx.clone();
    let name = path.file_name().map(std::ffi::OsStr::to_os_string);
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Only the config file itself, or Kubernetes' `..data` symlink swap:
        // other files in the directory (a log, say) must not cost a reload check.
        let relevant = event.is_ok_and(|e| {
            !e.kind.is_access()
                && e.paths.iter().any(|p| {
                    let file = p.file_name();
                    file == name.as_deref()
                        || file.is_some_and(|f| f.to_string_lossy().starts_with(".."))
                })
        });
        // A failed send means the reload task has ended: nothing to do.
        if relevant && file_tx.send("file change").is_err() {
            tracing::debug!("config change seen after the reload task ended");
        }
    })
    .and_then(|mut w| w.watch(&dir, RecursiveMode::NonRecursive).map(|()| w));
    let watcher = match watcher {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the config directory; reload with SIGHUP");
            None
        }
    };

    tokio::spawn(async move {
        loop {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
                Ok(mut hup) => {
                    while hup.recv().await.is_some() {
                        if tx.send("SIGHUP").is_err() {
                            return; // the reload task has ended
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGHUP");
                    return;
                }
            }
        }
    });

    tokio::spawn(async move {
        // Keep the watcher alive as long as the loop runs.
        let _watcher = watcher;
        let mut last = std::fs::read(&path).ok();
        while let Some(mut cause) = rx.recv().await {
            // Debounce a burst of events into one reload.
            while let Ok(Some(next)) = tokio::time::timeout(DEBOUNCE, rx.recv()).await {
                if next == "SIGHUP" {
                    cause = next;
                }
            }
            let current = std::fs::read(&path).ok();
            if cause != "SIGHUP" && current == last {
                continue;
            }
            last = current;
            reload(&path, &gateway, cause).await;
        }
    });
}

async fn reload(path: &Path, gateway: &Gateway, cause: &str) {
    match Config::load(path) {
        Ok((config, warnings)) => {
            for w in warnings {
                tracing::warn!(problem = %w, "config warning");
            }
            gateway.reload(config).await;
            gateway
                .metrics()
                .reloads
                .get_or_create(&vec![("result".into(), "ok".into())])
                .inc();
            tracing::info!(cause, "config reloaded");
        }
        Err(e) => {
            gateway
                .metrics()
                .reloads
                .get_or_create(&vec![("result".into(), "error".into())])
                .inc();
            tracing::error!(cause, error = %e, "config reload rejected; keeping the current config");
        }
    }
}
