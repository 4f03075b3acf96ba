//! Faults below the ledger: a write error or failed flush in the middle of a group commit fails
//! every request of that group (none is acknowledged), later writes fail with a clear error,
//! reads keep working, and after a restart every acknowledged write is there and the log
//! verifies.

use std::sync::Arc;

use ledger_core::query::GetSecretValue;
use ledger_core::*;
use ledger_store::faults::{FaultPlan, FaultStep};
use ledger_store::{Ledger, LedgerOptions, RequestMeta, StoreError};

use crate::fixture::{master, tok};

fn put(secret: &str, n: usize, value: &str) -> Command {
    Command::PutSecretValue(PutSecretValue {
        secret_id: secret.into(),
        client_request_token: Some(tok(n)),
        value: Some(SecretValue::string(value)),
        version_stages: None,
    })
}

/// (secret, token number, what `execute` answered).
type Outcome = (String, usize, Result<Result<Reply, SmError>, StoreError>);

fn run(step: FaultStep) {
    let dir = tempfile::tempdir().unwrap();
    let scope = Scope::new("us-east-1", "000000000000");
    let meta = RequestMeta::local(scope.clone());
    let plan = Arc::new(FaultPlan::disk_full(step, 6));
    let options = LedgerOptions { faults: Some(plan), rng_seed: Some([3; 32]), ..LedgerOptions::default() };
    let ledger = Ledger::open(dir.path(), master(), options).unwrap();
    let create = |name: &str| {
        Command::CreateSecret(CreateSecret {
            name: name.into(),
            client_request_token: Some(tok(900)),
            value: Some(SecretValue::string("v0")),
            ..CreateSecret::default()
        })
    };
    for name in ["s0", "s1", "s2", "s3"] {
        ledger.execute(create(name), &meta).unwrap().unwrap();
    }
    // 32 callers, 4 puts each (at least 4 groups): the 6th group commit fails, and every one after.
    let outcomes: Vec<Outcome> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..32)
            .map(|caller| {
                let (ledger, meta) = (&ledger, &meta);
                s.spawn(move || {
                    (0..4)
                        .map(|k| {
                            let i = caller * 4 + k;
                            let secret = format!("s{}", i % 4);
                            (secret.clone(), i, ledger.execute(put(&secret, i, &format!("value-{i}")), meta))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let acked: Vec<&(String, usize, _)> = outcomes.iter().filter(|(_, _, r)| matches!(r, Ok(Ok(_)))).collect();
    let failed: Vec<&StoreError> = outcomes.iter().filter_map(|(_, _, r)| r.as_ref().err()).collect();
    assert!(!failed.is_empty(), "the fault struck");
    assert_eq!(acked.len() + failed.len(), outcomes.len(), "every request answered: acknowledged or failed");
    assert!(failed.iter().all(|e| e.to_string().contains("No space left on device")), "{failed:?}");
    // Writes after the failure are refused with the reason; reads still answer.
    let later = ledger.execute(put("s0", 999, "later"), &meta).unwrap_err();
    assert!(matches!(later, StoreError::Poisoned { .. }) && later.to_string().contains("No space left"), "{later}");
    let current = ledger.get_secret_value(&scope, &GetSecretValue { secret_id: "s0".into(), ..Default::default() });
    assert!(current.unwrap().is_ok(), "reads keep working");
    let durable_head = ledger.head();
    ledger.close().unwrap();

    // Restart without faults: every acknowledged write is there, the log verifies.
    let ledger = Ledger::open(dir.path(), master(), LedgerOptions::default()).unwrap();
    let report = ledger.verify(&mut |_, _| {}).unwrap().unwrap();
    assert!(report.events >= durable_head.0, "nothing acknowledged was lost");
    for (secret, i, _) in acked {
        let q = GetSecretValue { secret_id: secret.clone(), version_id: Some(tok(*i)), ..Default::default() };
        let out = ledger.get_secret_value(&scope, &q).unwrap().unwrap();
        assert_eq!(out.value, SecretValue::string(format!("value-{i}")));
    }
    // Writes work again after the restart.
    ledger.execute(put("s0", 1000, "after restart"), &meta).unwrap().unwrap();
    ledger.verify(&mut |_, _| {}).unwrap().unwrap();
}

#[test]
fn failed_batch_write_fails_the_group() {
    run(FaultStep::ApplyBatch);
}

#[test]
fn failed_flush_fails_the_group() {
    run(FaultStep::Flush);
}

#[test]
fn failed_fsync_fails_the_group() {
    run(FaultStep::Fsync);
}
