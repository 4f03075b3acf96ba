//! CPU time of a process (user + system) from `/proc/PID/stat`, so the load generator can report
//! its own cost and, when it knows the server's pid, the server's.

use std::time::Duration;

/// Linux reports `utime`/`stime` in clock ticks of `USER_HZ`, which is 100 on every architecture
/// the kernel's ABI exposes to user space.
const TICKS_PER_SECOND: u64 = 100;

/// User + system CPU time consumed so far by `pid` (`None`: this process).
pub(crate) fn cpu_time(pid: Option<u32>) -> Option<Duration> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let text = std::fs::read_to_string(path).ok()?;
    parse_stat(&text)
}

/// CPU time all cores of the machine spent busy so far (`/proc/stat`: user, nice, system, irq,
/// softirq, steal), to tell how much of the machine other processes took during a run.
pub(crate) fn machine_busy() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    parse_proc_stat(&text)
}

fn parse_proc_stat(text: &str) -> Option<Duration> {
    let line = text.lines().next()?.strip_prefix("cpu ")?;
    let fields: Vec<u64> = line.split_whitespace().map(|f| f.parse().ok()).collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal ...
    let busy = [0, 1, 2, 5, 6, 7].iter().map(|&i| fields.get(i).copied().unwrap_or(0)).sum::<u64>();
    Some(Duration::from_millis(busy * 1000 / TICKS_PER_SECOND))
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
        assert!(machine_busy().is_some());
    }

    #[test]
    fn sums_the_busy_fields_of_proc_stat() {
        let text = "cpu  100 5 50 9000 40 1 2 3 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n";
        assert_eq!(parse_proc_stat(text), Some(Duration::from_millis(1610)));
    }
}
