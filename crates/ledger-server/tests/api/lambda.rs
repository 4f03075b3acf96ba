//! `--lambda-endpoint`: rotation functions invoked through the Lambda Invoke API. A small
//! Invoke API answers here as Lambda does and runs a rotation function written in Rust that
//! calls back into the ledger with the AWS SDK; a test sets how the function behaves. The
//! ledger runs on a hand-moved clock, so the scheduler's due dates are exact.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_secretsmanager::types::RotationRulesType;
use aws_sdk_secretsmanager::Client;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use ledger_server::rotation::LambdaConfig;
use ledger_store::ManualClock;
use serde_json::{json, Value};

use crate::common::{TestServer, AKID, SECRET};

const FUNCTION: &str = "arn:aws:lambda:eu-west-1:000000000000:function:rotate";
const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const DAY_MS: i64 = 86_400_000;

/// How the function answers: run the steps, or fail one of them in one of Lambda's ways.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Behaviour {
    Rotate,
    /// A function error at this step: HTTP 200 with `X-Amz-Function-Error`.
    Throw(&'static str),
    /// The Invoke call itself fails (HTTP 500).
    ServiceError,
    /// No answer within the invoke timeout.
    Hang,
    /// This step waits until the test releases it (`Lambda::release`), then runs as `Rotate`.
    Block(&'static str),
}

struct Lambda {
    behaviour: Mutex<Behaviour>,
    /// (step, region the call was signed for) of every invocation.
    calls: Mutex<Vec<(String, String)>>,
    ledger: Mutex<Option<Client>>,
    /// Lets a step blocked by `Behaviour::Block` go on.
    release: tokio::sync::Notify,
}

async fn invoke(State(lambda): State<Arc<Lambda>>, headers: HeaderMap, body: Bytes) -> Response {
    let event: Value = serde_json::from_slice(&body).unwrap();
    let step = event["Step"].as_str().unwrap().to_string();
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let region = auth.split('/').nth(2).unwrap_or("").to_string();
    lambda.calls.lock().unwrap().push((step.clone(), region));
    let behaviour = *lambda.behaviour.lock().unwrap();
    match behaviour {
        Behaviour::Throw(at) if at == step => {
            let body = json!({"errorMessage": format!("{step} refused"), "errorType": "Exception"});
            ([("X-Amz-Function-Error", "Unhandled")], body.to_string()).into_response()
        }
        Behaviour::ServiceError => (StatusCode::INTERNAL_SERVER_ERROR, r#"{"message":"boom"}"#).into_response(),
        Behaviour::Hang => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            "null".into_response()
        }
        Behaviour::Block(at) if at == step => {
            lambda.release.notified().await;
            let client = lambda.ledger.lock().unwrap().clone().unwrap();
            rotation_function(&client, &event).await;
            "null".into_response()
        }
        _ => {
            let client = lambda.ledger.lock().unwrap().clone().unwrap();
            rotation_function(&client, &event).await;
            "null".into_response()
        }
    }
}

/// A single-user rotation function: a new value in createSecret, the promotion in finishSecret.
async fn rotation_function(c: &Client, event: &Value) {
    let (arn, token) = (event["SecretId"].as_str().unwrap(), event["ClientRequestToken"].as_str().unwrap());
    match event["Step"].as_str().unwrap() {
        "createSecret" => {
            let exists = c.get_secret_value().secret_id(arn).version_id(token).version_stage("AWSPENDING").send().await;
            if exists.is_err() {
                let value = format!("rotated-{token}");
                let put = c.put_secret_value().secret_id(arn).client_request_token(token).secret_string(value);
                put.version_stages("AWSPENDING").send().await.unwrap();
            }
        }
        "finishSecret" => {
            let d = c.describe_secret().secret_id(arn).send().await.unwrap();
            let stages = d.version_ids_to_stages().unwrap();
            let current = stages.iter().find(|(_, s)| s.contains(&"AWSCURRENT".to_string())).unwrap().0.clone();
            c.update_secret_version_stage()
                .secret_id(arn)
                .version_stage("AWSCURRENT")
                .move_to_version_id(token)
                .remove_from_version_id(current)
                .send()
                .await
                .unwrap();
        }
        _ => {}
    }
}

struct Setup {
    t: TestServer,
    lambda: Arc<Lambda>,
    clock: Arc<ManualClock>,
    c: Client,
    endpoint: String,
}

async fn setup(behaviour: Behaviour) -> Setup {
    setup_with_timeout(behaviour, Duration::from_secs(1)).await
}

/// The ledger's config for `lambda_url` on `clock`.
fn configure(
    lambda_url: String,
    clock: Arc<ManualClock>,
    timeout: Duration,
) -> impl FnOnce(&mut ledger_server::ServeConfig) {
    move |config| {
        config.ledger_options.clock = clock;
        let mut lambda = LambdaConfig::new(&lambda_url, timeout, "AKIALAMBDA", "lambda-secret");
        lambda.tick = Duration::from_millis(50);
        config.lambda = Some(lambda);
    }
}

async fn setup_with_timeout(behaviour: Behaviour, timeout: Duration) -> Setup {
    let lambda = Arc::new(Lambda {
        behaviour: Mutex::new(behaviour),
        calls: Mutex::default(),
        ledger: Mutex::default(),
        release: tokio::sync::Notify::new(),
    });
    let app = axum::Router::new().fallback(invoke).with_state(lambda.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let clock = Arc::new(ManualClock::new(T0));
    let t = TestServer::start_configured(
        &format!("{AKID}:{SECRET}\n"),
        configure(endpoint.clone(), clock.clone(), timeout),
    )
    .await;
    let c = t.client("us-east-1");
    *lambda.ledger.lock().unwrap() = Some(c.clone());
    Setup { t, lambda, clock, c, endpoint }
}

impl Setup {
    async fn current(&self, name: &str) -> String {
        self.c.get_secret_value().secret_id(name).send().await.unwrap().secret_string().unwrap().to_string()
    }

    async fn events(&self, name: &str) -> Vec<(String, String)> {
        let uid = self.t.server.ledger().with_state(|s| s.by_name("us-east-1", name).unwrap().uid);
        let tree = self.t.server.ledger().store();
        ledger_audit::events::secret_history(tree, uid)
            .unwrap()
            .into_iter()
            .map(|e| (e.event.to_string(), e.change))
            .collect()
    }

    /// Waits until `name` has an event named `event` (the runner works in the background).
    async fn wait_for_event(&self, name: &str, event: &str) -> String {
        for _ in 0..200 {
            if let Some((_, change)) = self.events(name).await.into_iter().rev().find(|(e, _)| e == event) {
                return change;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("no {event} for {name}: {:?}", self.events(name).await);
    }

    fn steps(&self) -> Vec<String> {
        self.lambda.calls.lock().unwrap().iter().map(|(step, _)| step.clone()).collect()
    }

    async fn wait_for_current(&self, name: &str, value: &str) {
        for _ in 0..200 {
            if self.current(name).await == value {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("{name} never became {value}: {:?}", self.events(name).await);
    }
}

#[tokio::test]
async fn rotate_secret_runs_the_four_steps_and_the_scheduler_the_next_ones() {
    let s = setup(Behaviour::Rotate).await;
    s.c.create_secret().name("db").secret_string("v1").send().await.unwrap();
    let rules = RotationRulesType::builder().automatically_after_days(2).build();
    let started =
        s.c.rotate_secret().secret_id("db").rotation_lambda_arn(FUNCTION).rotation_rules(rules).send().await.unwrap();
    let token = started.version_id().unwrap().to_string();
    s.wait_for_current("db", &format!("rotated-{token}")).await;
    let calls: Vec<(String, String)> = s.lambda.calls.lock().unwrap().clone();
    let steps: Vec<&str> = calls.iter().map(|(step, _)| step.as_str()).collect();
    assert_eq!(steps, ["createSecret", "setSecret", "testSecret", "finishSecret"]);
    assert!(calls.iter().all(|(_, region)| region == "eu-west-1"), "signed for the function's region: {calls:?}");
    let d = s.c.describe_secret().secret_id("db").send().await.unwrap();
    assert_eq!(d.last_rotated_date().unwrap().secs() * 1000, T0);
    assert_eq!(d.next_rotation_date().unwrap().secs() * 1000, T0 + 2 * DAY_MS);

    // Not due yet: nothing starts. Due (as if the server had been down past it): it starts.
    s.clock.advance(2 * DAY_MS - 1000);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.lambda.calls.lock().unwrap().len(), 4);
    s.clock.advance(1000);
    for _ in 0..200 {
        let d = s.c.describe_secret().secret_id("db").send().await.unwrap();
        if d.last_rotated_date().unwrap().secs() * 1000 == T0 + 2 * DAY_MS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let d = s.c.describe_secret().secret_id("db").send().await.unwrap();
    assert_eq!(d.last_rotated_date().unwrap().secs() * 1000, T0 + 2 * DAY_MS, "the scheduled rotation ran");
    assert_eq!(s.lambda.calls.lock().unwrap().len(), 8);
    // The scheduler started it as the runner, with the configuration as it was.
    let tree = s.t.server.ledger().store();
    let uid = s.t.server.ledger().with_state(|st| st.by_name("us-east-1", "db").unwrap().uid);
    let actors = |event: &str| -> Vec<String> {
        let history = ledger_audit::events::secret_history(tree, uid).unwrap();
        history.into_iter().filter(|e| e.event == event).map(|e| e.actor).collect()
    };
    assert_eq!(actors("RotationConfigured"), [AKID]);
    assert_eq!(actors("VersionReserved"), [AKID, "rotation"]);
    s.t.stop().await;
}

#[tokio::test]
async fn failed_steps_are_recorded_and_reattempted_when_due() {
    for (behaviour, step, error) in [
        (Behaviour::Throw("testSecret"), "testSecret", "function error (Unhandled), errorType Exception"),
        (Behaviour::ServiceError, "createSecret", "the Invoke call failed"),
        (Behaviour::Hang, "createSecret", "no answer from the function within 1 s"),
    ] {
        let s = setup(behaviour).await;
        s.c.create_secret().name("db").secret_string("v1").send().await.unwrap();
        let rules = RotationRulesType::builder().schedule_expression("rate(4 hours)").build();
        let started =
            s.c.rotate_secret()
                .secret_id("db")
                .rotation_lambda_arn(FUNCTION)
                .rotation_rules(rules)
                .send()
                .await
                .unwrap();
        let token = started.version_id().unwrap().to_string();
        let change = s.wait_for_event("db", "RotationFailed").await;
        assert!(change.contains(&format!("failed at {step}: {error}")), "{behaviour:?}: {change}");
        // AWSCURRENT unchanged, AWSPENDING in place, a new rotation refused.
        assert_eq!(s.current("db").await, "v1");
        let d = s.c.describe_secret().secret_id("db").send().await.unwrap();
        assert_eq!(d.version_ids_to_stages().unwrap()[&token], ["AWSPENDING"]);
        let refused = s.c.rotate_secret().secret_id("db").send().await;
        assert!(refused.is_err(), "{behaviour:?}");
        // Fixed; the reattempt waits for the next due time (4 hours after the failure), then
        // runs with the same token.
        *s.lambda.behaviour.lock().unwrap() = Behaviour::Rotate;
        let before = s.lambda.calls.lock().unwrap().len();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(s.lambda.calls.lock().unwrap().len(), before, "{behaviour:?}: reattempted before it was due");
        s.clock.advance(4 * 3_600_000);
        s.wait_for_current("db", &format!("rotated-{token}")).await;
        // Both runs are counted, and the one that failed.
        let metrics = s.t.server.metrics_text();
        assert!(metrics.contains("secret_ledger_rotations_started_total 2\n"), "{metrics}");
        assert!(metrics.contains("secret_ledger_rotations_failed_total 1\n"), "{metrics}");
        s.t.stop().await;
    }
}

/// A rotation a shutdown interrupted (no failure recorded) resumes as soon as the server is back,
/// with the same token, without waiting for its next due date.
#[tokio::test]
async fn an_interrupted_rotation_resumes_after_a_restart() {
    let s = setup_with_timeout(Behaviour::Hang, Duration::from_secs(30)).await;
    s.c.create_secret().name("db").secret_string("v1").send().await.unwrap();
    let rules = RotationRulesType::builder().automatically_after_days(30).build();
    let started =
        s.c.rotate_secret().secret_id("db").rotation_lambda_arn(FUNCTION).rotation_rules(rules).send().await.unwrap();
    let token = started.version_id().unwrap().to_string();
    while s.lambda.calls.lock().unwrap().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Shut down during the hanging createSecret; then the function answers again.
    *s.lambda.behaviour.lock().unwrap() = Behaviour::Rotate;
    let Setup { t, lambda, clock, endpoint, .. } = s;
    let t = t.restart_configured(configure(endpoint, clock.clone(), Duration::from_secs(30))).await;
    let c = t.client("us-east-1");
    *lambda.ledger.lock().unwrap() = Some(c.clone());
    let s = Setup { t, lambda, clock, c, endpoint: String::new() };
    s.wait_for_current("db", &format!("rotated-{token}")).await;
    assert!(s.events("db").await.iter().all(|(e, _)| e != "RotationFailed"), "no failure was recorded");
    s.t.stop().await;
}

/// RotateImmediately=false with a runner tests the configuration: AWSPENDING on a version
/// reserved for the token, the function's testSecret step alone, AWSPENDING removed again;
/// nothing is promoted and the next rotation is at the schedule.
#[tokio::test]
async fn rotate_immediately_false_runs_test_secret_only() {
    let s = setup(Behaviour::Rotate).await;
    s.c.create_secret().name("db").secret_string("v1").send().await.unwrap();
    let v1 = s.c.get_secret_value().secret_id("db").send().await.unwrap().version_id().unwrap().to_string();
    let rules = RotationRulesType::builder().automatically_after_days(2).build();
    let started =
        s.c.rotate_secret()
            .secret_id("db")
            .rotation_lambda_arn(FUNCTION)
            .rotation_rules(rules)
            .rotate_immediately(false)
            .send()
            .await
            .unwrap();
    let token = started.version_id().unwrap().to_string();
    // The test reserved the token's version, then took AWSPENDING off it.
    let released = format!("AWSPENDING: {token} → (none)");
    for _ in 0..200 {
        if s.events("db").await.iter().any(|(_, change)| *change == released) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let events = s.events("db").await;
    assert!(events.iter().any(|(_, change)| *change == released), "{events:?}");
    assert!(events.iter().any(|(e, change)| e == "VersionReserved" && change.contains(&token)), "{events:?}");
    tokio::time::sleep(Duration::from_millis(300)).await; // scheduler ticks: nothing more runs
    assert_eq!(s.steps(), ["testSecret"]);
    assert_eq!(s.current("db").await, "v1");
    let d = s.c.describe_secret().secret_id("db").send().await.unwrap();
    let stages = d.version_ids_to_stages().unwrap();
    assert_eq!(stages.len(), 1, "{stages:?}");
    assert_eq!(stages[&v1], ["AWSCURRENT"]);
    assert!(stages.values().flatten().all(|label| label != "AWSPENDING"), "{stages:?}");
    assert_eq!(d.rotation_enabled(), Some(true));
    assert!(d.last_rotated_date().is_none());
    assert_eq!(d.next_rotation_date().unwrap().secs() * 1000, T0 + 2 * DAY_MS);
    assert!(s.events("db").await.iter().all(|(e, _)| e != "RotationFailed"));
    s.t.stop().await;
}

/// CancelRotateSecret while a step runs: the runner stops before the next step, records no
/// failure, and AWSCURRENT stays where it was.
#[tokio::test]
async fn cancel_rotate_secret_stops_a_running_rotation() {
    let s = setup_with_timeout(Behaviour::Block("createSecret"), Duration::from_secs(30)).await;
    s.c.create_secret().name("db").secret_string("v1").send().await.unwrap();
    let rules = RotationRulesType::builder().automatically_after_days(2).build();
    let started =
        s.c.rotate_secret().secret_id("db").rotation_lambda_arn(FUNCTION).rotation_rules(rules).send().await.unwrap();
    let token = started.version_id().unwrap().to_string();
    for _ in 0..200 {
        if !s.steps().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(s.steps(), ["createSecret"]);
    let cancelled = s.c.cancel_rotate_secret().secret_id("db").send().await.unwrap();
    assert_eq!(cancelled.version_id(), Some(token.as_str()));
    s.lambda.release.notify_one();
    // createSecret completes (the pending value is written); nothing after it is invoked.
    let filled = s.wait_for_event("db", "VersionValueSet").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.steps(), ["createSecret"], "{filled}");
    assert_eq!(s.current("db").await, "v1");
    let d = s.c.describe_secret().secret_id("db").send().await.unwrap();
    assert_eq!(d.rotation_enabled(), Some(false));
    assert_eq!(d.version_ids_to_stages().unwrap()[&token], ["AWSPENDING"]);
    let events = s.events("db").await;
    assert!(events.iter().all(|(e, _)| e != "RotationFailed"), "{events:?}");
    s.t.stop().await;
}
