//! RotateSecret, CancelRotateSecret and the resource-policy operations through the AWS SDK for
//! Rust, with an external rotator (this test) driving the rotation steps as a rotation
//! function would: PutSecretValue(token, AWSPENDING), then UpdateSecretVersionStage.

use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use aws_sdk_secretsmanager::types::RotationRulesType;
use serde_json::json;

use crate::common::{send, token, Raw, TestServer};

const LAMBDA: &str = "arn:aws:lambda:us-east-1:000000000000:function:rotate-db";

fn code<T: std::fmt::Debug, E: ProvideErrorMetadata + std::fmt::Debug>(result: Result<T, E>) -> (String, String) {
    let err = result.expect_err("the call should fail");
    (err.code().unwrap_or("<none>").to_string(), err.message().unwrap_or("").to_string())
}

#[tokio::test]
async fn rotation_driven_by_an_external_rotator() {
    let t = TestServer::start().await;
    let c = t.client("us-east-1");
    let name = "rotate/db";
    c.create_secret().name(name).secret_string("v1").send().await.unwrap();
    let v1 = c.get_secret_value().secret_id(name).send().await.unwrap().version_id().unwrap().to_string();

    // No function passed and none configured.
    let (code_, message) = code(c.rotate_secret().secret_id(name).send().await);
    assert_eq!(
        (code_.as_str(), message.as_str()),
        ("InvalidRequestException", "No Lambda rotation function ARN is associated with this secret.")
    );
    // Rules are checked before the secret is looked up.
    let bad_rules = RotationRulesType::builder().automatically_after_days(0).build();
    let (code_, message) =
        code(c.rotate_secret().secret_id("no/such").rotation_lambda_arn(LAMBDA).rotation_rules(bad_rules).send().await);
    assert_eq!(
        (code_.as_str(), message.as_str()),
        ("InvalidParameterException", "RotationRules.AutomaticallyAfterDays must be within 1-1000.")
    );
    let (code_, _) = code(c.rotate_secret().secret_id("no/such").rotation_lambda_arn(LAMBDA).send().await);
    assert_eq!(code_, "ResourceNotFoundException");

    // Start: configuration recorded, AWSPENDING reserved on a version without a value.
    let rules = RotationRulesType::builder().automatically_after_days(30).build();
    let pending = token();
    let started = c
        .rotate_secret()
        .secret_id(name)
        .client_request_token(&pending)
        .rotation_lambda_arn(LAMBDA)
        .rotation_rules(rules)
        .send()
        .await
        .unwrap();
    assert_eq!(started.version_id(), Some(pending.as_str()));
    let d = c.describe_secret().secret_id(name).send().await.unwrap();
    assert_eq!(d.rotation_enabled(), Some(true));
    assert_eq!(d.rotation_lambda_arn(), Some(LAMBDA));
    assert_eq!(d.rotation_rules().and_then(|r| r.automatically_after_days()), Some(30));
    assert!(d.next_rotation_date().is_some() && d.last_rotated_date().is_none());
    let stages = d.version_ids_to_stages().unwrap();
    assert_eq!(stages[&pending], ["AWSPENDING"]);
    assert_eq!(stages[&v1], ["AWSCURRENT"]);
    // The placeholder has no value: not readable, not listed.
    let (code_, message) = code(c.get_secret_value().secret_id(name).version_stage("AWSPENDING").send().await);
    assert_eq!(code_, "ResourceNotFoundException", "{message}");
    let listed = c.list_secret_version_ids().secret_id(name).send().await.unwrap();
    assert!(listed.versions().iter().all(|v| v.version_id() != Some(pending.as_str())));
    // A rotation in progress refuses another one; a retry of the same request is answered.
    let (code_, message) = code(c.rotate_secret().secret_id(name).send().await);
    assert_eq!(code_, "InvalidRequestException", "{message}");
    let again = c.rotate_secret().secret_id(name).client_request_token(&pending).send().await.unwrap();
    assert_eq!(again.version_id(), Some(pending.as_str()));

    // The rotator's createSecret step fills the placeholder; AWSCURRENT can't go to it before.
    let (code_, _) = code(
        c.update_secret_version_stage()
            .secret_id(name)
            .version_stage("AWSCURRENT")
            .move_to_version_id(&pending)
            .remove_from_version_id(&v1)
            .send()
            .await,
    );
    assert_eq!(code_, "InvalidRequestException");
    let filled = c
        .put_secret_value()
        .secret_id(name)
        .client_request_token(&pending)
        .secret_string("v2")
        .version_stages("AWSPENDING")
        .send()
        .await
        .unwrap();
    assert_eq!(filled.version_stages(), ["AWSPENDING"]);
    let got = c.get_secret_value().secret_id(name).version_stage("AWSPENDING").send().await.unwrap();
    assert_eq!(got.secret_string(), Some("v2"));
    // finishSecret: AWSCURRENT moves; the rotation is complete.
    c.update_secret_version_stage()
        .secret_id(name)
        .version_stage("AWSCURRENT")
        .move_to_version_id(&pending)
        .remove_from_version_id(&v1)
        .send()
        .await
        .unwrap();
    let d = c.describe_secret().secret_id(name).send().await.unwrap();
    let rotated = d.last_rotated_date().expect("LastRotatedDate after the rotation");
    let next = d.next_rotation_date().unwrap();
    assert_eq!(next.secs() - rotated.secs(), 30 * 86_400, "AutomaticallyAfterDays counts from the rotation");
    // A new rotation may start now: AWSPENDING sits on AWSCURRENT's version.
    let second = c.rotate_secret().secret_id(name).send().await.unwrap();
    assert_ne!(second.version_id(), Some(pending.as_str()));

    // Cancel: rotation off, the interrupted version named, AWSPENDING left in place.
    let cancelled = c.cancel_rotate_secret().secret_id(name).send().await.unwrap();
    assert_eq!(cancelled.version_id(), second.version_id());
    let d = c.describe_secret().secret_id(name).send().await.unwrap();
    assert_eq!(d.rotation_enabled(), Some(false));
    assert!(d.next_rotation_date().is_none());
    assert_eq!(d.version_ids_to_stages().unwrap()[second.version_id().unwrap()], ["AWSPENDING"]);

    // RotateImmediately=false records the configuration only: without a runner nothing is
    // reserved or tested (with one, lambda.rs tests that testSecret alone runs).
    c.create_secret().name("rotate/later").secret_string("x").send().await.unwrap();
    let head = t.head();
    c.rotate_secret()
        .secret_id("rotate/later")
        .rotation_lambda_arn(LAMBDA)
        .rotation_rules(RotationRulesType::builder().schedule_expression("rate(10 days)").duration("3h").build())
        .rotate_immediately(false)
        .send()
        .await
        .unwrap();
    assert_eq!(t.head(), head + 1, "one RotationConfigured event");
    let d = c.describe_secret().secret_id("rotate/later").send().await.unwrap();
    assert_eq!(d.rotation_rules().and_then(|r| r.schedule_expression()), Some("rate(10 days)"));
    assert_eq!(d.version_ids_to_stages().unwrap().len(), 1);

    // Raw requests: no token → InvalidParameterException, before the lookup.
    let body = json!({"SecretId": "no/such", "RotationLambdaARN": LAMBDA}).to_string();
    let msg =
        send(t.addr(), Raw::new("secretsmanager.RotateSecret", body)).await.expect_error("InvalidParameterException");
    assert_eq!(msg, "You must provide a ClientRequestToken value. We recommend a UUID-type value.");
    t.stop().await;
}

#[tokio::test]
async fn resource_policies() {
    let t = TestServer::start().await;
    let c = t.client("us-east-1");
    let name = "policy/db";
    c.create_secret().name(name).secret_string("x").send().await.unwrap();
    let public = json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]
    })
    .to_string();

    // No policy yet: ARN and Name only.
    let got = c.get_resource_policy().secret_id(name).send().await.unwrap();
    assert!(got.arn().is_some() && got.resource_policy().is_none());
    // Put answers ARN and Name; Get returns the text as put.
    let put = c.put_resource_policy().secret_id(name).resource_policy(&public).send().await.unwrap();
    assert_eq!(put.name(), Some(name));
    let got = c.get_resource_policy().secret_id(name).send().await.unwrap();
    assert_eq!(got.resource_policy(), Some(public.as_str()));
    // The same policy again appends nothing.
    let head = t.head();
    c.put_resource_policy().secret_id(name).resource_policy(&public).send().await.unwrap();
    assert_eq!(t.head(), head);
    // BlockPublicPolicy refuses a policy open to everyone.
    let (code_, _) =
        code(c.put_resource_policy().secret_id(name).resource_policy(&public).block_public_policy(true).send().await);
    assert_eq!(code_, "PublicPolicyException");
    let (code_, _) = code(c.put_resource_policy().secret_id(name).resource_policy("not json").send().await);
    assert_eq!(code_, "MalformedPolicyDocumentException");
    let (code_, message) = code(c.get_resource_policy().secret_id("bad name!?").send().await);
    assert_eq!(code_, "ValidationException", "{message}");
    // Validate: passes, or lists findings; a missing secret is not found.
    let ok = c.validate_resource_policy().secret_id(name).resource_policy(&public).send().await.unwrap();
    assert!(ok.policy_validation_passed() && ok.validation_errors().is_empty());
    let bad =
        c.validate_resource_policy().resource_policy(r#"{"Statement": [{"Effect": "Maybe"}]}"#).send().await.unwrap();
    assert!(!bad.policy_validation_passed() && bad.validation_errors().len() == 3);
    let (code_, _) = code(c.validate_resource_policy().secret_id("no/such").resource_policy(&public).send().await);
    assert_eq!(code_, "ResourceNotFoundException");
    // Delete, and delete again (succeeds, appends nothing).
    c.delete_resource_policy().secret_id(name).send().await.unwrap();
    assert!(c.get_resource_policy().secret_id(name).send().await.unwrap().resource_policy().is_none());
    let head = t.head();
    c.delete_resource_policy().secret_id(name).send().await.unwrap();
    assert_eq!(t.head(), head);
    t.stop().await;
}

/// LastAccessedDate through the SDK: a date (midnight UTC) once the value was read, on
/// DescribeSecret, ListSecrets and each ListSecretVersionIds entry; absent before.
#[tokio::test]
async fn last_accessed_date() {
    let t = TestServer::start().await;
    let c = t.client("us-east-1");
    c.create_secret().name("read/me").secret_string("x").send().await.unwrap();
    assert!(c.describe_secret().secret_id("read/me").send().await.unwrap().last_accessed_date().is_none());
    c.get_secret_value().secret_id("read/me").send().await.unwrap();
    // The read queued its event before answering; a write behind it in the queue settles it.
    c.tag_resource()
        .secret_id("read/me")
        .tags(aws_sdk_secretsmanager::types::Tag::builder().key("k").value("v").build())
        .send()
        .await
        .unwrap();
    let d = c.describe_secret().secret_id("read/me").send().await.unwrap();
    let day = d.last_accessed_date().expect("LastAccessedDate after a read").secs();
    assert_eq!(day % 86_400, 0, "a date, midnight UTC");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!(now - day < 86_400 + 60);
    let listed = c.list_secrets().send().await.unwrap();
    assert_eq!(listed.secret_list()[0].last_accessed_date().map(|d| d.secs()), Some(day));
    let versions = c.list_secret_version_ids().secret_id("read/me").send().await.unwrap();
    assert_eq!(versions.versions()[0].last_accessed_date().map(|d| d.secs()), Some(day));
    t.stop().await;
}
