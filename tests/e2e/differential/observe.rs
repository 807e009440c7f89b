//! What the two sides say happened: the gateway's audit events (text log
//! lines of target `mcp_auth_gateway::audit`, tied to a request by the
//! `request_id` the gateway also returns as `X-Request-Id`), the upstreams'
//! records of what they executed, URI comparison, and what a caller must never
//! see in an answer.

use std::collections::HashMap;

use serde_json::Value;

use super::corpus::Kind;

/// One audit event.
#[derive(Debug, Clone, Default)]
pub struct Audit {
    /// `method`.
    pub method: Option<String>,
    /// `tool`.
    pub tool: Option<String>,
    /// `resource`.
    pub resource: Option<String>,
    /// `prompt`.
    pub prompt: Option<String>,
    /// `decision` (`allow`, `deny_scope`, `deny_unlisted`).
    pub decision: String,
}

/// One line an upstream's recorder wrote.
#[derive(Debug, Clone)]
pub struct Record {
    /// Which upstream.
    pub upstream: &'static str,
    /// What ran.
    pub kind: Kind,
    /// The tool or prompt name, or the resource URI as the handler got it.
    pub target: String,
    /// The JSON-RPC id the upstream parsed, as a string.
    pub rid: String,
}

/// Tools the caller may not run.
const SECRET_TOOLS: &[&str] = &["admin_reset", "admin_delete_user", "get-env"];
/// Prompts the caller may not get.
const SECRET_PROMPTS: &[&str] = &["admin_prompt", "resource-prompt"];
/// Text that only a secret thing produces (the secret resources' contents, the
/// secret tools' and prompts' output, the TS server's `SECRET-LISTING`
/// descriptions, server-everything's environment marker).
const MARKERS: &[&str] = &[
    "SECRET-",
    "TOP SECRET",
    "hunter2",
    "system reset",
    "deleted user",
    "You are the administrator",
    "plaintext resource created at",
];

impl Audit {
    /// Whether this event allowed running `kind` on `target`.
    pub fn allows(&self, kind: Kind, target: &str) -> bool {
        if self.decision != "allow" {
            return false;
        }
        match kind {
            Kind::Tool => self.tool.as_deref() == Some(target),
            Kind::Prompt => self.prompt.as_deref() == Some(target),
            Kind::Resource | Kind::Subscribe => self
                .resource
                .as_deref()
                .is_some_and(|r| normalize_uri(r) == normalize_uri(target)),
        }
    }
}

impl Record {
    /// Whether the non-admin caller may never cause this. The target is taken
    /// as the upstream executed it, not normalised: a resource callback of the
    /// TS SDK gets the URL after WHATWG parsing and the Python SDK rebuilds
    /// template URIs from decoded parameters, while a Python template that got
    /// `vip\u{1}` as its id did not read `vip`.
    pub fn is_secret(&self) -> bool {
        match self.kind {
            Kind::Tool => SECRET_TOOLS.contains(&self.target.as_str()),
            Kind::Prompt => SECRET_PROMPTS.contains(&self.target.as_str()),
            Kind::Resource | Kind::Subscribe => is_secret_uri(&self.target),
        }
    }
}

/// Audit events by the request id they were logged under.
pub fn audits(log: &[String]) -> HashMap<String, Vec<Audit>> {
    let mut out: HashMap<String, Vec<Audit>> = HashMap::new();
    for line in log {
        let Some(fields_at) = line.find("mcp_auth_gateway::audit: ") else {
            continue;
        };
        let Some(request_id) = line
            .split("request_id=")
            .nth(1)
            .and_then(|s| s.split(['}', ',', ' ']).next())
        else {
            continue;
        };
        let fields = fields(&line[fields_at + "mcp_auth_gateway::audit: ".len()..]);
        let get = |k: &str| fields.get(k).cloned();
        out.entry(request_id.to_owned()).or_default().push(Audit {
            method: get("method"),
            tool: get("tool"),
            resource: get("resource"),
            prompt: get("prompt"),
            decision: get("decision").unwrap_or_default(),
        });
    }
    out
}

/// `key=value` pairs of a text-format tracing line; quoted values are Rust
/// `Debug` strings.
fn fields(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ' ' {
                break;
            }
            key.push(c);
            chars.next();
        }
        match chars.next() {
            None => return out,
            Some(' ') => continue,
            Some(_) => {}
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => match chars.next() {
                        Some('n') => value.push('\n'),
                        Some('r') => value.push('\r'),
                        Some('t') => value.push('\t'),
                        Some('0') => value.push('\0'),
                        Some('u') => {
                            let hex: String =
                                chars.by_ref().skip(1).take_while(|&c| c != '}').collect();
                            let c = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32);
                            value.push(c.unwrap_or('\u{fffd}'));
                        }
                        Some(other) => value.push(other),
                        None => {}
                    },
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ' ' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.insert(key, value);
    }
}

/// Every line of a recorder's file.
pub fn records(upstream: &'static str, path: &std::path::Path) -> Vec<Record> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{upstream} record {l:?}: {e}"));
            let kind = match v["kind"].as_str() {
                Some("tool") => Kind::Tool,
                Some("prompt") => Kind::Prompt,
                Some("resource") => Kind::Resource,
                Some("subscribe" | "unsubscribe") => Kind::Subscribe,
                other => panic!("{upstream} recorded an unknown kind {other:?}"),
            };
            let target = v["name"]
                .as_str()
                .or(v["uri"].as_str())
                .unwrap_or_default()
                .to_owned();
            let rid = match &v["rid"] {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            Record {
                upstream,
                kind,
                target,
                rid,
            }
        })
        .collect()
}

/// A URI after WHATWG parsing and serialisation (what the TS SDK's `new URL()`
/// does), then with percent-encoded unreserved characters decoded (what the
/// Python SDK's templates do), then parsed again; unparsable input stays as is.
pub fn normalize_uri(uri: &str) -> String {
    let whatwg = |s: &str| url::Url::parse(s).map_or_else(|_| s.to_owned(), |u| u.to_string());
    whatwg(&decode_unreserved(&whatwg(uri)))
}

fn decode_unreserved(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    out.push(b);
                    i += 3;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether a resource, as an upstream names it, is one the caller may not read.
pub fn is_secret_uri(uri: &str) -> bool {
    uri.starts_with("file:///private/")
        || uri.starts_with("demo://resource/dynamic/")
        || uri == "db://customers/vip"
}

/// The JSON-RPC messages of an answer (a JSON body, or SSE `data:`).
fn messages(body: &str, content_type: &str) -> Vec<Value> {
    let mut docs = Vec::new();
    if content_type.contains("text/event-stream") {
        for event in body.split("\n\n") {
            let data: Vec<&str> = event
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            if !data.is_empty() {
                docs.push(data.join("\n"));
            }
        }
    } else {
        docs.push(body.to_owned());
    }
    docs.iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .flat_map(|v| match v {
            Value::Array(items) => items,
            v => vec![v],
        })
        .collect()
}

/// Everything in an answer the caller may not see.
pub fn leaks(body: &[u8], content_type: &str) -> Vec<String> {
    let text = String::from_utf8_lossy(body);
    let mut out: Vec<String> = MARKERS
        .iter()
        .filter(|m| text.contains(*m))
        .map(|m| format!("secret content {m:?}"))
        .collect();
    for msg in messages(&text, content_type) {
        let result = &msg["result"];
        let entries = |list: &str, key: &str| -> Vec<String> {
            result[list]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e[key].as_str().map(str::to_owned))
                .collect()
        };
        for name in entries("tools", "name") {
            if SECRET_TOOLS.contains(&name.as_str()) || name.starts_with("admin_") {
                out.push(format!("listed tool {name}"));
            }
        }
        for name in entries("prompts", "name") {
            if SECRET_PROMPTS.contains(&name.as_str()) || name.starts_with("admin_") {
                out.push(format!("listed prompt {name}"));
            }
        }
        for uri in entries("resources", "uri") {
            if is_secret_uri(&uri) {
                out.push(format!("listed resource {uri}"));
            }
        }
        for uri in entries("contents", "uri") {
            if is_secret_uri(&uri) {
                out.push(format!("contents of {uri}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_lines_parse() {
        let line = r#"2026-12-04T20:25:17.135604Z  INFO request{request_id=37cae770-00000000}: mcp_auth_gateway::audit: authorization route=/mcp sub="lane 1" client_id="c" method="tools/call" tool="a\"b\t\u{85}" rule="echo" decision="allow" missing_scopes=mcp:admin x:y"#;
        let a = audits(&[line.to_owned()]);
        let a = &a["37cae770-00000000"][0];
        assert_eq!(a.tool.as_deref(), Some("a\"b\t\u{85}"));
        assert_eq!(a.method.as_deref(), Some("tools/call"));
        assert_eq!(a.decision, "allow");
        assert!(a.resource.is_none());
    }

    #[test]
    fn uris_normalize_like_the_sdks() {
        assert_eq!(normalize_uri("db://customers/vi%70"), "db://customers/vip");
        assert_eq!(
            normalize_uri("FILE:///public/.\t./private/secret.txt"),
            "file:///private/secret.txt"
        );
        assert_eq!(
            normalize_uri("file:///public\\%2e%2E\\private\\secret.txt"),
            "file:///private/secret.txt"
        );
        assert!(is_secret_uri("demo://resource/dynamic/text/1"));
        assert!(!is_secret_uri("db://customers/vip\u{1}"));
        assert!(!is_secret_uri("file:///public/readme.txt"));
    }
}
