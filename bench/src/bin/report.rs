//! `phx-bench-report`: turns the `RESULT` and `INSTR` lines collected by `scripts/bench.sh`
//! into `docs/benchmarks.md` (medians of the repetitions, messages delivered against sent,
//! callgrind counts, ratios to the floor and to phoenix.js) and a chart of the ratios (SVG).
//!
//! ```text
//! phx-bench-report --results FILE --machine FILE --command "scripts/bench.sh ..." [--date D]
//!                  [--note TEXT] [--svg FILE]
//! ```

use phx_bench::{parse_record, Args};
use std::collections::HashMap;
use std::fmt::Write as _;

/// Clients in table order, with their descriptions.
const CLIENTS: &[(&str, &str)] = &[
    ("floor", "floor: raw tokio-tungstenite"),
    ("engine", "libphx Rust engine"),
    ("c-cb", "libphx C ABI, callbacks"),
    ("c-queue", "libphx C ABI, event queue"),
    ("c-batch", "libphx C ABI, event queue, batched take"),
    ("phoenix-js", "phoenix.js 1.8.16 (Node)"),
    ("pcc", "phoenix_channels_client 0.1.2 (Rust)"),
    ("pcc09", "phoenix_channels_client 0.9.1 (Rust)"),
];

const LIBPHX: &[&str] = &["engine", "c-cb", "c-queue", "c-batch"];

/// The repetitions of one (scenario, client).
struct Runs(Vec<HashMap<String, String>>);

impl Runs {
    fn values(&self, key: &str) -> Vec<f64> {
        let mut v: Vec<f64> = self
            .0
            .iter()
            .filter_map(|r| r.get(key)?.parse().ok())
            .collect();
        v.sort_by(f64::total_cmp);
        v
    }

    fn median(&self, key: &str) -> Option<f64> {
        let v = self.values(key);
        match v.len() {
            0 => None,
            n if n % 2 == 1 => Some(v[n / 2]),
            n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
        }
    }

    fn m(&self, key: &str) -> f64 {
        self.median(key).unwrap_or(f64::NAN)
    }

    /// (max - min) / median of `key`, as a percentage.
    fn spread(&self, key: &str) -> String {
        let v = self.values(key);
        match (v.first(), v.last(), self.median(key)) {
            (Some(lo), Some(hi), Some(med)) if v.len() > 1 && med > 0.0 => {
                format!("{:.0} %", (hi - lo) / med * 100.0)
            }
            _ => "n/a".into(),
        }
    }

    /// Context switches of the client process per unit of `count` (median over the runs of
    /// each run's ratio), or NaN when the runs do not report them (`csw`, or `ctx_switches`).
    fn csw_per(&self) -> f64 {
        let mut v: Vec<f64> = self
            .0
            .iter()
            .filter_map(|r| {
                let get = |k: &str| r.get(k).and_then(|v| v.parse::<f64>().ok());
                Some(get("csw").or_else(|| get("ctx_switches"))? / get("count")?)
            })
            .collect();
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }

    fn reps(&self) -> usize {
        self.0.len()
    }

    /// The fewest messages delivered in any run (successful replies in request/response) and
    /// the messages sent, when the runs say how many were sent.
    fn delivery(&self) -> Option<(f64, f64)> {
        let mut worst: Option<(f64, f64)> = None;
        for r in &self.0 {
            let get = |k: &str| r.get(k).and_then(|v| v.parse::<f64>().ok());
            let sent = get("sent")?;
            let delivered = get("count")? - get("errors").unwrap_or(0.0);
            if worst.is_none_or(|(d, _)| delivered < d) {
                worst = Some((delivered, sent));
            }
        }
        worst
    }

    /// Whether some run delivered fewer messages than were sent.
    fn drops(&self) -> bool {
        self.delivery().is_some_and(|(d, s)| d < s)
    }
}

/// `delivered / sent (percentage)`, or n/a.
fn delivery_cell(delivery: Option<(f64, f64)>) -> String {
    match delivery {
        Some((d, s)) if d < s => format!("**{} / {} ({:.1} %)**", int(d), int(s), d / s * 100.0),
        Some((d, s)) => format!("{} / {}", int(d), int(s)),
        None => "n/a".into(),
    }
}

/// Callgrind counts of one (scenario, client), from an `INSTR` line.
struct Instr {
    ir: f64,
    allocs: f64,
    delivered: f64,
    sent: f64,
}

impl Instr {
    fn parse(line: &str) -> Option<(String, String, Instr)> {
        let rest = line.trim().strip_prefix("INSTR ")?;
        let f: HashMap<&str, &str> = rest
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .collect();
        let num = |k: &str| f.get(k).and_then(|v| v.parse::<f64>().ok());
        Some((
            f.get("scenario")?.to_string(),
            f.get("client")?.to_string(),
            Instr {
                ir: num("ir_per_msg")?,
                allocs: num("allocs_per_msg").unwrap_or(f64::NAN),
                delivered: num("delivered").unwrap_or(f64::NAN),
                sent: num("sent").unwrap_or(f64::NAN),
            },
        ))
    }

    fn drops(&self) -> bool {
        self.delivered < self.sent
    }
}

struct Data {
    runs: HashMap<(String, String), Runs>,
    instr: HashMap<(String, String), Instr>,
    instr_n: Option<String>,
    raw: Vec<String>,
}

impl Data {
    fn get(&self, scenario: &str, client: &str) -> Option<&Runs> {
        self.runs.get(&(scenario.to_string(), client.to_string()))
    }

    fn instr(&self, scenario: &str, client: &str) -> Option<&Instr> {
        self.instr.get(&(scenario.to_string(), client.to_string()))
    }

    fn clients(&self, scenario: &str) -> Vec<(&'static str, &'static str, &Runs)> {
        CLIENTS
            .iter()
            .filter_map(|&(id, name)| self.get(scenario, id).map(|r| (id, name, r)))
            .collect()
    }
}

fn main() {
    if let Err(e) = run() {
        eprintln!("phx-bench-report: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), String> {
    let args = Args::parse()?;
    let results_path = args.required("results")?;
    let results = std::fs::read_to_string(results_path)
        .map_err(|e| format!("cannot read {results_path}: {e}"))?;
    let machine = match args.str("machine") {
        Some(p) => std::fs::read_to_string(p).map_err(|e| format!("cannot read {p}: {e}"))?,
        None => String::new(),
    };
    let mut runs: HashMap<(String, String), Runs> = HashMap::new();
    let raw: Vec<String> = results
        .lines()
        .filter(|l| l.starts_with("RESULT ") || l.starts_with("INSTR "))
        .map(|l| l.trim_start_matches("RESULT ").to_string())
        .collect();
    let instr_n = results
        .lines()
        .filter(|l| l.starts_with("INSTR "))
        .find_map(|l| l.split_whitespace().find_map(|kv| kv.strip_prefix("n=")))
        .map(str::to_string);
    let instr = results
        .lines()
        .filter_map(Instr::parse)
        .map(|(s, c, i)| ((s, c), i))
        .collect();
    for rec in results.lines().filter_map(parse_record) {
        let key = (
            rec.get("scenario").cloned().unwrap_or_default(),
            rec.get("client").cloned().unwrap_or_default(),
        );
        runs.entry(key)
            .or_insert_with(|| Runs(Vec::new()))
            .0
            .push(rec);
    }
    let data = Data {
        runs,
        instr,
        instr_n,
        raw,
    };
    let mut out = String::new();
    header(&mut out, &args, &machine, &data);
    receive(&mut out, &data);
    reqresp(&mut out, &data);
    latency(&mut out, &data);
    memory(&mut out, &data);
    reading(&mut out, args.str("svg"));
    appendix(&mut out, &data);
    if let Some(path) = args.str("svg") {
        std::fs::write(path, chart::svg(&data)).map_err(|e| format!("cannot write {path}: {e}"))?;
    }
    print!("{out}");
    Ok(())
}

// ---- formatting helpers ------------------------------------------------------------------------

/// An integer with thousands separators.
fn int(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    let digits = format!("{:.0}", v.round());
    let (sign, digits) = match digits.strip_prefix('-') {
        Some(d) => ("-", d.to_string()),
        None => ("", digits),
    };
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    format!("{sign}{out}")
}

fn fixed(v: f64, decimals: usize) -> String {
    if v.is_finite() {
        format!("{v:.decimals$}")
    } else {
        "n/a".into()
    }
}

/// A small per-message figure with enough decimals to tell 0.0004 from 0.
fn small(v: f64) -> String {
    match v {
        v if !v.is_finite() => "n/a".into(),
        v if v >= 1.0 || v == 0.0 => format!("{v:.2}"),
        v if v >= 0.01 => format!("{v:.3}"),
        v => format!("{v:.4}"),
    }
}

fn ratio(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    if v >= 10.0 {
        format!("{v:.0}×")
    } else {
        format!("{v:.2}×")
    }
}

fn pct(v: f64) -> String {
    if v.is_finite() {
        format!("{:.0} %", v * 100.0)
    } else {
        "n/a".into()
    }
}

fn table(out: &mut String, head: &[&str], rows: &[Vec<String>]) {
    let _ = writeln!(out, "| {} |", head.join(" | "));
    let _ = writeln!(
        out,
        "|{}",
        head.iter()
            .enumerate()
            .map(|(i, _)| if i == 0 { "---|" } else { "---:|" })
            .collect::<String>()
    );
    for row in rows {
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
    out.push('\n');
}

// ---- sections ------------------------------------------------------------------------------------

fn header(out: &mut String, args: &Args, machine: &str, data: &Data) {
    let reps = data.runs.values().map(Runs::reps).max().unwrap_or(0);
    let _ = writeln!(out, "# libphx benchmarks\n");
    let _ = writeln!(
        out,
        "Generated by `scripts/bench.sh`; do not edit by hand. The exact command line:\n"
    );
    let _ = writeln!(
        out,
        "```sh\n{}\n```\n",
        args.str("command").unwrap_or("scripts/bench.sh")
    );
    if let Some(date) = args.str("date") {
        let _ = writeln!(out, "Run on {date}. ");
    }
    let _ = writeln!(
        out,
        "Every figure is the **median of {reps} run{}** of a fresh client process; the spread \
         column is (max − min) ÷ median over those runs.\n",
        if reps == 1 { "" } else { "s" }
    );
    if let Some(note) = args.str("note") {
        let _ = writeln!(out, "{note}\n");
    }
    let _ = writeln!(out, "## Machine\n\n```text\n{}\n```\n", machine.trim_end());
    out.push_str(METHOD);
}

const METHOD: &str = "\
## What is measured

- **Server**: `phx-bench-server` (`bench/src/bin/server.rs`), a separate process on one thread,
  pinned to CPU 1 (clients are pinned to CPU 0, so a client can use at most one core). It answers
  `phx_join`/`heartbeat` at once, answers every `echo` push with its payload spliced verbatim into
  a pre-built reply, and for `blast` writes N server pushes `[null,null,\"echo:bench\",\"m\",{\"i\":K}]`
  that were encoded as WebSocket wire bytes before the run. Its CPU time during each measured phase
  is read from `/proc/PID/stat` by the client (\"server busy\" = server CPU ÷ wall time; near 100 %
  means the server, not the client, set the pace).
- **Clients**, each a fresh process per run:
  - *floor*: raw tokio-tungstenite (same WebSocket buffer settings as libphx), no channel logic:
    sends pre-encoded frames and tells pushes from replies by their first bytes. It is the cost of
    TCP + WebSocket alone, the lower bound for any Phoenix client in Rust.
  - *libphx Rust engine*: `phx::engine` as an application uses it (`Socket::new_shared`, a
    `ChannelHandler` counting messages, `OnReply` closures; each completion pushes the next request).
  - *libphx C ABI*: `bench/c/phx_bench.c` against `include/phx.h` and `libphx.so`; *callbacks*
    (channel handler and `phx_reply_cb`, next push issued inside the callback), *event queue*
    (`phx_socket_events_enable`; the main thread takes every event with `phx_socket_next_event`,
    frees it and pushes with `phx_channel_push_tagged`) and *event queue, batched take* (the
    same, taking up to 256 events per call with `phx_socket_next_events`).
  - *phoenix.js*: the official client, npm `phoenix@1.8.16` over `ws@8.23.0` on Node.
  - *phoenix_channels_client 0.1.2*: the crates.io crate (`bench/peers/pcc`, its own cargo
    project): a handler registered with `Channel::on` counts pushes, `send_with_timeout` from
    1,000 tasks makes the request/response window. It passes server pushes to a channel through
    a bounded broadcast queue (50 entries) that drops what its listener has not taken yet, so in
    *receive* it waits for the blast's reply (which the server writes after the last push) and
    then until no push arrived for 200 ms, and reports what it delivered.
  - *phoenix_channels_client 0.9.1*: the crate's later, larger API (`bench/peers/pcc09`, its own
    cargo project): `Socket::spawn` + `connect`, `Socket::channel` + `Channel::join`; a task
    reading `Channel::events()` counts pushes, `Channel::call` from 1,000 tasks makes the
    request/response window. Its events stream is a bounded broadcast queue (10 entries) that
    skips what the reader has not taken; *receive* ends as for 0.1.2.
- **Scenarios** (one socket, one channel `echo:bench`, unless stated):
  1. *receive*: the server blasts N pushes; the count is messages delivered to the application
     callback (or taken from the event queue).
  2. *request/response*: N pushes with replies, at most W unanswered (pipelined), each reply
     sends the next push.
  3. *latency*: one push at a time, N round trips, push call to reply callback.
  4. *memory*: S sockets, each connected and joined to one channel; the client's `VmRSS`
     (`/proc/self/status`) after minus before, divided by S (10 sockets are opened first so that
     runtime start-up is not counted; phoenix.js runs with `--expose-gc` and collects first).
     Every client opens its S sockets at once and waits for every join; the C client does so
     with callbacks (`phx_socket_connect`, `phx_channel_join`), the event-queue modes have no
     memory scenario.
- **Delivered / sent**: every client reports the messages it delivered to the application (in
  request/response: replies with status ok) beside the messages the server or the client sent.
  A client that delivered fewer is marked and its ratios are left out of the comparison.
- **Instructions and allocations per message** (callgrind, `scripts/bench-instr.sh`): user-space
  instructions and `malloc`/`calloc` calls of the whole client process, from two runs of each
  client (N and N/10) so that start-up cancels out. Valgrind runs a process's threads one at a
  time, so these counts do not depend on the machine's load or the scheduler; they are the
  figures to compare across runs and commits. They depend on the compiler and the libraries'
  versions.
- **Context switches** are the client process's voluntary and involuntary context switches
  (`getrusage` `ru_nvcsw` + `ru_nivcsw`, every thread; `process.resourceUsage()` in Node) over the
  measured phase, per message delivered (per socket in *memory*). Each is a thread going to sleep
  or being preempted, so it counts the wake-ups between the client's threads and the runtime.
  Pinned to one CPU, every hand-off between two threads is a context switch.
- **Times** cover the measured phase only (connecting, joining and a warm-up of N/10, capped,
  are excluded). *Client CPU* is user + system time of the whole client process (all threads;
  `getrusage`, `process.cpuUsage()`), so it includes the kernel's TCP work done on the client's
  behalf, which on loopback includes delivering the segments to the server's socket.
- **Ratios**: *cost × floor* is CPU per message divided by the floor's (1.00× = as cheap as a raw
  WebSocket; lower is better). *phoenix.js ÷ this* is phoenix.js's CPU per message divided by this
  client's (above 1 = this client is cheaper by that factor). Messages per CPU-second is the
  \"per core\" figure: how many messages one fully busy core would handle at this cost.

";

/// One line on how much CPU other processes used during a scenario's runs.
fn interference(out: &mut String, data: &Data, scenario: &str) {
    let (mut other, mut wall, mut steal, mut worst) = (0.0, 0.0, 0.0, 0.0f64);
    for (_, _, runs) in data.clients(scenario) {
        for r in &runs.0 {
            let get = |k: &str| r.get(k).and_then(|v| v.parse::<f64>().ok());
            if let (Some(o), Some(w)) = (get("other_cpu_s"), get("process_wall_s")) {
                other += o;
                wall += w;
                steal += get("steal_s").unwrap_or(0.0);
                if w > 0.0 {
                    worst = worst.max(o / w);
                }
            }
        }
    }
    if wall > 0.0 {
        let avg = other / wall;
        let _ = writeln!(
            out,
            "Interference: while these clients ran ({:.1} s in all), the rest of the machine \
             (other processes, kernel threads, interrupts) used {:.1} % of one CPU on average \
             (worst run {:.1} %); the hypervisor stole {:.2} s.{}\n",
            wall,
            avg * 100.0,
            worst * 100.0,
            steal,
            if avg > 0.15 || worst > 0.5 {
                " **The machine was not quiet: treat this table with caution.**"
            } else {
                ""
            }
        );
    }
}

/// The name column: marked when the client dropped messages.
fn client_name(name: &str, drops: bool) -> String {
    if drops {
        format!("{name} ⚠ **drops messages**")
    } else {
        name.to_string()
    }
}

const NOT_COMPARABLE: &str = "— (dropped)";

fn throughput_rows(data: &Data, scenario: &str) -> Vec<Vec<String>> {
    let per_msg = |r: &Runs| r.m("cpu_s") / r.m("count");
    let complete = |r: &&Runs| !r.drops();
    let floor = data.get(scenario, "floor").filter(complete).map(per_msg);
    let js = data
        .get(scenario, "phoenix-js")
        .filter(complete)
        .map(per_msg);
    let instr_floor = data
        .instr(scenario, "floor")
        .filter(|i| !i.drops())
        .map(|i| i.ir);
    data.clients(scenario)
        .into_iter()
        .map(|(id, name, r)| {
            let (count, wall, cpu) = (r.m("count"), r.m("wall_s"), r.m("cpu_s"));
            let cost = cpu / count;
            let drops = r.drops();
            let vs_js = if drops {
                NOT_COMPARABLE.into()
            } else if LIBPHX.contains(&id) {
                js.map_or("n/a".into(), |j| ratio(j / cost))
            } else {
                "—".into()
            };
            let errors = r.m("errors");
            let mut name = client_name(name, drops);
            if errors > 0.0 {
                let _ = write!(name, " ({} errors)", int(errors));
            }
            let instr = data.instr(scenario, id);
            let instr_drops = instr.is_some_and(Instr::drops);
            vec![
                name,
                delivery_cell(r.delivery()),
                fixed(wall, 3),
                int(count / wall),
                fixed(cost * 1e6, 3),
                int(count / cpu),
                if drops {
                    NOT_COMPARABLE.into()
                } else {
                    floor.map_or("n/a".into(), |f| ratio(cost / f))
                },
                instr.map_or("n/a".into(), |i| {
                    format!("{}{}", int(i.ir), if instr_drops { " ⚠" } else { "" })
                }),
                match (instr, instr_floor) {
                    (Some(i), Some(f)) if !instr_drops => ratio(i.ir / f),
                    (Some(_), _) if instr_drops => NOT_COMPARABLE.into(),
                    _ => "n/a".into(),
                },
                // Tiny negative differences are noise between the two runs.
                instr.map_or("n/a".into(), |i| fixed(i.allocs.max(0.0), 2)),
                small(r.csw_per()),
                vs_js,
                pct(r.m("server_cpu_s") / wall),
                r.spread("cpu_s"),
            ]
        })
        .collect()
}

const THROUGHPUT_HEAD: &[&str] = &[
    "client",
    "delivered / sent",
    "wall (s)",
    "msgs/s (wall)",
    "CPU µs/msg",
    "msgs per CPU-s",
    "CPU × floor",
    "instructions/msg",
    "instructions × floor",
    "allocations/msg",
    "context switches/msg",
    "phoenix.js ÷ this (CPU)",
    "server busy",
    "CPU spread",
];

/// The note under a throughput table: where the instruction counts come from, and drops.
fn throughput_note(out: &mut String, data: &Data, scenario: &str) {
    if let Some(n) = &data.instr_n {
        let _ = writeln!(
            out,
            "Instructions and allocations per message: callgrind, user space, whole client \
             process (libphx.so included), the difference between a run of N = {} and one of \
             N/10 divided by the difference in messages, so start-up and joining cancel out \
             (`scripts/bench-instr.sh`); phoenix.js is not counted (a JIT under valgrind says \
             little). These counts do not depend on the machine's load.\n",
            int(n.parse().unwrap_or(f64::NAN))
        );
    }
    let dropped: Vec<&str> = data
        .clients(scenario)
        .into_iter()
        .filter(|(id, _, r)| r.drops() || data.instr(scenario, id).is_some_and(Instr::drops))
        .map(|(_, name, _)| name)
        .collect();
    if !dropped.is_empty() {
        let _ = writeln!(
            out,
            "**Dropped messages**: {} delivered fewer messages than were sent (see *delivered \
             / sent*, the worst run; a ⚠ beside the instructions: it dropped in the callgrind \
             runs). Its CPU and context-switch figures are per message *delivered*, its \
             instruction and allocation counts per message *sent*, and its ratios are left out: it did not do the work the \
             others did, so no ratio would be fair.\n",
            dropped.join(", ")
        );
    }
}

fn count_of(data: &Data, scenario: &str) -> String {
    data.get(scenario, "floor")
        .or_else(|| data.clients(scenario).first().map(|c| c.2))
        .map_or("?".into(), |r| int(r.m("count")))
}

fn receive(out: &mut String, data: &Data) {
    if data.clients("recv").is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "## 1. Receive throughput ({} server pushes `{{\"i\":N}}`, one socket)\n",
        count_of(data, "recv")
    );
    table(out, THROUGHPUT_HEAD, &throughput_rows(data, "recv"));
    throughput_note(out, data, "recv");
    interference(out, data, "recv");
}

fn reqresp(out: &mut String, data: &Data) {
    let clients = data.clients("reqresp");
    let Some(first) = clients.first() else {
        return;
    };
    let _ = writeln!(
        out,
        "## 2. Request/response ({} pushes with replies, window of {} in flight)\n",
        count_of(data, "reqresp"),
        int(first.2.m("window"))
    );
    table(out, THROUGHPUT_HEAD, &throughput_rows(data, "reqresp"));
    throughput_note(out, data, "reqresp");
    interference(out, data, "reqresp");
}

fn latency(out: &mut String, data: &Data) {
    if data.clients("latency").is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "## 3. Latency ({} sequential round trips, µs)\n",
        count_of(data, "latency")
    );
    let per_rt = |r: &Runs| r.m("cpu_s") / r.m("count");
    let floor = data.get("latency", "floor");
    let floor_p50 = floor.map(|f| f.m("p50_us"));
    let floor_cost = floor.map(per_rt);
    let js_cost = data.get("latency", "phoenix-js").map(per_rt);
    let rows: Vec<Vec<String>> = data
        .clients("latency")
        .into_iter()
        .map(|(id, name, r)| {
            let cost = per_rt(r);
            vec![
                name.to_string(),
                fixed(r.m("p50_us"), 1),
                fixed(r.m("p99_us"), 1),
                fixed(r.m("mean_us"), 1),
                floor_p50.map_or("n/a".into(), |f| format!("{:+.1}", r.m("p50_us") - f)),
                fixed(cost * 1e6, 2),
                floor_cost.map_or("n/a".into(), |f| ratio(cost / f)),
                if LIBPHX.contains(&id) {
                    js_cost.map_or("n/a".into(), |j| ratio(j / cost))
                } else {
                    "—".into()
                },
                r.spread("p50_us"),
            ]
        })
        .collect();
    table(
        out,
        &[
            "client",
            "p50",
            "p99",
            "mean",
            "p50 − floor p50",
            "client CPU µs per round trip",
            "cost × floor",
            "phoenix.js ÷ this",
            "p50 spread",
        ],
        &rows,
    );
    interference(out, data, "latency");
}

fn memory(out: &mut String, data: &Data) {
    let clients = data.clients("memory");
    if clients.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "## 4. Memory per socket ({} sockets, each joined to one channel)\n",
        count_of(data, "memory")
    );
    let floor = data.get("memory", "floor").map(|r| r.m("kib_per_socket"));
    let js = data
        .get("memory", "phoenix-js")
        .map(|r| r.m("kib_per_socket"));
    let rows: Vec<Vec<String>> = clients
        .into_iter()
        .map(|(id, name, r)| {
            let kib = r.m("kib_per_socket");
            vec![
                name.to_string(),
                fixed(kib, 1),
                floor.map_or("n/a".into(), |f| ratio(kib / f)),
                floor.map_or("n/a".into(), |f| format!("{:+.1}", kib - f)),
                if LIBPHX.contains(&id) {
                    js.map_or("n/a".into(), |j| ratio(j / kib))
                } else {
                    "—".into()
                },
                int(r.m("rss_before_kib")),
                int(r.m("rss_after_kib")),
                fixed(r.m("wall_s"), 3),
                fixed(r.m("cpu_s"), 3),
                small(r.csw_per()),
                r.spread("kib_per_socket"),
            ]
        })
        .collect();
    table(
        out,
        &[
            "client",
            "KiB per socket",
            "× floor",
            "KiB above floor",
            "phoenix.js ÷ this",
            "RSS before (KiB)",
            "RSS after (KiB)",
            "connect + join wall (s)",
            "client CPU (s)",
            "context switches per socket",
            "spread",
        ],
        &rows,
    );
    interference(out, data, "memory");
}

fn reading(out: &mut String, svg: Option<&str>) {
    if let Some(svg) = svg {
        let file = svg.rsplit('/').next().unwrap_or(svg);
        let _ = writeln!(
            out,
            "## Chart\n\n![CPU and instructions per message, as ratios to the floor]({file})\n\n\
             Ratios to the floor (raw tokio-tungstenite) on a logarithmic scale; lower is better. \
             Clients that dropped messages are drawn hatched and left out of the ratio.\n"
        );
    }
    out.push_str(READING);
}

fn appendix(out: &mut String, data: &Data) {
    let _ = writeln!(
        out,
        "\n## Every run\n\nThe raw result lines the tables were computed from, in the order \
         they ran (`process_wall_s`: the whole client process, start-up included; `other_cpu_s`, \
         `steal_s`: see *Interference*).\n\n<details><summary>{} runs</summary>\n\n```text",
        data.raw.len()
    );
    for line in &data.raw {
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(out, "```\n\n</details>");
}

const READING: &str = "\
## Reading these numbers

- **Ratios are the result; absolute numbers belong to this machine.** Every run shares one small
  virtual machine. Another machine, or the same one on another day, shifts every absolute
  figure; ratios measured in the same run shift much less. Compare ratios, not msgs/s across
  runs.
- **CPU per message is the robust figure, wall time is not.** Wall time is set by whichever side
  is slower. Where *server busy* is near 100 % the server set the pace (the floor's
  request/response run is such a case: the server's decoding costs more than the floor's
  byte check), and that row's wall-time throughput says nothing about the client. Client CPU
  is not affected by this.
- **The floor is a bound, not a competitor.** It parses no JSON, matches no replies to refs, arms
  no timers and delivers nothing to application code, so no real client reaches it. The gap to
  the floor is the price of the protocol work plus the client's design.
- **Loopback moves TCP receive work onto the sender.** On loopback a `send()` also runs the
  receiving socket's TCP input processing in the sender's context, and that time is charged to
  the sender. A client that makes more `send()` calls therefore looks costlier than it would
  against a remote server. A real network also adds latency that these numbers do not contain.
- **Latency here is mostly wake-up time.** Client and server sit on different cores and sleep in
  `epoll_wait` between messages, so each round trip contains two cross-core wake-ups on a
  virtualised CPU, and most client CPU per round trip is kernel time. Differences of a few µs
  between clients are within the noise (see the spread); p99 is sensitive to anything else
  running.
- **phoenix.js** is measured as it ships. Its request/response cost grows with the window: each
  push registers a reply binding on the channel, and every incoming frame filters the channel's
  whole binding list, so with 1,000 pushes in flight every reply scans about 1,000 bindings.
- **Noise**: the spread column shows how far apart the repetitions were; differences smaller than
  the spread are not results. The shortest runs (the floor's) have the largest relative spread.
  Each table's *Interference* line says how busy the rest of the machine was. The script repeats
  a run when other processes used more than `--max-other` % of one CPU during it.
- **Memory** is resident memory growth: it includes allocator slack and the pages the kernel
  maps, not only live objects. It is an average over many sockets, not an object size.
";

#[path = "report/chart.rs"]
mod chart;
