//! Running rotation functions (`serve --lambda-endpoint URL`).
//!
//! A rotation runs the function named by the secret's `RotationLambdaARN` four times, through
//! the AWS Lambda Invoke API with `aws-sdk-lambda` (endpoint overridden, region from the ARN,
//! credentials from the AWS environment variables only), with AWS's event
//! `{"Step", "SecretId", "ClientRequestToken", "RotationToken"}` for `createSecret`,
//! `setSecret`, `testSecret` and `finishSecret` in turn. The function calls back into this server
//! with ordinary signed calls (PutSecretValue into the reserved version, then
//! UpdateSecretVersionStage).
//!
//! A step fails when the answer carries `X-Amz-Function-Error` (a function error or timeout,
//! reported by Lambda with HTTP 200), when the Invoke call fails, or when no answer comes within
//! the invoke timeout; the rotation then stops, `AWSPENDING` stays where it is, and a
//! `RotationFailed` event records the step and the error text.
//!
//! Rotations start after RotateSecret (also when a client repeats RotateSecret with the token
//! of the rotation under way: that reattempts it) and from the scheduler, which every tick
//! starts the rotations that fell due (also while the server was down), resumes at once those a
//! shutdown or crash interrupted, and reattempts failed ones at their next due time, with the
//! same token. At most one rotation runs per secret. Shutdown stops the runner before the HTTP
//! server, so a function calling back is never refused by a closing server.
//!
//! Before each step the runner reads the secret again: once rotation was cancelled
//! (CancelRotateSecret), `AWSPENDING` left the version, or the secret is gone or scheduled for
//! deletion, it stops without invoking the remaining steps and without recording a failure
//! (an info log line says why). A step already invoked is not interrupted.
//!
//! RotateSecret with `RotateImmediately=false` only records the configuration (the decision
//! cannot know whether a runner exists). Here, with a runner, it also tests it, as AWS does:
//! the runner reserves `AWSPENDING` on the request's token with a RotateSecret of its own
//! (actor `rotation`), invokes `testSecret` only, then takes `AWSPENDING` off that version
//! (UpdateSecretVersionStage, a `LabelMoved` to nowhere); nothing is promoted, and the next
//! rotation comes at the schedule. A failed test is recorded like any failed step, leaving
//! `AWSPENDING`, and is reattempted at the next due time as a full rotation. That a run is a
//! test lives only in the task running it, not in the log: a shutdown or crash during the test
//! leaves a reserved version with no failure recorded, which the scheduler, once the server is
//! back, resumes as an interrupted rotation, in full.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_lambda::config::retry::RetryConfig;
use aws_sdk_lambda::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_lambda::primitives::Blob;
use ledger_core::{Command, Reply, RotateSecret, Scope, SecretUid, UpdateSecretVersionStage, AWSCURRENT, AWSPENDING};
use ledger_store::{Ledger, RequestMeta};

/// What the rotator needs from the server it runs in: the ledger, the metrics and the account.
pub trait Host: Send + Sync + 'static {
    fn ledger(&self) -> &Ledger;
    fn metrics(&self) -> &crate::metrics::Metrics;
    fn account_id(&self) -> &str;
}

/// The four steps, in order.
pub const STEPS: [&str; 4] = ["createSecret", "setSecret", "testSecret", "finishSecret"];
/// Actor of the events the rotation runner appends itself.
pub const ACTOR: &str = "rotation";
/// Longest error text kept in a `RotationFailed` event.
const ERROR_CHARS_MAX: usize = 512;

/// Where and how to invoke rotation functions.
#[derive(Clone)]
pub struct LambdaConfig {
    /// `http://HOST:PORT` of a Lambda Invoke API (LocalStack, the Runtime Interface Emulator…).
    pub endpoint: String,
    /// How long one step may take.
    pub timeout: Duration,
    /// How often the scheduler looks for rotations that fell due.
    pub tick: Duration,
    access_key_id: String,
    secret_access_key: zeroize::Zeroizing<String>,
    session_token: Option<zeroize::Zeroizing<String>>,
}

impl std::fmt::Debug for LambdaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LambdaConfig")
            .field("endpoint", &self.endpoint)
            .field("timeout", &self.timeout)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl LambdaConfig {
    /// Invoke calls to `endpoint`, signed with these credentials; the scheduler ticks every 10 s.
    pub fn new(endpoint: &str, timeout: Duration, access_key_id: &str, secret_access_key: &str) -> LambdaConfig {
        LambdaConfig {
            endpoint: endpoint.trim().trim_end_matches('/').to_string(),
            timeout,
            tick: Duration::from_secs(10),
            access_key_id: access_key_id.to_string(),
            secret_access_key: zeroize::Zeroizing::new(secret_access_key.to_string()),
            session_token: None,
        }
    }

    /// Credentials from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`
    /// only: nothing is probed (instance metadata would stall offline).
    pub fn from_env(endpoint: &str, timeout: Duration) -> anyhow::Result<LambdaConfig> {
        let endpoint = endpoint.trim().trim_end_matches('/').to_string();
        if !endpoint.starts_with("http://") {
            anyhow::bail!("--lambda-endpoint takes an http:// URL, such as http://127.0.0.1:9001 (not {endpoint:?})");
        }
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let (Some(access_key_id), Some(secret)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) else {
            anyhow::bail!(
                "--lambda-endpoint needs credentials to sign Lambda Invoke calls with: set AWS_ACCESS_KEY_ID and \\
                 AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN if they are temporary)"
            );
        };
        let mut config = LambdaConfig::new(&endpoint, timeout, &access_key_id, &secret);
        config.session_token = var("AWS_SESSION_TOKEN").map(zeroize::Zeroizing::new);
        Ok(config)
    }
}

/// Runs rotations: one Lambda client per region, the secrets being rotated, the tasks.
pub struct Rotator {
    config: LambdaConfig,
    clients: Mutex<HashMap<String, aws_sdk_lambda::Client>>,
    active: Mutex<HashSet<u64>>,
    /// `None` once stopped: nothing new starts.
    tasks: Mutex<Option<tokio::task::JoinSet<()>>>,
    /// Secrets whose due rotation could not start, until when the scheduler leaves them be.
    backoff: Mutex<HashMap<u64, i64>>,
}

/// How long the scheduler waits before trying again to start a rotation that was refused.
const REFUSED_BACKOFF_MS: i64 = 60 * 60 * 1000;

/// One rotation to run: the secret, its function, the reserved version.
#[derive(Clone, Debug)]
struct Run {
    uid: SecretUid,
    arn: String,
    region: String,
    lambda_arn: String,
    token: String,
}

impl Run {
    /// The rotation of `secret` for `token` (none without a configured function).
    fn of(secret: &ledger_core::SecretState, token: &str) -> Option<Run> {
        Some(Run {
            uid: secret.uid,
            arn: secret.arn.clone(),
            region: secret.region.clone(),
            lambda_arn: secret.rotation.lambda_arn.clone()?,
            token: token.to_string(),
        })
    }
}

impl Rotator {
    pub fn new(config: LambdaConfig) -> Rotator {
        Rotator {
            config,
            clients: Mutex::new(HashMap::new()),
            active: Mutex::new(HashSet::new()),
            tasks: Mutex::new(Some(tokio::task::JoinSet::new())),
            backoff: Mutex::new(HashMap::new()),
        }
    }

    /// Starts the scheduler.
    pub fn start_scheduler(self: &Arc<Rotator>, app: Arc<dyn Host>) {
        let rotator = self.clone();
        let tick = self.config.tick;
        self.spawn(async move {
            let mut interval = tokio::time::interval(tick);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                rotator.start_due(&app).await;
            }
        });
    }

    /// Stops the scheduler and every running rotation, and waits until they are gone.
    pub async fn stop(&self) {
        let Some(mut tasks) = self.tasks.lock().unwrap_or_else(|e| e.into_inner()).take() else { return };
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }

    /// Spawns `task` unless the rotator was stopped.
    fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        let Some(tasks) = tasks.as_mut() else { return };
        // Reap finished tasks so the set does not grow with every rotation.
        while tasks.try_join_next().is_some() {}
        tasks.spawn(task);
    }

    /// After RotateSecret answered `response` (`{"ARN", "Name", "VersionId"}`): runs the
    /// rotation of that version if one is under way for it, or tests the configuration if the
    /// request only configured rotation (`RotateImmediately=false`: no version for its token).
    pub fn after_rotate_secret(self: &Arc<Rotator>, app: &Arc<dyn Host>, response: &str) {
        let Ok(reply) = serde_json::from_str::<serde_json::Value>(response) else { return };
        let (Some(arn), Some(token)) = (reply["ARN"].as_str(), reply["VersionId"].as_str()) else { return };
        if let Some(run) = pending_run(&**app, arn, token) {
            self.launch(app.clone(), run, Mode::Full);
        } else if let Some(run) = configured_run(&**app, arn, token) {
            self.launch(app.clone(), run, Mode::TestOnly);
        }
    }

    /// Starts every due rotation that is not running: a new one, or the unfinished one again.
    async fn start_due(self: &Arc<Rotator>, app: &Arc<dyn Host>) {
        // One node of several sharing a database runs the schedule.
        let ledger = app.clone();
        if !tokio::task::spawn_blocking(move || ledger.ledger().is_leader()).await.unwrap_or(false) {
            return;
        }
        let due = app.ledger().with_state(|s| {
            ledger_core::rotation::due_rotations(s, app.ledger().now_ms())
                .into_iter()
                .filter_map(|(uid, pending)| Some((s.secret(uid)?.arn.clone(), uid, pending)))
                .collect::<Vec<_>>()
        });
        let now = app.ledger().now_ms();
        for (arn, uid, pending) in due {
            if self.active.lock().unwrap_or_else(|e| e.into_inner()).contains(&uid.0) {
                continue;
            }
            if self.backoff.lock().unwrap_or_else(|e| e.into_inner()).get(&uid.0).is_some_and(|&until| until > now) {
                continue;
            }
            let token = match pending {
                Some(token) => token,
                None => match start_rotation(app, &arn).await {
                    Some(token) => token,
                    None => {
                        // Refused (or the store failed): try again in an hour, not every tick.
                        self.backoff.lock().unwrap_or_else(|e| e.into_inner()).insert(uid.0, now + REFUSED_BACKOFF_MS);
                        continue;
                    }
                },
            };
            if let Some(run) = pending_run(&**app, &arn, &token) {
                self.launch(app.clone(), run, Mode::Full);
            }
        }
    }

    fn launch(self: &Arc<Rotator>, app: Arc<dyn Host>, run: Run, mode: Mode) {
        // Claimed before a test reserves its version, so that the scheduler does not take the
        // reserved version for an interrupted rotation and run it in full meanwhile.
        if !self.active.lock().unwrap_or_else(|e| e.into_inner()).insert(run.uid.0) {
            return; // already rotating
        }
        let rotator = self.clone();
        self.spawn(async move {
            let uid = run.uid.0;
            match mode {
                Mode::Full => rotator.run(&app, run).await,
                Mode::TestOnly => rotator.test_configuration(&app, run).await,
            }
            rotator.active.lock().unwrap_or_else(|e| e.into_inner()).remove(&uid);
        });
    }

    /// The four steps; the first that fails is recorded and ends the rotation.
    async fn run(&self, app: &Arc<dyn Host>, run: Run) {
        if self.run_steps(app, &run, &STEPS, "rotation").await {
            tracing::info!(secret = %run.arn, version = %run.token, "rotation finished");
        }
    }

    /// `steps` in order, counted as one rotation started (`what` names it in the log): before
    /// each, the rotation must still be under way (see [`stop_reason`]); the first step that
    /// fails is recorded and ends the run. True if every step passed.
    async fn run_steps(&self, app: &Arc<dyn Host>, run: &Run, steps: &[&str], what: &str) -> bool {
        tracing::info!(secret = %run.arn, version = %run.token, function = %run.lambda_arn, "{what} started");
        app.metrics().rotation_started();
        for &step in steps {
            if let Some(reason) = stop_reason(&**app, run) {
                tracing::info!(secret = %run.arn, version = %run.token, step, reason, "{what} stopped");
                return false;
            }
            if let Err(error) = self.invoke(run, step).await {
                record_failure(app, run, step, error).await;
                return false;
            }
        }
        true
    }

    /// `RotateImmediately=false` with a runner: reserves `AWSPENDING` on the token, invokes
    /// `testSecret` only and, if it passes, takes `AWSPENDING` off the version again; a failure
    /// is recorded as for any step (see the module header).
    async fn test_configuration(&self, app: &Arc<dyn Host>, run: Run) {
        if !reserve(app, &run).await || !self.run_steps(app, &run, &["testSecret"], "rotation test").await {
            return;
        }
        let cmd = Command::UpdateSecretVersionStage(UpdateSecretVersionStage {
            secret_id: run.arn.clone(),
            version_stage: AWSPENDING.to_string(),
            remove_from_version_id: Some(run.token.clone()),
            move_to_version_id: None,
        });
        if as_runner(app, &run.region, &run.arn, cmd, "rotation test passed; AWSPENDING stays").await.is_some() {
            tracing::info!(secret = %run.arn, version = %run.token, "rotation test passed");
        }
    }

    /// One synchronous invocation of the function for `step`.
    async fn invoke(&self, run: &Run, step: &str) -> Result<(), String> {
        let region = arn_region(&run.lambda_arn).unwrap_or(&run.region).to_string();
        let client = self.client(&region);
        let event = serde_json::json!({
            "Step": step,
            "SecretId": run.arn,
            "ClientRequestToken": run.token,
            "RotationToken": uuid::Uuid::new_v4().to_string(),
        });
        let call = client.invoke().function_name(&run.lambda_arn).payload(Blob::new(event.to_string())).send();
        match tokio::time::timeout(self.config.timeout, call).await {
            Err(_) => Err(format!("no answer from the function within {} s", self.config.timeout.as_secs())),
            Ok(Err(e)) => {
                let e = aws_sdk_lambda::error::DisplayErrorContext(e);
                Err(clip(&format!("the Invoke call failed: {e}")))
            }
            Ok(Ok(out)) => match out.function_error() {
                None => Ok(()),
                Some(kind) => {
                    // The function's errorMessage may quote the secret it was handling: it is
                    // logged at debug only; the event keeps the kind and the errorType.
                    let body = out.payload().and_then(|p| serde_json::from_slice::<serde_json::Value>(p.as_ref()).ok());
                    let field = |name: &str| body.as_ref().and_then(|v| v.get(name)?.as_str().map(str::to_string));
                    tracing::debug!(step, message = field("errorMessage").unwrap_or_default(), "function error");
                    let error_type = field("errorType").unwrap_or_else(|| "unknown".to_string());
                    Err(clip(&format!("function error ({kind}), errorType {error_type}")))
                }
            },
        }
    }

    fn client(&self, region: &str) -> aws_sdk_lambda::Client {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients
            .entry(region.to_string())
            .or_insert_with(|| {
                let credentials = Credentials::new(
                    &self.config.access_key_id,
                    self.config.secret_access_key.as_str(),
                    self.config.session_token.as_ref().map(|t| t.to_string()),
                    None,
                    "environment",
                );
                // Plain HTTP with the SDK's own hyper stack; no TLS, no retries (a failed
                // step is recorded and reattempted at the next due time).
                let http_client = aws_smithy_http_client::Builder::new().build_with_connector_fn(|settings, _| {
                    let mut builder = aws_smithy_http_client::Connector::builder();
                    if let Some(settings) = settings {
                        builder = builder.connector_settings(settings.clone());
                    }
                    builder.build_http()
                });
                let config = aws_sdk_lambda::Config::builder()
                    .behavior_version(BehaviorVersion::latest())
                    .endpoint_url(&self.config.endpoint)
                    .region(Region::new(region.to_string()))
                    .credentials_provider(credentials)
                    .retry_config(RetryConfig::disabled())
                    .http_client(http_client)
                    .build();
                aws_sdk_lambda::Client::from_conf(config)
            })
            .clone()
    }
}

/// The rotation to run for `token`, if it is under way: `AWSPENDING` on that version and not on
/// `AWSCURRENT`'s, a function configured, the secret not scheduled for deletion.
fn pending_run(app: &dyn Host, arn: &str, token: &str) -> Option<Run> {
    app.ledger().with_state(|s| -> Option<Run> {
        let secret = s.by_arn(arn)?;
        let rotating = secret.holder(AWSPENDING) == Some(token) && secret.holder(AWSCURRENT) != Some(token);
        if !rotating || secret.is_scheduled() {
            return None;
        }
        Run::of(secret, token)
    })
}

/// What a launched task runs.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// The four steps.
    Full,
    /// `RotateImmediately=false`: `testSecret` only, on a version reserved for it.
    TestOnly,
}

/// The test to run for a RotateSecret that only configured rotation: rotation on, a function
/// configured, no version (nor a retired one) for `token`, no rotation under way, the secret
/// not scheduled for deletion.
fn configured_run(app: &dyn Host, arn: &str, token: &str) -> Option<Run> {
    app.ledger().with_state(|s| -> Option<Run> {
        let secret = s.by_arn(arn)?;
        let fresh = !secret.versions.contains_key(token) && !secret.retired.contains_key(token);
        if !secret.rotation.enabled || !fresh || secret.rotation_in_progress() || secret.is_scheduled() {
            return None;
        }
        Run::of(secret, token)
    })
}

/// Why the rotation `run` must not go on, read from the secret as it is now: rotation
/// cancelled, `AWSPENDING` no longer on the version, the secret gone or scheduled for deletion.
fn stop_reason(app: &dyn Host, run: &Run) -> Option<&'static str> {
    app.ledger().with_state(|s| {
        let Some(secret) = s.secret(run.uid) else { return Some("the secret is gone") };
        if !secret.rotation.enabled {
            Some("rotation was cancelled")
        } else if secret.holder(AWSPENDING) != Some(run.token.as_str()) {
            Some("AWSPENDING is no longer on the version")
        } else if secret.is_scheduled() {
            Some("the secret is scheduled for deletion")
        } else {
            None
        }
    })
}

/// Reserves `AWSPENDING` on `run`'s token for a test: RotateSecret as the runner, with the
/// configuration as it is (so it records no `RotationConfigured`). False if refused (another
/// rotation began, or rotation was cancelled meanwhile) or the store failed.
async fn reserve(app: &Arc<dyn Host>, run: &Run) -> bool {
    let cmd = Command::RotateSecret(RotateSecret {
        secret_id: run.arn.clone(),
        client_request_token: Some(run.token.clone()),
        by_runner: true,
        ..RotateSecret::default()
    });
    as_runner(app, &run.region, &run.arn, cmd, "the rotation test could not start").await.is_some()
}

/// A failed step: counted, logged and recorded as `RotationFailed`; `AWSPENDING` stays.
async fn record_failure(app: &Arc<dyn Host>, run: &Run, step: &str, error: String) {
    app.metrics().rotation_failed();
    tracing::warn!(secret = %run.arn, version = %run.token, step, error = %error, "rotation step failed");
    let cmd = Command::RecordRotationFailure {
        secret: run.uid,
        version_id: run.token.clone(),
        step: step.to_string(),
        error,
    };
    // Refused by the rules (the secret was deleted meanwhile) or not stored: said, not dropped.
    let _ = as_runner(app, &run.region, &run.arn, cmd, "the failed rotation step was not recorded").await;
}

/// A rotation that fell due: RotateSecret as the runner (same function and rules).
async fn start_rotation(app: &Arc<dyn Host>, arn: &str) -> Option<String> {
    let region = arn.split(':').nth(3).unwrap_or_default();
    let cmd = Command::RotateSecret(RotateSecret {
        secret_id: arn.to_string(),
        client_request_token: Some(uuid::Uuid::new_v4().to_string()),
        by_runner: true,
        ..RotateSecret::default()
    });
    match as_runner(app, region, arn, cmd, "a due rotation could not start").await? {
        Reply::Secret { version_id, .. } => version_id,
        _ => None,
    }
}

/// Runs `cmd` as the rotation runner in `region`: its reply, or `None` once it was refused
/// (logged as a warning) or not stored (an error), with `what` saying what did not happen.
async fn as_runner(app: &Arc<dyn Host>, region: &str, arn: &str, cmd: Command, what: &str) -> Option<Reply> {
    match app.ledger().execute_async(cmd, &system_meta(region, &**app)).await {
        Ok(Ok(reply)) => Some(reply),
        Ok(Err(refusal)) => {
            tracing::warn!(secret = %arn, error = %refusal, "{what}");
            None
        }
        Err(e) => {
            tracing::error!(secret = %arn, error = %e, "{what}");
            None
        }
    }
}

fn system_meta(region: &str, app: &dyn Host) -> RequestMeta {
    RequestMeta {
        scope: Scope::new(region, app.account_id()),
        actor: ACTOR.to_string(),
        request_id: uuid::Uuid::new_v4().to_string(),
    }
}

/// The region of a Lambda ARN (`arn:aws:lambda:REGION:…`); `None` for a bare function name.
fn arn_region(lambda_arn: &str) -> Option<&str> {
    let mut parts = lambda_arn.split(':');
    (parts.next() == Some("arn")).then_some(())?;
    parts.nth(2).filter(|r| !r.is_empty())
}

fn clip(text: &str) -> String {
    let mut out: String = text.chars().take(ERROR_CHARS_MAX).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}
