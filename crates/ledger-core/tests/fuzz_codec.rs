//! Property-based fuzzing of the record codec on the stable toolchain: `decode_header`,
//! `decode_record`, `record_time`, `verify_record_hash` and `decode::<T>` never panic on
//! arbitrary bytes or on mutated valid records, and no mutation of a sealed record (bit flips,
//! byte overwrites, truncation, extension) decodes and verifies as a record with a valid hash.
//! `evolve` never panics on arbitrary events either (the chain hash is keyless, so anyone can
//! forge a record with a valid hash; only the rules stand between it and the projection).
//!
//! Case counts are small so CI stays fast; `PROPTEST_CASES=100000 cargo test -p ledger-core
//! --test fuzz_codec` runs more.
#![allow(clippy::unwrap_used)]

use ledger_core::codec::{
    decode, decode_header, decode_record, encode, encode_body, record_time, seal_record, verify_record_hash,
    FORMAT_VERSION, RECORD_HEADER_LEN,
};
use ledger_core::crypto::{DataKeys, WrappedKey};
use ledger_core::{
    decide, evolve, ChainHash, Command, CreateSecret, Ctx, Event, PutSecretValue, RotationRules, Scope, SealedValue,
    SecretUid, SecretValue, State, Tag, ValueKind,
};
use proptest::prelude::*;
use proptest::sample::Index;
use rand_chacha::rand_core::SeedableRng;

/// `cases` unless `PROPTEST_CASES` says otherwise.
fn config(cases: u32) -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var("PROPTEST_CASES").is_err() {
        config.cases = cases;
    }
    config.max_shrink_iters = 512;
    config
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![3 => "[a-z/_-]{0,6}", 1 => ".{0,24}", 1 => "\\PC{0,300}"]
}

fn uid() -> impl Strategy<Value = SecretUid> {
    prop_oneof![4 => (0u64..4).prop_map(SecretUid), 1 => any::<u64>().prop_map(SecretUid)]
}

fn version_id() -> impl Strategy<Value = String> {
    prop_oneof![3 => (0u8..4).prop_map(|n| format!("{n:0>32}")), 1 => text()]
}

fn label() -> impl Strategy<Value = String> {
    prop_oneof![3 => prop::sample::select(vec!["AWSCURRENT", "AWSPREVIOUS", "AWSPENDING", "x"]).prop_map(String::from), 1 => text()]
}

fn tag() -> impl Strategy<Value = Tag> {
    (text(), text()).prop_map(|(key, value)| Tag { key, value })
}

fn sealed() -> impl Strategy<Value = SealedValue> {
    (any::<bool>(), any::<[u8; 24]>(), prop::collection::vec(any::<u8>(), 0..80)).prop_map(
        |(binary, nonce, ciphertext)| SealedValue {
            kind: if binary { ValueKind::Binary } else { ValueKind::String },
            nonce,
            ciphertext,
        },
    )
}

fn event() -> impl Strategy<Value = Event> {
    let opt = || proptest::option::of(text());
    prop_oneof![
        (uid(), text(), text(), text(), opt(), opt(), opt(), proptest::option::of(prop::collection::vec(tag(), 0..4)))
            .prop_map(|(secret, region, name, arn, description, kms_key_id, secret_type, tags)| {
                Event::SecretCreated { secret, region, name, arn, description, kms_key_id, secret_type, tags }
            }),
        (uid(), version_id(), sealed(), any::<[u8; 32]>()).prop_map(|(secret, version_id, value, value_digest)| {
            Event::VersionCreated { secret, version_id, value, value_digest }
        }),
        (uid(), label(), proptest::option::of(version_id()), proptest::option::of(version_id()))
            .prop_map(|(secret, label, from, to)| Event::LabelMoved { secret, label, from, to }),
        (uid(), opt(), opt(), opt()).prop_map(|(secret, description, kms_key_id, secret_type)| {
            Event::SecretUpdated { secret, description, kms_key_id, secret_type }
        }),
        (uid(), prop::collection::vec(tag(), 0..4), prop::collection::vec(text(), 0..4))
            .prop_map(|(secret, set, removed)| Event::TagsChanged { secret, set, removed }),
        (uid(), any::<i64>())
            .prop_map(|(secret, deletion_date_ms)| Event::DeletionScheduled { secret, deletion_date_ms }),
        uid().prop_map(|secret| Event::DeletionCancelled { secret }),
        uid().prop_map(|secret| Event::SecretPurged { secret }),
        (uid(), version_id()).prop_map(|(secret, version_id)| Event::VersionPruned { secret, version_id }),
        (uid(), opt(), proptest::option::of((proptest::option::of(any::<i64>()), opt(), opt()))).prop_map(
            |(secret, lambda_arn, rules)| Event::RotationConfigured {
                secret,
                lambda_arn,
                rules: rules.map(|(automatically_after_days, duration, schedule_expression)| RotationRules {
                    automatically_after_days,
                    duration,
                    schedule_expression,
                }),
            }
        ),
        uid().prop_map(|secret| Event::RotationCancelled { secret }),
        (uid(), version_id()).prop_map(|(secret, version_id)| Event::VersionReserved { secret, version_id }),
        (uid(), version_id(), sealed(), any::<[u8; 32]>()).prop_map(|(secret, version_id, value, value_digest)| {
            Event::VersionValueSet { secret, version_id, value, value_digest }
        }),
        (uid(), version_id(), text(), text()).prop_map(|(secret, version_id, step, error)| Event::RotationFailed {
            secret,
            version_id,
            step,
            error
        }),
        (uid(), version_id(), any::<i64>()).prop_map(|(secret, version_id, day_ms)| Event::SecretAccessed {
            secret,
            version_id,
            day_ms
        }),
        (uid(), text()).prop_map(|(secret, policy)| Event::ResourcePolicySet { secret, policy }),
        uid().prop_map(|secret| Event::ResourcePolicyDeleted { secret }),
        (uid(), version_id()).prop_map(|(secret, version_id)| Event::SecretRead { secret, version_id }),
        text().prop_map(|resource| Event::AccessDenied { resource }),
        (any::<u32>(), any::<u32>())
            .prop_map(|(from_key_id, to_key_id)| Event::MasterKeyRotated { from_key_id, to_key_id }),
    ]
}

/// A sealed record's bytes from arbitrary envelope fields.
fn sealed_record() -> impl Strategy<Value = (ledger_core::Record, Vec<u8>)> {
    (any::<u64>(), any::<[u8; 32]>(), any::<i64>(), text(), text(), event()).prop_map(
        |(seq, prev, recorded_at_ms, actor, request_id, event)| {
            seal_record(seq, ChainHash(prev), recorded_at_ms, &actor, &request_id, "FuzzOperation", event)
        },
    )
}

#[derive(Clone, Debug)]
enum Mutation {
    FlipBit(Index, u8),
    SetByte(Index, u8),
    Truncate(Index),
    Extend(Vec<u8>),
    /// Removes one byte from the middle.
    Delete(Index),
    /// Inserts one byte in the middle.
    Insert(Index, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::SetByte(i, b)),
        2 => any::<Index>().prop_map(Mutation::Truncate),
        1 => prop::collection::vec(any::<u8>(), 1..16).prop_map(Mutation::Extend),
        1 => any::<Index>().prop_map(Mutation::Delete),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    match m {
        Mutation::FlipBit(i, bit) if !bytes.is_empty() => {
            let i = i.index(bytes.len());
            bytes[i] ^= 1 << bit;
        }
        Mutation::SetByte(i, b) if !bytes.is_empty() => {
            let i = i.index(bytes.len());
            bytes[i] = *b;
        }
        Mutation::Truncate(i) => bytes.truncate(i.index(bytes.len().max(1))),
        Mutation::Extend(tail) => bytes.extend_from_slice(tail),
        Mutation::Delete(i) if !bytes.is_empty() => {
            bytes.remove(i.index(bytes.len()));
        }
        Mutation::Insert(i, b) => bytes.insert(i.index(bytes.len() + 1), *b),
        _ => {}
    }
}

/// Every decoder on the same bytes; none may panic. Returns (decodes, hash verifies).
fn decode_all(bytes: &[u8]) -> (bool, bool) {
    let header = decode_header(bytes);
    let time = record_time(bytes);
    let verified = verify_record_hash(bytes);
    let record = decode_record(bytes);
    // The decoders agree with each other.
    assert_eq!(header.is_ok(), verified.is_ok(), "header and hash check disagree");
    if let Ok(r) = &record {
        let (h, _) = header.as_ref().unwrap();
        assert_eq!((r.seq, r.prev_hash, r.hash), (h.seq, h.prev_hash, h.hash));
        assert_eq!(time.as_ref().ok(), Some(&r.recorded_at_ms));
    }
    let _ = decode::<State>(bytes).map(|mut s| s.rebuild_indexes());
    let _ = decode::<WrappedKey>(bytes);
    let _ = decode::<Event>(bytes);
    let _ = decode::<Vec<Tag>>(bytes);
    (record.is_ok(), verified == Ok(true))
}

/// A projection with a few secrets, versions and labels, built by the core's own rules.
fn sample_state() -> State {
    static STATE: std::sync::OnceLock<State> = std::sync::OnceLock::new();
    STATE.get_or_init(build_state).clone()
}

fn build_state() -> State {
    let scope = Scope::new("us-east-1", "000000000000");
    let mut state = State::default();
    let mut keys = DataKeys::default();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut seq = 0u64;
    let mut run = |state: &mut State, keys: &mut DataKeys, cmd: Command| {
        let mut ctx = Ctx { scope: &scope, now_ms: 1_767_225_600_000 + seq as i64, rng: &mut rng };
        let decision = decide(state, keys, &cmd, &mut ctx).unwrap();
        if let Some((uid, key)) = decision.new_data_key {
            keys.insert(uid, key);
        }
        for event in &decision.events {
            seq += 1;
            evolve(state, seq, 1_767_225_600_000, event).unwrap();
        }
    };
    for (i, name) in ["db/prod", "api-key", "tagged"].iter().enumerate() {
        run(
            &mut state,
            &mut keys,
            Command::CreateSecret(CreateSecret {
                name: (*name).into(),
                client_request_token: Some(format!("{i:0>32}")),
                value: Some(SecretValue::string("v")),
                tags: Some(vec![Tag { key: "team".into(), value: "x".into() }]),
                ..CreateSecret::default()
            }),
        );
        run(
            &mut state,
            &mut keys,
            Command::PutSecretValue(PutSecretValue {
                secret_id: (*name).into(),
                client_request_token: Some(format!("{:0>32}", i + 10)),
                value: Some(SecretValue::string("w")),
                version_stages: None,
            }),
        );
    }
    state
}

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let (_, verified) = decode_all(&bytes);
        prop_assert!(!verified || bytes.len() >= RECORD_HEADER_LEN);
    }

    #[test]
    fn arbitrary_bodies_behind_a_valid_header_never_panic(
        header in any::<[u8; 72]>(),
        body in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut bytes = vec![FORMAT_VERSION];
        bytes.extend_from_slice(&header);
        bytes.extend_from_slice(&body);
        let (_, verified) = decode_all(&bytes);
        prop_assert!(!verified, "random bytes carry a valid chain hash");
    }
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn sealed_records_round_trip((record, bytes) in sealed_record()) {
        prop_assert_eq!(decode_all(&bytes), (true, true));
        prop_assert_eq!(decode_record(&bytes).unwrap(), record.clone());
        prop_assert_eq!(record_time(&bytes).unwrap(), record.recorded_at_ms);
    }

    #[test]
    fn mutated_records_never_verify(
        (record, bytes) in sealed_record(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let mut mutated = bytes.clone();
        for m in &mutations {
            apply(&mut mutated, m);
        }
        let (decodes, verifies) = decode_all(&mutated);
        if mutated == bytes {
            prop_assert!(decodes && verifies, "a no-op mutation");
            prop_assert_eq!(decode_record(&mutated).unwrap(), record);
        } else {
            // The hash covers every byte: a changed record never verifies, let alone decodes
            // to a different valid record.
            prop_assert!(!verifies, "mutated record still verifies");
        }
    }

    #[test]
    fn re_sealed_mutations_decode_canonically(
        (record, bytes) in sealed_record(),
        m in mutation(),
    ) {
        // Forge: mutate the body, then recompute the hash as an attacker can (no key needed).
        let mut body = bytes[RECORD_HEADER_LEN..].to_vec();
        apply(&mut body, &m);
        let hash = ledger_core::chain::chain_hash(bytes[0], &record.prev_hash, record.seq, &body);
        let mut forged = bytes[..41].to_vec();
        forged.extend_from_slice(&hash.0);
        forged.extend_from_slice(&body);
        let (decodes, verifies) = decode_all(&forged);
        prop_assert!(verifies, "a re-sealed record verifies: the hash alone proves integrity, not authorship");
        if decodes {
            // The encoding is canonical: what decodes re-encodes to the very same bytes, so two
            // different bodies never mean the same record.
            let r = decode_record(&forged).unwrap();
            prop_assert_eq!(encode_body(r.recorded_at_ms, &r.actor, &r.request_id, &r.operation, &r.event), body);
        }
    }

    #[test]
    fn mutated_encodings_of_bulk_structures_never_panic(
        which in 0u8..3,
        mutations in prop::collection::vec(mutation(), 0..4),
    ) {
        let state = sample_state();
        let wrapped = WrappedKey { master_key_id: 1, nonce: [3; 24], ciphertext: vec![9; 48] };
        let mut bytes = match which {
            0 => encode(&state),
            1 => encode(&wrapped),
            _ => encode(&state.secrets().flat_map(|s| s.tags.clone().unwrap_or_default()).collect::<Vec<Tag>>()),
        };
        let original = bytes.clone();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        decode_all(&bytes);
        if bytes == original {
            match which {
                0 => {
                    let mut decoded = decode::<State>(&bytes).unwrap();
                    decoded.rebuild_indexes();
                    prop_assert_eq!(decoded, state);
                }
                1 => prop_assert_eq!(decode::<WrappedKey>(&bytes).unwrap(), wrapped),
                _ => prop_assert!(decode::<Vec<Tag>>(&bytes).is_ok()),
            }
        }
    }

    #[test]
    fn evolve_never_panics_on_arbitrary_events(events in prop::collection::vec(event(), 1..12), fresh in any::<bool>()) {
        let mut state = if fresh { State::default() } else { sample_state() };
        for (i, event) in events.iter().enumerate() {
            let _ = evolve(&mut state, 100 + i as u64, 1_767_225_600_000, event);
        }
    }
}
