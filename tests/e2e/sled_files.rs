//! Raw bit flips in sled's own files: opening gives a typed error or a ledger whose verify
//! reports the damage (or proves it harmless), never a panic and never silently wrong data; and
//! what an unfinished snapshot write leaves in sled.

use ledger_core::SecretValue;
use ledger_store::Ledger;
use rand_core::{RngCore, SeedableRng};

use crate::fixture::{master, tok, Fixture};

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn bit_flips_in_sled_files_never_panic() {
    let mut f = Fixture::new();
    f.create("flip", Some("v0")).unwrap();
    for i in 0..40 {
        f.put("flip", &tok(i), &format!("value-{i}"), None).unwrap();
    }
    let (head, head_hash) = f.ledger().head();
    f.ledger.take().unwrap().close().unwrap();
    let db_len = std::fs::metadata(f.dir.path().join("db")).unwrap().len();
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(0x5eed);
    let (mut refused, mut caught, mut harmless) = (0, 0, 0);
    for _ in 0..24 {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(f.dir.path(), copy.path());
        let mut bytes = std::fs::read(copy.path().join("db")).unwrap();
        for _ in 0..1 + rng.next_u32() % 8 {
            let at = usize::try_from(rng.next_u64() % db_len).expect("a file in memory");
            bytes[at] ^= 1 << (rng.next_u32() % 8);
        }
        std::fs::write(copy.path().join("db"), bytes).unwrap();
        let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Ledger::open(copy.path(), master(), f.options.clone())
        }));
        let opened = opened.expect("Ledger::open must not panic on damaged files");
        match opened {
            Err(_) => refused += 1,
            Ok(ledger) => match ledger.verify(&mut |_, _| {}).unwrap() {
                Err(_) => caught += 1,
                Ok(report) => {
                    // Verified: then it is the same log, and its values still read back.
                    assert_eq!((report.events, report.head_hash), (head, head_hash));
                    let scope = ledger_core::Scope::new("us-east-1", "123456789012");
                    let q = ledger_core::query::GetSecretValue { secret_id: "flip".into(), ..Default::default() };
                    let value = ledger.get_secret_value(&scope, &q).unwrap().unwrap().value;
                    assert_eq!(value, SecretValue::string("value-39"));
                    harmless += 1;
                }
            },
        }
    }
    eprintln!("bit flips: {refused} refused at open, {caught} caught by verify, {harmless} harmless");
}

/// A kill while sled writes its page-table snapshot leaves `snap.<lsn>.generating`; sled 0.34
/// then refuses to open (spacejam/sled#1527, found by the crash loop). The ledger removes it.
#[test]
fn unfinished_sled_snapshot_does_not_block_open() {
    let mut f = Fixture::new();
    f.create("s", Some("v0")).unwrap();
    for i in 0..20 {
        f.put("s", &tok(i), &format!("value-{i}"), None).unwrap();
    }
    let head = f.ledger().head();
    f.ledger.take().unwrap().close().unwrap();
    // What a kill mid-write leaves: a snapshot file cut short.
    let partial = f.dir.path().join("snap.00000000FFFFFFFF.generating");
    std::fs::write(&partial, [0x5a; 100]).unwrap();
    {
        // sled alone refuses this data dir (or, on other versions, ignores the file).
        let copy = tempfile::tempdir().unwrap();
        copy_dir(f.dir.path(), copy.path());
        if let Err(e) = sled::open(copy.path()) {
            eprintln!("sled alone: {e}");
        }
    }
    let ledger = Ledger::open(f.dir.path(), master(), f.options.clone()).expect("opens despite the partial snapshot");
    assert_eq!(ledger.head(), head);
    assert!(!partial.exists());
}

/// A snapshot is written in several batches, its piece 0 last; pieces left without a piece 0 by
/// a crash name no snapshot and are removed by the next snapshot write.
#[test]
fn pieces_of_an_unfinished_snapshot_are_removed_by_the_next() {
    use ledger_store::LogStore;
    let dir = tempfile::tempdir().unwrap();
    let store = ledger_store::SledStore::open(dir.path(), ledger_store::SledOptions::streaming()).unwrap();
    store.init_projection_format().unwrap();
    let piece = |seq: u64, n: u32| {
        let mut k = vec![ledger_store::layout::SNAPSHOT];
        k.extend_from_slice(&seq.to_be_bytes());
        k.extend_from_slice(&n.to_be_bytes());
        k
    };
    // A write stopped after two batches of pieces: no piece 0, so no snapshot.
    for n in 1..=130 {
        store.raw_tree().insert(piece(50, n), vec![7u8; 100]).unwrap();
    }
    assert!(store.snapshot_seqs().unwrap().is_empty());
    let encoded = vec![9u8; 6 * 1024 * 70 + 5];
    store.put_snapshot(100, &encoded).unwrap();
    assert_eq!(store.snapshot_seqs().unwrap(), [100]);
    assert_eq!(store.snapshot(100).unwrap().unwrap(), encoded);
    assert_eq!(store.raw_tree().scan_prefix(&piece(50, 0)[..9]).count(), 0, "orphan pieces left");
}

/// A snapshot read as a stream (verify compares it so, without holding it whole) ends cleanly
/// only when it is intact: a wrong digest or a missing piece fails the read.
#[test]
fn a_snapshot_stream_ends_cleanly_only_when_intact() {
    use ledger_store::LogStore;
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let store = ledger_store::SledStore::open(dir.path(), ledger_store::SledOptions::streaming()).unwrap();
    store.init_projection_format().unwrap();
    let encoded: Vec<u8> = (0..6 * 1024 * 3 + 100).map(|i| (i % 251) as u8).collect();
    let read_all = |store: &ledger_store::SledStore| -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        store.snapshot_stream(7).unwrap().unwrap().read_to_end(&mut out)?;
        Ok(out)
    };
    store.put_snapshot(7, &encoded).unwrap();
    assert_eq!(read_all(&store).unwrap(), encoded);
    let key = |n: u32| {
        let mut k = vec![ledger_store::layout::SNAPSHOT];
        k.extend_from_slice(&7u64.to_be_bytes());
        k.extend_from_slice(&n.to_be_bytes());
        k
    };
    // A wrong digest in piece 0.
    let head = store.raw_tree().get(key(0)).unwrap().unwrap();
    let mut forged = head.to_vec();
    forged[0] ^= 1;
    store.raw_tree().insert(key(0), forged).unwrap();
    assert!(read_all(&store).is_err());
    store.raw_tree().insert(key(0), head).unwrap();
    assert!(read_all(&store).is_ok());
    // A missing piece.
    store.raw_tree().remove(key(2)).unwrap();
    assert!(read_all(&store).is_err());
}
