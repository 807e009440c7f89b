use std::path::Path;

use super::{Config, ConfigError, KeySource};

const MINIMAL: &str = r#"
listen: 127.0.0.1:0
issuers:
  - issuer: https://auth.example.com
    jwks_uri: https://auth.example.com/jwks
routes:
  - path: /mcp
    upstream: http://127.0.0.1:3001/mcp
    resource: https://mcp.example.com/mcp
"#;

fn load(yaml: &str) -> Result<Config, ConfigError> {
    Config::from_yaml(yaml, Path::new("/etc/gw")).map(|(c, _)| c)
}

#[test]
fn minimal_config_gets_safe_defaults() {
    let c = load(MINIMAL).unwrap();
    let r = &c.routes[0];
    assert_eq!(r.metadata_path, "/.well-known/oauth-protected-resource/mcp");
    assert_eq!(r.audiences, vec!["https://mcp.example.com/mcp"]);
    assert_eq!(r.authorization_servers, vec!["https://auth.example.com"]);
    assert_eq!(r.upstream.authority, "127.0.0.1:3001");
    assert_eq!(r.upstream.path_and_query, "/mcp");
    assert_eq!(c.limits.max_body, 4 << 20);
    assert_eq!(c.issuers[0].leeway.as_secs(), 30);
    assert!(!c.issuers[0].algorithms.is_empty());
}

#[test]
fn every_problem_is_listed_with_its_path() {
    let yaml = r#"
listen: nowhere
issuers:
  - issuer: https://a.example.com
    jwks_uri: ftp://a.example.com/jwks
    algorithms: [HS256, none]
    leeway: soon
routes:
  - path: mcp
    upstream: not a url
    resource: https://mcp.example.com/mcp#frag
"#;
    let Err(ConfigError::Invalid(problems)) = load(yaml) else {
        panic!("expected invalid");
    };
    let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    for expected in [
        "listen",
        "issuers[0].jwks_uri",
        "issuers[0].algorithms[0]",
        "issuers[0].algorithms[1]",
        "issuers[0].leeway",
        "routes[0].path",
        "routes[0].upstream",
        "routes[0].resource",
    ] {
        assert!(paths.contains(&expected), "missing {expected} in {paths:?}");
    }
}

#[test]
fn unknown_keys_are_errors_with_a_path() {
    let yaml = MINIMAL.replace("    upstream:", "    upstrem: x\n    upstream:");
    let Err(ConfigError::Shape(msg)) = load(&yaml) else {
        panic!("expected shape error");
    };
    assert!(
        msg.contains("routes[0]") && msg.contains("upstrem"),
        "{msg}"
    );
}

#[test]
fn duplicate_yaml_keys_are_errors() {
    let yaml = MINIMAL.replace(
        "listen: 127.0.0.1:0",
        "listen: 127.0.0.1:0\nlisten: 127.0.0.1:1",
    );
    assert!(matches!(load(&yaml), Err(ConfigError::Shape(_))));
}

#[test]
fn env_vars_expand_in_values() {
    // SAFETY of the test: a unique variable name, only read by this test.
    let yaml = MINIMAL.replace("https://auth.example.com/jwks", "${MCPGW_TEST_UNSET_VAR_7}");
    let Err(ConfigError::Shape(msg)) = load(&yaml) else {
        panic!("expected unset variable error");
    };
    assert!(msg.contains("MCPGW_TEST_UNSET_VAR_7"), "{msg}");
}

#[test]
fn relative_jwks_file_resolves_against_config_dir() {
    let yaml = MINIMAL.replace(
        "jwks_uri: https://auth.example.com/jwks",
        "jwks_file: keys/jwks.json",
    );
    let c = load(&yaml).unwrap();
    let KeySource::File(path) = &c.issuers[0].keys else {
        panic!("expected file");
    };
    assert_eq!(path, Path::new("/etc/gw/keys/jwks.json"));
}

#[test]
fn bare_origin_resource_has_no_path_suffix() {
    let yaml = MINIMAL.replace("https://mcp.example.com/mcp", "https://mcp.example.com");
    let c = load(&yaml).unwrap();
    assert_eq!(
        c.routes[0].metadata_path,
        "/.well-known/oauth-protected-resource"
    );
}

#[test]
fn example_config_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("gateway.example.yaml");
    let (config, _warnings) = Config::load(&path).unwrap();
    assert!(!config.routes.is_empty());
}

#[test]
fn resource_patterns_must_be_in_canonical_form() {
    let yaml = format!(
        "{MINIMAL}    policy:\n      resources:\n        - uri: \"DEMO://x/**\"\n        - uri: \"db://customers/vi%70\"\n        - uri: \"file:///a/../b\"\n        - uri: \"file:///public/**\"\n"
    );
    let Err(ConfigError::Invalid(problems)) = load(&yaml) else {
        panic!("expected invalid");
    };
    let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "routes[0].policy.resources[0].uri",
            "routes[0].policy.resources[1].uri",
            "routes[0].policy.resources[2].uri",
        ]
    );
    assert!(
        problems[0].message.contains("demo://x/x"),
        "{}",
        problems[0].message
    );
    assert!(load(&format!(
        "{MINIMAL}    policy:\n      resources:\n        - uri: \"file:///public/**\"\n        - uri: \"db://customers/{{id}}\"\n"
    ))
    .is_ok());
}

#[test]
fn require_typ_defaults_to_on() {
    assert!(load(MINIMAL).unwrap().issuers[0].require_typ);
    let off = MINIMAL.replace(
        "    jwks_uri: https://auth.example.com/jwks\n",
        "    jwks_uri: https://auth.example.com/jwks\n    require_typ: false\n",
    );
    assert!(!load(&off).unwrap().issuers[0].require_typ);
}

const WITH_AS: &str = r#"
listen: 127.0.0.1:0
routes:
  - path: /mcp
    upstream: http://127.0.0.1:3001/mcp
    resource: https://mcp.example.com/mcp
authorization_server:
  issuer: https://mcp.example.com
  store: memory
  upstream:
    kind: google
    client_id: gateway
    client_secret: s3cret
  login:
    email_domains: [Example.com]
  grants:
    - scopes: [mcp:tools]
  clients:
    dynamic_registration: true
"#;

#[test]
fn the_built_in_server_is_an_issuer_and_every_route_s_default() {
    let c = load(WITH_AS).unwrap();
    let a = c.authorization_server.as_deref().unwrap();
    assert_eq!(a.issuer, "https://mcp.example.com");
    assert_eq!(a.upstream.kind, super::IdpKind::Google);
    assert_eq!(
        a.upstream.issuer.as_ref().map(url::Url::as_str),
        Some("https://accounts.google.com/")
    );
    assert_eq!(a.login.email_domains, ["example.com"], "lowercased");
    assert_eq!(a.access_token_ttl.as_secs(), 300);
    assert_eq!(c.issuers.len(), 1, "no `issuers` needed");
    assert_eq!(c.issuers[0].keys, KeySource::BuiltIn);
    assert_eq!(
        c.routes[0].authorization_servers,
        ["https://mcp.example.com"]
    );
    // The default store is a file beside the config.
    let default = WITH_AS.replace("  store: memory\n", "");
    let c = load(&default).unwrap();
    assert_eq!(
        c.authorization_server.unwrap().store,
        super::StoreSetting::Sqlite("/etc/gw/authorization-server.db".into())
    );
}

#[test]
fn redis_ca_files_need_tls_urls_and_must_exist() {
    let with = |store: &str, ca: &str| {
        WITH_AS.replace(
            "  store: memory\n",
            &format!(
                "  store: {store}\n  store_ca_file: {ca}\n  cookie_key: 0123456789abcdef0123456789abcdef\n"
            ),
        )
    };
    let paths = |yaml: &str| match load(yaml) {
        Err(ConfigError::Invalid(problems)) => {
            problems.iter().map(|p| p.path.clone()).collect::<Vec<_>>()
        }
        other => panic!("expected invalid, got {other:?}"),
    };
    let key = "authorization_server.store_ca_file".to_owned();
    assert!(
        paths(&with("redis://r:6379", "/etc/hostname")).contains(&key),
        "not TLS"
    );
    assert!(paths(&with("rediss://r:6379", "/nonexistent/ca.pem")).contains(&key));
    assert!(load(&with("rediss://r:6379", "/etc/hostname")).is_ok());
    let limits =
        format!("{WITH_AS}shared_state:\n  redis: redis://r:6379\n  ca_file: /etc/hostname\n");
    assert!(paths(&limits).contains(&"shared_state.ca_file".to_owned()));
}

#[test]
fn a_redis_store_needs_a_cookie_key_that_replicas_share() {
    let redis = WITH_AS.replace("  store: memory\n", "  store: redis://redis:6379\n");
    let Err(ConfigError::Invalid(problems)) = load(&redis) else {
        panic!("expected invalid");
    };
    assert!(
        problems
            .iter()
            .any(|p| p.path == "authorization_server.cookie_key" && p.message.contains("redis")),
        "{problems:?}"
    );
    let with_key = redis.replace(
        "  store: redis://redis:6379\n",
        "  store: redis://redis:6379\n  cookie_key: 0123456789abcdef0123456789abcdef\n",
    );
    assert!(load(&with_key).is_ok());
}

#[test]
fn every_problem_of_the_authorization_server_block_has_its_path() {
    let yaml = r#"
routes:
  - path: /mcp
    upstream: http://127.0.0.1:3001/mcp
    resource: https://mcp.example.com/mcp
authorization_server:
  issuer: http://mcp.example.com/
  store: postgres://x
  upstream:
    kind: okta
    client_id: ""
    client_secret: ""
    scopes: [email]
  login:
    email_domains: ["@example.com"]
    emails: [not-an-email]
    github_orgs: [acme]
  grants:
    - scopes: ["bad scope", offline_access]
      when: {}
  clients:
    cimd: {trust: allowlist}
  refresh_reuse_grace: 5m
  cookie_key: short
"#;
    let Err(ConfigError::Invalid(problems)) = load(yaml) else {
        panic!("expected invalid");
    };
    let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    for expected in [
        "authorization_server.issuer",
        "authorization_server.store",
        "authorization_server.upstream.kind",
        "authorization_server.upstream",
        "authorization_server.login.email_domains[0]",
        "authorization_server.login.emails[0]",
        "authorization_server.grants[0].scopes[0]",
        "authorization_server.grants[0].scopes",
        "authorization_server.grants[0].when",
        "authorization_server.clients.cimd.hosts",
        "authorization_server.refresh_reuse_grace",
        "authorization_server.cookie_key",
    ] {
        assert!(
            paths.contains(&expected),
            "{expected} missing from {paths:?}"
        );
    }
}

#[test]
fn oidc_needs_an_issuer_and_openid_and_github_orgs_need_github() {
    let yaml = WITH_AS
        .replace("kind: google", "kind: oidc\n    scopes: [email]")
        .replace("email_domains: [Example.com]", "github_orgs: [acme]");
    let Err(ConfigError::Invalid(problems)) = load(&yaml) else {
        panic!("expected invalid");
    };
    let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    for expected in [
        "authorization_server.upstream.issuer",
        "authorization_server.upstream.scopes",
        "authorization_server.login.github_orgs",
    ] {
        assert!(
            paths.contains(&expected),
            "{expected} missing from {paths:?}"
        );
    }
    // An issuer that is also listed under `issuers` would have two key sources.
    let twice = format!(
        "issuers:\n  - issuer: https://mcp.example.com\n    jwks_uri: https://mcp.example.com/j\n{WITH_AS}"
    );
    let Err(ConfigError::Invalid(problems)) = load(&twice) else {
        panic!("expected invalid");
    };
    assert!(
        problems
            .iter()
            .any(|p| p.path == "authorization_server.issuer")
    );
}

#[test]
fn a_development_sign_in_listens_on_loopback_only() {
    let dev = WITH_AS
        .replace(
            "issuer: https://mcp.example.com",
            "issuer: http://127.0.0.1:8080",
        )
        .replace(
            "resource: https://mcp.example.com/mcp",
            "resource: http://127.0.0.1:8080/mcp",
        );
    assert!(load(&dev).is_ok());
    let exposed = dev.replace("listen: 127.0.0.1:0", "listen: 0.0.0.0:8080");
    let Err(ConfigError::Invalid(problems)) = load(&exposed) else {
        panic!("a development sign-in on 0.0.0.0 must be refused");
    };
    assert!(
        problems.iter().any(|p| p.path == "authorization_server"),
        "{problems:?}"
    );
}
