//! How a ledger is opened: its clock, options, commit observer, and who a request is from.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use ledger_core::Scope;

/// Milliseconds since the Unix epoch. Injected so tests decide time.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> i64;
}

#[derive(Debug, Default)]
pub struct SystemClock;

impl SystemClock {
    /// Milliseconds since the Unix epoch now (0 before 1970, saturating far ahead).
    pub fn now_ms() -> i64 {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
    }
}

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemClock::now_ms()
    }
}

/// A clock tests move by hand.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(now_ms: i64) -> ManualClock {
        ManualClock(AtomicI64::new(now_ms))
    }

    pub fn set(&self, now_ms: i64) {
        self.0.store(now_ms, Ordering::SeqCst);
    }

    pub fn advance(&self, delta_ms: i64) {
        self.0.fetch_add(delta_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[derive(Clone)]
pub struct LedgerOptions {
    pub clock: Arc<dyn Clock>,
    /// Seeds the writer's RNG (nonces, data keys, ARN suffixes) for reproducible tests; `None`
    /// seeds from the OS. Honoured only with the `test-rng` feature: otherwise `open` refuses
    /// a seed, so no service build can run on a predictable RNG.
    pub rng_seed: Option<[u8; 32]>,
    /// A projection snapshot is written each time the head crosses a multiple of this.
    pub snapshot_every: u64,
    /// Most requests one group commit takes.
    pub group_max: usize,
    /// sled's page cache. Reads of values go to the log's records, so this bounds memory, not
    /// correctness.
    pub cache_bytes: u64,
    /// Injected storage failures, for tests of the failure paths (`None` in service).
    pub faults: Option<Arc<crate::faults::FaultPlan>>,
    /// Skip `flush` + `fdatasync` (benchmarks of the non-durable path only; never in service).
    pub unsafe_no_sync: bool,
    /// Told about every durable group commit (the server's metrics).
    pub observer: Option<Arc<dyn CommitObserver>>,
}

/// Sees every group commit that became durable, on the writer thread: keep it cheap.
pub trait CommitObserver: Send + Sync {
    /// `requests` requests appending `events` events were made durable; `sync` is the time the
    /// durable write took (sled's batch, flush and `fdatasync`).
    fn group_committed(&self, requests: usize, events: usize, sync: std::time::Duration);
}

impl Default for LedgerOptions {
    fn default() -> LedgerOptions {
        LedgerOptions {
            clock: Arc::new(SystemClock),
            rng_seed: None,
            snapshot_every: 100_000,
            group_max: 512,
            cache_bytes: 256 << 20,
            faults: None,
            unsafe_no_sync: false,
            observer: None,
        }
    }
}

impl std::fmt::Debug for LedgerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedgerOptions")
            .field("snapshot_every", &self.snapshot_every)
            .field("group_max", &self.group_max)
            .finish_non_exhaustive()
    }
}

/// Who asks, where, under which request id.
#[derive(Clone, Debug)]
pub struct RequestMeta {
    pub scope: Scope,
    pub actor: String,
    pub request_id: String,
}

impl RequestMeta {
    /// An in-process caller: actor `local`, a fresh request id.
    pub fn local(scope: Scope) -> RequestMeta {
        RequestMeta { scope, actor: "local".to_string(), request_id: uuid::Uuid::new_v4().to_string() }
    }
}
