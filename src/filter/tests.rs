//! Tests for stage 8: JSON and SSE list filtering.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use serde_json::json;

use super::{ListFilter, ListKind, filter_response};
use crate::body::{Body, BoxError};

pub(super) const ERROR_JSON: &str = r#"{"jsonrpc":"2.0","id":7,"error":{"code":-32603,"message":"gateway could not filter the list response"}}"#;

pub(super) fn list_filter(kind: ListKind, max: usize) -> ListFilter {
    ListFilter {
        id: json!(7),
        kind: Some(kind),
        allow: Some(Arc::new(|_, name: &str| !name.starts_with("secret"))),
        max_event_bytes: max,
        pass_oversize: false,
    }
}

fn stream_body(chunks: Vec<Bytes>) -> Body {
    let frames = chunks
        .into_iter()
        .map(|c| Ok::<_, BoxError>(Frame::data(c)));
    StreamBody::new(futures_util::stream::iter(frames)).boxed()
}

pub(super) fn chunked(bytes: &[u8], every: usize) -> Vec<Bytes> {
    bytes.chunks(every).map(Bytes::copy_from_slice).collect()
}

pub(super) fn response(content_type: &str, chunks: Vec<Bytes>) -> Response<Body> {
    let len: usize = chunks.iter().map(Bytes::len).sum();
    Response::builder()
        .header(CONTENT_TYPE, content_type)
        .header(CONTENT_LENGTH, len)
        .body(stream_body(chunks))
        .unwrap()
}

pub(super) async fn run(
    resp: Response<Body>,
    filter: ListFilter,
) -> (http::response::Parts, Bytes) {
    let (parts, body) = filter_response(resp, filter).await.into_parts();
    (parts, body.collect().await.unwrap().to_bytes())
}

async fn run_json(body: &str, max: usize) -> (http::response::Parts, Bytes) {
    let resp = response(
        "Application/JSON; charset=utf-8",
        chunked(body.as_bytes(), 5),
    );
    run(resp, list_filter(ListKind::Tools, max)).await
}

async fn run_sse(chunks: Vec<Bytes>, max: usize) -> Bytes {
    let resp = response("text/event-stream", chunks);
    let (parts, body) = run(resp, list_filter(ListKind::Tools, max)).await;
    assert!(parts.headers.get(CONTENT_LENGTH).is_none());
    body
}

#[test]
fn list_kind_from_method() {
    assert_eq!(ListKind::from_method("tools/list"), Some(ListKind::Tools));
    assert_eq!(
        ListKind::from_method("prompts/list"),
        Some(ListKind::Prompts)
    );
    assert_eq!(
        ListKind::from_method("resources/list"),
        Some(ListKind::Resources)
    );
    assert_eq!(
        ListKind::from_method("resources/templates/list"),
        Some(ListKind::ResourceTemplates)
    );
    assert_eq!(ListKind::from_method("tools/call"), None);
}

#[tokio::test]
async fn json_rewrite_keeps_cursor_order_and_other_fields() {
    let body = r#"{"jsonrpc":"2.0","id":7,"result":{"_meta":{"z":1,"a":2},"tools":[
        {"name":"ok","inputSchema":{"type":"object","z":1,"a":2}},{"name":"secret"},
        {"description":"no name"},{"name":5},{"name":"ok2"}],"nextCursor":"abc","zzz":null},"extra":true}"#;
    let (parts, out) = run_json(body, 4096).await;
    let expected = r#"{"jsonrpc":"2.0","id":7,"result":{"_meta":{"z":1,"a":2},"tools":[{"name":"ok","inputSchema":{"type":"object","z":1,"a":2}},{"name":"ok2"}],"nextCursor":"abc","zzz":null},"extra":true}"#;
    assert_eq!(out, expected);
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(parts.headers[CONTENT_LENGTH], expected.len().to_string());
}

#[tokio::test]
async fn json_other_kinds_use_their_keys() {
    let cases = [
        (ListKind::Prompts, "prompts", "name"),
        (ListKind::Resources, "resources", "uri"),
        (
            ListKind::ResourceTemplates,
            "resourceTemplates",
            "uriTemplate",
        ),
    ];
    for (kind, field, key) in cases {
        // The third entry has every key but its own as an allowed string.
        let mut unnamed = json!({"name": "a", "uri": "a", "uriTemplate": "a"});
        unnamed[key] = json!(1);
        let body = json!({"jsonrpc": "2.0", "id": 7, "result": {
            field: [{key: "a"}, {key: "secret://x"}, unnamed],
        }});
        let resp = response("application/json", vec![body.to_string().into()]);
        let (_, out) = run(resp, list_filter(kind, 4096)).await;
        let got: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(got["result"][field], json!([{key: "a"}]), "{kind:?}");
    }
}

#[tokio::test]
async fn json_bodies_without_a_list_pass_unchanged() {
    let error = r#"{ "jsonrpc":"2.0", "id":7, "error":{"code":-1,"message":"secret"} }"#;
    let no_list = r#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"name":"secret"}]}}"#;
    for body in [error, no_list] {
        let (parts, out) = run_json(body, 4096).await;
        assert_eq!(out, body);
        assert_eq!(parts.headers[CONTENT_LENGTH], body.len().to_string());
    }
}

#[tokio::test]
async fn every_list_in_a_result_is_filtered_whatever_was_asked() {
    // A resumed stream may replay any answer: the kind asked for does not
    // limit what is filtered.
    let body = r#"{"jsonrpc":"2.0","id":7,"result":{"prompts":[{"name":"secret"},{"name":"a"}],"tools":[{"name":"secret2"}],"resources":[{"uri":"secret:x"}],"resourceTemplates":[{"uriTemplate":"secret:{x}"},{"uriTemplate":"pub:{x}"}]}}"#;
    let (_, out) = run_json(body, 4096).await;
    let got: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(got["result"]["prompts"], json!([{"name": "a"}]));
    assert_eq!(got["result"]["tools"], json!([]));
    assert_eq!(got["result"]["resources"], json!([]));
    assert_eq!(
        got["result"]["resourceTemplates"],
        json!([{"uriTemplate": "pub:{x}"}])
    );
}

#[tokio::test]
async fn json_fails_closed() {
    let big = r#"{"jsonrpc":"2.0","id":7,"result":{"tools":[{"name":"secret"}]}}"#;
    let cases = [(big, 20), ("{not json", 4096), (&format!("[{big}]"), 4096)];
    for (body, max) in cases {
        let (parts, out) = run_json(body, max).await;
        assert_eq!(parts.status, StatusCode::BAD_GATEWAY, "{body}");
        assert_eq!(out, ERROR_JSON);
        assert_eq!(parts.headers[CONTENT_TYPE], "application/json");
        assert_eq!(parts.headers[CONTENT_LENGTH], ERROR_JSON.len().to_string());
    }
}

#[tokio::test]
async fn unknown_media_types_fail_closed_and_error_statuses_pass() {
    let body = r#"{"jsonrpc":"2.0","id":7,"result":{"tools":[{"name":"secret"}]}}"#;
    for content_type in [
        Some("text/plain"),
        Some("application/json-rpc"),
        Some("application/json; charset=utf-16"),
        Some("text/event-stream; charset=latin1"),
        None,
    ] {
        let mut resp = response("application/json", vec![body.into()]);
        match content_type {
            Some(t) => {
                resp.headers_mut().insert(CONTENT_TYPE, t.parse().unwrap());
            }
            None => {
                resp.headers_mut().remove(CONTENT_TYPE);
            }
        }
        let (parts, out) = run(resp, list_filter(ListKind::Tools, 4096)).await;
        assert_eq!(parts.status, StatusCode::BAD_GATEWAY, "{content_type:?}");
        assert_eq!(out, ERROR_JSON, "{content_type:?}");
    }
    let mut twice = response("application/json", vec![body.into()]);
    twice
        .headers_mut()
        .append(CONTENT_TYPE, "application/json".parse().unwrap());
    let (parts, _) = run(twice, list_filter(ListKind::Tools, 4096)).await;
    assert_eq!(parts.status, StatusCode::BAD_GATEWAY, "Content-Type twice");

    let mut resp = response("application/json", vec![body.into()]);
    *resp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    let (parts, out) = run(resp, list_filter(ListKind::Tools, 4096)).await;
    assert_eq!(parts.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(out, body);
}

/// A notification, the matching response (multi-line data, comment, `id`,
/// `event`, `retry`), another event; and what the client must receive.
fn three_events(eol: &str) -> (String, String) {
    let first = "id: 1\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n";
    let matched = concat!(
        ": keep me\nevent: message\nid: 2\n",
        "data: {\"jsonrpc\":\"2.0\",\"id\":7,\n",
        "data:  \"result\":{\"tools\":[{\"name\":\"ok\"},{\"name\":\"secret\"}],\"nextCursor\":\"c\"}}\n",
        "retry: 500\n\n",
    );
    let rewritten = concat!(
        ": keep me\nevent: message\nid: 2\n",
        "data: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"tools\":[{\"name\":\"ok\"}],\"nextCursor\":\"c\"}}\n",
        "retry: 500\n\n",
    );
    let last = "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}\n\n";
    let input = format!("{first}{matched}{last}").replace('\n', eol);
    let expected = format!("{first}{rewritten}{last}").replace('\n', eol);
    (input, expected)
}

#[tokio::test]
async fn sse_rewrites_match_for_any_chunking_and_line_ending() {
    for eol in ["\n", "\r\n", "\r"] {
        let (input, expected) = three_events(eol);
        let bytes = input.as_bytes();
        let mut splits: Vec<Vec<Bytes>> = [1, 3, 7, bytes.len()]
            .iter()
            .map(|&n| chunked(bytes, n))
            .collect();
        // Every two-chunk split, including between `\r` and `\n`.
        for at in 1..bytes.len() {
            let (a, b) = bytes.split_at(at);
            splits.push(vec![Bytes::copy_from_slice(a), Bytes::copy_from_slice(b)]);
        }
        for chunks in splits {
            let out = run_sse(chunks, 4096).await;
            assert_eq!(out, expected.as_bytes(), "eol {eol:?}");
        }
    }
}

#[tokio::test]
async fn sse_mixed_line_endings_and_bom() {
    let input = "\u{feff}data: {\"id\":7,\r\ndata: \"result\":{\"tools\":[{\"name\":\"secret\"}]}}\n: c\r\r\n";
    let expected = "\u{feff}data: {\"id\":7,\"result\":{\"tools\":[]}}\r\n: c\r\r\n";
    assert_eq!(run_sse(chunked(input.as_bytes(), 2), 4096).await, expected);
}

#[tokio::test]
async fn sse_every_list_is_filtered_also_after_the_first() {
    // A client that rejects the first answer (no "jsonrpc") reads the second.
    let first = "data: {\"id\":7,\"result\":{\"tools\":[{\"name\":\"secret\"}]}}\n\n";
    let second = "data: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"tools\":[{\"name\":\"secret\"},{\"name\":\"ok\"}]}}\n\n";
    let note =
        "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\"}\n\n";
    let input = format!("{first}{second}{note}");
    let out = run_sse(chunked(input.as_bytes(), 9), 4096).await;
    let expected = format!(
        "data: {{\"id\":7,\"result\":{{\"tools\":[]}}}}\n\ndata: {{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{{\"tools\":[{{\"name\":\"ok\"}}]}}}}\n\n{note}"
    );
    assert_eq!(out, expected.as_bytes());
    // And what cannot be read after a list still fails closed.
    let input = format!("{first}data: not json\n\n");
    let out = run_sse(chunked(input.as_bytes(), 9), 4096).await;
    let expected = format!(
        "data: {{\"id\":7,\"result\":{{\"tools\":[]}}}}\n\nevent: error\ndata: {ERROR_JSON}\n\n"
    );
    assert_eq!(out, expected.as_bytes());
}

#[tokio::test]
async fn sse_oversize_event_fails_closed_and_ends() {
    let first = "data: {\"jsonrpc\":\"2.0\",\"method\":\"n\"}\n\n";
    let big = format!("data: {}", "x".repeat(300));
    let matched = "data: {\"id\":7,\"result\":{\"tools\":[{\"name\":\"secret\"}]}}\n\n";
    let error_event = format!("event: error\ndata: {ERROR_JSON}\n\n");
    // Incomplete when it crosses the cap (small chunks) or complete in one chunk.
    for every in [10, 4096] {
        let input = format!("{first}{big}\n\n{matched}");
        let out = run_sse(chunked(input.as_bytes(), every), 100).await;
        assert_eq!(
            out,
            format!("{first}{error_event}").as_bytes(),
            "every {every}"
        );
    }
}

#[tokio::test]
async fn sse_invalid_json_before_match_fails_closed() {
    let input = "data: {\"id\":7,\"result\":\n\ndata: {\"id\":7}\n\n";
    let out = run_sse(vec![input.into()], 4096).await;
    assert_eq!(
        out,
        format!("event: error\ndata: {ERROR_JSON}\n\n").as_bytes()
    );
}

#[tokio::test]
async fn sse_events_without_json_data_pass() {
    let input = "id: prime\ndata:\n\n: ping\n\nretry: 10\n\n\n";
    assert_eq!(run_sse(chunked(input.as_bytes(), 1), 4096).await, input);
}

#[tokio::test]
async fn sse_unterminated_tail() {
    // Readable and without a list: forwarded as-is.
    let tail = "id: 9\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"ping\"}";
    assert_eq!(run_sse(chunked(tail.as_bytes(), 4), 4096).await, tail);
    // Unreadable (truncated, or a duplicate key): it does not go out as it is.
    for tail in [
        "id: 9\ndata: {\"jsonrpc\":\"2.0\",\"meth",
        "data: {\"id\":7,\"result\":{\"tools\":[],\"tools\":[{\"name\":\"secret\"}]}}",
    ] {
        let out = run_sse(chunked(tail.as_bytes(), 4), 4096).await;
        assert_eq!(
            out,
            format!("event: error\ndata: {ERROR_JSON}\n\n").as_bytes()
        );
    }
    // The match, even unterminated or ending in a lone `\r`, never leaks.
    for (input, expected) in [
        (
            "data: {\"id\":7,\"result\":{\"tools\":[{\"name\":\"secret\"}]}}\n",
            "data: {\"id\":7,\"result\":{\"tools\":[]}}\n",
        ),
        (
            "data: {\"id\":7,\"result\":{\"tools\":[{\"name\":\"secret\"}]}}\r\r",
            "data: {\"id\":7,\"result\":{\"tools\":[]}}\r\r",
        ),
    ] {
        assert_eq!(run_sse(chunked(input.as_bytes(), 3), 4096).await, expected);
    }
}

#[tokio::test]
async fn sse_batch_on_stream_is_filtered() {
    let input = "data: [{\"method\":\"n\"},{\"id\":7,\"result\":{\"tools\":[{\"name\":\"secret\"},{\"name\":\"a\"}]}}]\n\n";
    let expected =
        "data: [{\"method\":\"n\"},{\"id\":7,\"result\":{\"tools\":[{\"name\":\"a\"}]}}]\n\n";
    assert_eq!(run_sse(vec![input.into()], 4096).await, expected);
}

#[tokio::test]
async fn sse_forwards_complete_events_before_the_rest_arrives() {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let chunk = rx.recv().await?;
        Some((Ok::<_, BoxError>(Frame::data(chunk)), rx))
    });
    let resp = Response::builder()
        .header(CONTENT_TYPE, "text/event-stream")
        .body(StreamBody::new(stream).boxed())
        .unwrap();
    let mut body = filter_response(resp, list_filter(ListKind::Tools, 4096))
        .await
        .into_body();
    tx.send("data: {\"method\":\"n\"}\n\ndata: {\"id\"".into())
        .await
        .unwrap();
    let frame = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(frame, "data: {\"method\":\"n\"}\n\n");
    tx.send(":7,\"result\":{\"tools\":[{\"name\":\"secret\"}]}}\n\nid: 3\n".into())
        .await
        .unwrap();
    drop(tx);
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(
        rest,
        "data: {\"id\":7,\"result\":{\"tools\":[]}}\n\nid: 3\n"
    );
}

#[tokio::test]
async fn sse_upstream_error_propagates() {
    let frames: Vec<Result<Frame<Bytes>, BoxError>> = vec![
        Ok(Frame::data("data: {\"method\":\"n\"}\n\n".into())),
        Err("upstream reset".into()),
    ];
    let resp = Response::builder()
        .header(CONTENT_TYPE, "text/event-stream")
        .body(StreamBody::new(futures_util::stream::iter(frames)).boxed())
        .unwrap();
    let body = filter_response(resp, list_filter(ListKind::Tools, 4096))
        .await
        .into_body();
    let err = body.collect().await.unwrap_err();
    assert_eq!(err.to_string(), "upstream reset");
}

#[tokio::test]
async fn oversize_lists_pass_unfiltered_only_when_the_route_allows() {
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":7,"result":{{"tools":[{{"name":"secret_x"}},{{"name":"{}"}}]}}}}"#,
        "a".repeat(300)
    );
    let mut allow = list_filter(ListKind::Tools, 100);
    allow.pass_oversize = true;

    // JSON: the whole original body goes on, byte for byte.
    let resp = response("application/json", chunked(big.as_bytes(), 64));
    let (parts, body) = run(resp, allow.clone()).await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(body, big.as_bytes());
    let (parts, _) = run_json(&big, 100).await;
    assert_eq!(
        parts.status,
        StatusCode::BAD_GATEWAY,
        "fails closed by default"
    );

    // SSE: the oversize event and everything after it pass as-is.
    let stream = format!("id: 1\ndata: {big}\n\nid: 2\ndata: {{\"later\":true}}\n\n");
    let resp = response("text/event-stream", chunked(stream.as_bytes(), 50));
    let (_, body) = run(resp, allow).await;
    assert_eq!(body, stream.as_bytes());
    let failed = run_sse(chunked(stream.as_bytes(), 50), 100).await;
    assert!(String::from_utf8_lossy(&failed).contains("event: error"));
}

#[tokio::test]
async fn json_kept_entries_and_other_members_are_the_upstream_bytes() {
    // Numbers, escapes and key order inside kept entries are not re-encoded;
    // an escaped key still names the entry.
    let body = r#"{"jsonrpc":"2.0","id":7,"result":{"tools":[{"na\u006de":"ok","n":1.50,"s":"\u00e9"},{"name":"secret"}],"x":1e2}}"#;
    let (parts, out) = run_json(body, 4096).await;
    let expected = r#"{"jsonrpc":"2.0","id":7,"result":{"tools":[{"na\u006de":"ok","n":1.50,"s":"\u00e9"}],"x":1e2}}"#;
    assert_eq!(out, expected);
    assert_eq!(parts.headers[CONTENT_LENGTH], expected.len().to_string());
}

#[tokio::test]
async fn json_duplicate_keys_fail_closed_or_drop_the_entry() {
    // Two `result`s (or two lists): the client might read the one we did not filter.
    for body in [
        r#"{"jsonrpc":"2.0","id":7,"result":{"tools":[]},"result":{"tools":[{"name":"secret"}]}}"#,
        r#"{"jsonrpc":"2.0","id":7,"result":{"tools":[],"tools":[{"name":"secret"}]}}"#,
        r#"{"jsonrpc":"2.0","id":7,"id":8,"result":{"tools":[{"name":"secret"}]}}"#,
    ] {
        let (parts, out) = run_json(body, 4096).await;
        assert_eq!(parts.status, StatusCode::BAD_GATEWAY, "{body}");
        assert_eq!(out, ERROR_JSON);
    }
    // An entry naming itself twice cannot be authorized: dropped.
    let body = r#"{"jsonrpc":"2.0","id":7,"result":{"tools":[{"name":"ok","name":"secret"},{"name":"ok2"}]}}"#;
    let (_, out) = run_json(body, 4096).await;
    assert_eq!(
        out,
        r#"{"jsonrpc":"2.0","id":7,"result":{"tools":[{"name":"ok2"}]}}"#
    );
}

#[tokio::test]
async fn json_matching_response_without_a_list_passes_whole() {
    for body in [
        r#"{"jsonrpc":"2.0","id":7,"result":{"nextCursor":"c"}}"#,
        r#"{"jsonrpc":"2.0","id":7,"result":null}"#,
    ] {
        let (parts, out) = run_json(body, 4096).await;
        assert_eq!(parts.status, StatusCode::OK);
        assert_eq!(out, body);
    }
    let not_a_list = r#"{"jsonrpc":"2.0","id":7,"result":{"tools":{"name":"secret"}}}"#;
    let (parts, out) = run_json(not_a_list, 4096).await;
    assert_eq!(parts.status, StatusCode::BAD_GATEWAY);
    assert_eq!(out, ERROR_JSON);
}

#[tokio::test]
async fn every_list_is_filtered_whatever_its_id() {
    // Clients match ids their own way (the TS SDK by Number(id), the Python
    // SDK by int(id)), so no id is safe to pass unfiltered.
    for id in [
        "7",
        "7.0",
        r#""7""#,
        r#""0x7""#,
        "1.0000000000000001110223024625156540423631668090820312499999999999",
        r#""0_7""#,
        "8",
        "null",
    ] {
        let body =
            format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{"tools":[{{"name":"secret"}}]}}}}"#);
        let (_, out) = run_json(&body, 4096).await;
        let expected = format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{"tools":[]}}}}"#);
        assert_eq!(out, expected, "id {id}");
    }
}
