//! Audit: history from the per-secret index, state as of a seq or a time, export and offline
//! verification (with the tampering cases on the file), checkpoints and Merkle proofs.

use std::io::Cursor;

use ledger_audit::{events, export, proofs};
use ledger_core::checkpoint::Checkpoint;
use ledger_core::merkle;
use ledger_core::*;
use ledger_store::FailureReason;

use crate::fixture::{tok, Fixture, T0};

/// A rotation story with a clock that moves an hour per step.
fn story() -> Fixture {
    let mut f = Fixture::with_options(|o| o.snapshot_every = 5);
    f.create("db/prod", Some("p1")).unwrap();
    f.clock.advance(3_600_000);
    f.create("other", Some("o1")).unwrap();
    f.clock.advance(3_600_000);
    f.put("db/prod", &tok(1), "p2", Some(&["AWSPENDING"])).unwrap();
    f.clock.advance(3_600_000);
    let v1 = f.created[0].clone();
    f.stage("db/prod", "AWSCURRENT", Some(&tok(1)), Some(&v1)).unwrap();
    f.clock.advance(3_600_000);
    f.put("other", &tok(2), "o2", None).unwrap();
    f.clock.advance(3_600_000);
    f.put("db/prod", &tok(3), "p3", None).unwrap();
    f
}

/// Every event of every secret `id` names (in all regions), in log order.
fn history(tree: &dyn ledger_store::LogStore, id: &str) -> Vec<events::HistoryEntry> {
    let mut entries = Vec::new();
    for secret in events::secret_identities(tree, id).unwrap() {
        entries.extend(events::secret_history(tree, secret.uid).unwrap());
    }
    entries
}

fn resolve_at(tree: &dyn ledger_store::LogStore, id: &str, seq: u64) -> Option<SecretState> {
    events::resolve_at(tree, &events::secret_identities(tree, id).unwrap(), seq).unwrap()
}

#[test]
fn history_lists_every_event_of_one_secret_in_order() {
    let f = story();
    let entries = history(f.ledger().store(), "db/prod");
    let events: Vec<&str> = entries.iter().map(|e| e.event).collect();
    assert_eq!(events[0], "SecretCreated");
    assert!(entries.windows(2).all(|w| w[0].seq < w[1].seq));
    assert!(entries.iter().all(|e| e.secret == entries[0].secret), "no event of another secret");
    let moves: Vec<String> = entries.iter().filter(|e| e.event == "LabelMoved").map(|e| e.change.clone()).collect();
    assert!(moves.contains(&format!("AWSCURRENT: {} → {}", f.created[0], tok(1))), "{moves:?}");
    assert!(entries.iter().all(|e| e.actor == "local" && !e.request_id.is_empty()));
    // By full ARN too; an unknown secret has no history.
    let arn = f.ledger().describe_secret(&f.scope, "db/prod").unwrap().arn;
    assert_eq!(history(f.ledger().store(), &arn), entries);
    assert!(history(f.ledger().store(), "nope").is_empty());
    // No value ever appears in a history line.
    assert!(entries.iter().all(|e| !e.change.contains("p1") && !e.change.contains("p2")));
}

#[test]
fn history_survives_purge_and_recreation() {
    let mut f = story();
    f.exec(Command::DeleteSecret(DeleteSecret {
        secret_id: "db/prod".into(),
        force_delete_without_recovery: Some(true),
        ..DeleteSecret::default()
    }))
    .unwrap();
    f.create("db/prod", Some("fresh")).unwrap();
    let ids = events::secret_identities(f.ledger().store(), "db/prod").unwrap();
    assert_eq!(ids.len(), 2, "both lives of the name are two secrets");
    assert!(ids[0].arn != ids[1].arn && ids[0].created_seq < ids[1].created_seq);
    let entries = history(f.ledger().store(), "db/prod");
    let uids: std::collections::BTreeSet<_> = entries.iter().map(|e| e.secret).collect();
    assert_eq!(uids.len(), 2, "both lives of the name");
    assert!(entries.iter().any(|e| e.event == "SecretPurged"));
}

#[test]
fn state_as_of_seq_and_time() {
    let f = story();
    let tree = f.ledger().store();
    let (head, _) = f.ledger().head();
    // Full state at every seq equals a replay from genesis, whatever snapshot it starts from.
    for seq in 0..=head {
        let from_snapshots = ledger_store::state_at(tree, seq).unwrap();
        let mut replay = State::default();
        for s in 1..=seq {
            let r = ledger_core::codec::decode_record(&tree.record(s).unwrap().unwrap()).unwrap();
            evolve(&mut replay, s, r.recorded_at_ms, &r.event).unwrap();
        }
        assert_eq!(from_snapshots, replay, "seq {seq}");
        // One secret, replayed from its own index, equals its entry in the full state.
        for name in ["db/prod", "other"] {
            let one = resolve_at(tree, name, seq);
            assert_eq!(one.as_ref(), replay.by_name("us-east-1", name), "{name} at seq {seq}");
        }
    }
    // Time → seq: before the first event, exactly at an event, between events, after the last.
    assert_eq!(events::seq_at_time(tree, T0 - 1).unwrap(), 0);
    let at_rotation = events::seq_at_time(tree, T0 + 3 * 3_600_000).unwrap();
    let secret = resolve_at(tree, "db/prod", at_rotation).unwrap();
    assert_eq!(secret.holder(AWSCURRENT), Some(tok(1).as_str()));
    let before_rotation = events::seq_at_time(tree, T0 + 3 * 3_600_000 - 1).unwrap();
    let secret = resolve_at(tree, "db/prod", before_rotation).unwrap();
    assert_eq!(secret.holder(AWSCURRENT), Some(f.created[0].as_str()));
    assert_eq!(events::seq_at_time(tree, i64::MAX).unwrap(), head);
    // The value that was current then, opened with the master key.
    let value = events::open_version_value(tree, &crate::fixture::master(), &secret, &f.created[0]).unwrap();
    assert_eq!(value, Some(SecretValue::string("p1")));
}

fn export_lines(f: &Fixture) -> Vec<String> {
    let mut out = Vec::new();
    export::export(f.ledger().store(), &mut out, "test", T0, &mut |_, _| {}).unwrap();
    String::from_utf8(out).unwrap().lines().map(String::from).collect()
}

fn verify_lines(
    lines: &[String],
    trusted: Option<&Checkpoint>,
) -> Result<ledger_store::VerifyReport, ledger_store::VerifyFailure> {
    let text = lines.join("\n");
    export::verify_export(&mut Cursor::new(text.into_bytes()), trusted, &mut |_, _| {}).unwrap()
}

#[test]
fn export_verifies_offline_and_matches_the_data_dir() {
    let f = story();
    let lines = export_lines(&f);
    let (head, head_hash) = f.ledger().head();
    assert_eq!(lines.len() as u64, head + 2, "header + events + checkpoint");
    let report = verify_lines(&lines, None).unwrap();
    assert_eq!(report.events, head);
    assert_eq!(report.head_hash, head_hash);
    let live = f.ledger().verify(&mut |_, _| {}).unwrap().unwrap();
    assert_eq!(report.merkle_root, live.merkle_root);
    // No plaintext in the export.
    let text = lines.join("\n");
    for secret in ["p1", "p2", "p3", "o1", "o2"] {
        assert!(!text.contains(&format!("\"{secret}\"")));
    }
    // Against a checkpoint taken earlier: the export extends it.
    let cp = proofs::checkpoint(f.ledger().store(), "test", T0).unwrap();
    assert!(verify_lines(&lines, Some(&cp)).is_ok());
}

fn tampered(lines: &[String], edit: impl FnOnce(&mut Vec<String>)) -> Vec<String> {
    let mut lines = lines.to_vec();
    edit(&mut lines);
    lines
}

fn record_line(lines: &[String], seq: usize) -> serde_json::Value {
    serde_json::from_str(&lines[seq]).unwrap()
}

#[test]
fn export_tampering_is_caught_with_the_first_bad_seq() {
    let f = story();
    let lines = export_lines(&f);
    let n = lines.len() - 2;
    // Flip one bit inside record 4.
    let flipped = tampered(&lines, |l| {
        let mut v = record_line(l, 4);
        use base64::Engine;
        let mut bytes = base64::engine::general_purpose::STANDARD.decode(v["record"].as_str().unwrap()).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x10;
        v["record"] = base64::engine::general_purpose::STANDARD.encode(bytes).into();
        l[4] = v.to_string();
    });
    let fail = verify_lines(&flipped, None).unwrap_err();
    assert_eq!(fail.seq, 4, "{fail}");
    // Swap two events.
    let swapped = tampered(&lines, |l| l.swap(3, 4));
    assert_eq!(verify_lines(&swapped, None).unwrap_err().seq, 3);
    // Delete a middle event.
    let deleted = tampered(&lines, |l| {
        l.remove(5);
    });
    assert_eq!(verify_lines(&deleted, None).unwrap_err().reason, FailureReason::Gap { expected: 5, found: 6 });
    // Splice in a valid event from another ledger.
    let other = export_lines(&story());
    let spliced = tampered(&lines, |l| l[2] = other[2].clone());
    assert_eq!(verify_lines(&spliced, None).unwrap_err().seq, 2);
    // Truncate the tail with its checkpoint: undetectable without a checkpoint kept elsewhere…
    let cp = proofs::checkpoint(f.ledger().store(), "test", T0).unwrap();
    let mut cut = lines[..n - 1].to_vec();
    let cut_cp = {
        let leaves: Vec<ChainHash> = (1..n - 1).map(|s| ChainHash(hex32(&record_line(&lines, s)["hash"]))).collect();
        let root = merkle::tree_root(&leaves[..], leaves.len() as u64).unwrap();
        let mut c = cp.clone();
        c.size = (n - 2) as u64;
        c.merkle_root = root;
        c.head_hash = *leaves.last().unwrap();
        c
    };
    let mut closing: serde_json::Value = serde_json::from_str(&cut_cp.to_json()).unwrap();
    closing["type"] = "checkpoint".into();
    cut.push(closing.to_string());
    assert!(verify_lines(&cut, None).is_ok(), "a consistent cut verifies on its own");
    // …and caught with it.
    let fail = verify_lines(&cut, Some(&cp)).unwrap_err();
    assert_eq!(fail.reason, FailureReason::Truncated { expected: n as u64, found: (n - 2) as u64 });
    // A missing closing checkpoint is a truncation too.
    assert!(matches!(verify_lines(&lines[..n], None).unwrap_err().reason, FailureReason::NoClosingCheckpoint { .. }));
    // Edit a LabelMoved and recompute its hash: the rules and the next link catch it.
    let seq = (1..=n).find(|&s| record_line(&lines, s)["event"] == "LabelMoved").unwrap();
    let forged = tampered(&lines, |l| {
        use base64::Engine;
        let mut v = record_line(l, seq);
        let bytes = base64::engine::general_purpose::STANDARD.decode(v["record"].as_str().unwrap()).unwrap();
        let r = ledger_core::codec::decode_record(&bytes).unwrap();
        let Event::LabelMoved { secret, label, to, .. } = r.event else { unreachable!() };
        let event = Event::LabelMoved { secret, label, from: to.clone(), to };
        let (_, bytes) = ledger_core::codec::seal_record(
            r.seq,
            r.prev_hash,
            r.recorded_at_ms,
            &r.actor,
            &r.request_id,
            &r.operation,
            event,
        );
        v["record"] = base64::engine::general_purpose::STANDARD.encode(bytes).into();
        l[seq] = v.to_string();
    });
    let fail = verify_lines(&forged, None).unwrap_err();
    assert_eq!(fail.seq, seq as u64, "{fail}");
    // The readable envelope must say what the record says: an edited actor is caught.
    let relabelled = tampered(&lines, |l| {
        let mut v = record_line(l, 2);
        v["actor"] = "mallory".into();
        l[2] = v.to_string();
    });
    assert_eq!(verify_lines(&relabelled, None).unwrap_err().reason, FailureReason::EnvelopeMismatch("actor".into()));
    // Garbage lines are a typed failure, never a panic.
    let garbage = tampered(&lines, |l| l[3] = "{not json".into());
    assert!(matches!(verify_lines(&garbage, None).unwrap_err().reason, FailureReason::Undecodable(_)));
}

fn hex32(v: &serde_json::Value) -> [u8; 32] {
    let mut out = [0u8; 32];
    hex::decode_to_slice(v.as_str().unwrap(), &mut out).unwrap();
    out
}

#[test]
fn proofs_verify_against_checkpoints() {
    let mut f = story();
    let tree = f.ledger().store();
    let old = proofs::checkpoint(tree, "test", T0).unwrap();
    for seq in 1..=old.size {
        let proof = proofs::inclusion_proof(tree, seq, old.size).unwrap();
        let leaf = merkle::leaf_hash(&tree.record_hash(seq).unwrap());
        assert!(merkle::verify_inclusion(&leaf, seq - 1, old.size, &proof, &old.merkle_root), "seq {seq}");
        assert!(!merkle::verify_inclusion(&leaf, seq % old.size, old.size, &proof, &old.merkle_root) || old.size == 1);
    }
    f.put("other", &tok(9), "o3", None).unwrap();
    let tree = f.ledger().store();
    let new = proofs::checkpoint(tree, "test", T0).unwrap();
    let proof = proofs::consistency_proof(tree, old.size, new.size).unwrap();
    assert!(merkle::verify_consistency(old.size, new.size, &old.merkle_root, &new.merkle_root, &proof));
    let mut forged_old = old.clone();
    forged_old.merkle_root[0] ^= 1;
    assert!(!merkle::verify_consistency(old.size, new.size, &forged_old.merkle_root, &new.merkle_root, &proof));
}

#[test]
fn rebuild_restores_derived_data() {
    let f = story();
    // Verified first: the writer's last projection snapshot is stored before the rebuild
    // replaces the derived data (it writes snapshots on a thread of its own).
    f.verify_ok();
    let tree = f.ledger().store();
    let before = history(tree, "db/prod");
    let n = ledger_store::rebuild_derived(tree, 5, &mut |_, _| {}).unwrap();
    assert_eq!(n, f.ledger().head().0);
    assert_eq!(history(tree, "db/prod"), before);
    f.verify_ok();
}

#[test]
fn chunked_merkle_roots_and_proofs_match_the_leaves() {
    // > 3 chunks of 1,024 leaves, then a few more, with the derived chunk roots in play.
    let mut f = Fixture::with_options(|o| o.unsafe_no_sync = true);
    for s in 0..16 {
        f.create(&format!("m{s}"), Some("v")).unwrap();
    }
    for i in 0..1_150 {
        f.put(&format!("m{}", i % 16), &tok(i), "x", None).unwrap();
    }
    let tree = f.ledger().store();
    let (size, _) = f.ledger().head();
    assert!(size > 3 * 1024, "{size}");
    let leaves: Vec<ChainHash> = (1..=size).map(|s| tree.record_hash(s).unwrap()).collect();
    for n in [size, 2048, 2049, 3 * 1024 + 1, 4000.min(size)] {
        let expected = merkle::tree_root(&leaves[..], n).unwrap();
        assert_eq!(proofs::merkle_root(tree, n).unwrap(), expected, "root of {n}");
        for seq in [1, 2, 1023, 1024, 1025, 2048, n / 2, n] {
            let proof = proofs::inclusion_proof(tree, seq, n).unwrap();
            assert_eq!(proof, merkle::inclusion_proof(&leaves[..], seq - 1, n).unwrap(), "proof of {seq} in {n}");
        }
        for old in [1, 1024, 1500, 2048, n - 1] {
            let proof = proofs::consistency_proof(tree, old, n).unwrap();
            assert_eq!(proof, merkle::consistency_proof(&leaves[..], old, n).unwrap(), "{old} → {n}");
        }
    }
    // After a restart the writer continues the chunk in progress; after a rebuild the chunk
    // roots are the same.
    f.reopen();
    for i in 0..400 {
        f.put(&format!("m{}", i % 16), &tok(10_000 + i), "y", None).unwrap();
    }
    let tree = f.ledger().store();
    let (size, _) = f.ledger().head();
    let leaves: Vec<ChainHash> = (1..=size).map(|s| tree.record_hash(s).unwrap()).collect();
    assert_eq!(proofs::merkle_root(tree, size).unwrap(), merkle::tree_root(&leaves[..], size).unwrap());
    ledger_store::rebuild_derived(tree, 100_000, &mut |_, _| {}).unwrap();
    assert_eq!(proofs::merkle_root(tree, size).unwrap(), merkle::tree_root(&leaves[..], size).unwrap());
    let report = f.ledger().verify(&mut |_, _| {}).unwrap().unwrap();
    assert_eq!(report.merkle_root, merkle::tree_root(&leaves[..], size).unwrap());
}
