//! Tokens shaped like each identity provider's in docs/identity-providers.md:
//! the documented config accepts them and reads their scopes, and a token
//! for another audience of the same provider is still refused.

use serde_json::{Value, json};

use crate::RESOURCE;
use crate::support::upstream::{Behavior, Upstream};
use crate::support::{GatewayBuilder, TestIssuer};

struct Shape {
    name: &'static str,
    iss: &'static str,
    /// Issuer YAML lines beyond `issuer` and `jwks_file`.
    issuer_extra: &'static str,
    /// The JWT `typ` header the provider puts on access tokens.
    typ: Option<&'static str>,
    /// Route YAML beyond the policy.
    route_extra: &'static str,
    /// Claims beyond iss/exp/iat; must grant `mcp:tools`.
    claims: Value,
    /// The same provider's token for some other API.
    foreign_aud: Value,
}

fn shapes() -> Vec<Shape> {
    vec![
        Shape {
            name: "oidc-provider (RFC 8707: aud is the resource)",
            iss: "https://op.example.test",
            issuer_extra: "",
            typ: Some("at+jwt"),
            route_extra: "",
            claims: json!({"aud": RESOURCE, "scope": "openid mcp:tools", "sub": "u1", "client_id": "c1"}),
            foreign_aud: json!("https://other.example.test/mcp"),
        },
        Shape {
            name: "Keycloak (audience mapper; azp is the client)",
            iss: "https://kc.example.test/realms/mcp",
            issuer_extra: "    require_typ: false\n",
            typ: Some("JWT"),
            route_extra: "audiences: [mcp-gateway]",
            claims: json!({"aud": ["mcp-gateway", "account"], "azp": "mcp-client", "scope": "profile mcp:tools", "sub": "u2", "typ": "Bearer"}),
            foreign_aud: json!("account"),
        },
        Shape {
            name: "Auth0 (API identifier in aud, issuer with a trailing slash)",
            iss: "https://tenant.auth0.example/",
            issuer_extra: "",
            typ: Some("at+jwt"),
            route_extra: "audiences: [\"https://api.mcp.example.test\"]",
            claims: json!({"aud": ["https://api.mcp.example.test", "https://tenant.auth0.example/userinfo"], "azp": "abc", "scope": "openid mcp:tools", "sub": "auth0|u3"}),
            foreign_aud: json!(["https://tenant.auth0.example/userinfo"]),
        },
        Shape {
            name: "Okta custom authorization server (scp as an array, cid)",
            iss: "https://org.okta.example/oauth2/aus1",
            issuer_extra: "    scope_claims: [scp]\n    require_typ: false\n",
            typ: None,
            route_extra: "audiences: [\"api://mcp\"]",
            claims: json!({"aud": "api://mcp", "scp": ["openid", "mcp:tools"], "cid": "0oa1", "sub": "u4@example.test", "uid": "00u1"}),
            foreign_aud: json!("api://default"),
        },
        Shape {
            name: "Microsoft Entra ID v2 (aud is the application id, scp string or roles)",
            iss: "https://login.microsoftonline.example/tenant-id/v2.0",
            issuer_extra: "    scope_claims: [scp, roles]\n    require_typ: false\n",
            typ: Some("JWT"),
            route_extra: "audiences: [\"6f1b2c3d-0000-4000-8000-000000000001\"]",
            claims: json!({"aud": "6f1b2c3d-0000-4000-8000-000000000001", "scp": "mcp:tools", "azp": "app-2", "sub": "oid-5", "tid": "tenant-id", "ver": "2.0"}),
            foreign_aud: json!("00000003-0000-0000-c000-000000000000"),
        },
        Shape {
            name: "Microsoft Entra ID app-only token (roles array, no scp)",
            iss: "https://login.microsoftonline.example/tenant-id/v2.0",
            issuer_extra: "    scope_claims: [scp, roles]\n    require_typ: false\n",
            typ: Some("JWT"),
            route_extra: "audiences: [\"api://mcp-gateway\"]",
            claims: json!({"aud": "api://mcp-gateway", "roles": ["mcp:tools"], "azp": "daemon-app", "sub": "sp-6", "ver": "2.0"}),
            foreign_aud: json!("api://someone-else"),
        },
    ]
}

/// Signs with the provider's `typ` header.
fn sign_typed(issuer: &TestIssuer, typ: Option<&str>, claims: &Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some("k1".into());
    header.typ = typ.map(str::to_owned);
    issuer.sign_header(&header, claims)
}

const CALL: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#;

#[tokio::test]
async fn every_documented_provider_shape_is_accepted_and_foreign_audiences_refused() {
    for shape in shapes() {
        let issuer = TestIssuer::new(shape.iss);
        let upstream = Upstream::start(Behavior::Json).await;
        let gw = GatewayBuilder::new()
            .issuer_yaml(&format!("{}{}", issuer.config_yaml(), shape.issuer_extra))
            .route(
                "/mcp",
                &upstream.url(),
                RESOURCE,
                &format!(
                    "{}\npolicy:\n  tools: {{echo: [mcp:tools]}}",
                    shape.route_extra
                ),
            )
            .spawn();
        gw.wait_ready().await;
        let now = jsonwebtoken::get_current_timestamp();
        let mut claims = shape.claims.clone();
        claims["iss"] = json!(shape.iss);
        claims["iat"] = json!(now);
        claims["exp"] = json!(now + 600);
        let token = sign_typed(&issuer, shape.typ, &claims);
        let r = gw.post("/mcp", &format!("Bearer {token}"), CALL).await;
        assert_eq!(r.status, 200, "{}: {}", shape.name, r.text());

        let mut foreign = claims.clone();
        foreign["aud"] = shape.foreign_aud.clone();
        let auth = format!("Bearer {}", sign_typed(&issuer, shape.typ, &foreign));
        let r = gw.post("/mcp", &auth, CALL).await;
        assert_eq!(
            r.status, 401,
            "{}: token for another API accepted",
            shape.name
        );
        assert_eq!(upstream.count(), 1, "{}", shape.name);
    }
}

/// An ID token is signed by the same keys as access tokens and can name a
/// client id a route lists in `audiences`; only `typ` tells them apart
/// (RFC 9068 §4). By default the gateway requires `typ: at+jwt`.
#[tokio::test]
async fn id_tokens_are_refused_unless_the_issuer_opts_out_of_typed_tokens() {
    let issuer = TestIssuer::new(crate::ISS);
    let upstream = Upstream::start(Behavior::Json).await;
    let route = "audiences: [mcp-client]\npolicy:\n  tools: {echo: [mcp:tools]}";
    let now = jsonwebtoken::get_current_timestamp();
    let id_token_claims = json!({
        "iss": crate::ISS, "sub": "u1", "aud": "mcp-client", "azp": "mcp-client",
        "nonce": "n", "scope": "mcp:tools", "iat": now, "exp": now + 600,
    });
    let gw = GatewayBuilder::new()
        .issuer(&issuer)
        .route("/mcp", &upstream.url(), RESOURCE, route)
        .spawn();
    gw.wait_ready().await;
    for typ in [Some("JWT"), None, Some("id+jwt")] {
        let token = sign_typed(&issuer, typ, &id_token_claims);
        let r = gw.post("/mcp", &format!("Bearer {token}"), CALL).await;
        assert_eq!(r.status, 401, "typ {typ:?}: {}", r.text());
        assert!(r.header("www-authenticate").contains("invalid_token"));
    }
    assert_eq!(upstream.count(), 0, "no ID token reached the upstream");
    let at = sign_typed(&issuer, Some("at+jwt"), &id_token_claims);
    // Control: a typed access token passes.
    gw.post("/mcp", &format!("Bearer {at}"), CALL)
        .await
        .assert_status(200, &[]);

    let opted_out = GatewayBuilder::new()
        .issuer_yaml(&format!("{}    require_typ: false\n", issuer.config_yaml()))
        .route("/mcp", &upstream.url(), RESOURCE, route)
        .spawn();
    opted_out.wait_ready().await;
    let token = sign_typed(&issuer, Some("JWT"), &id_token_claims);
    // `require_typ: false` accepts typ JWT.
    opted_out
        .post("/mcp", &format!("Bearer {token}"), CALL)
        .await
        .assert_status(200, &[]);
}
