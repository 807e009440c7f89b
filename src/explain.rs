//! `mcp-auth-gateway explain`: what the policy decides for one call, with the
//! rule that matched, so operators can test a policy before shipping it. It
//! runs the same `authz::decide_call` as the request path.

use crate::authz::{self, DenyMode, Unlisted};
use crate::config::Config;
use crate::jsonrpc::{RpcCall, Target};

/// What to explain.
#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// The route's public path.
    #[arg(long, default_value = "/mcp")]
    pub route: String,
    /// The caller's granted scopes, space-separated.
    #[arg(long, default_value = "")]
    pub scopes: String,
    /// JSON-RPC method, e.g. `tools/call`.
    pub method: String,
    /// Tool or prompt name, or resource URI (for `completion/complete`:
    /// `prompt:NAME` or `resource:URI`).
    pub target: Option<String>,
}

/// Why a call cannot be explained.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    /// No such route.
    #[error("no route with path `{0}`")]
    NoRoute(String),
    /// The resource URI would be refused at run time.
    #[error("`{0}`: {1} (the gateway answers 400)")]
    BadUri(String, crate::uri::UriError),
    /// The method needs a target.
    #[error("{0} needs a target (tool or prompt name, or resource URI)")]
    MissingTarget(String),
}

/// The URI in the form the gateway judges it at run time.
fn canonical(uri: &str) -> Result<String, ExplainError> {
    crate::uri::canonical(uri).map_err(|e| ExplainError::BadUri(uri.to_owned(), e))
}

/// The verdict as printable text, and whether the call is allowed.
pub fn explain(config: &Config, args: &ExplainArgs) -> Result<(bool, String), ExplainError> {
    let route = config
        .route(&args.route)
        .ok_or_else(|| ExplainError::NoRoute(args.route.clone()))?;
    let target = match (args.method.as_str(), args.target.clone()) {
        ("tools/call", Some(t)) => Target::Tool(t),
        ("prompts/get", Some(t)) => Target::Prompt(t),
        ("resources/read" | "resources/subscribe" | "resources/unsubscribe", Some(t)) => {
            Target::Resource(canonical(&t)?)
        }
        // 2026-07-28: one resource subscription, judged as resources/subscribe.
        ("subscriptions/listen", Some(t)) => Target::Resources(vec![canonical(&t)?]),
        ("completion/complete", Some(t)) => match t.split_once(':') {
            Some(("prompt", name)) => Target::Prompt(name.to_owned()),
            Some(("resource", uri)) => Target::Resource(canonical(uri)?),
            _ => return Err(ExplainError::MissingTarget(args.method.clone())),
        },
        (
            "tools/call"
            | "prompts/get"
            | "resources/read"
            | "resources/subscribe"
            | "resources/unsubscribe"
            | "completion/complete",
            None,
        ) => return Err(ExplainError::MissingTarget(args.method.clone())),
        _ => Target::None,
    };
    let call = RpcCall {
        method: Some(args.method.clone()),
        id: Some(serde_json::Value::from(1)),
        target,
        meta_version: None,
        meta_traceparent: None,
        raw_name: None,
    };
    let mut granted: Vec<String> = args
        .scopes
        .split_ascii_whitespace()
        .map(str::to_owned)
        .collect();
    granted.sort_unstable();
    granted.dedup();
    let policy = route.policy.as_ref();
    let d = authz::decide_call(policy, &route.required_scopes, &granted, &call);

    let verdict = if d.allowed() { "ALLOW" } else { "DENY" };
    let mut lines = vec![
        format!(
            "{verdict} {} {}",
            args.method,
            call.target.name().unwrap_or("")
        ),
        format!("  route:    {}", route.path),
    ];
    let rule = match (&d.rule, &call.target, policy) {
        (Some(r), _, _) => format!("`{r}`"),
        (None, Target::None, _) => {
            "(method has no target; route and method scopes only)".to_owned()
        }
        (None, _, None) => "(route has no policy; route scopes only)".to_owned(),
        (None, _, Some(p)) if p.unlisted == Unlisted::Deny => {
            "(no rule matches; unlisted: deny)".to_owned()
        }
        (None, _, Some(_)) => "(no rule matches; unlisted: allow)".to_owned(),
    };
    lines.push(format!("  rule:     {rule}"));
    lines.push(format!("  required: {}", list(&d.required)));
    lines.push(format!("  missing:  {}", list(&d.missing)));
    if !d.allowed() {
        let answer = match (policy.map(|p| p.on_insufficient_scope), d.unlisted) {
            (Some(DenyMode::JsonRpcError), _) => "HTTP 200 with a JSON-RPC error",
            (_, true) => "HTTP 403 forbidden (no scope can fix it)",
            _ => "HTTP 403 with WWW-Authenticate: Bearer error=\"insufficient_scope\"",
        };
        lines.push(format!("  answer:   {answer}"));
    }
    let mut out = lines.join("\n");
    out.push('\n');
    Ok((d.allowed(), out))
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "(none)".to_owned()
    } else {
        v.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const YAML: &str = r#"
issuers: [{issuer: "https://as.example.com", jwks_uri: "https://as.example.com/jwks"}]
routes:
  - path: /mcp
    upstream: http://127.0.0.1:3001/mcp
    resource: https://mcp.example.com/mcp
    required_scopes: [mcp:tools]
    policy:
      tools: {get_weather: [weather:read], "admin_*": [mcp:admin]}
      resources: [{uri: "file:///public/**"}, {uri: "db://customers/{id}", scopes: [crm:read]}]
"#;

    fn run(scopes: &str, method: &str, target: Option<&str>) -> (bool, String) {
        let (config, _) = Config::from_yaml(YAML, Path::new(".")).unwrap();
        let args = ExplainArgs {
            route: "/mcp".into(),
            scopes: scopes.into(),
            method: method.into(),
            target: target.map(Into::into),
        };
        explain(&config, &args).unwrap()
    }

    #[test]
    fn explains_allow_and_deny_with_the_rule() {
        let (ok, text) = run("mcp:tools weather:read", "tools/call", Some("get_weather"));
        assert!(ok, "{text}");
        assert!(text.contains("rule:     `get_weather`"), "{text}");
        let (ok, text) = run("mcp:tools", "tools/call", Some("admin_reset"));
        assert!(!ok);
        assert!(
            text.contains("`admin_*`") && text.contains("missing:  mcp:admin"),
            "{text}"
        );
        let (ok, text) = run("mcp:tools", "tools/call", Some("unknown"));
        assert!(!ok && text.contains("unlisted: deny"), "{text}");
    }

    #[test]
    fn knows_2026_methods_and_judges_uris_as_the_gateway_does() {
        let (ok, text) = run(
            "mcp:tools",
            "subscriptions/listen",
            Some("file:///public/a"),
        );
        assert!(ok, "{text}");
        let (ok, text) = run(
            "mcp:tools",
            "subscriptions/listen",
            Some("db://customers/7"),
        );
        assert!(!ok && text.contains("missing:  crm:read"), "{text}");
        // A query is judged with and without it.
        let (ok, _) = run("mcp:tools", "resources/read", Some("db://customers/7?x=1"));
        assert!(!ok);
        let (config, _) = Config::from_yaml(YAML, Path::new(".")).unwrap();
        let args = ExplainArgs {
            route: "/mcp".into(),
            scopes: "mcp:tools".into(),
            method: "resources/read".into(),
            target: Some("file:///public/.\t./x".into()),
        };
        assert!(matches!(
            explain(&config, &args),
            Err(ExplainError::BadUri(..))
        ));
        let (ok, text) = run("mcp:tools", "server/discover", None);
        assert!(ok, "{text}");
    }
}
