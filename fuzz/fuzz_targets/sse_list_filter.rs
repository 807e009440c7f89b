//! Invariant: the SSE list filter never panics, and the response it emits
//! never carries a list result (`tools`, `prompts`, `resources`,
//! `resourceTemplates`: any of them, whatever was asked, since a resumed
//! stream replays any answer) with an entry the predicate denies (only keys
//! starting with `ok` are allowed), however the upstream's bytes are chunked.
//! Every message counts, whatever its `id` and in batches too: clients match
//! response ids in their own ways. The first input byte picks the chunk size.
#![no_main]

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use libfuzzer_sys::fuzz_target;
use mcp_auth_gateway::body::BoxError;
use mcp_auth_gateway::filter::{ListFilter, ListKind, filter_response};
use serde_json::Value;

/// Every `data:` payload of every complete event in `out`.
fn datas(out: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(out).replace("\r\n", "\n").replace('\r', "\n");
    text.split("\n\n")
        .map(|event| {
            event
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&every, rest)) = data.split_first() else {
        return;
    };
    let every = usize::from(every.max(1));
    let chunks: Vec<Result<http_body::Frame<Bytes>, BoxError>> = rest
        .chunks(every)
        .map(|c| Ok(http_body::Frame::data(Bytes::copy_from_slice(c))))
        .collect();
    let body = StreamBody::new(futures_util::stream::iter(chunks)).boxed();
    let resp = http::Response::builder()
        .header("content-type", "text/event-stream")
        .body(body)
        .expect("response");
    let filter = ListFilter {
        id: Value::from(1),
        kind: Some(ListKind::Tools),
        allow: Some(Arc::new(|_, name: &str| name.starts_with("ok"))),
        max_event_bytes: 4096,
        pass_oversize: false,
    };
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let out = rt.block_on(async {
        let resp = filter_response(resp, filter).await;
        resp.into_body().collect().await.map(|c| c.to_bytes())
    });
    let Ok(out) = out else { return };
    for data in datas(&out) {
        let Ok(msg) = serde_json::from_str::<Value>(&data) else { continue };
        let messages = match msg {
            Value::Array(items) => items,
            one => vec![one],
        };
        // Any id: clients match response ids in their own ways.
        for msg in &messages {
            for (list, key) in [("tools", "name"), ("prompts", "name"), ("resources", "uri"), ("resourceTemplates", "uriTemplate")] {
                let Some(entries) = msg.get("result").and_then(|r| r.get(list)).and_then(Value::as_array) else {
                    continue;
                };
                for e in entries {
                    let name = e.get(key).and_then(Value::as_str).unwrap_or("");
                    assert!(name.starts_with("ok"), "denied {list} entry {name:?} leaked");
                }
            }
        }
    }
});

