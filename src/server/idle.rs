//! Stage 2, connection lifetime: a connection that carries no request is
//! closed, on HTTP/1 and HTTP/2 alike.
//!
//! hyper bounds the read of each HTTP/1 head, but nothing bounds an HTTP/2
//! connection that sent its preface and then nothing, nor a keep-alive
//! connection that sits between requests: each holds a connection permit
//! (`limits.max_connections`) without a token. So every connection gets a
//! watchdog:
//! - until its first request starts, the whole connection (TLS handshake,
//!   preface sniff and first head) has `limits.header_read_timeout`;
//! - afterwards, whenever no request is in flight (a request is in flight
//!   until its response body ends, so an open SSE stream keeps its
//!   connection), it has `limits.idle_timeout` before the next one starts.
//!
//! An expired connection is dropped: nothing is in flight on it, so no
//! request is cut, and clients reconnect (RFC 9112 §9.5, RFC 9113 §6.8).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// What the watchdog of one connection knows.
#[derive(Clone)]
pub(super) struct Activity(Arc<State>);

struct State {
    opened: Instant,
    started: AtomicBool,
    in_flight: AtomicUsize,
    /// When the last request ended, in ms since `opened`.
    last_ms: AtomicU64,
    changed: Notify,
}

/// A request in flight; ends (and stamps the activity) when dropped.
pub(super) struct InFlight(Activity);

impl Activity {
    /// A new connection's activity, opened now.
    pub(super) fn new() -> Self {
        Self(Arc::new(State {
            opened: Instant::now(),
            started: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            last_ms: AtomicU64::new(0),
            changed: Notify::new(),
        }))
    }

    /// A request has started; it stays in flight until the guard is dropped.
    pub(super) fn begin(&self) -> InFlight {
        self.0.started.store(true, Ordering::Relaxed);
        self.0.in_flight.fetch_add(1, Ordering::AcqRel);
        self.0.changed.notify_one();
        InFlight(self.clone())
    }

    /// Completes when the connection has been idle too long: no request
    /// within `first` of opening, or none in flight for `idle`.
    pub(super) async fn expired(&self, first: Duration, idle: Duration) {
        let s = &self.0;
        loop {
            // Registered before the state is read, so no change is missed.
            let changed = s.changed.notified();
            let deadline = if !s.started.load(Ordering::Relaxed) {
                s.opened + first
            } else if s.in_flight.load(Ordering::Acquire) > 0 {
                changed.await;
                continue;
            } else {
                s.opened + Duration::from_millis(s.last_ms.load(Ordering::Relaxed)) + idle
            };
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => {
                    let idle_now = s.in_flight.load(Ordering::Acquire) == 0;
                    let stamped = s.opened + Duration::from_millis(s.last_ms.load(Ordering::Relaxed));
                    // Re-check: a request may have come and gone meanwhile.
                    let first_pending = !s.started.load(Ordering::Relaxed);
                    if idle_now && (first_pending || stamped + idle <= Instant::now()) {
                        return;
                    }
                }
                () = changed => {}
            }
        }
    }
}

impl Default for Activity {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let s = &self.0.0;
        let ms = u64::try_from(s.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        s.last_ms.store(ms, Ordering::Relaxed);
        s.in_flight.fetch_sub(1, Ordering::AcqRel);
        s.changed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn no_first_request_expires_at_the_first_deadline() {
        let a = Activity::new();
        let t = Instant::now();
        a.expired(Duration::from_secs(10), Duration::from_secs(60))
            .await;
        assert_eq!(t.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn requests_in_flight_never_expire_and_idle_counts_from_the_last_end() {
        let a = Activity::new();
        let watchdog = {
            let a = a.clone();
            tokio::spawn(async move {
                a.expired(Duration::from_secs(10), Duration::from_secs(60))
                    .await;
                Instant::now()
            })
        };
        tokio::time::sleep(Duration::from_secs(5)).await;
        let stream = a.begin();
        // A long stream: hours, not idle.
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert!(!watchdog.is_finished());
        let ended = Instant::now();
        drop(stream);
        let expired = watchdog.await.unwrap();
        assert!(
            expired >= ended + Duration::from_secs(60),
            "{:?}",
            expired - ended
        );
        assert!(expired <= ended + Duration::from_secs(61));
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_request_restarts_the_idle_clock() {
        let a = Activity::new();
        drop(a.begin());
        let watchdog = {
            let a = a.clone();
            tokio::spawn(async move {
                a.expired(Duration::from_secs(10), Duration::from_secs(60))
                    .await;
                Instant::now()
            })
        };
        let start = Instant::now();
        tokio::time::sleep(Duration::from_secs(50)).await;
        drop(a.begin());
        let expired = watchdog.await.unwrap();
        assert!(expired >= start + Duration::from_secs(110));
    }
}
