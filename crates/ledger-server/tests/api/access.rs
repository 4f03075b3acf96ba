//! Access scopes of credentials: a full key, an `ro` key and a `prefix=app/` key on one server.
//! The read-only key cannot write; the scoped key cannot read, write, list or learn the
//! existence of secrets outside `app/` (same answer for an existing and a missing name) but can
//! do everything under it; audit operations need a key without prefixes; refused calls append
//! nothing.

use std::time::SystemTime;

use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType, Tag};
use aws_sdk_secretsmanager::Client;
use serde_json::{json, Value};

use crate::common::{send, token, Raw, TestServer, AKID, SECRET};

const RO_AKID: &str = "AKIATESTREADONLY0001";
const RO_SECRET: &str = "ro/secret+key=";
const APP_AKID: &str = "AKIATESTAPPSCOPE0001";
const APP_SECRET: &str = "app/secret+key=";
const NOAUDIT_AKID: &str = "AKIATESTNOAUDIT00001";
const NOAUDIT_SECRET: &str = "noaudit/secret";

async fn server() -> TestServer {
    TestServer::start_with_credentials(&format!(
        "# full, read-only, scoped to app/, no audit\n{AKID}:{SECRET}\n{RO_AKID}:{RO_SECRET}:ro\n\
         {APP_AKID}:{APP_SECRET}:prefix=app/\n{NOAUDIT_AKID}:{NOAUDIT_SECRET}:noaudit\n"
    ))
    .await
}

/// `(code, message)` of a failed SDK call.
fn refusal<T: std::fmt::Debug, E: ProvideErrorMetadata + std::fmt::Debug>(result: Result<T, E>) -> (String, String) {
    let err = result.expect_err("the call should be refused");
    (err.code().unwrap_or("<none>").to_string(), err.message().unwrap_or("").to_string())
}

/// Asserts an `AccessDeniedException` naming the operation and the id as given; returns the
/// message with the id blanked out, so answers for different ids can be compared.
fn denied<T: std::fmt::Debug, E: ProvideErrorMetadata + std::fmt::Debug>(
    result: Result<T, E>,
    akid: &str,
    op: &str,
    id: &str,
) -> String {
    let (code, message) = refusal(result);
    assert_eq!(code, "AccessDeniedException", "{op} {id}: {message}");
    assert_eq!(
        message,
        format!("User: {akid} is not authorized to perform: secretsmanager:{op} on resource: {id}"),
        "{op} {id}"
    );
    message.replace(id, "<id>")
}

/// Every write operation on `id`, each asserted refused; the blanked messages, in order.
async fn every_write_refused(c: &Client, akid: &str, id: &str) -> Vec<String> {
    let v = token();
    vec![
        denied(c.create_secret().name(id).secret_string("x").send().await, akid, "CreateSecret", id),
        denied(c.put_secret_value().secret_id(id).secret_string("x").send().await, akid, "PutSecretValue", id),
        denied(c.update_secret().secret_id(id).description("d").send().await, akid, "UpdateSecret", id),
        denied(
            c.update_secret_version_stage().secret_id(id).version_stage("S").move_to_version_id(&v).send().await,
            akid,
            "UpdateSecretVersionStage",
            id,
        ),
        denied(c.delete_secret().secret_id(id).send().await, akid, "DeleteSecret", id),
        denied(
            c.delete_secret().secret_id(id).force_delete_without_recovery(true).send().await,
            akid,
            "DeleteSecret",
            id,
        ),
        denied(c.restore_secret().secret_id(id).send().await, akid, "RestoreSecret", id),
        denied(
            c.tag_resource().secret_id(id).tags(Tag::builder().key("k").value("v").build()).send().await,
            akid,
            "TagResource",
            id,
        ),
        denied(c.untag_resource().secret_id(id).tag_keys("k").send().await, akid, "UntagResource", id),
    ]
}

#[tokio::test]
async fn read_only_key_reads_but_cannot_write() {
    let t = server().await;
    let full = t.client("us-east-1");
    let ro = t.client_with("us-east-1", RO_AKID, RO_SECRET);
    let created = full.create_secret().name("shared/db").secret_string("s3cr3t").send().await.unwrap();
    let arn = created.arn().unwrap().to_string();

    let got = ro.get_secret_value().secret_id("shared/db").send().await.unwrap();
    assert_eq!(got.secret_string(), Some("s3cr3t"));
    assert_eq!(ro.describe_secret().secret_id(&arn).send().await.unwrap().name(), Some("shared/db"));
    assert_eq!(ro.list_secret_version_ids().secret_id("shared/db").send().await.unwrap().versions().len(), 1);
    assert_eq!(ro.list_secrets().send().await.unwrap().secret_list().len(), 1);
    let batch = ro.batch_get_secret_value().secret_id_list("shared/db").send().await.unwrap();
    assert_eq!(batch.secret_values().len(), 1);
    assert_eq!(ro.get_random_password().password_length(12).send().await.unwrap().random_password().unwrap().len(), 12);

    // The reads' access date is appended without being waited for: let it land first.
    for _ in 0..200 {
        let d = full.describe_secret().secret_id("shared/db").send().await.unwrap();
        if d.last_accessed_date().is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let head = t.head();
    for id in ["shared/db", arn.as_str(), "shared/new"] {
        every_write_refused(&ro, RO_AKID, id).await;
    }
    assert_eq!(t.head(), head, "refused writes appended");
    // The secret is untouched.
    let d = full.describe_secret().secret_id("shared/db").send().await.unwrap();
    assert!(d.description().is_none() && d.deleted_date().is_none() && d.tags().is_empty());
    t.stop().await;
}

#[tokio::test]
async fn scoped_key_cannot_reach_or_detect_other_secrets() {
    let t = server().await;
    let full = t.client("us-east-1");
    let app = t.client_with("us-east-1", APP_AKID, APP_SECRET);
    let other = full.create_secret().name("other/x").secret_string("other-value").send().await.unwrap();
    let other_arn = other.arn().unwrap().to_string();
    full.tag_resource()
        .secret_id("other/x")
        .tags(Tag::builder().key("team").value("ops").build())
        .send()
        .await
        .unwrap();
    full.create_secret().name("app/a").secret_string("app-value").send().await.unwrap();
    let head = t.head();

    let arn_prefix = "arn:aws:secretsmanager:us-east-1:000000000000:secret:";
    let existing = [
        "other/x".to_string(),
        other_arn.clone(),
        format!("{arn_prefix}other/x"),
        // An ARN of another region never resolves here, and is out of scope too.
        other_arn.replace("us-east-1", "eu-west-1"),
    ];
    let missing = [
        "other/missing".to_string(),
        format!("{arn_prefix}other/missing-AbCdEf"),
        format!("{arn_prefix}other/missing"),
    ];
    let mut answers = Vec::new();
    for id in existing.iter().chain(&missing) {
        let mut blanked = vec![
            denied(app.get_secret_value().secret_id(id).send().await, APP_AKID, "GetSecretValue", id),
            denied(app.describe_secret().secret_id(id).send().await, APP_AKID, "DescribeSecret", id),
            denied(app.list_secret_version_ids().secret_id(id).send().await, APP_AKID, "ListSecretVersionIds", id),
        ];
        blanked.extend(every_write_refused(&app, APP_AKID, id).await);
        answers.push(blanked);
    }
    // The same answer, word for word, whether the secret exists or not.
    assert!(answers.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(t.head(), head, "refused calls appended");

    // Listings only show `app/`, whatever the filters and page size.
    let names = |list: &[aws_sdk_secretsmanager::types::SecretListEntry]| -> Vec<String> {
        list.iter().map(|e| e.name().unwrap().to_string()).collect()
    };
    assert_eq!(names(app.list_secrets().send().await.unwrap().secret_list()), ["app/a"]);
    let page = app.list_secrets().max_results(1).include_planned_deletion(true).send().await.unwrap();
    assert_eq!(names(page.secret_list()), ["app/a"]);
    assert!(page.next_token().is_none());
    let by_tag = Filter::builder().key(FilterNameStringType::TagKey).values("team").build();
    assert!(app.list_secrets().filters(by_tag.clone()).send().await.unwrap().secret_list().is_empty());
    let by_name = Filter::builder().key(FilterNameStringType::Name).values("other").build();
    assert!(app.list_secrets().filters(by_name.clone()).send().await.unwrap().secret_list().is_empty());
    // The full key still sees both.
    assert_eq!(full.list_secrets().send().await.unwrap().secret_list().len(), 2);

    // Batch by filter: absent; by id: an AccessDenied entry, the same for a missing name.
    for filter in [by_tag, by_name] {
        let batch = app.batch_get_secret_value().filters(filter).send().await.unwrap();
        assert!(batch.secret_values().is_empty() && batch.errors().is_empty());
    }
    let all = Filter::builder().key(FilterNameStringType::All).values("a").build();
    let batch = app.batch_get_secret_value().filters(all).send().await.unwrap();
    assert_eq!(batch.secret_values().iter().map(|v| v.name().unwrap()).collect::<Vec<_>>(), ["app/a"]);
    // That read of app/a is the day's first: one SecretAccessed, settled by a write queued
    // behind it (a restore of a live secret appends nothing).
    full.restore_secret().secret_id("app/a").send().await.unwrap();
    let head = head + 1;
    assert_eq!(t.head(), head);
    let batch = app
        .batch_get_secret_value()
        .secret_id_list("other/x")
        .secret_id_list("app/a")
        .secret_id_list("other/missing")
        .secret_id_list(&other_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(batch.secret_values().len(), 1);
    assert_eq!(batch.secret_values()[0].secret_string(), Some("app-value"));
    let errors: Vec<(String, String, String)> = batch
        .errors()
        .iter()
        .map(|e| {
            let id = e.secret_id().unwrap().to_string();
            let message = e.message().unwrap().replace(&id, "<id>");
            (id, e.error_code().unwrap().to_string(), message)
        })
        .collect();
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert_eq!(
        errors.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(),
        ["other/x", "other/missing", other_arn.as_str()]
    );
    for e in &errors {
        assert_eq!(e.1, "AccessDeniedException");
        assert_eq!(
            e.2,
            format!("User: {APP_AKID} is not authorized to perform: secretsmanager:GetSecretValue on resource: <id>")
        );
    }
    // The whole request is still checked: too many ids is a validation error, not a leak.
    let too_many = app.batch_get_secret_value().set_secret_id_list(Some(vec!["other/x".to_string(); 21])).send().await;
    assert_eq!(refusal(too_many).0, "ValidationException");
    assert_eq!(t.head(), head, "refused calls appended");

    // Nothing was changed for the other secret.
    let d = full.describe_secret().secret_id("other/x").send().await.unwrap();
    assert_eq!(d.version_ids_to_stages().map(|m| m.len()), Some(1));
    assert!(d.description().is_none() && d.deleted_date().is_none() && d.tags().len() == 1);
    t.stop().await;
}

#[tokio::test]
async fn scoped_key_does_everything_under_its_prefix() {
    let t = server().await;
    let app = t.client_with("us-east-1", APP_AKID, APP_SECRET);
    let (v1, v2) = (token(), token());
    let created =
        app.create_secret().name("app/db").client_request_token(&v1).secret_string("one").send().await.unwrap();
    let arn = created.arn().unwrap().to_string();
    app.put_secret_value()
        .secret_id(&arn)
        .client_request_token(&v2)
        .secret_string("two")
        .version_stages("AWSPENDING")
        .send()
        .await
        .unwrap();
    app.update_secret_version_stage()
        .secret_id("app/db")
        .version_stage("AWSCURRENT")
        .move_to_version_id(&v2)
        .remove_from_version_id(&v1)
        .send()
        .await
        .unwrap();
    let got = app.get_secret_value().secret_id(&arn).send().await.unwrap();
    assert_eq!((got.secret_string(), got.version_id()), (Some("two"), Some(v2.as_str())));
    let partial = "arn:aws:secretsmanager:us-east-1:000000000000:secret:app/db";
    assert_eq!(app.describe_secret().secret_id(partial).send().await.unwrap().arn(), Some(arn.as_str()));
    assert_eq!(app.list_secret_version_ids().secret_id("app/db").send().await.unwrap().versions().len(), 2);
    app.update_secret().secret_id("app/db").description("the db").send().await.unwrap();
    app.tag_resource().secret_id("app/db").tags(Tag::builder().key("k").value("v").build()).send().await.unwrap();
    app.untag_resource().secret_id("app/db").tag_keys("k").send().await.unwrap();
    let batch = app.batch_get_secret_value().secret_id_list("app/db").send().await.unwrap();
    assert_eq!(batch.secret_values()[0].secret_string(), Some("two"));
    assert_eq!(app.list_secrets().send().await.unwrap().secret_list().len(), 1);
    app.delete_secret().secret_id("app/db").send().await.unwrap();
    app.restore_secret().secret_id("app/db").send().await.unwrap();
    app.delete_secret().secret_id(&arn).force_delete_without_recovery(true).send().await.unwrap();
    // A missing name under the prefix is an ordinary "not found".
    assert_eq!(refusal(app.describe_secret().secret_id("app/db").send().await).0, "ResourceNotFoundException");
    assert_eq!(
        app.get_random_password().password_length(20).send().await.unwrap().random_password().unwrap().len(),
        20
    );
    t.stop().await;
}

#[tokio::test]
async fn audit_operations_need_a_key_without_prefixes() {
    let t = server().await;
    t.client("us-east-1").create_secret().name("app/db").secret_string("v").send().await.unwrap();
    let head = t.head();
    let calls: [(&str, Value); 5] = [
        ("History", json!({"SecretId": "app/db"})),
        ("State", json!({"AsOf": 1})),
        ("Export", json!({})),
        ("Checkpoint", json!({})),
        ("Verify", json!({})),
    ];
    for (akid, secret, allowed) in [
        (AKID, SECRET, true),
        (RO_AKID, RO_SECRET, true),
        (APP_AKID, APP_SECRET, false),
        (NOAUDIT_AKID, NOAUDIT_SECRET, false),
    ] {
        for (op, body) in &calls {
            let target = format!("SecretLedger.{op}");
            let mut raw = Raw::new(&target, body.to_string());
            raw.sign_with = Some((akid, secret, SystemTime::now()));
            let response = send(t.addr(), raw).await;
            if allowed {
                assert_eq!(response.status, 200, "{akid} {op}: {}", String::from_utf8_lossy(&response.body));
            } else {
                let message = response.expect_error("AccessDeniedException");
                assert_eq!(
                    message,
                    format!("User: {akid} is not authorized to perform: secretledger:{op} on resource: *")
                );
            }
        }
    }
    assert_eq!(t.head(), head);
    t.stop().await;
}
