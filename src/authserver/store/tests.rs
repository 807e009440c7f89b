//! The store's behaviour, on every backend.

use std::path::Path;
use std::sync::Arc;

use super::sqlite::SQLITE_SWEEP_EVERY;
use super::*;

const TTL: Duration = Duration::from_secs(60);

fn memory() -> (Store, Option<tempfile::TempDir>) {
    (Store::Memory(MemoryStore::default()), None)
}

/// A store in a fresh file; the directory lives as long as the guard.
fn sqlite() -> (Store, Option<tempfile::TempDir>) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("as.db")).unwrap();
    (Store::Sqlite(store), Some(dir))
}

/// A real `redis-server` (Debian's package, installed by tests/peers/setup.sh)
/// on a free loopback port, without persistence; killed when dropped.
pub(super) struct RedisServer {
    child: std::process::Child,
    /// The server's URL.
    pub(super) url: String,
}

impl RedisServer {
    pub(super) fn start() -> Self {
        let port = free_port();
        Self {
            child: spawn_redis(
                &["--port", &port.to_string(), "--protected-mode", "yes"],
                port,
            ),
            url: format!("redis://127.0.0.1:{port}"),
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `redis-server` on loopback without persistence, with `args`, once it
/// accepts connections on `port`.
fn spawn_redis(args: &[&str], port: u16) -> std::process::Child {
    let child = std::process::Command::new("redis-server")
        .args(args)
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server (Debian package redis-server; tests/peers/setup.sh installs it)");
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // Already gone is fine: the test may have stopped it.
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// A store on a fresh Redis; the server lives as long as the guard.
fn redis() -> (Store, RedisServer) {
    let server = RedisServer::start();
    (
        Store::Redis(RedisStore::open(&server.url, None).unwrap()),
        server,
    )
}

/// Runs each behaviour on a fresh store of every backend, as the tests
/// `<behaviour>::memory`, `<behaviour>::sqlite` and `<behaviour>::redis`.
macro_rules! on_every_backend {
    ($flavor:meta: $($name:ident),* $(,)?) => {$(
        mod $name {
            #[$flavor]
            async fn memory() {
                let (store, _dir) = super::memory();
                super::$name(store).await;
            }

            #[$flavor]
            async fn sqlite() {
                let (store, _dir) = super::sqlite();
                super::$name(store).await;
            }

            #[$flavor]
            async fn redis() {
                let (store, _server) = super::redis();
                super::$name(store).await;
            }
        }
    )*};
}

on_every_backend!(tokio::test:
    take_hands_a_value_out_once,
    spaces_are_separate_and_put_new_does_not_overwrite,
    compare_and_set_fails_on_a_changed_value,
    expired_values_are_gone,
);

on_every_backend!(tokio::test(flavor = "multi_thread", worker_threads = 2):
    racing_takes_get_one_value,
    racing_swaps_let_one_win,
);

async fn take_hands_a_value_out_once(store: Store) {
    store
        .put(Space::Code, "c", b"v".to_vec(), TTL)
        .await
        .unwrap();
    assert_eq!(
        store.take(Space::Code, "c").await.unwrap(),
        Some(b"v".to_vec())
    );
    assert_eq!(store.take(Space::Code, "c").await.unwrap(), None);
}

async fn spaces_are_separate_and_put_new_does_not_overwrite(store: Store) {
    assert!(
        store
            .put_new(Space::Client, "k", b"a".to_vec(), TTL)
            .await
            .unwrap()
    );
    assert!(
        !store
            .put_new(Space::Client, "k", b"b".to_vec(), TTL)
            .await
            .unwrap()
    );
    assert_eq!(store.get(Space::Code, "k").await.unwrap(), None);
    assert_eq!(
        store.get(Space::Client, "k").await.unwrap(),
        Some(b"a".to_vec())
    );
}

async fn compare_and_set_fails_on_a_changed_value(store: Store) {
    store
        .put(Space::Refresh, "r", b"1".to_vec(), TTL)
        .await
        .unwrap();
    assert!(
        store
            .compare_and_set(Space::Refresh, "r", b"1", b"2".to_vec(), TTL)
            .await
            .unwrap()
    );
    assert!(
        !store
            .compare_and_set(Space::Refresh, "r", b"1", b"3".to_vec(), TTL)
            .await
            .unwrap()
    );
    assert!(
        !store
            .compare_and_set(Space::Refresh, "absent", b"", b"3".to_vec(), TTL)
            .await
            .unwrap()
    );
    assert_eq!(
        store.get(Space::Refresh, "r").await.unwrap(),
        Some(b"2".to_vec())
    );
    // An empty value is a value, not an absent one.
    store
        .put(Space::Refresh, "e", Vec::new(), TTL)
        .await
        .unwrap();
    assert_eq!(
        store.get(Space::Refresh, "e").await.unwrap(),
        Some(Vec::new())
    );
    assert!(
        store
            .compare_and_set(Space::Refresh, "e", b"", b"x".to_vec(), TTL)
            .await
            .unwrap()
    );
}

async fn expired_values_are_gone(store: Store) {
    store
        .put(Space::Code, "c", b"v".to_vec(), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(store.get(Space::Code, "c").await.unwrap(), None);
    assert_eq!(store.take(Space::Code, "c").await.unwrap(), None);
    store
        .put(Space::Refresh, "r", b"1".to_vec(), Duration::ZERO)
        .await
        .unwrap();
    assert!(
        !store
            .compare_and_set(Space::Refresh, "r", b"1", b"2".to_vec(), TTL)
            .await
            .unwrap()
    );
    assert!(
        store
            .put_new(Space::Refresh, "r", b"3".to_vec(), TTL)
            .await
            .unwrap()
    );
    assert_eq!(
        store.get(Space::Refresh, "r").await.unwrap(),
        Some(b"3".to_vec())
    );
}

/// Tasks racing for one key: as with one code redeemed twice at once.
const RACERS: usize = 16;

async fn racing_takes_get_one_value(store: Store) {
    let store = Arc::new(store);
    store
        .put(Space::Code, "c", b"v".to_vec(), TTL)
        .await
        .unwrap();
    let tasks: Vec<_> = (0..RACERS)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.take(Space::Code, "c").await.unwrap() })
        })
        .collect();
    let mut got = Vec::new();
    for task in tasks {
        got.extend(task.await.unwrap());
    }
    assert_eq!(got, vec![b"v".to_vec()]);
}

async fn racing_swaps_let_one_win(store: Store) {
    let store = Arc::new(store);
    store
        .put(Space::Refresh, "r", b"0".to_vec(), TTL)
        .await
        .unwrap();
    let tasks: Vec<_> = (0..RACERS)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let new = format!("new-{i}").into_bytes();
                let won = store
                    .compare_and_set(Space::Refresh, "r", b"0", new.clone(), TTL)
                    .await
                    .unwrap();
                won.then_some(new)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        winners.extend(task.await.unwrap());
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(store.get(Space::Refresh, "r").await.unwrap(), winners.pop());
}

#[tokio::test]
async fn sqlite_values_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("as.db");
    let store = Store::Sqlite(SqliteStore::open(&path).unwrap());
    store
        .put(Space::Client, "k", b"client".to_vec(), TTL)
        .await
        .unwrap();
    store
        .put(Space::Code, "gone", b"v".to_vec(), Duration::ZERO)
        .await
        .unwrap();
    drop(store);

    let store = Store::Sqlite(SqliteStore::open(&path).unwrap());
    assert_eq!(
        store.get(Space::Client, "k").await.unwrap(),
        Some(b"client".to_vec())
    );
    assert_eq!(store.get(Space::Code, "gone").await.unwrap(), None);
    assert_eq!(store.get(Space::Refresh, "k").await.unwrap(), None);
}

#[tokio::test]
async fn sqlite_sweeps_expired_rows() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(&dir.path().join("as.db")).unwrap();
    let rows = |s: &SqliteStore| -> i64 {
        let db = s.db.lock().unwrap();
        db.conn
            .query_row("SELECT count(*) FROM entries", [], |r| r.get(0))
            .unwrap()
    };
    let store = Store::Sqlite(sqlite);
    store
        .put(Space::Code, "old", b"v".to_vec(), Duration::ZERO)
        .await
        .unwrap();
    for _ in 1..SQLITE_SWEEP_EVERY - 1 {
        store
            .put(Space::Client, "live", b"v".to_vec(), TTL)
            .await
            .unwrap();
    }
    let Store::Sqlite(sqlite) = &store else {
        unreachable!()
    };
    assert_eq!(rows(sqlite), 2, "no sweep before the Nth write");
    store
        .put(Space::Client, "live", b"v".to_vec(), TTL)
        .await
        .unwrap();
    assert_eq!(rows(sqlite), 1, "the Nth write sweeps");
}

#[test]
fn sqlite_refuses_a_missing_directory() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let Err(e) = SqliteStore::open(&missing.join("as.db")) else {
        panic!("opened a file in a missing directory");
    };
    assert!(e.to_string().contains("does not exist"), "{e}");
    assert!(!missing.exists());
}

#[test]
fn sqlite_refuses_a_directory_as_the_file() {
    let dir = tempfile::tempdir().unwrap();
    assert!(SqliteStore::open(dir.path()).is_err());
}

#[test]
fn sqlite_refuses_a_file_that_is_not_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("as.db");
    std::fs::write(&path, b"not a database, just some text of a fair length").unwrap();
    assert!(SqliteStore::open(&path).is_err());
}

#[cfg(unix)]
#[tokio::test]
async fn sqlite_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("as.db");
    let store = Store::Sqlite(SqliteStore::open(&path).unwrap());
    store
        .put(Space::Client, "k", b"v".to_vec(), TTL)
        .await
        .unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&dir.path().join("as.db-wal")), 0o600);
    assert_eq!(mode(&dir.path().join("as.db-shm")), 0o600);
}

#[test]
fn space_ids_are_distinct() {
    let all = [
        Space::Client,
        Space::Pending,
        Space::Transaction,
        Space::Code,
        Space::UsedCode,
        Space::Refresh,
        Space::RevokedFamily,
    ];
    let ids: std::collections::HashSet<i64> = all.iter().map(|s| s.id()).collect();
    assert_eq!(ids.len(), all.len());
}

#[tokio::test]
async fn the_memory_store_is_bounded_and_sweeps_what_expired() {
    use super::memory::MAX_ENTRIES;
    let store = Store::Memory(MemoryStore::default());
    for i in 0..MAX_ENTRIES {
        let ttl = if i % 2 == 0 { Duration::ZERO } else { TTL };
        store
            .put(Space::Pending, &i.to_string(), Vec::new(), ttl)
            .await
            .unwrap();
    }
    // Half of them expired: a sweep makes room.
    store
        .put(Space::Pending, "more", Vec::new(), TTL)
        .await
        .unwrap();
    for i in 0..MAX_ENTRIES {
        if store
            .put(Space::Code, &i.to_string(), Vec::new(), TTL)
            .await
            .is_err()
        {
            return;
        }
    }
    panic!("the store never refused a write past {MAX_ENTRIES} live entries");
}

#[tokio::test]
async fn redis_down_is_unavailable_and_recovery_needs_no_restart() {
    let server = RedisServer::start();
    let url = server.url.clone();
    let store = Store::Redis(RedisStore::open(&url, None).unwrap());
    store
        .put(Space::Code, "c", b"v".to_vec(), TTL)
        .await
        .unwrap();
    drop(server);
    let Err(StoreError::Unavailable(_)) = store.get(Space::Code, "c").await else {
        panic!("a stopped Redis must be an error, never an empty answer");
    };
    // The same port again, empty: the store reconnects by itself.
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    let mut child = std::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut recovered = false;
    for _ in 0..100 {
        if store
            .put(Space::Code, "d", b"w".to_vec(), TTL)
            .await
            .is_ok()
        {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().ok();
    child.wait().ok();
    assert!(recovered, "the store did not reconnect");
}

/// `rediss://` to a real `redis-server` with TLS and a certificate of its
/// own (not from a public CA): trusted with `store_ca_file`, refused (the
/// store is unavailable, never used in the clear) without it.
#[tokio::test]
async fn a_tls_redis_with_a_private_ca_is_trusted_only_through_its_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let (cert_file, key_file) = (dir.path().join("redis.crt"), dir.path().join("redis.key"));
    std::fs::write(&cert_file, cert.cert.pem()).unwrap();
    std::fs::write(&key_file, cert.signing_key.serialize_pem()).unwrap();
    let port = free_port();
    let (cert_arg, key_arg) = (cert_file.to_string_lossy(), key_file.to_string_lossy());
    let mut child = spawn_redis(
        &[
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            &cert_arg,
            "--tls-key-file",
            &key_arg,
            "--tls-auth-clients",
            "no",
        ],
        port,
    );
    let url = format!("rediss://127.0.0.1:{port}");
    let trusted = Store::Redis(RedisStore::open(&url, Some(&cert_file)).unwrap());
    trusted
        .put(Space::Client, "c", b"v".to_vec(), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        trusted.get(Space::Client, "c").await.unwrap(),
        Some(b"v".to_vec())
    );
    let public_roots = Store::Redis(RedisStore::open(&url, None).unwrap());
    assert!(
        public_roots.get(Space::Client, "c").await.is_err(),
        "a certificate outside the public roots was accepted"
    );
    child.kill().ok();
    child.wait().ok();
}
