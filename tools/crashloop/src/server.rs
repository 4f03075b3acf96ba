//! The `secret-ledger` child process: start it, wait for its `listening on` line, SIGKILL or
//! SIGTERM it, and run `secret-ledger verify` on the data dir.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{bail, Context};

/// How long a start may take before the harness gives up (debug builds replay the whole log).
const START_TIMEOUT: Duration = Duration::from_secs(120);

pub struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
    pub log: PathBuf,
    pub endpoint: Option<String>,
}

impl Server {
    /// Spawns `BIN serve --listen 127.0.0.1:0 --data-dir DIR [--database-url URL]`; stderr goes
    /// to `log`.
    pub fn spawn(bin: &Path, data_dir: &Path, database_url: Option<&str>, log: &Path) -> anyhow::Result<Server> {
        Server::spawn_with(bin, data_dir, database_url, None, log)
    }

    /// [`Server::spawn`] with the master key and credentials files of `keys_from` (another
    /// node's data dir).
    pub fn spawn_with(
        bin: &Path,
        data_dir: &Path,
        database_url: Option<&str>,
        keys_from: Option<&Path>,
        log: &Path,
    ) -> anyhow::Result<Server> {
        let stderr = File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
        let mut command = Command::new(bin);
        command.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(data_dir);
        // In the environment, not the command line, where `ps` would show its password.
        if let Some(url) = database_url {
            command.env("SECRET_LEDGER_DATABASE_URL", url);
        }
        if let Some(dir) = keys_from {
            command.arg("--master-key-file").arg(dir.join("master.key"));
            command.arg("--credentials").arg(dir.join("credentials"));
        }
        let mut child = command
            .env("SECRET_LEDGER_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let stdout = child.stdout.take().context("no stdout pipe")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Server { child, lines, log: log.to_path_buf(), endpoint: None })
    }

    /// Waits for `listening on http://HOST:PORT` and returns the endpoint.
    pub fn wait_listening(&mut self) -> anyhow::Result<String> {
        let deadline = std::time::Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(endpoint) = line.strip_prefix("listening on ") {
                        self.endpoint = Some(endpoint.trim().to_string());
                        return Ok(endpoint.trim().to_string());
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    bail!("the server did not print its `listening on` line within {START_TIMEOUT:?}{}", self.tail())
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().ok();
                    bail!("the server exited before listening (status {status:?}){}", self.tail())
                }
            }
        }
    }

    /// SIGKILL (what `Child::kill` sends on Unix), then reap.
    pub fn kill(mut self) -> anyhow::Result<()> {
        self.child.kill().context("cannot kill the server")?;
        self.child.wait().context("cannot reap the server")?;
        Ok(())
    }

    /// SIGTERM; the server must shut down gracefully and exit 0.
    pub fn terminate(mut self) -> anyhow::Result<()> {
        let pid = self.child.id().to_string();
        // `kill(1)`: the workspace forbids the unsafe a direct libc call needs.
        let status = Command::new("kill").args(["-TERM", &pid]).status().context("cannot run kill -TERM")?;
        if !status.success() {
            bail!("kill -TERM {pid} failed: {status}");
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    bail!("the server exited with {status} after SIGTERM{}", self.tail());
                }
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!("the server did not stop within 60 s of SIGTERM{}", self.tail());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The end of the server's stderr, for error messages.
    pub fn tail(&self) -> String {
        log_tail(&self.log)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Never leave a server behind (an error path dropped us while it runs).
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(20)..].join("\n");
    if tail.is_empty() {
        String::new()
    } else {
        format!("\n--- server stderr ({}) ---\n{tail}", log.display())
    }
}

/// `BIN verify --data-dir DIR [--database-url URL] --json` must exit 0 and print `"ok": true`.
/// Returns its events.
pub fn verify(bin: &Path, data_dir: &Path, database_url: Option<&str>) -> anyhow::Result<u64> {
    let mut command = Command::new(bin);
    command.args(["verify", "--json", "--data-dir"]).arg(data_dir);
    if let Some(url) = database_url {
        command.env("SECRET_LEDGER_DATABASE_URL", url);
    }
    let out = command.stdin(Stdio::null()).output().with_context(|| format!("cannot run {} verify", bin.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json: serde_json::Value =
        stdout.lines().rev().find_map(|l| serde_json::from_str(l).ok()).unwrap_or(serde_json::Value::Null);
    if !out.status.success() || json["ok"] != serde_json::Value::Bool(true) {
        bail!("verify failed ({}): {}{}", out.status, stdout.trim(), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(json["events"].as_u64().unwrap_or(0))
}

/// The first `ACCESS_KEY_ID:SECRET` line of `<data_dir>/credentials`.
pub fn credentials(data_dir: &Path) -> anyhow::Result<(String, String)> {
    let path = data_dir.join("credentials");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .find_map(|l| l.split_once(':'))
        .map(|(a, s)| (a.to_string(), s.to_string()))
        .with_context(|| format!("no credentials in {}", path.display()))
}
