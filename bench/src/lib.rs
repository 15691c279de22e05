//! Shared pieces of the libphx benchmarks: the scenario constants every client uses, process
//! CPU time and resident memory, a tiny argument parser, and the one-line result format that
//! `scripts/bench.sh` collects and `phx-bench-report` turns into `docs/benchmarks.md`.
//!
//! Every client (the raw WebSocket floor, the libphx engine, the C program and phoenix.js)
//! prints exactly one line per run:
//!
//! ```text
//! RESULT client=engine scenario=recv count=1000000 wall_s=0.912 cpu_s=0.874 ...
//! ```
//!
//! `count` is what the scenario counts (messages delivered to the application, replies
//! received, round trips, sockets), `wall_s` and `cpu_s` cover the measured phase only
//! (connecting, joining and warming up are excluded), `cpu_s` is the whole client process
//! (every thread, user + system), `csw` the context switches of the whole process over the
//! same phase (voluntary + involuntary). Readers ignore fields they do not know, so a client
//! may add its own.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

/// The topic every client joins. The server answers pushes on any `echo:*` topic.
pub const TOPIC: &str = "echo:bench";
/// The event of the messages the server blasts.
pub const BLAST_EVENT: &str = "m";
/// The payload of every request/response and latency push (echoed verbatim by the server).
pub const ECHO_PAYLOAD: &str = r#"{"body":"0123456789abcdef"}"#;
/// Push timeout used by the clients: long enough never to fire during a run.
pub const PUSH_TIMEOUT: Duration = Duration::from_secs(600);

/// Warm-up sizes, the same for every client (JIT, allocator and buffer growth happen there).
pub fn warmup_recv(n: u64) -> u64 {
    (n / 10).clamp(1, 50_000)
}
pub fn warmup_reqresp(n: u64) -> u64 {
    (n / 10).clamp(1, 20_000)
}
pub fn warmup_latency(n: u64) -> u64 {
    (n / 10).clamp(1, 2_000)
}

/// CPU time (user + system, every thread) the process has used so far, in seconds.
pub fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Context switches (voluntary + involuntary, every thread) of the process so far.
pub fn context_switches() -> u64 {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    (usage.ru_nvcsw + usage.ru_nivcsw) as u64
}

/// The process's resident set (`VmRSS` of `/proc/self/status`), in KiB.
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// CPU time (user + system, every thread) of another process, in seconds: the sum of
/// `/proc/PID/task/*/schedstat` run times (nanoseconds), or `/proc/PID/stat` (clock ticks)
/// where schedstat is unavailable.
pub fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let from_schedstat = || -> Option<f64> {
        let mut ns = 0u64;
        for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
            let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
            ns += stat.split_whitespace().next()?.parse::<u64>().ok()?;
        }
        (ns > 0).then_some(ns as f64 / 1e9)
    };
    from_schedstat().or_else(|| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // After the command name (which may contain spaces): state is field 3, utime 14,
        // stime 15.
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
        // SAFETY: plain sysconf query.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        Some(ticks / hz)
    })
}

/// The benchmark server's pid, when `scripts/bench.sh` passes it (`PHX_BENCH_SERVER_PID`).
fn server_pid() -> Option<u32> {
    std::env::var("PHX_BENCH_SERVER_PID").ok()?.parse().ok()
}

/// Wall and CPU time of a measured phase (and the server's CPU time over it, when known).
pub struct Stopwatch {
    wall: std::time::Instant,
    cpu: f64,
    csw: u64,
    server_cpu: Option<f64>,
}

/// What a [`Stopwatch`] measured, in seconds.
pub struct Measured {
    pub wall: f64,
    pub cpu: f64,
    /// Context switches of the client process.
    pub csw: u64,
    pub server_cpu: Option<f64>,
}

impl Stopwatch {
    pub fn start() -> Self {
        Stopwatch {
            server_cpu: server_pid().and_then(process_cpu_seconds),
            cpu: cpu_seconds(),
            csw: context_switches(),
            wall: std::time::Instant::now(),
        }
    }

    pub fn stop(&self) -> Measured {
        let wall = self.wall.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - self.cpu;
        let csw = context_switches().saturating_sub(self.csw);
        let server_now = server_pid().and_then(process_cpu_seconds);
        Measured {
            wall,
            cpu,
            csw,
            server_cpu: self.server_cpu.zip(server_now).map(|(a, b)| b - a),
        }
    }
}

/// The value at quantile `q` (0..=1) of `sorted` (nearest rank).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// One result line under construction.
pub struct Record {
    line: String,
}

impl Record {
    pub fn new(client: &str, scenario: &str) -> Self {
        Record {
            line: format!("RESULT client={client} scenario={scenario}"),
        }
    }

    pub fn field(mut self, key: &str, value: impl std::fmt::Display) -> Self {
        let _ = write!(self.line, " {key}={value}");
        self
    }

    /// Adds `wall_s`, `cpu_s`, `csw` and (when known) `server_cpu_s`.
    pub fn measured(self, m: &Measured) -> Self {
        let r = self
            .field("wall_s", format!("{:.4}", m.wall))
            .field("cpu_s", format!("{:.4}", m.cpu))
            .field("csw", m.csw);
        match m.server_cpu {
            Some(s) => r.field("server_cpu_s", format!("{s:.4}")),
            None => r,
        }
    }

    /// Adds the latency fields from round-trip times in microseconds (sorted here).
    pub fn latencies(self, mut rtts_us: Vec<f64>) -> Self {
        rtts_us.sort_by(f64::total_cmp);
        let mean = rtts_us.iter().sum::<f64>() / rtts_us.len().max(1) as f64;
        self.field("p50_us", format!("{:.1}", quantile(&rtts_us, 0.50)))
            .field("p99_us", format!("{:.1}", quantile(&rtts_us, 0.99)))
            .field("mean_us", format!("{mean:.1}"))
    }

    pub fn print(self) {
        println!("{}", self.line);
    }
}

/// `--key value` arguments (and bare `--flag`s, stored as "1").
pub struct Args {
    map: HashMap<String, String>,
}

impl Args {
    pub fn parse() -> Result<Self, String> {
        let mut map = HashMap::new();
        let mut it = std::env::args().skip(1).peekable();
        while let Some(arg) = it.next() {
            let key = arg
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected argument {arg:?}"))?
                .to_string();
            let value = match it.peek() {
                Some(v) if !v.starts_with("--") => it.next().unwrap_or_default(),
                _ => "1".to_string(),
            };
            map.insert(key, value);
        }
        Ok(Args { map })
    }

    pub fn str(&self, key: &str) -> Option<&str> {
        self.map.get(key).map(String::as_str)
    }

    pub fn required(&self, key: &str) -> Result<&str, String> {
        self.str(key).ok_or_else(|| format!("--{key} is required"))
    }

    pub fn u64_or(&self, key: &str, default: u64) -> Result<u64, String> {
        match self.str(key) {
            None => Ok(default),
            Some(v) => v
                .replace('_', "")
                .parse()
                .map_err(|_| format!("--{key}: not a number: {v:?}")),
        }
    }

    pub fn flag(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }
}

/// Parses a `key=value ...` result line (after `RESULT `).
pub fn parse_record(line: &str) -> Option<HashMap<String, String>> {
    let rest = line.trim().strip_prefix("RESULT ")?;
    Some(
        rest.split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}
