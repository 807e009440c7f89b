//! The mutations the corpus is made of: charsets and content codings,
//! control characters in every field, scheme spellings, percent-encodings,
//! dot segments and duplicated fields.

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;

use super::{Case, Expect, Ids, Profile, Req, call_tool, case, get_prompt, lit, on_uri, rpc};

/// Characters to slip into names, methods and URIs.
const CONTROLS: &[char] = &[
    '\u{0}', '\u{1}', '\u{2}', '\u{3}', '\u{4}', '\u{5}', '\u{6}', '\u{7}', '\u{8}', '\t', '\n',
    '\u{b}', '\u{c}', '\r', '\u{e}', '\u{f}', '\u{10}', '\u{11}', '\u{12}', '\u{13}', '\u{14}',
    '\u{15}', '\u{16}', '\u{17}', '\u{18}', '\u{19}', '\u{1a}', '\u{1b}', '\u{1c}', '\u{1d}',
    '\u{1e}', '\u{1f}', '\u{7f}', '\u{85}', '\u{a0}', ' ',
];

/// `charset` parameters (`None`: no parameter).
const CHARSETS: &[Option<&str>] = &[
    None,
    Some("utf-8"),
    Some("UTF-8"),
    Some("utf-7"),
    Some("UTF-7"),
    Some("utf-16"),
    Some("utf-16le"),
    Some("utf-16be"),
    Some("iso-8859-1"),
    Some("latin1"),
];

/// `Content-Encoding` values (`None`: no header).
const ENCODINGS: &[Option<&str>] = &[
    None,
    Some("identity"),
    Some("gzip"),
    Some("deflate"),
    Some("br"),
    Some("x-gzip"),
];

/// Spellings of `..` (WHATWG URL parsers delete TAB, LF and CR anywhere and
/// read `%2e` as a dot; a percent-encoded TAB is a control).
const DOTS: &[&str] = &[
    "..", ".%2e", "%2e.", "%2e%2e", ".%2E", "%2E.", "%2E%2E", ".\t.", "\t..", "..\t", ".\n.",
    ".\r.", "\n..", ". .", ".%09.",
];

/// Where a character goes.
#[derive(Debug, Clone, Copy)]
enum At {
    Start,
    Middle,
    End,
}

/// `s` with `c` at `at`; `Middle` is the middle of what follows `://` for URIs.
fn insert(s: &str, c: char, at: At) -> String {
    match at {
        At::Start => format!("{c}{s}"),
        At::End => format!("{s}{c}"),
        At::Middle => {
            let from = s.find("://").map_or(0, |i| i + 3);
            let chars: Vec<(usize, char)> = s[from..].char_indices().collect();
            let split = from
                + chars
                    .get(chars.len() / 2)
                    .map_or(s.len() - from, |(i, _)| *i);
            format!("{}{c}{}", &s[..split], &s[split..])
        }
    }
}

/// UTF-7 `+XXXX-` for one character (UTF-16BE in base64, unpadded).
fn utf7(c: char) -> String {
    let mut units = [0u16; 2];
    let bytes: Vec<u8> = c
        .encode_utf16(&mut units)
        .iter()
        .flat_map(|u| u.to_be_bytes())
        .collect();
    format!("+{}-", STANDARD_NO_PAD.encode(bytes))
}

fn encode_charset(text: &str, charset: Option<&str>) -> Vec<u8> {
    match charset.map(str::to_ascii_lowercase).as_deref() {
        Some("utf-16") => [0xFF, 0xFE]
            .into_iter()
            .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
            .collect(),
        Some("utf-16le") => text.encode_utf16().flat_map(u16::to_le_bytes).collect(),
        Some("utf-16be") => text.encode_utf16().flat_map(u16::to_be_bytes).collect(),
        // The bodies are ASCII: Latin-1 and UTF-7 bytes are the same.
        _ => text.as_bytes().to_vec(),
    }
}

pub(super) fn charsets(p: &Profile, ids: &mut Ids, out: &mut Vec<Case>) {
    let secret = p.secret_tool;
    let (public, args) = p.public_tool;
    let q = "+ACI-";
    // In UTF-7, `+ACIAfQ-` is `"}` and `+ACI-` is `"`: the message closes and
    // a second `name` follows; JSON.parse keeps the last one.
    let smuggle = format!("x+ACIAfQ-,{q}name{q}:{q}{secret}{q},{q}z{q}:{{{q}a{q}:{q}");
    let mut first = secret.chars();
    let head = first.next().unwrap();
    let disguised = format!("{}{}", utf7(head), first.as_str());
    let bodies = [
        (
            "utf7-smuggle",
            rpc(
                "ID",
                &lit("tools/call"),
                &format!(
                    r#"{{"name":{},"arguments":{{"message":"{smuggle}"}}}}"#,
                    lit(public)
                ),
            ),
        ),
        ("utf7-name", call_tool("ID", &disguised, "{}")),
        ("secret-call", call_tool("ID", secret, "{}")),
        ("public-call", call_tool("ID", public, args)),
    ];
    for (what, body) in &bodies {
        for charset in CHARSETS {
            for encoding in ENCODINGS {
                let id = ids.next();
                let text = body.replace(r#""id":"ID""#, &format!(r#""id":"{id}""#));
                let content_type = match charset {
                    Some(cs) => format!("application/json; charset={cs}"),
                    None => "application/json".into(),
                };
                out.push(Case {
                    label: format!("{what} {content_type:?} encoding {encoding:?}"),
                    id,
                    class: "charset-encoding",
                    req: Req::Post {
                        content_type,
                        encoding: *encoding,
                        body: encode_charset(&text, *charset),
                    },
                    expect: Expect::Any,
                });
            }
        }
    }
}

pub(super) fn controls_in_fields(p: &Profile, ids: &mut Ids, out: &mut Vec<Case>) {
    let (public, args) = p.public_tool;
    for &c in CONTROLS {
        for at in [At::Start, At::Middle, At::End] {
            let method = insert("tools/call", c, at);
            for (name, a) in [(p.secret_tool, "{}"), (public, args)] {
                out.push(case(
                    ids,
                    "control-char",
                    format!("method {method:?} name {name}"),
                    Expect::Any,
                    |id| {
                        rpc(
                            id,
                            &lit(&method),
                            &format!(r#"{{"name":{},"arguments":{a}}}"#, lit(name)),
                        )
                    },
                ));
            }
            for (name, a) in [(p.secret_tool, "{}"), (public, args)] {
                let name = insert(name, c, at);
                out.push(case(
                    ids,
                    "control-char",
                    format!("tool {name:?}"),
                    Expect::Any,
                    |id| call_tool(id, &name, a),
                ));
            }
            for (name, a) in [p.secret_prompt, p.public_prompt] {
                let name = insert(name, c, at);
                out.push(case(
                    ids,
                    "control-char",
                    format!("prompt {name:?}"),
                    Expect::Any,
                    |id| get_prompt(id, &name, a),
                ));
            }
            for uri in p.secret_uris.iter().chain(&p.public_uris[..1]) {
                let uri = insert(uri, c, at);
                out.push(case(
                    ids,
                    "control-char",
                    format!("read {uri:?}"),
                    Expect::Any,
                    |id| on_uri(id, "resources/read", &uri),
                ));
            }
        }
    }
}

pub(super) fn schemes(p: &Profile, ids: &mut Ids, out: &mut Vec<Case>) {
    for uri in p.secret_uris.iter().chain(p.public_uris) {
        let (scheme, rest) = uri.split_once(':').unwrap();
        let alternate = |upper_first: bool| -> String {
            scheme
                .chars()
                .enumerate()
                .map(|(i, c)| {
                    if (i % 2 == 0) == upper_first {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect()
        };
        let mut spellings = vec![
            scheme.to_ascii_uppercase(),
            format!("{}{}", scheme[..1].to_ascii_uppercase(), &scheme[1..]),
            alternate(true),
            alternate(false),
        ];
        spellings.sort();
        spellings.dedup();
        for s in spellings.iter().filter(|s| s.as_str() != scheme) {
            let variant = format!("{s}:{rest}");
            for method in ["resources/read", "resources/subscribe"] {
                out.push(case(
                    ids,
                    "scheme-case",
                    format!("{method} {variant}"),
                    Expect::Any,
                    |id| on_uri(id, method, &variant),
                ));
            }
        }
    }
}

pub(super) fn percent(p: &Profile, ids: &mut Ids, out: &mut Vec<Case>) {
    let encode_at = |s: &str, i: usize, from: usize, lower: bool| -> Option<String> {
        let (pos, c) = s[from..].char_indices().nth(i)?;
        let pos = from + pos;
        let hex = if lower {
            format!("%{:02x}", c as u32)
        } else {
            format!("%{:02X}", c as u32)
        };
        Some(format!("{}{hex}{}", &s[..pos], &s[pos + c.len_utf8()..]))
    };
    for uri in p.secret_uris {
        let from = uri.find("://").unwrap() + 3;
        let n = uri[from..].chars().count();
        for i in 0..n {
            for lower in [false, true] {
                let Some(variant) = encode_at(uri, i, from, lower) else {
                    continue;
                };
                if lower && variant == encode_at(uri, i, from, false).unwrap() {
                    continue;
                }
                out.push(case(
                    ids,
                    "percent",
                    format!("read {variant}"),
                    Expect::Any,
                    |id| on_uri(id, "resources/read", &variant),
                ));
            }
        }
    }
    for (kind, name, args) in [
        ("tool", p.secret_tool, "{}"),
        ("prompt", p.secret_prompt.0, p.secret_prompt.1),
    ] {
        for i in 0..name.chars().count() {
            let variant = encode_at(name, i, 0, false).unwrap();
            out.push(case(
                ids,
                "percent",
                format!("{kind} {variant}"),
                Expect::Any,
                |id| {
                    if kind == "tool" {
                        call_tool(id, &variant, args)
                    } else {
                        get_prompt(id, &variant, args)
                    }
                },
            ));
        }
    }
}

pub(super) fn dots(p: &Profile, ids: &mut Ids, out: &mut Vec<Case>) {
    for (dir, target, ups) in p.traversals {
        for dot in DOTS {
            for sep in ["/", "\\"] {
                let climb: String = std::iter::repeat_n(format!("{dot}{sep}"), *ups).collect();
                let uri = format!("{dir}{sep}{climb}{}", target.replace('/', sep));
                for method in ["resources/read", "resources/subscribe"] {
                    out.push(case(
                        ids,
                        "dot-segment",
                        format!("{method} {uri:?}"),
                        Expect::Any,
                        |id| on_uri(id, method, &uri),
                    ));
                }
            }
        }
    }
}

pub(super) fn duplicates(p: &Profile, ids: &mut Ids, out: &mut Vec<Case>) {
    let (public, args) = p.public_tool;
    let secret = lit(p.secret_tool);
    let public = lit(public);
    let (sp, sp_args) = p.secret_prompt;
    let (pp, pp_args) = p.public_prompt;
    let (pu, su) = (lit(p.public_uris[0]), lit(p.secret_uris[0]));
    let call = lit("tools/call");
    let bodies: Vec<(&str, String)> = vec![
        (
            "name public then secret",
            format!(
                r#"{{"jsonrpc":"2.0","id":"ID","method":{call},"params":{{"name":{public},"arguments":{args},"name":{secret}}}}}"#
            ),
        ),
        (
            "name secret then public",
            format!(
                r#"{{"jsonrpc":"2.0","id":"ID","method":{call},"params":{{"name":{secret},"name":{public},"arguments":{args}}}}}"#
            ),
        ),
        (
            "escaped key n\\u0061me",
            format!(
                r#"{{"jsonrpc":"2.0","id":"ID","method":{call},"params":{{"name":{public},"arguments":{args},"n\u0061me":{secret}}}}}"#
            ),
        ),
        (
            "params twice",
            format!(
                r#"{{"jsonrpc":"2.0","id":"ID","method":{call},"params":{{"name":{public},"arguments":{args}}},"params":{{"name":{secret},"arguments":{{}}}}}}"#
            ),
        ),
        (
            "method ping then tools/call",
            format!(
                r#"{{"jsonrpc":"2.0","id":"ID","method":"ping","method":{call},"params":{{"name":{secret},"arguments":{{}}}}}}"#
            ),
        ),
        (
            "method tools/call then ping",
            format!(
                r#"{{"jsonrpc":"2.0","id":"ID","method":{call},"method":"ping","params":{{"name":{secret},"arguments":{{}}}}}}"#
            ),
        ),
        (
            "escaped method",
            format!(
                r#"{{"jsonrpc":"2.0","id":"ID","method":"tools\/c\u0061ll","params":{{"name":{secret},"arguments":{{}}}}}}"#
            ),
        ),
        (
            "escaped name",
            format!(
                r#"{{"jsonrpc":"2.0","id":"ID","method":{call},"params":{{"name":"{}","arguments":{{}}}}}}"#,
                p.secret_tool
                    .replace('_', "\\u005f")
                    .replace('-', "\\u002d")
            ),
        ),
        (
            "__proto__ name",
            format!(
                r#"{{"jsonrpc":"2.0","id":"ID","method":{call},"params":{{"name":{public},"arguments":{args},"__proto__":{{"name":{secret}}}}}}}"#
            ),
        ),
        (
            "uri public then secret",
            format!(
                r#"{{"jsonrpc":"2.0","id":"ID","method":"resources/read","params":{{"uri":{pu},"uri":{su}}}}}"#
            ),
        ),
        (
            "escaped uri",
            format!(
                r#"{{"jsonrpc":"2.0","id":"ID","method":"resources/read","params":{{"uri":{}}}}}"#,
                su.replace('/', "\\/")
            ),
        ),
        (
            "prompt name twice",
            format!(
                r#"{{"jsonrpc":"2.0","id":"ID","method":"prompts/get","params":{{"name":{},"arguments":{pp_args},"name":{},"arguments":{sp_args}}}}}"#,
                lit(pp),
                lit(sp)
            ),
        ),
        (
            "BOM before body",
            format!("\u{feff}{}", call_tool("ID", p.secret_tool, "{}")),
        ),
        (
            "batch public + secret",
            format!(
                "[{},{}]",
                call_tool("ID.1", p.public_tool.0, args),
                call_tool("ID.2", p.secret_tool, "{}")
            ),
        ),
        (
            "batch secret",
            format!("[{}]", call_tool("ID.1", p.secret_tool, "{}")),
        ),
        (
            "method Tools/call",
            format!(
                r#"{{"jsonrpc":"2.0","id":"ID","method":"Tools/call","params":{{"name":{secret},"arguments":{{}}}}}}"#
            ),
        ),
    ];
    for (label, body) in bodies {
        out.push(case(
            ids,
            "duplicate-field",
            label.to_owned(),
            Expect::Any,
            |id| body.replace("\"ID", &format!("\"{id}")),
        ));
    }
}
