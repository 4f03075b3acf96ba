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

#[test]
fn kat_secret_created_record() {
    let (record, bytes) = seal_record(1, ChainHash::GENESIS, 1_767_225_600_000, "local", "req-1", created_event());
    assert_eq!(bytes[0], 1, "a first-release event keeps record format 1");
    expect_file("kat_secret_created.hex", &hex(&bytes));
    expect_file("kat_secret_created.hash", &record.hash.to_hex());
    assert_eq!(decode_record(&bytes).unwrap(), record);
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

    let (first, _) = seal_record(1, ChainHash::GENESIS, 1_767_225_600_000, "local", "req-1", created_event());
    let event =
        Event::VersionCreated { secret: SecretUid(1), version_id: version, value: sealed, value_digest: digest };
    let (second, bytes) = seal_record(2, first.hash, 1_767_225_600_001, "AKIDEXAMPLE", "req-2", event);
    expect_file("kat_version_created.hash", &second.hash.to_hex());
    expect_file("kat_version_created.hex", &hex(&bytes));
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

/// A record carries its event's format: format 2 for the events added with rotation, resource
/// policies and access dates; a record claiming another format than its event's is refused.
#[test]
fn records_carry_their_events_format() {
    let event = Event::ResourcePolicySet { secret: SecretUid(1), policy: "{}".into() };
    let (record, bytes) = seal_record(2, ChainHash::GENESIS, 1_767_225_600_000, "local", "req-2", event);
    assert_eq!((bytes[0], FORMAT_VERSION), (2, 2));
    assert_eq!(decode_record(&bytes).unwrap(), record);
    let mut downgraded = bytes.clone();
    downgraded[0] = 1;
    assert!(matches!(
        decode_record(&downgraded),
        Err(ledger_core::codec::DecodeError::EventFormat { record: 1, event: 2 })
    ));
    let (_, old) = seal_record(1, ChainHash::GENESIS, 0, "local", "req-1", created_event());
    let mut upgraded = old.clone();
    upgraded[0] = 2;
    assert!(decode_record(&upgraded).is_err());
    upgraded[0] = 3;
    assert_eq!(decode_record(&upgraded), Err(ledger_core::codec::DecodeError::FormatVersion(3)));
}
