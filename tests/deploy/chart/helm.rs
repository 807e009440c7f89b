//! The chart rendered by the real `helm`, when it is installed: `helm lint`,
//! and `helm template` for the defaults (sidecar) and the standalone example,
//! whose output must show what the plain manifests show. Without `helm` the
//! test says it skipped; no stand-in renderer pretends to be helm.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_yaml::Value;

use crate::kubernetes::{assert_probes_and_security, port_of};
use crate::support::{
    chart_values, check_config, deploy, docs, gateway_yaml, must, named, of_kind, run, run_failing,
    seq, text, tool, yaml_str,
};
use crate::{CHART, CONFIG_DIR, EXAMPLE};

/// `helm template test <chart>` with the example values or not, and `args`.
fn template(helm: &Path, example: bool, args: &[&str]) -> Command {
    let mut cmd = Command::new(helm);
    cmd.args(["template", "test"]).arg(deploy(CHART)).args(args);
    if example {
        cmd.arg("-f").arg(deploy(EXAMPLE));
    }
    cmd
}

/// What `helm template` output must show, for one mode.
fn assert_chart_output(all: &[Value], values: &Value) {
    let mode = text(values, "mode");
    let kinds: BTreeSet<_> = all.iter().map(|d| text(d, "kind")).collect();
    let want = ["ConfigMap", "Deployment", "NetworkPolicy", "Service"];
    assert_eq!(kinds, want.into_iter().collect(), "{mode}");

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
    let pod_labels = must(deployment, "spec.template.metadata.labels");
    for (k, v) in selector.as_mapping().unwrap() {
        assert_eq!(pod_labels.get(k), Some(v), "pod label {k:?}");
    }
    assert_eq!(text(service, "spec.ports.0.targetPort"), "https");
    assert_eq!(
        must(deployment, "spec.replicas").as_u64(),
        must(values, "replicaCount").as_u64()
    );
}

#[test]
fn helm_lint_and_template_when_helm_is_installed() {
    let Some(helm) = tool("helm") else { return };
    for example in [false, true] {
        let mut lint = Command::new(&helm);
        lint.arg("lint").arg(deploy(CHART));
        if example {
            lint.arg("-f").arg(deploy(EXAMPLE));
        }
        run(&mut lint);
        let out = run(&mut template(&helm, example, &[]));
        assert_chart_output(&docs(&out, "helm template"), &chart_values(example));
    }

    let err = run_failing(&mut template(&helm, false, &["--set", "mode=both"]));
    assert!(err.contains("mode must be sidecar or standalone"), "{err}");
    let no_upstream = ["--set", "upstream.container=null"];
    let err = run_failing(&mut template(&helm, false, &no_upstream));
    assert!(err.contains("upstream.container is required"), "{err}");
    let no_policy = ["--set", "networkPolicy.enabled=false"];
    let out = run(&mut template(&helm, false, &no_policy));
    let all = docs(&out, "helm template");
    assert!(all.iter().all(|d| text(d, "kind") != "NetworkPolicy"));
}
