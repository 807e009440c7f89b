//! Helpers for the deploy checks: files under `deploy/`, YAML look-ups by
//! dotted path, Helm's values merge, `mcp-auth-gateway check`, and the
//! optional external tools (`helm`, `hadolint`).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_yaml::Value;

/// A path under `deploy/`.
pub(crate) fn deploy(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(rel)
}

pub(crate) fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every non-empty document of a (multi-document) YAML text.
pub(crate) fn docs(text: &str, what: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{what}: not YAML: {e}\n{text}")))
        .filter(|v: &Value| !v.is_null())
        .collect()
}

/// A one-document YAML file.
pub(crate) fn yaml(path: &Path) -> Value {
    let mut all = docs(&read(path), &path.display().to_string());
    assert_eq!(all.len(), 1, "{}: one document expected", path.display());
    all.remove(0)
}

pub(crate) fn yaml_str(text: &str) -> Value {
    serde_yaml::from_str(text).unwrap()
}

pub(crate) fn to_yaml(v: &Value) -> String {
    serde_yaml::to_string(v).unwrap()
}

/// A ConfigMap's `gateway.yaml` (its key has a dot, so not via `at`).
pub(crate) fn gateway_yaml(config_map: &Value) -> &str {
    config_map["data"]["gateway.yaml"]
        .as_str()
        .expect("ConfigMap without data.gateway.yaml")
}

/// The value at a dotted path (`a.b.0.c`; digits index sequences), if any.
/// Keys that contain a dot need `Value`'s indexing instead.
pub(crate) fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(v, |v, seg| match seg.parse::<usize>() {
            Ok(i) if v.is_sequence() => v.get(i),
            _ => v.get(seg),
        })
}

pub(crate) fn must<'a>(v: &'a Value, path: &str) -> &'a Value {
    at(v, path).unwrap_or_else(|| panic!("missing `{path}` in:\n{}", to_yaml(v)))
}

pub(crate) fn text<'a>(v: &'a Value, path: &str) -> &'a str {
    must(v, path)
        .as_str()
        .unwrap_or_else(|| panic!("`{path}` is not a string"))
}

pub(crate) fn seq<'a>(v: &'a Value, path: &str) -> &'a [Value] {
    must(v, path)
        .as_sequence()
        .unwrap_or_else(|| panic!("`{path}` is not a list"))
}

/// The element of a list of objects whose `name` is `name`.
pub(crate) fn named<'a>(list: &'a [Value], name: &str) -> &'a Value {
    list.iter()
        .find(|c| c.get("name").and_then(Value::as_str) == Some(name))
        .unwrap_or_else(|| panic!("no entry named `{name}`"))
}

/// The one document of `kind`.
pub(crate) fn of_kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<_> = docs
        .iter()
        .filter(|d| d.get("kind").and_then(Value::as_str) == Some(kind))
        .collect();
    assert_eq!(found.len(), 1, "exactly one {kind} expected");
    found[0]
}

/// Helm's values merge: maps key by key, anything else replaced, null deletes.
fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match (b.get_mut(k), v) {
                    (_, Value::Null) => {
                        b.remove(k);
                    }
                    (Some(bv @ Value::Mapping(_)), Value::Mapping(_)) => merge(bv, v),
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// The chart's default values, or the example values merged over them.
pub(crate) fn chart_values(example: bool) -> Value {
    let mut values = yaml(&deploy(crate::CHART).join("values.yaml"));
    if example {
        merge(&mut values, &yaml(&deploy(crate::EXAMPLE)));
    }
    values
}

/// Writes `config` to a temp dir and runs `mcp-auth-gateway check` on it, with
/// every `${VAR}` it names set to a 48-character value.
pub(crate) fn check_config(config: &str, what: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.yaml");
    std::fs::write(&path, config).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mcp-auth-gateway"));
    cmd.args(["check", "--config"]).arg(&path);
    let vars = regex::Regex::new(r"\$\{(\w+)\}").unwrap();
    for var in vars.captures_iter(config) {
        cmd.env(&var[1], "k".repeat(48));
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{what}: check failed:\n{}{}\n--- config ---\n{config}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An external tool, from PATH or the test peers' venv. `None` means the
/// caller skips (and this says so on stderr), unless
/// `MCP_GATEWAY_REQUIRE_LINTERS` is set, which makes a missing tool a failure.
pub(crate) fn tool(name: &str) -> Option<PathBuf> {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/.venv/bin");
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([venv])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("MCP_GATEWAY_REQUIRE_LINTERS").is_none(),
            "`{name}` is required (MCP_GATEWAY_REQUIRE_LINTERS) but not installed"
        );
        eprintln!(
            "deploy: skipped: `{name}` is not installed (not on PATH or in tests/peers/.venv/bin; see deploy/README.md)"
        );
    }
    found
}

/// Runs `cmd`, which must succeed; returns its stdout.
pub(crate) fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs `cmd`, which must fail; returns its stderr.
pub(crate) fn run_failing(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "{cmd:?} succeeded but must fail:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}
