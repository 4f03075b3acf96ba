//! Where log lines go: gathered in memory and written to stderr by a thread of their own a few
//! times a second, so that a request's log line costs its worker a copy under a lock, not a
//! `write` and not a wake-up of another thread.
//!
//! Never lossy while it runs: a worker that finds [`BEHIND`] bytes not yet written waits for the
//! writer thread. A warning or an error wakes the writer at once. Dropping the [`SinkGuard`]
//! writes everything gathered, waiting at most [`CLOSE_WAIT`] for a blocked stderr; a line logged
//! after that is dropped.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// How long a line may wait in memory before it is written.
const EVERY: Duration = Duration::from_millis(25);

/// Gathered bytes at which the writer thread is woken at once instead of at its next tick.
const SOON: usize = 256 << 10;

/// Gathered bytes at which loggers wait for the writer thread (stderr is slower than they are).
const BEHIND: usize = 4 << 20;

/// How long dropping the guard waits for the writer thread to write what is gathered: a stderr
/// nobody reads must not keep the process from exiting.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Gathered {
    bytes: Vec<u8>,
    closing: bool,
    /// The writer thread wrote everything and stopped.
    done: bool,
}

#[derive(Default)]
struct Shared {
    gathered: Mutex<Gathered>,
    /// Wakes the writer thread (enough gathered, or closing).
    wake_writer: Condvar,
    /// Wakes loggers waiting for room, and the guard waiting for the writer to finish.
    drained: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Gathered> {
        self.gathered.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Hands out writers for `tracing_subscriber::fmt` (one per log line).
#[derive(Clone)]
pub struct LogSink {
    shared: Arc<Shared>,
}

/// Keep until exit: dropping it writes what is gathered and stops the writer thread.
pub struct SinkGuard {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A sink writing to `out` from a thread named `log-writer`.
pub fn to(out: impl Write + Send + 'static) -> std::io::Result<(LogSink, SinkGuard)> {
    let shared = Arc::new(Shared::default());
    let thread_shared = shared.clone();
    let thread =
        std::thread::Builder::new().name("log-writer".into()).spawn(move || write_loop(&thread_shared, out))?;
    Ok((LogSink { shared: shared.clone() }, SinkGuard { shared, thread: Some(thread) }))
}

/// Takes what is gathered every [`EVERY`] (sooner when much is), writes it outside the lock.
fn write_loop(shared: &Shared, mut out: impl Write) {
    let mut spare = Vec::new();
    loop {
        let mut gathered = shared.lock();
        if gathered.bytes.len() < SOON && !gathered.closing {
            gathered = shared.wake_writer.wait_timeout(gathered, EVERY).unwrap_or_else(|e| e.into_inner()).0;
        }
        let closing = gathered.closing;
        std::mem::swap(&mut gathered.bytes, &mut spare);
        drop(gathered);
        shared.drained.notify_all();
        if !spare.is_empty() {
            // Nowhere to report a failed write of the log itself; the next lines try again.
            let _ = out.write_all(&spare).and_then(|()| out.flush());
            spare.clear();
        }
        let mut gathered = shared.lock();
        if closing && gathered.bytes.is_empty() {
            gathered.done = true;
            drop(gathered);
            shared.drained.notify_all();
            return;
        }
    }
}

impl Drop for SinkGuard {
    fn drop(&mut self) {
        let mut gathered = self.shared.lock();
        gathered.closing = true;
        self.shared.wake_writer.notify_one();
        let deadline = std::time::Instant::now() + CLOSE_WAIT;
        while !gathered.done {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                // stderr is blocked: leave the thread to it rather than hang the exit.
                return;
            }
            gathered = self.shared.drained.wait_timeout(gathered, left).unwrap_or_else(|e| e.into_inner()).0;
        }
        drop(gathered);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One log line's writer: appends to what is gathered.
pub struct LineWriter<'a> {
    shared: &'a Shared,
    /// A warning or an error: written without waiting for the next tick.
    urgent: bool,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut gathered = self.shared.lock();
        while gathered.bytes.len() >= BEHIND && !gathered.closing {
            gathered = self.shared.drained.wait(gathered).unwrap_or_else(|e| e.into_inner());
        }
        if gathered.closing {
            // Nobody will write it (or the writer is blocked): dropped, never held unbounded.
            return Ok(buf.len());
        }
        gathered.bytes.extend_from_slice(buf);
        if self.urgent || gathered.bytes.len() >= SOON {
            self.shared.wake_writer.notify_one();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogSink {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter { shared: &self.shared, urgent: false }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        LineWriter { shared: &self.shared, urgent: *meta.level() <= tracing::Level::WARN }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Write` into a shared buffer, to read what the writer thread wrote.
    #[derive(Clone, Default)]
    struct Collect(Arc<Mutex<Vec<u8>>>);

    impl Write for Collect {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_is_written_in_order_by_the_time_the_guard_is_dropped() {
        let out = Collect::default();
        let (sink, guard) = to(out.clone()).unwrap();
        std::thread::scope(|s| {
            for t in 0..4 {
                let sink = sink.clone();
                s.spawn(move || {
                    for i in 0..20_000 {
                        // As `tracing_subscriber::fmt` does: a whole line in one write.
                        let line = format!("thread {t} line {i:06} of a log long enough to fill the buffer\n");
                        tracing_subscriber::fmt::MakeWriter::make_writer(&sink).write_all(line.as_bytes()).unwrap();
                    }
                });
            }
        });
        drop(guard);
        let written = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(written.lines().count(), 80_000);
        for t in 0..4 {
            let mine: Vec<&str> = written.lines().filter(|l| l.starts_with(&format!("thread {t} "))).collect();
            assert_eq!(mine.len(), 20_000);
            assert!(mine.windows(2).all(|w| w[0] < w[1]), "lines of thread {t} out of order");
        }
    }

    #[test]
    fn a_line_is_written_without_waiting_for_the_guard() {
        let out = Collect::default();
        let (sink, _guard) = to(out.clone()).unwrap();
        tracing_subscriber::fmt::MakeWriter::make_writer(&sink).write_all(b"one line\n").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while out.0.lock().unwrap().is_empty() {
            assert!(std::time::Instant::now() < deadline, "the line was never written");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(&out.0.lock().unwrap()[..], b"one line\n");
    }

    /// A stderr nobody reads: every write waits until `open` is set.
    #[derive(Clone, Default)]
    struct Stuck {
        open: Arc<(Mutex<bool>, Condvar)>,
        written: Arc<Mutex<usize>>,
    }

    impl Write for Stuck {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let (open, opened) = &*self.open;
            let mut is_open = open.lock().unwrap();
            while !*is_open {
                is_open = opened.wait(is_open).unwrap();
            }
            *self.written.lock().unwrap() += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn loggers_wait_for_a_blocked_stderr_and_lose_nothing_once_it_drains() {
        let out = Stuck::default();
        let (sink, guard) = to(out.clone()).unwrap();
        let line = [b'x'; 1023].iter().copied().chain([b'\n']).collect::<Vec<u8>>();
        let lines = 3 * BEHIND / line.len();
        let logger = std::thread::spawn(move || {
            for _ in 0..lines {
                tracing_subscriber::fmt::MakeWriter::make_writer(&sink).write_all(&line).unwrap();
            }
        });
        std::thread::sleep(Duration::from_millis(200));
        assert!(!logger.is_finished(), "the logger went on past the bound while nothing was written");
        *out.open.0.lock().unwrap() = true;
        out.open.1.notify_all();
        logger.join().unwrap();
        drop(guard);
        assert_eq!(*out.written.lock().unwrap(), lines * 1024);
    }

    #[test]
    fn dropping_the_guard_gives_up_on_a_blocked_stderr_and_later_lines_are_dropped() {
        let out = Stuck::default();
        let (sink, guard) = to(out.clone()).unwrap();
        tracing_subscriber::fmt::MakeWriter::make_writer(&sink).write_all(b"stuck\n").unwrap();
        let started = std::time::Instant::now();
        drop(guard);
        assert!(started.elapsed() < CLOSE_WAIT * 5, "the exit waited {:?} for stderr", started.elapsed());
        for _ in 0..1000 {
            tracing_subscriber::fmt::MakeWriter::make_writer(&sink).write_all(&[b'y'; 8192]).unwrap();
        }
        assert!(sink.shared.lock().bytes.len() <= 6, "lines after the close were kept");
        *out.open.0.lock().unwrap() = true;
        out.open.1.notify_all();
    }
}
