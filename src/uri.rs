//! Stage 5, resource URIs: the one form of a `params.uri` that the policy
//! judges, which is the form the upstream SDKs act on.
//!
//! The TS SDK reads `params.uri` with WHATWG `new URL()`: it deletes TAB, LF
//! and CR anywhere, trims C0 controls and spaces, lowercases the scheme (and
//! a special scheme's host), and resolves `.`/`..` segments, also as `%2e`.
//! The Python SDK matches the raw string against its resources and
//! templates, then percent-decodes the values a template captures
//! (`db://customers/vi%70` is `vip`); a template with a `{?q}` tail ignores
//! the fragment and extra query parameters. So a URI is judged as follows
//! (README, "Security model"):
//!
//! 1. refused if it holds a control character (U+0000–U+001F, U+007F–U+009F),
//!    a backslash, whitespace other than an inner U+0020, or leading or
//!    trailing whitespace: an SDK would silently delete or rewrite them;
//! 2. refused if a path segment is `.` or `..`, in any encoding: a server that
//!    reads the raw string and one that resolves it would reach different
//!    resources;
//! 3. refused if it has a fragment (`#`): servers drop it or keep it as they
//!    like, so it can only blur which resource is meant;
//! 4. for `file:`, refused if it holds a `|` (WHATWG turns `C|` into a drive
//!    letter `C:`), a host (`file://host/…`; `localhost` is fine), or an empty
//!    path segment: the `url` crate and Node's parser differ on all three;
//! 5. parsed as a WHATWG URL (the `url` crate); not an absolute URL: refused;
//! 6. its serialization percent-decoded; an escape that decodes to a
//!    delimiter (`/ ? # %`), a backslash or a control character, or bytes
//!    that are not UTF-8, is refused, because a decoding server would cross a
//!    rule boundary the gateway did not;
//! 7. refused unless the decoded form serializes back to the same URL: every
//!    escape left is one WHATWG itself writes (a space, `é`), never one the
//!    client chose (`vi%70`). So a server that decodes (Python templates)
//!    and one that does not (a TS exact-URI lookup) read one resource name,
//!    and the decoded form the gateway judges is that name.
//!
//! Resource patterns in the config are held to the same form (see
//! [`pattern_problem`]), so a rule and a request compare like with like. A
//! URI with a query is judged twice, with and without it
//! ([`without_query`]): a template server may read only the part before `?`.

/// Why a resource URI cannot be judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    /// A control character, backslash, or whitespace an SDK would delete.
    #[error("resource URI contains a control character, backslash or stray whitespace")]
    Characters,
    /// A `.` or `..` segment, plain or percent-encoded.
    #[error("resource URI contains dot-segments")]
    DotSegment,
    /// Not an absolute URL.
    #[error("resource URI is not an absolute URI")]
    NotAbsolute,
    /// A percent-escape that decodes to a delimiter, a control character or
    /// bytes that are not UTF-8.
    #[error("resource URI contains an encoded delimiter or invalid escape")]
    Escape,
    /// A fragment (`#…`).
    #[error("resource URI has a fragment")]
    Fragment,
    /// A `file:` URI that URL parsers read differently (`|`, a host, an
    /// empty segment).
    #[error("file: URI with a drive bar, a host or an empty path segment")]
    FileForm,
}

/// The canonical form of a resource URI, or why it cannot be judged.
pub fn canonical(uri: &str) -> Result<String, UriError> {
    check_characters(uri)?;
    if has_dot_segment(uri) {
        return Err(UriError::DotSegment);
    }
    if uri.contains('#') {
        return Err(UriError::Fragment);
    }
    check_file_form(uri)?;
    let parsed = url::Url::parse(uri).map_err(|_| UriError::NotAbsolute)?;
    let decoded = decode(parsed.as_str())?;
    let again = url::Url::parse(&decoded).map_err(|_| UriError::Escape)?;
    if upper_escapes(again.as_str()) != upper_escapes(parsed.as_str()) {
        return Err(UriError::Escape);
    }
    Ok(decoded)
}

/// `s` with the hex digits of every `%XX` escape in upper case (RFC 3986
/// §6.2.2.1: the case of an escape carries no meaning).
fn upper_escapes(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains('%') {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let esc: String = rest[at..].chars().take(3).collect();
        out.push_str(&esc.to_ascii_uppercase());
        rest = &rest[at + esc.len()..];
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

/// Why a resource pattern from the config can never match a canonical URI,
/// or `None` when it is in canonical form. Wildcards and `{var}`s are
/// replaced by a plain segment before the check.
pub fn pattern_problem(pattern: &str) -> Option<String> {
    let sample = sample_instance(pattern);
    if pattern.contains('%') {
        return Some(
            "resource URIs are matched percent-decoded: write the characters, not `%XX` escapes"
                .into(),
        );
    }
    match canonical(&sample) {
        // Not a URL at all (e.g. a bare `**`): nothing to compare.
        Err(UriError::NotAbsolute) => None,
        Err(e) => Some(e.to_string()),
        Ok(c) if c == sample => None,
        Ok(c) => Some(format!(
            "upstreams read `{sample}` as `{c}`; write the pattern in that form"
        )),
    }
}

/// `pattern` with `**`, `*` and `{var}` replaced by `x`: a URI the pattern
/// matches, for comparing patterns with each other and with their canonical
/// form.
pub fn sample_instance(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => {
                while chars.peek() == Some(&'*') {
                    chars.next();
                }
                out.push('x');
            }
            '{' => {
                for c in chars.by_ref() {
                    if c == '}' {
                        break;
                    }
                }
                out.push('x');
            }
            c => out.push(c),
        }
    }
    out
}

/// The URI without its query (`None` when it has none): judged as well,
/// since a template server may match only the part before `?`.
pub fn without_query(uri: &str) -> Option<&str> {
    uri.split_once('?').map(|(before, _)| before)
}

/// `file:` URIs that the `url` crate and Node's WHATWG parser read
/// differently (fuzzed against Node 20): a `|` (a drive letter to WHATWG),
/// a host other than `localhost` (the `url` crate drops it before a drive
/// letter), or an empty path segment (collapsed by one, kept by the other).
fn check_file_form(uri: &str) -> Result<(), UriError> {
    let Some((scheme, rest)) = uri.split_once(':') else {
        return Ok(());
    };
    if !scheme.eq_ignore_ascii_case("file") {
        return Ok(());
    }
    let rest = rest.split('?').next().unwrap_or_default();
    let path = match rest.strip_prefix("//") {
        Some(after) => {
            let (host, path) = after.split_at(after.find('/').unwrap_or(after.len()));
            if !host.is_empty() && !host.eq_ignore_ascii_case("localhost") {
                return Err(UriError::FileForm);
            }
            path
        }
        None => rest,
    };
    let empty_segment = path
        .strip_prefix('/')
        .unwrap_or(path)
        .split('/')
        .rev()
        .skip(1)
        .any(str::is_empty)
        || path.starts_with("//");
    if uri.contains('|') || empty_segment {
        return Err(UriError::FileForm);
    }
    Ok(())
}

fn check_characters(uri: &str) -> Result<(), UriError> {
    let stray = |c: char| c.is_whitespace() && c != ' ';
    let bad = uri.chars().any(|c| c.is_control() || c == '\\' || stray(c))
        || uri.starts_with(char::is_whitespace)
        || uri.ends_with(char::is_whitespace);
    if bad {
        Err(UriError::Characters)
    } else {
        Ok(())
    }
}

/// Whether a segment after the scheme is `.` or `..`, with any of its dots
/// written as `%2e` (any case), as WHATWG URL parsing treats them.
fn has_dot_segment(uri: &str) -> bool {
    let rest = uri.split_once(':').map_or(uri, |(_, rest)| rest);
    // Query and fragment are not resolved by URL parsers, nor is the
    // authority (`x://./a` names the host `.`).
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let path = match rest.strip_prefix("//") {
        Some(authority_and_path) => authority_and_path
            .find('/')
            .map_or("", |at| &authority_and_path[at..]),
        None => rest,
    };
    path.split('/').any(|seg| {
        let lower = seg.to_ascii_lowercase();
        let dots = lower.replace("%2e", ".");
        dots == "." || dots == ".."
    })
}

/// Percent-decodes a serialized URL, refusing escapes that would move a
/// boundary.
fn decode(serialized: &str) -> Result<String, UriError> {
    if !serialized.contains('%') {
        return Ok(serialized.to_owned());
    }
    let bytes = serialized.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let hex = bytes.get(i + 1..i + 3).ok_or(UriError::Escape)?;
        let byte = std::str::from_utf8(hex)
            .ok()
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .ok_or(UriError::Escape)?;
        let crosses = matches!(byte, b'/' | b'?' | b'#' | b'%' | b'\\') || byte.is_ascii_control();
        if crosses {
            return Err(UriError::Escape);
        }
        out.push(byte);
        i += 3;
    }
    let decoded = String::from_utf8(out).map_err(|_| UriError::Escape)?;
    // A decoded C1 control or stray whitespace is refused like a literal one.
    check_characters(&decoded)?;
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdk_normalizations_are_applied() {
        for (input, want) in [
            ("DEMO://resource/x", "demo://resource/x"),
            ("db://customers/vi%70", "refused"),
            ("db://customers/%41", "refused"),
            ("db://customers/vi%2570", "refused"),
            ("file:///public/caf%C3%A9", "file:///public/café"),
            ("file:///public/caf%c3%a9", "file:///public/café"),
            ("file:///public/a%20b", "file:///public/a b"),
            ("file:///public/%7Bx%7D", "file:///public/{x}"),
            ("db://customers/vip?fields=x", "db://customers/vip?fields=x"),
            ("file:///public/café", "file:///public/café"),
            ("file:///public/a b", "file:///public/a b"),
            ("HTTPS://Example.COM:443/a", "https://example.com/a"),
            ("file://localhost/etc/x", "file:///etc/x"),
            (
                "demo://resource/static/document/1",
                "demo://resource/static/document/1",
            ),
        ] {
            let got = canonical(input).unwrap_or_else(|_| "refused".into());
            assert_eq!(got, want, "{input:?}");
        }
    }

    #[test]
    fn what_an_sdk_would_rewrite_is_refused() {
        for bad in [
            "demo://resource/static/document/.\t./.\t./dynamic/text/1",
            "file:///public/.\t./private/secret.txt",
            "file:///public/x\n",
            " demo://resource/dynamic/text/1",
            "demo://resource/dynamic/text/1 ",
            "demo://resource/\u{0}x",
            "demo://resource/\u{85}x",
            "demo://resource/\u{a0}x",
            "file:///public/../private",
            "file:///public/./x",
            "file:///public/%2e%2E/private",
            "file:///public/.%2e/private",
            "file:///public/%2e/private",
            "file:///public/a%2fb",
            "file:///public/a%5cb",
            "file:///public\\..\\private",
            "file:///public/a%00b",
            "file:///public/a%C2%85b",
            "file:///public/a%ffb",
            "file:///public/a%3Fb",
            "file:///public/a%23b",
            "file:///public/a%zz",
            "file:///public/a%4",
            "relative/path",
            "",
            "db://customers/vip#x",
            "db://customers/vip?#",
            "file:///C|/secret.txt",
            "file://fs1/C|/x",
            "file://fs1/x",
            "file:////x",
            "file://h//x",
            "file:///a//b",
            "file:/a//b",
        ] {
            assert!(canonical(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_dot_host_is_not_a_dot_segment() {
        // Found by fuzz/resource_uri: the authority is not resolved.
        let c = canonical("x://.:/tB-:B@-BA").unwrap();
        assert_eq!(canonical(&c).as_deref(), Ok(c.as_str()));
        assert!(canonical("x://./../y").is_err());
    }

    #[test]
    fn file_uris_all_parsers_agree_on_pass() {
        for ok in [
            "file:///public/a.txt",
            "file://localhost/public/a",
            "file:///a/b/",
            "FILE:///a",
        ] {
            assert!(canonical(ok).is_ok(), "{ok}");
        }
        assert_eq!(without_query("db://c/vip?x=1"), Some("db://c/vip"));
        assert_eq!(without_query("db://c/vip"), None);
    }

    #[test]
    fn dots_inside_names_are_fine() {
        assert_eq!(
            canonical("file:///public/..hidden/a.txt").as_deref(),
            Ok("file:///public/..hidden/a.txt")
        );
        assert_eq!(
            canonical("file:///public/x?path=../y").as_deref(),
            Ok("file:///public/x?path=../y")
        );
    }

    #[test]
    fn patterns_must_be_canonical() {
        assert_eq!(pattern_problem("file:///public/**"), None);
        assert_eq!(pattern_problem("db://customers/{id}"), None);
        assert_eq!(pattern_problem("**"), None);
        assert!(pattern_problem("DEMO://x/**").is_some());
        assert!(pattern_problem("db://customers/vi%70").is_some());
        assert!(pattern_problem("https://Example.com/**").is_some());
        assert!(pattern_problem("file:///public/../x").is_some());
        assert_eq!(sample_instance("db://{t}/x/**/*.md"), "db://x/x/x/x.md");
    }
}
