//! Connections are bounded in time on every protocol, tested with raw
//! sockets that misbehave the way a hostile client would: an HTTP/2 preface
//! followed by silence, a keep-alive connection left idle, a preface sniff
//! and head that trickle in, a body that trickles in, HTTP/2 rapid resets and
//! CONTINUATION floods, and an admin listener flooded with idle connections.
//! After each, the gateway still answers others at once.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::support::upstream::{Behavior, Upstream};
use crate::support::{Gateway, GatewayBuilder, TestIssuer, send};
use crate::{ISS, RESOURCE};

const LIMITS: &str = "limits:\n  header_read_timeout: 1s\n  idle_timeout: 2s\n  body_read_timeout: 1s\n  admin_max_connections: 2\n  h2_max_concurrent_streams: 50\n  max_header_bytes: 8KiB\n";

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

async fn gateway() -> (TestIssuer, Upstream, Gateway) {
    let issuer = TestIssuer::new(ISS);
    let upstream = Upstream::start(Behavior::Json).await;
    let gw = GatewayBuilder::new()
        .issuer(&issuer)
        .route("/mcp", &upstream.url(), RESOURCE, "")
        .extra(&format!("admin_listen: 127.0.0.1:0\n{LIMITS}"))
        .spawn();
    gw.wait_ready().await;
    (issuer, upstream, gw)
}

/// Reads until the peer closes (or resets); the time that took from `since`.
fn closed_after(stream: &mut TcpStream, since: Instant, give_up: Duration) -> (Duration, Vec<u8>) {
    stream.set_read_timeout(Some(give_up)).unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return (since.elapsed(), seen),
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
        assert!(since.elapsed() < give_up, "the connection was never closed");
    }
}

/// One HTTP/2 frame.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap();
    let mut out = len.to_be_bytes()[1..].to_vec();
    out.extend([kind, flags]);
    out.extend(stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// An HPACK block for `GET /healthz` (static-table indices and literals
/// without indexing, RFC 7541).
fn get_healthz() -> Vec<u8> {
    let mut block = vec![0x82, 0x86]; // :method GET, :scheme http
    block.extend([0x04, 8]);
    block.extend_from_slice(b"/healthz"); // :path
    block.extend([0x01, 2]);
    block.extend_from_slice(b"gw"); // :authority
    block
}

/// Frames the server sent, as (type, payload) pairs.
fn frames(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while bytes.len() >= 9 {
        let len = usize::from(bytes[0]) << 16 | usize::from(bytes[1]) << 8 | usize::from(bytes[2]);
        if bytes.len() < 9 + len {
            break;
        }
        out.push((bytes[3], bytes[9..9 + len].to_vec()));
        bytes = &bytes[9 + len..];
    }
    out
}

async fn still_serves(gw: &Gateway) {
    let started = Instant::now();
    send("GET", &gw.url("/healthz"), &[], "")
        .await
        .assert_status(200, &[]);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "others were slowed"
    );
}

#[tokio::test]
async fn an_http2_preface_then_silence_is_closed_after_header_read_timeout() {
    let (_issuer, _upstream, gw) = gateway().await;
    let opened = Instant::now();
    let mut s = TcpStream::connect(gw.addr).unwrap();
    s.write_all(PREFACE).unwrap();
    s.write_all(&frame(4, 0, 0, &[])).unwrap(); // empty SETTINGS
    let (after, seen) = closed_after(&mut s, opened, Duration::from_secs(10));
    assert!(
        after >= Duration::from_millis(900) && after < Duration::from_secs(3),
        "closed after {after:?}"
    );
    // The server's SETTINGS advertise the stream cap.
    let settings = frames(&seen)
        .into_iter()
        .find(|(kind, _)| *kind == 4)
        .expect("no SETTINGS from the server")
        .1;
    let max_streams = settings
        .chunks(6)
        .find(|s| s[..2] == [0, 3])
        .map(|s| u32::from_be_bytes([s[2], s[3], s[4], s[5]]));
    assert_eq!(max_streams, Some(50), "SETTINGS_MAX_CONCURRENT_STREAMS");
    still_serves(&gw).await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_idle_timeout() {
    let (_issuer, _upstream, gw) = gateway().await;
    for h2 in [false, true] {
        let mut s = TcpStream::connect(gw.addr).unwrap();
        if h2 {
            s.write_all(PREFACE).unwrap();
            s.write_all(&frame(4, 0, 0, &[])).unwrap();
            s.write_all(&frame(1, 0x5, 1, &get_healthz())).unwrap();
        } else {
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n")
                .unwrap();
        }
        // The answer, then nothing: idle from here on.
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0);
        let answered = Instant::now();
        let (after, _) = closed_after(&mut s, answered, Duration::from_secs(10));
        // HTTP/2: idle_timeout (2 s). HTTP/1: hyper times the wait for the
        // next head from the end of the last response, so the shorter
        // header_read_timeout (1 s) closes it first.
        let expected = if h2 {
            Duration::from_secs(2)
        } else {
            Duration::from_secs(1)
        };
        assert!(
            after >= expected - Duration::from_millis(150)
                && after < expected + Duration::from_millis(1500),
            "h2={h2}: idle connection closed after {after:?}, expected about {expected:?}"
        );
    }
}

#[tokio::test]
async fn sniff_and_head_share_one_deadline() {
    let (_issuer, _upstream, gw) = gateway().await;
    let opened = Instant::now();
    let mut s = TcpStream::connect(gw.addr).unwrap();
    // "P" could start either "PRI " or "POST": the sniff waits for more.
    s.write_all(b"P").unwrap();
    std::thread::sleep(Duration::from_millis(950));
    // (Under load the deadline may already have passed: a failed write is
    // fine, the close is what is measured.)
    let _ = s.write_all(b"OST /mcp HTTP/1.1\r\nHost: gw\r\n");
    // Then a header byte every 100 ms, never finishing the head.
    let trickle = {
        let mut s = s.try_clone().unwrap();
        std::thread::spawn(move || {
            for _ in 0..40 {
                if s.write_all(b"X").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let (after, _) = closed_after(&mut s, opened, Duration::from_secs(10));
    let _ = trickle.join();
    // Twice the deadline (the sniff's, then a fresh head timeout) would be
    // about 1.95 s; one shared deadline closes it at about 1 s.
    assert!(
        after >= Duration::from_millis(900) && after < Duration::from_millis(1800),
        "slow client held on for {after:?}"
    );
    still_serves(&gw).await;
}

#[tokio::test]
async fn a_body_that_trickles_in_gets_408() {
    let (issuer, upstream, gw) = gateway().await;
    let token = issuer.token(RESOURCE, "");
    let mut s = TcpStream::connect(gw.addr).unwrap();
    let started = Instant::now();
    write!(
        s,
        "POST /mcp HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n"
    )
    .unwrap();
    let writer = {
        let mut s = s.try_clone().unwrap();
        std::thread::spawn(move || {
            for _ in 0..40 {
                if s.write_all(b"          ").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let (_, seen) = closed_after(&mut s, started, Duration::from_secs(10));
    let _ = writer.join();
    let text = String::from_utf8_lossy(&seen);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request_timeout"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(upstream.count(), 0);
}

/// Writes `frames` until the server stops reading; returns what it sent
/// back and whether it closed the connection before all were written.
fn flood(addr: SocketAddr, frames_to_send: impl Iterator<Item = Vec<u8>>) -> (Vec<u8>, bool) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(PREFACE).unwrap();
    s.write_all(&frame(4, 0, 0, &[])).unwrap();
    let mut reader = s.try_clone().unwrap();
    let read = std::thread::spawn(move || {
        reader
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut seen = Vec::new();
        let _ = reader.read_to_end(&mut seen);
        seen
    });
    let mut cut = false;
    for f in frames_to_send {
        if s.write_all(&f).is_err() {
            cut = true;
            break;
        }
    }
    if !cut {
        // Everything went into the socket buffer; the close may come later.
        std::thread::sleep(Duration::from_millis(500));
    }
    let _ = s.shutdown(std::net::Shutdown::Write);
    (read.join().unwrap(), cut)
}

#[tokio::test]
async fn http2_rapid_reset_and_continuation_floods_end_the_connection() {
    let (_issuer, _upstream, gw) = gateway().await;
    let block = get_healthz();

    // Rapid reset (CVE-2023-44487): open a stream, cancel it, 100,000 times.
    let resets = (0..100_000u32).flat_map(|i| {
        let id = 2 * i + 1;
        [
            frame(1, 0x5, id, &block),
            frame(3, 0, id, &8u32.to_be_bytes()),
        ]
    });
    let (seen, _) = flood(gw.addr, resets);
    let goaway = frames(&seen).into_iter().find(|(kind, _)| *kind == 7);
    assert!(goaway.is_some(), "no GOAWAY after a reset flood");
    still_serves(&gw).await;

    // CONTINUATION flood (CVE-2024-27316 class): a header block that never
    // ends, far past max_header_bytes.
    let mut big = Vec::new();
    for i in 0..64 {
        big.extend([0x00, 8]);
        big.extend_from_slice(format!("x-pad-{i:02}").as_bytes());
        big.push(127);
        big.push(0);
        big.extend(std::iter::repeat_n(b'a', 127));
    }
    let continuation = std::iter::once(frame(1, 0x1, 1, &block))
        .chain(std::iter::repeat_with(move || frame(9, 0, 1, &big)).take(20_000));
    let (seen, _) = flood(gw.addr, continuation);
    let frames_seen = frames(&seen);
    assert!(
        frames_seen.iter().any(|(kind, _)| *kind == 7 || *kind == 3),
        "no GOAWAY or RST_STREAM after a CONTINUATION flood: {:?}",
        frames_seen.iter().map(|f| f.0).collect::<Vec<_>>()
    );
    still_serves(&gw).await;
}

#[tokio::test]
async fn the_admin_listener_is_capped_and_bounded_in_time() {
    let (_issuer, _upstream, gw) = gateway().await;
    let admin: SocketAddr = gw
        .admin_url("")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    // Two silent connections take both admin slots.
    let opened = Instant::now();
    let mut hogs: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(admin).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(100));
    let mut third = TcpStream::connect(admin).unwrap();
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (_, answer) = closed_after(&mut third, opened, Duration::from_secs(10));
    let waited = opened.elapsed();
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    // It was served only once the silent ones were cut off (1 s).
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(4),
        "third connection answered after {waited:?}"
    );
    for hog in &mut hogs {
        let (after, _) = closed_after(hog, opened, Duration::from_secs(10));
        assert!(after < Duration::from_secs(3), "hog kept for {after:?}");
    }
}

/// A worst-case body (one object of 350,000 keys, just under the 4 MiB cap)
/// on a gateway with one worker: while it is read and parsed, the same
/// worker keeps answering others.
#[tokio::test]
async fn a_worst_case_body_never_stalls_its_worker() {
    let issuer = TestIssuer::new(ISS);
    let upstream = Upstream::start(Behavior::Json).await;
    let gw = GatewayBuilder::new()
        .issuer(&issuer)
        .route("/mcp", &upstream.url(), RESOURCE, "")
        .workers(1)
        .spawn();
    gw.wait_ready().await;
    let keys: Vec<String> = (0..350_000).map(|i| format!("\"{i:x}\":0")).collect();
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"echo","arguments":{{{}}}}}}}"#,
        keys.join(",")
    );
    assert!(body.len() < 4 << 20);
    let auth = format!("Bearer {}", issuer.token(RESOURCE, ""));
    let url = gw.url("/mcp");
    let big = tokio::spawn(async move {
        let started = Instant::now();
        let r = send(
            "POST",
            &url,
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            &body,
        )
        .await;
        (r.status, started.elapsed())
    });
    let mut slowest = Duration::ZERO;
    while !big.is_finished() {
        let started = Instant::now();
        send("GET", &gw.url("/healthz"), &[], "")
            .await
            .assert_status(200, &[]);
        slowest = slowest.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (status, took) = big.await.unwrap();
    assert_eq!(status, 200, "the big body is legal and passes");
    eprintln!("worst-case body took {took:?}; slowest /healthz meanwhile {slowest:?}");
    assert!(
        slowest < took / 2,
        "others waited {slowest:?} while one body took {took:?}"
    );
}
