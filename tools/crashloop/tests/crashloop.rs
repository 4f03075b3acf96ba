//! A short crash loop against the `secret-ledger` binary named by `SECRET_LEDGER_BIN` (CI runs the
//! long one through the `crashloop` binary). Skipped, with a note, when the variable is unset:
//! the binary belongs to another package, so this test cannot make cargo build it.

use ledger_crashloop::{run, Options};

#[test]
fn short_crash_loop_loses_nothing() {
    let Some(bin) = std::env::var_os("SECRET_LEDGER_BIN") else {
        eprintln!("skipped: set SECRET_LEDGER_BIN to a secret-ledger binary (e.g. target/debug/secret-ledger)");
        return;
    };
    let mut options = Options::new(bin, 8, 20_251_127);
    options.clients = 4;
    options.verify_every = 4;
    options.traffic_ms = (50, 200);
    options.startup_kill_percent = 25;
    let summary = match run(&options) {
        Ok(summary) => summary,
        Err(failure) => panic!("{failure}"),
    };
    assert_eq!(summary.lost_writes, 0);
    assert_eq!(summary.iterations, 8);
    assert!(summary.verify_runs >= 2, "{summary}");
    assert!(summary.counters.acked_puts > 0, "{summary}");
}
