//! The soak: `phx-soak --server PATH --proxy PATH` (run by `scripts/soak.sh`).
//!
//! Ten sockets through the C API (`phx_socket_*`, event queues on), each with ten channels
//! (100 channels on 50 topics, every topic joined by two sockets), compressed schedules
//! (heartbeat 100 ms), steady echo pushes and broadcasts, and a network fault through the TCP
//! fault proxy every few seconds. One socket's event-queue consumer stalls for a while. Every
//! minute it prints the process's RSS, open descriptors and threads. It passes when, at the
//! end, RSS is less than 5 % above the figure after the first minute and descriptors and
//! threads have not grown. Every figure is taken with every socket connected and every channel
//! joined, after `malloc_trim(0)` (glibc) so the allocator's retention of freed pages is not
//! mistaken for growth; the raw RSS and the heap in use (`mallinfo2`) are printed beside it.
//!
//! Environment: `SOAK_SECS` (600), `SOAK_FAULT_SECS` (4), `SOAK_REPORT_SECS` (60).

use phx::ffi::*;
use std::ffi::{c_void, CString};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SOCKETS: usize = 10;
const CHANNELS: usize = 10;
const QUEUE_CAPACITY: usize = 256;

static PUSH_OK: AtomicU64 = AtomicU64::new(0);
static PUSH_OTHER: AtomicU64 = AtomicU64::new(0);
static EVENTS: AtomicU64 = AtomicU64::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);
static FAULTS: AtomicU64 = AtomicU64::new(0);

fn env_secs(name: &str, default: u64) -> Duration {
    Duration::from_secs(
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
    )
}

/// A child process that exits when its stdin closes (`--exit-on-stdin-eof`).
struct Helper {
    child: Child,
    _stdin: ChildStdin,
    lines: Vec<String>,
}

fn helper(path: &str, args: &[&str], lines: usize) -> Helper {
    let mut child = Command::new(path)
        .args(args)
        .arg("--exit-on-stdin-eof")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {path}: {e}"));
    let stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let lines = (0..lines)
        .map(|_| {
            let mut l = String::new();
            out.read_line(&mut l).unwrap();
            l.trim().to_owned()
        })
        .collect();
    Helper {
        child,
        _stdin: stdin,
        lines,
    }
}

/// One GET to the proxy's control port.
fn control(base: &str, path: &str) {
    let addr = base.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).expect("proxy control port");
    write!(s, "GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 200"), "{path}: {out}");
}

#[derive(Clone, Copy)]
struct Usage {
    /// RSS as it is.
    raw_rss_kib: u64,
    /// RSS once the allocator has given its free pages back (`malloc_trim`): what the
    /// process holds, without the allocator's retention.
    rss_kib: u64,
    /// Bytes the allocator has handed out and not got back (`mallinfo2`).
    heap_kib: u64,
    fds: usize,
    threads: u64,
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_and_heap_kib() -> u64 {
    // SAFETY: plain glibc calls without pointers.
    unsafe {
        libc::malloc_trim(0);
        let m = libc::mallinfo2();
        ((m.uordblks + m.hblkhd) / 1024) as u64
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_and_heap_kib() -> u64 {
    0
}

fn usage() -> Usage {
    let raw_rss_kib = rss_kib();
    let heap_kib = trim_and_heap_kib();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    Usage {
        raw_rss_kib,
        rss_kib: rss_kib(),
        heap_kib,
        fds: std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count()),
        threads: field("Threads:"),
    }
}

unsafe extern "C" fn on_push(_ud: *mut c_void, status: u32, _reply: *const phx_reply_t) {
    if status == 0 {
        PUSH_OK.fetch_add(1, Ordering::Relaxed);
    } else {
        PUSH_OTHER.fetch_add(1, Ordering::Relaxed);
    }
}

struct Sock(*mut phx_socket_t);
struct Chan(*mut phx_channel_t);
// The C API is thread-safe: handles may be used from any thread.
unsafe impl Send for Sock {}
unsafe impl Sync for Sock {}
unsafe impl Send for Chan {}
unsafe impl Sync for Chan {}

fn ok(s: phx_status_t, what: &str) {
    assert!(s == phx_status_t::PHX_OK, "{what}: {s:?}");
}

fn all_joined(sockets: &[Arc<Sock>], chans: &[Chan]) -> bool {
    let mut st = 0u32;
    sockets.iter().all(|s| {
        ok(unsafe { phx_socket_state(s.0, &mut st) }, "state");
        st == phx_socket_state_t::PHX_SOCKET_CONNECTED as u32
    }) && chans.iter().all(|c| {
        ok(unsafe { phx_channel_state(c.0, &mut st) }, "state");
        st == phx_channel_state_t::PHX_CHANNEL_JOINED as u32
    })
}

fn main() {
    let mut server_bin = String::from("target/release/phx-testserver");
    let mut proxy_bin = String::from("target/release/phx-proxy");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--server" => server_bin = args.next().expect("--server PATH"),
            "--proxy" => proxy_bin = args.next().expect("--proxy PATH"),
            _ => panic!("usage: phx-soak [--server PATH] [--proxy PATH]"),
        }
    }
    let total = env_secs("SOAK_SECS", 600);
    let fault_every = env_secs("SOAK_FAULT_SECS", 4);
    let report_every = env_secs("SOAK_REPORT_SECS", 60);
    // The stalled consumer: from 20 % to 40 % of the run.
    let stall = (total / 5, total * 2 / 5);

    let server = helper(&server_bin, &["--port", "0"], 1);
    let upstream = server.lines[0]
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let proxy = helper(&proxy_bin, &["--upstream", &upstream], 2);
    let url = CString::new(format!("ws://{}/socket/websocket", proxy.lines[0])).unwrap();
    let control_base = proxy.lines[1].clone();
    println!(
        "soak: {}s, a fault every {}s, stalled consumer {}s..{}s; server {}, proxy {}",
        total.as_secs(),
        fault_every.as_secs(),
        stall.0.as_secs(),
        stall.1.as_secs(),
        server.lines[0],
        proxy.lines[0]
    );

    let stop = Arc::new(AtomicBool::new(false));
    let stalled = Arc::new(AtomicBool::new(false));
    let mut sockets = Vec::new();
    let mut chans = Vec::new();
    let mut consumers = Vec::new();
    unsafe {
        let opts = phx_options_new();
        ok(phx_options_set_heartbeat_ms(opts, 100), "heartbeat");
        let sched = [20u64, 50, 100, 200, 500];
        ok(
            phx_options_set_reconnect_schedule_ms(opts, sched.as_ptr(), sched.len()),
            "reconnect",
        );
        ok(
            phx_options_set_rejoin_schedule_ms(opts, sched.as_ptr(), sched.len()),
            "rejoin",
        );
        ok(phx_options_set_timeout_ms(opts, 5000), "timeout");
        let params = CString::new(r#"{"token":"soak"}"#).unwrap();
        ok(phx_options_set_params_json(opts, params.as_ptr()), "params");
        for s in 0..SOCKETS {
            let mut sock = std::ptr::null_mut();
            ok(phx_socket_new(url.as_ptr(), opts, &mut sock), "socket");
            ok(
                phx_socket_events_enable(sock, QUEUE_CAPACITY, None, std::ptr::null_mut(), None),
                "events",
            );
            ok(phx_socket_connect(sock), "connect");
            let sock = Arc::new(Sock(sock));
            for c in 0..CHANNELS {
                let topic = CString::new(format!("room:soak{}", (s / 2) * CHANNELS + c)).unwrap();
                let mut ch = std::ptr::null_mut();
                ok(
                    phx_socket_channel(sock.0, topic.as_ptr(), &mut ch),
                    "channel",
                );
                let payload = CString::new("{}").unwrap();
                ok(
                    phx_channel_join(ch, payload.as_ptr(), 0, None, std::ptr::null_mut()),
                    "join",
                );
                chans.push(Chan(ch));
            }
            let (sock2, stop2, stalled2) = (sock.clone(), stop.clone(), stalled.clone());
            let is_stalled = s == 0;
            consumers.push(std::thread::spawn(move || {
                while !stop2.load(Ordering::Relaxed) {
                    if is_stalled && stalled2.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                    let mut ev = std::ptr::null_mut();
                    if phx_socket_next_event(sock2.0, 100, &mut ev) == phx_status_t::PHX_OK {
                        EVENTS.fetch_add(1, Ordering::Relaxed);
                        if (*ev).kind == phx_event_kind_t::PHX_EVENT_OVERFLOW as u32 {
                            DROPPED.fetch_add((*ev).dropped, Ordering::Relaxed);
                        }
                        phx_event_free(ev);
                    }
                }
            }));
            sockets.push(sock);
        }
        phx_options_free(opts);
    }

    let wait_joined = |what: &str| {
        let t = Instant::now();
        while !all_joined(&sockets, &chans) {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "{what}: not every channel joined within 60 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_joined("start");

    let faults: [(&str, &str, u64); 6] = [
        ("/reset", "", 0),
        ("/half_open?on=1", "/half_open?on=0", 1000),
        ("/close_after?bytes=3000", "/close_after", 1000),
        ("/slow_reader?on=1", "/slow_reader?on=0", 1000),
        ("/latency?ms=50&jitter_ms=30", "/latency?ms=0", 2000),
        (
            "/bandwidth?bytes_per_sec=50000",
            "/bandwidth?bytes_per_sec=0",
            2000,
        ),
    ];
    // Faults on their own thread, so holding one does not pause the load. Paused (and every
    // fault cleared) while a measurement is taken.
    let pause_faults = Arc::new(AtomicBool::new(false));
    let fault_thread = {
        let (stop, pause, base) = (stop.clone(), pause_faults.clone(), control_base.clone());
        std::thread::spawn(move || {
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(fault_every);
                if pause.load(Ordering::Relaxed) || stop.load(Ordering::Relaxed) {
                    continue;
                }
                let (on, off, hold) = faults[n % faults.len()];
                n += 1;
                FAULTS.fetch_add(1, Ordering::Relaxed);
                control(&base, on);
                if hold > 0 {
                    std::thread::sleep(Duration::from_millis(hold));
                    control(&base, off);
                }
            }
        })
    };
    let echo = CString::new("echo").unwrap();
    let new_msg = CString::new("new_msg").unwrap();
    let payload = CString::new(r#"{"body":"soak soak soak soak soak soak"}"#).unwrap();
    let start = Instant::now();
    let mut next_report = start + report_every;
    let mut baseline: Option<Usage> = None;
    let mut tick = 0u64;
    println!("   min    RSS KiB  (raw)  heap KiB   fds  threads   pushes ok / other    events  dropped  faults chans  held  room");
    loop {
        let now = start.elapsed();
        stalled.store(now >= stall.0 && now < stall.1, Ordering::Relaxed);
        // Steady load: an echo on every channel each 100 ms, a broadcast on every fourth.
        for (i, ch) in chans.iter().enumerate() {
            let event = if (tick + i as u64) % 4 == 0 {
                &new_msg
            } else {
                &echo
            };
            unsafe {
                // State errors (a channel between attempts) are fine: skip.
                phx_channel_push(
                    ch.0,
                    event.as_ptr(),
                    payload.as_ptr(),
                    0,
                    Some(on_push),
                    std::ptr::null_mut(),
                );
            }
        }
        tick += 1;
        let last = now >= total;
        if Instant::now() >= next_report || last {
            {
                // Every figure is taken with no fault under way and every channel joined, so
                // connections in transition do not count.
                pause_faults.store(true, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2500)); // a fault being held ends
                control(&control_base, "/clear");
                wait_joined("measurement");
            }
            let u = usage();
            // What the engines hold: channels, and operations or frames still in their tables.
            let (mut tracked, mut held, mut room) = (0, 0, 0);
            for sock in &sockets {
                let st = unsafe { phx::ffi::testing::engine_stats(sock.0) };
                tracked += st.channels;
                held += st.pending_replies
                    + st.buffered_pushes
                    + st.operation_timers
                    + st.outbox
                    + st.held_presence_diffs;
                room += st.table_capacity;
            }
            println!(
                "{:>6.1} {:>10} {:>6} {:>9} {:>5} {:>8} {:>10} / {:<8} {:>9} {:>8} {:>7} {:>5} {:>5} {:>5}",
                start.elapsed().as_secs_f64() / 60.0,
                u.rss_kib,
                u.raw_rss_kib,
                u.heap_kib,
                u.fds,
                u.threads,
                PUSH_OK.load(Ordering::Relaxed),
                PUSH_OTHER.load(Ordering::Relaxed),
                EVENTS.load(Ordering::Relaxed),
                DROPPED.load(Ordering::Relaxed),
                FAULTS.load(Ordering::Relaxed),
                tracked,
                held,
                room,
            );
            if baseline.is_none() {
                baseline = Some(u);
            }
            pause_faults.store(false, Ordering::Relaxed);
            next_report = Instant::now() + report_every;
            if last {
                let b = baseline.unwrap();
                let growth = (u.rss_kib as f64 / b.rss_kib as f64 - 1.0) * 100.0;
                let raw = (u.raw_rss_kib as f64 / b.raw_rss_kib as f64 - 1.0) * 100.0;
                let heap = (u.heap_kib as f64 / b.heap_kib.max(1) as f64 - 1.0) * 100.0;
                println!(
                    "after the first minute: RSS {} -> {} KiB ({growth:+.2} %; raw {} -> {} KiB, {raw:+.2} %; heap in use {} -> {} KiB, {heap:+.2} %), fds {} -> {}, threads {} -> {}",
                    b.rss_kib, u.rss_kib, b.raw_rss_kib, u.raw_rss_kib, b.heap_kib, u.heap_kib, b.fds, u.fds, b.threads, u.threads
                );
                stop.store(true, Ordering::Relaxed);
                let _ = fault_thread.join();
                for c in consumers {
                    let _ = c.join();
                }
                let pass = growth < 5.0
                    && u.fds <= b.fds
                    && u.threads <= b.threads
                    && tracked == SOCKETS * CHANNELS;
                let ok_pushes = PUSH_OK.load(Ordering::Relaxed);
                println!(
                    "soak {}",
                    if pass && ok_pushes > 0 {
                        "PASSED"
                    } else {
                        "FAILED"
                    }
                );
                unsafe {
                    for c in chans {
                        phx_channel_free(c.0);
                    }
                    for s in &sockets {
                        phx_socket_free(s.0);
                    }
                }
                drop((server.child, proxy.child));
                std::process::exit(if pass && ok_pushes > 0 { 0 } else { 1 });
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
