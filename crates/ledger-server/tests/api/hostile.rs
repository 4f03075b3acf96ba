//! Hostile input, table-driven: malformed framing and JSON, wrong member types, invalid UTF-8,
//! oversized and deeply nested bodies, values over their limits counted in bytes, bad tokens,
//! names, ARNs, pagination and recovery windows. Every refused case must answer a 4xx with a
//! JSON body holding `__type` (one of the acceptable shapes) and `Message`, append nothing to
//! the log, and leave the server answering a valid request. A few boundary cases (exactly at a
//! limit) must be accepted instead.

use std::time::{Duration, SystemTime};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::{json, Value};

use crate::common::{send, sign_headers, token, Raw, TestServer, AKID, SECRET};

/// Any answer slower than this is a hang.
const CASE_TIMEOUT: Duration = Duration::from_secs(30);

/// Where AWS's behaviour is not verified (spec §1.4, §2), any of these is right.
const BAD_VALUE: &[&str] = &["ValidationException", "InvalidParameterException"];
const NOT_FOUND_OR_INVALID: &[&str] = &["ResourceNotFoundException", "ValidationException"];
const SER: &[&str] = &["SerializationException"];
const SER_OR_VALUE: &[&str] = &["SerializationException", "ValidationException", "InvalidParameterException"];
const VALIDATION: &[&str] = &["ValidationException"];
const UNKNOWN_OP: &[&str] = &["UnknownOperationException"];
const NOT_FOUND: &[&str] = &["ResourceNotFoundException"];
const BAD_TOKEN: &[&str] = &["InvalidNextTokenException"];
const BAD_TOKEN_OR_VALUE: &[&str] = &["InvalidNextTokenException", "ValidationException"];
const BAD_PARAM: &[&str] = &["InvalidParameterException"];
const TOO_MANY_TAGS: &[&str] = &["LimitExceededException", "ValidationException", "InvalidParameterException"];

enum Expect {
    /// 4xx with one of these `__type`s; nothing appended.
    Refused(&'static [&'static str]),
    /// 200; `appends` says whether the log grows.
    Accepted { appends: bool },
}

struct Case {
    name: String,
    /// `None`: no `X-Amz-Target` header at all.
    target: Option<String>,
    /// Extra headers, signed with the rest.
    headers: Vec<(&'static str, String)>,
    /// Region of the credential scope.
    region: &'static str,
    body: Vec<u8>,
    expect: Expect,
}

fn case(name: impl Into<String>, op: &str, body: impl Into<Vec<u8>>, expect: Expect) -> Case {
    Case {
        name: name.into(),
        target: Some(format!("secretsmanager.{op}")),
        headers: Vec::new(),
        region: "us-east-1",
        body: body.into(),
        expect,
    }
}

fn refused(name: impl Into<String>, op: &str, body: impl Into<Vec<u8>>, codes: &'static [&'static str]) -> Case {
    case(name, op, body, Expect::Refused(codes))
}

fn refused_json(name: impl Into<String>, op: &str, body: Value, codes: &'static [&'static str]) -> Case {
    refused(name, op, body.to_string(), codes)
}

/// A CreateSecret body with a fresh token and the given extra members.
fn create(name: &str, extra: Value) -> Value {
    let mut body = json!({"Name": name, "ClientRequestToken": token()});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    body
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn tags(n: usize) -> Value {
    Value::Array((0..n).map(|i| json!({"Key": format!("k{i}"), "Value": ""})).collect())
}

/// The whole table; `arn` is the full ARN of the secret `seed`.
fn cases(arn: &str) -> Vec<Case> {
    let other_account = arn.replace(":000000000000:", ":111111111111:");
    let other_region = arn.replace(":us-east-1:", ":eu-west-1:");
    let wrong_suffix = format!("{}XXXXXX", &arn[..arn.len() - 6]);
    let mut c = vec![
        // Framing: the target header.
        refused("unknown target", "RotateTheMoon", "{}", UNKNOWN_OP),
        refused("unserved AWS operation", "ReplicateSecretToRegions", r#"{"SecretId": "seed"}"#, UNKNOWN_OP),
        refused("empty operation", "", "{}", UNKNOWN_OP),
        refused("lower-case operation", "describeSecret", r#"{"SecretId": "seed"}"#, UNKNOWN_OP),
        refused("operation with a trailing dot", "DescribeSecret.", r#"{"SecretId": "seed"}"#, UNKNOWN_OP),
        refused("10 KB operation name", &"A".repeat(10_000), "{}", UNKNOWN_OP),
    ];
    for (name, target) in [
        ("other service prefix", "kms.CreateSecret"),
        ("capitalised prefix", "SecretsManager.DescribeSecret"),
        ("prefix without dot", "secretsmanagerDescribeSecret"),
        ("prefix only", "secretsmanager"),
        ("unknown audit operation", "SecretLedger.DropTables"),
        ("path-like target", "../secretsmanager.DescribeSecret"),
    ] {
        let mut k = refused(format!("target {name}"), "x", r#"{"SecretId": "seed"}"#, UNKNOWN_OP);
        k.target = Some(target.into());
        c.push(k);
    }
    let mut k = refused("missing target", "x", r#"{"SecretId": "seed"}"#, &["IncompleteSignatureException"]);
    k.target = None;
    c.push(k);
    // Two targets: whichever the server picks, DeleteSecret of a missing secret appends nothing.
    let mut k = refused(
        "duplicate target header",
        "DescribeSecret",
        r#"{"SecretId": "no-such-secret"}"#,
        &["ResourceNotFoundException", "UnknownOperationException", "InvalidSignatureException"],
    );
    k.headers.push(("x-amz-target", "secretsmanager.DeleteSecret".into()));
    c.push(k);
    let mut k = refused("signed for another region", "DescribeSecret", r#"{"SecretId": "seed"}"#, NOT_FOUND);
    k.region = "eu-west-1";
    c.push(k);

    // Bad JSON.
    for (name, body) in [
        ("truncated JSON", br#"{"Name": "x", "SecretString": "#.to_vec()),
        ("trailing garbage", br#"{"Name": "x", "SecretString": "v"} xyz"#.to_vec()),
        ("two objects", br"{}{}".to_vec()),
        ("array body", b"[]".to_vec()),
        ("string body", br#""x""#.to_vec()),
        ("null body", b"null".to_vec()),
        ("number body", b"12".to_vec()),
        ("boolean body", b"true".to_vec()),
        ("not JSON at all", b"Name=x&SecretString=v".to_vec()),
        ("NUL byte body", b"\0".to_vec()),
        ("UTF-8 BOM before the object", b"\xEF\xBB\xBF{}".to_vec()),
        ("invalid UTF-8 body", b"\xff\xfe{}".to_vec()),
        ("invalid UTF-8 in a string value", b"{\"Name\": \"bad\xffname\", \"SecretString\": \"v\"}".to_vec()),
        ("invalid UTF-8 in a member name", b"{\"Na\xc3me\": \"x\"}".to_vec()),
        ("lone surrogate escape", br#"{"Name": "x\ud800", "SecretString": "v"}"#.to_vec()),
        ("number out of range", br#"{"Name": "x", "Tags": 1e999999}"#.to_vec()),
        ("100k nested arrays", "[".repeat(100_000).into_bytes()),
        ("100k nested objects", r#"{"a":"#.repeat(100_000).into_bytes()),
        ("deep nesting inside a member", format!(r#"{{"Name": "x", "Tags": {}}}"#, "[".repeat(100_000)).into_bytes()),
    ] {
        c.push(refused(name, "CreateSecret", body, SER));
    }
    c.push(refused(
        "10 MiB body",
        "CreateSecret",
        format!(r#"{{"Name": "big", "SecretString": "{}"}}"#, "x".repeat(10 * 1024 * 1024)),
        &["RequestEntityTooLargeException"],
    ));

    // Wrong member types.
    for (name, op, body) in [
        ("SecretId as number", "DescribeSecret", json!({"SecretId": 5})),
        ("SecretId as array", "DescribeSecret", json!({"SecretId": ["seed"]})),
        ("SecretId as object", "DescribeSecret", json!({"SecretId": {"Name": "seed"}})),
        ("SecretId as boolean", "GetSecretValue", json!({"SecretId": true})),
        ("MaxResults as string", "ListSecrets", json!({"MaxResults": "10"})),
        ("MaxResults as fraction", "ListSecrets", json!({"MaxResults": 1.5})),
        ("MaxResults 1e9 (a float)", "ListSecrets", json!({"MaxResults": 1e9})),
        (
            "IncludeDeprecated as string",
            "ListSecretVersionIds",
            json!({"SecretId": "seed", "IncludeDeprecated": "true"}),
        ),
        ("IncludePlannedDeletion as number", "ListSecrets", json!({"IncludePlannedDeletion": 1})),
        ("Tags as object", "CreateSecret", create("typed", json!({"Tags": {"Key": "a", "Value": "b"}}))),
        ("Tags as list of strings", "CreateSecret", create("typed", json!({"Tags": ["a"]}))),
        ("Tag Key as number", "TagResource", json!({"SecretId": "seed", "Tags": [{"Key": 5}]})),
        ("TagKeys as string", "UntagResource", json!({"SecretId": "seed", "TagKeys": "a"})),
        (
            "VersionStages as string",
            "PutSecretValue",
            json!({"SecretId": "seed", "ClientRequestToken": token(), "SecretString": "v", "VersionStages": "AWSCURRENT"}),
        ),
        (
            "VersionStages with a number",
            "PutSecretValue",
            json!({"SecretId": "seed", "ClientRequestToken": token(), "SecretString": "v", "VersionStages": [1]}),
        ),
        (
            "SecretString as number",
            "PutSecretValue",
            json!({"SecretId": "seed", "ClientRequestToken": token(), "SecretString": 42}),
        ),
        ("SecretString as object", "CreateSecret", create("typed", json!({"SecretString": {"a": 1}}))),
        (
            "ClientRequestToken as number",
            "PutSecretValue",
            json!({"SecretId": "seed", "ClientRequestToken": 12345678901234567890u64, "SecretString": "v"}),
        ),
        ("RecoveryWindowInDays as string", "DeleteSecret", json!({"SecretId": "seed", "RecoveryWindowInDays": "7"})),
        (
            "RecoveryWindowInDays 1e12 (a float)",
            "DeleteSecret",
            json!({"SecretId": "seed", "RecoveryWindowInDays": 1e12}),
        ),
        (
            "ForceDeleteWithoutRecovery as string",
            "DeleteSecret",
            json!({"SecretId": "seed", "ForceDeleteWithoutRecovery": "true"}),
        ),
        ("Filters as object", "ListSecrets", json!({"Filters": {"Key": "name", "Values": ["x"]}})),
        ("Filter Values as string", "ListSecrets", json!({"Filters": [{"Key": "name", "Values": "x"}]})),
        ("SecretIdList as string", "BatchGetSecretValue", json!({"SecretIdList": "seed"})),
        ("PasswordLength as string", "GetRandomPassword", json!({"PasswordLength": "32"})),
        ("ExcludeNumbers as string", "GetRandomPassword", json!({"ExcludeNumbers": "yes"})),
        (
            "VersionStage as list",
            "UpdateSecretVersionStage",
            json!({"SecretId": "seed", "VersionStage": ["AWSCURRENT"]}),
        ),
    ] {
        c.push(refused_json(name, op, body, SER));
    }
    c.push(refused_json(
        "MaxResults 2^63",
        "ListSecrets",
        json!({"MaxResults": 9_223_372_036_854_775_808u64}),
        SER_OR_VALUE,
    ));
    c.push(refused(
        "SecretBinary not base64",
        "CreateSecret",
        create("b", json!({"SecretBinary": "not base64!"})).to_string(),
        SER,
    ));
    c.push(refused(
        "SecretBinary unpadded",
        "CreateSecret",
        create("b", json!({"SecretBinary": "Zm9vdGVzdA"})).to_string(),
        SER,
    ));
    c.push(refused(
        "SecretBinary URL-safe alphabet",
        "CreateSecret",
        create("b", json!({"SecretBinary": "-_-_"})).to_string(),
        SER,
    ));
    c.push(refused(
        "SecretBinary with whitespace",
        "CreateSecret",
        create("b", json!({"SecretBinary": "Zm9v\nZGVz"})).to_string(),
        SER,
    ));

    // Oversized values, counted in bytes.
    let ascii_over = "x".repeat(65_537);
    let two_byte_over = "é".repeat(32_769); // 65,538 bytes, 32,769 characters
    for (name, value) in [
        ("SecretString 65,537 ASCII bytes", json!({"SecretString": ascii_over})),
        ("SecretString 32,769 two-byte chars (65,538 bytes)", json!({"SecretString": two_byte_over})),
        ("SecretBinary 65,537 decoded bytes", json!({"SecretBinary": b64(&[7u8; 65_537])})),
        ("SecretString and SecretBinary both", json!({"SecretString": "v", "SecretBinary": b64(b"v")})),
        ("Description 2,049 chars", json!({"Description": "d".repeat(2049), "SecretString": "v"})),
        ("KmsKeyId 2,049 chars", json!({"KmsKeyId": "k".repeat(2049), "SecretString": "v"})),
        ("Tag key 129 chars", json!({"Tags": [{"Key": "k".repeat(129), "Value": ""}]})),
        ("Tag value 257 chars", json!({"Tags": [{"Key": "k", "Value": "v".repeat(257)}]})),
        ("Tag without Key", json!({"Tags": [{"Value": "v"}]})),
        ("reserved aws: tag key", json!({"Tags": [{"Key": "aws:owner", "Value": "v"}]})),
    ] {
        c.push(refused_json(format!("CreateSecret {name}"), "CreateSecret", create("oversize", value), BAD_VALUE));
    }
    c.push(refused_json(
        "CreateSecret empty SecretString",
        "CreateSecret",
        create("oversize", json!({"SecretString": ""})),
        &["ValidationException", "InvalidParameterException", "InvalidRequestException"],
    ));
    c.push(refused_json(
        "PutSecretValue SecretString 32,769 two-byte chars",
        "PutSecretValue",
        json!({"SecretId": "seed", "ClientRequestToken": token(), "SecretString": "é".repeat(32_769)}),
        BAD_VALUE,
    ));
    c.push(refused_json(
        "UpdateSecret SecretBinary 65,537 decoded bytes",
        "UpdateSecret",
        json!({"SecretId": "seed", "ClientRequestToken": token(), "SecretBinary": b64(&[0u8; 65_537])}),
        BAD_VALUE,
    ));

    // ClientRequestTokens.
    for (name, tok) in [("31-char", "t".repeat(31)), ("65-char", "t".repeat(65)), ("empty", String::new())] {
        c.push(refused_json(
            format!("CreateSecret {name} ClientRequestToken"),
            "CreateSecret",
            json!({"Name": "tok", "SecretString": "v", "ClientRequestToken": tok}),
            BAD_VALUE,
        ));
        c.push(refused_json(
            format!("PutSecretValue {name} ClientRequestToken"),
            "PutSecretValue",
            json!({"SecretId": "seed", "SecretString": "v", "ClientRequestToken": tok}),
            BAD_VALUE,
        ));
    }
    c.push(refused_json(
        "PutSecretValue without ClientRequestToken",
        "PutSecretValue",
        json!({"SecretId": "seed", "SecretString": "v"}),
        &["InvalidRequestException"],
    ));

    // Names and SecretIds.
    for (name, bad) in [
        ("with a space", "has space".to_string()),
        ("with *", "star*".to_string()),
        ("with ?", "what?".to_string()),
        ("with :", "a:b".to_string()),
        ("with NUL", "nul\0byte".to_string()),
        ("non-ASCII", "café".to_string()),
        ("513 chars", "n".repeat(513)),
        ("empty", String::new()),
    ] {
        c.push(refused_json(
            format!("CreateSecret name {name}"),
            "CreateSecret",
            json!({"Name": bad, "SecretString": "v", "ClientRequestToken": token()}),
            VALIDATION,
        ));
        if !bad.is_empty() && bad.len() < 513 {
            c.push(refused_json(
                format!("DescribeSecret SecretId {name}"),
                "DescribeSecret",
                json!({"SecretId": bad}),
                NOT_FOUND_OR_INVALID,
            ));
        }
    }
    c.push(refused_json("DescribeSecret empty SecretId", "DescribeSecret", json!({"SecretId": ""}), VALIDATION));
    c.push(refused_json(
        "DescribeSecret SecretId 2,049 chars",
        "DescribeSecret",
        json!({"SecretId": "n".repeat(2049)}),
        VALIDATION,
    ));
    c.push(refused_json(
        "PutSecretValue SecretId with a space",
        "PutSecretValue",
        json!({"SecretId": "has space", "ClientRequestToken": token(), "SecretString": "v"}),
        NOT_FOUND_OR_INVALID,
    ));

    // ARNs.
    for (name, bad) in [
        ("ARN with an empty name", "arn:aws:secretsmanager:us-east-1:000000000000:secret:".to_string()),
        ("ARN of nothing", "arn:".to_string()),
        ("garbage ARN", "arn:garbage".to_string()),
        ("ARN of another service", "arn:aws:kms:us-east-1:000000000000:key/seed".to_string()),
        ("ARN with too many fields", format!("{arn}:extra:fields")),
        ("partial ARN, other region", "arn:aws:secretsmanager:eu-west-1:000000000000:secret:seed".to_string()),
        ("partial ARN, other account", "arn:aws:secretsmanager:us-east-1:111111111111:secret:seed".to_string()),
        ("full ARN, other account", other_account.clone()),
        ("full ARN, other region", other_region.clone()),
        ("full ARN, wrong suffix", wrong_suffix.clone()),
        ("full ARN, upper-cased", arn.to_uppercase()),
    ] {
        c.push(refused_json(
            format!("DescribeSecret {name}"),
            "DescribeSecret",
            json!({"SecretId": bad}),
            NOT_FOUND_OR_INVALID,
        ));
    }
    c.push(refused_json(
        "PutSecretValue full ARN, other account",
        "PutSecretValue",
        json!({"SecretId": other_account, "ClientRequestToken": token(), "SecretString": "v"}),
        NOT_FOUND,
    ));
    c.push(refused_json(
        "TagResource full ARN, other region",
        "TagResource",
        json!({"SecretId": other_region, "Tags": [{"Key": "a", "Value": "b"}]}),
        NOT_FOUND,
    ));

    // Pagination.
    for (name, n) in [("0", json!(0)), ("101", json!(101)), ("-1", json!(-1)), ("1,000,000,000", json!(1_000_000_000))]
    {
        c.push(refused_json(
            format!("ListSecrets MaxResults {name}"),
            "ListSecrets",
            json!({"MaxResults": n}),
            VALIDATION,
        ));
        c.push(refused_json(
            format!("ListSecretVersionIds MaxResults {name}"),
            "ListSecretVersionIds",
            json!({"SecretId": "seed", "MaxResults": n}),
            VALIDATION,
        ));
    }
    c.push(refused_json(
        "BatchGetSecretValue MaxResults 21",
        "BatchGetSecretValue",
        json!({"Filters": [{"Key": "name", "Values": ["seed"]}], "MaxResults": 21}),
        VALIDATION,
    ));
    c.push(refused_json(
        "BatchGetSecretValue 21 ids",
        "BatchGetSecretValue",
        json!({"SecretIdList": vec!["seed"; 21]}),
        BAD_VALUE,
    ));
    c.push(refused_json(
        "BatchGetSecretValue ids and filters",
        "BatchGetSecretValue",
        json!({"SecretIdList": ["seed"], "Filters": [{"Key": "name", "Values": ["seed"]}]}),
        BAD_VALUE,
    ));
    c.push(refused("BatchGetSecretValue empty body", "BatchGetSecretValue", "", BAD_VALUE));
    for (name, tok) in [
        ("garbage", "!!not a token!!".to_string()),
        ("valid base64 of junk", "AAAAAAAAAAAAAAAAAAAA".to_string()),
        ("base64 of text", b64(b"hello, world, this is not a cursor")),
        ("4,097 chars", "A".repeat(4097)),
    ] {
        c.push(refused_json(
            format!("ListSecrets NextToken {name}"),
            "ListSecrets",
            json!({"NextToken": tok}),
            BAD_TOKEN,
        ));
        c.push(refused_json(
            format!("ListSecretVersionIds NextToken {name}"),
            "ListSecretVersionIds",
            json!({"SecretId": "seed", "NextToken": tok}),
            BAD_TOKEN,
        ));
    }
    c.push(refused_json("ListSecrets empty NextToken", "ListSecrets", json!({"NextToken": ""}), BAD_TOKEN_OR_VALUE));

    // Recovery windows (on an existing secret: success would schedule its deletion).
    for (name, body) in [
        ("0", json!({"RecoveryWindowInDays": 0})),
        ("6", json!({"RecoveryWindowInDays": 6})),
        ("31", json!({"RecoveryWindowInDays": 31})),
        ("-1", json!({"RecoveryWindowInDays": -1})),
        ("1e12", json!({"RecoveryWindowInDays": 1_000_000_000_000i64})),
        ("i64::MAX", json!({"RecoveryWindowInDays": i64::MAX})),
        ("0 with Force", json!({"RecoveryWindowInDays": 0, "ForceDeleteWithoutRecovery": true})),
        ("7 with Force", json!({"RecoveryWindowInDays": 7, "ForceDeleteWithoutRecovery": true})),
        ("30 with Force", json!({"RecoveryWindowInDays": 30, "ForceDeleteWithoutRecovery": true})),
        ("1e12 with Force", json!({"RecoveryWindowInDays": 1_000_000_000_000i64, "ForceDeleteWithoutRecovery": true})),
    ] {
        let mut body = body;
        body["SecretId"] = "seed".into();
        c.push(refused_json(format!("DeleteSecret RecoveryWindowInDays {name}"), "DeleteSecret", body, BAD_PARAM));
    }

    // Required members missing: empty body, `{}`, and partial bodies.
    for op in [
        "CreateSecret",
        "PutSecretValue",
        "GetSecretValue",
        "DescribeSecret",
        "ListSecretVersionIds",
        "UpdateSecret",
        "UpdateSecretVersionStage",
        "DeleteSecret",
        "RestoreSecret",
        "TagResource",
        "UntagResource",
    ] {
        c.push(refused(format!("{op} empty body"), op, "", VALIDATION));
        c.push(refused(format!("{op} {{}}"), op, "{}", VALIDATION));
        c.push(refused(format!("{op} all members null"), op, r#"{"SecretId": null, "Name": null}"#, VALIDATION));
    }
    c.push(refused_json("TagResource without Tags", "TagResource", json!({"SecretId": "seed"}), VALIDATION));
    c.push(refused_json("UntagResource without TagKeys", "UntagResource", json!({"SecretId": "seed"}), VALIDATION));
    c.push(refused_json(
        "UpdateSecretVersionStage without VersionStage",
        "UpdateSecretVersionStage",
        json!({"SecretId": "seed", "MoveToVersionId": "v".repeat(32)}),
        VALIDATION,
    ));
    c.push(refused_json(
        "UpdateSecretVersionStage label 257 chars",
        "UpdateSecretVersionStage",
        json!({"SecretId": "seed", "VersionStage": "L".repeat(257), "MoveToVersionId": "v".repeat(32)}),
        BAD_VALUE,
    ));
    c.push(refused_json(
        "UpdateSecretVersionStage to a missing version",
        "UpdateSecretVersionStage",
        json!({"SecretId": "seed", "VersionStage": "L", "MoveToVersionId": "v".repeat(32)}),
        &["ResourceNotFoundException", "InvalidParameterException", "InvalidRequestException"],
    ));

    // Tags in bulk (about 0.9 MB of them, under the body limit) and just over the quota.
    c.push(refused_json(
        "CreateSecret 30,000 tags",
        "CreateSecret",
        create("tagged", json!({"Tags": tags(30_000)})),
        TOO_MANY_TAGS,
    ));
    c.push(refused_json(
        "CreateSecret 51 tags",
        "CreateSecret",
        create("tagged", json!({"Tags": tags(51)})),
        TOO_MANY_TAGS,
    ));
    c.push(refused_json(
        "TagResource 30,000 tags",
        "TagResource",
        json!({"SecretId": "seed", "Tags": tags(30_000)}),
        TOO_MANY_TAGS,
    ));
    c.push(refused_json(
        "TagResource 51 tags",
        "TagResource",
        json!({"SecretId": "seed", "Tags": tags(51)}),
        TOO_MANY_TAGS,
    ));
    c.push(refused_json(
        "UntagResource 30,000 keys of a missing secret",
        "UntagResource",
        json!({"SecretId": "nope", "TagKeys": (0..30_000).map(|i| format!("k{i}")).collect::<Vec<_>>()}),
        &["ResourceNotFoundException", "ValidationException", "InvalidParameterException"],
    ));

    // Filters.
    for (name, filters) in [
        ("unknown key", json!([{"Key": "colour", "Values": ["red"]}])),
        ("11 Values", json!([{"Key": "name", "Values": vec!["x"; 11]}])),
        ("11 filters", Value::Array(vec![json!({"Key": "name", "Values": ["x"]}); 11])),
        ("value with *", json!([{"Key": "name", "Values": ["se*"]}])),
        ("value 513 chars", json!([{"Key": "name", "Values": ["x".repeat(513)]}])),
    ] {
        c.push(refused_json(
            format!("ListSecrets filter {name}"),
            "ListSecrets",
            json!({"Filters": filters}),
            VALIDATION,
        ));
    }
    // AWS answers a filter without a key or values with InvalidParameterException.
    for (name, filters) in [
        ("no Key", json!([{"Values": ["red"]}])),
        ("no Values", json!([{"Key": "name"}])),
        ("empty Values", json!([{"Key": "name", "Values": []}])),
    ] {
        c.push(refused_json(
            format!("ListSecrets filter {name}"),
            "ListSecrets",
            json!({"Filters": filters}),
            &["InvalidParameterException"],
        ));
    }
    c.push(refused_json("ListSecrets SortOrder sideways", "ListSecrets", json!({"SortOrder": "sideways"}), BAD_VALUE));

    // GetRandomPassword.
    for (name, body) in [
        ("PasswordLength 0", json!({"PasswordLength": 0})),
        ("PasswordLength 4097", json!({"PasswordLength": 4097})),
        ("PasswordLength 1e12", json!({"PasswordLength": 1_000_000_000_000i64})),
        ("PasswordLength -1", json!({"PasswordLength": -1})),
        (
            "every character type excluded",
            json!({"ExcludeNumbers": true, "ExcludePunctuation": true, "ExcludeUppercase": true, "ExcludeLowercase": true}),
        ),
    ] {
        c.push(refused_json(format!("GetRandomPassword {name}"), "GetRandomPassword", body, BAD_VALUE));
    }

    // The audit operations (`SecretLedger.*`) read hostile bodies too.
    const AUDIT_BAD: &[&str] = &["ValidationException", "SerializationException", "ResourceNotFoundException"];
    for (name, op, body, codes) in [
        ("History bad JSON", "History", r#"{"SecretId": "#, SER),
        ("History array body", "History", "[]", SER),
        ("History SecretId as number", "History", r#"{"SecretId": 5}"#, SER),
        ("History Since garbage", "History", r#"{"Since": "yesterday"}"#, AUDIT_BAD),
        ("History Until as object", "History", r#"{"Until": {}}"#, AUDIT_BAD),
        ("History Actor as number", "History", r#"{"Actor": 5}"#, SER),
        ("History of a missing secret", "History", r#"{"SecretId": "nope"}"#, NOT_FOUND),
        ("State without AsOf", "State", "{}", VALIDATION),
        ("State AsOf garbage", "State", r#"{"AsOf": "yesterday-ish"}"#, AUDIT_BAD),
        ("State AsOf -1", "State", r#"{"AsOf": -1}"#, AUDIT_BAD),
        ("State AsOf 1e300", "State", r#"{"AsOf": 1e300}"#, AUDIT_BAD),
        ("State AsOf year 275760", "State", r#"{"AsOf": "+275760-09-13T00:00:00Z"}"#, AUDIT_BAD),
        ("State Label without SecretId", "State", r#"{"AsOf": 1, "Label": "AWSCURRENT"}"#, AUDIT_BAD),
        ("Prove Seq 0", "Prove", r#"{"Seq": 0}"#, AUDIT_BAD),
        ("Prove Seq u64::MAX", "Prove", r#"{"Seq": 18446744073709551615}"#, AUDIT_BAD),
        ("Prove Seq as string", "Prove", r#"{"Seq": "one"}"#, AUDIT_BAD),
        ("Verify Checkpoint not JSON", "Verify", r#"{"Checkpoint": "not json"}"#, AUDIT_BAD),
        ("Verify Checkpoint garbage fields", "Verify", r#"{"Checkpoint": {"size": -1, "head_hash": "zz"}}"#, AUDIT_BAD),
        ("Verify Checkpoint as number", "Verify", r#"{"Checkpoint": 7}"#, AUDIT_BAD),
        ("Checkpoint empty Origin", "Checkpoint", r#"{"Origin": ""}"#, AUDIT_BAD),
        ("Checkpoint Origin with a newline", "Checkpoint", r#"{"Origin": "a\nb"}"#, AUDIT_BAD),
        ("Export Origin with a NUL", "Export", r#"{"Origin": "a\u0000b"}"#, AUDIT_BAD),
    ] {
        let mut k = refused(format!("SecretLedger.{name}"), "x", body, codes);
        k.target = Some(format!("SecretLedger.{op}"));
        c.push(k);
    }

    // Boundaries that must be accepted.
    let accepted = |name: &str, op: &str, body: Value, appends: bool| {
        case(name, op, body.to_string(), Expect::Accepted { appends })
    };
    c.push(accepted(
        "SecretString exactly 65,536 ASCII bytes",
        "CreateSecret",
        create("max-ascii", json!({"SecretString": "x".repeat(65_536)})),
        true,
    ));
    c.push(accepted(
        "SecretString 32,768 two-byte chars (65,536 bytes)",
        "CreateSecret",
        create("max-utf8", json!({"SecretString": "é".repeat(32_768)})),
        true,
    ));
    c.push(accepted(
        "SecretBinary exactly 65,536 decoded bytes",
        "CreateSecret",
        create("max-binary", json!({"SecretBinary": b64(&[0xA5; 65_536])})),
        true,
    ));
    c.push(accepted(
        "PutSecretValue 32-char token",
        "PutSecretValue",
        json!({"SecretId": "seed", "ClientRequestToken": "t".repeat(32), "SecretString": "v32"}),
        true,
    ));
    c.push(accepted(
        "PutSecretValue 64-char token",
        "PutSecretValue",
        json!({"SecretId": "seed", "ClientRequestToken": "t".repeat(64), "SecretString": "v64"}),
        true,
    ));
    c.push(accepted("CreateSecret name 512 chars", "CreateSecret", create(&"n".repeat(512), json!({})), true));
    c.push(accepted("ListSecrets MaxResults 1", "ListSecrets", json!({"MaxResults": 1}), false));
    c.push(accepted("ListSecrets MaxResults 100", "ListSecrets", json!({"MaxResults": 100}), false));
    c.push(accepted(
        "unknown members ignored",
        "DescribeSecret",
        json!({"SecretId": "seed", "Evil": {"a": [1, 2, {"b": null}]}}),
        false,
    ));
    c
}

struct Answer {
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

/// Signs and sends one case; `Err` on a transport failure or a hang.
async fn send_case(t: &TestServer, k: &Case) -> Result<Answer, String> {
    let addr = t.addr();
    let mut headers: Vec<(String, String)> =
        vec![("host".into(), addr.to_string()), ("content-type".into(), "application/x-amz-json-1.1".into())];
    if let Some(target) = &k.target {
        headers.push(("x-amz-target".into(), target.clone()));
    }
    for (name, value) in &k.headers {
        headers.push(((*name).to_string(), value.clone()));
    }
    sign_headers(&mut headers, &k.body, (AKID, SECRET, SystemTime::now()), k.region);
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
        let io = hyper_util::rt::TokioIo::new(stream);
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(io).await.map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(conn);
        let mut builder = hyper::Request::builder().method("POST").uri("/");
        for (name, value) in &headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let request = builder.body(Full::new(Bytes::from(k.body.clone()))).map_err(|e| format!("request: {e}"))?;
        let response = sender.send_request(request).await.map_err(|e| format!("send: {e}"))?;
        let status = response.status().as_u16();
        let content_type =
            response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let body = response.into_body().collect().await.map_err(|e| format!("body: {e}"))?.to_bytes().to_vec();
        Ok::<Answer, String>(Answer { status, content_type, body })
    };
    tokio::time::timeout(CASE_TIMEOUT, exchange).await.map_err(|_| "no answer within 30 s (hang)".to_string())?
}

/// What is wrong with this answer, if anything.
fn judge(k: &Case, a: &Answer) -> Option<String> {
    let text = String::from_utf8_lossy(&a.body);
    let shown: String = text.chars().take(300).collect();
    if a.content_type != "application/x-amz-json-1.1" {
        return Some(format!("content-type {:?}: {shown}", a.content_type));
    }
    match &k.expect {
        Expect::Accepted { .. } => (a.status != 200).then(|| format!("expected 200, got {}: {shown}", a.status)),
        Expect::Refused(codes) => {
            if !(400..500).contains(&a.status) {
                return Some(format!("expected a 4xx, got {}: {shown}", a.status));
            }
            let Ok(json) = serde_json::from_slice::<Value>(&a.body) else {
                return Some(format!("error body is not JSON: {shown}"));
            };
            let code = json["__type"].as_str().unwrap_or("<none>");
            if !codes.contains(&code) {
                return Some(format!("__type {code}, expected one of {codes:?}: {shown}"));
            }
            match json["Message"].as_str() {
                Some(m) if !m.is_empty() => None,
                _ => Some(format!("no Message: {shown}")),
            }
        }
    }
}

#[tokio::test]
async fn hostile_requests_are_refused_cleanly() {
    let t = TestServer::start().await;
    let seed = json!({"Name": "seed", "SecretString": "s", "ClientRequestToken": token()}).to_string();
    let created = send(t.addr(), Raw::new("secretsmanager.CreateSecret", seed)).await.expect_ok();
    let arn = created["ARN"].as_str().unwrap().to_string();
    let probe = json!({"SecretId": "seed"}).to_string();

    let table = cases(&arn);
    let mut failures = Vec::new();
    let (mut n_refused, mut n_accepted) = (0, 0);
    for k in &table {
        let before = t.head();
        match send_case(&t, k).await {
            Err(e) => failures.push(format!("{}: {e}", k.name)),
            Ok(answer) => {
                if let Some(problem) = judge(k, &answer) {
                    failures.push(format!("{}: {problem}", k.name));
                }
            }
        }
        let after = t.head();
        match k.expect {
            Expect::Refused(_) => {
                n_refused += 1;
                if after != before {
                    failures.push(format!("{}: refused yet the log grew from {before} to {after}", k.name));
                }
            }
            Expect::Accepted { appends } => {
                n_accepted += 1;
                if appends != (after > before) {
                    failures.push(format!("{}: log went from {before} to {after}", k.name));
                }
            }
        }
        // The server still answers a valid request.
        let mut still = Raw::new("secretsmanager.DescribeSecret", probe.clone());
        still.sign_with = Some((AKID, SECRET, SystemTime::now()));
        match tokio::time::timeout(CASE_TIMEOUT, send(t.addr(), still)).await {
            Ok(r) if r.status == 200 => {}
            Ok(r) => failures.push(format!("{}: afterwards a valid request got {}", k.name, r.status)),
            Err(_) => failures.push(format!("{}: afterwards a valid request hung", k.name)),
        }
    }
    println!("hostile input: {} cases tried ({n_refused} refused, {n_accepted} boundary cases accepted)", table.len());
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), table.len(), failures.join("\n"));
    t.stop().await;
}
