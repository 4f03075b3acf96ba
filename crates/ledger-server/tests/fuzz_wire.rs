//! Property-based fuzzing of the request parser on the stable toolchain: `wire::Input::parse` on
//! arbitrary bytes, every `Input` accessor and `wire::list_secrets` on arbitrary JSON members,
//! and every operation's conversion (through `ops::dispatch` against a real ledger in a temp
//! dir, for full and restricted access) on arbitrary and near-valid member maps. Nothing panics; every refusal is an
//! `ApiError` with status 400 and a message, never a 5xx; every success is a JSON object.
//!
//! Case counts are small so CI stays fast; `PROPTEST_CASES=5000 cargo test -p ledger-server
//! --test fuzz_wire` runs more.
#![allow(clippy::unwrap_used)]

use std::cell::Cell;

use base64::Engine;
use ledger_core::crypto::MasterKey;
use ledger_core::{Command, CreateSecret, Scope, SecretValue};
use ledger_server::access::Access;
use ledger_server::operation::{Kind as OpKind, Operation};
use ledger_server::wire::{self, Input};
use ledger_server::{ops, ApiError};
use ledger_store::{Ledger, LedgerOptions, RequestMeta};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use serde_json::{Map, Value};

/// `cases` unless `PROPTEST_CASES` says otherwise.
fn config(cases: u32) -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var("PROPTEST_CASES").is_err() {
        config.cases = cases;
    }
    config.max_shrink_iters = 256;
    // No regression file: proptest finds no `lib.rs` beside an integration test of this crate.
    config.failure_persistence = None;
    config
}

/// A refusal must be a 400 with a shape name and a message.
fn check_refusal(e: &ApiError) -> Result<(), TestCaseError> {
    prop_assert_eq!(e.status.as_u16(), 400, "{:?}", e);
    prop_assert!(!e.code.is_empty() && !e.message.is_empty(), "{:?}", e);
    Ok(())
}

fn check<T>(r: &Result<T, ApiError>) -> Result<(), TestCaseError> {
    match r {
        Ok(_) => Ok(()),
        Err(e) => check_refusal(e),
    }
}

/// Every member any operation reads, plus a stranger.
const MEMBERS: [&str; 39] = [
    "Name",
    "SecretId",
    "ClientRequestToken",
    "Description",
    "KmsKeyId",
    "Tags",
    "Type",
    "AddReplicaRegions",
    "ForceOverwriteReplicaSecret",
    "CrossAccountPrimaryARN",
    "SecretString",
    "SecretBinary",
    "VersionStages",
    "RotationToken",
    "VersionStage",
    "RemoveFromVersionId",
    "MoveToVersionId",
    "RecoveryWindowInDays",
    "ForceDeleteWithoutRecovery",
    "TagKeys",
    "VersionId",
    "SecretIdList",
    "Filters",
    "MaxResults",
    "NextToken",
    "IncludeDeprecated",
    "IncludePlannedDeletion",
    "SortBy",
    "SortOrder",
    "PasswordLength",
    "ExcludeCharacters",
    "ExcludeNumbers",
    "ExcludePunctuation",
    "ExcludeUppercase",
    "ExcludeLowercase",
    "IncludeSpace",
    "RequireEachIncludedType",
    "Key",
    "Unknown",
];

#[derive(Clone, Copy, Debug)]
enum Kind {
    Str,
    Id,
    Token,
    Int,
    Bool,
    Blob,
    StrList,
    Tags,
    Filters,
    List,
}

/// Members each operation reads (ops.rs) and their JSON kinds.
fn members(op: &str) -> &'static [(&'static str, Kind)] {
    use Kind::*;
    match op {
        "CreateSecret" => &[
            ("Name", Id),
            ("ClientRequestToken", Token),
            ("Description", Str),
            ("KmsKeyId", Str),
            ("Tags", Tags),
            ("Type", Str),
            ("AddReplicaRegions", List),
            ("ForceOverwriteReplicaSecret", Bool),
            ("CrossAccountPrimaryARN", Str),
            ("SecretString", Str),
            ("SecretBinary", Blob),
        ],
        "PutSecretValue" => &[
            ("SecretId", Id),
            ("ClientRequestToken", Token),
            ("VersionStages", StrList),
            ("RotationToken", Str),
            ("SecretString", Str),
            ("SecretBinary", Blob),
        ],
        "UpdateSecret" => &[
            ("SecretId", Id),
            ("ClientRequestToken", Token),
            ("Description", Str),
            ("KmsKeyId", Str),
            ("Type", Str),
            ("SecretString", Str),
            ("SecretBinary", Blob),
        ],
        "UpdateSecretVersionStage" => {
            &[("SecretId", Id), ("VersionStage", Str), ("RemoveFromVersionId", Token), ("MoveToVersionId", Token)]
        }
        "DeleteSecret" => &[("SecretId", Id), ("RecoveryWindowInDays", Int), ("ForceDeleteWithoutRecovery", Bool)],
        "RestoreSecret" | "DescribeSecret" => &[("SecretId", Id)],
        "TagResource" => &[("SecretId", Id), ("Tags", Tags)],
        "UntagResource" => &[("SecretId", Id), ("TagKeys", StrList)],
        "GetSecretValue" => &[("SecretId", Id), ("VersionId", Token), ("VersionStage", Str)],
        "BatchGetSecretValue" => {
            &[("SecretIdList", StrList), ("Filters", Filters), ("MaxResults", Int), ("NextToken", Str)]
        }
        "ListSecretVersionIds" => {
            &[("SecretId", Id), ("MaxResults", Int), ("NextToken", Str), ("IncludeDeprecated", Bool)]
        }
        "ListSecrets" => &[
            ("IncludePlannedDeletion", Bool),
            ("MaxResults", Int),
            ("NextToken", Str),
            ("Filters", Filters),
            ("SortBy", Str),
            ("SortOrder", Str),
        ],
        "GetRandomPassword" => &[
            ("PasswordLength", Int),
            ("ExcludeCharacters", Str),
            ("ExcludeNumbers", Bool),
            ("ExcludePunctuation", Bool),
            ("ExcludeUppercase", Bool),
            ("ExcludeLowercase", Bool),
            ("IncludeSpace", Bool),
            ("RequireEachIncludedType", Bool),
        ],
        _ => &[],
    }
}

/// Any JSON value, small.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "\\PC{0,16}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[A-Za-z]{0,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[A-Za-z0-9/_+=.@-]{0,12}",
        2 => "\\PC{0,20}",
        1 => prop::sample::select(vec!["", "AWSCURRENT", "AWSPENDING", "AWSPREVIOUS", "name", "asc", "desc", "all"])
            .prop_map(String::from),
        1 => (0usize..3, prop::sample::select(vec!['x', 'é', '€', '😀'])).prop_map(|(n, c)| {
            c.to_string().repeat([65_536 / c.len_utf8(), 65_537, 2049][n])
        }),
    ]
}

fn secret_id() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just("seed".to_string()),
        1 => Just("nope".to_string()),
        1 => Just("arn:aws:secretsmanager:us-east-1:000000000000:secret:seed".to_string()),
        1 => Just("arn:aws:secretsmanager:us-east-1:000000000000:secret:seed-AbCdEf".to_string()),
        2 => text(),
    ]
}

fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-f0-9]{32,64}",
        1 => "[a-z]{0,31}",
        1 => "[a-z]{65,70}",
        1 => text(),
    ]
}

fn int() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (-3i64..120).prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => prop::sample::select(vec![0i64, 1, 7, 20, 21, 30, 31, 100, 101, 4096, 4097]).prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => (-1e3f64..1e3).prop_map(Value::from),
    ]
}

fn tag() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (text(), proptest::option::of(text())).prop_map(|(k, v)| {
            let mut m = Map::new();
            m.insert("Key".into(), k.into());
            if let Some(v) = v {
                m.insert("Value".into(), v.into());
            }
            Value::Object(m)
        }),
        1 => any_json(),
    ]
}

fn filter() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        3 => prop::sample::select(vec!["name", "description", "tag-key", "tag-value", "all", "primary-region", "owning-service"])
            .prop_map(String::from),
        1 => text(),
    ];
    prop_oneof![
        4 => (key, prop::collection::vec(text(), 0..12)).prop_map(|(k, v)| serde_json::json!({"Key": k, "Values": v})),
        1 => any_json(),
    ]
}

/// A value for a member: usually of the right JSON type, sometimes anything at all.
fn member_value(kind: Kind) -> BoxedStrategy<Value> {
    let typed: BoxedStrategy<Value> = match kind {
        Kind::Str => text().prop_map(Value::from).boxed(),
        Kind::Id => secret_id().prop_map(Value::from).boxed(),
        Kind::Token => token().prop_map(Value::from).boxed(),
        Kind::Int => int().boxed(),
        Kind::Bool => any::<bool>().prop_map(Value::from).boxed(),
        Kind::Blob => prop_oneof![
            3 => prop::collection::vec(any::<u8>(), 0..64)
                .prop_map(|b| Value::from(base64::engine::general_purpose::STANDARD.encode(b))),
            1 => (0usize..2).prop_map(|n| Value::from(
                base64::engine::general_purpose::STANDARD.encode(vec![1u8; [65_536, 65_537][n]])
            )),
            1 => text().prop_map(Value::from),
        ]
        .boxed(),
        Kind::StrList => prop::collection::vec(text(), 0..25).prop_map(Value::from).boxed(),
        Kind::Tags => prop::collection::vec(tag(), 0..55).prop_map(Value::Array).boxed(),
        Kind::Filters => prop::collection::vec(filter(), 0..12).prop_map(Value::Array).boxed(),
        Kind::List => prop::collection::vec(any_json(), 0..3).prop_map(Value::Array).boxed(),
    };
    prop_oneof![5 => typed, 1 => any_json(), 1 => Just(Value::Null)].boxed()
}

/// A request body for `op`: a subset of its members, plus maybe a stranger.
fn body(op: &'static str) -> BoxedStrategy<Map<String, Value>> {
    let fields: Vec<BoxedStrategy<Option<(String, Value)>>> = members(op)
        .iter()
        .map(|&(name, kind)| {
            proptest::option::weighted(0.7, member_value(kind).prop_map(move |v| (name.to_string(), v))).boxed()
        })
        .collect();
    (fields, proptest::option::weighted(0.2, ("[A-Za-z]{1,8}", any_json())))
        .prop_map(|(fields, stranger)| {
            let mut m: Map<String, Value> = fields.into_iter().flatten().collect();
            if let Some((k, v)) = stranger {
                m.entry(k).or_insert(v);
            }
            m
        })
        .boxed()
}

fn op_and_body() -> impl Strategy<Value = (&'static str, Map<String, Value>)> {
    let names: Vec<&'static str> =
        Operation::ALL.iter().filter(|op| op.kind() != OpKind::Audit).map(|op| op.name()).collect();
    prop::sample::select(names).prop_flat_map(|op| body(op).prop_map(move |b| (op, b)))
}

/// Exercises every accessor on every member name.
fn every_accessor(input: &Input) -> Result<(), TestCaseError> {
    for name in MEMBERS {
        check(&input.string(name))?;
        check(&input.required_string(name, "member"))?;
        check(&input.bool(name))?;
        check(&input.integer(name))?;
        check(&input.blob(name))?;
        check(&input.string_list(name))?;
        check(&input.object_list_len(name))?;
        check(&input.tags(name))?;
        check(&input.filters(name))?;
    }
    check(&input.secret_value())?;
    check(&wire::list_secrets(input))?;
    Ok(())
}

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn parse_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        match Input::parse(&bytes) {
            Ok(input) => every_accessor(&input)?,
            Err(e) => {
                check_refusal(&e)?;
                prop_assert_eq!(e.code, "SerializationException");
            }
        }
    }

    #[test]
    fn parse_arbitrary_json(value in any_json()) {
        let text = value.to_string();
        match (Input::parse(text.as_bytes()), &value) {
            (Ok(input), Value::Object(_)) => every_accessor(&input)?,
            (Err(e), v) => {
                check_refusal(&e)?;
                prop_assert!(!v.is_object(), "an object was refused: {:?}", e);
            }
            (Ok(_), v) => prop_assert!(false, "a non-object parsed: {}", v),
        }
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn accessors_on_operation_shaped_members((_op, members) in op_and_body()) {
        let text = Value::Object(members).to_string();
        let input = Input::parse(text.as_bytes()).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        every_accessor(&input)?;
    }
}

/// Every operation through its real conversion and the ledger behind it.
#[test]
fn operations_on_arbitrary_members() {
    let dir = tempfile::tempdir().unwrap();
    let options = LedgerOptions { unsafe_no_sync: true, cache_bytes: 8 << 20, ..LedgerOptions::default() };
    let ledger = Ledger::open(dir.path(), MasterKey::from_bytes(1, [0x42; 32]), options).unwrap();
    let scope = Scope::new("us-east-1", "000000000000");
    let meta = RequestMeta::local(scope);
    let seed = Command::CreateSecret(CreateSecret {
        name: "seed".into(),
        client_request_token: Some("a".repeat(32)),
        value: Some(SecretValue::string("s")),
        ..CreateSecret::default()
    });
    ledger.execute(seed, &meta).unwrap().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();

    // Full access, a name prefix, read-only: the access check reads the same hostile members.
    let accesses = [
        Access::full(),
        Access { prefixes: vec!["se".into(), "x/".into()], ..Access::default() },
        Access { read_only: true, ..Access::default() },
    ];
    let mut runner = TestRunner::new(config(384));
    let (accepted, refused) = (Cell::new(0u32), Cell::new(0u32));
    let result = runner.run(&(op_and_body(), 0..accesses.len()), |((op, members), access)| {
        let text = Value::Object(members).to_string();
        let input = Input::parse(text.as_bytes()).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        let op = Operation::secrets_manager(op).expect("a Secrets Manager operation");
        match runtime.block_on(ops::dispatch(&ledger, op, input, &meta, &accesses[access])) {
            Ok(json) => {
                accepted.set(accepted.get() + 1);
                let v: Value = serde_json::from_str(&json).map_err(|e| TestCaseError::fail(format!("{op}: {e}")))?;
                prop_assert!(v.is_object(), "{}: {}", op, json);
            }
            Err(e) => {
                refused.set(refused.get() + 1);
                check_refusal(&e)?;
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    println!("operations fuzzed: {} accepted, {} refused", accepted.get(), refused.get());
    drop(runtime);
    ledger.close().unwrap();
}
