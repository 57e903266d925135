//! The daemon's own process, as the metrics report it (R-OPS-5): resident memory, CPU time,
//! open file descriptors and their limit, threads and start time, read from `/proc/self`
//! at each scrape (the prometheus-client crate has no process collector). The names follow
//! the Prometheus client libraries' `process_*` families, so stock dashboards work.
//!
//! Parsing is split from reading, so the parsers are tested on fixed texts.

use std::path::Path;

/// What one look at `/proc/self` found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ProcessStats {
    /// Resident set size in bytes (`VmRSS`).
    pub(crate) resident_bytes: u64,
    /// Virtual memory size in bytes (`VmSize`).
    pub(crate) virtual_bytes: u64,
    /// User and system CPU time in seconds.
    pub(crate) cpu_seconds: f64,
    /// Open file descriptors.
    pub(crate) open_fds: u64,
    /// The soft limit of open file descriptors, if there is one.
    pub(crate) max_fds: Option<u64>,
    /// Threads.
    pub(crate) threads: u64,
    /// When the process started, in seconds since the Unix epoch.
    pub(crate) start_time_seconds: f64,
}

impl ProcessStats {
    /// Reads `/proc/self`; `None` when a file is missing or unreadable (not Linux, no /proc).
    pub(crate) fn read() -> Option<Self> {
        let proc = Path::new("/proc");
        let stat = std::fs::read_to_string(proc.join("self/stat")).ok()?;
        let status = std::fs::read_to_string(proc.join("self/status")).ok()?;
        let limits = std::fs::read_to_string(proc.join("self/limits")).unwrap_or_default();
        let boot = std::fs::read_to_string(proc.join("stat")).ok()?;
        let open_fds = std::fs::read_dir(proc.join("self/fd")).ok()?.count() as u64;
        let ticks = ferrosec_netio::clock_ticks_per_second() as f64;
        let s = parse_stat(&stat)?;
        let kb = |key| status_kb(&status, key).map(|k| k * 1024);
        Some(ProcessStats {
            resident_bytes: kb("VmRSS:")?,
            virtual_bytes: kb("VmSize:")?,
            cpu_seconds: (s.utime + s.stime) as f64 / ticks,
            // read_dir's own descriptor is open while it counts.
            open_fds: open_fds.saturating_sub(1),
            max_fds: max_open_files(&limits),
            threads: status_kb(&status, "Threads:")?,
            start_time_seconds: boot_time(&boot)? as f64 + s.starttime as f64 / ticks,
        })
    }
}

/// The fields of `/proc/<pid>/stat` the metrics use, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    utime: u64,
    stime: u64,
    starttime: u64,
}

/// `/proc/<pid>/stat`: the command name (field 2) is in parentheses and may hold spaces and
/// parentheses itself, so fields are counted after its last `)` (field 3 is the first there).
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // proc(5): utime is field 14, stime 15, starttime 22; field 3 is f[0].
    let field = |n: usize| f.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        utime: field(14)?,
        stime: field(15)?,
        starttime: field(22)?,
    })
}

/// The number after `key` in `/proc/<pid>/status` (`VmRSS:    1234 kB` gives 1234).
fn status_kb(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The soft limit of `Max open files` in `/proc/<pid>/limits` (`None`: unlimited or absent).
fn max_open_files(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("Max open files"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `btime` of `/proc/stat`: when the system booted, in seconds since the Unix epoch.
fn boot_time(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A command name with spaces and a parenthesis does not shift the fields.
    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let line = "4242 (fe rro) sec) S 1 4242 4242 0 -1 4194560 1234 0 0 0 \
                    250 75 0 0 20 0 9 0 123456 987654321 2048 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                utime: 250,
                stime: 75,
                starttime: 123456
            })
        );
        assert_eq!(parse_stat("4242 (x) S 1 2"), None);
        assert_eq!(parse_stat("no parenthesis"), None);
    }

    #[test]
    fn status_limits_and_boot_time() {
        let status = "Name:\tferrosec\nVmSize:\t  123456 kB\nVmRSS:\t    8192 kB\nThreads:\t5\n";
        assert_eq!(status_kb(status, "VmRSS:"), Some(8192));
        assert_eq!(status_kb(status, "VmSize:"), Some(123456));
        assert_eq!(status_kb(status, "Threads:"), Some(5));
        assert_eq!(status_kb(status, "VmSwap:"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(max_open_files(limits), Some(1024));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(max_open_files(unlimited), None);
        assert_eq!(
            boot_time("cpu  1 2 3\nbtime 1765000000\nprocesses 9\n"),
            Some(1765000000)
        );
    }

    /// This test process, read for real: plausible figures, started before now and after the
    /// machine booted, its own open test file counted.
    #[test]
    fn this_process_reads_plausibly() {
        let before = ProcessStats::read().expect("/proc/self readable");
        // Other tests of this process open and close files on their own threads meanwhile:
        // 64 files of ours stand out from them.
        let files: Vec<_> = (0..64).map(|_| tempfile::tempfile().unwrap()).collect();
        let after = ProcessStats::read().unwrap();
        assert!(
            after.open_fds >= before.open_fds + 48,
            "{before:?} {after:?}"
        );
        drop(files);
        assert!(before.resident_bytes > 1024 * 1024, "{before:?}");
        assert!(before.virtual_bytes >= before.resident_bytes, "{before:?}");
        assert!(before.threads >= 1);
        assert!(before.max_fds.is_none_or(|m| m >= before.open_fds));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            before.start_time_seconds <= now + 1.0 && before.start_time_seconds > now - 86_400.0,
            "{before:?} now {now}"
        );
        // Burn a little CPU: the CPU time grows.
        let t0 = ProcessStats::read().unwrap().cpu_seconds;
        let spin = std::time::Instant::now();
        let mut x = 0u64;
        while spin.elapsed() < std::time::Duration::from_millis(300) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let t1 = ProcessStats::read().unwrap().cpu_seconds;
        assert!(t1 >= t0 + 0.1, "cpu {t0} -> {t1}");
    }
}
