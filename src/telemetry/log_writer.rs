//! The log writer: request threads append formatted lines to one buffer and
//! never make a system call for it; a background thread writes the buffer
//! to stderr in batches.
//!
//! The writer thread sleeps while there is nothing to write. The first line
//! after that wakes it; it writes what is there and then waits [`BATCH`]
//! for the lines that follow, so a busy gateway costs one wake-up and one
//! `write(2)` per batch instead of per line, and a quiet one shows a line
//! within [`BATCH`]. Nothing is dropped: past [`MAX_PENDING`] bytes, a
//! request thread waits for the writer (as writing to a slow stderr would).
//! Dropping the [`Guard`] writes what is left.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{JoinHandle, Thread};
use std::time::Duration;

/// How long the writer gathers lines after a write.
const BATCH: Duration = Duration::from_millis(2);

/// Bytes waiting to be written past which request threads wait.
const MAX_PENDING: usize = 4 << 20;

/// What request threads and the writer thread share.
struct Shared {
    pending: Mutex<Vec<u8>>,
    /// Signalled whenever the writer has taken the pending bytes.
    drained: Condvar,
    /// The writer is asleep (or about to be) and must be woken.
    idle: AtomicBool,
    /// The guard was dropped: write what is left and stop.
    closed: AtomicBool,
    writer: Thread,
}

/// Appends lines; handed to the subscriber (`MakeWriter`).
#[derive(Clone)]
pub(super) struct LogWriter(Arc<Shared>);

/// Stops the writer thread when dropped, after it wrote every line.
pub(super) struct Guard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// Starts the writer thread, writing to `out`.
pub(super) fn start(out: impl Write + Send + 'static) -> std::io::Result<(LogWriter, Guard)> {
    let (tx, rx) = std::sync::mpsc::channel::<Arc<Shared>>();
    let thread = std::thread::Builder::new()
        .name("mcp-gateway-log".into())
        .spawn(move || {
            if let Ok(shared) = rx.recv() {
                run(&shared, out);
            }
        })?;
    let shared = Arc::new(Shared {
        pending: Mutex::new(Vec::with_capacity(64 * 1024)),
        drained: Condvar::new(),
        idle: AtomicBool::new(false),
        closed: AtomicBool::new(false),
        writer: thread.thread().clone(),
    });
    // The thread was just started and is waiting for this.
    tx.send(shared.clone()).ok();
    Ok((
        LogWriter(shared.clone()),
        Guard {
            shared,
            thread: Some(thread),
        },
    ))
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Vec<u8>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The writer thread.
fn run(shared: &Shared, mut out: impl Write) {
    let mut spare = Vec::with_capacity(64 * 1024);
    loop {
        // Read before taking the batch: once closed, an empty batch is the
        // last word (a line appended before the close is in this batch).
        let closed = shared.closed.load(Ordering::SeqCst);
        // The pending lines out, an empty buffer (with its capacity) in.
        let mut batch = std::mem::replace(&mut *shared.lock(), std::mem::take(&mut spare));
        shared.drained.notify_all();
        if !batch.is_empty() {
            // Nowhere to report a failed write but stderr itself.
            out.write_all(&batch).and_then(|()| out.flush()).ok();
            batch.clear();
            spare = batch;
            std::thread::sleep(BATCH);
            continue;
        }
        spare = batch;
        if closed {
            return;
        }
        // Announce the sleep, then look once more: a line appended before
        // the announcement is seen here, one appended after it wakes us.
        shared.idle.store(true, Ordering::SeqCst);
        if shared.lock().is_empty() && !shared.closed.load(Ordering::SeqCst) {
            std::thread::park_timeout(Duration::from_secs(1));
        }
        shared.idle.store(false, Ordering::SeqCst);
    }
}

impl Write for LogWriter {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let shared = &self.0;
        let mut pending = shared.lock();
        while pending.len() > MAX_PENDING && !shared.closed.load(Ordering::SeqCst) {
            shared.writer.unpark();
            pending = shared
                .drained
                .wait(pending)
                .unwrap_or_else(|p| p.into_inner());
        }
        pending.extend_from_slice(line);
        drop(pending);
        if shared.idle.swap(false, Ordering::SeqCst) {
            shared.writer.unpark();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.shared.writer.unpark();
        if let Some(thread) = self.thread.take() {
            thread.join().ok();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An `out` the test can read.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_is_written_in_order_and_dropping_the_guard_flushes() {
        let sink = Sink::default();
        let (writer, guard) = start(sink.clone()).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let mut w = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..5_000 {
                        w.write_all(format!("{t} {i}\n").as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(guard);
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let mut next = [0usize; 4];
        for line in text.lines() {
            let (t, i) = line.split_once(' ').unwrap();
            let (t, i): (usize, usize) = (t.parse().unwrap(), i.parse().unwrap());
            assert_eq!(i, next[t], "thread {t}'s lines out of order");
            next[t] += 1;
        }
        assert_eq!(next, [5_000; 4], "lines lost");
    }

    #[test]
    fn a_line_on_a_quiet_writer_appears_without_a_flush() {
        let sink = Sink::default();
        let (mut writer, _guard) = start(sink.clone()).unwrap();
        // Let the writer fall asleep first.
        std::thread::sleep(Duration::from_millis(20));
        writer.write_all(b"hello\n").unwrap();
        for _ in 0..200 {
            if sink.0.lock().unwrap().as_slice() == b"hello\n" {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("the line was not written within a second");
    }

    #[test]
    fn a_writer_that_cannot_keep_up_holds_its_callers_back_and_loses_nothing() {
        /// Writes slowly.
        struct Slow(Sink);
        impl Write for Slow {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                std::thread::sleep(Duration::from_millis(20));
                self.0.write(buf)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::default();
        let (mut writer, guard) = start(Slow(sink.clone())).unwrap();
        let line = vec![b'x'; 1 << 20];
        for _ in 0..12 {
            writer.write_all(&line).unwrap();
            assert!(writer.0.lock().len() <= MAX_PENDING + line.len());
        }
        drop(guard);
        assert_eq!(sink.0.lock().unwrap().len(), 12 << 20);
    }
}
