//! The YAML under `deploy/` parses, the gateway configs it carries pass
//! `check`, and the plain sidecar manifests have what a production pod needs.
//! [`assert_probes_and_security`] is also what `helm template` output must show.

use serde_yaml::Value;

use crate::support::{
    at, chart_values, check_config, deploy, docs, gateway_yaml, must, named, of_kind, read, seq,
    text, to_yaml, yaml_str,
};
use crate::{CONFIG_DIR, EXAMPLE, SIDECAR};

/// `limits.shutdown_grace` of a gateway config, in seconds (default 25).
pub(crate) fn shutdown_grace(config: &Value) -> u64 {
    at(config, "limits.shutdown_grace")
        .and_then(Value::as_str)
        .map_or(25, |s| humantime::parse_duration(s).unwrap().as_secs())
}

/// The port of a `host:port` listen address.
pub(crate) fn port_of(addr: &str) -> u64 {
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

/// Probes on the admin port, the restricted security context, requests and
/// limits, and a grace period longer than the drain.
pub(crate) fn assert_probes_and_security(pod: &Value, gateway: &Value, config: &Value) {
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
fn yaml_files_parse() {
    let mut files = Vec::new();
    let mut dirs = vec![deploy("kubernetes"), deploy("helm")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let ext = path.extension().and_then(|e| e.to_str());
            // Templates are Go templates, not YAML; chart/ reads them.
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
