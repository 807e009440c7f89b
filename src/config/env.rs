//! `${VAR}` expansion for config string values (used for secrets).

/// Replaces every `${NAME}` with the variable's value. `$$` is a literal `$`.
/// Returns the name of the first unset variable as the error.
pub(super) fn expand(input: &str) -> Result<String, String> {
    expand_with(input, |name| std::env::var(name).ok())
}

fn expand_with(input: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(body) = after.strip_prefix('{') {
            let Some(end) = body.find('}') else {
                out.push_str(&rest[pos..]);
                return Ok(out);
            };
            let name = &body[..end];
            out.push_str(&lookup(name).ok_or_else(|| name.to_owned())?);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::expand_with;

    fn lookup(name: &str) -> Option<String> {
        (name == "SECRET").then(|| "s3cr:et".to_owned())
    }

    #[test]
    fn expands_known_and_keeps_literals() {
        assert_eq!(expand_with("a-${SECRET}-b", lookup).unwrap(), "a-s3cr:et-b");
        assert_eq!(expand_with("cost $5 $$x", lookup).unwrap(), "cost $5 $x");
        assert_eq!(expand_with("no ${brace", lookup).unwrap(), "no ${brace");
    }

    #[test]
    fn unset_variable_is_named() {
        assert_eq!(expand_with("${NOPE}", lookup).unwrap_err(), "NOPE");
    }
}
