//! Criterion benchmarks: durable PutSecretValue with 1 and 64 concurrent in-process callers
//! spread over thousands of secrets, and verify over a large log.
//!
//! ```text
//! cargo bench -p ledger-store --bench ledger                         # everything
//! cargo bench -p ledger-store --bench ledger -- put_durable          # puts only
//! VERIFY_EVENTS=1000000 cargo bench -p ledger-store --bench ledger -- verify
//! ```

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ledger_core::crypto::MasterKey;
use ledger_core::{Command, CreateSecret, PutSecretValue, Scope, SecretValue};
use ledger_store::{Clock, Ledger, LedgerOptions, RequestMeta};

/// Each reading moves time on by 15 minutes: a secret gains at most ~100 versions a day
/// (spec §4.4), so deprecated versions become prunable as they would in service.
struct FastClock(AtomicI64);

impl Clock for FastClock {
    fn now_ms(&self) -> i64 {
        self.0.fetch_add(15 * 60 * 1000, Ordering::Relaxed)
    }
}

const SECRETS: u64 = 4096;

fn setup(durable: bool) -> (tempfile::TempDir, Arc<Ledger>, RequestMeta) {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = LedgerOptions {
        clock: Arc::new(FastClock(AtomicI64::new(1_767_225_600_000))),
        unsafe_no_sync: !durable,
        ..LedgerOptions::default()
    };
    let ledger = Ledger::open(dir.path(), MasterKey::from_bytes(1, [9; 32]), options).expect("open");
    let meta = RequestMeta::local(Scope::new("us-east-1", "000000000000"));
    std::thread::scope(|s| {
        for t in 0..8 {
            let (ledger, meta) = (&ledger, &meta);
            s.spawn(move || {
                for i in (t..SECRETS).step_by(8) {
                    let cmd = Command::CreateSecret(CreateSecret {
                        name: format!("app/secret-{i}"),
                        client_request_token: Some(format!("{:0>32}", i)),
                        value: Some(SecretValue::string("initial value of a typical size, about 64 bytes long....")),
                        ..CreateSecret::default()
                    });
                    ledger.execute(cmd, meta).expect("storage").expect("create");
                }
            });
        }
    });
    (dir, Arc::new(ledger), meta)
}

/// Issues `n` PutSecretValue calls from `callers` threads; returns the elapsed time.
fn puts(ledger: &Ledger, meta: &RequestMeta, counter: &AtomicU64, n: u64, callers: u64) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for c in 0..callers {
            let share = n / callers + u64::from(c < n % callers);
            s.spawn(move || {
                for _ in 0..share {
                    let i = counter.fetch_add(1, Ordering::Relaxed);
                    let cmd = Command::PutSecretValue(PutSecretValue {
                        secret_id: format!("app/secret-{}", i % SECRETS),
                        client_request_token: Some(format!("{:0>40}", i)),
                        value: Some(SecretValue::string(format!("{{\"password\":\"{i:0>24}\",\"user\":\"svc\"}}"))),
                        version_stages: None,
                    });
                    ledger.execute(cmd, meta).expect("storage").expect("put");
                }
            });
        }
    });
    start.elapsed()
}

fn bench_puts(c: &mut Criterion) {
    let mut group = c.benchmark_group("put_durable");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    for callers in [1u64, 64] {
        let (_dir, ledger, meta) = setup(true);
        let counter = AtomicU64::new(0);
        group.bench_function(format!("callers_{callers}"), |b| {
            b.iter_custom(|iters| puts(&ledger, &meta, &counter, iters, callers));
        });
    }
    group.finish();
}

fn bench_verify(c: &mut Criterion) {
    let target: u64 = std::env::var("VERIFY_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    // Build the log without per-group fsync: only verify is measured here.
    let (_dir, ledger, meta) = setup(false);
    let counter = AtomicU64::new(0);
    while ledger.head().0 < target {
        let remaining = (target - ledger.head().0) / 3 + 1;
        puts(&ledger, &meta, &counter, remaining.min(50_000), 32);
    }
    let events = ledger.head().0;
    let mut group = c.benchmark_group("verify");
    group.throughput(Throughput::Elements(events));
    group.sample_size(10);
    group.bench_function(format!("events_{events}"), |b| {
        b.iter(|| {
            let report = ledger.verify(&mut |_, _| {}).expect("storage").expect("log verifies");
            assert_eq!(report.events, events);
        });
    });
    group.finish();
}

criterion_group!(benches, bench_puts, bench_verify);
criterion_main!(benches);
