//! `secret-ledger`: the one binary. `serve` answers the Secrets Manager API; `verify` checks a data dir.
//! The audit commands read a stopped data dir, or a running server with `--endpoint URL`.
//!
//! Exit codes: 0 ok, 1 verification failed, 2 usage or I/O error.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

mod audit;
mod remote;

use anyhow::Context;

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

/// `--endpoint` and its credentials: audit a running server instead of a data dir.
#[derive(Args, Clone, Debug)]
struct RemoteArgs {
    /// Audit the server at this URL (http://HOST:PORT) instead of a data dir (not with --data-dir).
    #[arg(long)]
    endpoint: Option<String>,
    /// With --endpoint: the access key id to sign with.
    #[arg(long, env = "AWS_ACCESS_KEY_ID")]
    access_key_id: Option<String>,
    /// With --endpoint: the secret access key to sign with.
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    secret_access_key: Option<String>,
    /// With --endpoint: the region of the credential scope (else AWS_DEFAULT_REGION, else us-east-1).
    #[arg(long, env = "AWS_REGION")]
    region: Option<String>,
}

impl RemoteArgs {
    /// The data dir, or the server when --endpoint is given.
    fn source(self, data_dir: PathBuf) -> anyhow::Result<audit::Source> {
        Ok(match self.endpoint {
            None => audit::Source::Dir(data_dir),
            Some(url) => audit::Source::Remote(Box::new(remote::Remote::new(remote::EndpointConfig {
                url,
                access_key_id: self.access_key_id,
                secret_access_key: self.secret_access_key,
                region: self.region,
            })?)),
        })
    }
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
    /// Replay the whole log (data dir or export file): chain, encoding, time order, every label
    /// rule, stored projection, Merkle root; optionally against a checkpoint kept elsewhere.
    Verify {
        /// The data dir (must not be in use by a running server).
        #[arg(long, env = "SECRET_LEDGER_DATA_DIR", default_value = "./secret-ledger-data")]
        data_dir: PathBuf,
        #[command(flatten)]
        remote: RemoteArgs,
        /// Verify an export file instead of a data dir (no keys, no sled needed).
        #[arg(long, conflicts_with = "endpoint")]
        export: Option<PathBuf>,
        /// A checkpoint the log must extend (catches a truncated tail).
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Every event that touched a secret, in order, with seq, time, actor, request id, change.
    History {
        /// Name, partial or full ARN.
        #[arg(long)]
        secret_id: String,
        #[arg(long, env = "SECRET_LEDGER_DATA_DIR", default_value = "./secret-ledger-data")]
        data_dir: PathBuf,
        #[command(flatten)]
        remote: RemoteArgs,
        /// Also write a self-contained HTML timeline of the labels to this file.
        #[arg(long)]
        html: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Secrets, versions and labels as they stood at a seq or an RFC 3339 time.
    State {
        /// A seq, or an RFC 3339 time such as 2026-11-27T03:12:00Z.
        #[arg(long)]
        as_of: String,
        /// Only this secret (name, partial or full ARN), replayed from its own events.
        #[arg(long)]
        secret_id: Option<String>,
        /// With --secret-id: which version held this label then, and its value given the key.
        #[arg(long, requires = "secret_id")]
        label: Option<String>,
        /// Master key to open the value (default: <data-dir>/master.key if present).
        #[arg(long, env = "SECRET_LEDGER_MASTER_KEY_FILE")]
        master_key_file: Option<PathBuf>,
        #[arg(long, env = "SECRET_LEDGER_DATA_DIR", default_value = "./secret-ledger-data")]
        data_dir: PathBuf,
        #[command(flatten)]
        remote: RemoteArgs,
        #[arg(long)]
        json: bool,
    },
    /// Write the log as self-describing JSON Lines: header, one line per event, checkpoint.
    Export {
        #[arg(long)]
        out: PathBuf,
        /// Name of this ledger in the header and checkpoint (default: the data dir path).
        #[arg(long)]
        origin: Option<String>,
        #[arg(long, env = "SECRET_LEDGER_DATA_DIR", default_value = "./secret-ledger-data")]
        data_dir: PathBuf,
        #[command(flatten)]
        remote: RemoteArgs,
        #[arg(long)]
        json: bool,
    },
    /// Write a checkpoint (size, head hash, Merkle root, time), optionally ed25519-signed.
    Checkpoint {
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        origin: Option<String>,
        /// 64 hex characters: an ed25519 secret key seed the operator holds.
        #[arg(long)]
        signing_key: Option<PathBuf>,
        #[arg(long, env = "SECRET_LEDGER_DATA_DIR", default_value = "./secret-ledger-data")]
        data_dir: PathBuf,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// An inclusion proof for one event, or a consistency proof between two checkpoints.
    Prove {
        #[arg(long, conflicts_with_all = ["from_checkpoint", "to_checkpoint"])]
        seq: Option<u64>,
        #[arg(long, requires = "to_checkpoint")]
        from_checkpoint: Option<PathBuf>,
        #[arg(long, requires = "from_checkpoint")]
        to_checkpoint: Option<PathBuf>,
        #[arg(long, env = "SECRET_LEDGER_DATA_DIR", default_value = "./secret-ledger-data")]
        data_dir: PathBuf,
        #[command(flatten)]
        remote: RemoteArgs,
        #[arg(long)]
        json: bool,
    },
    /// Drop and rebuild the derived data (snapshots, indexes) from the log.
    Rebuild {
        #[arg(long, env = "SECRET_LEDGER_DATA_DIR", default_value = "./secret-ledger-data")]
        data_dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = match parse() {
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

/// Parses the command line. `--endpoint` conflicts with a `--data-dir` given on the command line;
/// a data dir from `SECRET_LEDGER_DATA_DIR` is simply not used then (clap would count the
/// environment as a conflict too).
fn parse() -> Result<Cli, clap::Error> {
    use clap::parser::ValueSource;
    use clap::{CommandFactory, FromArgMatches};
    let matches = Cli::command().try_get_matches()?;
    if let Some((_, sub)) = matches.subcommand() {
        let given = |id: &str| sub.try_get_raw(id).ok().flatten().is_some();
        if given("endpoint") && given("data_dir") && sub.value_source("data_dir") == Some(ValueSource::CommandLine) {
            return Err(Cli::command().error(
                clap::error::ErrorKind::ArgumentConflict,
                "the argument '--endpoint <ENDPOINT>' cannot be used with '--data-dir <DATA_DIR>'",
            ));
        }
    }
    Cli::from_arg_matches(&matches)
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Cmd::Verify { data_dir, remote, export, checkpoint, json } => {
            audit::verify(&remote.source(data_dir)?, export.as_deref(), checkpoint.as_deref(), json)
        }
        Cmd::History { secret_id, data_dir, remote, html, json } => {
            audit::history(&remote.source(data_dir)?, &secret_id, json, html.as_deref())
        }
        Cmd::State { as_of, secret_id, label, master_key_file, data_dir, remote, json } => {
            audit::state(audit::StateArgs {
                source: &remote.source(data_dir)?,
                as_of: &as_of,
                secret_id: secret_id.as_deref(),
                label: label.as_deref(),
                master_key_file,
                json,
            })
        }
        Cmd::Export { out, origin, data_dir, remote, json } => {
            audit::export(&remote.source(data_dir)?, &out, origin, json)
        }
        Cmd::Checkpoint { out, origin, signing_key, data_dir, remote } => {
            audit::checkpoint(&remote.source(data_dir)?, &out, origin, signing_key.as_deref())
        }
        Cmd::Prove { seq, from_checkpoint, to_checkpoint, data_dir, remote, json } => {
            let source = remote.source(data_dir)?;
            match (seq, from_checkpoint, to_checkpoint) {
                (Some(seq), None, None) => audit::prove_inclusion(&source, seq, json),
                (None, Some(a), Some(b)) => audit::prove_consistency(&source, &a, &b, json),
                _ => anyhow::bail!("prove takes --seq N, or --from-checkpoint A --to-checkpoint B"),
            }
        }
        Cmd::Rebuild { data_dir, json } => audit::rebuild(&data_dir, json),
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
