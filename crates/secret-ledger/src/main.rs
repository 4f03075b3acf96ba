//! `secret-ledger`: the one binary. `serve` answers the Secrets Manager API; `verify` checks a data dir.
//!
//! Exit codes: 0 ok, 1 verification failed, 2 usage or I/O error.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "secret-ledger",
    version,
    about = "An event-sourced, verifiable secret store with AWS Secrets Manager semantics"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the AWS Secrets Manager API (JSON 1.1, SigV4) until SIGINT or SIGTERM.
    Serve {
        /// The data dir; created on first start, with a master key and credentials unless given.
        #[arg(long, env = "SECRET_LEDGER_DATA_DIR", default_value = "./secret-ledger-data")]
        data_dir: PathBuf,
        /// HOST:PORT to listen on; port 0 picks a free port.
        #[arg(long, default_value = ledger_server::serve::DEFAULT_LISTEN)]
        listen: String,
        /// ACCESS_KEY_ID:SECRET_ACCESS_KEY lines (default: <data-dir>/credentials, generated).
        #[arg(long)]
        credentials: Option<PathBuf>,
        /// The account id in ARNs.
        #[arg(long, default_value = ledger_server::serve::DEFAULT_ACCOUNT_ID)]
        account_id: String,
        /// 64 hex characters (default: <data-dir>/master.key, generated).
        #[arg(long, env = "SECRET_LEDGER_MASTER_KEY_FILE")]
        master_key_file: Option<PathBuf>,
    },
    /// Replay the whole log: chain, encoding, time order, every label rule, stored projection.
    Verify {
        /// The data dir (must not be in use by a running server).
        #[arg(long, env = "SECRET_LEDGER_DATA_DIR", default_value = "./secret-ledger-data")]
        data_dir: PathBuf,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Cmd::Verify { data_dir, json } => verify(&data_dir, json),
        Cmd::Serve { data_dir, listen, credentials, account_id, master_key_file } => {
            let mut config = ledger_server::ServeConfig::new(data_dir);
            config.listen = listen;
            config.credentials_file = credentials;
            config.account_id = account_id;
            config.master_key_file = master_key_file;
            let runtime =
                tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start tokio")?;
            runtime.block_on(ledger_server::serve(config))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn verify(data_dir: &std::path::Path, json: bool) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let on_terminal = std::io::stderr().is_terminal() && !json;
    let mut progress = |done: u64, total: u64| {
        if on_terminal {
            eprint!("\rverifying: {done}/{total} events");
        }
    };
    let outcome = ledger_store::verify_dir(data_dir, &mut progress)
        .with_context(|| format!("cannot verify {}", data_dir.display()))?;
    if on_terminal {
        eprintln!();
    }
    let seconds = started.elapsed().as_secs_f64();
    match outcome {
        Ok(report) => {
            if json {
                let out = serde_json::json!({
                    "ok": true,
                    "events": report.events,
                    "head_hash": report.head_hash.to_hex(),
                    "snapshots_checked": report.snapshots_checked,
                    "secrets": report.secrets,
                    "seconds": seconds,
                });
                println!("{out}");
            } else {
                println!(
                    "ok: {} events, head {}, {} snapshots checked, {} secrets ({seconds:.2}s)",
                    report.events,
                    report.head_hash.to_hex(),
                    report.snapshots_checked,
                    report.secrets
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(failure) => {
            if json {
                let out = serde_json::json!({
                    "ok": false,
                    "seq": failure.seq,
                    "reason": failure.reason.to_string(),
                });
                println!("{out}");
            } else {
                println!("FAILED at seq {}: {}", failure.seq, failure.reason);
            }
            Ok(ExitCode::from(1))
        }
    }
}
