//! `rotate-master-key`: every data key (live and scheduled for deletion) re-wrapped under the
//! next key, the retired wrapping on no file of the data dir, the old key opening nothing, the
//! rotation in the log; and a rotation stopped after any step (as a kill would) leaves a data
//! dir that opens with the old or the new key, and a second rotation then succeeds.

use std::path::Path;

use ledger_audit::events;
use ledger_core::*;
use ledger_store::keyfile::KeyFile;
use ledger_store::master_key as files;
use ledger_store::rekey::{rotate_master_key, RekeyError, Step};
use ledger_store::{Ledger, LedgerOptions, RequestMeta, StoreError};

use crate::shredding::files_containing;

fn scope() -> Scope {
    Scope::new("us-east-1", "123456789012")
}

fn run(ledger: &Ledger, cmd: Command) {
    ledger.execute(cmd, &RequestMeta::local(scope())).unwrap().unwrap();
}

fn value(ledger: &Ledger, id: &str) -> SecretValue {
    let q = query::GetSecretValue { secret_id: id.into(), ..Default::default() };
    ledger.get_secret_value(&scope(), &q).unwrap().unwrap().value
}

fn create(name: &str, v: &str) -> Command {
    Command::CreateSecret(CreateSecret {
        name: name.into(),
        client_request_token: Some(format!("{name:0>32}")),
        value: Some(SecretValue::string(v)),
        ..CreateSecret::default()
    })
}

/// A data dir under key 1 with a live secret, one scheduled for deletion and one purged.
fn data_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let master = files::master_key(None, dir.path()).unwrap().0;
    let ledger = Ledger::open(dir.path(), master, LedgerOptions::default()).unwrap();
    for (name, v) in [("live", "l-1"), ("scheduled", "s-1"), ("purged", "p-1")] {
        run(&ledger, create(name, v));
    }
    let delete = |id: &str, force| DeleteSecret {
        secret_id: id.into(),
        force_delete_without_recovery: force,
        ..DeleteSecret::default()
    };
    run(&ledger, Command::DeleteSecret(delete("scheduled", None)));
    run(&ledger, Command::DeleteSecret(delete("purged", Some(true))));
    ledger.close().unwrap();
    dir
}

fn open(dir: &Path) -> Ledger {
    let master = files::master_key(None, dir).unwrap().0;
    Ledger::open(dir, master, LedgerOptions::default()).unwrap()
}

fn rotations(ledger: &Ledger) -> Vec<String> {
    let (head, _) = ledger.store().head().unwrap();
    events::log_history(ledger.store(), 1, head, &|r| r.event.name() == "MasterKeyRotated")
        .unwrap()
        .into_iter()
        .map(|e| e.change)
        .collect()
}

#[test]
fn rotation_rewraps_every_key_and_the_old_key_opens_nothing() {
    let dir = data_dir();
    let old_text = std::fs::read_to_string(dir.path().join("master.key")).unwrap();
    let before = KeyFile::read(dir.path()).unwrap().unwrap();
    assert_eq!((before.master_key_id, before.keys.len()), (1, 2), "live and scheduled keep keys");
    // The scan finds the old wrapping where it is, so it can fail.
    for wrapped in before.keys.values() {
        assert_eq!(files_containing(dir.path(), &wrapped.ciphertext), ["keys"]);
    }

    assert_eq!(rotate_master_key(None, dir.path(), &mut |_| true).unwrap(), (1, 2));

    let after = KeyFile::read(dir.path()).unwrap().unwrap();
    assert_eq!((after.master_key_id, after.keys.len()), (2, 2));
    for wrapped in before.keys.values() {
        assert!(files_containing(dir.path(), &wrapped.ciphertext).is_empty(), "retired wrapping left on disk");
    }
    assert!(std::fs::read_to_string(dir.path().join("master.key")).unwrap().starts_with("2:"));
    assert!(!dir.path().join(".master.key.next").exists());
    // The old key opens nothing: neither the ledger nor any single data key.
    let old = files::parse_master_key(&old_text, Path::new("old")).unwrap();
    for (uid, wrapped) in &after.keys {
        assert!(crypto::unwrap_key(&old, SecretUid(*uid), wrapped).is_none());
    }
    let old = files::parse_master_key(&old_text, Path::new("old")).unwrap();
    assert!(matches!(Ledger::open(dir.path(), old, LedgerOptions::default()), Err(StoreError::WrongMasterKey)));

    // The new key reads the live secret, and the scheduled one once restored; the log shows the
    // rotation once and verifies.
    let ledger = open(dir.path());
    assert_eq!(value(&ledger, "live"), SecretValue::string("l-1"));
    run(&ledger, Command::RestoreSecret(RestoreSecret { secret_id: "scheduled".into() }));
    assert_eq!(value(&ledger, "scheduled"), SecretValue::string("s-1"));
    assert_eq!(rotations(&ledger), ["master key rotated from key 1 to key 2"]);
    ledger.verify(&mut |_, _| {}).unwrap().unwrap_or_else(|f| panic!("{f}"));
    ledger.close().unwrap();

    // Again: key 3, and the log has both.
    assert_eq!(rotate_master_key(None, dir.path(), &mut |_| true).unwrap(), (2, 3));
    let ledger = open(dir.path());
    assert_eq!(rotations(&ledger).len(), 2);
    assert_eq!(value(&ledger, "scheduled"), SecretValue::string("s-1"));
}

#[test]
fn a_rotation_stopped_after_any_step_leaves_a_data_dir_that_opens() {
    let steps = [Step::Checked, Step::NextKeyWritten, Step::KeysRewrapped, Step::KeyReplaced, Step::Recorded];
    for (i, &stop) in steps.iter().enumerate() {
        let dir = data_dir();
        let err = rotate_master_key(None, dir.path(), &mut |s| s != stop).unwrap_err();
        assert!(matches!(err, RekeyError::Stopped(s) if s == stop), "{err}");
        // The next start picks the key that opens the data dir, finishing what was committed.
        let master = files::master_key(None, dir.path()).unwrap().0;
        let committed = i >= 2;
        assert_eq!(master.id, if committed { 2 } else { 1 }, "stopped after {stop:?}");
        let ledger = Ledger::open(dir.path(), master, LedgerOptions::default()).unwrap();
        assert_eq!(value(&ledger, "live"), SecretValue::string("l-1"));
        assert_eq!(rotations(&ledger).len(), usize::from(committed), "stopped after {stop:?}");
        ledger.close().unwrap();
        assert!(!dir.path().join(".master.key.next").exists(), "stopped after {stop:?}");
        // And a rotation from there succeeds.
        let from = if committed { 2 } else { 1 };
        assert_eq!(rotate_master_key(None, dir.path(), &mut |_| true).unwrap(), (from, from + 1));
        let ledger = open(dir.path());
        assert_eq!(value(&ledger, "live"), SecretValue::string("l-1"));
        assert_eq!(rotations(&ledger).len(), usize::from(committed) + 1);
    }
}

#[test]
fn a_master_key_file_outside_the_data_dir_is_created_and_rotated_there() {
    let keys = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = keys.path().join("sl.key");
    let (master, created) = files::master_key(Some(&path), dir.path()).unwrap();
    assert_eq!(created, Some(path.clone()));
    assert!(!dir.path().join("master.key").exists());
    let ledger = Ledger::open(dir.path(), master, LedgerOptions::default()).unwrap();
    run(&ledger, create("x", "v"));
    ledger.close().unwrap();
    assert_eq!(rotate_master_key(Some(&path), dir.path(), &mut |_| true).unwrap(), (1, 2));
    let master = files::master_key(Some(&path), dir.path()).unwrap().0;
    assert_eq!(master.id, 2);
    let ledger = Ledger::open(dir.path(), master, LedgerOptions::default()).unwrap();
    assert_eq!(value(&ledger, "x"), SecretValue::string("v"));
    // With the key gone, a data dir that holds keys is not given a fresh one.
    ledger.close().unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(files::master_key(Some(&path), dir.path()).is_err());
    assert!(!path.exists());
}
