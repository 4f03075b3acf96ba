//! Corners of the Secrets Manager surface through the AWS SDK for Rust (and raw requests for the
//! operations the SDK does not have): trace F (spec §4.3) through PutSecretValue and UpdateSecret
//! after a rotation driven by an external rotator, the word rules of the ListSecrets filters,
//! the rotation fields of ListSecrets entries, `SortBy: last-accessed-date`, a policy that is
//! not JSON, and the operations this server does not serve.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use aws_sdk_secretsmanager::types::{
    Filter, FilterNameStringType, ReplicaRegionType, RotationRulesType, SortByType, SortOrderType, Tag,
};
use aws_sdk_secretsmanager::Client;
use ledger_store::ManualClock;
use serde_json::json;

use crate::common::{send, token, Raw, TestServer, AKID, SECRET};

const LAMBDA: &str = "arn:aws:lambda:us-east-1:000000000000:function:rotate-db";
const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const DAY_MS: i64 = 86_400_000;

/// The error code and message of a failed SDK call.
fn code<T: std::fmt::Debug, E: ProvideErrorMetadata + std::fmt::Debug>(result: Result<T, E>) -> (String, String) {
    let err = result.expect_err("the call should fail");
    (err.code().unwrap_or("<none>").to_string(), err.message().unwrap_or("").to_string())
}

async fn stages_of(c: &Client, id: &str) -> BTreeMap<String, Vec<String>> {
    let d = c.describe_secret().secret_id(id).send().await.unwrap();
    d.version_ids_to_stages().cloned().unwrap_or_default().into_iter().collect()
}

/// A server whose ledger runs on a clock the test moves (SigV4 still checks the wall clock).
async fn start_on(clock: Arc<ManualClock>) -> TestServer {
    TestServer::start_configured(&format!("{AKID}:{SECRET}\n"), move |config| config.ledger_options.clock = clock).await
}

/// The setup of trace F with the rotation started by RotateSecret (no Lambda endpoint: the test
/// is the external rotator): v1 takes `AWSPREVIOUS`, the rotation's version v2 ends with
/// `AWSCURRENT` and `AWSPENDING`. Returns (v1, v2).
async fn promote_a_rotation(c: &Client, name: &str) -> (String, String) {
    let v1 = c.create_secret().name(name).secret_string("S1").send().await.unwrap().version_id().unwrap().to_string();
    let v2 = token();
    let started = c.rotate_secret().secret_id(name).client_request_token(&v2).rotation_lambda_arn(LAMBDA).send();
    assert_eq!(started.await.unwrap().version_id(), Some(v2.as_str()));
    assert_eq!(stages_of(c, name).await[&v2], ["AWSPENDING"], "reserved, without a value");
    let filled = c
        .put_secret_value()
        .secret_id(name)
        .client_request_token(&v2)
        .secret_string("S2")
        .version_stages("AWSPENDING")
        .send()
        .await
        .unwrap();
    assert_eq!(filled.version_stages(), ["AWSPENDING"]);
    let promote = c.update_secret_version_stage().secret_id(name).version_stage("AWSCURRENT").move_to_version_id(&v2);
    promote.remove_from_version_id(&v1).send().await.unwrap();
    let stages = stages_of(c, name).await;
    assert_eq!(stages[&v1], ["AWSPREVIOUS"]);
    assert_eq!(stages[&v2], ["AWSCURRENT", "AWSPENDING"]);
    let d = c.describe_secret().secret_id(name).send().await.unwrap();
    assert!(d.last_rotated_date().is_some(), "AWSCURRENT moved onto the rotation's version");
    (v1, v2)
}

/// After the default write v3 of trace F: `v1[] v2[AWSPREVIOUS] v3[AWSCURRENT]`, no
/// `AWSPENDING` anywhere, v1 deprecated, and a new rotation may start.
async fn expect_trace_f(c: &Client, name: &str, (v1, v2, v3): (&str, &str, &str)) {
    let stages = stages_of(c, name).await;
    let want: BTreeMap<String, Vec<String>> =
        [(v2.to_string(), vec!["AWSPREVIOUS".to_string()]), (v3.to_string(), vec!["AWSCURRENT".to_string()])].into();
    assert_eq!(stages, want, "trace F");
    let current = c.get_secret_value().secret_id(name).send().await.unwrap();
    assert_eq!((current.version_id(), current.secret_string()), (Some(v3), Some("S3")));
    let (code_, _) = code(c.get_secret_value().secret_id(name).version_stage("AWSPENDING").send().await);
    assert_eq!(code_, "ResourceNotFoundException");
    let listed = c.list_secret_version_ids().secret_id(name).include_deprecated(true).send().await.unwrap();
    let v1_entry = listed.versions().iter().find(|v| v.version_id() == Some(v1)).expect("v1 listed");
    assert!(v1_entry.version_stages().is_empty(), "v1 deprecated");
    // AWSPENDING is gone, so no rotation is in progress.
    c.rotate_secret().secret_id(name).rotation_lambda_arn(LAMBDA).send().await.unwrap();
}

#[tokio::test]
async fn trace_f_through_put_secret_value() {
    let t = TestServer::start().await;
    let c = t.client("us-east-1");
    let (v1, v2) = promote_a_rotation(&c, "trace-f/put").await;
    let put = c.put_secret_value().secret_id("trace-f/put").secret_string("S3").send().await.unwrap();
    assert_eq!(put.version_stages(), ["AWSCURRENT"], "the new version does not get AWSPENDING");
    expect_trace_f(&c, "trace-f/put", (&v1, &v2, put.version_id().unwrap())).await;

    // The same without RotateSecret, as recorded on AWS: Put(S2, [AWSPENDING]), promote, Put(S3).
    let name = "trace-f/plain";
    let v1 = c.create_secret().name(name).secret_string("S1").send().await.unwrap().version_id().unwrap().to_string();
    let put = c.put_secret_value().secret_id(name).secret_string("S2").version_stages("AWSPENDING").send();
    let v2 = put.await.unwrap().version_id().unwrap().to_string();
    let promote = c.update_secret_version_stage().secret_id(name).version_stage("AWSCURRENT").move_to_version_id(&v2);
    promote.remove_from_version_id(&v1).send().await.unwrap();
    let put = c.put_secret_value().secret_id(name).secret_string("S3").send().await.unwrap();
    expect_trace_f(&c, name, (&v1, &v2, put.version_id().unwrap())).await;
    t.stop().await;
}

#[tokio::test]
async fn trace_f_through_update_secret() {
    let t = TestServer::start().await;
    let c = t.client("us-east-1");
    let (v1, v2) = promote_a_rotation(&c, "trace-f/update").await;
    let updated = c.update_secret().secret_id("trace-f/update").secret_string("S3").send().await.unwrap();
    let v3 = updated.version_id().expect("a value makes a version").to_string();
    expect_trace_f(&c, "trace-f/update", (&v1, &v2, &v3)).await;
    t.stop().await;
}

/// Names of the secrets every filter matches (AND), in name order.
async fn matching(c: &Client, filters: &[(FilterNameStringType, &str)]) -> Vec<String> {
    let filters = filters.iter().map(|(key, value)| Filter::builder().key(key.clone()).values(*value).build());
    let out = c.list_secrets().set_filters(Some(filters.collect())).send().await.unwrap();
    let mut names: Vec<String> = out.secret_list().iter().map(|s| s.name().unwrap().to_string()).collect();
    names.sort();
    names
}

#[tokio::test]
async fn list_secrets_word_rules_separators_and_case() {
    let t = TestServer::start().await;
    let c = t.client("us-east-1");
    let one_separator = ["prod/AppBeta/x", "prod_AppBeta_x", "prod+AppBeta+x", "prod=AppBeta=x", "prod.AppBeta.x"];
    let one_separator = [&one_separator[..], &["prod@AppBeta@x", "prod-AppBeta-x"]].concat();
    let others = ["prod-AppBeta/x", "uat/COMPANYthings/x", "uat/COMPANY/x"];
    for name in one_separator.iter().chain(&others) {
        c.create_secret().name(*name).secret_string("v").send().await.unwrap();
    }
    let mut split: Vec<String> = one_separator.iter().map(|n| n.to_string()).collect();
    split.sort();
    let all = FilterNameStringType::All;
    // Each single kind of separator splits words; two kinds in one name make one word.
    assert_eq!(matching(&c, &[(all.clone(), "AppBeta")]).await, split);
    assert_eq!(matching(&c, &[(all.clone(), "Beta")]).await, split, "a case transition starts a word");
    assert_eq!(matching(&c, &[(all.clone(), "BETA")]).await, split, "case-insensitive");
    assert_eq!(matching(&c, &[(all.clone(), "prod-AppBeta/x")]).await, ["prod-AppBeta/x"]);
    assert!(matching(&c, &[(all.clone(), "+")]).await.is_empty(), "a separator alone matches nothing");
    // Lower→upper transitions only; a run of capitals gives its last one to the next word.
    assert_eq!(matching(&c, &[(all.clone(), "company")]).await, ["uat/COMPANY/x"]);
    assert_eq!(matching(&c, &[(all.clone(), "Ythings")]).await, ["uat/COMPANYthings/x"]);
    assert_eq!(matching(&c, &[(all.clone(), "compan")]).await, ["uat/COMPANY/x", "uat/COMPANYthings/x"]);
    for nothing in ["things", "N", "pany", "ppBeta"] {
        assert!(matching(&c, &[(all.clone(), nothing)]).await.is_empty(), "{nothing} starts no word");
    }
    // `name` stays a case-sensitive prefix of the whole name.
    assert_eq!(matching(&c, &[(FilterNameStringType::Name, "uat/COMPANY")]).await.len(), 2);
    assert!(matching(&c, &[(FilterNameStringType::Name, "AppBeta")]).await.is_empty());
    t.stop().await;
}

#[tokio::test]
async fn list_secrets_word_rules_terms_descriptions_and_tags() {
    let t = TestServer::start().await;
    let c = t.client("us-east-1");
    let descriptions = [("text/1", "one two"), ("text/2", "one and two"), ("text/3", "one"), ("text/4", "two")];
    for (name, description) in descriptions.into_iter().chain([("text/5", "DescTwo")]) {
        c.create_secret().name(name).description(description).secret_string("v").send().await.unwrap();
    }
    let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
    c.create_secret().name("tagged/1").tags(tag("1", "foo")).secret_string("v").send().await.unwrap();
    c.create_secret().name("tagged/2").tags(tag("foo", "v")).secret_string("v").send().await.unwrap();
    let (all, description) = (FilterNameStringType::All, FilterNameStringType::Description);

    // Terms of one value must all match; prefixes of words; case-insensitive.
    assert_eq!(matching(&c, &[(description.clone(), "one two")]).await, ["text/1", "text/2"]);
    assert_eq!(matching(&c, &[(description.clone(), "o t")]).await, ["text/1", "text/2"]);
    assert_eq!(matching(&c, &[(description.clone(), "TWO")]).await, ["text/1", "text/2", "text/4", "text/5"]);
    assert!(matching(&c, &[(description.clone(), "wo")]).await.is_empty(), "not the middle of a word");
    assert_eq!(matching(&c, &[(all.clone(), "d t")]).await, ["text/5"]);
    // Two filters are ANDed.
    let both = matching(&c, &[(description.clone(), "one"), (description.clone(), "two")]).await;
    assert!(both.contains(&"text/1".to_string()) && !both.iter().any(|n| n == "text/3" || n == "text/4"));
    assert_eq!(matching(&c, &[(all.clone(), "text"), (description.clone(), "desc")]).await, ["text/5"]);
    // `all` searches tag keys and values too.
    assert_eq!(matching(&c, &[(all.clone(), "foo")]).await, ["tagged/1", "tagged/2"]);
    assert_eq!(matching(&c, &[(all.clone(), "FO")]).await, ["tagged/1", "tagged/2"]);
    // An unknown key is refused with the enum's validation message.
    let bogus = Filter::builder().key(FilterNameStringType::from("bogus")).values("x").build();
    let (code_, message) = code(c.list_secrets().filters(bogus).send().await);
    assert_eq!(code_, "ValidationException");
    assert!(message.contains("Value 'bogus' at 'filters.1.member.key'"), "{message}");
    t.stop().await;
}

#[tokio::test]
async fn list_secrets_returns_the_rotation_fields() {
    let clock = Arc::new(ManualClock::new(T0));
    let t = start_on(clock.clone()).await;
    let c = t.client("us-east-1");
    c.create_secret().name("rotated").secret_string("v").send().await.unwrap();
    c.create_secret().name("plain").secret_string("v").send().await.unwrap();
    clock.advance(DAY_MS);
    let rules = RotationRulesType::builder().automatically_after_days(10).build();
    let rotate = c.rotate_secret().secret_id("rotated").rotation_lambda_arn(LAMBDA).rotation_rules(rules);
    rotate.rotate_immediately(false).send().await.unwrap();

    let listed = c.list_secrets().sort_by(SortByType::Name).send().await.unwrap();
    let [plain, rotated] = listed.secret_list() else { panic!("two secrets: {listed:?}") };
    assert_eq!(rotated.rotation_enabled(), Some(true));
    assert_eq!(rotated.rotation_lambda_arn(), Some(LAMBDA));
    assert_eq!(rotated.rotation_rules().and_then(|r| r.automatically_after_days()), Some(10));
    let next = rotated.next_rotation_date().expect("NextRotationDate").secs();
    assert_eq!(next * 1000, T0 + DAY_MS + 10 * DAY_MS, "ten days after the configuration");
    assert!(rotated.last_rotated_date().is_none(), "nothing rotated yet");
    // As DescribeSecret says.
    let d = c.describe_secret().secret_id("rotated").send().await.unwrap();
    assert_eq!(d.next_rotation_date().map(|d| d.secs()), Some(next));
    assert_eq!(d.rotation_rules(), rotated.rotation_rules());
    // Never configured: none of them.
    assert_eq!(plain.rotation_enabled(), None);
    assert!(plain.rotation_lambda_arn().is_none() && plain.rotation_rules().is_none());
    assert!(plain.next_rotation_date().is_none());

    // Cancelled: off, no next date; function and rules kept.
    c.cancel_rotate_secret().secret_id("rotated").send().await.unwrap();
    let listed = c.list_secrets().filters(Filter::builder().key(FilterNameStringType::Name).values("rotated").build());
    let listed = listed.send().await.unwrap();
    let [rotated] = listed.secret_list() else { panic!("one secret: {listed:?}") };
    assert_eq!(rotated.rotation_enabled(), Some(false));
    assert!(rotated.next_rotation_date().is_none());
    assert_eq!(rotated.rotation_lambda_arn(), Some(LAMBDA));
    assert_eq!(rotated.rotation_rules().and_then(|r| r.automatically_after_days()), Some(10));
    t.stop().await;
}

/// Reads `name`'s value, then waits for its `SecretAccessed` (a write behind it in the queue).
async fn read(c: &Client, name: &str) {
    c.get_secret_value().secret_id(name).send().await.unwrap();
    let settle = Tag::builder().key("settle").value("yes").build();
    c.tag_resource().secret_id(name).tags(settle).send().await.unwrap();
}

#[tokio::test]
async fn list_secrets_sorted_by_last_accessed_date() {
    let clock = Arc::new(ManualClock::new(T0 + 3_600_000));
    let t = start_on(clock.clone()).await;
    let c = t.client("us-east-1");
    for name in ["a", "b", "c", "d"] {
        c.create_secret().name(name).secret_string("v").send().await.unwrap();
    }
    read(&c, "c").await;
    clock.advance(DAY_MS);
    read(&c, "a").await;
    // Never read first (by creation), then by the day of the last read.
    let sorted = |order: SortOrderType, page: i32, next: Option<String>| {
        let list = c.list_secrets().sort_by(SortByType::LastAccessedDate).sort_order(order).max_results(page);
        list.set_next_token(next).send()
    };
    let names = |out: &aws_sdk_secretsmanager::operation::list_secrets::ListSecretsOutput| -> Vec<String> {
        out.secret_list().iter().map(|s| s.name().unwrap().to_string()).collect()
    };
    let asc = sorted(SortOrderType::Asc, 10, None).await.unwrap();
    assert_eq!(names(&asc), ["b", "d", "c", "a"]);
    let days: Vec<Option<i64>> = asc.secret_list().iter().map(|s| s.last_accessed_date().map(|d| d.secs())).collect();
    assert_eq!(days, [None, None, Some(T0 / 1000), Some((T0 + DAY_MS) / 1000)]);
    assert_eq!(names(&sorted(SortOrderType::Desc, 10, None).await.unwrap()), ["a", "c", "d", "b"]);
    // Pages keep the order.
    let first = sorted(SortOrderType::Asc, 3, None).await.unwrap();
    assert_eq!(names(&first), ["b", "d", "c"]);
    let second = sorted(SortOrderType::Asc, 3, first.next_token().map(str::to_string)).await.unwrap();
    assert_eq!((names(&second), second.next_token()), (vec!["a".to_string()], None));
    // The version read carries the date too.
    let versions = c.list_secret_version_ids().secret_id("a").send().await.unwrap();
    assert_eq!(versions.versions()[0].last_accessed_date().map(|d| d.secs()), Some((T0 + DAY_MS) / 1000));
    t.stop().await;
}

#[tokio::test]
async fn validate_resource_policy_refuses_text_that_is_not_json() {
    let t = TestServer::start().await;
    let c = t.client("us-east-1");
    c.create_secret().name("policy/target").secret_string("v").send().await.unwrap();
    let head = t.head();
    for text in ["not json", "{\"Statement\": [", "Version: 2012-10-17"] {
        let (code_, message) = code(c.validate_resource_policy().resource_policy(text).send().await);
        assert_eq!(code_, "MalformedPolicyDocumentException", "{text}: {message}");
        let with_secret = c.validate_resource_policy().secret_id("policy/target").resource_policy(text);
        assert_eq!(code(with_secret.send().await).0, "MalformedPolicyDocumentException");
    }
    assert_eq!(t.head(), head, "validation appends nothing");
    t.stop().await;
}

#[tokio::test]
async fn replication_and_cross_account_operations_are_not_served() {
    let t = TestServer::start().await;
    let c = t.client("us-east-1");
    let name = "not/replicated";
    c.create_secret().name(name).secret_string("v").send().await.unwrap();
    let head = t.head();
    let region = ReplicaRegionType::builder().region("eu-west-1").build();
    let replicate = c.replicate_secret_to_regions().secret_id(name).add_replica_regions(region).send().await;
    assert_eq!(code(replicate).0, "UnknownOperationException");
    let remove = c.remove_regions_from_replication().secret_id(name).remove_replica_regions("eu-west-1");
    assert_eq!(code(remove.send().await).0, "UnknownOperationException");
    assert_eq!(code(c.stop_replication_to_replica().secret_id(name).send().await).0, "UnknownOperationException");
    // Operations this SDK does not have yet, by hand.
    let arn = c.describe_secret().secret_id(name).send().await.unwrap().arn().unwrap().to_string();
    let raw = [
        ("ListResourcePolicies", json!({})),
        ("ListResourcePolicies", json!({"MaxResults": 10})),
        ("AssociateCrossAccountReplica", json!({"SecretId": arn, "ReplicaAccount": "111122223333"})),
        ("DisassociateCrossAccountReplica", json!({"SecretId": arn, "ReplicaAccount": "111122223333"})),
    ];
    for (operation, body) in raw {
        let target = format!("secretsmanager.{operation}");
        let response = send(t.addr(), Raw::new(&target, body.to_string())).await;
        let message = response.expect_error("UnknownOperationException");
        assert!(!message.is_empty(), "{operation}");
    }
    assert_eq!(t.head(), head, "nothing appended");
    assert_eq!(c.get_secret_value().secret_id(name).send().await.unwrap().secret_string(), Some("v"));
    t.stop().await;
}
