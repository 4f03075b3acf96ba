//! Known-answer vectors: a fixed key, nonce and event must give fixed bytes and hashes, so an
//! encoder or hash change cannot slip through. The bytes are documented in docs/FORMAT.md.

use ledger_core::codec::{decode_record, seal_record, FORMAT_VERSION};
use ledger_core::crypto::{open_value, seal_value, unwrap_key, value_digest, wrap_key, DataKey, MasterKey};
use ledger_core::*;

/// Compares with `tests/data/NAME`; `UPDATE_EXPECT=1` rewrites the file instead.
fn expect_file(name: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data").join(name);
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&path, format!("{actual}\n")).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap();
    assert_eq!(actual, expected.trim(), "known-answer vector {name} changed");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn created_event() -> Event {
    Event::SecretCreated {
        secret: SecretUid(1),
        region: "us-east-1".into(),
        name: "db".into(),
        arn: "arn:aws:secretsmanager:us-east-1:000000000000:secret:db-AbC123".into(),
        description: None,
        kms_key_id: None,
        secret_type: None,
        tags: None,
    }
}

fn read_hex(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data").join(name);
    let text = std::fs::read_to_string(path).unwrap();
    (0..text.trim().len()).step_by(2).map(|i| u8::from_str_radix(&text.trim()[i..i + 2], 16).unwrap()).collect()
}

#[test]
fn kat_secret_created_record() {
    let (record, bytes) =
        seal_record(1, ChainHash::GENESIS, 1_767_225_600_000, "local", "req-1", "CreateSecret", created_event());
    assert_eq!(bytes[0], FORMAT_VERSION);
    expect_file("kat_secret_created_v2.hex", &hex(&bytes));
    expect_file("kat_secret_created_v2.hash", &record.hash.to_hex());
    assert_eq!(decode_record(&bytes).unwrap(), record);
}

/// The format-1 vector, written by the first release, still decodes and verifies: the same
/// event, with no operation.
#[test]
fn kat_format_1_record_still_reads() {
    let bytes = read_hex("kat_secret_created.hex");
    assert_eq!(bytes[0], 1);
    assert!(ledger_core::codec::verify_record_hash(&bytes).unwrap());
    let record = decode_record(&bytes).unwrap();
    assert_eq!((record.event, record.operation.as_str(), record.actor.as_str()), (created_event(), "", "local"));
    let hash =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/kat_secret_created.hash"))
            .unwrap();
    assert_eq!(record.hash.to_hex(), hash.trim());
    let bytes = read_hex("kat_version_created.hex");
    assert!(ledger_core::codec::verify_record_hash(&bytes).unwrap());
    assert!(matches!(decode_record(&bytes).unwrap().event, Event::VersionCreated { .. }));
}

#[test]
fn kat_sealed_value_and_chain() {
    let key = DataKey::from_bytes([0x11; 32]);
    let value = SecretValue::string("hunter2");
    let version = "0".repeat(32);
    let sealed = seal_value(&key, SecretUid(1), &version, &value, [0x22; 24]);
    expect_file("kat_sealed.hex", &hex(&sealed.ciphertext));
    let digest = value_digest(&key, &value);
    expect_file("kat_digest.hex", &hex(&digest));
    assert_eq!(open_value(&key, SecretUid(1), &version, &sealed), Some(value.clone()));
    // The binding: another secret, version or kind does not open it.
    assert_eq!(open_value(&key, SecretUid(2), &version, &sealed), None);
    assert_eq!(open_value(&key, SecretUid(1), &"1".repeat(32), &sealed), None);
    let mut as_binary = sealed.clone();
    as_binary.kind = ValueKind::Binary;
    assert_eq!(open_value(&key, SecretUid(1), &version, &as_binary), None);

    let (first, _) =
        seal_record(1, ChainHash::GENESIS, 1_767_225_600_000, "local", "req-1", "CreateSecret", created_event());
    let event =
        Event::VersionCreated { secret: SecretUid(1), version_id: version, value: sealed, value_digest: digest };
    let (second, bytes) =
        seal_record(2, first.hash, 1_767_225_600_001, "AKIDEXAMPLE", "req-2", "PutSecretValue", event);
    expect_file("kat_version_created_v2.hash", &second.hash.to_hex());
    expect_file("kat_version_created_v2.hex", &hex(&bytes));
}

#[test]
fn kat_wrapped_key() {
    let master = MasterKey::from_bytes(1, [0x33; 32]);
    let key = DataKey::from_bytes([0x11; 32]);
    let wrapped = wrap_key(&master, SecretUid(9), &key, [0x44; 24]);
    expect_file("kat_wrapped_key.hex", &hex(&wrapped.ciphertext));
    assert!(unwrap_key(&master, SecretUid(9), &wrapped).is_some());
    assert!(unwrap_key(&master, SecretUid(8), &wrapped).is_none());
    assert!(unwrap_key(&MasterKey::from_bytes(1, [0x34; 32]), SecretUid(9), &wrapped).is_none());
}

/// Format 2 writes the operation into every record; a format-1 record cannot hold an event that
/// format 2 introduced, and an unknown format is refused by its first byte.
#[test]
fn record_formats() {
    let event = Event::ResourcePolicySet { secret: SecretUid(1), policy: "{}".into() };
    let (record, bytes) =
        seal_record(2, ChainHash::GENESIS, 1_767_225_600_000, "local", "req-2", "PutResourcePolicy", event.clone());
    assert_eq!((bytes[0], FORMAT_VERSION, record.operation.as_str()), (2, 2, "PutResourcePolicy"));
    assert_eq!(decode_record(&bytes).unwrap(), record);
    // A format-1 body (the same without the operation) around a format-2 event, correctly hashed.
    let header = ledger_core::codec::RECORD_HEADER_LEN;
    let body = &bytes[header..];
    // recorded_at (8) ‖ actor (8 + 5) ‖ request_id (8 + 5) ‖ operation (8 + 17) ‖ event
    let v1_body: Vec<u8> = [&body[..34], &body[34 + 8 + 17..]].concat();
    let hash = ledger_core::chain::chain_hash(1, &ChainHash::GENESIS, 2, &v1_body);
    let mut forged = vec![1u8];
    forged.extend_from_slice(&2u64.to_be_bytes());
    forged.extend_from_slice(&ChainHash::GENESIS.0);
    forged.extend_from_slice(&hash.0);
    forged.extend_from_slice(&v1_body);
    assert!(ledger_core::codec::verify_record_hash(&forged).unwrap());
    assert_eq!(decode_record(&forged), Err(ledger_core::codec::DecodeError::EventFormat { record: 1, event: 2 }));
    let mut future = bytes.clone();
    future[0] = 3;
    assert_eq!(decode_record(&future), Err(ledger_core::codec::DecodeError::FormatVersion(3)));
    let mut as_v1 = bytes.clone();
    as_v1[0] = 1;
    assert!(decode_record(&as_v1).is_err(), "a format-2 body read as format 1");
}
