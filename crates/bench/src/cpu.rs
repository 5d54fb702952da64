//! The server's CPU time (user + system, all threads) from `/proc/<pid>/stat`, read
//! before and after a timed part. The load generator shares the machine's cores with
//! the server, so throughput alone mixes the two; CPU time per unit of work is the
//! server's own cost, whatever the client takes.

/// Clock ticks per second in `/proc/<pid>/stat` (`USER_HZ`, 100 on every Linux ABI
/// this runs on).
const TICKS_PER_S: f64 = 100.0;

/// CPU seconds (user + system) `pid` has used so far.
pub fn read_cpu_s(pid: u32) -> Result<f64, String> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    parse_cpu_ticks(&stat)
        .map(|ticks| ticks as f64 / TICKS_PER_S)
        .ok_or_else(|| format!("{path}: no utime/stime fields"))
}

/// `utime + stime` of a `/proc/<pid>/stat` text, in ticks. The command name (field 2)
/// is in parentheses and may hold spaces, so fields are counted after its `)`.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_utime_and_stime_after_the_command_name() {
        let stat = "4242 (tokio rt (x)) S 1 4242 4242 0 -1 4194560 500 0 0 0 \
                    37 15 0 0 20 0 9 0 1000 1000000 2000 18446744073709551615";
        assert_eq!(parse_cpu_ticks(stat), Some(52));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn this_process_has_a_cpu_time() {
        let s = read_cpu_s(std::process::id()).unwrap();
        assert!(s >= 0.0);
    }
}
