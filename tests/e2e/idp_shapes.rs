//! Tokens shaped like each identity provider's in docs/identity-providers.md:
//! the documented config accepts them and reads their scopes, and a token
//! for another audience of the same provider is still refused.

use serde_json::{Value, json};

use crate::RESOURCE;
use crate::support::upstream::{Behavior, Upstream};
use crate::support::{GatewayBuilder, TestIssuer, send};

struct Shape {
    name: &'static str,
    iss: &'static str,
    /// Issuer YAML lines beyond `issuer` and `jwks_file`.
    issuer_extra: &'static str,
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
            route_extra: "",
            claims: json!({"aud": RESOURCE, "scope": "openid mcp:tools", "sub": "u1", "client_id": "c1"}),
            foreign_aud: json!("https://other.example.test/mcp"),
        },
        Shape {
            name: "Keycloak (audience mapper; azp is the client)",
            iss: "https://kc.example.test/realms/mcp",
            issuer_extra: "",
            route_extra: "audiences: [mcp-gateway]",
            claims: json!({"aud": ["mcp-gateway", "account"], "azp": "mcp-client", "scope": "profile mcp:tools", "sub": "u2", "typ": "Bearer"}),
            foreign_aud: json!("account"),
        },
        Shape {
            name: "Auth0 (API identifier in aud, issuer with a trailing slash)",
            iss: "https://tenant.auth0.example/",
            issuer_extra: "",
            route_extra: "audiences: [\"https://api.mcp.example.test\"]",
            claims: json!({"aud": ["https://api.mcp.example.test", "https://tenant.auth0.example/userinfo"], "azp": "abc", "scope": "openid mcp:tools", "sub": "auth0|u3"}),
            foreign_aud: json!(["https://tenant.auth0.example/userinfo"]),
        },
        Shape {
            name: "Okta custom authorization server (scp as an array, cid)",
            iss: "https://org.okta.example/oauth2/aus1",
            issuer_extra: "    scope_claims: [scp]\n",
            route_extra: "audiences: [\"api://mcp\"]",
            claims: json!({"aud": "api://mcp", "scp": ["openid", "mcp:tools"], "cid": "0oa1", "sub": "u4@example.test", "uid": "00u1"}),
            foreign_aud: json!("api://default"),
        },
        Shape {
            name: "Microsoft Entra ID v2 (aud is the application id, scp string or roles)",
            iss: "https://login.microsoftonline.example/tenant-id/v2.0",
            issuer_extra: "    scope_claims: [scp, roles]\n",
            route_extra: "audiences: [\"6f1b2c3d-0000-4000-8000-000000000001\"]",
            claims: json!({"aud": "6f1b2c3d-0000-4000-8000-000000000001", "scp": "mcp:tools", "azp": "app-2", "sub": "oid-5", "tid": "tenant-id", "ver": "2.0"}),
            foreign_aud: json!("00000003-0000-0000-c000-000000000000"),
        },
        Shape {
            name: "Microsoft Entra ID app-only token (roles array, no scp)",
            iss: "https://login.microsoftonline.example/tenant-id/v2.0",
            issuer_extra: "    scope_claims: [scp, roles]\n",
            route_extra: "audiences: [\"api://mcp-gateway\"]",
            claims: json!({"aud": "api://mcp-gateway", "roles": ["mcp:tools"], "azp": "daemon-app", "sub": "sp-6", "ver": "2.0"}),
            foreign_aud: json!("api://someone-else"),
        },
    ]
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
        let token = issuer.sign(&claims);
        let r = send(
            "POST",
            &gw.url("/mcp"),
            &[("authorization", &format!("Bearer {token}"))],
            CALL,
        )
        .await;
        assert_eq!(r.status, 200, "{}: {}", shape.name, r.text());

        let mut foreign = claims.clone();
        foreign["aud"] = shape.foreign_aud.clone();
        let r = send(
            "POST",
            &gw.url("/mcp"),
            &[(
                "authorization",
                &format!("Bearer {}", issuer.sign(&foreign)),
            )],
            CALL,
        )
        .await;
        assert_eq!(
            r.status, 401,
            "{}: token for another API accepted",
            shape.name
        );
        assert_eq!(upstream.count(), 1, "{}", shape.name);
    }
}
