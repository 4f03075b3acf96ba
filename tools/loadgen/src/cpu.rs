//! CPU time of a process (user + system) from `/proc/PID/stat`, so the load generator can report
//! its own cost and, when it knows the server's pid, the server's.

use std::time::Duration;

/// Linux reports `utime`/`stime` in clock ticks of `USER_HZ`, which is 100 on every architecture
/// the kernel's ABI exposes to user space.
const TICKS_PER_SECOND: u64 = 100;

/// User + system CPU time consumed so far by `pid` (`None`: this process).
pub fn cpu_time(pid: Option<u32>) -> Option<Duration> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let text = std::fs::read_to_string(path).ok()?;
    parse_stat(&text)
}

/// Fields 14 (`utime`) and 15 (`stime`) of a `stat` line; the command name (field 2) may contain
/// spaces and parentheses, so fields are counted after its last `)`.
fn parse_stat(text: &str) -> Option<Duration> {
    let rest = &text[text.rfind(')')? + 1..];
    // `rest` starts at field 3 (state): utime is the 12th field of `rest`, stime the 13th.
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let ticks = utime + stime;
    Some(Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_utime_and_stime_after_the_command_name() {
        let line = "1234 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0 100 0 0";
        assert_eq!(parse_stat(line), Some(Duration::from_secs(3)));
    }

    #[test]
    fn reads_its_own_cpu_time() {
        assert!(cpu_time(None).is_some());
    }
}
