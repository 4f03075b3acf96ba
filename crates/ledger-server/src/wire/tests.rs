//! Unit tests of the wire conversions: body parsing, member types, blobs, timestamps, shapes.

use ledger_core::query::{SecretDescription, VersionEntry, VersionList};

use super::*;

fn input(body: &str) -> Input {
    Input::parse(body.as_bytes()).unwrap()
}

fn serialization_error<T: std::fmt::Debug>(r: Result<T, ApiError>) -> String {
    let e = r.unwrap_err();
    assert_eq!(e.code, "SerializationException", "{e:?}");
    assert_eq!(e.status.as_u16(), 400);
    e.message
}

#[test]
fn empty_and_whitespace_bodies_are_empty_objects() {
    for body in ["", "  \n", "{}"] {
        assert!(input(body).string("SecretId").unwrap().is_none());
    }
}

#[test]
fn malformed_bodies_are_serialization_errors() {
    for body in ["{", "[]", "\"x\"", "12", "{\"a\":}", "nul"] {
        serialization_error(Input::parse(body.as_bytes()));
    }
}

#[test]
fn wrong_member_types_name_the_member_not_the_value() {
    let i = input(r#"{"SecretString": 123456, "Flag": "yes", "N": 1.5, "L": ["a", 2], "T": [1]}"#);
    let msg = serialization_error(i.string("SecretString"));
    assert!(msg.contains("SecretString") && !msg.contains("123456"), "{msg}");
    serialization_error(i.bool("Flag"));
    serialization_error(i.integer("N"));
    serialization_error(i.string_list("L"));
    serialization_error(i.tags("T"));
}

#[test]
fn null_is_absent_and_unknown_members_are_ignored() {
    let i = input(r#"{"SecretId": null, "Whatever": {"deep": [1, 2]}, "MaxResults": 5}"#);
    assert_eq!(i.string("SecretId").unwrap(), None);
    assert_eq!(i.integer("MaxResults").unwrap(), Some(5));
    let missing = i.required_string("SecretId", "secretId").unwrap_err();
    assert_eq!(missing.code, "ValidationException");
    assert!(missing.message.contains("'secretId'"), "{}", missing.message);
}

#[test]
fn blobs_are_standard_base64_with_padding_decoded_once() {
    let i = input(r#"{"SecretBinary": "Zm9vdGVzdA=="}"#);
    assert_eq!(i.blob("SecretBinary").unwrap().unwrap(), b"footest");
    for bad in ["Zm9vdGVzdA", "Zm9v_GVzdA==", "not base64!"] {
        let i = input(&format!(r#"{{"SecretBinary": "{bad}"}}"#));
        let msg = serialization_error(i.blob("SecretBinary"));
        assert!(!msg.contains(bad), "{msg}");
    }
    // Base64 of base64 stays base64 text after one decode.
    let i = input(r#"{"SecretBinary": "Wm05dmRHVnpkQT09"}"#);
    assert_eq!(i.blob("SecretBinary").unwrap().unwrap(), b"Zm9vdGVzdA==");
}

#[test]
fn secret_value_goes_through_the_core_checks() {
    let both = input(r#"{"SecretString": "a", "SecretBinary": "YQ=="}"#);
    assert_eq!(both.secret_value().unwrap().unwrap_err(), ledger_core::SmError::BothValues);
    assert!(input("{}").secret_value().unwrap().unwrap().is_none());
    let empty = input(r#"{"SecretString": ""}"#);
    assert_eq!(empty.secret_value().unwrap().unwrap_err().code().as_str(), "ValidationException");
}

#[test]
fn tags_and_filters() {
    let i = input(
        r#"{"Tags": [{"Key": "a", "Value": "1"}, {"Key": "b"}], "Filters": [{"Key": "name", "Values": ["x/"]}]}"#,
    );
    let tags = i.tags("Tags").unwrap().unwrap();
    assert_eq!((tags[1].key.as_str(), tags[1].value.as_str()), ("b", ""));
    let filters = i.filters("Filters").unwrap().unwrap();
    assert_eq!(filters[0].values, ["x/"]);
    let no_key = input(r#"{"Tags": [{"Value": "1"}]}"#).tags("Tags").unwrap_err();
    assert_eq!(no_key.code, "ValidationException");
    assert!(no_key.message.contains("tags.1.member.key"));
}

#[test]
fn timestamps_are_epoch_seconds_with_milliseconds() {
    assert_eq!(serde_json::to_string(&epoch_seconds(1_523_477_145_713)).unwrap(), "1523477145.713");
    assert_eq!(serde_json::to_string(&epoch_seconds(1_700_000_000_001)).unwrap(), "1700000000.001");
    assert_eq!(epoch_seconds(1_523_923_200_000), 1_523_923_200.0);
}

fn description() -> SecretDescription {
    SecretDescription {
        arn: "arn:aws:secretsmanager:us-east-1:000000000000:secret:a-AbCdEf".into(),
        name: "a".into(),
        description: Some(String::new()),
        kms_key_id: None,
        secret_type: None,
        tags: None,
        created_at_ms: 1_000,
        last_changed_at_ms: 2_500,
        deleted_at_ms: None,
        versions_to_stages: Vec::new(),
        rotation_enabled: false,
        rotation_lambda_arn: None,
        rotation_rules: None,
        last_rotated_ms: None,
        next_rotation_ms: None,
        last_accessed_ms: None,
    }
}

#[test]
fn description_omits_absent_members_and_names_the_label_map_per_operation() {
    let json = serde_json::to_value(DescriptionOut::new(description(), false)).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "ARN": "arn:aws:secretsmanager:us-east-1:000000000000:secret:a-AbCdEf",
            "Name": "a",
            "LastChangedDate": 2.5,
            "CreatedDate": 1.0
        })
    );
    let mut d = description();
    d.tags = Some(Vec::new());
    d.versions_to_stages = vec![("v1".into(), vec!["AWSCURRENT".into()])];
    let described = serde_json::to_value(DescriptionOut::new(d.clone(), false)).unwrap();
    assert_eq!(described["Tags"], serde_json::json!([]));
    assert_eq!(described["VersionIdsToStages"], serde_json::json!({"v1": ["AWSCURRENT"]}));
    let listed = serde_json::to_value(DescriptionOut::new(d, true)).unwrap();
    assert_eq!(listed["SecretVersionsToStages"], serde_json::json!({"v1": ["AWSCURRENT"]}));
    assert!(listed.get("VersionIdsToStages").is_none());
}

#[test]
fn deprecated_versions_have_no_stages_key() {
    let list = VersionList {
        arn: "arn".into(),
        name: "a".into(),
        versions: vec![
            VersionEntry {
                version_id: "old".into(),
                version_stages: vec![],
                created_at_ms: 1_000,
                last_accessed_ms: None,
            },
            VersionEntry {
                version_id: "new".into(),
                version_stages: vec!["AWSCURRENT".into()],
                created_at_ms: 2_000,
                last_accessed_ms: None,
            },
        ],
        next_token: None,
    };
    let json = serde_json::to_value(ListSecretVersionIdsOut::new(list, None)).unwrap();
    assert_eq!(
        json["Versions"][0],
        serde_json::json!({"VersionId": "old", "CreatedDate": 1.0, "KmsKeyIds": ["DefaultEncryptionKey"]})
    );
    assert_eq!(json["Versions"][1]["VersionStages"], serde_json::json!(["AWSCURRENT"]));
    assert!(json.get("NextToken").is_none());
}
