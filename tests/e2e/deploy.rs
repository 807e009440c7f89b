//! Deployment artifacts under `deploy/`: the Kubernetes sidecar example, the
//! Helm chart and the Dockerfile. They parse, the gateway configs they carry
//! pass `mcp-auth-gateway check`, and they have the properties a production pod
//! needs (probes, non-root, read-only root, drain time, TLS, loopback upstream).
//!
//! `helm` and `hadolint` are used when installed (PATH, or `tests/peers/.venv/bin`);
//! set `MCP_GATEWAY_REQUIRE_LINTERS=1` to fail instead of skipping without them.
//! Without `helm`, the chart is rendered by `tpl` below, a small interpreter
//! for the template subset the chart uses; deploy/README.md says what that
//! covers and what it cannot.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_yaml::Value;

const SIDECAR: &str = "kubernetes/sidecar.yaml";
const CHART: &str = "helm/mcp-auth-gateway";
const EXAMPLE: &str = "helm/examples/standalone-values.yaml";
const CONFIG_DIR: &str = "/etc/mcp-auth-gateway";

fn deploy(rel: &str) -> PathBuf {
    crate::support::repo_root().join("deploy").join(rel)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every non-empty document of a (multi-document) YAML text.
fn docs(text: &str, what: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{what}: not YAML: {e}\n{text}")))
        .filter(|v: &Value| !v.is_null())
        .collect()
}

/// A ConfigMap's `gateway.yaml` (its key has a dot, so not via `at`).
fn gateway_yaml(config_map: &Value) -> &str {
    config_map["data"]["gateway.yaml"]
        .as_str()
        .expect("ConfigMap without data.gateway.yaml")
}

fn yaml(path: &Path) -> Value {
    let mut all = docs(&read(path), &path.display().to_string());
    assert_eq!(all.len(), 1, "{}: one document expected", path.display());
    all.remove(0)
}

/// The value at a dotted path (`a.b.0.c`; digits index sequences), if any.
/// Keys that contain a dot need `Value`'s indexing instead.
fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(v, |v, seg| match seg.parse::<usize>() {
            Ok(i) if v.is_sequence() => v.get(i),
            _ => v.get(seg),
        })
}

fn must<'a>(v: &'a Value, path: &str) -> &'a Value {
    at(v, path).unwrap_or_else(|| panic!("missing `{path}` in:\n{}", to_yaml(v)))
}

fn text<'a>(v: &'a Value, path: &str) -> &'a str {
    must(v, path)
        .as_str()
        .unwrap_or_else(|| panic!("`{path}` is not a string"))
}

fn to_yaml(v: &Value) -> String {
    serde_yaml::to_string(v).unwrap()
}

fn seq<'a>(v: &'a Value, path: &str) -> &'a [Value] {
    must(v, path)
        .as_sequence()
        .unwrap_or_else(|| panic!("`{path}` is not a list"))
}

/// The element of a list of objects whose `name` is `name`.
fn named<'a>(list: &'a [Value], name: &str) -> &'a Value {
    list.iter()
        .find(|c| c.get("name").and_then(Value::as_str) == Some(name))
        .unwrap_or_else(|| panic!("no entry named `{name}`"))
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<_> = docs
        .iter()
        .filter(|d| d.get("kind").and_then(Value::as_str) == Some(kind))
        .collect();
    assert_eq!(found.len(), 1, "exactly one {kind} expected");
    found[0]
}

/// Writes `config` to a temp dir and runs `mcp-auth-gateway check` on it, with
/// every `${VAR}` it names set to a 48-character value.
fn check_config(config: &str, what: &str) {
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

/// `limits.shutdown_grace` of a gateway config, in seconds (default 25).
fn shutdown_grace(config: &Value) -> u64 {
    at(config, "limits.shutdown_grace")
        .and_then(Value::as_str)
        .map_or(25, |s| humantime::parse_duration(s).unwrap().as_secs())
}

/// The port of a `host:port` listen address.
fn port_of(addr: &str) -> u64 {
    addr.rsplit(':').next().unwrap().parse().unwrap()
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
fn chart_values(example: bool) -> Value {
    let mut values = yaml(&deploy(CHART).join("values.yaml"));
    if example {
        merge(&mut values, &yaml(&deploy(EXAMPLE)));
    }
    values
}

/// An external tool, from PATH or the test peers' venv; `None` means skip,
/// unless `MCP_GATEWAY_REQUIRE_LINTERS` is set.
fn tool(name: &str) -> Option<PathBuf> {
    let venv = crate::support::repo_root().join("tests/peers/.venv/bin");
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
        eprintln!("deploy: `{name}` not installed; skipping (see deploy/README.md)");
    }
    found
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn yaml_files_parse() {
    let mut files = Vec::new();
    let mut dirs = vec![deploy("kubernetes"), deploy("helm")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let ext = path.extension().and_then(|e| e.to_str());
            // Templates are Go templates, not YAML; they are rendered below.
            if path.is_dir() && !path.ends_with("templates") {
                dirs.push(path);
            } else if matches!(ext, Some("yaml" | "yml")) {
                files.push(path);
            }
        }
    }
    for must_exist in [SIDECAR, EXAMPLE, "helm/mcp-auth-gateway/values.yaml"] {
        assert!(files.contains(&deploy(must_exist)), "{must_exist} missing");
    }
    for file in &files {
        let all = docs(&read(file), &file.display().to_string());
        assert!(!all.is_empty(), "{}: empty", file.display());
        if file.starts_with(deploy("kubernetes")) {
            for doc in &all {
                for key in ["apiVersion", "kind", "metadata.name"] {
                    must(doc, key);
                }
            }
        }
    }
}

#[test]
fn embedded_configs_pass_check() {
    let sidecar = docs(&read(&deploy(SIDECAR)), SIDECAR);
    let cm = of_kind(&sidecar, "ConfigMap");
    check_config(gateway_yaml(cm), "sidecar.yaml ConfigMap");
    for example in [false, true] {
        let config = must(&chart_values(example), "config").clone();
        check_config(
            &to_yaml(&config),
            &format!("chart config (example: {example})"),
        );
    }
}

#[test]
fn sidecar_manifest_has_probes_security_context_drain_and_tls() {
    let all = docs(&read(&deploy(SIDECAR)), SIDECAR);
    let config = yaml_str(gateway_yaml(of_kind(&all, "ConfigMap")));
    let config_map = text(of_kind(&all, "ConfigMap"), "metadata.name");
    let pod = must(of_kind(&all, "Deployment"), "spec.template.spec");
    let containers = seq(pod, "containers");
    let gateway = named(containers, "gateway");

    // Upstream on the pod's loopback, port 3000, not published.
    let route = must(&config, "routes.0");
    assert_eq!(text(route, "upstream"), "http://127.0.0.1:3000/mcp");
    let server = named(containers, "mcp-server");
    assert_eq!(text(named(seq(server, "env"), "PORT"), "value"), "3000");
    assert!(
        server.get("ports").is_none(),
        "the MCP server must not publish a port"
    );

    // TLS on 8443 from the Secret, mounted where the config reads it.
    assert_eq!(port_of(text(&config, "listen")), 8443);
    let https = named(seq(gateway, "ports"), "https");
    assert_eq!(must(https, "containerPort").as_u64(), Some(8443));
    let tls = named(seq(pod, "volumes"), "tls");
    assert_eq!(text(tls, "secret.secretName"), "mcp-gateway-tls");
    let mounts = seq(gateway, "volumeMounts");
    let tls_dir = text(named(mounts, "tls"), "mountPath");
    assert_eq!(tls_dir, "/etc/mcp-auth-gateway/tls");
    for file in ["tls.cert", "tls.key"] {
        assert!(
            text(&config, file).starts_with(&format!("{tls_dir}/")),
            "{file}"
        );
    }

    // Config mounted as a directory (a subPath mount never sees updates).
    let cfg = named(mounts, "config");
    assert_eq!(text(cfg, "mountPath"), CONFIG_DIR);
    assert!(cfg.get("subPath").is_none(), "subPath breaks hot reload");
    assert_eq!(
        text(named(seq(pod, "volumes"), "config"), "configMap.name"),
        config_map
    );
    assert!(
        seq(gateway, "args")
            .iter()
            .any(|a| a.as_str() == Some("/etc/mcp-auth-gateway/gateway.yaml"))
    );

    // Session key from a Secret, for `${SESSION_KEY}`.
    assert_eq!(text(&config, "session_binding.key"), "${SESSION_KEY}");
    let env = named(seq(gateway, "env"), "SESSION_KEY");
    must(env, "valueFrom.secretKeyRef.name");

    assert_probes_and_security(pod, gateway, &config);
    let admin = port_of(text(&config, "admin_listen"));
    assert_eq!(
        must(named(seq(gateway, "ports"), "admin"), "containerPort").as_u64(),
        Some(admin)
    );

    // Only the gateway's ports are reachable from outside the pod.
    let svc = of_kind(&all, "Service");
    assert_eq!(text(svc, "spec.ports.0.targetPort"), "https");
    let policy = of_kind(&all, "NetworkPolicy");
    let allowed: Vec<_> = seq(policy, "spec.ingress")
        .iter()
        .flat_map(|rule| seq(rule, "ports").iter().map(|p| must(p, "port").as_u64()))
        .collect();
    assert_eq!(allowed, [Some(8443), Some(admin)]);
}

fn yaml_str(text: &str) -> Value {
    serde_yaml::from_str(text).unwrap()
}

/// Probes on the admin port, the restricted security context, requests and
/// limits, and a grace period longer than the drain.
fn assert_probes_and_security(pod: &Value, gateway: &Value, config: &Value) {
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = must(gateway, &format!("{probe}.httpGet"));
        assert_eq!(text(get, "path"), path, "{probe}");
        assert_eq!(text(get, "port"), "admin", "{probe}");
    }
    assert!(
        config.get("admin_listen").is_some(),
        "probes need admin_listen"
    );

    let sc = must(gateway, "securityContext");
    for (key, want) in [
        ("runAsNonRoot", "true"),
        ("runAsUser", "65532"),
        ("allowPrivilegeEscalation", "false"),
        ("readOnlyRootFilesystem", "true"),
        ("seccompProfile.type", "RuntimeDefault"),
    ] {
        assert_eq!(must(sc, key), &yaml_str(want), "securityContext.{key}");
    }
    assert_eq!(seq(sc, "capabilities.drop"), [Value::from("ALL")]);
    assert_eq!(
        must(pod, "securityContext.runAsNonRoot"),
        &Value::Bool(true)
    );
    for key in [
        "requests.cpu",
        "requests.memory",
        "limits.cpu",
        "limits.memory",
    ] {
        must(gateway, &format!("resources.{key}"));
    }

    let grace = must(pod, "terminationGracePeriodSeconds").as_u64().unwrap();
    assert!(
        grace > shutdown_grace(config),
        "terminationGracePeriodSeconds {grace} must exceed shutdown_grace {}s",
        shutdown_grace(config)
    );
}

#[test]
fn helm_chart_metadata_matches_the_crate() {
    let chart = yaml(&deploy(CHART).join("Chart.yaml"));
    assert_eq!(text(&chart, "apiVersion"), "v2");
    assert_eq!(text(&chart, "name"), "mcp-auth-gateway");
    assert_eq!(text(&chart, "appVersion"), env!("CARGO_PKG_VERSION"));
    let version = text(&chart, "version");
    assert_eq!(
        version
            .split('.')
            .filter(|p| p.parse::<u64>().is_ok())
            .count(),
        3,
        "{version}"
    );
    for t in [
        "_helpers.tpl",
        "configmap.yaml",
        "deployment.yaml",
        "service.yaml",
        "NOTES.txt",
    ] {
        assert!(deploy(CHART).join("templates").join(t).is_file(), "{t}");
    }
}

fn templates() -> Vec<(String, String)> {
    let mut all: Vec<_> = std::fs::read_dir(deploy(CHART).join("templates"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                read(&p),
            )
        })
        .collect();
    all.sort();
    all
}

/// Values whose keys are the user's (Kubernetes objects, the gateway config
/// which `check` validates), not the chart's.
const FREE_FORM: [&str; 8] = [
    "config",
    "upstream.container",
    "podAnnotations",
    "resources",
    "securityContext",
    "podSecurityContext",
    "nodeSelector",
    "affinity",
];

/// Key paths under `a` that `b` lacks, down to the free-form values.
fn unknown_keys(a: &Value, b: &Value, prefix: &str, out: &mut Vec<String>) {
    let Some(a) = a.as_mapping() else { return };
    for (k, v) in a {
        let key = format!("{prefix}{}", k.as_str().unwrap_or("?"));
        match b.get(k) {
            None => out.push(key),
            Some(d) if d.is_mapping() && !FREE_FORM.contains(&key.as_str()) => {
                unknown_keys(v, d, &format!("{key}."), out);
            }
            Some(_) => {}
        }
    }
}

#[test]
fn helm_templates_only_reference_existing_values() {
    let reference = regex::Regex::new(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)").unwrap();
    let defaults = chart_values(false);
    let merged = chart_values(true);
    let mut seen = BTreeSet::new();
    for (name, src) in templates() {
        for cap in reference.captures_iter(&src) {
            let path = &cap[1][1..];
            seen.insert(path.to_owned());
            assert!(
                at(&defaults, path).is_some(),
                "{name}: .Values.{path} not in values.yaml"
            );
            assert!(
                at(&merged, path).is_some(),
                "{name}: .Values.{path} removed by the example"
            );
        }
    }
    assert!(
        seen.contains("config") && seen.contains("upstream.container"),
        "{seen:?}"
    );
    // Helm ignores unknown keys silently; a typo in the example would too.
    let mut unknown = Vec::new();
    unknown_keys(&yaml(&deploy(EXAMPLE)), &defaults, "", &mut unknown);
    assert!(
        unknown.is_empty(),
        "example keys not in values.yaml: {unknown:?}"
    );
}

/// Renders every template with `tpl`; `.yaml` ones must be YAML.
fn render_chart(values: &Value) -> Result<(Vec<Value>, String), String> {
    let chart = yaml(&deploy(CHART).join("Chart.yaml"));
    let mut chart_obj = serde_yaml::Mapping::new();
    for (k, v) in chart.as_mapping().unwrap() {
        let k = k.as_str().unwrap();
        let cap = k[..1].to_uppercase() + &k[1..];
        chart_obj.insert(cap.into(), v.clone());
    }
    let mut root = serde_yaml::Mapping::new();
    let release = yaml_str("{Name: test, Namespace: default, Service: Helm}");
    root.insert("Release".into(), release);
    root.insert("Chart".into(), chart_obj.into());
    root.insert("Values".into(), values.clone());
    let root = Value::Mapping(root);
    let sources = templates();
    let mut defines = HashMap::new();
    let mut parsed = Vec::new();
    for (name, src) in &sources {
        let nodes = tpl::parse(src, &mut defines).map_err(|e| format!("{name}: {e}"))?;
        parsed.push((name, nodes));
    }
    let (mut out, mut notes) = (Vec::new(), String::new());
    for (name, nodes) in parsed {
        let text = tpl::render(&nodes, &root, &defines).map_err(|e| format!("{name}: {e}"))?;
        if name.ends_with(".yaml") {
            out.extend(docs(&text, name));
        } else if name == "NOTES.txt" {
            notes = text;
        }
    }
    Ok((out, notes))
}

/// What both renderers' output must show, for one mode.
fn assert_chart_output(all: &[Value], values: &Value) {
    let mode = text(values, "mode");
    let config_text = gateway_yaml(of_kind(all, "ConfigMap"));
    let config = yaml_str(config_text);
    assert_eq!(
        &config,
        must(values, "config"),
        "ConfigMap must carry `config` as is"
    );
    check_config(config_text, &format!("rendered ConfigMap ({mode})"));

    let deployment = of_kind(all, "Deployment");
    let pod = must(deployment, "spec.template.spec");
    let containers = seq(pod, "containers");
    let gateway = named(containers, "gateway");
    assert_probes_and_security(pod, gateway, &config);
    let names: Vec<_> = containers.iter().map(|c| text(c, "name")).collect();
    match mode {
        "sidecar" => assert_eq!(names, [text(values, "upstream.container.name"), "gateway"]),
        _ => assert_eq!(names, ["gateway"]),
    }
    let https = must(named(seq(gateway, "ports"), "https"), "containerPort");
    assert_eq!(https.as_u64(), Some(port_of(text(&config, "listen"))));
    let admin = must(named(seq(gateway, "ports"), "admin"), "containerPort");
    assert_eq!(admin.as_u64(), Some(port_of(text(&config, "admin_listen"))));

    let volumes = seq(pod, "volumes");
    let cm_name = text(of_kind(all, "ConfigMap"), "metadata.name");
    assert_eq!(text(named(volumes, "config"), "configMap.name"), cm_name);
    let tls = text(named(volumes, "tls"), "secret.secretName");
    assert_eq!(tls, text(values, "tls.secretName"));
    let mounts = seq(gateway, "volumeMounts");
    assert_eq!(text(named(mounts, "config"), "mountPath"), CONFIG_DIR);
    assert!(named(mounts, "config").get("subPath").is_none());
    assert_eq!(
        text(named(mounts, "tls"), "mountPath"),
        "/etc/mcp-auth-gateway/tls"
    );
    let key = named(seq(gateway, "env"), "SESSION_KEY");
    assert_eq!(
        text(key, "valueFrom.secretKeyRef.name"),
        text(values, "sessionKey.secretName")
    );

    let selector = must(deployment, "spec.selector.matchLabels");
    let service = of_kind(all, "Service");
    assert_eq!(must(service, "spec.selector"), selector);
    for (k, v) in selector.as_mapping().unwrap() {
        assert_eq!(
            pod_template_labels(deployment).get(k),
            Some(v),
            "pod label {k:?}"
        );
    }
    assert_eq!(text(service, "spec.ports.0.targetPort"), "https");
    assert_eq!(
        must(deployment, "spec.replicas").as_u64(),
        must(values, "replicaCount").as_u64()
    );
}

fn pod_template_labels(deployment: &Value) -> &Value {
    must(deployment, "spec.template.metadata.labels")
}

#[test]
fn helm_chart_renders_both_modes() {
    for example in [false, true] {
        let values = chart_values(example);
        let (all, notes) = render_chart(&values).unwrap();
        let kinds: BTreeSet<_> = all.iter().map(|d| text(d, "kind")).collect();
        let want = ["ConfigMap", "Deployment", "NetworkPolicy", "Service"];
        assert_eq!(kinds, want.into_iter().collect(), "example: {example}");
        assert_chart_output(&all, &values);
        assert!(
            notes.contains(&format!("({} mode)", text(&values, "mode"))),
            "{notes}"
        );
    }
    let mut bad = chart_values(false);
    bad["mode"] = "both".into();
    let err = render_chart(&bad).unwrap_err();
    assert!(err.contains("mode must be sidecar or standalone"), "{err}");
    let mut no_upstream = chart_values(false);
    no_upstream["upstream"]["container"] = Value::Null;
    assert!(
        render_chart(&no_upstream)
            .unwrap_err()
            .contains("upstream.container is required")
    );
    let mut no_policy = chart_values(false);
    no_policy["networkPolicy"]["enabled"] = false.into();
    let (all, _) = render_chart(&no_policy).unwrap();
    assert!(all.iter().all(|d| text(d, "kind") != "NetworkPolicy"));
}

#[test]
fn helm_lint_and_template_when_helm_is_installed() {
    let Some(helm) = tool("helm") else { return };
    let chart = deploy(CHART);
    for example in [false, true] {
        let mut lint = Command::new(&helm);
        lint.arg("lint").arg(&chart);
        let mut template = Command::new(&helm);
        template.args(["template", "test"]).arg(&chart);
        if example {
            lint.arg("-f").arg(deploy(EXAMPLE));
            template.arg("-f").arg(deploy(EXAMPLE));
        }
        run(&mut lint);
        let out = run(&mut template);
        assert_chart_output(&docs(&out, "helm template"), &chart_values(example));
    }
}

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

/// A renderer for the Go-template subset the chart uses, so the chart is
/// rendered even where `helm` is not installed. Supported: `{{- -}}` trimming,
/// comments, `define`/`include`, `if`/`else if`/`else`/`end`, `with`, field
/// paths from `.` and `$`, parentheses, pipelines, and the functions in
/// `call`. Anything else (`range`, variables, other functions) is an error,
/// so the chart cannot drift outside what this renders.
mod tpl {
    use std::collections::HashMap;

    use serde_yaml::Value;

    /// A parsed template.
    pub enum Node {
        Text(String),
        Out(Vec<Cmd>),
        If(Vec<Cmd>, Vec<Node>, Vec<Node>),
        With(Vec<Cmd>, Vec<Node>, Vec<Node>),
    }

    type Cmd = Vec<Arg>;

    pub enum Arg {
        Field(bool, Vec<String>),
        Lit(Value),
        Func(String),
        Paren(Vec<Cmd>),
    }

    enum Stop {
        Eof,
        End,
        Else,
        ElseIf(Vec<Cmd>),
    }

    /// Splits into text and actions, applying `{{-` / `-}}` trimming.
    fn lex(src: &str) -> Result<Vec<(bool, String)>, String> {
        let mut out: Vec<(bool, String)> = Vec::new();
        let (mut rest, mut trim_next) = (src, false);
        while !rest.is_empty() {
            let (text, action) = match rest.find("{{") {
                Some(i) => (&rest[..i], true),
                None => (rest, false),
            };
            let text = if trim_next { text.trim_start() } else { text };
            out.push((false, text.to_owned()));
            if !action {
                break;
            }
            let body_start = rest.find("{{").unwrap() + 2;
            let close = rest[body_start..].find("}}").ok_or("unclosed {{")? + body_start;
            let mut body = &rest[body_start..close];
            if let Some(b) = body.strip_prefix("- ") {
                body = b;
                let last = out.last_mut().unwrap();
                last.1 = last.1.trim_end().to_owned();
            }
            trim_next = body.ends_with(" -");
            body = body.strip_suffix(" -").unwrap_or(body).trim();
            if !(body.starts_with("/*") && body.ends_with("*/")) {
                out.push((true, body.to_owned()));
            }
            rest = &rest[close + 2..];
        }
        Ok(out)
    }

    /// Parses a template; `define`d blocks go into `defines`.
    pub fn parse(src: &str, defines: &mut HashMap<String, Vec<Node>>) -> Result<Vec<Node>, String> {
        let toks = lex(src)?;
        let mut pos = 0;
        let (nodes, end) = block(&toks, &mut pos, defines)?;
        match end {
            Stop::Eof => Ok(nodes),
            _ => Err("unexpected end/else".into()),
        }
    }

    fn block(
        toks: &[(bool, String)],
        pos: &mut usize,
        defines: &mut HashMap<String, Vec<Node>>,
    ) -> Result<(Vec<Node>, Stop), String> {
        let mut nodes = Vec::new();
        while let Some((action, body)) = toks.get(*pos) {
            *pos += 1;
            if !action {
                nodes.push(Node::Text(body.clone()));
                continue;
            }
            let (word, rest) = body.split_once(' ').unwrap_or((body, ""));
            match word {
                "end" => return Ok((nodes, Stop::End)),
                "else" if rest.starts_with("if ") => {
                    return Ok((nodes, Stop::ElseIf(pipeline(&words(&rest[3..])?)?)));
                }
                "else" => return Ok((nodes, Stop::Else)),
                "if" => nodes.push(if_node(pipeline(&words(rest)?)?, toks, pos, defines)?),
                "with" => {
                    let cond = pipeline(&words(rest)?)?;
                    let (body, end) = block(toks, pos, defines)?;
                    let other = match end {
                        Stop::End => Vec::new(),
                        Stop::Else => closed(toks, pos, defines)?,
                        _ => return Err("unclosed with".into()),
                    };
                    nodes.push(Node::With(cond, body, other));
                }
                "define" => {
                    let name = rest.trim().trim_matches('"').to_owned();
                    let body = closed(toks, pos, defines)?;
                    defines.insert(name, body);
                }
                "range" | "template" | "block" | "break" | "continue" => {
                    return Err(format!("`{word}` is not supported by this renderer"));
                }
                _ if body.contains(":=") || body.contains(" = ") => {
                    return Err("variables are not supported by this renderer".into());
                }
                _ => nodes.push(Node::Out(pipeline(&words(body)?)?)),
            }
        }
        Ok((nodes, Stop::Eof))
    }

    /// A block that must end with `end`.
    fn closed(
        toks: &[(bool, String)],
        pos: &mut usize,
        defines: &mut HashMap<String, Vec<Node>>,
    ) -> Result<Vec<Node>, String> {
        match block(toks, pos, defines)? {
            (nodes, Stop::End) => Ok(nodes),
            _ => Err("block without its end".into()),
        }
    }

    fn if_node(
        cond: Vec<Cmd>,
        toks: &[(bool, String)],
        pos: &mut usize,
        defines: &mut HashMap<String, Vec<Node>>,
    ) -> Result<Node, String> {
        let (then, end) = block(toks, pos, defines)?;
        let other = match end {
            Stop::End => Vec::new(),
            Stop::Else => closed(toks, pos, defines)?,
            // `else if` shares the outer `end`.
            Stop::ElseIf(c) => vec![if_node(c, toks, pos, defines)?],
            Stop::Eof => return Err("unclosed if".into()),
        };
        Ok(Node::If(cond, then, other))
    }

    /// Words, strings, `(`, `)` and `|` of an action.
    fn words(s: &str) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        let mut chars = s.chars().peekable();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                chars.next();
            } else if "()|".contains(c) {
                out.push(chars.next().unwrap().to_string());
            } else if c == '"' {
                let mut lit = String::from(chars.next().unwrap());
                loop {
                    let c = chars.next().ok_or("unterminated string")?;
                    lit.push(c);
                    if c == '\\' {
                        lit.push(chars.next().ok_or("bad escape")?);
                    } else if c == '"' {
                        break;
                    }
                }
                out.push(lit);
            } else {
                let mut w = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || "()|".contains(c) {
                        break;
                    }
                    w.push(chars.next().unwrap());
                }
                out.push(w);
            }
        }
        Ok(out)
    }

    fn pipeline(words: &[String]) -> Result<Vec<Cmd>, String> {
        let mut cmds = vec![Vec::new()];
        let mut i = 0;
        while i < words.len() {
            let w = &words[i];
            let arg = match w.as_str() {
                "|" => {
                    cmds.push(Vec::new());
                    i += 1;
                    continue;
                }
                "(" => {
                    let mut depth = 0;
                    let start = i + 1;
                    loop {
                        match words.get(i).map(String::as_str) {
                            Some("(") => depth += 1,
                            Some(")") => depth -= 1,
                            None => return Err("unbalanced (".into()),
                            _ => {}
                        }
                        if depth == 0 {
                            break;
                        }
                        i += 1;
                    }
                    Arg::Paren(pipeline(&words[start..i])?)
                }
                _ if w.starts_with('"') => Arg::Lit(
                    serde_json::from_str::<String>(w)
                        .map_err(|e| e.to_string())?
                        .into(),
                ),
                _ if w.starts_with('.') || w.starts_with('$') => {
                    let root = w.starts_with('$');
                    let path = w
                        .trim_start_matches('$')
                        .split('.')
                        .filter(|s| !s.is_empty());
                    Arg::Field(root, path.map(str::to_owned).collect())
                }
                "true" | "false" => Arg::Lit(Value::Bool(w == "true")),
                _ if w.parse::<i64>().is_ok() => Arg::Lit(w.parse::<i64>().unwrap().into()),
                _ if w.chars().all(|c| c.is_ascii_alphanumeric()) => Arg::Func(w.clone()),
                _ => return Err(format!("cannot parse `{w}`")),
            };
            cmds.last_mut().unwrap().push(arg);
            i += 1;
        }
        if cmds.iter().any(Vec::is_empty) {
            return Err("empty command".into());
        }
        Ok(cmds)
    }

    struct Scope<'a> {
        root: &'a Value,
        defines: &'a HashMap<String, Vec<Node>>,
    }

    /// Renders parsed nodes with `root` as both `$` and `.`.
    pub fn render(
        nodes: &[Node],
        root: &Value,
        defines: &HashMap<String, Vec<Node>>,
    ) -> Result<String, String> {
        let mut out = String::new();
        exec(nodes, root, &Scope { root, defines }, &mut out)?;
        Ok(out)
    }

    fn exec(nodes: &[Node], dot: &Value, s: &Scope<'_>, out: &mut String) -> Result<(), String> {
        for node in nodes {
            match node {
                Node::Text(t) => out.push_str(t),
                Node::Out(p) => out.push_str(&show(&eval(p, dot, s)?)?),
                Node::If(c, then, other) => {
                    let branch = if truthy(&eval(c, dot, s)?) {
                        then
                    } else {
                        other
                    };
                    exec(branch, dot, s, out)?;
                }
                Node::With(c, then, other) => {
                    let v = eval(c, dot, s)?;
                    if truthy(&v) {
                        exec(then, &v, s, out)?;
                    } else {
                        exec(other, dot, s, out)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn eval(pipe: &[Cmd], dot: &Value, s: &Scope<'_>) -> Result<Value, String> {
        let mut piped = None;
        for cmd in pipe {
            let v = match &cmd[0] {
                Arg::Func(name) => {
                    let mut args = cmd[1..]
                        .iter()
                        .map(|a| arg(a, dot, s))
                        .collect::<Result<Vec<_>, _>>()?;
                    args.extend(piped.take());
                    call(name, args, s)?
                }
                a if cmd.len() == 1 && piped.is_none() => arg(a, dot, s)?,
                _ => return Err("a value cannot take arguments".into()),
            };
            piped = Some(v);
        }
        Ok(piped.unwrap_or(Value::Null))
    }

    fn arg(a: &Arg, dot: &Value, s: &Scope<'_>) -> Result<Value, String> {
        match a {
            Arg::Lit(v) => Ok(v.clone()),
            Arg::Paren(p) => eval(p, dot, s),
            Arg::Func(f) => call(f, Vec::new(), s),
            Arg::Field(root, path) => {
                let mut v = if *root { s.root } else { dot };
                for (i, seg) in path.iter().enumerate() {
                    v = match v {
                        Value::Mapping(m) => m.get(seg.as_str()).unwrap_or(&Value::Null),
                        // Go templates: a field of nil is an error, not nil.
                        _ => {
                            return Err(format!(
                                "nil pointer evaluating .{}",
                                path[..=i].join(".")
                            ));
                        }
                    };
                }
                Ok(v.clone())
            }
        }
    }

    fn truthy(v: &Value) -> bool {
        match v {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Number(n) => n.as_f64() != Some(0.0),
            Value::String(s) => !s.is_empty(),
            Value::Sequence(q) => !q.is_empty(),
            Value::Mapping(m) => !m.is_empty(),
            Value::Tagged(_) => true,
        }
    }

    fn show(v: &Value) -> Result<String, String> {
        match v {
            Value::Null => Ok(String::new()),
            Value::Bool(b) => Ok(b.to_string()),
            Value::Number(n) => Ok(n.to_string()),
            Value::String(s) => Ok(s.clone()),
            _ => Err("printing a map or list (use toYaml)".into()),
        }
    }

    fn call(name: &str, args: Vec<Value>, s: &Scope<'_>) -> Result<Value, String> {
        let arity = match name {
            "quote" | "toYaml" | "not" | "fail" => Some(1),
            "include" | "trunc" | "trimSuffix" | "default" | "indent" | "nindent" | "eq" | "ne"
            | "required" => Some(2),
            _ => None,
        };
        if arity.is_some_and(|n| n != args.len()) {
            return Err(format!(
                "{name}: {arity:?} arguments expected, got {}",
                args.len()
            ));
        }
        let text = |i: usize| {
            args.get(i)
                .map(show)
                .transpose()
                .map(Option::unwrap_or_default)
        };
        let int = |i: usize| {
            let n = args.get(i).and_then(Value::as_u64);
            n.map(|n| n as usize)
                .ok_or(format!("{name}: number expected"))
        };
        Ok(match name {
            "include" => {
                let body = s.defines.get(&text(0)?);
                let body = body.ok_or(format!("no template {:?}", text(0)?))?;
                let mut out = String::new();
                exec(body, &args[1], s, &mut out)?;
                out.into()
            }
            "printf" => {
                let mut out = text(0)?;
                for i in 1..args.len() {
                    out = out.replacen("%s", &text(i)?, 1);
                }
                if out.contains('%') {
                    return Err("printf: only %s is supported".into());
                }
                out.into()
            }
            "trunc" => text(1)?.chars().take(int(0)?).collect::<String>().into(),
            "trimSuffix" => {
                let (suffix, s) = (text(0)?, text(1)?);
                s.strip_suffix(&suffix).unwrap_or(&s).into()
            }
            "default" if truthy(&args[1]) => args[1].clone(),
            "default" => args[0].clone(),
            "quote" => serde_json::to_string(&text(0)?).unwrap().into(),
            "toYaml" => {
                let y = serde_yaml::to_string(&args[0]).map_err(|e| e.to_string())?;
                y.trim_end_matches('\n').into()
            }
            "indent" | "nindent" => {
                let pad = " ".repeat(int(0)?);
                let body = format!("{pad}{}", text(1)?.replace('\n', &format!("\n{pad}")));
                if name == "nindent" {
                    format!("\n{body}")
                } else {
                    body
                }
                .into()
            }
            "eq" => (args[0] == args[1]).into(),
            "ne" => (args[0] != args[1]).into(),
            "not" => (!truthy(&args[0])).into(),
            "and" => args
                .iter()
                .find(|v| !truthy(v))
                .or(args.last())
                .cloned()
                .unwrap_or_default(),
            "or" => args
                .iter()
                .find(|v| truthy(v))
                .or(args.last())
                .cloned()
                .unwrap_or_default(),
            "required" if args[1].is_null() || args[1].as_str() == Some("") => {
                return Err(text(0)?);
            }
            "required" => args[1].clone(),
            "fail" => return Err(text(0)?),
            _ => {
                return Err(format!(
                    "function `{name}` is not supported by this renderer"
                ));
            }
        })
    }
}
