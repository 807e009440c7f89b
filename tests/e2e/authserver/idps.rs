//! The Google and Entra ID connectors against npm `oauth2-mock-server`
//! shaped as each provider (tests/peers/oauth2_mock_idp.mjs), and the GitHub
//! connector against a test double written to GitHub's documented API
//! (tests/peers/github_double.mjs; GitHub cannot be reached from here): who
//! each one lets in, the stable subject, and what is (not) sent upstream.

use super::{Browser, CLIENT_REDIRECT, assemble, query, redeem, refresh, register, sign_in};
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
    let s = assemble(port, idp, &upstream, login, "{groups: [mcp-admins]}", "");
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

/// A gateway signing people in through the GitHub double.
async fn github(env: &[(&str, &str)], secret: &str) -> (super::Setup, String) {
    let port = crate::support::free_port();
    let gh = peers::github_double(env);
    let upstream = format!(
        "kind: github\n    web_url: {0}\n    api_url: {0}/api\n    client_id: gh-client\n    \
         client_secret: {secret}",
        gh.url
    );
    let admins = "{github_orgs: [acme-admins]}";
    let s = assemble(port, gh, &upstream, "github_orgs: [acme]", admins, "");
    let client_id = register(&s, &[CLIENT_REDIRECT]).await.json()["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    (s, client_id)
}

#[tokio::test]
async fn github_org_members_sign_in_by_numeric_id_and_lose_access_when_they_leave() {
    let orgs = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(orgs.path(), "acme,acme-admins").unwrap();
    let revoked = tempfile::tempdir().unwrap();
    let revoked_file = revoked.path().join("revoked");
    let orgs_path = orgs.path().display().to_string();
    let revoked_path = revoked_file.display().to_string();
    let env = [
        ("GH_ORGS_FILE", orgs_path.as_str()),
        ("GH_REVOKED_FILE", revoked_path.as_str()),
    ];
    let (s, client_id) = github(&env, "gh-secret").await;
    let scope = "&scope=mcp%3Atools+mcp%3Aadmin";
    let location = sign_in(&s, &mut Browser::default(), &client_id, scope)
        .await
        .unwrap_or_else(|r| panic!("{} {}", r.status, r.text()));
    let tokens = redeem(&s, &client_id, &query(&location)["code"])
        .await
        .assert_status(200, &[])
        .json();
    assert_eq!(
        decode(tokens["access_token"].as_str().unwrap())["sub"],
        "github:583231"
    );
    assert_eq!(tokens["scope"], "mcp:tools mcp:admin");

    // Each refresh asks GitHub again: out of acme-admins, mcp:admin is gone;
    // out of acme, the sign-in ends.
    std::fs::write(orgs.path(), "acme").unwrap();
    let t = refresh(&s, &client_id, tokens["refresh_token"].as_str().unwrap()).await;
    let t = t.assert_status(200, &[]).json();
    assert_eq!(t["scope"], "mcp:tools");
    std::fs::write(orgs.path(), "").unwrap();
    refresh(&s, &client_id, t["refresh_token"].as_str().unwrap())
        .await
        .assert_status(400, &["invalid_grant", "login policy"]);

    // A token revoked at GitHub (401 from the API) ends the sign-in too.
    std::fs::write(orgs.path(), "acme").unwrap();
    let location = sign_in(&s, &mut Browser::default(), &client_id, "")
        .await
        .unwrap();
    let tokens = redeem(&s, &client_id, &query(&location)["code"])
        .await
        .json();
    std::fs::write(&revoked_file, "").unwrap();
    refresh(&s, &client_id, tokens["refresh_token"].as_str().unwrap())
        .await
        .assert_status(400, &["invalid_grant", "no longer vouches"]);
}

#[tokio::test]
async fn github_refusals_arrive_in_http_200_and_are_refusals() {
    // Not a member of acme: the login policy refuses.
    let (s, client_id) = github(&[], "gh-secret").await;
    let page = sign_in(&s, &mut Browser::default(), &client_id, "")
        .await
        .expect_err("not in acme");
    assert_eq!(page.status, 403, "{}", page.text());

    // A wrong client secret: GitHub answers 200 {"error": …}; the sign-in fails.
    let orgs = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(orgs.path(), "acme").unwrap();
    let orgs_path = orgs.path().display().to_string();
    let (s, client_id) = github(&[("GH_ORGS_FILE", orgs_path.as_str())], "wrong-secret").await;
    let page = sign_in(&s, &mut Browser::default(), &client_id, "")
        .await
        .expect_err("bad secret");
    assert_eq!(page.status, 502, "{}", page.text());
    assert!(
        page.text().contains("incorrect_client_credentials"),
        "{}",
        page.text()
    );
    assert!(!page.text().contains("wrong-secret"), "never the secret");
}
