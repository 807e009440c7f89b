//! Invariant: the envelope reader never panics, and whenever it accepts a
//! body (single or batch), a reference parser (`serde_json::Value`, which
//! keeps the *last* of duplicate keys, as JavaScript and Python do) reads the
//! same `method` and the same target for every message. So the method the
//! gateway authorizes is the method an upstream executes: never allows what
//! the reference decision would deny. A resource URI is compared in the
//! canonical form the gateway judges (`jsonrpc::uri::canonical` of the
//! reference's string), and every `subscriptions/listen` subscription too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_auth_gateway::jsonrpc::{self, Envelope, ParseLimits, Target};
use mcp_auth_gateway::uri;
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
        match &call.target {
            Target::None | Target::Missing(..) => {}
            Target::Tool(s) | Target::Prompt(s) => {
                assert_eq!(Some(s.clone()), target_of(msg), "target differs");
            }
            Target::Resource(s) => {
                let reference = target_of(msg).map(|u| uri::canonical(&u).expect("accepted a URI canonical() refuses"));
                assert_eq!(Some(s.clone()), reference, "resource differs");
            }
            Target::Resources(list) => {
                let reference: Vec<String> = msg["params"]["notifications"]["resourceSubscriptions"]
                    .as_array()
                    .expect("subscriptions not an array")
                    .iter()
                    .map(|u| uri::canonical(u.as_str().expect("not a string")).expect("refused URI accepted"))
                    .collect();
                assert_eq!(list, &reference, "subscriptions differ");
            }
        }
    }
});
