//! The generated corpus: a few request templates crossed with every charset,
//! every content coding, every control character at every position, every
//! spelling of a scheme, a percent-encoding of every character of every secret
//! name, dot segments with whitespace inside, and duplicated fields. Nothing
//! here knows how the gateway reads a request: the verdict comes from
//! comparing what the gateway audited with what the upstream executed.

mod mutations;

/// What one real upstream offers: public things the caller may use, secret
/// ones that need `mcp:admin`, which the caller lacks.
pub struct Profile {
    /// Upstream name, as in reports.
    pub name: &'static str,
    /// A public tool and its JSON arguments.
    pub public_tool: (&'static str, &'static str),
    /// A secret tool (no arguments needed).
    pub secret_tool: &'static str,
    /// A public prompt and its JSON arguments.
    pub public_prompt: (&'static str, &'static str),
    /// A secret prompt and its JSON arguments.
    pub secret_prompt: (&'static str, &'static str),
    /// Public resources (static and template-served).
    pub public_uris: &'static [&'static str],
    /// Secret resources.
    pub secret_uris: &'static [&'static str],
    /// `(public directory, path of a secret below the parent, dot segments)`.
    pub traversals: &'static [(&'static str, &'static str, usize)],
    /// Whether the server replays events on `Last-Event-ID`.
    pub resumable: bool,
}

/// The three real upstreams.
pub const PROFILES: [Profile; 3] = [
    Profile {
        name: "ts-express",
        public_tool: ("echo", r#"{"message":"hi"}"#),
        secret_tool: "admin_reset",
        public_prompt: ("summarize", r#"{"text":"t"}"#),
        secret_prompt: ("admin_prompt", "{}"),
        public_uris: &["file:///public/readme.txt", "file:///public/notes.txt"],
        secret_uris: &["file:///private/secret.txt"],
        traversals: &[("file:///public", "private/secret.txt", 1)],
        resumable: true,
    },
    Profile {
        name: "server-everything",
        public_tool: ("echo", r#"{"message":"hi"}"#),
        secret_tool: "get-env",
        public_prompt: ("simple-prompt", "{}"),
        secret_prompt: (
            "resource-prompt",
            r#"{"resourceType":"Text","resourceId":"1"}"#,
        ),
        public_uris: &["demo://resource/static/document/architecture.md"],
        secret_uris: &["demo://resource/dynamic/text/1"],
        traversals: &[
            ("demo://resource/static", "dynamic/text/1", 1),
            ("demo://resource/static/document", "dynamic/text/1", 2),
        ],
        resumable: true,
    },
    Profile {
        name: "python-mcp",
        public_tool: ("echo", r#"{"message":"hi"}"#),
        secret_tool: "admin_reset",
        public_prompt: ("summarize", r#"{"text":"t"}"#),
        secret_prompt: ("admin_prompt", "{}"),
        public_uris: &["file:///public/readme.txt", "db://customers/42"],
        secret_uris: &["file:///private/secret.txt", "db://customers/vip"],
        traversals: &[
            ("file:///public", "private/secret.txt", 1),
            ("db://customers/x", "vip", 1),
        ],
        resumable: false,
    },
];

/// What an upstream can execute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `tools/call`.
    Tool,
    /// `resources/read`.
    Resource,
    /// `prompts/get`.
    Prompt,
    /// `resources/subscribe`.
    Subscribe,
}

/// What a case must lead to, beyond the invariants every case has.
#[derive(Debug, Clone)]
pub enum Expect {
    /// Only the invariants.
    Any,
    /// A positive control: the upstream executed this and the gateway audited it allowed.
    Executed(Kind, &'static str),
    /// The upstream executed nothing.
    NotExecuted,
}

/// The HTTP request of a case.
#[derive(Debug, Clone)]
pub enum Req {
    /// A POST on the session.
    Post {
        /// `Content-Type`.
        content_type: String,
        /// `Content-Encoding`, if any; `body` is compressed accordingly before sending.
        encoding: Option<&'static str>,
        /// The body.
        body: Vec<u8>,
    },
    /// A GET resuming the session's streams after this event id.
    Resume {
        /// `Last-Event-ID`.
        last_event_id: String,
    },
}

/// One request of the corpus.
#[derive(Debug, Clone)]
pub struct Case {
    /// The JSON-RPC id (`c<n>`; batch elements `c<n>.<k>`), which the upstream records.
    pub id: String,
    /// The class, for the report.
    pub class: &'static str,
    /// What the case is, for humans.
    pub label: String,
    /// The request.
    pub req: Req,
    /// Extra expectation.
    pub expect: Expect,
}

/// Hands out case ids.
#[derive(Default)]
pub struct Ids(usize);

impl Ids {
    /// The next id.
    pub fn next(&mut self) -> String {
        self.0 += 1;
        format!("c{}", self.0)
    }
}

/// A JSON string literal.
fn lit(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// A request body; `method` and `params` are raw JSON.
fn rpc(id: &str, method: &str, params: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":"{id}","method":{method},"params":{params}}}"#)
}

fn json_post(body: String) -> Req {
    Req::Post {
        content_type: "application/json".into(),
        encoding: None,
        body: body.into_bytes(),
    }
}

fn case(
    ids: &mut Ids,
    class: &'static str,
    label: String,
    expect: Expect,
    body: impl FnOnce(&str) -> String,
) -> Case {
    let id = ids.next();
    let req = json_post(body(&id));
    Case {
        id,
        class,
        label,
        req,
        expect,
    }
}

fn call_tool(id: &str, name: &str, args: &str) -> String {
    rpc(
        id,
        &lit("tools/call"),
        &format!(r#"{{"name":{},"arguments":{args}}}"#, lit(name)),
    )
}

fn get_prompt(id: &str, name: &str, args: &str) -> String {
    rpc(
        id,
        &lit("prompts/get"),
        &format!(r#"{{"name":{},"arguments":{args}}}"#, lit(name)),
    )
}

fn on_uri(id: &str, method: &str, uri: &str) -> String {
    rpc(id, &lit(method), &format!(r#"{{"uri":{}}}"#, lit(uri)))
}

/// Positive and negative controls: run first and last on every lane.
pub fn controls(p: &Profile, ids: &mut Ids) -> Vec<Case> {
    let mut out = vec![
        case(
            ids,
            "control",
            format!("call {}", p.public_tool.0),
            Expect::Executed(Kind::Tool, p.public_tool.0),
            |id| call_tool(id, p.public_tool.0, p.public_tool.1),
        ),
        case(
            ids,
            "control",
            format!("get {}", p.public_prompt.0),
            Expect::Executed(Kind::Prompt, p.public_prompt.0),
            |id| get_prompt(id, p.public_prompt.0, p.public_prompt.1),
        ),
        case(
            ids,
            "control",
            format!("call {} (refused)", p.secret_tool),
            Expect::NotExecuted,
            |id| call_tool(id, p.secret_tool, "{}"),
        ),
    ];
    for uri in p.public_uris {
        out.push(case(
            ids,
            "control",
            format!("read {uri}"),
            Expect::Executed(Kind::Resource, uri),
            |id| on_uri(id, "resources/read", uri),
        ));
    }
    for uri in p.secret_uris {
        out.push(case(
            ids,
            "control",
            format!("read {uri} (refused)"),
            Expect::NotExecuted,
            |id| on_uri(id, "resources/read", uri),
        ));
    }
    out
}

/// The admin's controls: secret things do run, and the recorders see them.
pub fn admin_controls(p: &Profile, ids: &mut Ids) -> Vec<Case> {
    let mut out = vec![
        case(
            ids,
            "admin-control",
            format!("admin calls {}", p.secret_tool),
            Expect::Executed(Kind::Tool, p.secret_tool),
            |id| call_tool(id, p.secret_tool, "{}"),
        ),
        case(
            ids,
            "admin-control",
            format!("admin gets {}", p.secret_prompt.0),
            Expect::Executed(Kind::Prompt, p.secret_prompt.0),
            |id| get_prompt(id, p.secret_prompt.0, p.secret_prompt.1),
        ),
    ];
    for uri in p.secret_uris {
        out.push(case(
            ids,
            "admin-control",
            format!("admin reads {uri}"),
            Expect::Executed(Kind::Resource, uri),
            |id| on_uri(id, "resources/read", uri),
        ));
    }
    out
}

/// The list calls whose streams the resumption cases replay. Each list is
/// asked three times: the SDK example's event store orders a stream's events
/// by id, and ids made in the same millisecond sort by a random suffix, so
/// each time the answer comes after the priming event only half the time.
pub fn resume_setup(ids: &mut Ids) -> Vec<Case> {
    [
        "tools/list",
        "resources/list",
        "prompts/list",
        "resources/templates/list",
    ]
    .into_iter()
    .flat_map(|m| std::iter::repeat_n(m, 3))
    .map(|m| {
        case(ids, "resume-setup", m.to_owned(), Expect::Any, |id| {
            rpc(id, &lit(m), "{}")
        })
    })
    .collect()
}

/// The whole corpus for one upstream, controls excluded.
pub fn corpus(p: &Profile, ids: &mut Ids) -> Vec<Case> {
    let mut out = Vec::new();
    mutations::charsets(p, ids, &mut out);
    mutations::controls_in_fields(p, ids, &mut out);
    mutations::schemes(p, ids, &mut out);
    mutations::percent(p, ids, &mut out);
    mutations::dots(p, ids, &mut out);
    mutations::duplicates(p, ids, &mut out);
    out
}
