//! The chart's templates as text: balanced actions and blocks, `nindent`s
//! that match their column, and, in each manifest's skeleton (see
//! template.rs), the settings and wiring the old rendered-output checks
//! asserted: probes, the security contexts, mounts, Secrets, selectors, and
//! the guards on `mode`, `replicaCount` (Redis), `upstream.container` and
//! `networkPolicy.enabled`.

use std::collections::BTreeSet;

use serde_yaml::Value;

use super::template::{
    Action, actions, check_blocks, enclosing, marker, matching_end, only_insert, skeleton,
    spans_whole_file,
};
use super::{template_text, templates};
use crate::CONFIG_DIR;
use crate::support::{must, named, seq, text};

const FULLNAME: &str = r#"«include "mcp-auth-gateway.fullname" .»"#;
const SELECTOR_LABELS: &str = r#"include "mcp-auth-gateway.selectorLabels" ."#;

/// A template's skeleton.
fn shape(name: &str) -> Value {
    skeleton(&template_text(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// A template's actions.
fn parsed(name: &str) -> Vec<Action> {
    actions(&template_text(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The blocks around the one action for which `pick` holds.
fn blocks_around(actions: &[Action], pick: impl Fn(&Action) -> bool) -> Vec<String> {
    let found: Vec<_> = (0..actions.len()).filter(|&i| pick(&actions[i])).collect();
    assert_eq!(found.len(), 1, "one matching action expected: {found:?}");
    enclosing(actions, found[0])
}

/// A skeleton value that is a marker, without its `«»`.
fn action_at<'a>(v: &'a Value, path: &str) -> &'a str {
    marker(must(v, path)).unwrap_or_else(|| panic!("`{path}` is not a template action"))
}

#[test]
fn helm_template_actions_are_balanced_and_manifests_keep_their_shape() {
    let nindent = regex::Regex::new(r"\bnindent (\d+)").unwrap();
    let define = regex::Regex::new(r#"^define "([^"]+)""#).unwrap();
    let include = regex::Regex::new(r#"\b(?:include|template) "([^"]+)""#).unwrap();
    let mut kinds = BTreeSet::new();
    let (mut defined, mut included) = (BTreeSet::new(), BTreeSet::new());
    for (name, src) in templates() {
        let all = actions(&src).unwrap_or_else(|e| panic!("{name}: {e}"));
        check_blocks(&all).unwrap_or_else(|e| panic!("{name}: {e}"));
        for a in &all {
            // `nindent N` starts its output on a new line at column N; the
            // chart writes each such action at the column its output lands.
            if let Some(n) = nindent.captures(&a.body) {
                assert_eq!(
                    n[1].parse::<usize>().unwrap(),
                    a.column,
                    "{name}:{}: `{}` is not at column {}",
                    a.line,
                    a.body,
                    &n[1]
                );
            }
            defined.extend(define.captures_iter(&a.body).map(|c| c[1].to_owned()));
            included.extend(include.captures_iter(&a.body).map(|c| c[1].to_owned()));
        }
        if name.ends_with(".yaml") {
            let shape = skeleton(&src).unwrap_or_else(|e| panic!("{name}: {e}"));
            for key in ["apiVersion", "kind", "metadata.name"] {
                must(&shape, key);
            }
            assert_eq!(text(&shape, "metadata.name"), FULLNAME, "{name}");
            kinds.insert(text(&shape, "kind").to_owned());
        }
    }
    let want = ["ConfigMap", "Deployment", "NetworkPolicy", "Service"];
    assert_eq!(kinds, want.map(str::to_owned).into_iter().collect());
    assert_eq!(included, defined, "names included vs names defined");
}

#[test]
fn helm_deployment_template_wires_probes_security_and_mounts() {
    let shape = shape("deployment.yaml");
    assert_eq!(text(&shape, "apiVersion"), "apps/v1");
    assert_eq!(action_at(&shape, "spec.replicas"), ".Values.replicaCount");
    assert_eq!(
        only_insert(must(&shape, "spec.selector.matchLabels")),
        SELECTOR_LABELS
    );
    assert_eq!(
        only_insert(must(&shape, "spec.template.metadata.labels")),
        SELECTOR_LABELS,
        "the pods carry exactly the selector labels"
    );

    let pod = must(&shape, "spec.template.spec");
    assert_eq!(
        action_at(pod, "terminationGracePeriodSeconds"),
        ".Values.terminationGracePeriodSeconds"
    );
    assert_eq!(
        must(pod, "automountServiceAccountToken"),
        &Value::Bool(false)
    );
    assert_eq!(
        only_insert(must(pod, "securityContext")),
        "toYaml .Values.podSecurityContext"
    );

    let containers = seq(pod, "containers");
    let gateway = named(containers, "gateway");
    // Sidecar mode puts the upstream container first (see the guards test).
    let upstream = marker(&containers[0]).expect("the upstream container's action");
    assert!(
        upstream.contains(".Values.upstream.container"),
        "{upstream}"
    );
    assert_eq!(containers.len(), 2, "upstream (sidecar only) and gateway");

    assert_eq!(
        text(gateway, "image"),
        "«.Values.image.repository»:«.Values.image.tag | default .Chart.AppVersion»"
    );
    let args: Vec<_> = seq(gateway, "args").iter().map(Value::as_str).collect();
    assert_eq!(
        args[..2],
        [Some("--config"), Some("/etc/mcp-auth-gateway/gateway.yaml")]
    );
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = must(gateway, &format!("{probe}.httpGet"));
        assert_eq!(text(get, "path"), path, "{probe}");
        assert_eq!(text(get, "port"), "admin", "{probe}");
    }
    let ports = seq(gateway, "ports");
    assert_eq!(
        action_at(named(ports, "https"), "containerPort"),
        ".Values.ports.https"
    );
    assert_eq!(
        action_at(named(ports, "admin"), "containerPort"),
        ".Values.ports.admin"
    );
    assert_eq!(
        only_insert(must(gateway, "securityContext")),
        "toYaml .Values.securityContext"
    );
    assert_eq!(
        only_insert(must(gateway, "resources")),
        "toYaml .Values.resources"
    );

    let key = must(
        named(seq(gateway, "env"), "SESSION_KEY"),
        "valueFrom.secretKeyRef",
    );
    assert_eq!(action_at(key, "name"), ".Values.sessionKey.secretName");
    assert_eq!(action_at(key, "key"), ".Values.sessionKey.secretKey");

    // Config mounted as a directory (a subPath mount never sees updates).
    let mounts = seq(gateway, "volumeMounts");
    let config = named(mounts, "config");
    assert_eq!(text(config, "mountPath"), CONFIG_DIR);
    assert!(config.get("subPath").is_none(), "subPath breaks hot reload");
    assert_eq!(
        text(named(mounts, "tls"), "mountPath"),
        "/etc/mcp-auth-gateway/tls"
    );
    let volumes = seq(pod, "volumes");
    assert_eq!(
        text(named(volumes, "config"), "configMap.name"),
        FULLNAME,
        "the ConfigMap's own name"
    );
    assert_eq!(
        action_at(named(volumes, "tls"), "secret.secretName"),
        ".Values.tls.secretName"
    );
}

#[test]
fn helm_templates_guard_their_inputs() {
    let deployment = parsed("deployment.yaml");
    // A `mode` other than sidecar or standalone fails the render.
    let mode_fail = |a: &Action| a.word() == "fail" && a.body.contains("mode must be");
    assert_eq!(
        blocks_around(&deployment, mode_fail),
        [r#"if and (ne .Values.mode "sidecar") (ne .Values.mode "standalone")"#]
    );
    // More than one replica needs Redis: for the limits always, and for the
    // built-in authorization server's store when it is configured.
    let replicas = "if gt (int .Values.replicaCount) 1";
    let redis_fail =
        |a: &Action| a.word() == "fail" && a.body.contains("config.shared_state.redis");
    assert_eq!(
        blocks_around(&deployment, redis_fail),
        [
            replicas,
            r#"if not (dig "shared_state" "redis" "" .Values.config)"#
        ]
    );
    let store_fail =
        |a: &Action| a.word() == "fail" && a.body.contains("authorization_server.store");
    let around = blocks_around(&deployment, store_fail);
    assert_eq!(around[0], replicas);
    assert!(around[1].contains(r#"hasPrefix "redis""#), "{around:?}");
    // The upstream container and its volumes are in sidecar mode only, and
    // the container is required there.
    let sidecar = r#"if eq .Values.mode "sidecar""#;
    let upstream = |a: &Action| a.body.contains(".Values.upstream.container");
    assert_eq!(blocks_around(&deployment, upstream), [sidecar]);
    let container = deployment.iter().find(|a| upstream(a)).unwrap();
    assert!(
        container
            .body
            .contains(r#"required "upstream.container is required in sidecar mode""#),
        "{}",
        container.body
    );
    assert_eq!(
        blocks_around(&deployment, |a| a.body.contains(".Values.upstream.volumes")),
        [sidecar]
    );
    // The TLS volume and mount, and the session key, go with their Secrets.
    assert_eq!(
        blocks_around(&deployment, |a| a.body == ".Values.tls.secretName"),
        ["if .Values.tls.secretName"]
    );
    let tls_ifs = deployment
        .iter()
        .filter(|a| a.body == "if .Values.tls.secretName")
        .count();
    assert_eq!(tls_ifs, 2, "the tls mount and the tls volume");
    for key in [
        ".Values.sessionKey.secretName",
        ".Values.sessionKey.secretKey",
    ] {
        assert_eq!(
            blocks_around(&deployment, |a| a.body == key),
            ["if .Values.sessionKey.secretName"]
        );
    }

    // The NetworkPolicy is the whole file, inside `networkPolicy.enabled`.
    let src = template_text("networkpolicy.yaml");
    let policy = parsed("networkpolicy.yaml");
    assert_eq!(policy[0].body, "if .Values.networkPolicy.enabled");
    let end = matching_end(&policy, 0).unwrap();
    assert_eq!(end, policy.len() - 1);
    assert!(spans_whole_file(&src, &policy, 0, end));
}

#[test]
fn helm_templates_select_one_set_of_pods_and_expose_only_https() {
    let service = shape("service.yaml");
    assert_eq!(text(&service, "kind"), "Service");
    assert_eq!(
        only_insert(must(&service, "spec.selector")),
        SELECTOR_LABELS
    );
    assert_eq!(action_at(&service, "spec.type"), ".Values.service.type");
    let ports = seq(&service, "spec.ports");
    assert_eq!(ports.len(), 1, "the admin port stays off the Service");
    assert_eq!(text(&ports[0], "targetPort"), "https");
    assert_eq!(action_at(&ports[0], "port"), ".Values.service.port");

    let policy = shape("networkpolicy.yaml");
    assert_eq!(
        only_insert(must(&policy, "spec.podSelector.matchLabels")),
        SELECTOR_LABELS
    );
    assert_eq!(seq(&policy, "spec.policyTypes"), [Value::from("Ingress")]);
    let allowed: Vec<_> = seq(&policy, "spec.ingress")
        .iter()
        .flat_map(|rule| seq(rule, "ports").iter().map(|p| marker(must(p, "port"))))
        .collect();
    assert_eq!(
        allowed,
        [Some(".Values.ports.https"), Some(".Values.ports.admin")]
    );

    // The ConfigMap carries `config` as is, under the name the pod mounts.
    let config_map = shape("configmap.yaml");
    assert_eq!(
        config_map["data"]["gateway.yaml"].as_str(),
        Some("«toYaml .Values.config | nindent 4»\n")
    );
    assert!(
        template_text("NOTES.txt").contains("({{ .Values.mode }} mode)"),
        "NOTES.txt names the mode"
    );
}
