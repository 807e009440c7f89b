//! Differential test ("make the gateway and the upstream read the same
//! request"), with no knowledge of particular tricks. Three real upstreams
//! record what they actually parsed and executed (`tests/peers/
//! ts_express_server.mjs`; npm `server-everything` with the
//! `record_hook.mjs` preload; `fastmcp_server.py` with `RECORD_FILE`), a
//! generated corpus of several thousand requests goes through one gateway,
//! and for every request:
//! * whatever the upstream executed, the gateway's audit events for that
//!   request (tied by `X-Request-Id`) allowed exactly that target: tool and
//!   prompt names compared exactly, resource URIs after WHATWG normalisation
//!   and decoding of percent-encoded unreserved characters;
//! * no secret target runs for a caller without `mcp:admin`;
//! * no answer shows the caller something it may not see, resumed streams
//!   (`Last-Event-ID`) included.
//!
//! Positive controls on every lane (a public call must run and be audited,
//! before and after the corpus) and an admin lane (secret things do run and are
//! recorded for a caller with `mcp:admin`) keep the test from passing because
//! nothing was recorded.

mod corpus;
mod drive;
mod observe;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Semaphore;

use corpus::{Case, Expect, Ids, Kind, PROFILES, Profile, Req};
use drive::{Answer, HttpClient, run_lane};
use observe::{Audit, Record};

use crate::ISS;
use crate::support::peers;
use crate::support::{GatewayBuilder, TestIssuer};

/// Requests in flight at once.
const CONCURRENCY: usize = 8;
/// Sessions per route sharing the corpus.
const LANES: usize = 2;
/// One policy for every route: public things need only the route's scope,
/// secret ones `mcp:admin`. `{unlisted}` is `deny` (allow-list) or `allow`
/// (deny-list).
const POLICY: &str = r#"
required_scopes: [mcp:tools]
policy:
  unlisted: {unlisted}
  tools: {echo: [], get-sum: [], "admin_*": [mcp:admin], get-env: [mcp:admin]}
  resources:
    - uri: "file:///private/**"
      scopes: [mcp:admin]
    - uri: "demo://resource/dynamic/**"
      scopes: [mcp:admin]
    - uri: "db://customers/vip"
      scopes: [mcp:admin]
    - uri: "file:///public/**"
    - uri: "demo://resource/static/**"
    - uri: "db://customers/{id}"
  prompts: {summarize: [], simple-prompt: [], "admin_*": [mcp:admin], resource-prompt: [mcp:admin]}
"#;

/// A gateway route in front of one upstream.
struct Route {
    profile: &'static Profile,
    unlisted: &'static str,
    url: String,
    caller: String,
    admin: String,
}

/// A sequence of cases on one session.
struct Lane {
    route: usize,
    admin: bool,
    resume: bool,
    cases: Vec<Case>,
}

/// A case and what came back.
struct Outcome {
    route: usize,
    admin: bool,
    case: Case,
    answer: Answer,
}

/// One case on which the two sides disagree.
struct Disagreement {
    upstream: &'static str,
    route: &'static str,
    class: &'static str,
    label: String,
    status: u16,
    problems: Vec<String>,
}

#[tokio::test]
async fn the_gateway_authorizes_what_real_upstreams_execute() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let record_files: Vec<_> = PROFILES
        .iter()
        .map(|p| dir.path().join(format!("{}.jsonl", p.name)))
        .collect();
    let _peers = [
        peers::ts_express_server(&record_files[0]),
        peers::server_everything_recorded(
            &record_files[1],
            &[("DIFFERENTIAL_SECRET", "SECRET-ENV")],
        ),
        peers::fastmcp(&[
            ("RECORD_FILE", record_files[2].to_str().unwrap()),
            // Unknown names are most of the corpus; spare the log their tracebacks.
            ("FASTMCP_LOG_LEVEL", "CRITICAL"),
        ]),
    ];
    let issuer = TestIssuer::new(ISS);
    let mut builder = GatewayBuilder::new()
        .issuer(&issuer)
        .extra("rate_limits:\n  per_principal: 100000/s\n  unauthenticated_per_ip: 100000/s");
    let mut routes = Vec::new();
    for (profile, peer) in PROFILES.iter().zip(&_peers) {
        for unlisted in ["deny", "allow"] {
            let path = format!("/{}-{unlisted}", profile.name);
            let resource = format!("https://mcp.example.test{path}");
            builder = builder.route(
                &path,
                &peer.url,
                &resource,
                &POLICY.replace("{unlisted}", unlisted),
            );
            routes.push(Route {
                profile,
                unlisted,
                url: path,
                caller: issuer.token(&resource, "mcp:tools"),
                admin: issuer.token(&resource, "mcp:tools mcp:admin"),
            });
        }
    }
    let gw = builder.spawn();
    gw.wait_ready().await;
    for route in &mut routes {
        route.url = gw.url(&route.url);
    }

    let mut lanes = plan(&routes);
    compress_bodies(&mut lanes);
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let permits = Semaphore::new(CONCURRENCY);
    let outcomes: Vec<Outcome> = futures_util::future::join_all(
        lanes
            .into_iter()
            .map(|lane| run_lane(&client, &permits, &routes, lane)),
    )
    .await
    .into_iter()
    .flatten()
    .collect();

    // Every audit line and every record is in once a later request is logged.
    gw.sync_logs().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let audits = observe::audits(&gw.log.lock().unwrap());
    let records: Vec<Record> = PROFILES
        .iter()
        .zip(&record_files)
        .flat_map(|(p, f)| observe::records(p.name, f))
        .collect();
    for p in &PROFILES {
        assert!(
            records.iter().any(|r| r.upstream == p.name),
            "the {} recorder recorded nothing: the test would pass vacuously",
            p.name
        );
    }
    let report = judge(&routes, &outcomes, &audits, &records);
    eprintln!(
        "differential: {} cases, {} upstreams, {} allowed, {} refused, {} disagreements ({:.0?})",
        outcomes.len(),
        PROFILES.len(),
        report.allowed,
        report.refused,
        report.disagreements.len(),
        started.elapsed()
    );
    if !report.disagreements.is_empty() {
        panic!("{}", describe(&report.disagreements));
    }
}

/// Lanes for every route: the corpus split over [`LANES`] sessions with
/// controls first and last, an admin lane, and a resumption lane for servers
/// with an event store.
fn plan(routes: &[Route]) -> Vec<Lane> {
    let mut ids = Ids::default();
    let mut lanes = Vec::new();
    for (r, route) in routes.iter().enumerate() {
        let p = route.profile;
        let mut shares: Vec<Vec<Case>> =
            (0..LANES).map(|_| corpus::controls(p, &mut ids)).collect();
        for (i, case) in corpus::corpus(p, &mut ids).into_iter().enumerate() {
            shares[i % LANES].push(case);
        }
        for mut cases in shares {
            cases.extend(corpus::controls(p, &mut ids));
            lanes.push(Lane {
                route: r,
                admin: false,
                resume: false,
                cases,
            });
        }
        lanes.push(Lane {
            route: r,
            admin: true,
            resume: false,
            cases: corpus::admin_controls(p, &mut ids),
        });
        if p.resumable {
            let mut cases = corpus::resume_setup(&mut ids);
            cases.extend(corpus::controls(p, &mut ids));
            lanes.push(Lane {
                route: r,
                admin: false,
                resume: true,
                cases,
            });
        }
    }
    lanes
}

/// Compresses, in one Node run, every body that declares a content coding.
fn compress_bodies(lanes: &mut [Lane]) {
    let mut targets: Vec<(&mut Vec<u8>, &'static str)> = Vec::new();
    for case in lanes.iter_mut().flat_map(|l| l.cases.iter_mut()) {
        if let Req::Post {
            encoding: Some(enc @ ("gzip" | "x-gzip" | "deflate" | "br")),
            body,
            ..
        } = &mut case.req
        {
            targets.push((body, enc));
        }
    }
    let raw: Vec<Vec<u8>> = targets.iter().map(|(b, _)| b.to_vec()).collect();
    for ((body, enc), packed) in targets.into_iter().zip(peers::compress(&raw)) {
        *body = match enc {
            "deflate" => packed.deflate,
            "br" => packed.br,
            _ => packed.gzip,
        };
    }
}

/// The verdict over all outcomes.
struct Report {
    allowed: usize,
    refused: usize,
    disagreements: Vec<Disagreement>,
}

fn judge(
    routes: &[Route],
    outcomes: &[Outcome],
    audits: &HashMap<String, Vec<Audit>>,
    records: &[Record],
) -> Report {
    // Records by (upstream, case id); a batch element `c7.2` belongs to `c7`.
    let mut by_case: HashMap<(&str, &str), Vec<&Record>> = HashMap::new();
    for r in records {
        let case = r.rid.split('.').next().unwrap_or_default();
        by_case.entry((r.upstream, case)).or_default().push(r);
    }
    let known: HashSet<(&str, &str)> = outcomes
        .iter()
        .map(|o| (routes[o.route].profile.name, o.case.id.as_str()))
        .collect();
    let mut report = Report {
        allowed: 0,
        refused: 0,
        disagreements: Vec::new(),
    };
    for ((upstream, case), recs) in &by_case {
        if !known.contains(&(*upstream, *case)) {
            report.disagreements.push(Disagreement {
                upstream,
                route: "?",
                class: "unattributed",
                label: format!("JSON-RPC id {case:?}"),
                status: 0,
                problems: recs
                    .iter()
                    .map(|r| {
                        format!(
                            "executed {:?} {:?} for no case of the corpus",
                            r.kind, r.target
                        )
                    })
                    .collect(),
            });
        }
    }
    let none = Vec::new();
    for o in outcomes {
        let route = &routes[o.route];
        let upstream = route.profile.name;
        let events = audits.get(&o.answer.request_id).unwrap_or(&none);
        let recs = by_case
            .get(&(upstream, o.case.id.as_str()))
            .map_or(&[][..], Vec::as_slice);
        let mut problems = Vec::new();
        for r in recs {
            if !events.iter().any(|a| a.allows(r.kind, &r.target)) {
                problems.push(format!(
                    "upstream executed {:?} {:?}; the gateway authorized {}",
                    r.kind,
                    r.target,
                    authorized(events)
                ));
            }
            if !o.admin && r.is_secret() {
                problems.push(format!(
                    "secret {:?} {:?} executed without mcp:admin",
                    r.kind, r.target
                ));
            }
        }
        if !o.admin {
            for leak in observe::leaks(&o.answer.body, &o.answer.content_type) {
                problems.push(format!("answer shows {leak}"));
            }
        }
        match &o.case.expect {
            Expect::Executed(kind, target) => {
                let ran = recs
                    .iter()
                    .any(|r| r.kind == *kind && same_target(*kind, &r.target, target));
                let audited = events.iter().any(|a| a.allows(*kind, target));
                if !ran || !audited {
                    problems.push(format!(
                        "positive control: executed {ran}, audited allow {audited} (status {}, {:?}, answer {:?})",
                        o.answer.status,
                        o.answer.error,
                        snippet(&o.answer.body)
                    ));
                }
            }
            Expect::NotExecuted if !recs.is_empty() => {
                problems.push(format!("refused control executed {} time(s)", recs.len()));
            }
            _ => {}
        }
        let allowed = if events.is_empty() {
            matches!(o.case.req, Req::Resume { .. }) && (200..300).contains(&o.answer.status)
        } else {
            events.iter().all(|a| a.decision == "allow")
        };
        if allowed {
            report.allowed += 1;
        } else {
            report.refused += 1;
        }
        if !problems.is_empty() {
            report.disagreements.push(Disagreement {
                upstream,
                route: route.unlisted,
                class: o.case.class,
                label: o.case.label.clone(),
                status: o.answer.status,
                problems,
            });
        }
    }
    report
}

fn same_target(kind: Kind, a: &str, b: &str) -> bool {
    match kind {
        Kind::Tool | Kind::Prompt => a == b,
        Kind::Resource | Kind::Subscribe => observe::normalize_uri(a) == observe::normalize_uri(b),
    }
}

fn authorized(events: &[Audit]) -> String {
    if events.is_empty() {
        return "nothing (no audit event)".into();
    }
    events
        .iter()
        .map(|a| {
            let target = a
                .tool
                .as_ref()
                .or(a.prompt.as_ref())
                .or(a.resource.as_ref());
            format!(
                "{} {:?} {:?}",
                a.decision,
                a.method.as_deref().unwrap_or(""),
                target.map_or("", |t| t.as_str())
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn snippet(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(200).collect()
}

/// The panic message: a tally by class, upstream and route, then the cases.
/// Everything also goes to a file, since the list can be long.
fn describe(disagreements: &[Disagreement]) -> String {
    let mut tally: BTreeMap<(&str, &str, &str), usize> = BTreeMap::new();
    for d in disagreements {
        *tally.entry((d.class, d.upstream, d.route)).or_default() += 1;
    }
    let mut out = format!(
        "{} disagreements between the gateway and the upstreams:\n",
        disagreements.len()
    );
    for ((class, upstream, route), n) in &tally {
        let _ = writeln!(out, "  {n:5}  {class} on {upstream} (unlisted: {route})");
    }
    let mut all = String::new();
    for d in disagreements {
        let _ = writeln!(
            all,
            "[{} {} unlisted:{}] {} -> HTTP {}: {}",
            d.class,
            d.upstream,
            d.route,
            d.label.escape_debug(),
            d.status,
            d.problems.join("; ")
        );
    }
    let path =
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("differential-disagreements.txt");
    let _ = std::fs::write(&path, &all);
    let _ = writeln!(out, "all of them: {}", path.display());
    for line in all.lines().take(150) {
        let _ = writeln!(out, "{line}");
    }
    if disagreements.len() > 150 {
        let _ = writeln!(out, "… and {} more", disagreements.len() - 150);
    }
    out
}
