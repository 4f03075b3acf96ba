//! Logs written by an older format keep working after the format moves on: the data dir and
//! the export in `tests/data/format-1/` were written at `format_version` 1 (by
//! [`write_format_1_fixture`], run once with the format-1 code; re-running it now would write
//! the current format, so it is ignored and only documents how the files came to be). Each test
//! works on a copy, so the fixture is never changed.

use std::path::{Path, PathBuf};

use ledger_audit::export;
use ledger_core::*;
use ledger_store::Ledger;

use crate::fixture::{master, tok, Fixture};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data").join("format-1")
}

/// Copies the fixture data dir into a temp dir.
pub(crate) fn copy_data_dir() -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    let from = fixture_dir().join("data");
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        std::fs::create_dir_all(to.path().join(&rel)).unwrap();
        for entry in std::fs::read_dir(from.join(&rel)).unwrap() {
            let entry = entry.unwrap();
            let rel = rel.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                stack.push(rel);
            } else {
                std::fs::copy(entry.path(), to.path().join(&rel)).unwrap();
            }
        }
    }
    to
}

/// Writes `tests/data/format-1/`: two regions, puts with and without stages, a rotation-style
/// promotion, tags, description, binary value, a scheduled deletion and a restore, a purge and
/// a re-created name; snapshots every 4 events.
#[test]
#[ignore = "wrote the format-1 fixture once; re-running would write the current format"]
fn write_format_1_fixture() {
    let mut f = Fixture::with_options(|o| o.snapshot_every = 4);
    f.create("app/db", Some("db-1")).unwrap();
    f.clock.advance(60_000);
    f.put("app/db", &tok(1), "db-2", Some(&["AWSPENDING"])).unwrap();
    let v1 = f.created[0].clone();
    f.stage("app/db", "AWSCURRENT", Some(&tok(1)), Some(&v1)).unwrap();
    f.clock.advance(60_000);
    f.put("app/db", &tok(2), "db-3", None).unwrap();
    f.exec(Command::TagResource(TagResource {
        secret_id: "app/db".into(),
        tags: vec![Tag { key: "team".into(), value: "payments".into() }],
    }))
    .unwrap();
    f.exec(Command::UpdateSecret(UpdateSecret {
        secret_id: "app/db".into(),
        description: Some("the payments database".into()),
        ..UpdateSecret::default()
    }))
    .unwrap();
    f.exec(Command::CreateSecret(CreateSecret {
        name: "app/blob".into(),
        client_request_token: Some(tok(3)),
        value: Some(SecretValue::Binary(vec![0, 1, 2, 255].into())),
        ..CreateSecret::default()
    }))
    .unwrap();
    f.create("gone", Some("gone-1")).unwrap();
    f.exec(Command::DeleteSecret(DeleteSecret {
        secret_id: "gone".into(),
        force_delete_without_recovery: Some(true),
        ..DeleteSecret::default()
    }))
    .unwrap();
    f.create("gone", Some("gone-2")).unwrap();
    f.exec(Command::DeleteSecret(DeleteSecret { secret_id: "app/blob".into(), ..DeleteSecret::default() })).unwrap();
    f.exec(Command::RestoreSecret(RestoreSecret { secret_id: "app/blob".into() })).unwrap();
    f.create("later/deleted", Some("d")).unwrap();
    f.exec(Command::DeleteSecret(DeleteSecret { secret_id: "later/deleted".into(), ..DeleteSecret::default() }))
        .unwrap();
    f.scope = Scope::new("eu-west-1", "123456789012");
    f.create("app/db", Some("eu-db-1")).unwrap();
    f.verify_ok();
    let out = fixture_dir();
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let mut export = std::fs::File::create(out.join("export.jsonl")).unwrap();
    export::export(f.ledger().store(), &mut export, "format-1-fixture", crate::fixture::T0 + 3_600_000, &mut |_, _| {})
        .unwrap();
    f.ledger.take().unwrap().close().unwrap();
    copy_tree(f.dir.path(), &out.join("data"));
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// Opens a copy of the fixture with a clock at the time it was written (its scheduled deletion
/// is not yet due).
fn open_copy() -> (tempfile::TempDir, Ledger) {
    let dir = copy_data_dir();
    let clock = std::sync::Arc::new(ledger_store::ManualClock::new(crate::fixture::T0 + 3_600_000));
    let options = ledger_store::LedgerOptions { clock, snapshot_every: 4, ..ledger_store::LedgerOptions::default() };
    let ledger = Ledger::open(dir.path(), master(), options).unwrap();
    (dir, ledger)
}

fn value(ledger: &Ledger, region: &str, id: &str, stage: Option<&str>) -> SecretValue {
    let scope = Scope::new(region, "123456789012");
    let q =
        query::GetSecretValue { secret_id: id.into(), version_stage: stage.map(str::to_string), ..Default::default() };
    ledger.get_secret_value(&scope, &q).unwrap().unwrap().value
}

#[test]
fn format_1_data_dir_opens_verifies_and_answers() {
    let (dir, ledger) = open_copy();
    // The data keys moved out of sled into their own file: none is left under `k`.
    assert!(ledger.store().legacy_keys().unwrap().is_empty());
    let moved = ledger_store::keyfile::KeyFile::read(dir.path()).unwrap().expect("key file written");
    assert_eq!(moved.keys.len(), ledger.with_state(|s| s.secrets().count()));
    let report = ledger.verify(&mut |_, _| {}).unwrap().unwrap_or_else(|f| panic!("{f}"));
    assert!(report.events >= 20 && report.snapshots_checked > 0, "{report:?}");
    assert_eq!(value(&ledger, "us-east-1", "app/db", None), SecretValue::string("db-3"));
    assert_eq!(value(&ledger, "us-east-1", "app/db", Some("AWSPREVIOUS")), SecretValue::string("db-2"));
    assert_eq!(value(&ledger, "eu-west-1", "app/db", None), SecretValue::string("eu-db-1"));
    assert_eq!(value(&ledger, "us-east-1", "app/blob", None), SecretValue::Binary(vec![0, 1, 2, 255].into()));
    assert_eq!(value(&ledger, "us-east-1", "gone", None), SecretValue::string("gone-2"));
    let scope = Scope::new("us-east-1", "123456789012");
    let db = ledger.describe_secret(&scope, "app/db").unwrap();
    assert_eq!(db.description.as_deref(), Some("the payments database"));
    assert!(ledger.describe_secret(&scope, "later/deleted").unwrap().deleted_at_ms.is_some());

    // New events after the old ones: the mixed log verifies, and again after a reopen.
    let meta = ledger_store::RequestMeta::local(scope.clone());
    let put = Command::PutSecretValue(PutSecretValue {
        secret_id: "app/db".into(),
        client_request_token: Some(tok(90)),
        value: Some(SecretValue::string("db-4")),
        version_stages: None,
    });
    ledger.execute(put, &meta).unwrap().unwrap();
    // Five versions were read (a SecretAccessed each, queued ahead of the put), then the put's
    // version, its AWSCURRENT and its AWSPREVIOUS moves.
    let events = ledger.verify(&mut |_, _| {}).unwrap().unwrap_or_else(|f| panic!("{f}")).events;
    assert_eq!(events, report.events + 5 + 3);
    assert_eq!(value(&ledger, "us-east-1", "app/db", None), SecretValue::string("db-4"));
}

#[test]
fn format_1_export_verifies() {
    let file = std::fs::File::open(fixture_dir().join("export.jsonl")).unwrap();
    let report = export::verify_export(&mut std::io::BufReader::new(file), None, &mut |_, _| {})
        .unwrap()
        .unwrap_or_else(|f| panic!("{f}"));
    let (_dir, ledger) = open_copy();
    let live = ledger.verify(&mut |_, _| {}).unwrap().unwrap();
    assert_eq!((report.events, report.merkle_root, report.head_hash), (live.events, live.merkle_root, live.head_hash));
}
