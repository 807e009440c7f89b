//! Who may sign in (the login policy) and which scopes they may receive
//! (the grants), decided on the identity the provider vouched for. Used at
//! the callback and again at every refresh.

use super::idp::Identity;
use crate::config::{AuthServer, IdpKind, People};

/// Whether `person` is in `set` (one matching entry of one list).
pub(super) fn matches(set: &People, person: &Identity, kind: IdpKind) -> bool {
    let domain = person
        .email
        .as_deref()
        .and_then(|e| e.rsplit_once('@'))
        .map(|(_, d)| d);
    // Google: a Workspace domain is vouched for by `hd`, not by the address.
    let domain_ok = |d: &String| match kind {
        IdpKind::Google => person.hosted_domain.as_ref() == Some(d) && domain == Some(d.as_str()),
        _ => domain == Some(d.as_str()),
    };
    set.email_domains.iter().any(domain_ok)
        || person
            .email
            .as_ref()
            .is_some_and(|e| set.emails.contains(e))
        || person.groups.iter().any(|g| set.groups.contains(g))
        || person
            .github_orgs
            .iter()
            .any(|o| set.github_orgs.contains(o))
}

/// The scopes `person` may receive: the union of the grants that apply.
pub(super) fn granted(config: &AuthServer, person: &Identity) -> Vec<String> {
    let mut scopes: Vec<String> = config
        .grants
        .iter()
        .filter(|g| {
            g.when
                .as_ref()
                .is_none_or(|w| matches(w, person, config.upstream.kind))
        })
        .flat_map(|g| g.scopes.iter().cloned())
        .collect();
    scopes.sort_unstable();
    scopes.dedup();
    scopes
}
