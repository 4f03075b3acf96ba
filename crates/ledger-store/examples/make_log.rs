//! Builds a data dir with about N events for measurements (verify, export, state-as-of, proofs):
//! `cargo run --release -p ledger-store --example make_log -- DIR N [SECRETS]`.
//! Appends without per-group fsync (a measurement fixture, not a service); the clock moves 15
//! minutes per reading so versions get pruned as in service. Writes DIR/master.key.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use ledger_core::crypto::MasterKey;
use ledger_core::{Command, CreateSecret, PutSecretValue, Scope, SecretValue};
use ledger_store::{Clock, Ledger, LedgerOptions, RequestMeta};

struct FastClock(AtomicI64);

impl Clock for FastClock {
    fn now_ms(&self) -> i64 {
        self.0.fetch_add(15 * 60 * 1000, Ordering::Relaxed)
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(dir), Some(target)) = (args.get(1), args.get(2).and_then(|n| n.parse::<u64>().ok())) else {
        eprintln!("usage: make_log DIR N_EVENTS [N_SECRETS]");
        std::process::exit(2);
    };
    let secrets: u64 = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(4096);
    let dir = std::path::Path::new(dir);
    std::fs::create_dir_all(dir)?;
    let key = [0x5a; 32];
    std::fs::write(dir.join("master.key"), format!("{}\n", hex::encode(key)))?;
    let options = LedgerOptions {
        clock: Arc::new(FastClock(AtomicI64::new(1_767_225_600_000))),
        unsafe_no_sync: true,
        ..LedgerOptions::default()
    };
    let ledger = Ledger::open(dir, MasterKey::from_bytes(1, key), options)?;
    let meta = RequestMeta::local(Scope::new("us-east-1", "000000000000"));
    let counter = AtomicU64::new(0);
    std::thread::scope(|s| {
        for t in 0..16u64 {
            let (ledger, meta, counter) = (&ledger, &meta, &counter);
            s.spawn(move || {
                for i in (t..secrets).step_by(16) {
                    let cmd = Command::CreateSecret(CreateSecret {
                        name: format!("app/secret-{i}"),
                        client_request_token: Some(format!("{i:0>32}")),
                        value: Some(SecretValue::string("initial")),
                        ..CreateSecret::default()
                    });
                    ledger.execute(cmd, meta).expect("storage").expect("create");
                }
                while ledger.head().0 < target {
                    let i = counter.fetch_add(1, Ordering::Relaxed);
                    let cmd = Command::PutSecretValue(PutSecretValue {
                        secret_id: format!("app/secret-{}", i % secrets),
                        client_request_token: Some(format!("{i:0>40}")),
                        value: Some(SecretValue::string(format!("{{\"password\":\"{i:0>24}\"}}"))),
                        version_stages: None,
                    });
                    ledger.execute(cmd, meta).expect("storage").expect("put");
                }
            });
        }
    });
    println!("{} events in {}", ledger.head().0, dir.display());
    ledger.close()?;
    Ok(())
}
