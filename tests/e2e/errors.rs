//! Every error path of spec §3, at least once: the typed variant, its AWS `__type` and message,
//! and that nothing was appended.

use ledger_core::query::{BatchGetSecretValue, Filter, ListSecretVersionIds, ListSecrets};
use ledger_core::*;

use crate::fixture::{tok, Fixture};

/// Runs `cmd`, expects `code`, and checks the log did not move.
fn refused(f: &mut Fixture, cmd: Command, code: ErrorCode) -> SmError {
    let head = f.ledger().head();
    let err = f.exec(cmd).expect_err("must be refused");
    assert_eq!(err.code(), code, "{err}");
    assert_eq!(f.ledger().head(), head, "a refused request appended events");
    err
}

fn put(id: &str, token: Option<String>, value: Option<SecretValue>, stages: Option<Vec<&str>>) -> Command {
    Command::PutSecretValue(PutSecretValue {
        secret_id: id.into(),
        client_request_token: token,
        value,
        version_stages: stages.map(|s| s.into_iter().map(String::from).collect()),
    })
}

fn setup() -> Fixture {
    let mut f = Fixture::new();
    f.create("app/db", Some("v1")).unwrap();
    f
}

#[test]
fn create_secret_errors() {
    let mut f = setup();
    let create = |name: &str, token: Option<String>, value: Option<&str>| {
        Command::CreateSecret(CreateSecret {
            name: name.into(),
            client_request_token: token,
            value: value.map(SecretValue::string),
            ..CreateSecret::default()
        })
    };
    let e = refused(&mut f, create("app/db", Some(tok(77)), Some("x")), ErrorCode::ResourceExistsException);
    assert_eq!(e.to_string(), "The operation failed because the secret app/db already exists.");
    // Same token and value as the first create: the original answer, nothing appended.
    let first = f.created[0].clone();
    let head = f.ledger().head();
    let again = f.exec(create("app/db", Some(first.clone()), Some("v1"))).unwrap();
    assert!(matches!(again, Reply::Secret { version_id: Some(ref v), .. } if *v == first));
    assert_eq!(f.ledger().head(), head);
    // Same token, different value.
    let e = refused(&mut f, create("app/db", Some(first.clone()), Some("other")), ErrorCode::ResourceExistsException);
    assert!(e.to_string().starts_with(&format!("You can't use ClientRequestToken {first} because")), "{e}");
    refused(&mut f, create("bad name", Some(tok(1)), Some("x")), ErrorCode::ValidationException);
    refused(&mut f, create("", Some(tok(1)), Some("x")), ErrorCode::ValidationException);
    refused(&mut f, create(&"a".repeat(513), Some(tok(1)), Some("x")), ErrorCode::ValidationException);
    let e = refused(&mut f, create("x", None, Some("x")), ErrorCode::InvalidRequestException);
    assert_eq!(e.to_string(), "You must provide a ClientRequestToken value. We recommend a UUID-type value.");
    refused(&mut f, create("x", Some("a".repeat(31)), Some("x")), ErrorCode::ValidationException);
    refused(&mut f, create("x", Some("a".repeat(65)), Some("x")), ErrorCode::ValidationException);
    let e = SecretValue::from_fields(Some("s".into()), Some(vec![1])).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidParameterException);
    assert_eq!(
        e.to_string(),
        "You can't specify both a binary secret value and a string secret value in the same secret."
    );
    assert_eq!(SecretValue::from_fields(Some(String::new()), None).unwrap_err().code(), ErrorCode::ValidationException);
    assert_eq!(
        SecretValue::from_fields(None, Some(vec![0; 65_537])).unwrap_err().code(),
        ErrorCode::ValidationException
    );
    // 65,536 bytes is fine; 65,537 UTF-8 bytes (fewer characters) is not.
    assert!(SecretValue::from_fields(Some("x".repeat(65_536)), None).is_ok());
    assert!(SecretValue::from_fields(Some("é".repeat(32_768) + "x"), None).is_err());
    let tags = Some(vec![Tag { key: "aws:reserved".into(), value: "v".into() }]);
    refused(
        &mut f,
        Command::CreateSecret(CreateSecret { name: "t".into(), tags, ..CreateSecret::default() }),
        ErrorCode::InvalidParameterException,
    );
    // Scheduled for deletion: the name cannot be created again.
    f.exec(Command::DeleteSecret(DeleteSecret { secret_id: "app/db".into(), ..DeleteSecret::default() })).unwrap();
    let e = refused(&mut f, create("app/db", Some(tok(78)), Some("x")), ErrorCode::InvalidRequestException);
    assert_eq!(
        e.to_string(),
        "You can't create this secret because a secret with this name is already scheduled for deletion."
    );
}

#[test]
fn put_secret_value_errors() {
    let mut f = setup();
    let e = refused(
        &mut f,
        put("nope", Some(tok(1)), Some(SecretValue::string("x")), None),
        ErrorCode::ResourceNotFoundException,
    );
    assert_eq!(e.to_string(), "Secrets Manager can't find the specified secret.");
    let e = refused(&mut f, put("app/db", Some(tok(1)), None, None), ErrorCode::InvalidRequestException);
    assert_eq!(e.to_string(), "You must provide either SecretString or SecretBinary.");
    refused(&mut f, put("app/db", None, Some(SecretValue::string("x")), None), ErrorCode::InvalidRequestException);
    refused(
        &mut f,
        put("app/db", Some(tok(1)), Some(SecretValue::string("x")), Some(vec![])),
        ErrorCode::ValidationException,
    );
    refused(
        &mut f,
        put("app/db", Some(tok(1)), Some(SecretValue::string("x")), Some(vec![""])),
        ErrorCode::ValidationException,
    );
    refused(&mut f, put("bad*id", Some(tok(1)), Some(SecretValue::string("x")), None), ErrorCode::ValidationException);
    // Token reuse: same value is a no-op returning the version; different value is refused.
    f.put("app/db", &tok(1), "v2", None).unwrap();
    let head = f.ledger().head();
    let again = f.put("app/db", &tok(1), "v2", None).unwrap();
    assert_eq!(
        again,
        Reply::Version {
            arn: arn(&f),
            name: "app/db".into(),
            version_id: tok(1),
            version_stages: vec!["AWSCURRENT".into()]
        }
    );
    assert_eq!(f.ledger().head(), head);
    let e = refused(
        &mut f,
        put("app/db", Some(tok(1)), Some(SecretValue::string("v3")), None),
        ErrorCode::ResourceExistsException,
    );
    assert_eq!(
        e.to_string(),
        format!(
            "You can't use ClientRequestToken {} because that value is already in use for a version of secret {}.",
            tok(1),
            arn(&f)
        )
    );
    // String vs binary with the same bytes is a different value.
    refused(
        &mut f,
        put("app/db", Some(tok(1)), Some(SecretValue::binary(b"v2".to_vec())), None),
        ErrorCode::ResourceExistsException,
    );
    // 20 labels per secret.
    let labels: Vec<String> = (0..19).map(|i| format!("L{i}")).collect();
    f.put("app/db", &tok(2), "v3", Some(&labels.iter().map(String::as_str).collect::<Vec<_>>())).unwrap_err();
    let few: Vec<&str> = labels.iter().take(17).map(String::as_str).collect();
    f.put("app/db", &tok(3), "v3", Some(&few)).unwrap(); // AWSCURRENT, AWSPREVIOUS + 17 = 19
    f.put("app/db", &tok(4), "v4", Some(&["extra"])).unwrap(); // 20
    let e = refused(
        &mut f,
        put("app/db", Some(tok(5)), Some(SecretValue::string("v5")), Some(vec!["one-too-many"])),
        ErrorCode::LimitExceededException,
    );
    assert!(e.to_string().contains("20"), "{e}");
}

fn arn(f: &Fixture) -> String {
    f.ledger().describe_secret(&f.scope, "app/db").unwrap().arn
}

#[test]
fn get_secret_value_errors() {
    let mut f = setup();
    let e = f.get("app/db", Some(&tok(99)), None).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("Secrets Manager can't find the specified secret value for VersionId: {}", tok(99))
    );
    let e = f.get("app/db", None, Some("AWSPENDING")).unwrap_err();
    assert_eq!(e.code(), ErrorCode::ResourceNotFoundException);
    assert_eq!(e.to_string(), "Secrets Manager can't find the specified secret value for staging label: AWSPENDING");
    let v1 = f.created[0].clone();
    let e = f.get("app/db", Some(&v1), Some("AWSPREVIOUS")).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidRequestException);
    assert_eq!(e.to_string(), "You provided a VersionStage that is not associated to the provided VersionId.");
    assert_eq!(f.get("app/db", Some("short"), None).unwrap_err().code(), ErrorCode::ValidationException);
    // A secret created without a value has no AWSCURRENT.
    f.create("empty", None).unwrap();
    let e = f.get("empty", None, None).unwrap_err();
    assert_eq!(e.to_string(), "Secrets Manager can't find the specified secret value for staging label: AWSCURRENT");
    // Scheduled for deletion.
    f.exec(Command::DeleteSecret(DeleteSecret { secret_id: "app/db".into(), ..DeleteSecret::default() })).unwrap();
    let e = f.get("app/db", None, None).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidRequestException);
    assert_eq!(e.to_string(), "You can't perform this operation on the secret because it was marked for deletion.");
    // DescribeSecret still answers, with the deletion date.
    assert!(f.ledger().describe_secret(&f.scope, "app/db").unwrap().deleted_at_ms.is_some());
    // Batch: per-secret failures go to Errors.
    let q = BatchGetSecretValue { secret_id_list: Some(vec!["app/db".into(), "missing".into()]), ..Default::default() };
    let ledger_store::BatchValues { values, errors, .. } =
        f.ledger().batch_get_secret_value(&f.scope, &q).unwrap().unwrap();
    assert!(values.is_empty());
    assert_eq!(errors.len(), 2);
    let both = BatchGetSecretValue {
        secret_id_list: Some(vec!["a".into()]),
        filters: Some(vec![Filter { key: "name".into(), values: vec!["a".into()] }]),
        ..Default::default()
    };
    assert_eq!(
        f.ledger().batch_get_secret_value(&f.scope, &both).unwrap().unwrap_err().code(),
        ErrorCode::InvalidParameterException
    );
}

#[test]
fn update_secret_version_stage_errors() {
    let mut f = setup();
    f.put("app/db", &tok(1), "v2", Some(&["AWSPENDING"])).unwrap();
    let (v1, v2) = (f.created[0].clone(), f.created[1].clone());
    let stage = |label: &str, to: Option<&str>, from: Option<&str>| {
        Command::UpdateSecretVersionStage(UpdateSecretVersionStage {
            secret_id: "app/db".into(),
            version_stage: label.into(),
            move_to_version_id: to.map(String::from),
            remove_from_version_id: from.map(String::from),
        })
    };
    let e = refused(&mut f, stage("AWSCURRENT", Some(&v2), None), ErrorCode::InvalidParameterException);
    assert_eq!(
        e.to_string(),
        format!("The parameter RemoveFromVersionId can't be empty. Staging label AWSCURRENT is currently attached to version {v1}, so you must explicitly reference that version in RemoveFromVersionId.")
    );
    let e = refused(&mut f, stage("AWSCURRENT", Some(&v2), Some(&v2)), ErrorCode::InvalidParameterException);
    assert!(
        e.to_string().starts_with("When you move staging label AWSCURRENT, if you specify RemoveFromVersionId"),
        "{e}"
    );
    // A custom label needs RemoveFromVersionId just the same (moto let it sit on two versions).
    refused(&mut f, stage("AWSPENDING", Some(&v1), None), ErrorCode::InvalidParameterException);
    refused(&mut f, stage("AWSCURRENT", Some(&tok(99)), Some(&v1)), ErrorCode::InvalidParameterException);
    refused(&mut f, stage("AWSCURRENT", None, Some(&v1)), ErrorCode::InvalidParameterException);
    refused(&mut f, stage("AWSCURRENT", None, None), ErrorCode::InvalidParameterException);
    refused(&mut f, stage("", Some(&v1), None), ErrorCode::ValidationException);
    // A label on no version needs no RemoveFromVersionId (moto#9451).
    f.stage("app/db", "NEW", Some(&v1), None).unwrap();
    // Moving a label onto the version that already has it changes nothing.
    let head = f.ledger().head();
    f.stage("app/db", "NEW", Some(&v1), Some(&v1)).unwrap();
    assert_eq!(f.ledger().head(), head);
}

#[test]
fn delete_and_restore_errors() {
    let mut f = setup();
    let delete = |days: Option<i64>, force: Option<bool>| {
        Command::DeleteSecret(DeleteSecret {
            secret_id: "app/db".into(),
            recovery_window_in_days: days,
            force_delete_without_recovery: force,
        })
    };
    for days in [0, 6, 31] {
        let e = refused(&mut f, delete(Some(days), None), ErrorCode::InvalidParameterException);
        assert_eq!(e.to_string(), "The RecoveryWindowInDays value must be between 7 and 30 days (inclusive).");
    }
    let e = refused(&mut f, delete(Some(0), Some(true)), ErrorCode::InvalidParameterException);
    assert_eq!(e.to_string(), "The RecoveryWindowInDays value must be between 7 and 30 days (inclusive).");
    refused(&mut f, delete(Some(7), Some(true)), ErrorCode::InvalidParameterException);
    let Reply::Deleted { deletion_date_ms, .. } = f.exec(delete(Some(7), None)).unwrap() else { panic!() };
    assert_eq!(deletion_date_ms, crate::fixture::T0 + 7 * 86_400_000);
    let e = refused(&mut f, delete(None, None), ErrorCode::InvalidRequestException);
    assert_eq!(e.to_string(), "You tried to perform the operation on a secret that's currently marked deleted.");
    // Writes while scheduled.
    refused(
        &mut f,
        put("app/db", Some(tok(1)), Some(SecretValue::string("x")), None),
        ErrorCode::InvalidRequestException,
    );
    refused(
        &mut f,
        Command::TagResource(TagResource {
            secret_id: "app/db".into(),
            tags: vec![Tag { key: "k".into(), value: "v".into() }],
        }),
        ErrorCode::InvalidRequestException,
    );
    refused(
        &mut f,
        Command::UntagResource(UntagResource { secret_id: "app/db".into(), tag_keys: vec!["k".into()] }),
        ErrorCode::InvalidRequestException,
    );
    refused(
        &mut f,
        Command::UpdateSecret(UpdateSecret {
            secret_id: "app/db".into(),
            description: Some("d".into()),
            ..UpdateSecret::default()
        }),
        ErrorCode::InvalidRequestException,
    );
    // Listed only with IncludePlannedDeletion.
    assert!(f.ledger().list_secrets(&f.scope, &ListSecrets::default()).unwrap().secrets.is_empty());
    let q = ListSecrets { include_planned_deletion: Some(true), ..ListSecrets::default() };
    assert_eq!(f.ledger().list_secrets(&f.scope, &q).unwrap().secrets.len(), 1);
    // Restore, then the secret works again.
    f.exec(Command::RestoreSecret(RestoreSecret { secret_id: "app/db".into() })).unwrap();
    assert_eq!(f.get_string("app/db").unwrap(), "v1");
    // Force delete: purged at once, the value is gone, restore is not found, the name is free.
    let arn_before = arn(&f);
    f.exec(delete(None, Some(true))).unwrap();
    refused(
        &mut f,
        Command::RestoreSecret(RestoreSecret { secret_id: "app/db".into() }),
        ErrorCode::ResourceNotFoundException,
    );
    // Force-deleting a missing secret succeeds and appends nothing.
    let head = f.ledger().head();
    assert!(matches!(f.exec(delete(None, Some(true))).unwrap(), Reply::Deleted { .. }));
    assert_eq!(f.ledger().head(), head);
    f.create("app/db", Some("again")).unwrap();
    assert_ne!(arn(&f), arn_before, "a re-created name gets a new ARN suffix");
    assert_eq!(f.get_string("app/db").unwrap(), "again");
    f.verify_ok();
}

#[test]
fn recovery_window_end_purges_and_shreds() {
    let mut f = setup();
    f.exec(Command::DeleteSecret(DeleteSecret {
        secret_id: "app/db".into(),
        recovery_window_in_days: Some(7),
        ..DeleteSecret::default()
    }))
    .unwrap();
    f.clock.advance(7 * 86_400_000 + 1);
    // Any write wakes the writer; the sweep appends SecretPurged first.
    f.create("other", Some("x")).unwrap();
    assert!(f.ledger().describe_secret(&f.scope, "app/db").is_err());
    assert_eq!(f.ledger().with_state(|s| s.len()), 1);
    f.verify_ok();
    f.reopen();
    assert!(f.ledger().describe_secret(&f.scope, "app/db").is_err());
    f.verify_ok();
}

#[test]
fn tag_and_update_errors() {
    let mut f = setup();
    let long_key = Tag { key: "k".repeat(129), value: "v".into() };
    refused(
        &mut f,
        Command::TagResource(TagResource { secret_id: "app/db".into(), tags: vec![long_key] }),
        ErrorCode::ValidationException,
    );
    let many: Vec<Tag> = (0..51).map(|i| Tag { key: format!("k{i}"), value: "v".into() }).collect();
    refused(
        &mut f,
        Command::TagResource(TagResource { secret_id: "app/db".into(), tags: many }),
        ErrorCode::LimitExceededException,
    );
    refused(
        &mut f,
        Command::TagResource(TagResource { secret_id: "nope".into(), tags: vec![] }),
        ErrorCode::ResourceNotFoundException,
    );
    // Tags: absent, then set (overwrite, no duplicate key), then [] after removing all.
    assert_eq!(f.ledger().describe_secret(&f.scope, "app/db").unwrap().tags, None);
    let tag = |k: &str, v: &str| Tag { key: k.into(), value: v.into() };
    f.exec(Command::TagResource(TagResource { secret_id: "app/db".into(), tags: vec![tag("a", "1"), tag("b", "2")] }))
        .unwrap();
    f.exec(Command::TagResource(TagResource { secret_id: "app/db".into(), tags: vec![tag("a", "3")] })).unwrap();
    assert_eq!(f.ledger().describe_secret(&f.scope, "app/db").unwrap().tags, Some(vec![tag("a", "3"), tag("b", "2")]));
    f.exec(Command::UntagResource(UntagResource {
        secret_id: "app/db".into(),
        tag_keys: vec!["a".into(), "b".into(), "zz".into()],
    }))
    .unwrap();
    assert_eq!(f.ledger().describe_secret(&f.scope, "app/db").unwrap().tags, Some(vec![]));
    // UpdateSecret: token rules as PutSecretValue, metadata-only needs no token.
    let update = |token: Option<String>, value: Option<&str>, description: Option<&str>| {
        Command::UpdateSecret(UpdateSecret {
            secret_id: "app/db".into(),
            client_request_token: token,
            value: value.map(SecretValue::string),
            description: description.map(String::from),
            ..UpdateSecret::default()
        })
    };
    refused(&mut f, update(None, Some("x"), None), ErrorCode::InvalidRequestException);
    refused(&mut f, update(Some(tok(1)), None, Some(&"d".repeat(2049))), ErrorCode::ValidationException);
    let reply = f.exec(update(Some(tok(5)), None, Some("about"))).unwrap();
    assert!(matches!(reply, Reply::Secret { version_id: None, .. }));
    f.exec(update(Some(tok(6)), Some("v2"), None)).unwrap();
    let head = f.ledger().head();
    assert!(matches!(
        f.exec(update(Some(tok(6)), Some("v2"), None)).unwrap(),
        Reply::Secret { version_id: Some(_), .. }
    ));
    assert_eq!(f.ledger().head(), head);
    refused(&mut f, update(Some(tok(6)), Some("v3"), None), ErrorCode::ResourceExistsException);
    // Tags survive UpdateSecret (LocalStack#2348).
    assert_eq!(f.ledger().describe_secret(&f.scope, "app/db").unwrap().tags, Some(vec![]));
    assert_eq!(f.ledger().describe_secret(&f.scope, "app/db").unwrap().description.as_deref(), Some("about"));
}

#[test]
fn listing_errors_and_pagination() {
    let mut f = setup();
    for i in 0..7 {
        f.create(&format!("svc/{i}"), Some("x")).unwrap();
    }
    let q = |max: Option<i64>, token: Option<String>| ListSecrets {
        max_results: max,
        next_token: token,
        ..ListSecrets::default()
    };
    assert_eq!(
        f.ledger().list_secrets(&f.scope, &q(Some(0), None)).unwrap_err().code(),
        ErrorCode::ValidationException
    );
    assert_eq!(
        f.ledger().list_secrets(&f.scope, &q(Some(101), None)).unwrap_err().code(),
        ErrorCode::ValidationException
    );
    assert_eq!(
        f.ledger().list_secrets(&f.scope, &q(None, Some("garbage!".into()))).unwrap_err().code(),
        ErrorCode::InvalidNextTokenException
    );
    let mut names = Vec::new();
    let mut token = None;
    loop {
        let page = f.ledger().list_secrets(&f.scope, &q(Some(3), token)).unwrap();
        names.extend(page.secrets.into_iter().map(|s| s.name));
        token = page.next_token;
        if token.is_none() {
            break;
        }
    }
    assert_eq!(names.len(), 8);
    let filtered = ListSecrets {
        filters: vec![Filter { key: "name".into(), values: vec!["svc/".into()] }],
        ..ListSecrets::default()
    };
    assert_eq!(f.ledger().list_secrets(&f.scope, &filtered).unwrap().secrets.len(), 7);
    let negated = ListSecrets {
        filters: vec![Filter { key: "name".into(), values: vec!["!svc/".into()] }],
        ..ListSecrets::default()
    };
    assert_eq!(f.ledger().list_secrets(&f.scope, &negated).unwrap().secrets.len(), 1);
    let bad_key = ListSecrets {
        filters: vec![Filter { key: "colour".into(), values: vec!["x".into()] }],
        ..ListSecrets::default()
    };
    assert_eq!(f.ledger().list_secrets(&f.scope, &bad_key).unwrap_err().code(), ErrorCode::ValidationException);
    let v = ListSecretVersionIds { secret_id: "app/db".into(), next_token: Some("AAAA".into()), ..Default::default() };
    assert_eq!(
        f.ledger().list_secret_version_ids(&f.scope, &v).unwrap_err().code(),
        ErrorCode::InvalidNextTokenException
    );
    let v = ListSecretVersionIds { secret_id: "nope".into(), ..Default::default() };
    assert_eq!(
        f.ledger().list_secret_version_ids(&f.scope, &v).unwrap_err().code(),
        ErrorCode::ResourceNotFoundException
    );
}

#[test]
fn secret_id_resolution() {
    let mut f = Fixture::new();
    f.create("plain", Some("a")).unwrap();
    f.create("Invalid-Name-a1b2c3", Some("b")).unwrap();
    let full = f.ledger().describe_secret(&f.scope, "plain").unwrap().arn;
    let partial = &full[..full.len() - 7];
    assert_eq!(f.get_string(&full).unwrap(), "a");
    assert_eq!(f.get_string(partial).unwrap(), "a");
    // The name plus a suffix is not a name.
    assert_eq!(
        f.get_string(&format!("plain{}", &full[full.len() - 7..])).unwrap_err().code(),
        ErrorCode::ResourceNotFoundException
    );
    // A wrong suffix does not fall back to the name.
    let wrong = format!("{partial}-ZZZZZZ");
    assert_eq!(f.get_string(&wrong).unwrap_err().code(), ErrorCode::ResourceNotFoundException);
    // A name ending in hyphen + six characters: the partial ARN looks complete, so it fails;
    // name and full ARN work.
    let full2 = f.ledger().describe_secret(&f.scope, "Invalid-Name-a1b2c3").unwrap().arn;
    assert_eq!(f.get_string(&full2[..full2.len() - 7]).unwrap_err().code(), ErrorCode::ResourceNotFoundException);
    assert_eq!(f.get_string(&full2).unwrap(), "b");
    // Another region or account is not found.
    let foreign = full.replace("us-east-1", "eu-west-1");
    assert_eq!(f.get_string(&foreign).unwrap_err().code(), ErrorCode::ResourceNotFoundException);
    // Names with characters outside the set are ValidationException.
    assert_eq!(f.get_string("has space").unwrap_err().code(), ErrorCode::ValidationException);
}

#[test]
fn random_password_rules() {
    use ledger_core::password::{get_random_password, GetRandomPassword};
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
    use rand_core::SeedableRng;
    let p = get_random_password(&GetRandomPassword::default(), &mut rng).unwrap();
    assert_eq!(p.len(), 32);
    assert!(p.chars().any(|c| c.is_ascii_lowercase()) && p.chars().any(|c| c.is_ascii_uppercase()));
    assert!(p.chars().any(|c| c.is_ascii_digit()) && p.chars().any(|c| c.is_ascii_punctuation()));
    let q = GetRandomPassword { password_length: Some(3), ..Default::default() };
    assert_eq!(get_random_password(&q, &mut rng).unwrap_err().code(), ErrorCode::InvalidParameterException);
    let q = GetRandomPassword { password_length: Some(4097), ..Default::default() };
    assert_eq!(get_random_password(&q, &mut rng).unwrap_err().code(), ErrorCode::ValidationException);
    let q = GetRandomPassword {
        exclude_characters: Some("abc".into()),
        exclude_punctuation: Some(true),
        password_length: Some(200),
        ..Default::default()
    };
    let p = get_random_password(&q, &mut rng).unwrap();
    assert!(!p.contains(['a', 'b', 'c']) && p.chars().all(|c| c.is_ascii_alphanumeric()));
}

/// Review finding: a forced delete of a "complete" ARN whose resource holds a `:` made decide
/// slice before the start of a string and panic on the writer thread.
#[test]
fn forced_delete_of_an_odd_full_arn_is_answered() {
    let mut f = setup();
    let head = f.ledger().head();
    let odd = "arn:aws:secretsmanager:us-east-1:123456789012:secret:a-bc:def";
    let reply = f
        .exec(Command::DeleteSecret(DeleteSecret {
            secret_id: odd.into(),
            force_delete_without_recovery: Some(true),
            ..DeleteSecret::default()
        }))
        .unwrap();
    assert!(matches!(reply, Reply::Deleted { ref name, .. } if name == "a"), "{reply:?}");
    assert_eq!(f.ledger().head(), head);
    // The writer is alive: writes still work.
    f.put("app/db", &tok(1), "v2", None).unwrap();
}

/// Review finding: moving AWSCURRENT adds AWSPREVIOUS to the old holder, which can be label 21.
#[test]
fn stage_move_that_needs_awsprevious_respects_the_label_quota() {
    let mut f = setup();
    let labels: Vec<String> = (0..19).map(|i| format!("L{i}")).collect();
    f.put("app/db", &tok(1), "v2", Some(&labels.iter().map(String::as_str).collect::<Vec<_>>())).unwrap();
    let v1 = f.created[0].clone();
    let stage = Command::UpdateSecretVersionStage(UpdateSecretVersionStage {
        secret_id: "app/db".into(),
        version_stage: "AWSCURRENT".into(),
        move_to_version_id: Some(tok(1)),
        remove_from_version_id: Some(v1),
    });
    refused(&mut f, stage, ErrorCode::LimitExceededException);
    // The group was not abandoned: the next write works and the log verifies.
    f.put("app/db", &tok(2), "v3", Some(&["L0"])).unwrap();
    f.verify_ok();
}

/// Reads go through a cache of sealed values by record seq: each version still reads as its own
/// value (by id, by label, in a batch) after new versions, and a record that cannot be read fails
/// every read of it, never cached.
#[test]
fn cached_reads_return_each_versions_own_value_and_never_cache_a_failure() {
    let mut f = Fixture::new();
    f.create("app/db", Some("v1")).unwrap();
    assert_eq!(f.get_string("app/db").unwrap(), "v1");
    f.put("app/db", &tok(1), "v2", None).unwrap();
    assert_eq!(f.get_string("app/db").unwrap(), "v2");
    let v1 = f.created[0].clone();
    assert_eq!(f.get("app/db", Some(&v1), None).unwrap().1, SecretValue::string("v1"));
    assert_eq!(f.get("app/db", None, Some("AWSPREVIOUS")).unwrap().1, SecretValue::string("v1"));
    let q = BatchGetSecretValue { secret_id_list: Some(vec!["app/db".into()]), ..Default::default() };
    let batch = f.ledger().batch_get_secret_value(&f.scope, &q).expect("storage works").expect("answered");
    assert_eq!(batch.values.len(), 1);
    assert_eq!(batch.values[0].value, SecretValue::string("v2"));
    // v3's record goes missing before anyone read it: every read of it fails.
    f.put("app/db", &tok(2), "v3", None).unwrap();
    let seq = f.ledger().with_state(|s| s.by_name("us-east-1", "app/db").unwrap().versions[&tok(2)].seq);
    f.tree().remove(ledger_store::layout::event_key(seq)).unwrap();
    let q = query::GetSecretValue { secret_id: "app/db".into(), version_id: None, version_stage: None };
    for _ in 0..2 {
        assert!(f.ledger().get_secret_value(&f.scope, &q).is_err(), "a missing record was read");
    }
}
