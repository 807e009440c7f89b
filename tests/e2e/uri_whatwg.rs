//! The resource URI the gateway judges is the one Node's WHATWG parser (the
//! TS SDK's `new URL()`) reads: for every URI of a generated corpus that
//! `jsonrpc::uri::canonical` accepts, Node parses it too, and Node's
//! serialization, percent-decoded, is the canonical form. The corpus mixes
//! schemes (special and not, `file:` with hosts, drive letters and empty
//! segments), every ASCII character at several positions, escapes of each,
//! and case variants. `fuzz/resource_uri` checks the same against the `url`
//! crate in-process; this is the check against the real peer.

use std::io::Write;
use std::process::{Command, Stdio};

use mcp_auth_gateway::uri;

fn corpus() -> Vec<String> {
    let bases = [
        "file:///public/docs/a.txt",
        "file://localhost/public/a",
        "demo://resource/static/document/1",
        "db://customers/vip",
        "https://Example.com:443/a/b?q=1",
        "http://h/a/b",
        "ui://x/y",
        "x:opaque/path",
        "mailto:a@b",
    ];
    let mut out = Vec::new();
    let specials = [
        "", "/", "//", "|", ":", "@", "?", "#", "%", "%2e", "%2E%2e", ".", "..", "\\", " ", "\t",
        "%20", "%7C", "%3A", "C|", "C:", "%41", "é", "%C3%A9", "[", "]", "{", "}", "^", "`", "\"",
        "<", ">", "'", "~", "!", "$", "&", "(", "*", "+", ",", ";", "=",
    ];
    for base in bases {
        out.push(base.to_owned());
        out.push(base.to_ascii_uppercase());
        let cuts: Vec<usize> = base
            .char_indices()
            .map(|(i, _)| i)
            .chain([base.len()])
            .collect();
        for &cut in &cuts {
            for s in specials {
                out.push(format!("{}{s}{}", &base[..cut], &base[cut..]));
            }
        }
        for host in ["", "localhost", "fs1", "LOCALHOST", "h:1"] {
            out.push(format!("file://{host}/C|/secret.txt"));
            out.push(format!("file://{host}/C:/x"));
            out.push(format!("file://{host}//x"));
            out.push(format!("file://{host}/a//b/"));
        }
    }
    for b in 0x20u8..0x7f {
        out.push(format!("file:///p/%{b:02X}x"));
        out.push(format!("demo://r/%{b:02x}x"));
        out.push(format!("demo://r/{}x", b as char));
    }
    out.sort();
    out.dedup();
    out
}

fn upper_escapes(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '%' {
            for h in chars.by_ref().take(2) {
                out.push(h.to_ascii_uppercase());
            }
        }
    }
    out
}

#[test]
fn every_accepted_uri_is_read_by_node_as_the_gateway_judges_it() {
    let uris = corpus();
    let mut node = Command::new("node")
        .arg(crate::support::repo_root().join("tests/peers/whatwg_href.mjs"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node");
    {
        let mut stdin = node.stdin.take().unwrap();
        for u in &uris {
            writeln!(stdin, "{}", serde_json::to_string(u).unwrap()).unwrap();
        }
    }
    let out = node.wait_with_output().unwrap();
    let hrefs: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(hrefs.len(), uris.len());

    let mut accepted = 0;
    let mut disagreements = Vec::new();
    for (u, node) in uris.iter().zip(&hrefs) {
        let Ok(canonical) = uri::canonical(u) else {
            continue;
        };
        accepted += 1;
        let Some(href) = node["href"].as_str() else {
            // Node refuses it: the upstream fails the request. Safe.
            continue;
        };
        let node_decoded = percent_encoding::percent_decode_str(href).decode_utf8_lossy();
        let ours = url::Url::parse(u).unwrap();
        if node_decoded != canonical || upper_escapes(href) != upper_escapes(ours.as_str()) {
            disagreements.push(format!("{u:?}: node {href:?}, gateway {canonical:?}"));
        }
    }
    eprintln!(
        "uri_whatwg: {} URIs, {accepted} accepted, {} disagreements with Node's URL",
        uris.len(),
        disagreements.len()
    );
    assert!(accepted > 1000, "the corpus must exercise acceptance too");
    assert!(
        disagreements.is_empty(),
        "{} disagreements:\n{}",
        disagreements.len(),
        disagreements[..disagreements.len().min(40)].join("\n")
    );
}
