//! The Google and Entra ID connectors against npm `oauth2-mock-server`
//! shaped as each provider (tests/peers/oauth2_mock_idp.mjs): who each one
//! lets in, the stable subject, and what is (not) sent upstream.

use super::{Browser, CLIENT_REDIRECT, assemble, query, redeem, register, sign_in};
use crate::support::peers;

/// Signs in through `idp`-shaped provider with `env`; returns the setup and
/// the final answer (the client redirect, or the refusal page).
async fn try_sign_in(
    shape: &str,
    env: &[(&str, &str)],
    login: &str,
) -> (super::Setup, Result<String, crate::support::Reply>) {
    let port = crate::support::free_port();
    let idp = peers::oauth2_mock_idp(shape, env);
    // Google's issuer defaults to accounts.google.com: the test names the mock.
    let upstream = format!(
        "kind: {shape}\n    issuer: {}\n    client_id: mcp-gateway-upstream\n    \
         client_secret: upstream-secret",
        idp.url
    );
    let s = assemble(port, idp, &upstream, login, "");
    let client_id = register(&s, &[CLIENT_REDIRECT]).await.json()["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let answer = sign_in(&s, &mut Browser::default(), &client_id, "").await;
    if let Ok(location) = &answer {
        let tokens = redeem(&s, &client_id, &query(location)["code"]).await;
        let tokens = tokens.assert_status(200, &[]).json();
        let claims = decode(tokens["access_token"].as_str().unwrap());
        assert_eq!(claims["iss"], s.issuer.as_str());
        return (s, Ok(claims["sub"].as_str().unwrap().to_owned()));
    }
    (s, answer)
}

fn decode(jwt: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn google_workspace_people_sign_in_and_consumer_accounts_with_the_same_domain_do_not() {
    let login = "email_domains: [example.com]";
    let (_s, sub) = try_sign_in("google", &[("MOCK_HD", "example.com")], login).await;
    assert_eq!(sub.unwrap(), "google:108518834734516532217");

    // The same address without the Workspace `hd` claim is not vouched for by
    // the domain's owner.
    let (s, refused) = try_sign_in("google", &[], login).await;
    let page = refused.expect_err("no hd: refused");
    assert_eq!(page.status, 403, "{}", page.text());
    s.gw.wait_for_log("login_refused").await;

    // An unverified email never counts, even with hd.
    let env = [("MOCK_HD", "example.com"), ("MOCK_EMAIL_VERIFIED", "0")];
    let (_s, refused) = try_sign_in("google", &env, login).await;
    assert_eq!(refused.expect_err("unverified: refused").status, 403);
}

#[tokio::test]
async fn entra_people_are_tenant_and_object_ids_and_resource_is_never_sent_upstream() {
    let log = tempfile::NamedTempFile::new().unwrap();
    let log_path = log.path().display().to_string();
    let login = "emails: [bob@contoso.com]";
    let env = [("MOCK_EDOV", "1"), ("MOCK_LOG_FILE", log_path.as_str())];
    let (_s, sub) = try_sign_in("entra", &env, login).await;
    assert_eq!(
        sub.unwrap(),
        "entra:72f988bf-86f1-41af-91ab-2d7cd011db47:00000000-0000-0000-66f3-3332eca7ea81",
        "tid + oid, not the pairwise sub"
    );
    let authorize = std::fs::read_to_string(log.path()).unwrap();
    assert!(
        authorize.contains("\"code_challenge_method\":\"S256\""),
        "{authorize}"
    );
    assert!(authorize.contains("\"nonce\""), "{authorize}");
    assert!(
        !authorize.contains("resource"),
        "Entra must never get `resource`: {authorize}"
    );

    // Without xms_edov, Entra's email is not verified: it cannot match `emails`.
    let (_s, refused) = try_sign_in("entra", &[], login).await;
    assert_eq!(refused.expect_err("unverified email: refused").status, 403);
}
