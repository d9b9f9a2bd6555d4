//! CPU time and memory of a process, read from Linux's `/proc`.
//!
//! CPU is `utime + stime` of `/proc/<pid>/stat` (fields 14 and 15, in clock ticks), divided by
//! the clock tick rate (`getconf CLK_TCK`, asked once). Memory is `VmRSS` (resident now) and
//! `VmHWM` (the peak resident size over the process's life) of `/proc/<pid>/status`.

use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};
use serde::Serialize;

/// One reading of a process's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct ProcSample {
    /// User + system CPU seconds since the process started.
    pub cpu_s: f64,
    /// Resident set size now, in bytes.
    pub rss_bytes: u64,
    /// Peak resident set size since the process started, in bytes.
    pub peak_rss_bytes: u64,
}

/// Reads the counters of process `pid`.
pub fn sample(pid: u32) -> Result<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let ticks = parse_cpu_ticks(&stat).with_context(|| format!("parsing /proc/{pid}/stat"))?;
    let kib =
        |key: &str| parse_status_kib(&status, key).with_context(|| format!("no {key} in /proc/{pid}/status"));
    Ok(ProcSample {
        cpu_s: ticks as f64 / clock_ticks_per_s()? as f64,
        rss_bytes: kib("VmRSS:")? * 1024,
        peak_rss_bytes: kib("VmHWM:")? * 1024,
    })
}

/// Counters of this process (the load generator).
pub fn sample_self() -> Result<ProcSample> {
    sample(std::process::id())
}

/// `utime + stime` in clock ticks from the text of `/proc/<pid>/stat`.
///
/// The second field, the command name, is in parentheses and may itself hold spaces and
/// parentheses, so fields are counted from the last `)`.
pub fn parse_cpu_ticks(stat: &str) -> Result<u64> {
    let Some(close) = stat.rfind(')') else {
        bail!("no `)` after the command name");
    };
    // After the name: field 3 (state) is index 0, so utime (14) is 11 and stime (15) is 12.
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let field = |i: usize| -> Result<u64> {
        let text = fields
            .get(i)
            .with_context(|| format!("only {} fields", fields.len()))?;
        text.parse::<u64>()
            .with_context(|| format!("field {} is `{text}`", i + 3))
    };
    Ok(field(11)? + field(12)?)
}

/// The value in KiB of line `key` ("VmHWM:") of `/proc/<pid>/status`.
pub fn parse_status_kib(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    let mut words = line[key.len()..].split_whitespace();
    let value = words.next()?.parse().ok()?;
    (words.next() == Some("kB")).then_some(value)
}

/// Clock ticks per second (`getconf CLK_TCK`), asked once per process.
pub fn clock_ticks_per_s() -> Result<u64> {
    static TICKS: OnceLock<Result<u64, String>> = OnceLock::new();
    TICKS
        .get_or_init(|| {
            let out = Command::new("getconf")
                .arg("CLK_TCK")
                .output()
                .map_err(|e| format!("cannot run `getconf CLK_TCK`: {e}"))?;
            let text = String::from_utf8_lossy(&out.stdout);
            match text.trim().parse::<u64>() {
                Ok(t) if out.status.success() && t > 0 => Ok(t),
                _ => Err(format!("`getconf CLK_TCK` printed `{}`", text.trim())),
            }
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_counted_after_the_last_parenthesis() {
        // A command name with a space and a `)` must not shift the fields.
        let stat = "4242 (we ird) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 3 0 1000 \
                    1000000 500 18446744073709551615";
        assert_eq!(parse_cpu_ticks(stat).unwrap(), 325);
        assert!(parse_cpu_ticks("12 (short) S 1 2").is_err());
        assert!(parse_cpu_ticks("no parenthesis").is_err());
    }

    #[test]
    fn status_values_are_read_in_kib() {
        let status = "Name:\tnode\nVmPeak:\t  999 kB\nVmHWM:\t   2048 kB\nVmRSS:\t    1024 kB\n";
        assert_eq!(parse_status_kib(status, "VmHWM:"), Some(2048));
        assert_eq!(parse_status_kib(status, "VmRSS:"), Some(1024));
        assert_eq!(parse_status_kib(status, "VmSwap:"), None);
        assert_eq!(parse_status_kib("VmHWM:\t12 MB\n", "VmHWM:"), None);
    }

    #[test]
    fn this_process_can_be_sampled() {
        let s = sample_self().unwrap();
        assert!(s.rss_bytes > 0 && s.peak_rss_bytes >= s.rss_bytes, "{s:?}");
        assert!(s.cpu_s >= 0.0);
        assert!(clock_ticks_per_s().unwrap() >= 1);
    }
}
