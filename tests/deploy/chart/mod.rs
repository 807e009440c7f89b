//! The Helm chart under `deploy/helm/mcp-auth-gateway`, checked without
//! rendering it: `Chart.yaml` and `values.yaml` (here), the template text
//! (`templates.rs`, read by `template.rs`), and, where `helm` is installed, the
//! real `helm lint` and `helm template` (`helm.rs`).
//!
//! Each property is checked in two halves: the values hold the secure setting
//! (`securityContext.runAsNonRoot: true`, …), and the template puts that value
//! where it takes effect (`securityContext:` of the gateway container is
//! `toYaml .Values.securityContext`). Only helm can show that both halves make
//! the intended manifest, and deploy/README.md says why CI may not have it.

mod helm;
mod template;
mod templates;

use std::collections::BTreeSet;

use serde_yaml::Value;

use crate::kubernetes::{port_of, shutdown_grace};
use crate::support::{at, chart_values, deploy, must, read, seq, text, yaml, yaml_str};
use crate::{CHART, EXAMPLE};

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

/// The chart's templates as (file name, text), sorted by name.
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

/// One template's text.
fn template_text(name: &str) -> String {
    read(&deploy(CHART).join("templates").join(name))
}

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
fn helm_chart_metadata_matches_the_crate() {
    let chart = yaml(&deploy(CHART).join("Chart.yaml"));
    assert_eq!(text(&chart, "apiVersion"), "v2");
    assert_eq!(text(&chart, "name"), "mcp-auth-gateway");
    assert_eq!(text(&chart, "type"), "application");
    assert!(!text(&chart, "description").is_empty());
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

#[test]
fn values_yaml_has_the_chart_keys() {
    for example in [false, true] {
        let values = chart_values(example);
        for key in [
            "mode",
            "replicaCount",
            "image.repository",
            "image.tag",
            "image.pullPolicy",
            "imagePullSecrets",
            "nameOverride",
            "fullnameOverride",
            "logFormat",
            "ports.https",
            "ports.admin",
            "service.type",
            "service.port",
            "tls.secretName",
            "sessionKey.secretName",
            "sessionKey.secretKey",
            "extraEnv",
            "terminationGracePeriodSeconds",
            "upstream.container.name",
            "upstream.volumes",
            "podAnnotations",
            "podSecurityContext",
            "securityContext",
            "resources",
            "networkPolicy.enabled",
            "nodeSelector",
            "tolerations",
            "affinity",
            "config",
        ] {
            assert!(at(&values, key).is_some(), "example: {example}: no `{key}`");
        }
        let mode = text(&values, "mode");
        assert!(["sidecar", "standalone"].contains(&mode), "mode {mode}");
        for number in [
            "replicaCount",
            "ports.https",
            "ports.admin",
            "service.port",
            "terminationGracePeriodSeconds",
        ] {
            assert!(must(&values, number).is_u64(), "`{number}` not a number");
        }
        assert!(must(&values, "networkPolicy.enabled").is_bool());
    }
    assert_eq!(text(&chart_values(false), "mode"), "sidecar");
    assert_eq!(text(&chart_values(true), "mode"), "standalone");
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
    // And the other way: a value no template reads is a setting that does nothing.
    for key in defaults.as_mapping().unwrap().keys() {
        let key = key.as_str().unwrap();
        assert!(
            seen.iter()
                .any(|p| p == key || p.starts_with(&format!("{key}."))),
            "values.yaml `{key}` is used by no template"
        );
    }
    // Helm ignores unknown keys silently; a typo in the example would too.
    let mut unknown = Vec::new();
    unknown_keys(&yaml(&deploy(EXAMPLE)), &defaults, "", &mut unknown);
    assert!(
        unknown.is_empty(),
        "example keys not in values.yaml: {unknown:?}"
    );
}

/// The values half of what the sidecar manifest shows: the restricted
/// security context, requests and limits, a grace period longer than the
/// drain, container ports that match the config's listeners, and the TLS and
/// session-key Secrets where the config reads them.
#[test]
fn chart_values_are_secure_and_consistent_in_both_modes() {
    for example in [false, true] {
        let values = chart_values(example);
        let mode = text(&values, "mode");
        let config = must(&values, "config");

        let sc = must(&values, "securityContext");
        for (key, want) in [
            ("runAsNonRoot", "true"),
            ("runAsUser", "65532"),
            ("allowPrivilegeEscalation", "false"),
            ("readOnlyRootFilesystem", "true"),
            ("seccompProfile.type", "RuntimeDefault"),
        ] {
            assert_eq!(
                must(sc, key),
                &yaml_str(want),
                "{mode}: securityContext.{key}"
            );
        }
        assert_eq!(seq(sc, "capabilities.drop"), [Value::from("ALL")], "{mode}");
        assert_eq!(
            must(&values, "podSecurityContext.runAsNonRoot"),
            &Value::Bool(true),
            "{mode}"
        );
        for key in [
            "requests.cpu",
            "requests.memory",
            "limits.cpu",
            "limits.memory",
        ] {
            must(&values, &format!("resources.{key}"));
        }
        let grace = must(&values, "terminationGracePeriodSeconds")
            .as_u64()
            .unwrap();
        assert!(
            grace > shutdown_grace(config),
            "{mode}: terminationGracePeriodSeconds {grace} must exceed shutdown_grace {}s",
            shutdown_grace(config)
        );

        // The probes use the admin port, so the config must open it.
        assert!(
            config.get("admin_listen").is_some(),
            "{mode}: probes need admin_listen"
        );
        assert_eq!(
            must(&values, "ports.https").as_u64(),
            Some(port_of(text(config, "listen"))),
            "{mode}: ports.https vs config.listen"
        );
        assert_eq!(
            must(&values, "ports.admin").as_u64(),
            Some(port_of(text(config, "admin_listen"))),
            "{mode}: ports.admin vs config.admin_listen"
        );

        assert!(!text(&values, "tls.secretName").is_empty(), "{mode}");
        for file in ["tls.cert", "tls.key"] {
            assert!(
                text(config, file).starts_with("/etc/mcp-auth-gateway/tls/"),
                "{mode}: config.{file} outside the TLS Secret's mount"
            );
        }
        assert!(!text(&values, "sessionKey.secretName").is_empty(), "{mode}");
        assert_eq!(
            text(config, "session_binding.key"),
            "${SESSION_KEY}",
            "{mode}"
        );
        if mode == "sidecar" {
            let upstream = text(&values, "upstream.container.name");
            assert_ne!(upstream, "gateway", "two containers named gateway");
        }
    }
}
