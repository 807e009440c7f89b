//! Stage 6a: compiled policy rules (built once at config load, never on the
//! request path).
//!
//! Exact tool and prompt names live in hash maps; globs and resource patterns
//! are compiled into one `RegexSet` each, so a lookup costs one hash probe
//! plus one automaton pass, however many rules there are. `regex` guarantees
//! linear-time matching, so a hostile name or URI cannot blow up matching.

use std::collections::HashMap;

use regex::RegexSet;

/// What happens to a tool, resource or prompt that matches no rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unlisted {
    /// Refuse it (the default).
    Deny,
    /// Allow it with the method's scopes.
    Allow,
}

/// How a scope denial is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyMode {
    /// HTTP 403 with `WWW-Authenticate: Bearer error="insufficient_scope"` (step-up).
    Challenge,
    /// HTTP 200 with a JSON-RPC error, for clients that drop sessions on 4xx.
    JsonRpcError,
}

/// One rule: its pattern as written, and the scopes it requires (all of them).
#[derive(Debug, Clone)]
pub struct Rule {
    /// The pattern as written in the config (for `explain` and audit logs).
    pub pattern: String,
    /// Scopes required, all of them.
    pub scopes: Vec<String>,
}

/// Rules keyed by name (tools, prompts): exact names beat globs; among globs
/// the longer pattern wins, then the alphabetically first (config maps are
/// read in key order).
#[derive(Debug)]
pub struct NameRules {
    exact: HashMap<String, Rule>,
    /// Globs in precedence order (most specific first).
    globs: Vec<Rule>,
    set: RegexSet,
}

/// Resource rules, tried in order: the first match wins.
#[derive(Debug)]
pub struct ResourceRules {
    rules: Vec<Rule>,
    set: RegexSet,
}

/// A route's compiled policy.
#[derive(Debug)]
pub struct Policy {
    /// JSON-RPC method → scopes on top of the route's `required_scopes`.
    pub methods: HashMap<String, Vec<String>>,
    /// `tools/call` rules by `params.name`.
    pub tools: NameRules,
    /// `resources/read|subscribe|unsubscribe` rules by `params.uri`.
    pub resources: ResourceRules,
    /// `prompts/get` rules by `params.name`.
    pub prompts: NameRules,
    /// What happens to a target with no rule.
    pub unlisted: Unlisted,
    /// What happens to a method that is neither an MCP method of a supported
    /// protocol version ([`crate::mcp::KNOWN_METHODS`]) nor listed in
    /// `methods`.
    pub unknown_methods: Unlisted,
    /// How a scope denial is answered.
    pub on_insufficient_scope: DenyMode,
    /// Whether list responses are filtered to what the caller may use.
    pub filter_lists: bool,
    /// Whether a list response too large to filter passes unfiltered (instead of failing).
    pub pass_oversize_lists: bool,
}

impl NameRules {
    /// Compiles `(pattern, scopes)` pairs. Errors name the bad pattern.
    pub fn compile(rules: Vec<(String, Vec<String>)>) -> Result<Self, Vec<(String, String)>> {
        let mut exact = HashMap::new();
        let mut globs = Vec::new();
        let mut errors = Vec::new();
        for (pattern, scopes) in rules {
            if let Err(e) = check_name_glob(&pattern) {
                errors.push((pattern, e));
            } else if pattern.contains('*') {
                globs.push(Rule { pattern, scopes });
            } else {
                exact.insert(pattern.clone(), Rule { pattern, scopes });
            }
        }
        // Longer globs are more specific; the sort is stable, so equal lengths
        // keep the (alphabetical) order they came in.
        globs.sort_by_key(|r| std::cmp::Reverse(r.pattern.len()));
        let set = RegexSet::new(globs.iter().map(|r| name_glob_regex(&r.pattern)));
        match set {
            Ok(set) if errors.is_empty() => Ok(Self { exact, globs, set }),
            Ok(_) => Err(errors),
            Err(e) => {
                errors.push((String::new(), e.to_string()));
                Err(errors)
            }
        }
    }

    /// The rule that governs `name`, if any.
    pub fn find(&self, name: &str) -> Option<&Rule> {
        if let Some(rule) = self.exact.get(name) {
            return Some(rule);
        }
        // `matches` reports every matching glob; the lowest index is the most specific.
        self.set.matches(name).iter().next().map(|i| &self.globs[i])
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.globs.is_empty()
    }
}

impl ResourceRules {
    /// Compiles `(pattern, scopes)` pairs in order.
    pub fn compile(rules: Vec<(String, Vec<String>)>) -> Result<Self, Vec<(usize, String)>> {
        let mut errors = Vec::new();
        let mut regexes = Vec::new();
        for (i, (pattern, _)) in rules.iter().enumerate() {
            match uri_pattern_regex(pattern) {
                Ok(r) => regexes.push(r),
                Err(e) => errors.push((i, e)),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let set = RegexSet::new(&regexes).map_err(|e| vec![(0, e.to_string())])?;
        Ok(Self {
            rules: rules
                .into_iter()
                .map(|(pattern, scopes)| Rule { pattern, scopes })
                .collect(),
            set,
        })
    }

    /// The first rule matching `uri`, if any.
    pub fn find(&self, uri: &str) -> Option<&Rule> {
        self.set.matches(uri).iter().next().map(|i| &self.rules[i])
    }

    /// Indices of rules that an earlier rule fully shadows (they can never match).
    pub fn shadowed(&self) -> Vec<usize> {
        let mut out = Vec::new();
        for (i, later) in self.rules.iter().enumerate() {
            // A pattern with no wildcards is a concrete URI: test it directly.
            // A wildcard pattern is shadowed when an earlier `prefix**` covers its
            // literal prefix and everything after.
            let shadowed = self.rules[..i].iter().any(|earlier| {
                if !later.pattern.contains(['*', '{']) {
                    uri_pattern_regex(&earlier.pattern)
                        .ok()
                        .and_then(|r| regex::Regex::new(&r).ok())
                        .is_some_and(|r| r.is_match(&later.pattern))
                } else {
                    earlier.pattern.strip_suffix("**").is_some_and(|prefix| {
                        !prefix.contains(['*', '{']) && later.pattern.starts_with(prefix)
                    }) || earlier.pattern == later.pattern
                }
            });
            if shadowed {
                out.push(i);
            }
        }
        out
    }

    /// `(later, earlier)` pairs where a wildcard rule is partly shadowed: an
    /// earlier rule matches a URI the later one was written for (its
    /// wildcards filled with a plain segment), though not every one. Fully
    /// shadowed rules are reported by [`Self::shadowed`] instead.
    pub fn overlapped(&self) -> Vec<(usize, usize)> {
        let shadowed = self.shadowed();
        let mut out = Vec::new();
        for (i, later) in self.rules.iter().enumerate() {
            if shadowed.contains(&i) || !later.pattern.contains(['*', '{']) {
                continue;
            }
            let sample = crate::uri::sample_instance(&later.pattern);
            if let Some(earlier) = self.set.matches(&sample).iter().find(|&j| j < i) {
                out.push((i, earlier));
            }
        }
        out
    }

    /// The rules in order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }
}

/// A tool/prompt glob: 1–128 characters; `*` matches any run of characters.
/// Tool names have no segments, so `**` means nothing and is refused.
fn check_name_glob(p: &str) -> Result<(), String> {
    if p.is_empty() {
        return Err("empty name".into());
    }
    if p.contains("**") {
        return Err("`**` has no meaning in a name; use `*`".into());
    }
    if let Some(c) = p
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || "?[]{}\"\\".contains(*c))
    {
        return Err(format!(
            "character {c:?} is not allowed in a name glob (only `*` is a wildcard)"
        ));
    }
    Ok(())
}

/// Whether a name (or glob) can match a spec-conforming tool name:
/// 1–128 characters of `A-Z a-z 0-9 _ - .`.
pub fn is_conforming_name_glob(p: &str) -> bool {
    p.len() <= 128
        && p.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.*".contains(c))
}

fn name_glob_regex(p: &str) -> String {
    let parts: Vec<String> = p.split('*').map(regex::escape).collect();
    format!("^{}$", parts.join(".*"))
}

/// Resource patterns: `*` matches within a path segment, `**` across
/// segments, `{var}` (RFC 6570 level 1) matches one non-empty segment; `*`
/// and `{var}` never match a `?` (the query starts a new part).
pub fn uri_pattern_regex(p: &str) -> Result<String, String> {
    if p.is_empty() {
        return Err("empty URI pattern".into());
    }
    let mut out = String::from("^");
    let mut literal = String::new();
    let mut chars = p.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => {
                out.push_str(&regex::escape(&std::mem::take(&mut literal)));
                if chars.peek() == Some(&'*') {
                    chars.next();
                    if chars.peek() == Some(&'*') {
                        return Err("`***` is not a valid wildcard".into());
                    }
                    out.push_str(".*");
                } else {
                    // Within a segment: never across `/`, nor into the
                    // query, which a template server may drop.
                    out.push_str("[^/?#]*");
                }
            }
            '{' => {
                out.push_str(&regex::escape(&std::mem::take(&mut literal)));
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) if c.is_ascii_alphanumeric() || c == '_' => name.push(c),
                        Some(c) => {
                            return Err(format!(
                                "`{{{name}{c}…` is not a level-1 template variable (only `{{name}}` is supported)"
                            ));
                        }
                        None => return Err("unclosed `{` in template".into()),
                    }
                }
                if name.is_empty() {
                    return Err("empty `{}` in template".into());
                }
                out.push_str("[^/?#]+");
            }
            '}' => return Err("unmatched `}` in template".into()),
            c if c.is_whitespace() || c.is_control() => {
                return Err(format!("character {c:?} is not allowed in a URI pattern"));
            }
            c => literal.push(c),
        }
    }
    out.push_str(&regex::escape(&literal));
    out.push('$');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(rules: &[(&str, &[&str])]) -> NameRules {
        NameRules::compile(
            rules
                .iter()
                .map(|(p, s)| (p.to_string(), s.iter().map(|x| x.to_string()).collect()))
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn exact_beats_glob_and_longer_glob_beats_shorter() {
        let r = names(&[
            ("*", &["base"]),
            ("admin_*", &["admin"]),
            ("admin_read*", &["read"]),
            ("admin_reset", &["reset"]),
        ]);
        assert_eq!(r.find("admin_reset").unwrap().pattern, "admin_reset");
        assert_eq!(r.find("admin_readers").unwrap().pattern, "admin_read*");
        assert_eq!(r.find("admin_x").unwrap().pattern, "admin_*");
        assert_eq!(r.find("echo").unwrap().pattern, "*");
        let none = names(&[("echo", &[])]);
        assert!(none.find("Echo").is_none(), "names are case-sensitive");
    }

    #[test]
    fn glob_metacharacters_in_names_are_literal() {
        let r = names(&[("a.b*", &[])]);
        assert!(r.find("a.bc").is_some());
        assert!(r.find("axbc").is_none());
    }

    #[test]
    fn bad_name_globs_are_refused() {
        for bad in ["", "a**", "a?", "a[b]", "x y", "{x}"] {
            assert!(
                NameRules::compile(vec![(bad.into(), vec![])]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn uri_patterns_globs_and_templates() {
        let r = ResourceRules::compile(vec![
            ("file:///public/**".into(), vec![]),
            ("db://customers/{id}".into(), vec!["crm:read".into()]),
            ("file:///logs/*.txt".into(), vec!["ops".into()]),
        ])
        .unwrap();
        assert_eq!(
            r.find("file:///public/a/b/c.md").unwrap().pattern,
            "file:///public/**"
        );
        assert_eq!(
            r.find("db://customers/42").unwrap().pattern,
            "db://customers/{id}"
        );
        assert!(r.find("db://customers/42/orders").is_none());
        assert!(r.find("db://customers/").is_none());
        assert!(r.find("file:///logs/a.txt").is_some());
        assert!(r.find("file:///logs/x/a.txt").is_none());
        assert!(r.find("file:///publicity").is_none());
        // `*` and `{var}` stop at the query.
        assert!(r.find("db://customers/vip?x").is_none());
        assert!(r.find("file:///logs/a.txt?.txt").is_none());
        assert!(r.find("file:///public/a?b").is_some(), "`**` spans it");
    }

    #[test]
    fn bad_uri_patterns_are_refused() {
        for bad in [
            "",
            "a/***",
            "db://{+id}",
            "db://{id",
            "db://x}",
            "db://{}",
            "a b",
        ] {
            assert!(uri_pattern_regex(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shadowed_resource_rules_are_found() {
        let r = ResourceRules::compile(vec![
            ("file:///public/**".into(), vec![]),
            ("file:///public/secret/*".into(), vec!["x".into()]),
            ("file:///public/a.txt".into(), vec!["y".into()]),
            ("db://x/{id}".into(), vec![]),
        ])
        .unwrap();
        assert_eq!(r.shadowed(), vec![1, 2]);
    }

    #[test]
    fn partly_shadowed_templates_are_found() {
        let r = ResourceRules::compile(vec![
            ("db://{table}/{id}".into(), vec![]),
            ("db://customers/{id}".into(), vec!["crm:read".into()]),
            ("db://customers/vip".into(), vec!["crm:admin".into()]),
            ("file:///a/*.md".into(), vec![]),
            ("file:///b/**".into(), vec![]),
        ])
        .unwrap();
        assert_eq!(r.shadowed(), vec![2]);
        assert_eq!(r.overlapped(), vec![(1, 0)]);
    }
}
