//! Config, phase two, for `issuers[]`: where each trusted issuer's keys come
//! from, its algorithms, scope claims, leeway and introspection settings.

use std::path::Path;
use std::time::Duration;

use jsonwebtoken::Algorithm;

use super::file::RawIssuer;
use super::validate::{Report, http_url};
use super::{Issuer, KeySource, Secret};

/// Asymmetric algorithms accepted when an issuer lists none.
const DEFAULT_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

pub(super) fn issuer(
    raw: RawIssuer,
    path: &str,
    base_dir: &Path,
    report: &mut Report,
) -> Option<Issuer> {
    let keys = match (&raw.jwks_uri, &raw.jwks_file) {
        (Some(_), Some(_)) => {
            report.error(path, "set either `jwks_uri` or `jwks_file`, not both");
            None
        }
        (Some(uri), None) => {
            http_url(uri, &format!("{path}.jwks_uri"), report).map(KeySource::JwksUri)
        }
        (None, Some(file)) => Some(KeySource::File(base_dir.join(file))),
        // An issuer with introspection and no key settings is introspection-only.
        (None, None) if raw.introspection.is_some() => Some(KeySource::IntrospectionOnly),
        (None, None) => {
            http_url(&raw.issuer, &format!("{path}.issuer"), report).map(KeySource::Discover)
        }
    };
    let introspection = raw.introspection.as_ref().and_then(|i| {
        let p = format!("{path}.introspection");
        let endpoint = http_url(&i.endpoint, &format!("{p}.endpoint"), report);
        let post_credentials = match i.auth_method.as_deref() {
            None | Some("client_secret_basic") => false,
            Some("client_secret_post") => true,
            Some(other) => {
                report.error(
                    format!("{p}.auth_method"),
                    format!("`{other}`: use client_secret_basic or client_secret_post"),
                );
                false
            }
        };
        if i.client_id.is_empty() || i.client_secret.is_empty() {
            report.error(&p, "client_id and client_secret must not be empty");
        }
        let cache_ttl = report.duration(
            &format!("{p}.cache_ttl"),
            i.cache_ttl.as_deref(),
            Duration::from_secs(60),
        );
        let negative_cache_ttl = report.duration(
            &format!("{p}.negative_cache_ttl"),
            i.negative_cache_ttl.as_deref(),
            Duration::from_secs(5),
        );
        Some(super::Introspection {
            endpoint: endpoint?,
            client_id: i.client_id.clone(),
            client_secret: Secret(i.client_secret.clone().into_bytes()),
            post_credentials,
            cache_ttl,
            negative_cache_ttl,
            require_audience: i.require_audience.unwrap_or(true),
        })
    });
    if raw.issuer.is_empty() {
        report.error(format!("{path}.issuer"), "must not be empty");
    }

    let algorithms = match &raw.algorithms {
        None => DEFAULT_ALGORITHMS.to_vec(),
        Some(list) if list.is_empty() => {
            report.error(
                format!("{path}.algorithms"),
                "must list at least one algorithm",
            );
            Vec::new()
        }
        Some(list) => list
            .iter()
            .enumerate()
            .filter_map(|(j, name)| {
                let alg = algorithm(name);
                if alg.is_none() {
                    report.error(
                        format!("{path}.algorithms[{j}]"),
                        format!(
                            "`{name}` is not allowed; use asymmetric algorithms only \
                             (RS256..RS512, PS256..PS512, ES256, ES384, EdDSA)"
                        ),
                    );
                }
                alg
            })
            .collect(),
    };

    let scope_claims = raw
        .scope_claims
        .unwrap_or_else(|| vec!["scope".to_owned(), "scp".to_owned()]);
    if scope_claims.is_empty() {
        report.error(
            format!("{path}.scope_claims"),
            "must list at least one claim",
        );
    }
    let leeway = report.duration(
        &format!("{path}.leeway"),
        raw.leeway.as_deref(),
        Duration::from_secs(30),
    );
    if leeway > Duration::from_secs(300) {
        report.warn(
            format!("{path}.leeway"),
            "more than 5m of clock skew is unusually lax",
        );
    }

    Some(Issuer {
        introspection,
        issuer: raw.issuer,
        keys: keys?,
        algorithms,
        scope_claims,
        leeway,
        require_typ: raw.require_typ.unwrap_or(true),
    })
}

fn algorithm(name: &str) -> Option<Algorithm> {
    Some(match name {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        // HS* would let anyone holding the (public) key mint tokens, and `none`
        // is no signature at all (RFC 8725 §3.1, §3.2).
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithms_refuse_hmac_and_none() {
        assert!(algorithm("HS256").is_none());
        assert!(algorithm("none").is_none());
        assert_eq!(algorithm("ES256"), Some(Algorithm::ES256));
    }
}
