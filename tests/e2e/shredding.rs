//! Crypto-shredding on the bytes: once a purge is acknowledged, no file under the data dir
//! holds the purged secret's wrapped data key (sled's files included), so a copy of the data dir
//! together with the master key cannot decrypt the purged values. The scan is shown to find
//! the key before the purge, so it can fail.

use std::path::Path;

use ledger_audit::events;
use ledger_core::*;
use ledger_store::{keyfile::KeyFile, Ledger, LogStore};

use crate::fixture::{master, Fixture};

/// Every file under `dir` that contains `needle`.
pub(crate) fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else {
                let bytes = std::fs::read(entry.path()).unwrap();
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    found.push(entry.file_name().to_string_lossy().into_owned());
                }
            }
        }
    }
    found
}

#[test]
fn a_purged_data_key_is_on_no_file_of_the_data_dir() {
    let mut f = Fixture::new();
    // Neighbours, so sled's pages hold more than the one secret.
    for i in 0..30 {
        f.create(&format!("neighbour/{i}"), Some("n")).unwrap();
    }
    f.create("gone", Some("top secret")).unwrap();
    let gone = f.ledger().with_state(|s| s.by_name("us-east-1", "gone").unwrap().clone());
    let version = f.created.last().unwrap().clone();
    let wrapped = KeyFile::read(f.dir.path()).unwrap().unwrap().keys[&gone.uid.0].clone();
    // The scan finds the wrapped key where it is: in the key file's journal (it was added after
    // the file was first written), and nowhere in sled's files.
    assert_eq!(files_containing(f.dir.path(), &wrapped.ciphertext), ["keys.log"]);
    // The raw data key is on no file, ever.
    let raw = *crypto::unwrap_key(&master(), gone.uid, &wrapped).unwrap().expose_bytes();
    assert!(files_containing(f.dir.path(), &raw).is_empty());
    assert_eq!(
        events::open_version_value(f.ledger().store(), &master(), &gone, &version).unwrap(),
        Some(SecretValue::string("top secret"))
    );

    f.exec(Command::DeleteSecret(DeleteSecret {
        secret_id: "gone".into(),
        force_delete_without_recovery: Some(true),
        ..DeleteSecret::default()
    }))
    .unwrap();
    // Acknowledged: no file holds it any more (the journal was merged into the file without it
    // and deleted), before and after a restart.
    assert!(files_containing(f.dir.path(), &wrapped.ciphertext).is_empty());
    assert!(!f.dir.path().join("keys.log").exists());
    f.reopen();
    assert!(files_containing(f.dir.path(), &wrapped.ciphertext).is_empty());
    assert!(files_containing(f.dir.path(), &raw).is_empty());

    // A copy of the data dir, with the master key, cannot open the purged value: its events
    // (and sealed ciphertext) are all there, its key is not.
    let copy = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(f.dir.path()).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), copy.path().join(entry.file_name())).unwrap();
        }
    }
    let copy = ledger_store::SledStore::open_existing(copy.path()).unwrap();
    assert_eq!(events::open_version_value(&copy, &master(), &gone, &version).unwrap(), None);
    f.verify_ok();
}

#[test]
fn a_data_dir_whose_key_file_is_gone_is_refused_and_left_alone() {
    let mut f = Fixture::new();
    f.create("kept", Some("v")).unwrap();
    f.ledger = None;
    let keys = f.dir.path().join("keys");
    let saved = std::fs::read(&keys).unwrap();
    std::fs::remove_file(&keys).unwrap();
    let Err(err) = Ledger::open(f.dir.path(), master(), f.options.clone()) else { panic!("opened without keys") };
    assert!(err.to_string().contains("no data key"), "{err}");
    assert!(!keys.exists(), "a refused open writes no key file");
    // Put back, the same data dir opens and reads.
    std::fs::write(&keys, saved).unwrap();
    f.ledger = Some(Ledger::open(f.dir.path(), master(), f.options.clone()).unwrap());
    assert_eq!(f.ledger().with_state(|s| s.secrets().count()), 1);
}

/// A data dir of the first layout kept its data keys inside sled. Opening it moves them into the
/// key file and drops them from sled, but sled may keep old copies in its files: a purge after
/// the upgrade removes the key from the key file and yet a copy is still found in `db`. That is
/// what the open warns about, and `migrate` into a fresh data dir is the cure this test shows.
#[test]
fn an_upgraded_data_dir_is_made_clean_by_a_migrate() {
    let dir = crate::old_format::copy_data_dir();
    let legacy: std::collections::HashMap<u64, crypto::WrappedKey> =
        ledger_store::SledStore::open_existing(dir.path()).unwrap().legacy_keys().unwrap().into_iter().collect();
    let clock = std::sync::Arc::new(ledger_store::ManualClock::new(crate::fixture::T0 + 3_600_000));
    let options = ledger_store::LedgerOptions { clock, ..ledger_store::LedgerOptions::default() };
    let ledger = Ledger::open(dir.path(), master(), options.clone()).unwrap();
    let blob = ledger.with_state(|s| s.by_name("us-east-1", "app/blob").unwrap().uid);
    let wrapped = legacy[&blob.0].ciphertext.clone();
    let scope = Scope::new("us-east-1", "123456789012");
    let purge = Command::DeleteSecret(DeleteSecret {
        secret_id: "app/blob".into(),
        force_delete_without_recovery: Some(true),
        ..DeleteSecret::default()
    });
    ledger.execute(purge, &ledger_store::RequestMeta::local(scope.clone())).unwrap().unwrap();
    drop(ledger);
    // Gone from the key file, still in sled's files: the limitation the open warns about.
    assert_eq!(files_containing(dir.path(), &wrapped), ["db"]);

    let clean = tempfile::tempdir().unwrap();
    let to = clean.path().join("data");
    {
        let from = ledger_store::SledStore::open_existing(dir.path()).unwrap();
        let into = ledger_store::SledStore::open(&to, ledger_store::SledOptions::streaming()).unwrap();
        ledger_store::copy_log(&from, &into, &mut |_, _| {}).unwrap();
    }
    assert!(files_containing(&to, &wrapped).is_empty());
    // Made owner-only, whatever the umask.
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&to).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o700);
    let copy = Ledger::open(&to, master(), options).unwrap();
    assert!(copy.verify(&mut |_, _| {}).unwrap().is_ok());
    let q = query::GetSecretValue { secret_id: "app/db".into(), ..Default::default() };
    assert_eq!(copy.get_secret_value(&scope, &q).unwrap().unwrap().value, SecretValue::string("db-3"));
    assert!(copy.describe_secret(&scope, "app/blob").is_err());
}

/// A crash in the middle of appending a key to `keys.log` leaves a torn entry (its group never
/// became durable). The next append must follow the last whole entry, or the key it adds would
/// sit behind the tear, never be read, and its secret refuse to open.
#[test]
fn a_key_added_after_a_torn_journal_entry_is_kept() {
    let mut f = Fixture::new();
    f.create("first", Some("one")).unwrap();
    f.create("second", Some("two")).unwrap();
    f.ledger = None;
    let journal = f.dir.path().join("keys.log");
    let mut torn = std::fs::read(&journal).unwrap();
    torn.extend_from_slice(&[0x50, 0, 0, 0, 1, 2, 3]);
    std::fs::write(&journal, &torn).unwrap();
    f.ledger = Some(Ledger::open(f.dir.path(), master(), f.options.clone()).unwrap());
    f.create("third", Some("three")).unwrap();
    f.reopen();
    assert_eq!(f.get_string("first").unwrap(), "one");
    assert_eq!(f.get_string("second").unwrap(), "two");
    assert_eq!(f.get_string("third").unwrap(), "three");
    f.verify_ok();
}
