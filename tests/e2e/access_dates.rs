//! LastAccessedDate: the first read of a version on a UTC day appends one `SecretAccessed`
//! (queued by the read, never awaited by it); DescribeSecret, ListSecrets (and its
//! `last-accessed-date` order) and ListSecretVersionIds answer it; history and replay keep it.

use ledger_audit::events;
use ledger_core::query::{ListSecretVersionIds, ListSecrets};
use ledger_core::*;

use crate::fixture::{Fixture, T0};

const DAY_MS: i64 = 86_400_000;

/// Events appended so far, once the writer has taken everything queued before this call.
fn settled_head(f: &mut Fixture) -> u64 {
    // A refused write goes through the writer's queue behind every earlier read's request.
    let _ = f.exec(Command::RestoreSecret(RestoreSecret { secret_id: "no-such-secret".into() }));
    f.ledger().head().0
}

#[test]
fn first_read_of_a_day_is_recorded_once() {
    let mut f = Fixture::new();
    f.create("a", Some("a1")).unwrap();
    f.create("b", Some("b1")).unwrap();
    let d = f.ledger().describe_secret(&f.scope, "a").unwrap();
    assert_eq!(d.last_accessed_ms, None, "absent until the first read");
    let head = settled_head(&mut f);

    f.clock.advance(10 * 3_600_000);
    for _ in 0..5 {
        f.get_string("a").unwrap();
    }
    assert_eq!(settled_head(&mut f), head + 1, "five reads, one event");
    let d = f.ledger().describe_secret(&f.scope, "a").unwrap();
    assert_eq!(d.last_accessed_ms, Some(T0), "midnight UTC of the read");
    let versions = f
        .ledger()
        .list_secret_version_ids(&f.scope, &ListSecretVersionIds { secret_id: "a".into(), ..Default::default() })
        .unwrap();
    assert_eq!(versions.versions[0].last_accessed_ms, Some(T0));
    // DescribeSecret and ListSecrets are not reads of the value.
    assert_eq!(f.ledger().describe_secret(&f.scope, "b").unwrap().last_accessed_ms, None);

    // The next day: one more event; b read now sorts after a by last access.
    f.clock.advance(DAY_MS);
    f.get_string("a").unwrap();
    f.get_string("b").unwrap();
    assert_eq!(settled_head(&mut f), head + 3);
    assert_eq!(f.ledger().describe_secret(&f.scope, "a").unwrap().last_accessed_ms, Some(T0 + DAY_MS));
    f.clock.advance(DAY_MS);
    f.get_string("a").unwrap();
    settled_head(&mut f);
    let q = ListSecrets { sort_by: Some("last-accessed-date".into()), ..ListSecrets::default() };
    let order: Vec<String> =
        f.ledger().list_secrets(&f.scope, &q).unwrap().secrets.into_iter().map(|s| s.name).collect();
    assert_eq!(order, ["b", "a"]);

    // In the history, with the reader as actor; and replay re-proves the once-a-day rule.
    let a = events::secret_identities(f.ledger().store(), "a").unwrap()[0].uid;
    let reads: Vec<_> = events::secret_history(f.ledger().store(), a)
        .unwrap()
        .into_iter()
        .filter(|e| e.event == "SecretAccessed")
        .collect();
    assert_eq!(reads.len(), 3);
    assert!(reads[0].change.ends_with("read on 2026-01-01") && reads[0].actor == "local", "{:?}", reads[0]);
    // Point in time: the state as of the first read's event has it; the one before does not.
    let ids = events::secret_identities(f.ledger().store(), "a").unwrap();
    let at = |seq| events::resolve_at(f.ledger().store(), &ids, seq).unwrap().unwrap().last_accessed_day_ms;
    assert_eq!((at(reads[0].seq - 1), at(reads[0].seq)), (None, Some(T0)));
    f.verify_ok();
    f.reopen();
    assert_eq!(f.ledger().describe_secret(&f.scope, "a").unwrap().last_accessed_ms, Some(T0 + 2 * DAY_MS));
}
