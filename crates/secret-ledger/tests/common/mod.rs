//! What the binary's test files share: the binary run with the environment cleared of the
//! settings the tests give explicitly, so a developer's own `AWS_REGION` or data dir cannot
//! change what a test sees.

use std::process::{Command as Process, Stdio};

/// The binary with `args`, the environment cleared of the settings these tests give
/// explicitly, then `env` set.
pub(crate) fn command(args: &[&str], env: &[(&str, &str)]) -> Process {
    let mut command = Process::new(env!("CARGO_BIN_EXE_secret-ledger"));
    command.args(args).stdin(Stdio::null());
    for var in [
        "SECRET_LEDGER_MASTER_KEY_FILE",
        "SECRET_LEDGER_DATA_DIR",
        "SECRET_LEDGER_DATABASE_URL",
        "SECRET_LEDGER_METRICS_LISTEN",
        "SECRET_LEDGER_LAMBDA_ENDPOINT",
        "SECRET_LEDGER_LOG",
        "SECRET_LEDGER_LOG_FORMAT",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
    ] {
        command.env_remove(var);
    }
    command.envs(env.iter().copied());
    command
}
