//! `secret-ledger serve` with the durable flush turned off (`unsafe_no_sync`): it acknowledges
//! writes sled still holds in memory, so a SIGKILL loses some. The harness's own test runs the
//! crash loop against it and requires a failure, proving the checks can see a lost write.
//!
//! Usage (the subset of `secret-ledger serve` the harness uses):
//! `lossy_serve serve --listen 127.0.0.1:0 --data-dir DIR`

use anyhow::Context;
use ledger_server::ServeConfig;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let data_dir = arg("--data-dir").context("--data-dir is required")?;
    let mut config = ServeConfig::new(data_dir);
    config.listen = arg("--listen").unwrap_or_else(|| "127.0.0.1:0".into());
    config.ledger_options.unsafe_no_sync = true;
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(ledger_server::serve(config))
}
