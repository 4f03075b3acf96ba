//! One ClientRequestToken, many concurrent callers (tokio `Barrier`, one SDK client each):
//! with one value exactly one version is created and every caller gets its VersionId; with
//! different values exactly one value wins, its callers get the VersionId and every other caller
//! gets ResourceExistsException; after a restart on the same data dir the retry still answers
//! the same way and appends nothing.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use aws_sdk_secretsmanager::Client;
use tokio::sync::Barrier;

use crate::common::{token, TestServer};

const CALLERS: usize = 16;
const NAME: &str = "idempotency/concurrent";

async fn version_count(client: &Client) -> usize {
    let out = client
        .list_secret_version_ids()
        .secret_id(NAME)
        .include_deprecated(true)
        .max_results(100)
        .send()
        .await
        .unwrap();
    assert!(out.next_token().is_none());
    out.versions().len()
}

/// Every caller sends PutSecretValue(token, values[i]) at the same moment; returns per caller
/// `Ok(VersionId)` or `Err(error code)`.
async fn race(t: &TestServer, token: &str, values: &[String]) -> Vec<Result<String, String>> {
    let barrier = Arc::new(Barrier::new(values.len()));
    let mut tasks = Vec::new();
    for value in values {
        let (client, barrier, token, value) =
            (t.client("us-east-1"), barrier.clone(), token.to_string(), value.clone());
        tasks.push(tokio::spawn(async move {
            // Warm the connection first, so the barrier releases requests, not handshakes.
            client.describe_secret().secret_id(NAME).send().await.unwrap();
            barrier.wait().await;
            let sent = client.put_secret_value().secret_id(NAME).client_request_token(token).secret_string(value);
            match sent.send().await {
                Ok(out) => Ok(out.version_id().unwrap().to_string()),
                Err(e) => Err(e.code().unwrap_or("<none>").to_string()),
            }
        }));
    }
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.unwrap());
    }
    out
}

async fn value_of(client: &Client, version_id: &str) -> String {
    let out = client.get_secret_value().secret_id(NAME).version_id(version_id).send().await.unwrap();
    out.secret_string().unwrap().to_string()
}

/// Checks a race where `values[i]` was sent by caller i: one value won, its callers got `token`,
/// everyone else ResourceExistsException. Returns the winning value.
fn one_winner(token: &str, values: &[String], results: &[Result<String, String>]) -> String {
    let mut winners: BTreeMap<&str, usize> = BTreeMap::new();
    for (value, result) in values.iter().zip(results) {
        match result {
            Ok(version_id) => {
                assert_eq!(version_id, token, "a success names the token's version");
                *winners.entry(value.as_str()).or_default() += 1;
            }
            Err(code) => assert_eq!(code, "ResourceExistsException", "the losers' error"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one value wins: {results:?}");
    let (winner, n) = winners.into_iter().next().unwrap();
    let senders = values.iter().filter(|v| *v == winner).count();
    assert_eq!(n, senders, "every caller with the winning value succeeds: {results:?}");
    winner.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_token_many_concurrent_callers() {
    let t = TestServer::start().await;
    let c = t.client("us-east-1");
    c.create_secret().name(NAME).client_request_token(token()).secret_string("v0").send().await.unwrap();
    let mut versions = version_count(&c).await;

    // The same value from every caller: one version, one VersionId for all.
    let same = token();
    let values = vec!["same value".to_string(); CALLERS];
    let results = race(&t, &same, &values).await;
    assert!(results.iter().all(|r| r.as_deref() == Ok(same.as_str())), "{results:?}");
    versions += 1;
    assert_eq!(version_count(&c).await, versions, "exactly one version for {CALLERS} concurrent calls");
    assert_eq!(value_of(&c, &same).await, "same value");

    // A different value from every caller: one wins, the other fifteen are refused.
    let distinct = token();
    let values: Vec<String> = (0..CALLERS).map(|i| format!("value {i}")).collect();
    let results = race(&t, &distinct, &values).await;
    let distinct_winner = one_winner(&distinct, &values, &results);
    versions += 1;
    assert_eq!(version_count(&c).await, versions);
    assert_eq!(value_of(&c, &distinct).await, distinct_winner);

    // Four values, four callers each: the winning value's four callers all succeed.
    let grouped = token();
    let values: Vec<String> = (0..CALLERS).map(|i| format!("group {}", i % 4)).collect();
    let results = race(&t, &grouped, &values).await;
    let grouped_winner = one_winner(&grouped, &values, &results);
    versions += 1;
    assert_eq!(version_count(&c).await, versions);
    assert_eq!(value_of(&c, &grouped).await, grouped_winner);

    // Restart on the same data dir: the tokens still answer the same way, nothing is appended.
    let t = t.restart().await;
    let c = t.client("us-east-1");
    let head = t.head();
    for (tok, winner) in [(&same, "same value".to_string()), (&distinct, distinct_winner), (&grouped, grouped_winner)] {
        let mut values = vec![winner.clone(); CALLERS / 2];
        values.extend((0..CALLERS / 2).map(|i| format!("{winner} but different {i}")));
        let results = race(&t, tok, &values).await;
        for (value, result) in values.iter().zip(&results) {
            if *value == winner {
                assert_eq!(result.as_deref(), Ok(tok.as_str()), "retry after restart with the same value");
            } else {
                assert_eq!(result, &Err("ResourceExistsException".to_string()), "same token, other value");
            }
        }
        assert_eq!(value_of(&c, tok).await, winner);
    }
    assert_eq!(t.head(), head, "retries after the restart append nothing");
    assert_eq!(version_count(&c).await, versions);
    t.stop().await;
}
