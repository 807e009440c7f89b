//! The browser-facing pages: consent and errors. Plain server-rendered HTML
//! through askama (compile-time templates, HTML auto-escaping on every
//! value), no JavaScript, no external resources. Every page is sent with a
//! CSP that forbids framing and scripts (`respond.rs`).

use askama::Template;

/// The consent page: what the user is about to allow, before the gateway
/// sends their browser to the identity provider.
#[derive(Template)]
#[template(
    ext = "html",
    source = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Allow {{ client_name }}?</title>
<style>
body{font:16px/1.5 system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;color:#1a1a1a}
h1{font-size:1.4rem}.box{border:1px solid #ccc;border-radius:8px;padding:1rem 1.25rem;margin:1rem 0}
dt{font-weight:600;margin-top:.5rem}dd{margin:0}code{background:#f2f2f2;padding:0 .25rem;border-radius:3px}
.warn{background:#fff4e5;border-color:#f0b35c}button{font-size:1rem;padding:.5rem 1.25rem;margin-right:.5rem}
</style></head>
<body>
<h1><strong>{{ client_name }}</strong> wants to use {{ resource_name }} as you</h1>
<div class="box"><dl>
<dt>Application</dt><dd>{{ client_name }}{% if let Some(host) = client_host %} (from <code>{{ host }}</code>){% endif %}</dd>
<dt>After sign-in you return to</dt><dd><code>{{ redirect_host }}</code></dd>
<dt>Resource</dt><dd><code>{{ resource }}</code></dd>
<dt>Access requested</dt><dd>{% if scopes.is_empty() %}no specific permission{% else %}<ul>{% for s in scopes %}<li><code>{{ s }}</code></li>{% endfor %}</ul>{% endif %}</dd>
</dl></div>
{% if loopback %}<div class="box warn">This application runs on your own computer (it receives the sign-in at
<code>{{ redirect_host }}</code>). Only continue if you just started it yourself.</div>{% endif %}
<p>Next you sign in with {{ idp_name }}. The application never sees your password or your {{ idp_name }} account.</p>
<form method="post" action="{{ action }}">
<input type="hidden" name="pending" value="{{ pending }}">
<input type="hidden" name="csrf" value="{{ csrf }}">
<button type="submit" name="decision" value="allow">Continue to {{ idp_name }}</button>
<button type="submit" name="decision" value="deny">Cancel</button>
</form>
</body></html>
"#
)]
pub(crate) struct Consent<'a> {
    pub(crate) client_name: &'a str,
    pub(crate) client_host: Option<&'a str>,
    pub(crate) redirect_host: &'a str,
    pub(crate) loopback: bool,
    pub(crate) resource: &'a str,
    pub(crate) resource_name: &'a str,
    pub(crate) scopes: &'a [String],
    pub(crate) idp_name: &'a str,
    pub(crate) action: &'a str,
    pub(crate) pending: &'a str,
    pub(crate) csrf: &'a str,
}

/// An error the user sees in the browser: what went wrong, and no secret.
#[derive(Template)]
#[template(
    ext = "html",
    source = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;color:#1a1a1a}h1{font-size:1.4rem}</style>
</head><body>
<h1>{{ title }}</h1>
<p>{{ detail }}</p>
<p>You can close this window and start the sign-in again from your application.</p>
</body></html>
"#
)]
pub(crate) struct ErrorPage<'a> {
    pub(crate) title: &'a str,
    pub(crate) detail: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped() {
        let page = ErrorPage {
            title: "<script>alert(1)</script>",
            detail: "\"><img src=x onerror=alert(1)>",
        }
        .render()
        .unwrap();
        assert!(!page.contains("<script>alert"));
        assert!(!page.contains("<img"));
        assert!(
            page.contains("&#60;script&#62;") || page.contains("&lt;script&gt;"),
            "{page}"
        );
    }
}
