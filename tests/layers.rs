//! The module graph is one-way (docs/request-path.md, "Layers"): every
//! top-level module of `src/` may use only modules that come before it in
//! [`ORDER`], leaves first, then config, telemetry, the stages in request
//! order, `reject`, the orchestrator and tools, and `server`. This reads every
//! `crate::` path outside `#[cfg(test)]` code and fails on any edge that
//! points forward, so no cycle between folders can grow back unnoticed.

#![expect(
    clippy::panic,
    clippy::expect_used,
    reason = "a test: an unplaced module or unreadable file must fail it loudly"
)]

use std::collections::BTreeSet;
use std::path::Path;

/// Top-level modules in dependency order: each may use only earlier ones.
const ORDER: &[&str] = &[
    // Leaves: no stage, no config.
    "body",
    "json",
    "uri",
    "mcp",
    "http_client",
    // The typed config (and the compiled policy it owns).
    "config",
    "telemetry",
    // The stages, in request order.
    "well_known",
    "cors",
    "authn",
    "throttle",
    "jsonrpc",
    "authz",
    "session",
    "forward",
    "filter",
    // The second plane: the built-in authorization server (its tokens reach
    // the stages only as keys handed to authn by the orchestrator).
    "authserver",
    // Stage errors → responses; no stage uses it.
    "reject",
    // The orchestrator, and the tools built on the stages.
    "gateway",
    "explain",
    "devtoken",
    // Listeners, workers, signals, reload.
    "server",
    "cli",
];

fn rank(module: &str) -> usize {
    ORDER
        .iter()
        .position(|m| *m == module)
        .unwrap_or_else(|| panic!("src/{module} is not placed in tests/layers.rs ORDER"))
}

/// The code of a file without its `#[cfg(test)]` module (always last, per
/// the house style).
fn non_test(text: &str) -> &str {
    text.find("#[cfg(test)]").map_or(text, |at| &text[..at])
}

/// Every `crate::<module>` a text names.
fn uses(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
    out
}

fn walk(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            walk(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

#[test]
fn imports_only_point_back_to_earlier_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    let mut violations = Vec::new();
    let mut edges = 0;
    for file in &files {
        let rel = file.strip_prefix(&src).expect("under src");
        let first = rel.components().next().expect("component");
        let module = first
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(file).expect("read");
        // `tests.rs` files and `*/tests/*` are test code.
        if rel.file_name().is_some_and(|n| n == "tests.rs")
            || rel.components().any(|c| c.as_os_str() == "tests")
        {
            continue;
        }
        for used in uses(non_test(&text)) {
            if used == module {
                continue;
            }
            edges += 1;
            if rank(&used) >= rank(&module) {
                violations.push(format!("{} uses crate::{used}", rel.display()));
            }
        }
    }
    assert!(
        edges > 50,
        "the scan found only {edges} edges: is it reading src/?"
    );
    assert!(
        violations.is_empty(),
        "imports that point forward (a later layer), see docs/request-path.md:\n{}",
        violations.join("\n")
    );
}

#[test]
fn every_module_is_placed() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for entry in std::fs::read_dir(&src).expect("read src") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        let module = name.trim_end_matches(".rs");
        if module != "lib" && module != "main" {
            rank(module);
        }
    }
}
