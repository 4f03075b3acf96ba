//! Durability across restarts, version pruning, crypto-shredding, and verify catching tampering
//! done through sled below the ledger.

use ledger_core::codec::{decode_record, seal_record};
use ledger_core::query::ListSecretVersionIds;
use ledger_core::*;
use ledger_store::layout::event_key;
use ledger_store::{FailureReason, VerifyFailure};

use crate::fixture::{tok, Fixture};

/// A small history: two secrets, puts, a rotation, a tag, a delete.
fn history() -> Fixture {
    let mut f = Fixture::with_options(|o| o.snapshot_every = 8);
    f.create("a", Some("a1")).unwrap();
    f.create("b", Some("b1")).unwrap();
    for i in 0..4 {
        f.put("a", &tok(i), &format!("a{}", i + 2), None).unwrap();
    }
    f.put("b", &tok(10), "b2", Some(&["AWSPENDING"])).unwrap();
    let (b1, b2) = (f.created[1].clone(), tok(10));
    f.stage("b", "AWSCURRENT", Some(&b2), Some(&b1)).unwrap();
    f.exec(Command::TagResource(TagResource {
        secret_id: "a".into(),
        tags: vec![Tag { key: "team".into(), value: "x".into() }],
    }))
    .unwrap();
    f.exec(Command::DeleteSecret(DeleteSecret { secret_id: "b".into(), ..DeleteSecret::default() })).unwrap();
    f
}

fn failure(f: &Fixture) -> VerifyFailure {
    f.ledger().verify(&mut |_, _| {}).expect("storage works").expect_err("tampering must be caught")
}

#[test]
fn restart_keeps_everything_and_tokens_stay_idempotent() {
    let mut f = history();
    let events = f.verify_ok();
    assert!(events > 16, "{events}");
    let head = f.ledger().head();
    let state = f.ledger().with_state(|s| s.clone());
    f.reopen();
    assert_eq!(f.ledger().head(), head);
    assert_eq!(f.ledger().with_state(|s| s.clone()), state);
    assert_eq!(f.get_string("a").unwrap(), "a5");
    // A retry after the restart: same value → original version, different → refused.
    // The read queued its day's SecretAccessed ahead of the retry, which appends nothing.
    let reply = f.put("a", &tok(0), "a2", None).unwrap();
    assert!(matches!(reply, Reply::Version { ref version_id, .. } if *version_id == tok(0)));
    assert_eq!(f.ledger().head().0, head.0 + 1);
    assert_eq!(f.put("a", &tok(0), "zz", None).unwrap_err().code(), ErrorCode::ResourceExistsException);
    assert_eq!(f.verify_ok(), events + 1);
    // Snapshots were written and checked.
    let report = f.ledger().verify(&mut |_, _| {}).unwrap().unwrap();
    assert!(report.snapshots_checked >= 2, "{report:?}");
}

#[test]
fn pruning_respects_quota_and_grace() {
    let mut f = Fixture::new();
    f.create("p", Some("v0")).unwrap();
    // 99 more versions: 100 in all, no pruning needed.
    for i in 1..100 {
        f.put("p", &tok(i), &format!("v{i}"), None).unwrap();
    }
    assert_eq!(f.labels("p").len(), 100);
    // The 101st within 24 hours: nothing may be pruned yet → LimitExceeded, nothing appended.
    let head = f.ledger().head();
    let e = f.put("p", &tok(100), "v100", None).unwrap_err();
    assert_eq!(e.code(), ErrorCode::LimitExceededException);
    assert_eq!(f.ledger().head(), head);
    // A day later the oldest deprecated version is pruned with an event.
    f.clock.advance(24 * 3600 * 1000 + 1);
    f.put("p", &tok(100), "v100", None).unwrap();
    let labels = f.labels("p");
    assert_eq!(labels.len(), 100);
    assert!(!labels.contains_key(&f.created[0]), "the oldest deprecated version is pruned");
    // Deprecated versions are listed only with IncludeDeprecated.
    let q = |all| ListSecretVersionIds { secret_id: "p".into(), include_deprecated: Some(all), ..Default::default() };
    let shown = f.ledger().list_secret_version_ids(&f.scope, &q(false)).unwrap();
    assert_eq!(shown.versions.len(), 2);
    let mut n = 0;
    let mut token = None;
    loop {
        let page = f
            .ledger()
            .list_secret_version_ids(
                &f.scope,
                &ListSecretVersionIds { max_results: Some(30), next_token: token, ..q(true) },
            )
            .unwrap();
        n += page.versions.len();
        token = page.next_token;
        if token.is_none() {
            break;
        }
    }
    assert_eq!(n, 100);
    // The pruned version's token still decides retries, across a restart too.
    let pruned = f.created[0].clone();
    f.reopen();
    assert_eq!(f.put("p", &pruned, "different", None).unwrap_err().code(), ErrorCode::ResourceExistsException);
    assert_eq!(f.get("p", Some(&pruned), None).unwrap_err().code(), ErrorCode::ResourceNotFoundException);
    f.verify_ok();
}

#[test]
fn purge_destroys_the_data_key_but_the_log_still_verifies() {
    let mut f = history();
    f.create("gone", Some("top secret")).unwrap();
    let uid = f.ledger().with_state(|s| s.by_name("us-east-1", "gone").unwrap().uid);
    let keys = |f: &Fixture| ledger_store::keyfile::KeyFile::read(f.dir.path()).unwrap().unwrap();
    assert!(keys(&f).keys.contains_key(&uid.0));
    f.exec(Command::DeleteSecret(DeleteSecret {
        secret_id: "gone".into(),
        force_delete_without_recovery: Some(true),
        ..DeleteSecret::default()
    }))
    .unwrap();
    assert!(!keys(&f).keys.contains_key(&uid.0), "data key destroyed");
    // The VersionCreated record with its ciphertext is still in the log.
    let found = f.tree().scan_prefix([b'e']).values().any(
        |v| matches!(decode_record(&v.unwrap()).unwrap().event, Event::VersionCreated { secret, .. } if secret == uid),
    );
    assert!(found);
    f.verify_ok();
    f.reopen();
    f.verify_ok();
}

/// Replaces the record at `seq` with `bytes`.
fn overwrite(f: &Fixture, seq: u64, bytes: Vec<u8>) {
    f.tree().insert(event_key(seq), bytes).unwrap();
}

fn record_bytes(f: &Fixture, seq: u64) -> Vec<u8> {
    f.tree().get(event_key(seq)).unwrap().unwrap().to_vec()
}

#[test]
fn bit_flip_is_caught_at_its_seq() {
    let f = history();
    let mut bytes = record_bytes(&f, 5);
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    overwrite(&f, 5, bytes);
    let fail = failure(&f);
    assert_eq!(fail.seq, 5);
    assert!(matches!(fail.reason, FailureReason::BadHash | FailureReason::Undecodable(_)), "{fail}");
}

#[test]
fn swapped_events_are_caught() {
    let f = history();
    let (a, b) = (record_bytes(&f, 4), record_bytes(&f, 5));
    overwrite(&f, 4, b);
    overwrite(&f, 5, a);
    let fail = failure(&f);
    assert_eq!(fail.seq, 4);
    assert!(matches!(fail.reason, FailureReason::SeqMismatch { .. }), "{fail}");
}

#[test]
fn deleted_middle_event_is_a_gap() {
    let f = history();
    f.tree().remove(event_key(6)).unwrap();
    let fail = failure(&f);
    assert_eq!(fail, VerifyFailure { seq: 6, reason: FailureReason::Gap { expected: 6, found: 7 } });
}

#[test]
fn truncated_tail_is_caught_by_the_head() {
    let f = history();
    let (head, _) = f.ledger().head();
    f.tree().remove(event_key(head)).unwrap();
    let fail = failure(&f);
    assert!(matches!(fail.reason, FailureReason::HeadMismatch { .. }), "{fail}");
}

#[test]
fn spliced_event_from_another_ledger_is_caught() {
    let f = history();
    let other = history(); // same operations, different ledger: hashes differ (nonces, keys)
    overwrite(&f, 3, record_bytes(&other, 3));
    let fail = failure(&f);
    assert_eq!(fail.seq, 3);
    assert!(matches!(fail.reason, FailureReason::BrokenLink | FailureReason::BadHash), "{fail}");
}

#[test]
fn forged_label_move_with_recomputed_hash_is_caught() {
    let f = history();
    // Find a LabelMoved and point it at another version, recomputing its own hash.
    let (seq, record) = (1..=f.ledger().head().0)
        .map(|s| (s, decode_record(&record_bytes(&f, s)).unwrap()))
        .find(|(_, r)| matches!(&r.event, Event::LabelMoved { label, from: Some(_), .. } if label == "AWSCURRENT"))
        .unwrap();
    let Event::LabelMoved { secret, label, from, .. } = record.event.clone() else { unreachable!() };
    let forged = Event::LabelMoved { secret, label, from: from.clone(), to: from };
    let (_, bytes) = seal_record(
        seq,
        record.prev_hash,
        record.recorded_at_ms,
        &record.actor,
        &record.request_id,
        &record.operation,
        forged,
    );
    overwrite(&f, seq, bytes);
    let fail = failure(&f);
    assert_eq!(fail.seq, seq, "{fail}");
    assert!(matches!(fail.reason, FailureReason::Rule(_)), "{fail}");
}

#[test]
fn forged_rule_abiding_event_breaks_the_next_link() {
    let f = history();
    // Re-seal record 1 with another actor: a valid event whose hash changed.
    let record = decode_record(&record_bytes(&f, 1)).unwrap();
    let (_, bytes) = seal_record(
        1,
        record.prev_hash,
        record.recorded_at_ms,
        "mallory",
        &record.request_id,
        &record.operation,
        record.event,
    );
    overwrite(&f, 1, bytes);
    assert_eq!(failure(&f), VerifyFailure { seq: 2, reason: FailureReason::BrokenLink });
}

#[test]
fn edited_projection_snapshot_is_caught() {
    let f = history();
    // Flip one byte in the first data piece of the first snapshot (`S ‖ seq ‖ piece 1`).
    let (k, v) = f
        .tree()
        .scan_prefix([b'S'])
        .find(|item| item.as_ref().is_ok_and(|(k, _)| k[9..] == [0, 0, 0, 1]))
        .unwrap()
        .unwrap();
    let seq = u64::from_be_bytes(k[1..9].try_into().unwrap());
    let mut v = v.to_vec();
    let last = v.len() - 1;
    v[last] ^= 0x01;
    f.tree().insert(k, v).unwrap();
    assert_eq!(failure(&f), VerifyFailure { seq, reason: FailureReason::SnapshotMismatch });
}

#[test]
fn corrupt_log_refuses_to_open_with_a_typed_error() {
    let mut f = history();
    let mut bytes = record_bytes(&f, 7);
    bytes[20] ^= 0xff;
    overwrite(&f, 7, bytes);
    f.ledger.take().unwrap().close().unwrap();
    // The newest snapshot (every 8 events) may sit after seq 7; drop snapshots so replay covers it.
    {
        // sled's background threads may hold the file lock a moment after the close.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let db = loop {
            match sled::open(f.dir.path()) {
                Ok(db) => break db,
                Err(e) if std::time::Instant::now() < deadline && e.to_string().contains("could not acquire lock") => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => panic!("{e}"),
            }
        };
        for k in db.scan_prefix([b'S']).keys() {
            db.remove(k.unwrap()).unwrap();
        }
        db.flush().unwrap();
    }
    let err = ledger_store::Ledger::open(f.dir.path(), crate::fixture::master(), f.options.clone()).unwrap_err();
    assert!(matches!(err, ledger_store::StoreError::Corrupt { seq: 7, .. }), "{err}");
}

#[test]
fn wrong_master_key_is_refused() {
    let mut f = history();
    f.ledger.take().unwrap().close().unwrap();
    let wrong = ledger_core::crypto::MasterKey::from_bytes(1, [0x43; 32]);
    let err = ledger_store::Ledger::open(f.dir.path(), wrong, f.options.clone()).unwrap_err();
    assert!(matches!(err, ledger_store::StoreError::WrongMasterKey), "{err}");
}

#[test]
fn second_open_of_a_data_dir_is_in_use() {
    let f = Fixture::new();
    let err = ledger_store::Ledger::open(f.dir.path(), crate::fixture::master(), f.options.clone()).unwrap_err();
    assert!(matches!(err, ledger_store::StoreError::InUse { .. }), "{err}");
}

/// Review finding: rules decide always obeys must hold on replay too, or a forged log passes.
#[test]
fn forged_deletion_date_and_arn_break_the_rules() {
    let forge = |edit: &dyn Fn(Event) -> Option<Event>| {
        let f = history();
        let (seq, record, event) = (1..=f.ledger().head().0)
            .find_map(|s| {
                let r = decode_record(&record_bytes(&f, s)).unwrap();
                edit(r.event.clone()).map(|e| (s, r, e))
            })
            .unwrap();
        let (_, bytes) = seal_record(
            seq,
            record.prev_hash,
            record.recorded_at_ms,
            &record.actor,
            &record.request_id,
            &record.operation,
            event,
        );
        overwrite(&f, seq, bytes);
        (seq, failure(&f))
    };
    // A purge date equal to the request time (PurgeDue would purge at once).
    let (seq, fail) = forge(&|e| match e {
        Event::DeletionScheduled { secret, .. } => Some(Event::DeletionScheduled { secret, deletion_date_ms: 0 }),
        _ => None,
    });
    assert_eq!(fail.seq, seq);
    assert!(matches!(fail.reason, FailureReason::Rule(RuleViolation::BadDeletionDate { .. })), "{fail}");
    // An ARN naming another secret.
    let (seq, fail) = forge(&|e| match e {
        Event::SecretCreated { secret, region, name, description, kms_key_id, secret_type, tags, .. } => {
            let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:other-AbCdEf".to_string();
            Some(Event::SecretCreated { secret, region, name, arn, description, kms_key_id, secret_type, tags })
        }
        _ => None,
    });
    assert_eq!(fail.seq, seq);
    assert!(matches!(fail.reason, FailureReason::Rule(RuleViolation::BadArn { .. })), "{fail}");
    // AWSCURRENT detached.
    let (seq, fail) = forge(&|e| match e {
        Event::LabelMoved { secret, label, from: Some(from), .. } if label == AWSCURRENT => {
            Some(Event::LabelMoved { secret, label, from: Some(from), to: None })
        }
        _ => None,
    });
    assert_eq!(fail.seq, seq);
    assert!(matches!(fail.reason, FailureReason::Rule(RuleViolation::CurrentDetached { .. })), "{fail}");
}

/// Review findings: derived data that proofs and opening rely on is checked too.
#[test]
fn forged_derived_data_is_caught() {
    // A stored Merkle chunk root that does not match its 1,024 records.
    let mut f = Fixture::with_options(|o| o.unsafe_no_sync = true);
    for s in 0..16 {
        f.create(&format!("c{s}"), Some("v")).unwrap();
    }
    for i in 0..400 {
        f.put(&format!("c{}", i % 16), &tok(i), "x", None).unwrap();
    }
    let key = ledger_store::layout::merkle_key(0);
    assert!(f.tree().get(key).unwrap().is_some(), "the first chunk is complete");
    f.tree().insert(key, &[7u8; 32]).unwrap();
    assert_eq!(failure(&f), VerifyFailure { seq: 1024, reason: FailureReason::MerkleChunkMismatch });

    // A snapshot "before seq 1" would be loaded by open in place of replaying the log.
    let f = history();
    f.ledger().store().put_snapshot(0, &ledger_core::codec::encode(&State::default())).unwrap();
    assert_eq!(failure(&f), VerifyFailure { seq: 0, reason: FailureReason::SnapshotMismatch });

    // A data dir with records but without its acknowledged-head watermark.
    let mut f = history();
    f.ledger.take().unwrap().close().unwrap();
    std::fs::remove_file(f.dir.path().join(ledger_store::watermark::FILE_NAME)).unwrap();
    let err = ledger_store::Ledger::open(f.dir.path(), crate::fixture::master(), f.options.clone()).unwrap_err();
    assert!(matches!(err, ledger_store::StoreError::Damaged { .. }), "{err}");
    let fail = ledger_store::verify_dir(f.dir.path(), &mut |_, _| {}).unwrap().unwrap_err();
    assert_eq!(fail.reason, FailureReason::WatermarkMissing);
}

/// The rules of the format-2 events hold on replay: each forged event is caught at its seq.
#[test]
fn forged_rotation_access_and_policy_events_break_the_rules() {
    let story = || {
        let mut f = Fixture::new();
        f.create("a", Some("a1")).unwrap();
        f.create("gone", Some("g1")).unwrap();
        f.exec(Command::DeleteSecret(DeleteSecret {
            secret_id: "gone".into(),
            force_delete_without_recovery: Some(true),
            ..DeleteSecret::default()
        }))
        .unwrap();
        f.exec(Command::TagResource(TagResource {
            secret_id: "a".into(),
            tags: vec![Tag { key: "team".into(), value: "x".into() }],
        }))
        .unwrap();
        f
    };
    let forge = |make: &dyn Fn(SecretUid, SecretUid, &str) -> Event| {
        let f = story();
        let seq = f.ledger().head().0;
        let record = decode_record(&record_bytes(&f, seq)).unwrap();
        let (a, gone) = (SecretUid(1), SecretUid(2));
        let event = make(a, gone, &f.created[0]);
        let (_, bytes) = seal_record(
            seq,
            record.prev_hash,
            record.recorded_at_ms,
            &record.actor,
            &record.request_id,
            &record.operation,
            event,
        );
        overwrite(&f, seq, bytes);
        let fail = failure(&f);
        assert_eq!(fail.seq, seq, "{fail}");
        fail.reason
    };
    let rule = |reason: FailureReason| match reason {
        FailureReason::Rule(rule) => rule,
        other => panic!("not a rule violation: {other}"),
    };
    let lambda = Some("arn:aws:lambda:us-east-1:123456789012:function:f".to_string());
    // A rotation event for a purged secret.
    let r =
        rule(forge(&|_, gone, _| Event::RotationConfigured { secret: gone, lambda_arn: lambda.clone(), rules: None }));
    assert!(matches!(r, RuleViolation::MissingSecret { uid: 2 }), "{r}");
    // Rotation without a function.
    let r = rule(forge(&|a, _, _| Event::RotationConfigured { secret: a, lambda_arn: None, rules: None }));
    assert!(matches!(r, RuleViolation::RotationWithoutFunction { .. }), "{r}");
    // SecretAccessed for a missing version, and not on a whole day.
    let r = rule(forge(&|a, _, _| Event::SecretAccessed { secret: a, version_id: tok(99), day_ms: 0 }));
    assert!(matches!(r, RuleViolation::MissingVersion { .. }), "{r}");
    let r = rule(forge(&|a, _, v1| Event::SecretAccessed { secret: a, version_id: v1.into(), day_ms: 1_000 }));
    assert!(matches!(r, RuleViolation::BadAccess { .. }), "{r}");
    // A value set on a version that has one.
    let r = rule(forge(&|a, _, v1| Event::VersionValueSet {
        secret: a,
        version_id: v1.into(),
        value: SealedValue { kind: ValueKind::String, nonce: [0; 24], ciphertext: vec![0; 17] },
        value_digest: [0; 32],
    }));
    assert!(matches!(r, RuleViolation::ValueSetTwice { .. }), "{r}");
    // A policy deleted that was never set.
    let r = rule(forge(&|a, _, _| Event::ResourcePolicyDeleted { secret: a }));
    assert!(matches!(r, RuleViolation::NoPolicy { .. }), "{r}");
}
