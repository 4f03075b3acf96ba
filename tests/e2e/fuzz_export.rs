//! Property-based fuzzing of the offline export verifier (`export::verify_export`): arbitrary
//! text, arbitrary JSON lines and valid exports with line-level mutations (drop, duplicate,
//! swap, blank lines, flipped characters inside the base64 `record`, changed `seq`, copied or
//! re-sealed records) never panic, and a mutated export whose records changed never verifies.
//! Re-chaining a forged suffix (the chain hash is keyless, so anyone can) is caught by a
//! trusted checkpoint kept elsewhere.
//!
//! Case counts are small so CI stays fast; `PROPTEST_CASES=5000 cargo test -p ledger-tests
//! --test e2e fuzz_export` runs more.

use std::io::Cursor;
use std::sync::OnceLock;

use base64::Engine;
use ledger_audit::export;
use ledger_core::checkpoint::Checkpoint;
use ledger_core::codec::{decode_record, seal_record};
use ledger_core::*;
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::Value;

use crate::fixture::{tok, Fixture, T0};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// `cases` unless `PROPTEST_CASES` says otherwise.
fn config(cases: u32) -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var("PROPTEST_CASES").is_err() {
        config.cases = cases;
    }
    config.max_shrink_iters = 256;
    config
}

struct Export {
    lines: Vec<String>,
    checkpoint: Checkpoint,
}

/// One valid export (header, a dozen events, closing checkpoint), built once.
fn export() -> &'static Export {
    static EXPORT: OnceLock<Export> = OnceLock::new();
    EXPORT.get_or_init(|| {
        let mut f = Fixture::new();
        f.create("db/prod", Some("p1")).unwrap();
        f.clock.advance(1000);
        f.create("other", Some("o1")).unwrap();
        f.put("db/prod", &tok(1), "p2", Some(&["AWSPENDING"])).unwrap();
        f.clock.advance(1000);
        let v1 = f.created[0].clone();
        f.stage("db/prod", "AWSCURRENT", Some(&tok(1)), Some(&v1)).unwrap();
        f.exec(Command::TagResource(TagResource {
            secret_id: "other".into(),
            tags: vec![Tag { key: "team".into(), value: "core".into() }],
        }))
        .unwrap();
        f.exec(Command::DeleteSecret(DeleteSecret { secret_id: "other".into(), ..DeleteSecret::default() })).unwrap();
        f.exec(Command::RestoreSecret(RestoreSecret { secret_id: "other".into() })).unwrap();
        f.put("other", &tok(2), "o2", None).unwrap();
        let mut out = Vec::new();
        let checkpoint = export::export(f.ledger().store(), &mut out, "fuzz", T0, &mut |_, _| {}).unwrap();
        let lines = String::from_utf8(out).unwrap().lines().map(String::from).collect();
        Export { lines, checkpoint }
    })
}

fn verify(text: &str, trusted: Option<&Checkpoint>) -> Result<ledger_store::VerifyReport, ledger_store::VerifyFailure> {
    export::verify_export(&mut Cursor::new(text.as_bytes().to_vec()), trusted, &mut |_, _| {})
        .expect("reading from memory never fails")
}

/// The records the file carries, in order: decoded `record` of every event line (`None` where
/// the line or its base64 is unusable). Two files with equal lists describe the same log.
fn records(lines: &[String]) -> Vec<Option<Vec<u8>>> {
    lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| match serde_json::from_str::<Value>(l) {
            Ok(v) if v.get("type").and_then(Value::as_str) == Some("event") => {
                Some(v.get("record").and_then(Value::as_str).and_then(|r| B64.decode(r).ok()))
            }
            Ok(v) if v.get("type").and_then(Value::as_str).is_some() => None,
            _ => Some(None),
        })
        .collect()
}

#[derive(Clone, Debug)]
enum LineEdit {
    Drop(Index),
    Duplicate(Index),
    Swap(Index, Index),
    InsertBlank(Index),
    /// Replaces one character of an event's base64 `record` with another base64 character.
    FlipRecordChar(Index, Index, Index),
    /// Sets an event's `seq` member.
    SetSeq(Index, u64),
    /// Copies the `record` of one line into another event line.
    CopyRecord(Index, Index),
    /// Re-seals an event with another actor: valid hash, same seq and prev_hash.
    Reseal(Index, String),
    /// Cuts a line short.
    TruncateLine(Index, Index),
    /// Replaces a line with arbitrary text.
    Replace(Index, String),
}

const B64_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=";

fn line_edit() -> impl Strategy<Value = LineEdit> {
    prop_oneof![
        2 => any::<Index>().prop_map(LineEdit::Drop),
        2 => any::<Index>().prop_map(LineEdit::Duplicate),
        2 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| LineEdit::Swap(a, b)),
        1 => any::<Index>().prop_map(LineEdit::InsertBlank),
        4 => (any::<Index>(), any::<Index>(), any::<Index>()).prop_map(|(l, p, c)| LineEdit::FlipRecordChar(l, p, c)),
        2 => (any::<Index>(), prop_oneof![0u64..16, any::<u64>()]).prop_map(|(l, s)| LineEdit::SetSeq(l, s)),
        2 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| LineEdit::CopyRecord(a, b)),
        2 => (any::<Index>(), "[a-z]{0,8}").prop_map(|(l, a)| LineEdit::Reseal(l, a)),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(l, p)| LineEdit::TruncateLine(l, p)),
        1 => (any::<Index>(), ".{0,40}").prop_map(|(l, t)| LineEdit::Replace(l, t)),
    ]
}

fn edit_json(lines: &mut [String], i: usize, f: impl FnOnce(&mut Value)) {
    if let Ok(mut v) = serde_json::from_str::<Value>(&lines[i]) {
        f(&mut v);
        lines[i] = v.to_string();
    }
}

fn apply(lines: &mut Vec<String>, e: &LineEdit) {
    if lines.is_empty() {
        return;
    }
    let n = lines.len();
    match e {
        LineEdit::Drop(i) => {
            lines.remove(i.index(n));
        }
        LineEdit::Duplicate(i) => {
            let i = i.index(n);
            lines.insert(i, lines[i].clone());
        }
        LineEdit::Swap(a, b) => lines.swap(a.index(n), b.index(n)),
        LineEdit::InsertBlank(i) => lines.insert(i.index(n + 1), "   ".into()),
        LineEdit::FlipRecordChar(l, p, c) => edit_json(lines, l.index(n), |v| {
            if let Some(record) = v.get("record").and_then(Value::as_str) {
                let mut bytes = record.as_bytes().to_vec();
                if !bytes.is_empty() {
                    let p = p.index(bytes.len());
                    bytes[p] = *c.get(B64_ALPHABET);
                    v["record"] = String::from_utf8_lossy(&bytes).into_owned().into();
                }
            }
        }),
        LineEdit::SetSeq(l, s) => edit_json(lines, l.index(n), |v| {
            if v.get("seq").is_some() {
                v["seq"] = (*s).into();
            }
        }),
        LineEdit::CopyRecord(a, b) => {
            let from = serde_json::from_str::<Value>(&lines[b.index(n)]).ok().and_then(|v| v.get("record").cloned());
            if let Some(record) = from {
                edit_json(lines, a.index(n), |v| {
                    if v.get("record").is_some() {
                        v["record"] = record;
                    }
                });
            }
        }
        LineEdit::Reseal(l, actor) => edit_json(lines, l.index(n), |v| {
            let Some(bytes) = v.get("record").and_then(Value::as_str).and_then(|r| B64.decode(r).ok()) else { return };
            let Ok(r) = decode_record(&bytes) else { return };
            let (_, forged) =
                seal_record(r.seq, r.prev_hash, r.recorded_at_ms, actor, &r.request_id, &r.operation, r.event);
            v["record"] = B64.encode(forged).into();
        }),
        LineEdit::TruncateLine(l, p) => {
            let l = l.index(n);
            let cut = p.index(lines[l].len().max(1));
            let cut = (0..=cut).rev().find(|&c| lines[l].is_char_boundary(c)).unwrap_or(0);
            lines[l].truncate(cut);
        }
        LineEdit::Replace(l, text) => lines[l.index(n)] = text.replace(['\n', '\r'], " "),
    }
}

/// A JSON line shaped like the export's, with arbitrary contents.
fn json_line() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,12}".prop_map(Value::from),
        prop::collection::vec(any::<u8>(), 0..120).prop_map(|b| Value::from(B64.encode(b))),
        "[0-9a-f]{64}".prop_map(Value::from),
    ];
    let value = leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(".{0,6}", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    let key = prop::sample::select(vec![
        "type",
        "seq",
        "record",
        "format",
        "events",
        "size",
        "head_hash",
        "merkle_root",
        "origin",
        "time",
        "signature",
    ]);
    let kind = prop::sample::select(vec!["header", "event", "checkpoint", "other"]);
    (kind, prop::collection::vec((key, value), 0..6)).prop_map(|(kind, members)| {
        let mut object = serde_json::Map::new();
        object.insert("type".into(), kind.into());
        for (k, v) in members {
            object.insert(k.to_string(), v);
        }
        if kind == "header" {
            object.insert("format".into(), export::EXPORT_FORMAT.into());
        }
        Value::Object(object).to_string()
    })
}

/// Re-seals every record from `from` on (the first one with another actor), re-links the chain
/// and recomputes the closing checkpoint, as a forger without keys can.
fn rechain(lines: &[String], from: usize, actor: &str) -> Vec<String> {
    let mut out = lines.to_vec();
    let n_events = lines.len() - 2;
    let mut prev = ChainHash::GENESIS;
    let mut leaves = Vec::new();
    for (i, line) in out.iter_mut().enumerate().take(n_events + 1).skip(1) {
        let mut v: Value = serde_json::from_str(line).unwrap();
        let r = decode_record(&B64.decode(v["record"].as_str().unwrap()).unwrap()).unwrap();
        let (record, bytes) = if i >= from {
            let who = if i == from { actor } else { r.actor.as_str() };
            seal_record(r.seq, prev, r.recorded_at_ms, who, &r.request_id, &r.operation, r.event)
        } else {
            (r, Vec::new())
        };
        if i >= from {
            v["record"] = B64.encode(&bytes).into();
            *line = v.to_string();
        }
        prev = record.hash;
        leaves.push(record.hash);
    }
    let mut closing = export().checkpoint.clone();
    closing.head_hash = prev;
    closing.merkle_root = merkle::tree_root(&leaves[..], leaves.len() as u64).unwrap();
    let mut closing: Value = serde_json::from_str(&closing.to_json()).unwrap();
    closing["type"] = "checkpoint".into();
    out[n_events + 1] = closing.to_string();
    out
}

#[test]
fn the_unmutated_export_verifies() {
    let e = export();
    let report = verify(&e.lines.join("\n"), Some(&e.checkpoint)).unwrap();
    assert_eq!(report.events, e.checkpoint.size);
    assert!(e.lines.len() >= 12, "{} lines", e.lines.len());
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn arbitrary_text_never_panics(text in "(.{0,40}\n?){0,8}", bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        prop_assert!(verify(&text, None).is_err() || text.lines().count() >= 2);
        let _ = export::verify_export(&mut Cursor::new(bytes), None, &mut |_, _| {});
    }

    #[test]
    fn arbitrary_json_lines_never_panic(lines in prop::collection::vec(json_line(), 0..8), with_header in any::<bool>()) {
        let mut lines = lines;
        if with_header {
            lines.insert(0, export().lines[0].clone());
        }
        let text = lines.join("\n");
        let _ = verify(&text, None);
        let _ = verify(&text, Some(&export().checkpoint));
    }

    #[test]
    fn arbitrary_lines_spliced_into_a_valid_export_never_verify(
        at in any::<Index>(),
        line in json_line(),
    ) {
        let e = export();
        let mut lines = e.lines.clone();
        let at = 1 + at.index(lines.len() - 1);
        lines.insert(at, line);
        let changed = records(&lines) != records(&e.lines);
        let text = lines.join("\n");
        if changed {
            prop_assert!(verify(&text, None).is_err(), "a spliced line verified");
        }
        let _ = verify(&text, Some(&e.checkpoint));
    }

    #[test]
    fn mutated_exports_whose_records_changed_never_verify(edits in prop::collection::vec(line_edit(), 0..4)) {
        let e = export();
        let mut lines = e.lines.clone();
        for edit in &edits {
            apply(&mut lines, edit);
        }
        let text = lines.join("\n");
        let untrusted = verify(&text, None);
        let trusted = verify(&text, Some(&e.checkpoint));
        if records(&lines) != records(&e.lines) {
            prop_assert!(untrusted.is_err(), "changed records verified: {:?}", edits);
            prop_assert!(trusted.is_err(), "changed records verified against the checkpoint: {:?}", edits);
        } else if lines == e.lines {
            prop_assert!(untrusted.is_ok() && trusted.is_ok());
        }
    }

    #[test]
    fn a_rechained_forgery_fails_against_a_trusted_checkpoint(from in 1usize..13, actor in "[a-z]{1,8}") {
        let e = export();
        let from = from.min(e.lines.len() - 2);
        let forged = rechain(&e.lines, from, &actor);
        prop_assume!(records(&forged) != records(&e.lines));
        // Keyless: the forgery is self-consistent, so only an outside checkpoint can tell.
        let fail = verify(&forged.join("\n"), Some(&e.checkpoint));
        prop_assert!(fail.is_err(), "forged suffix from {} verified against the trusted checkpoint", from);
    }
}
