//! Checkpoints: JSON round trips, signatures, and what a forged one fails.

use super::*;
use crate::merkle::{leaf_hash, MerkleBuilder};

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn sample() -> Checkpoint {
    let chain = [ChainHash([0; 32]), ChainHash([1; 32]), ChainHash([2; 32])];
    let mut builder = MerkleBuilder::new();
    chain.iter().for_each(|c| builder.push(leaf_hash(c)));
    Checkpoint::new("ledger.example", 3, chain[2], builder.root(), 1_700_000_000_000)
}

fn signed() -> Checkpoint {
    let mut c = sample();
    c.sign(&key(7)).unwrap();
    c
}

#[test]
fn signed_text_is_the_documented_form() {
    let text = sample().signed_text().unwrap();
    let lines: Vec<&str> = text.split('\n').collect();
    assert_eq!(lines.len(), 7, "six lines, each ending in a newline");
    assert_eq!(lines[0], "secret-ledger checkpoint v1");
    assert_eq!(lines[1], "ledger.example");
    assert_eq!(lines[2], "3");
    assert_eq!(lines[3], "02".repeat(32));
    assert_eq!(lines[4], "3f97043de3a7a8fe71e55454f9f9dead4e44301744481419a20754c5a4f5ee38");
    assert_eq!(lines[5], "1700000000000");
    assert_eq!(lines[6], "");
    let mut negative = sample();
    negative.time_ms = -5;
    assert!(negative.signed_text().unwrap().ends_with("\n-5\n"));
}

#[test]
fn json_round_trip_unsigned_and_signed() {
    for c in [sample(), signed()] {
        let json = c.to_json();
        assert_eq!(Checkpoint::from_json(&json).unwrap(), c, "{json}");
        // serde embedding gives the same shape.
        assert_eq!(serde_json::to_string(&c).unwrap(), json);
        assert_eq!(serde_json::from_str::<Checkpoint>(&json).unwrap(), c);
    }
    let json = sample().to_json();
    assert!(!json.contains("signature"), "absent signature is omitted: {json}");
    assert!(json.contains(r#""format":"secret-ledger checkpoint v1""#), "{json}");
    assert!(json.contains(&format!(r#""head_hash":"{}""#, "02".repeat(32))), "{json}");
    let value: serde_json::Value = serde_json::from_str(&signed().to_json()).unwrap();
    assert_eq!(value["signature"]["public_key"].as_str().unwrap(), hex::encode(key(7).verifying_key().to_bytes()));
    assert_eq!(value["signature"]["sig"].as_str().unwrap().len(), 128);
}

#[test]
fn from_json_rejects_malformed_input() {
    let good: serde_json::Value = serde_json::from_str(&signed().to_json()).unwrap();
    let with = |path: &[&str], v: serde_json::Value| {
        let mut doc = good.clone();
        let mut slot = &mut doc;
        for p in path {
            slot = &mut slot[*p];
        }
        *slot = v;
        Checkpoint::from_json(&doc.to_string())
    };
    use serde_json::json;
    assert!(matches!(Checkpoint::from_json("not json"), Err(CheckpointError::Json(_))));
    assert!(matches!(with(&["size"], json!(-1)), Err(CheckpointError::Json(_))));
    assert_eq!(with(&["format"], json!("v2")), Err(CheckpointError::UnknownFormat("v2".into())));
    assert_eq!(with(&["head_hash"], json!("02")), Err(CheckpointError::BadHex { field: "head_hash", len: 32 }));
    assert_eq!(
        with(&["merkle_root"], json!("3F97043DE3A7A8FE71E55454F9F9DEAD4E44301744481419A20754C5A4F5EE38")),
        Err(CheckpointError::BadHex { field: "merkle_root", len: 32 }),
        "uppercase hex is not canonical"
    );
    assert_eq!(
        with(&["signature", "sig"], json!("zz".repeat(64))),
        Err(CheckpointError::BadHex { field: "signature.sig", len: 64 })
    );
    assert_eq!(
        with(&["signature", "public_key"], json!("00".repeat(31))),
        Err(CheckpointError::BadHex { field: "signature.public_key", len: 32 })
    );
    assert_eq!(with(&["origin"], json!("a\nb")), Err(CheckpointError::BadOrigin));
    assert_eq!(with(&["origin"], json!("")), Err(CheckpointError::BadOrigin));
    assert_eq!(with(&["size"], json!(0)), Err(CheckpointError::BadEmpty));
    // Unknown fields are ignored.
    assert_eq!(with(&["extra"], json!(1)).unwrap(), signed());
}

#[test]
fn signature_verifies() {
    let c = signed();
    assert_eq!(c.verify_signature(), Ok(()));
    assert_eq!(c.verify_signature_by(&key(7).verifying_key()), Ok(()));
    assert_eq!(c.verify_signature_by(&key(8).verifying_key()), Err(CheckpointError::UntrustedKey));
    assert_eq!(sample().verify_signature(), Err(CheckpointError::Unsigned));
    assert_eq!(sample().verify_signature_by(&key(7).verifying_key()), Err(CheckpointError::Unsigned));
    // It survives the JSON round trip.
    assert_eq!(Checkpoint::from_json(&c.to_json()).unwrap().verify_signature(), Ok(()));
    // Re-signing replaces the signature.
    let mut again = c.clone();
    again.sign(&key(8)).unwrap();
    assert_eq!(again.verify_signature_by(&key(8).verifying_key()), Ok(()));
}

#[test]
fn ed25519_is_deterministic_known_answer() {
    // RFC 8032 §7.1 TEST 1 secret key, to pin that this is plain Ed25519.
    let secret: [u8; 32] =
        hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60").unwrap().try_into().unwrap();
    let signing = SigningKey::from_bytes(&secret);
    assert_eq!(
        hex::encode(signing.verifying_key().to_bytes()),
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    );
    let mut a = sample();
    let mut b = sample();
    a.sign(&signing).unwrap();
    b.sign(&signing).unwrap();
    assert_eq!(a.signature, b.signature);
}

#[test]
fn tampered_fields_fail_verification() {
    let c = signed();
    let tampered: Vec<(&str, Checkpoint)> = vec![
        ("origin", Checkpoint { origin: "ledger.example2".into(), ..c.clone() }),
        ("size", Checkpoint { size: 4, ..c.clone() }),
        ("head_hash", Checkpoint { head_hash: ChainHash([3; 32]), ..c.clone() }),
        ("merkle_root", Checkpoint { merkle_root: [0xee; 32], ..c.clone() }),
        ("time_ms", Checkpoint { time_ms: c.time_ms + 1, ..c.clone() }),
    ];
    for (field, t) in tampered {
        assert_eq!(t.verify_signature(), Err(CheckpointError::BadSignature), "{field}");
    }
    let sig = c.signature.unwrap();
    for byte in [0, 31, 32, 63] {
        let mut s = sig;
        s.sig[byte] ^= 1;
        let t = Checkpoint { signature: Some(s), ..c.clone() };
        assert_eq!(t.verify_signature(), Err(CheckpointError::BadSignature), "sig byte {byte}");
    }
    // Someone else's key substituted for the signer's.
    let other = Checkpoint {
        signature: Some(CheckpointSignature { public_key: key(8).verifying_key().to_bytes(), ..sig }),
        ..c.clone()
    };
    assert_eq!(other.verify_signature(), Err(CheckpointError::BadSignature));
    // A public key that is not a curve point (y = 2 has no x on edwards25519).
    let mut not_a_point = [0u8; 32];
    not_a_point[0] = 2;
    let bad_key = Checkpoint { signature: Some(CheckpointSignature { public_key: not_a_point, ..sig }), ..c.clone() };
    assert_eq!(bad_key.verify_signature(), Err(CheckpointError::BadPublicKey));
    // Tampering in the JSON text is caught the same way.
    let json = c.to_json().replace(r#""size":3"#, r#""size":2"#);
    assert_eq!(Checkpoint::from_json(&json).unwrap().verify_signature(), Err(CheckpointError::BadSignature));
}

#[test]
fn invalid_checkpoints_cannot_be_signed() {
    let mut c = Checkpoint { origin: "two\nlines".into(), ..sample() };
    assert_eq!(c.sign(&key(1)), Err(CheckpointError::BadOrigin));
    assert_eq!(c.signature, None);
    let mut empty = Checkpoint::new("x", 0, ChainHash::GENESIS, empty_root(), 0);
    assert_eq!(empty.sign(&key(1)), Ok(()));
    assert_eq!(empty.verify_signature(), Ok(()));
    empty.merkle_root = [0; 32];
    assert_eq!(empty.verify_signature(), Err(CheckpointError::BadEmpty));
}
