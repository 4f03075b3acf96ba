//! `GET /metrics`: Prometheus text format, unsigned, off the signed API (on the main listener,
//! or only on `--metrics-listen`). Labels are operation names, outcomes (`ok` or an error code)
//! and refusal reasons: never a secret name, ARN, key id or value.

use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

use crate::operation::Operation;

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    group_requests: Histogram,
    sync_seconds: Histogram,
    events: IntCounter,
    head_seq: IntGauge,
    rotations_started: IntCounter,
    rotations_failed: IntCounter,
    auth_refused: IntCounterVec,
    work_slots: IntGaugeVec,
    work_slots_peak: IntGaugeVec,
    work_waits: IntCounterVec,
    /// Serialises the copying of the work slots' wait counts into `work_waits`.
    work_waits_copy: std::sync::Mutex<()>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Latency buckets from 100 µs to 10 s.
const SECONDS: [f64; 14] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 10.0];

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "secret_ledger_requests_total",
                "Requests answered, by operation and outcome (ok or the error code).",
            ),
            &["operation", "outcome"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new("secret_ledger_request_duration_seconds", "Time to answer a request, by operation.")
                .buckets(SECONDS.to_vec()),
            &["operation"],
        )
        .expect("valid metric");
        let group_requests = Histogram::with_opts(
            HistogramOpts::new("secret_ledger_group_commit_requests", "Requests made durable by one group commit.")
                .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0]),
        )
        .expect("valid metric");
        let sync_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "secret_ledger_group_commit_sync_seconds",
                "Time a group commit took to become durable (sled batch, flush, fdatasync).",
            )
            .buckets(SECONDS.to_vec()),
        )
        .expect("valid metric");
        let events = IntCounter::new("secret_ledger_events_appended_total", "Events made durable since start.")
            .expect("valid metric");
        let head_seq =
            IntGauge::new("secret_ledger_log_head_seq", "Seq of the last durable event.").expect("valid metric");
        let rotations_started =
            IntCounter::new("secret_ledger_rotations_started_total", "Rotation function runs started.")
                .expect("valid metric");
        let rotations_failed =
            IntCounter::new("secret_ledger_rotations_failed_total", "Rotation function runs that failed a step.")
                .expect("valid metric");
        let auth_refused = IntCounterVec::new(
            Opts::new("secret_ledger_auth_refused_total", "Requests refused before a key was proven, by reason."),
            &["reason"],
        )
        .expect("valid metric");
        let (work_slots, work_slots_peak, work_waits) = work_slot_metrics();
        let metrics = Metrics {
            registry,
            requests,
            latency,
            group_requests,
            sync_seconds,
            events,
            head_seq,
            rotations_started,
            rotations_failed,
            auth_refused,
            work_slots,
            work_slots_peak,
            work_waits,
            work_waits_copy: std::sync::Mutex::new(()),
        };
        metrics.register();
        metrics
    }

    /// Every family into the registry `render` encodes.
    fn register(&self) {
        for c in [
            Box::new(self.requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(self.latency.clone()),
            Box::new(self.group_requests.clone()),
            Box::new(self.sync_seconds.clone()),
            Box::new(self.events.clone()),
            Box::new(self.head_seq.clone()),
            Box::new(self.rotations_started.clone()),
            Box::new(self.rotations_failed.clone()),
            Box::new(self.auth_refused.clone()),
            Box::new(self.work_slots.clone()),
            Box::new(self.work_slots_peak.clone()),
            Box::new(self.work_waits.clone()),
        ] {
            self.registry.register(c).expect("metric names are unique");
        }
    }

    /// A request answered: `target` is the raw `X-Amz-Target`, kept only if it names an
    /// operation this server knows (anything else counts as `unknown`, so a client cannot make
    /// up label values).
    pub fn request(&self, target: &str, outcome: &'static str, elapsed: Duration) {
        let known = Operation::from_target(target).map_or("unknown", |_| target);
        self.requests.with_label_values(&[known, outcome]).inc();
        self.latency.with_label_values(&[known]).observe(elapsed.as_secs_f64());
    }

    pub fn auth_refused(&self, reason: &'static str) {
        self.auth_refused.with_label_values(&[reason]).inc();
    }

    pub fn rotation_started(&self) {
        self.rotations_started.inc();
    }

    pub fn rotation_failed(&self) {
        self.rotations_failed.inc();
    }

    /// A kind of work slot as it is now (see `ops::WorkSlots`): slots, the most ever taken at
    /// once, and the requests that ever found every slot taken.
    pub fn work_slots(&self, work: &str, slots: usize, peak: usize, waits: u64) {
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.work_slots.with_label_values(&[work]).set(gauge(slots));
        self.work_slots_peak.with_label_values(&[work]).set(gauge(peak));
        // A counter only goes up: it is brought up to the slots' own count, one copier at a time.
        let _copying = self.work_waits_copy.lock().unwrap_or_else(|e| e.into_inner());
        let counter = self.work_waits.with_label_values(&[work]);
        counter.inc_by(waits.saturating_sub(counter.get()));
    }

    /// The text exposition, with the head read now.
    pub fn render(&self, head_seq: u64) -> String {
        self.head_seq.set(i64::try_from(head_seq).unwrap_or(i64::MAX));
        let mut out = Vec::new();
        // Encoding into a Vec only fails on a bad metric family, which `new` rules out.
        let _ = prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// The work slots' families: slots and peak by kind of work, and waits.
fn work_slot_metrics() -> (IntGaugeVec, IntGaugeVec, IntCounterVec) {
    let slots = IntGaugeVec::new(
        Opts::new(
            "secret_ledger_work_slots",
            "Requests of a kind that run at once: filtering (ListSecrets, BatchGetSecretValue), audit (State, \
             Prove, Checkpoint, one secret's History), whole_log (Export, Verify, ledger-wide History).",
        ),
        &["work"],
    )
    .expect("valid metric");
    let peak = IntGaugeVec::new(
        Opts::new("secret_ledger_work_slots_peak", "The most slots taken at once since start."),
        &["work"],
    )
    .expect("valid metric");
    let waits = IntCounterVec::new(
        Opts::new(
            "secret_ledger_work_waits_total",
            "Requests that found every slot taken: they waited (filtering, audit) or were refused (whole_log).",
        ),
        &["work"],
    )
    .expect("valid metric");
    (slots, peak, waits)
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl ledger_store::CommitObserver for Metrics {
    fn group_committed(&self, requests: usize, events: usize, sync: Duration) {
        self.group_requests.observe(requests as f64);
        self.sync_seconds.observe(sync.as_secs_f64());
        self.events.inc_by(events as u64);
    }
}
