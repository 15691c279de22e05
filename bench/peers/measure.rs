//! What the phoenix_channels_client peers measure and how they read their options: CPU time,
//! context switches, resident memory and the benchmark server's CPU (the same fields as
//! `phx-bench-client`'s `RESULT` line). Each peer is a cargo project of its own, so they share
//! this file by path (`#[path]`) rather than through a crate.

use std::time::Instant;

pub fn rusage() -> libc::rusage {
    // SAFETY: getrusage writes into the zeroed struct we own.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    }
}

pub fn cpu_seconds() -> f64 {
    let u = rusage();
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// Context switches (voluntary + involuntary, every thread) of the process so far.
pub fn context_switches() -> i64 {
    let u = rusage();
    u.ru_nvcsw + u.ru_nivcsw
}

/// The process's resident set (`VmRSS`), in KiB.
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// CPU seconds of the benchmark server (`PHX_BENCH_SERVER_PID`), from its threads' schedstat.
pub fn server_cpu() -> Option<f64> {
    let pid: u32 = std::env::var("PHX_BENCH_SERVER_PID").ok()?.parse().ok()?;
    let mut ns = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        ns += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(ns as f64 / 1e9)
}

pub struct Stopwatch(Instant, f64, i64, Option<f64>);

impl Stopwatch {
    pub fn start() -> Self {
        Stopwatch(
            Instant::now(),
            cpu_seconds(),
            context_switches(),
            server_cpu(),
        )
    }
    /// `wall_s`, `cpu_s`, `csw` and `server_cpu_s` fields, with the wall time ending at `end`.
    pub fn fields(&self, end: Instant) -> String {
        let mut s = format!(
            "wall_s={:.4} cpu_s={:.4} csw={}",
            end.duration_since(self.0).as_secs_f64(),
            cpu_seconds() - self.1,
            context_switches() - self.2
        );
        if let (Some(a), Some(b)) = (self.3, server_cpu()) {
            s += &format!(" server_cpu_s={:.4}", b - a);
        }
        s
    }
}

pub struct Opts {
    pub url: String,
    pub scenario: String,
    pub n: u64,
    pub window: u64,
}

pub fn opts() -> Result<Opts, String> {
    let mut o = Opts {
        url: String::new(),
        scenario: String::new(),
        n: 100_000,
        window: 1000,
    };
    let mut args = std::env::args().skip(1);
    while let Some(k) = args.next() {
        let v = args.next().ok_or(format!("{k} needs a value"))?;
        let num = || v.parse::<u64>().map_err(|_| format!("{k} needs a number"));
        match k.as_str() {
            "--url" => o.url = v.clone(),
            "--scenario" => o.scenario = v.clone(),
            "--n" => o.n = num()?,
            "--window" => o.window = num()?.max(1),
            "--sockets" => {}
            _ => return Err(format!("unknown option {k}")),
        }
    }
    if o.url.is_empty() {
        return Err("--url is required".into());
    }
    Ok(o)
}
