//! The embedded file backend (`store: sqlite:<path>`, the default): one
//! SQLite file, bundled into the binary (no system library).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};

use super::{Space, StoreError};

/// The embedded file backend: one table in a SQLite file.
///
/// rusqlite blocks, so every operation runs on `spawn_blocking`. One
/// connection behind a mutex is enough: SQLite lets one writer in at a time
/// anyway, and each operation is one statement on the primary key (tens of
/// microseconds), far below what the authorization endpoints ask of it.
/// Each statement is atomic on its own, so the operations stay atomic even
/// against another process on the same file.
pub(crate) struct SqliteStore {
    pub(super) db: Arc<Mutex<Db>>,
}

/// The connection and its write count, under one lock.
pub(super) struct Db {
    pub(super) conn: Connection,
    /// Writes since the last sweep of expired rows.
    writes: u32,
}

/// Writes between two sweeps of expired rows. Reads skip expired rows
/// themselves; the sweep only keeps the file from growing.
pub(super) const SQLITE_SWEEP_EVERY: u32 = 1_000;

/// The version this code writes into `PRAGMA user_version`.
const SQLITE_SCHEMA: i64 = 1;

/// The one table. `space` is [`Space::id`]; `expires_at` is wall-clock
/// unix milliseconds (not `Instant`), because rows outlive the process. A
/// row is live while `expires_at > now`.
const SQLITE_TABLE: &str = "
    CREATE TABLE IF NOT EXISTS entries (
        space      INTEGER NOT NULL,
        key        TEXT    NOT NULL,
        value      BLOB    NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (space, key)
    ) STRICT";

impl SqliteStore {
    /// Opens the store file at `path`, creating it (mode 0600 on unix) and
    /// its table if missing. The directory must exist: a typo in the path
    /// should fail the start, not scatter state somewhere new.
    pub(crate) fn open(path: &Path) -> Result<Self, StoreError> {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !dir.is_dir() {
            return Err(StoreError::Unavailable(format!(
                "directory {} does not exist",
                dir.display()
            )));
        }
        let created = create_private(path)?;
        let conn = Connection::open(path).map_err(sqlite_error)?;
        if created {
            // Again after the open, so the mode is 0600 whatever the umask
            // took off. SQLite gives the -wal and -shm files the mode of the
            // database file, so they are private too.
            set_private(path)?;
        }
        // A second process on the file (an overlapping restart) waits for
        // the lock rather than failing at once.
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(sqlite_error)?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(sqlite_error)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Unavailable(format!(
                "the file system does not allow WAL mode (journal_mode is {mode})"
            )));
        }
        // In WAL mode NORMAL never corrupts the file and survives a crash of
        // the process; only a power cut or OS crash can roll back the last
        // commits (a code taken just then is usable again until it expires).
        // FULL would close that at the price of an fsync per write.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sqlite_error)?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(sqlite_error)?;
        if version > SQLITE_SCHEMA {
            return Err(StoreError::Unavailable(format!(
                "written by a newer version (schema {version}, this one knows {SQLITE_SCHEMA})"
            )));
        }
        conn.execute_batch(SQLITE_TABLE).map_err(sqlite_error)?;
        conn.pragma_update(None, "user_version", SQLITE_SCHEMA)
            .map_err(sqlite_error)?;
        let mut db = Db { conn, writes: 0 };
        db.sweep(now_ms());
        Ok(Self {
            db: Arc::new(Mutex::new(db)),
        })
    }

    /// Runs `op` with the connection and the current time on a blocking
    /// thread. The time is read under the lock, so operations see it in
    /// the order they run.
    async fn run<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Db, i64) -> rusqlite::Result<T> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || {
            let mut db = db
                .lock()
                .map_err(|_| StoreError::Unavailable("sqlite store poisoned".into()))?;
            op(&mut db, now_ms()).map_err(sqlite_error)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("sqlite task: {e}")))?
    }

    pub(super) async fn put(
        &self,
        space: Space,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.run(move |db, now| {
            db.conn
                .prepare_cached(
                    "INSERT INTO entries (space, key, value, expires_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (space, key) DO UPDATE
                     SET value = excluded.value, expires_at = excluded.expires_at",
                )?
                .execute(params![space.id(), key, value, expiry(now, ttl)])?;
            db.wrote(now);
            Ok(())
        })
        .await
    }

    pub(super) async fn put_new(
        &self,
        space: Space,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let key = key.to_owned();
        self.run(move |db, now| {
            // Inserts, or overwrites only an expired row: one statement, so
            // of two racing callers exactly one changes a row.
            let changed = db
                .conn
                .prepare_cached(
                    "INSERT INTO entries (space, key, value, expires_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (space, key) DO UPDATE
                     SET value = excluded.value, expires_at = excluded.expires_at
                     WHERE entries.expires_at <= ?5",
                )?
                .execute(params![space.id(), key, value, expiry(now, ttl), now])?;
            db.wrote(now);
            Ok(changed == 1)
        })
        .await
    }

    pub(super) async fn get(&self, space: Space, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = key.to_owned();
        self.run(move |db, now| {
            db.conn
                .prepare_cached(
                    "SELECT value FROM entries WHERE space = ?1 AND key = ?2 AND expires_at > ?3",
                )?
                .query_row(params![space.id(), key, now], |row| row.get(0))
                .optional()
        })
        .await
    }

    pub(super) async fn take(
        &self,
        space: Space,
        key: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let key = key.to_owned();
        self.run(move |db, now| {
            // Read and delete in one statement. An expired row is deleted
            // too but handed to no one.
            let row: Option<(Vec<u8>, i64)> = db
                .conn
                .prepare_cached(
                    "DELETE FROM entries WHERE space = ?1 AND key = ?2
                     RETURNING value, expires_at",
                )?
                .query_row(params![space.id(), key], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
                .optional()?;
            Ok(row.filter(|(_, until)| *until > now).map(|(v, _)| v))
        })
        .await
    }

    pub(super) async fn compare_and_set(
        &self,
        space: Space,
        key: &str,
        expected: &[u8],
        new: Vec<u8>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let key = key.to_owned();
        let expected = expected.to_vec();
        self.run(move |db, now| {
            // BLOBs compare byte for byte.
            let changed = db
                .conn
                .prepare_cached(
                    "UPDATE entries SET value = ?1, expires_at = ?2
                     WHERE space = ?3 AND key = ?4 AND value = ?5 AND expires_at > ?6",
                )?
                .execute(params![
                    new,
                    expiry(now, ttl),
                    space.id(),
                    key,
                    expected,
                    now
                ])?;
            db.wrote(now);
            Ok(changed == 1)
        })
        .await
    }
}

impl Db {
    /// Counts a write and sweeps every [`SQLITE_SWEEP_EVERY`] writes.
    fn wrote(&mut self, now: i64) {
        self.writes += 1;
        if self.writes >= SQLITE_SWEEP_EVERY {
            self.sweep(now);
        }
    }

    /// Deletes expired rows. A failure only delays the cleanup, so it is
    /// logged and the write that triggered it still succeeds.
    fn sweep(&mut self, now: i64) {
        self.writes = 0;
        if let Err(e) = self
            .conn
            .execute("DELETE FROM entries WHERE expires_at <= ?1", [now])
        {
            tracing::warn!(error = %e, "sqlite store: sweeping expired rows failed");
        }
    }
}

fn sqlite_error(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(format!("sqlite: {e}"))
}

/// Wall-clock unix milliseconds (0 if the clock is before 1970).
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// When a value written at `now` for `ttl` expires, saturating.
fn expiry(now: i64, ttl: Duration) -> i64 {
    now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX))
}

/// Creates `path` with mode 0600 if it is missing, so the file is never
/// readable by others, not even between its creation and the first write;
/// says whether it did.
#[cfg(unix)]
fn create_private(path: &Path) -> Result<bool, StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(StoreError::Unavailable(format!("creating the file: {e}"))),
    }
}

/// Elsewhere SQLite creates the file; there are no unix modes to set.
#[cfg(not(unix))]
fn create_private(path: &Path) -> Result<bool, StoreError> {
    Ok(!path.exists())
}

#[cfg(unix)]
fn set_private(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| StoreError::Unavailable(format!("setting mode 0600: {e}")))
}

#[cfg(not(unix))]
fn set_private(_path: &Path) -> Result<(), StoreError> {
    Ok(())
}
