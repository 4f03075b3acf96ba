//! The ledger on PostgreSQL, against a throwaway cluster this harness starts itself: the same
//! bytes and hashes as sled, reopen and replay, the compare-and-set append, the schema version
//! check, and the statement timeout.
//!
//! The cluster is made with the installed binaries (`pg_config --bindir`, else
//! `/usr/lib/postgresql/*/bin`, which Debian keeps off `PATH`): `initdb` into a temp dir and
//! `pg_ctl start` on a Unix socket in it, as the unprivileged `postgres` user when the tests run
//! as root. Without PostgreSQL each test says loudly that it skipped, unless
//! `SECRET_LEDGER_REQUIRE_POSTGRES` is set (as CI does), which makes that a failure.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ledger_audit::export;
use ledger_core::crypto::MasterKey;
use ledger_core::*;
use ledger_pg::{PgOptions, PgStore};
use ledger_store::{
    Appended, Group, Ledger, LedgerOptions, LogStore, ManualClock, RequestMeta, SledOptions, SledStore,
};

use crate::fixture::{master, tok, T0};
pub(crate) use ledger_tests::pg::PgCluster;

fn options(clock: &Arc<ManualClock>) -> LedgerOptions {
    LedgerOptions { clock: clock.clone(), rng_seed: Some([7; 32]), snapshot_every: 16, ..LedgerOptions::default() }
}

/// The same requests, on a ledger over `store`: creations, puts, a label move, a deletion.
fn story(store: Arc<dyn LogStore>) -> Ledger {
    let clock = Arc::new(ManualClock::new(T0));
    let ledger = Ledger::open_store(store, master(), options(&clock)).unwrap();
    let meta = RequestMeta {
        scope: Scope::new("us-east-1", "123456789012"),
        actor: "AKIDTEST".into(),
        request_id: "r".into(),
    };
    let run = |cmd: Command| ledger.execute(cmd, &meta).unwrap().unwrap();
    for (i, name) in ["db/prod", "db/stage", "api/key"].into_iter().enumerate() {
        clock.advance(1_000);
        run(Command::CreateSecret(CreateSecret {
            name: name.into(),
            client_request_token: Some(tok(100 + i)),
            value: Some(SecretValue::string(format!("{name}-1"))),
            ..CreateSecret::default()
        }));
    }
    for n in 0..20 {
        clock.advance(60_000);
        run(Command::PutSecretValue(PutSecretValue {
            secret_id: "db/prod".into(),
            client_request_token: Some(tok(n)),
            value: Some(SecretValue::string(format!("p{n}"))),
            ..PutSecretValue::default()
        }));
    }
    run(Command::DeleteSecret(DeleteSecret { secret_id: "api/key".into(), ..DeleteSecret::default() }));
    ledger
}

fn export_text(store: &dyn LogStore) -> String {
    let mut out = Vec::new();
    export::export(store, &mut out, "same origin", T0, &mut |_, _| {}).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn postgres_and_sled_hold_the_same_bytes() {
    let Some(pg) = PgCluster::start("postgres_and_sled_hold_the_same_bytes") else { return };
    let url = pg.database("same_bytes");
    let pg_store: Arc<dyn LogStore> = Arc::new(PgStore::connect(&url, PgOptions::default()).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let sled_store: Arc<dyn LogStore> = Arc::new(SledStore::open(dir.path(), SledOptions::streaming()).unwrap());
    let on_pg = story(pg_store.clone());
    let on_sled = story(sled_store.clone());
    assert!(on_pg.head().0 > 40, "{:?}", on_pg.head());
    assert_eq!(on_pg.head(), on_sled.head(), "the same chain, hash for hash");
    assert_eq!(export_text(&*pg_store), export_text(&*sled_store), "the same export, byte for byte");
    let (a, b) = (on_pg.verify(&mut |_, _| {}).unwrap().unwrap(), on_sled.verify(&mut |_, _| {}).unwrap().unwrap());
    assert_eq!((a.head_hash, a.merkle_root), (b.head_hash, b.merkle_root));
    assert!(a.snapshots_checked > 0, "{a:?}");
    assert_eq!(pg_store.location(), format!("postgres://{}:{}/same_bytes", pg.socket_dir().display(), pg.port()));
}

#[test]
fn a_postgres_ledger_reopens_replays_and_verifies() {
    let Some(pg) = PgCluster::start("a_postgres_ledger_reopens_replays_and_verifies") else { return };
    let url = pg.database("reopen");
    let head = {
        let ledger = story(Arc::new(PgStore::connect(&url, PgOptions::default()).unwrap()));
        let head = ledger.head();
        ledger.close().unwrap();
        head
    };
    let store = Arc::new(PgStore::connect(&url, PgOptions::default()).unwrap());
    let clock = Arc::new(ManualClock::new(T0 + 3_600_000));
    let ledger = Ledger::open_store(store.clone(), master(), options(&clock)).unwrap();
    assert_eq!(ledger.head(), head);
    let scope = Scope::new("us-east-1", "123456789012");
    let q = ledger_core::query::GetSecretValue { secret_id: "db/prod".into(), ..Default::default() };
    let value = ledger.get_secret_value(&scope, &q).unwrap().unwrap().value;
    assert_eq!(value, SecretValue::string("p19"));
    ledger.close().unwrap();
    // Derived rows dropped and rebuilt from the records verify as before (the read above
    // appended its access date).
    let head = store.head().unwrap();
    assert_eq!(ledger_store::rebuild_derived(&*store, 16, &mut |_, _| {}).unwrap(), head.0);
    let report = ledger_store::verify_store(&*store, &mut |_, _| {}).unwrap().unwrap();
    assert_eq!((report.events, report.head_hash), head);
    // A wrong master key opens nothing.
    let wrong = MasterKey::from_bytes(1, [9; 32]);
    let err = Ledger::open_store(store, wrong, options(&clock)).unwrap_err();
    assert!(matches!(err, ledger_store::StoreError::WrongMasterKey), "{err}");
}

#[test]
fn an_append_against_a_stale_head_writes_nothing() {
    let Some(pg) = PgCluster::start("an_append_against_a_stale_head_writes_nothing") else { return };
    let url = pg.database("cas");
    let ledger = story(Arc::new(PgStore::connect(&url, PgOptions::default()).unwrap()));
    let head = ledger.head();
    let other = PgStore::connect(&url, PgOptions::default()).unwrap();
    let stale = Group {
        expected: (head.0 - 1, ChainHash::GENESIS),
        records: vec![(head.0 + 1, b"not a record".to_vec())],
        head: (head.0 + 1, ChainHash::GENESIS),
        derived: Default::default(),
        master_key_id: None,
        new_keys: Vec::new(),
        destroyed_keys: Vec::new(),
    };
    assert_eq!(other.append(stale).unwrap(), Appended::Conflict { head });
    assert_eq!(other.head().unwrap(), head);
    assert!(other.record(head.0 + 1).unwrap().is_none(), "nothing of the refused group was written");
    ledger.verify(&mut |_, _| {}).unwrap().unwrap();
}

#[test]
fn a_newer_schema_is_refused() {
    let Some(pg) = PgCluster::start("a_newer_schema_is_refused") else { return };
    let url = pg.database("schema");
    drop(PgStore::connect(&url, PgOptions::default()).unwrap());
    pg.psql("schema", "UPDATE ledger_schema SET version = 99");
    let err = PgStore::connect(&url, PgOptions::default()).unwrap_err();
    assert!(err.to_string().contains("schema version 99, newer than"), "{err}");
}

#[test]
fn a_stuck_statement_is_answered_with_an_error_within_the_timeout() {
    let Some(pg) = PgCluster::start("a_stuck_statement_is_answered_with_an_error_within_the_timeout") else { return };
    let url = pg.database("stuck");
    let options = PgOptions { statement_timeout: Duration::from_millis(800), ..PgOptions::default() };
    let store = PgStore::connect(&url, options).unwrap();
    // Another session holds the head row locked, so the append's `FOR UPDATE` waits.
    let holder = std::thread::spawn({
        let url_db = "stuck".to_string();
        let psql = pg.command("psql");
        let socket = pg.socket_dir().to_path_buf();
        let port = pg.port();
        move || {
            let mut psql = psql;
            psql.args(["-h", socket.to_str().unwrap(), "-p", &port.to_string(), "-U", "ledger", "-d", &url_db])
                .args(["-c", "BEGIN; SELECT seq FROM ledger_head FOR UPDATE; SELECT pg_sleep(4); COMMIT;"])
                .output()
                .unwrap()
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    let group = Group {
        expected: (0, ChainHash::GENESIS),
        records: vec![(1, b"x".to_vec())],
        head: (1, ChainHash::GENESIS),
        derived: Default::default(),
        master_key_id: None,
        new_keys: Vec::new(),
        destroyed_keys: Vec::new(),
    };
    let started = Instant::now();
    let err = store.append(group).unwrap_err();
    let waited = started.elapsed();
    assert!(err.to_string().contains("statement timeout"), "{err}");
    assert!(waited < Duration::from_secs(3), "answered after {waited:?}");
    holder.join().unwrap();
    assert_eq!(store.head().unwrap().0, 0, "nothing written");
}

/// A node: a ledger on its own connections to the shared database, with the system clock.
fn node(url: &str, options: PgOptions) -> Ledger {
    let store = Arc::new(PgStore::connect(url, options).unwrap());
    Ledger::open_store(store, master(), LedgerOptions::default()).unwrap()
}

fn meta(actor: &str) -> RequestMeta {
    RequestMeta { actor: actor.into(), ..RequestMeta::local(Scope::new("us-east-1", "123456789012")) }
}

fn put(
    ledger: &Ledger,
    id: &str,
    token: &str,
    value: &str,
) -> Result<Result<Reply, SmError>, ledger_store::StoreError> {
    ledger.execute(
        Command::PutSecretValue(PutSecretValue {
            secret_id: id.into(),
            client_request_token: Some(token.into()),
            value: Some(SecretValue::string(value)),
            ..PutSecretValue::default()
        }),
        &meta("node"),
    )
}

fn create(ledger: &Ledger, name: &str, value: &str) {
    let meta = meta("node");
    let cmd = Command::CreateSecret(CreateSecret {
        name: name.into(),
        client_request_token: Some(meta.request_id.clone()),
        value: Some(SecretValue::string(value)),
        ..CreateSecret::default()
    });
    ledger.execute(cmd, &meta).unwrap().unwrap();
}

/// The current value of `id` on `ledger`, if it has one.
fn current(ledger: &Ledger, id: &str) -> Option<SecretValue> {
    let q = ledger_core::query::GetSecretValue { secret_id: id.into(), ..Default::default() };
    ledger.get_secret_value(&Scope::new("us-east-1", "123456789012"), &q).unwrap().ok().map(|v| v.value)
}

/// Waits up to `limit` for `check` to hold; returns how long it took.
fn within(limit: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if check() {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn two_nodes_share_one_chain() {
    let Some(pg) = PgCluster::start("two_nodes_share_one_chain") else { return };
    let url = pg.database("two_nodes");
    let (a, b) = (node(&url, PgOptions::default()), node(&url, PgOptions::default()));
    create(&a, "shared/one", "from a");
    // At once on the node that wrote it, within a second on the other.
    assert_eq!(current(&a, "shared/one"), Some(SecretValue::string("from a")));
    let seen = within(Duration::from_secs(1), || current(&b, "shared/one").is_some());
    assert!(seen.is_some(), "node b did not see node a's write within a second");
    // Writes from both nodes interleave into one chain.
    for i in 0..10 {
        let (x, y) = (format!("{:0>32}", 2 * i), format!("{:0>32}", 2 * i + 1));
        put(&a, "shared/one", &x, &format!("a{i}")).unwrap().unwrap();
        put(&b, "shared/one", &y, &format!("b{i}")).unwrap().unwrap();
    }
    assert_eq!(current(&b, "shared/one"), Some(SecretValue::string("b9")));
    assert!(within(Duration::from_secs(1), || current(&a, "shared/one") == Some(SecretValue::string("b9"))).is_some());
    assert!(within(Duration::from_secs(1), || a.head() == b.head()).is_some(), "{:?} {:?}", a.head(), b.head());
    // The reads above queue their access dates without waiting, so a node may still append
    // one while verify runs: the log verified is at least the head before and at most after.
    let before = a.head().0;
    let report = a.verify(&mut |_, _| {}).unwrap().unwrap();
    assert!((before..=a.head().0).contains(&report.events), "{} not in {before}..={}", report.events, a.head().0);
}

#[test]
fn the_same_token_sent_to_two_nodes_at_once_makes_one_version() {
    let Some(pg) = PgCluster::start("the_same_token_sent_to_two_nodes_at_once_makes_one_version") else { return };
    let url = pg.database("token_race");
    let (a, b) = (node(&url, PgOptions::default()), node(&url, PgOptions::default()));
    create(&a, "race/one", "v0");
    assert!(within(Duration::from_secs(1), || current(&b, "race/one").is_some()).is_some());
    for round in 0..10 {
        let token = format!("{round:0>40}");
        let barrier = std::sync::Barrier::new(2);
        let (ra, rb) = std::thread::scope(|s| {
            let ta = s.spawn(|| {
                barrier.wait();
                put(&a, "race/one", &token, "same value")
            });
            let tb = s.spawn(|| {
                barrier.wait();
                put(&b, "race/one", &token, "same value")
            });
            (ta.join().unwrap(), tb.join().unwrap())
        });
        assert!(matches!(ra, Ok(Ok(_))) && matches!(rb, Ok(Ok(_))), "round {round}: {ra:?} {rb:?}");
    }
    assert!(within(Duration::from_secs(1), || a.head() == b.head()).is_some());
    let created = ledger_audit::events::log_history(a.store(), 1, a.head().0, &|r| r.event.name() == "VersionCreated")
        .unwrap()
        .len();
    assert_eq!(created, 1 + 10, "one version per token");
    a.verify(&mut |_, _| {}).unwrap().unwrap();
}

#[test]
fn writes_fail_fast_while_postgres_is_down_and_resume_when_it_is_back() {
    let Some(pg) = PgCluster::start("writes_fail_fast_while_postgres_is_down_and_resume_when_it_is_back") else {
        return;
    };
    let url = pg.database("restart");
    let options = PgOptions { statement_timeout: Duration::from_secs(1), ..PgOptions::default() };
    let ledger = node(&url, options);
    create(&ledger, "crash/one", "before");
    let acknowledged = ledger.head();
    pg.crash();
    let started = Instant::now();
    let refused = put(&ledger, "crash/one", &tok(1), "during");
    assert!(refused.is_err(), "{refused:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    // A value read needs its record from the database: a typed error too, not a hang.
    let q = ledger_core::query::GetSecretValue { secret_id: "crash/one".into(), ..Default::default() };
    assert!(ledger.get_secret_value(&Scope::new("us-east-1", "123456789012"), &q).is_err());
    pg.restart();
    let resumed =
        within(Duration::from_secs(10), || put(&ledger, "crash/one", &tok(2), "after").is_ok_and(|r| r.is_ok()));
    assert!(resumed.is_some(), "writes did not resume");
    assert_eq!(current(&ledger, "crash/one"), Some(SecretValue::string("after")));
    let report = ledger.verify(&mut |_, _| {}).unwrap().unwrap();
    assert!(report.events > acknowledged.0, "nothing acknowledged before the crash was lost");
    let store = ledger.store();
    assert_eq!(store.record_hash(acknowledged.0).unwrap(), acknowledged.1);
}

#[test]
fn one_node_leads_background_work_and_another_takes_over_when_it_dies() {
    let Some(pg) = PgCluster::start("one_node_leads_background_work_and_another_takes_over_when_it_dies") else {
        return;
    };
    let url = pg.database("leader");
    let a = PgStore::connect(&url, PgOptions::default()).unwrap();
    let b = PgStore::connect(&url, PgOptions::default()).unwrap();
    assert!(a.is_leader());
    assert!(!b.is_leader(), "two leaders");
    assert!(a.is_leader(), "the leader keeps its lock");
    drop(a); // its connections close, as when a node dies
    assert!(within(Duration::from_secs(5), || b.is_leader()).is_some(), "nobody took over");
}

#[test]
fn migrate_copies_a_log_verbatim_both_ways() {
    let Some(pg) = PgCluster::start("migrate_copies_a_log_verbatim_both_ways") else { return };
    let url = pg.database("migrated");
    let dir = tempfile::tempdir().unwrap();
    let sled: Arc<dyn LogStore> = Arc::new(SledStore::open(&dir.path().join("a"), SledOptions::streaming()).unwrap());
    story(sled.clone()).close().unwrap();
    let on_pg = PgStore::connect(&url, PgOptions::default()).unwrap();
    let head = ledger_store::copy_log(&*sled, &on_pg, &mut |_, _| {}).unwrap();
    assert_eq!(head, sled.head().unwrap());
    let back = SledStore::open(&dir.path().join("b"), SledOptions::streaming()).unwrap();
    assert_eq!(ledger_store::copy_log(&on_pg, &back, &mut |_, _| {}).unwrap(), head);
    let reports: Vec<_> = [&*sled, &on_pg as &dyn LogStore, &back]
        .iter()
        .map(|s| ledger_store::verify_store(*s, &mut |_, _| {}).unwrap().unwrap())
        .collect();
    assert!(reports.iter().all(|r| (r.head_hash, r.merkle_root) == (reports[0].head_hash, reports[0].merkle_root)));
    assert_eq!(export_text(&on_pg), export_text(&*sled));
    assert_eq!(export_text(&back), export_text(&*sled));
    // A copy into a store that holds a log is refused, changing nothing.
    let err = ledger_store::copy_log(&*sled, &on_pg, &mut |_, _| {}).unwrap_err();
    assert!(err.to_string().contains("already holds a log"), "{err}");
    // The copy opens with the master key and reads the values.
    let clock = Arc::new(ManualClock::new(T0 + 86_400_000));
    let ledger = Ledger::open_store(Arc::new(on_pg), master(), options(&clock)).unwrap();
    let q = ledger_core::query::GetSecretValue { secret_id: "db/prod".into(), ..Default::default() };
    let value = ledger.get_secret_value(&Scope::new("us-east-1", "123456789012"), &q).unwrap().unwrap().value;
    assert_eq!(value, SecretValue::string("p19"));
}

fn force_delete(ledger: &Ledger, name: &str) {
    let cmd = Command::DeleteSecret(DeleteSecret {
        secret_id: name.into(),
        force_delete_without_recovery: Some(true),
        ..DeleteSecret::default()
    });
    ledger.execute(cmd, &meta("node")).unwrap().unwrap();
}

#[test]
fn a_node_follows_secrets_created_and_purged_while_it_was_not_looking() {
    let Some(pg) = PgCluster::start("a_node_follows_secrets_created_and_purged_while_it_was_not_looking") else {
        return;
    };
    let url = pg.database("purged_between");
    let (a, b) = (node(&url, PgOptions::default()), node(&url, PgOptions::default()));
    create(&b, "b/own", "v");
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..60 {
                let name = format!("gone/{i}");
                create(&a, &name, "short-lived");
                force_delete(&a, &name);
            }
        });
        for i in 0..90 {
            let r = put(&b, "b/own", &format!("{i:0>36}"), "b");
            assert!(matches!(r, Ok(Ok(_))), "write {i} on b: {r:?}");
        }
    });
    assert!(within(Duration::from_secs(2), || a.head() == b.head()).is_some(), "{:?} {:?}", a.head(), b.head());
    assert!(b.writes_stopped().is_none());
    b.verify(&mut |_, _| {}).unwrap().unwrap();
}

#[test]
fn a_node_starts_while_another_writes() {
    let Some(pg) = PgCluster::start("a_node_starts_while_another_writes") else { return };
    let url = pg.database("busy_start");
    let a = node(&url, PgOptions::default());
    create(&a, "busy/one", "v");
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut i = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let cmd = Command::UpdateSecret(UpdateSecret {
                    secret_id: "busy/one".into(),
                    description: Some(format!("change {i}")),
                    ..UpdateSecret::default()
                });
                a.execute(cmd, &meta("node")).unwrap().unwrap();
                i += 1;
            }
        });
        for _ in 0..5 {
            let b = node(&url, PgOptions::default());
            assert!(within(Duration::from_secs(2), || current(&b, "busy/one").is_some()).is_some());
            b.close().unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    a.verify(&mut |_, _| {}).unwrap().unwrap();
}

#[test]
fn the_master_key_rotates_in_postgres_and_an_interrupted_rotation_finishes_on_start() {
    let Some(pg) = PgCluster::start("the_master_key_rotates_in_postgres") else { return };
    let url = pg.database("rekey");
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("master.key");
    std::fs::write(&key_path, format!("{}\n", "42".repeat(32))).unwrap();
    story(Arc::new(PgStore::connect(&url, PgOptions::default()).unwrap())).close().unwrap();
    let open = || -> Result<Arc<dyn LogStore>, ledger_store::StoreError> {
        Ok(Arc::new(PgStore::connect(&url, PgOptions::default())?))
    };
    let rotate = |stop: Option<ledger_store::rekey::Step>| {
        ledger_store::rekey::rotate_master_key_of(&open, Some(&key_path), dir.path(), &mut |s| Some(s) != stop)
    };
    assert_eq!(rotate(None).unwrap(), (1, 2));
    // Stopped right after its commit point (the keys re-wrapped, the file not yet replaced).
    assert!(rotate(Some(ledger_store::rekey::Step::KeysRewrapped)).is_err());
    let store = open().unwrap();
    let wrapped_by = store.key_file().unwrap().map(|f| f.master_key_id);
    assert_eq!(wrapped_by, Some(3));
    let (key, _) = ledger_store::master_key::master_key_for(Some(&key_path), dir.path(), true, wrapped_by).unwrap();
    assert_eq!(key.id, 3, "the start finished the rotation");
    let clock = Arc::new(ManualClock::new(T0 + 86_400_000));
    let ledger = Ledger::open_store(store.clone(), key, options(&clock)).unwrap();
    let q = ledger_core::query::GetSecretValue { secret_id: "db/prod".into(), ..Default::default() };
    let value = ledger.get_secret_value(&Scope::new("us-east-1", "123456789012"), &q).unwrap().unwrap().value;
    assert_eq!(value, SecretValue::string("p19"));
    let rotations = ledger_audit::events::log_history(ledger.store(), 1, ledger.head().0, &|r| {
        r.event.name() == "MasterKeyRotated"
    })
    .unwrap();
    assert_eq!(rotations.len(), 2, "{rotations:?}");
    ledger.close().unwrap();
    let err = Ledger::open_store(store, master(), options(&clock)).unwrap_err();
    assert!(matches!(err, ledger_store::StoreError::WrongMasterKey), "the old key opens nothing: {err}");
}
