//! The built-in authorization server's sign-in flow in traces: each of its
//! endpoints is a server span named after it (never after a path the client
//! made up), and the call to the identity provider is a client span under
//! the step that made it. Real oidc-provider, real OTLP receiver.

use serde_json::Value;

use super::{Browser, CLIENT_REDIRECT, consent_form, enc, pkce};
use crate::support::{GatewayBuilder, Reply, peers, send};
use crate::tracing::{one, wait_for};

#[tokio::test]
async fn sign_in_steps_are_named_spans_and_the_provider_call_is_a_client_span() {
    let receiver = peers::otlp_receiver();
    let port = crate::support::free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let idp = peers::oidc_provider(
        &[&format!("{issuer}/mcp")],
        &[(
            "OIDC_UPSTREAM_REDIRECT",
            &format!("{issuer}/oauth/callback"),
        )],
    );
    let gw = GatewayBuilder::new()
        .port(port)
        .route("/mcp", "http://127.0.0.1:9/mcp", &format!("{issuer}/mcp"), "")
        .extra(&format!(
            "authorization_server:\n  issuer: {issuer}\n  store: memory\n  upstream:\n    kind: oidc\n    \
             issuer: {}\n    client_id: mcp-gateway-upstream\n    client_secret: upstream-secret\n  \
             login:\n    email_domains: [example.com]\n  grants:\n    - scopes: [mcp:tools]\n  \
             clients:\n    dynamic_registration: true\n\
             telemetry:\n  tracing:\n    endpoint: {}\n    sample_ratio: 1\n",
            idp.url, receiver.url
        ))
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .spawn();
    gw.wait_ready().await;
    let trace = |r: &Reply| r.header("x-request-id").to_owned();

    let jwks = send("GET", &gw.url("/oauth/jwks"), &[], "").await;
    assert_eq!(jwks.status, 200);
    let got = wait_for(&receiver.url, &trace(&jwks), "GET /oauth/jwks").await;
    assert_eq!(
        one(&got, "mcp-auth-gateway", "GET /oauth/jwks")["kind"],
        "SERVER"
    );
    // A path the client made up under /oauth is not a name.
    let junk = send("GET", &gw.url("/oauth/x-anything-123"), &[], "").await;
    let got = wait_for(&receiver.url, &trace(&junk), "GET").await;
    assert_eq!(
        one(&got, "mcp-auth-gateway", "GET")["attributes"]["http.route"],
        Value::Null
    );

    // Register, open the consent page, allow: the gateway reads the
    // provider's discovery document and sends the browser there.
    let reg = send(
        "POST",
        &gw.url("/oauth/register"),
        &[("content-type", "application/json")],
        &serde_json::json!({"redirect_uris": [CLIENT_REDIRECT]}).to_string(),
    )
    .await
    .assert_status(201, &[])
    .json();
    let client_id = reg["client_id"].as_str().unwrap();
    let (_, challenge) = pkce();
    let authorize = gw.url(&format!(
        "/oauth/authorize?response_type=code&client_id={}&redirect_uri={}&state=s&\
         code_challenge={challenge}&code_challenge_method=S256&scope=mcp%3Atools",
        enc(client_id),
        enc(CLIENT_REDIRECT)
    ));
    let mut browser = Browser::default();
    let page = browser.get(&authorize).await;
    assert_eq!(page.status, 200, "{}", page.text());
    let got = wait_for(&receiver.url, &trace(&page), "GET /oauth/authorize").await;
    assert_eq!(
        one(&got, "mcp-auth-gateway", "GET /oauth/authorize")["attributes"]["http.route"],
        "/oauth/authorize"
    );
    let (action, pending, csrf) = consent_form(&page.text());
    let action = url::Url::parse(&authorize).unwrap().join(&action).unwrap();
    let answer = browser
        .post_form(
            action.as_str(),
            &format!("pending={pending}&csrf={csrf}&decision=allow"),
        )
        .await;
    assert_eq!(answer.status, 303, "{}", answer.text());
    assert!(answer.header("location").starts_with(&idp.url));
    let got = wait_for(&receiver.url, &trace(&answer), "POST /oauth/consent").await;
    let consent = one(&got, "mcp-auth-gateway", "POST /oauth/consent");
    let provider_calls: Vec<&Value> = got
        .iter()
        .filter(|s| s["kind"] == "CLIENT" && s["parent_span_id"] == consent["span_id"])
        .collect();
    assert!(
        !provider_calls.is_empty(),
        "no client span for the provider: {got:#?}"
    );
    let idp_port = url::Url::parse(&idp.url).unwrap().port().unwrap();
    assert_eq!(
        provider_calls[0]["attributes"]["server.port"],
        i64::from(idp_port)
    );
    assert_eq!(
        provider_calls[0]["attributes"]["http.response.status_code"],
        200
    );
}
