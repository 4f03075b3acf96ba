//! Verifies a data dir and prints the process's resident memory every 100,000 events, to see
//! where memory goes: `cargo run --release -p ledger-store --example verify_rss -- DIR`.

fn rss_mb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).ok_or("usage: verify_rss DIR")?;
    println!("start: {} MB", rss_mb());
    let mut last = 0;
    let report = ledger_store::verify_dir(std::path::Path::new(&dir), &mut |done, _| {
        if done / 100_000 != last {
            last = done / 100_000;
            println!("{done} events: {} MB", rss_mb());
        }
    })?;
    println!("end: {} MB, {:?}", rss_mb(), report.map(|r| r.events));
    Ok(())
}
