//! Audit latencies on an existing data dir (build one with the `make_log` example):
//!
//! ```text
//! cargo run --release -p ledger-store --example make_log -- /tmp/s1m 1000000 1024
//! AUDIT_DIR=/tmp/s1m cargo bench -p ledger-store --bench audit
//! ```
//!
//! Without `AUDIT_DIR` it does nothing, so `cargo bench` stays quick.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use ledger_audit::{events, proofs};
use ledger_store::{LogStore, SledStore};

fn bench_audit(c: &mut Criterion) {
    let Some(dir) = std::env::var_os("AUDIT_DIR") else { return };
    let store = SledStore::open_existing(std::path::Path::new(&dir)).expect("open the data dir");
    let tree: &dyn LogStore = &store;
    let (head, _) = tree.head().expect("head");
    let mid_time = tree.record_time(head / 2).expect("time");
    let mut group = c.benchmark_group(format!("audit_{head}_events"));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("seq_at_time", |b| b.iter(|| events::seq_at_time(tree, mid_time).expect("seq")));
    group.bench_function("state_as_of_time_one_secret", |b| {
        b.iter(|| {
            let seq = events::seq_at_time(tree, mid_time).expect("seq");
            events::resolve_at(tree, &events::secret_identities(tree, "app/secret-7").expect("ids"), seq)
                .expect("state")
                .expect("secret exists")
        })
    });
    group.bench_function("history_one_secret", |b| {
        b.iter(|| {
            events::secret_history(tree, events::secret_identities(tree, "app/secret-7").expect("ids")[0].uid)
                .expect("history")
        })
    });
    group.sample_size(10);
    group.bench_function("state_as_of_seq_all_secrets", |b| {
        b.iter(|| ledger_store::state_at(tree, head / 2 + 777).expect("state"))
    });
    group.bench_function("inclusion_proof", |b| {
        b.iter(|| proofs::inclusion_proof(tree, head / 3, head).expect("proof"))
    });
    group.finish();
    let proof = proofs::inclusion_proof(tree, head / 3, head).expect("proof");
    println!("inclusion proof at {head} events: {} hashes, {} bytes", proof.len(), proof.len() * 32);
}

criterion_group!(benches, bench_audit);
criterion_main!(benches);
