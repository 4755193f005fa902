//! Helpers shared by `bench-server` and `bench-load`.

/// Raises the soft limit on open files to the hard limit (10,000 idle connections need it).
pub fn raise_nofile_limit() {
    // SAFETY: plain libc calls with a valid, initialised struct.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// The resident set size of process `pid` in KiB (`VmRSS` in `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Time process `pid`'s main thread has spent on a CPU and waiting for one (run queue), in
/// seconds, from `/proc/PID/schedstat` (nanosecond counters; the tick-based `utime`/`stime` are
/// too coarse on some virtual machines). The benchmark's processes are single-threaded.
pub fn sched_seconds(pid: u32) -> Option<(f64, f64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).ok()?;
    let mut f = s.split_whitespace();
    let run: u64 = f.next()?.parse().ok()?;
    let wait: u64 = f.next()?.parse().ok()?;
    Some((run as f64 / 1e9, wait as f64 / 1e9))
}
