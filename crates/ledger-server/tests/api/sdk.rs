//! The PutSecretValue story and friends, through the real AWS SDK for Rust.

use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use aws_sdk_secretsmanager::primitives::Blob;
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType, Tag};
use aws_sdk_secretsmanager::Client;

use crate::common::{token, TestServer};

/// The error code (`__type`) of a failed SDK call.
fn code<T: std::fmt::Debug, E: ProvideErrorMetadata + std::fmt::Debug>(result: Result<T, E>) -> (String, String) {
    let err = result.expect_err("the call should fail");
    (err.code().unwrap_or("<none>").to_string(), err.message().unwrap_or("").to_string())
}

async fn get_string(client: &Client, id: &str, stage: Option<&str>) -> String {
    let out =
        client.get_secret_value().secret_id(id).set_version_stage(stage.map(str::to_string)).send().await.unwrap();
    out.secret_string().unwrap().to_string()
}

async fn stages_of(client: &Client, id: &str) -> std::collections::BTreeMap<String, Vec<String>> {
    let d = client.describe_secret().secret_id(id).send().await.unwrap();
    d.version_ids_to_stages().cloned().unwrap_or_default().into_iter().collect()
}

#[tokio::test]
async fn put_secret_value_story() {
    let t = TestServer::start().await;
    let c = t.client("us-east-1");
    let name = "story/db-password";

    // CreateSecret with a value: v1 carries AWSCURRENT.
    let t1 = token();
    let created = c.create_secret().name(name).client_request_token(&t1).secret_string("s1").send().await.unwrap();
    assert_eq!(created.version_id(), Some(t1.as_str()));
    assert_eq!(created.name(), Some(name));
    let arn = created.arn().unwrap().to_string();
    assert!(arn.starts_with(&format!("arn:aws:secretsmanager:us-east-1:000000000000:secret:{name}-")), "{arn}");
    assert_eq!(arn.len(), format!("arn:aws:secretsmanager:us-east-1:000000000000:secret:{name}-").len() + 6);

    // Same token and value: identical answer, nothing appended. Another token: name taken.
    let head = t.head();
    let again = c.create_secret().name(name).client_request_token(&t1).secret_string("s1").send().await.unwrap();
    assert_eq!((again.arn(), again.version_id()), (Some(arn.as_str()), Some(t1.as_str())));
    assert_eq!(t.head(), head);
    let (code_, msg) = code(c.create_secret().name(name).secret_string("s1").send().await);
    assert_eq!(code_, "ResourceExistsException");
    assert_eq!(msg, format!("The operation failed because the secret {name} already exists."));

    // PutSecretValue without a token (the SDK fills one): AWSCURRENT moves, AWSPREVIOUS follows.
    let put = c.put_secret_value().secret_id(name).secret_string("s2").send().await.unwrap();
    let v2 = put.version_id().unwrap().to_string();
    assert_eq!(v2.len(), 36);
    assert_eq!(put.version_stages(), ["AWSCURRENT"]);
    assert_eq!(get_string(&c, name, None).await, "s2");
    assert_eq!(get_string(&c, name, Some("AWSPREVIOUS")).await, "s1");

    // With a token; the retry with the same value is a no-op, with another value a conflict.
    let t3 = token();
    let put = c.put_secret_value().secret_id(name).client_request_token(&t3).secret_string("s3").send().await.unwrap();
    assert_eq!(put.version_id(), Some(t3.as_str()));
    let head = t.head();
    let retry =
        c.put_secret_value().secret_id(name).client_request_token(&t3).secret_string("s3").send().await.unwrap();
    assert_eq!(retry.version_id(), Some(t3.as_str()));
    assert_eq!(retry.version_stages(), ["AWSCURRENT"]);
    assert_eq!(t.head(), head, "an idempotent retry appends nothing");
    let (code_, msg) =
        code(c.put_secret_value().secret_id(name).client_request_token(&t3).secret_string("other").send().await);
    assert_eq!(code_, "ResourceExistsException");
    assert_eq!(
        msg,
        format!(
            "You can't use ClientRequestToken {t3} because that value is already in use for a version of secret {arn}."
        )
    );
    // A binary value under the same token is a different value too.
    let (code_, _) = code(
        c.put_secret_value().secret_id(name).client_request_token(&t3).secret_binary(Blob::new("s3")).send().await,
    );
    assert_eq!(code_, "ResourceExistsException");

    // Both value fields: refused.
    let (code_, _) =
        code(c.put_secret_value().secret_id(name).secret_string("x").secret_binary(Blob::new("x")).send().await);
    assert_eq!(code_, "InvalidParameterException");

    // Explicit VersionStages: exactly those labels; AWSCURRENT stays.
    let t4 = token();
    let put = c
        .put_secret_value()
        .secret_id(name)
        .client_request_token(&t4)
        .secret_string("s4")
        .version_stages("AWSPENDING")
        .send()
        .await
        .unwrap();
    assert_eq!(put.version_stages(), ["AWSPENDING"]);
    assert_eq!(get_string(&c, name, None).await, "s3");
    assert_eq!(get_string(&c, name, Some("AWSPENDING")).await, "s4");

    // Moving AWSCURRENT needs RemoveFromVersionId naming its holder.
    let (code_, msg) = code(
        c.update_secret_version_stage()
            .secret_id(name)
            .version_stage("AWSCURRENT")
            .move_to_version_id(&t4)
            .send()
            .await,
    );
    assert_eq!(code_, "InvalidParameterException");
    assert_eq!(
        msg,
        format!("The parameter RemoveFromVersionId can't be empty. Staging label AWSCURRENT is currently attached to version {t3}, so you must explicitly reference that version in RemoveFromVersionId.")
    );
    let (code_, _) = code(
        c.update_secret_version_stage()
            .secret_id(name)
            .version_stage("AWSCURRENT")
            .move_to_version_id(&t4)
            .remove_from_version_id(&t1)
            .send()
            .await,
    );
    assert_eq!(code_, "InvalidParameterException");
    let moved = c
        .update_secret_version_stage()
        .secret_id(name)
        .version_stage("AWSCURRENT")
        .move_to_version_id(&t4)
        .remove_from_version_id(&t3)
        .send()
        .await
        .unwrap();
    assert_eq!(moved.arn(), Some(arn.as_str()));
    let stages = stages_of(&c, name).await;
    assert_eq!(stages[&t4], ["AWSCURRENT", "AWSPENDING"]);
    assert_eq!(stages[&t3], ["AWSPREVIOUS"]);
    assert_eq!(stages.len(), 2, "deprecated versions are not in VersionIdsToStages: {stages:?}");
    assert_eq!(get_string(&c, name, None).await, "s4");

    // Deprecated versions: hidden by default, listed (without stages) with IncludeDeprecated,
    // still readable by VersionId.
    let listed = c.list_secret_version_ids().secret_id(name).send().await.unwrap();
    let ids: Vec<&str> = listed.versions().iter().map(|v| v.version_id().unwrap()).collect();
    assert_eq!(ids, [t3.as_str(), t4.as_str()]);
    let all = c.list_secret_version_ids().secret_id(name).include_deprecated(true).send().await.unwrap();
    let ids: Vec<&str> = all.versions().iter().map(|v| v.version_id().unwrap()).collect();
    assert_eq!(ids, [t1.as_str(), v2.as_str(), t3.as_str(), t4.as_str()]);
    assert!(all.versions()[0].version_stages().is_empty());
    assert_eq!(all.versions()[0].kms_key_ids(), ["DefaultEncryptionKey"]);
    assert!(all.versions()[0].created_date().is_some());
    let old = c.get_secret_value().secret_id(name).version_id(&t1).send().await.unwrap();
    assert_eq!(old.secret_string(), Some("s1"));
    assert!(old.version_stages().is_empty());
    // Paging the version list.
    let page =
        c.list_secret_version_ids().secret_id(name).include_deprecated(true).max_results(3).send().await.unwrap();
    assert_eq!(page.versions().len(), 3);
    let rest = c
        .list_secret_version_ids()
        .secret_id(name)
        .include_deprecated(true)
        .max_results(3)
        .next_token(page.next_token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(rest.versions().len(), 1);
    assert!(rest.next_token().is_none());

    // Removing a custom label; VersionStage/VersionId mismatch on reads.
    c.update_secret_version_stage()
        .secret_id(name)
        .version_stage("AWSPENDING")
        .remove_from_version_id(&t4)
        .send()
        .await
        .unwrap();
    assert_eq!(stages_of(&c, name).await[&t4], ["AWSCURRENT"]);
    let (code_, msg) =
        code(c.get_secret_value().secret_id(name).version_id(&t3).version_stage("AWSCURRENT").send().await);
    assert_eq!(code_, "InvalidRequestException");
    assert_eq!(msg, "You provided a VersionStage that is not associated to the provided VersionId.");
    let (code_, msg) = code(c.get_secret_value().secret_id(name).version_stage("AWSPENDING").send().await);
    assert_eq!(code_, "ResourceNotFoundException");
    assert_eq!(msg, "Secrets Manager can't find the specified secret value for staging label: AWSPENDING");

    // UpdateSecret: description only (no version), then with a value.
    let updated = c.update_secret().secret_id(name).description("the db password").send().await.unwrap();
    assert!(updated.version_id().is_none());
    let updated = c.update_secret().secret_id(name).secret_string("s5").send().await.unwrap();
    let v5 = updated.version_id().unwrap().to_string();
    assert_eq!(get_string(&c, name, None).await, "s5");
    assert_eq!(stages_of(&c, name).await[&v5], ["AWSCURRENT"]);
    let described = c.describe_secret().secret_id(name).send().await.unwrap();
    assert_eq!(described.description(), Some("the db password"));
    assert!(
        described.tags().is_empty() && described.created_date().is_some() && described.last_changed_date().is_some()
    );

    // Delete with a 7-day window, restore.
    let before = std::time::SystemTime::now();
    let deleted = c.delete_secret().secret_id(name).recovery_window_in_days(7).send().await.unwrap();
    let deletion = deleted.deletion_date().unwrap();
    let expected = before.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64 + 7 * 86_400;
    assert!((deletion.secs() - expected).abs() < 60, "{deletion:?}");
    let (code_, msg) = code(c.get_secret_value().secret_id(name).send().await);
    assert_eq!(code_, "InvalidRequestException");
    assert_eq!(msg, "You can't perform this operation on the secret because it was marked for deletion.");
    let (code_, _) = code(c.put_secret_value().secret_id(name).secret_string("x").send().await);
    assert_eq!(code_, "InvalidRequestException");
    assert!(c.describe_secret().secret_id(name).send().await.unwrap().deleted_date().is_some());
    let listed = c.list_secrets().send().await.unwrap();
    assert!(listed.secret_list().iter().all(|s| s.name() != Some(name)));
    let listed = c.list_secrets().include_planned_deletion(true).send().await.unwrap();
    assert!(listed.secret_list().iter().any(|s| s.name() == Some(name) && s.deleted_date().is_some()));
    let (code_, _) = code(c.delete_secret().secret_id(name).recovery_window_in_days(3).send().await);
    assert_eq!(code_, "InvalidParameterException");
    let restored = c.restore_secret().secret_id(name).send().await.unwrap();
    assert_eq!(restored.arn(), Some(arn.as_str()));
    assert_eq!(get_string(&c, name, None).await, "s5");
    assert!(c.describe_secret().secret_id(name).send().await.unwrap().deleted_date().is_none());

    // Force delete: gone; a force delete of a missing secret succeeds.
    c.delete_secret().secret_id(name).force_delete_without_recovery(true).send().await.unwrap();
    let (code_, _) = code(c.describe_secret().secret_id(name).send().await);
    assert_eq!(code_, "ResourceNotFoundException");
    c.delete_secret().secret_id("never/existed").force_delete_without_recovery(true).send().await.unwrap();

    t.stop().await;
}

#[tokio::test]
async fn binary_values_arns_tags_and_passwords() {
    let t = TestServer::start().await;
    let c = t.client("us-east-1");

    // Every byte value survives the round trip exactly (base64 once on the wire).
    let bytes: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    let created = c.create_secret().name("bin/key").secret_binary(Blob::new(bytes.clone())).send().await.unwrap();
    let got = c.get_secret_value().secret_id("bin/key").send().await.unwrap();
    assert_eq!(got.secret_binary().unwrap().as_ref(), &bytes[..]);
    assert!(got.secret_string().is_none());
    let put =
        c.put_secret_value().secret_id("bin/key").secret_binary(Blob::new(b"footest".to_vec())).send().await.unwrap();
    let got = c.get_secret_value().secret_id("bin/key").version_id(put.version_id().unwrap()).send().await.unwrap();
    assert_eq!(got.secret_binary().unwrap().as_ref(), b"footest");
    // The largest value is accepted, one byte more is not.
    let big = vec![0xA5u8; 65_536];
    c.put_secret_value().secret_id("bin/key").secret_binary(Blob::new(big.clone())).send().await.unwrap();
    assert_eq!(
        c.get_secret_value().secret_id("bin/key").send().await.unwrap().secret_binary().unwrap().as_ref(),
        &big[..]
    );
    let (code_, _) =
        code(c.put_secret_value().secret_id("bin/key").secret_binary(Blob::new(vec![1u8; 65_537])).send().await);
    assert_eq!(code_, "ValidationException");

    // Full ARN, partial ARN (no suffix), wrong suffix, another region's ARN.
    let arn = created.arn().unwrap().to_string();
    let partial = &arn[..arn.len() - 7];
    assert_eq!(c.describe_secret().secret_id(&arn).send().await.unwrap().name(), Some("bin/key"));
    assert_eq!(c.describe_secret().secret_id(partial).send().await.unwrap().arn(), Some(arn.as_str()));
    let wrong_suffix = format!("{partial}-zzzzzz");
    let (code_, msg) = code(c.describe_secret().secret_id(&wrong_suffix).send().await);
    assert_eq!(code_, "ResourceNotFoundException");
    assert_eq!(msg, "Secrets Manager can't find the specified secret.");
    let (code_, _) = code(c.describe_secret().secret_id(arn.replace("us-east-1", "eu-west-1")).send().await);
    assert_eq!(code_, "ResourceNotFoundException");

    // Tags: absent until tagged, overwritten by key, [] after the last one is removed.
    assert!(c.describe_secret().secret_id("bin/key").send().await.unwrap().tags.is_none());
    let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
    c.tag_resource().secret_id("bin/key").tags(tag("team", "a")).tags(tag("env", "prod")).send().await.unwrap();
    c.tag_resource().secret_id(&arn).tags(tag("team", "b")).send().await.unwrap();
    let tags = c.describe_secret().secret_id("bin/key").send().await.unwrap().tags.unwrap();
    let mut pairs: Vec<(String, String)> =
        tags.iter().map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string())).collect();
    pairs.sort();
    assert_eq!(pairs, [("env".to_string(), "prod".to_string()), ("team".to_string(), "b".to_string())]);
    c.untag_resource().secret_id("bin/key").tag_keys("team").tag_keys("env").tag_keys("absent").send().await.unwrap();
    assert_eq!(c.describe_secret().secret_id("bin/key").send().await.unwrap().tags, Some(vec![]));

    // A secret without a value has no versions.
    let empty = c.create_secret().name("no/value").description("later").send().await.unwrap();
    assert!(empty.version_id().is_none());
    assert!(c.describe_secret().secret_id("no/value").send().await.unwrap().version_ids_to_stages.is_none());
    let (code_, msg) = code(c.get_secret_value().secret_id("no/value").send().await);
    assert_eq!(code_, "ResourceNotFoundException");
    assert_eq!(msg, "Secrets Manager can't find the specified secret value for staging label: AWSCURRENT");

    // BatchGetSecretValue: per-secret errors do not fail the call.
    let batch =
        c.batch_get_secret_value().secret_id_list("bin/key").secret_id_list("missing/one").send().await.unwrap();
    assert_eq!(batch.secret_values().len(), 1);
    assert_eq!(batch.secret_values()[0].secret_binary().unwrap().as_ref(), &big[..]);
    assert_eq!(batch.errors().len(), 1);
    assert_eq!(batch.errors()[0].error_code(), Some("ResourceNotFoundException"));
    assert_eq!(batch.errors()[0].secret_id(), Some("missing/one"));

    // GetRandomPassword.
    let pw = c.get_random_password().password_length(40).exclude_punctuation(true).send().await.unwrap();
    let pw = pw.random_password().unwrap();
    assert_eq!(pw.len(), 40);
    assert!(pw.chars().all(|ch| ch.is_ascii_alphanumeric()));
    let (code_, _) = code(c.get_random_password().password_length(0).send().await);
    assert_eq!(code_, "ValidationException");

    // Invalid name.
    let (code_, _) = code(c.create_secret().name("bad name!").secret_string("x").send().await);
    assert_eq!(code_, "ValidationException");

    t.stop().await;
}

#[tokio::test]
async fn list_secrets_pagination_and_filters() {
    let t = TestServer::start().await;
    let c = t.client("us-east-1");
    let mut names = Vec::new();
    for i in 0..7 {
        let name = format!("page/item-{i}");
        c.create_secret().name(&name).secret_string("v").description(format!("Item number {i}")).send().await.unwrap();
        names.push(name);
    }
    c.create_secret().name("other/thing").secret_string("v").send().await.unwrap();

    let name_filter = Filter::builder().key(FilterNameStringType::Name).values("page/").build();
    let mut seen = Vec::new();
    let mut next: Option<String> = None;
    let mut pages = 0;
    loop {
        let out = c
            .list_secrets()
            .filters(name_filter.clone())
            .max_results(3)
            .set_next_token(next.clone())
            .send()
            .await
            .unwrap();
        pages += 1;
        assert!(out.secret_list().len() <= 3);
        for entry in out.secret_list() {
            assert!(entry.secret_versions_to_stages().is_some_and(|m| m.values().any(|s| s == &["AWSCURRENT"])));
            seen.push(entry.name().unwrap().to_string());
        }
        next = out.next_token().map(str::to_string);
        if next.is_none() {
            break;
        }
        assert!(pages < 10);
    }
    assert_eq!(seen, names, "every secret once, in creation order");
    assert_eq!(pages, 3);

    // The SDK's own paginator agrees.
    let pages: Vec<_> = c.list_secrets().max_results(2).into_paginator().send().collect::<Vec<_>>().await;
    let n: usize = pages.into_iter().map(|p| p.unwrap().secret_list().len()).sum();
    assert_eq!(n, 8);

    // Negation and the `all` word match; sorting by name descending.
    let not_page = Filter::builder().key(FilterNameStringType::Name).values("!page/").build();
    let out = c.list_secrets().filters(not_page).send().await.unwrap();
    assert_eq!(out.secret_list().iter().map(|s| s.name().unwrap()).collect::<Vec<_>>(), ["other/thing"]);
    let words = Filter::builder().key(FilterNameStringType::All).values("number").build();
    assert_eq!(c.list_secrets().filters(words).send().await.unwrap().secret_list().len(), 7);
    let desc = c
        .list_secrets()
        .sort_by(aws_sdk_secretsmanager::types::SortByType::Name)
        .sort_order(aws_sdk_secretsmanager::types::SortOrderType::Desc)
        .send()
        .await
        .unwrap();
    assert_eq!(desc.secret_list()[0].name(), Some("page/item-6"));
    assert_eq!(desc.secret_list()[7].name(), Some("other/thing"));

    let (code_, _) = code(c.list_secrets().next_token("bm90LWEtdG9rZW4").send().await);
    assert_eq!(code_, "InvalidNextTokenException");

    t.stop().await;
}

#[tokio::test]
async fn unknown_credentials_are_refused_by_the_sdk() {
    let t = TestServer::start().await;
    let head = t.head();
    let stranger = t.client_with("us-east-1", "AKIAUNKNOWN000000000", "whatever");
    let (code_, msg) = code(stranger.create_secret().name("x").secret_string("y").send().await);
    assert_eq!(code_, "UnrecognizedClientException");
    assert_eq!(msg, "The security token included in the request is invalid.");
    let wrong_secret = t.client_with("us-east-1", crate::common::AKID, "not-the-secret");
    let (code_, _) = code(wrong_secret.create_secret().name("x").secret_string("y").send().await);
    assert_eq!(code_, "InvalidSignatureException");
    assert_eq!(t.head(), head);
    t.stop().await;
}

#[tokio::test]
async fn an_endpoint_with_a_path_prefix_is_signed_and_served() {
    let t = TestServer::start().await;
    let http_client = aws_smithy_http_client::Builder::new()
        .build_with_connector_fn(|_, _| aws_smithy_http_client::Connector::builder().build_http());
    let config = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
        .endpoint_url(format!("{}/ledger/v1", t.endpoint()))
        .region(aws_sdk_secretsmanager::config::Region::new("ap-south-1"))
        .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
            crate::common::AKID,
            crate::common::SECRET,
            Some("a-session-token".into()),
            None,
            "test",
        ))
        .http_client(http_client)
        .build();
    let c = Client::from_conf(config);
    let created = c.create_secret().name("prefixed").secret_string("p").send().await.unwrap();
    assert!(created.arn().unwrap().starts_with("arn:aws:secretsmanager:ap-south-1:"));
    let got = c.get_secret_value().secret_id("prefixed").send().await.unwrap();
    assert_eq!(got.secret_string(), Some("p"));
    t.stop().await;
}
