//! Invariant: the envelope reader never panics, and whenever it accepts a
//! body (single or batch), a reference parser (`serde_json::Value`, which
//! keeps the *last* of duplicate keys, as JavaScript and Python do) reads the
//! same `method` and the same target for every message. So the method the
//! gateway authorizes is the method an upstream executes: never allows what
//! the reference decision would deny.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_auth_gateway::jsonrpc::{self, Envelope, ParseLimits, Target};
use serde_json::Value;

fn target_of(msg: &Value) -> Option<String> {
    let method = msg.get("method")?.as_str()?;
    let params = msg.get("params");
    let field = |name: &str| params.and_then(|p| p.get(name)).and_then(Value::as_str).map(str::to_owned);
    match method {
        "tools/call" | "prompts/get" => field("name"),
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => field("uri"),
        "completion/complete" => {
            let r = params?.get("ref")?;
            r.get("name").or_else(|| r.get("uri")).and_then(Value::as_str).map(str::to_owned)
        }
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let limits = ParseLimits { max_depth: 64, max_batch: 32 };
    let Ok(envelope) = jsonrpc::parse(data, limits) else {
        return;
    };
    let reference: Value = serde_json::from_slice(data).expect("accepted a body that is not JSON");
    let messages: Vec<&Value> = match (&envelope, &reference) {
        (Envelope::Single(_), Value::Object(_)) => vec![&reference],
        (Envelope::Batch(_), Value::Array(items)) => items.iter().collect(),
        _ => panic!("shape differs from the reference"),
    };
    assert_eq!(messages.len(), envelope.calls().len());
    for (call, msg) in envelope.calls().iter().zip(messages) {
        assert_eq!(call.method.as_deref(), msg.get("method").and_then(Value::as_str), "method differs");
        let ours = match &call.target {
            Target::None => None,
            Target::Tool(s) | Target::Resource(s) | Target::Prompt(s) => Some(s.clone()),
        };
        if ours.is_some() {
            assert_eq!(ours, target_of(msg), "target differs");
        }
    }
});
