//! A TCP fault proxy: sits between a client and a server and makes the network misbehave below
//! the application (latency and jitter, a bandwidth cap, abrupt resets, half-open connections,
//! close after N bytes, a proxy that stops reading from the client). See `docs/testserver.md`.
//!
//! One task per proxied connection owns both sockets. Each direction is a reader and a writer
//! joined by a small bounded channel, so when the writer is held up (latency, bandwidth,
//! half-open) the reader stops too and back-pressure reaches the sender through TCP.

use crate::http;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Chunks in flight per direction: small, so a held-up writer stops its reader quickly.
const CHANNEL_CHUNKS: usize = 4;
const CHUNK: usize = 16 * 1024;
/// The bandwidth cap is enforced per slice of this length.
const SLICE: Duration = Duration::from_millis(20);

/// What the control side asks of one connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct ConnFaults {
    /// Forward nothing in either direction (sockets left open).
    half_open: bool,
    /// Do not read from the client.
    slow_reader: bool,
    /// Close both sockets with an RST now.
    reset: bool,
}

struct Conn {
    faults: watch::Sender<ConnFaults>,
    /// Bytes left to forward (both directions together) before the connection is closed;
    /// `u64::MAX`: no limit.
    budget: Arc<AtomicU64>,
}

struct Shared {
    upstream: SocketAddr,
    latency_us: AtomicU64,
    jitter_us: AtomicU64,
    /// Bytes per second per direction; 0: no cap.
    bandwidth: AtomicU64,
    slow_reader: Mutex<bool>,
    conns: Mutex<HashMap<u64, Conn>>,
    next_id: AtomicU64,
    accepted: AtomicU64,
    rng: AtomicU64,
}

/// Counters of a [`Proxy`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Client connections accepted since start.
    pub accepted: u64,
    /// Proxied connections open now.
    pub open: usize,
}

/// A running fault proxy. Dropping it stops the listener and every proxied connection.
pub struct Proxy {
    shared: Arc<Shared>,
    addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl Proxy {
    /// Listens on `127.0.0.1` (a free port) and forwards every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> io::Result<Proxy> {
        Self::start_on("127.0.0.1:0".parse().expect("literal address"), upstream).await
    }

    /// Listens on `listen` and forwards every connection to `upstream`.
    pub async fn start_on(listen: SocketAddr, upstream: SocketAddr) -> io::Result<Proxy> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1;
        let shared = Arc::new(Shared {
            upstream,
            latency_us: AtomicU64::new(0),
            jitter_us: AtomicU64::new(0),
            bandwidth: AtomicU64::new(0),
            slow_reader: Mutex::new(false),
            conns: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            accepted: AtomicU64::new(0),
            rng: AtomicU64::new(seed),
        });
        let task = tokio::spawn(accept_loop(shared.clone(), listener));
        Ok(Proxy {
            shared,
            addr,
            tasks: vec![task],
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `url` (e.g. the test server's `ws://127.0.0.1:PORT/socket/websocket`) with its host and
    /// port replaced by the proxy's.
    pub fn url_for(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").unwrap_or(("ws", url));
        let path = rest.find('/').map_or("", |i| &rest[i..]);
        format!("{scheme}://{}{path}", self.addr)
    }

    /// Serves the HTTP control endpoints (`/latency`, `/bandwidth`, ... as in
    /// `docs/testserver.md`) on `listen`; returns the address bound.
    pub async fn serve_controls(&mut self, listen: SocketAddr) -> io::Result<SocketAddr> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let controls = self.controls();
        self.tasks
            .push(tokio::spawn(control_loop(controls, listener)));
        Ok(addr)
    }

    /// The fault controls, cloneable and usable from any thread.
    pub fn controls(&self) -> ProxyControls {
        ProxyControls {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        // Connection tasks end once their control sender is gone.
        self.shared.conns.lock().unwrap().clear();
    }
}

/// The faults of a [`Proxy`]. Each takes effect when the call returns.
#[derive(Clone)]
pub struct ProxyControls {
    shared: Arc<Shared>,
}

impl ProxyControls {
    /// Every chunk is forwarded `latency` plus a random `0..=jitter` after it was read, never
    /// before the chunk read before it (order is kept). Zero both to turn it off. Applies to
    /// chunks read from now on.
    pub fn set_latency(&self, latency: Duration, jitter: Duration) {
        let s = &self.shared;
        s.latency_us
            .store(latency.as_micros() as u64, Ordering::Relaxed);
        s.jitter_us
            .store(jitter.as_micros() as u64, Ordering::Relaxed);
    }

    /// Caps each direction of each connection at `bytes_per_sec` (`None`: no cap).
    pub fn set_bandwidth(&self, bytes_per_sec: Option<u64>) {
        self.shared
            .bandwidth
            .store(bytes_per_sec.unwrap_or(0), Ordering::Relaxed);
    }

    /// Resets every open connection abruptly: both sockets are closed with zero linger, so
    /// each peer gets an RST, not a FIN. Returns how many were reset.
    pub fn reset_all(&self) -> usize {
        let conns = self.shared.conns.lock().unwrap();
        for c in conns.values() {
            c.faults.send_modify(|f| f.reset = true);
        }
        conns.len()
    }

    /// Half-open: the connections open now stop forwarding in both directions, their sockets
    /// left open (what a silent network partition looks like). Connections made later are not
    /// affected. `false` resumes forwarding on every connection, with nothing lost.
    pub fn set_half_open(&self, on: bool) -> usize {
        let conns = self.shared.conns.lock().unwrap();
        for c in conns.values() {
            c.faults.send_modify(|f| f.half_open = on);
        }
        conns.len()
    }

    /// Each connection open now is closed (FIN on both sides) once `bytes` more bytes have
    /// been forwarded on it, both directions counted; the chunk that crosses the limit is cut
    /// at it. `None` lifts the limit on the connections still open.
    pub fn close_after(&self, bytes: Option<u64>) -> usize {
        let conns = self.shared.conns.lock().unwrap();
        for c in conns.values() {
            c.budget.store(bytes.unwrap_or(u64::MAX), Ordering::Relaxed);
            // Wake the connection so a zero budget closes it without waiting for traffic.
            c.faults.send_modify(|_| {});
        }
        conns.len()
    }

    /// Slow reader: the proxy stops reading from the client on every connection, existing and
    /// new (the client's writes back up in its kernel buffers and then stall); the server's
    /// bytes still reach the client. `false` resumes reading.
    pub fn set_slow_reader(&self, on: bool) {
        let mut slow = self.shared.slow_reader.lock().unwrap();
        *slow = on;
        for c in self.shared.conns.lock().unwrap().values() {
            c.faults.send_modify(|f| f.slow_reader = on);
        }
    }

    /// Clears every fault: no latency, no cap, no half-open, no slow reader, no byte limit.
    pub fn clear(&self) {
        self.set_latency(Duration::ZERO, Duration::ZERO);
        self.set_bandwidth(None);
        self.set_slow_reader(false);
        self.set_half_open(false);
        self.close_after(None);
    }

    pub fn stats(&self) -> ProxyStats {
        ProxyStats {
            accepted: self.shared.accepted.load(Ordering::Relaxed),
            open: self.shared.conns.lock().unwrap().len(),
        }
    }
}

impl Shared {
    /// When a chunk read now is due: latency plus jitter (xorshift; no need for quality).
    fn due(&self) -> Instant {
        let latency = self.latency_us.load(Ordering::Relaxed);
        let jitter = self.jitter_us.load(Ordering::Relaxed);
        let extra = if jitter == 0 {
            0
        } else {
            let mut x = self.rng.load(Ordering::Relaxed);
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.rng.store(x, Ordering::Relaxed);
            x % (jitter + 1)
        };
        Instant::now() + Duration::from_micros(latency + extra)
    }
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        shared.accepted.fetch_add(1, Ordering::Relaxed);
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let slow_reader = *shared.slow_reader.lock().unwrap();
        let (tx, rx) = watch::channel(ConnFaults {
            slow_reader,
            ..ConnFaults::default()
        });
        let budget = Arc::new(AtomicU64::new(u64::MAX));
        shared.conns.lock().unwrap().insert(
            id,
            Conn {
                faults: tx,
                budget: budget.clone(),
            },
        );
        let shared = shared.clone();
        tokio::spawn(async move {
            if let Ok(server) = TcpStream::connect(shared.upstream).await {
                proxy_conn(&shared, client, server, rx, budget).await;
            }
            shared.conns.lock().unwrap().remove(&id);
        });
    }
}

/// How a connection ended.
enum End {
    /// Close normally (FIN), e.g. a side closed or the byte limit was reached.
    Close,
    /// Close with an RST.
    Reset,
}

async fn proxy_conn(
    shared: &Shared,
    mut client: TcpStream,
    mut server: TcpStream,
    faults: watch::Receiver<ConnFaults>,
    budget: Arc<AtomicU64>,
) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let end = {
        let (client_r, client_w) = client.split();
        let (server_r, server_w) = server.split();
        let (up_tx, up_rx) = mpsc::channel(CHANNEL_CHUNKS);
        let (down_tx, down_rx) = mpsc::channel(CHANNEL_CHUNKS);
        let mut reset = faults.clone();
        tokio::select! {
            _ = read_side(shared, client_r, up_tx, faults.clone(), true) => End::Close,
            _ = write_side(shared, server_w, up_rx, faults.clone(), &budget) => End::Close,
            _ = read_side(shared, server_r, down_tx, faults.clone(), false) => End::Close,
            _ = write_side(shared, client_w, down_rx, faults.clone(), &budget) => End::Close,
            r = reset.wait_for(|f| f.reset) => match r {
                Ok(_) => End::Reset,
                Err(_) => End::Close, // the proxy was dropped
            },
        }
    };
    if let End::Reset = end {
        // Zero linger: close() sends an RST and discards anything unsent.
        #[allow(deprecated)]
        {
            let _ = client.set_linger(Some(Duration::ZERO));
            let _ = server.set_linger(Some(Duration::ZERO));
        }
    } else {
        let _ = client.shutdown().await;
        let _ = server.shutdown().await;
    }
}

/// Reads chunks from one side and queues them with their due time. Returns at EOF or error.
async fn read_side(
    shared: &Shared,
    mut from: tokio::net::tcp::ReadHalf<'_>,
    to: mpsc::Sender<(Instant, Vec<u8>)>,
    mut faults: watch::Receiver<ConnFaults>,
    from_client: bool,
) {
    loop {
        if faults
            .wait_for(|f| !(f.half_open || (from_client && f.slow_reader)))
            .await
            .is_err()
        {
            return;
        }
        let mut buf = vec![0u8; CHUNK];
        // A fault turned on while waiting for bytes applies to the bytes not yet read.
        let n = tokio::select! {
            r = from.read(&mut buf) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            r = faults.changed() => {
                if r.is_err() { return; }
                continue;
            }
        };
        buf.truncate(n);
        if to.send((shared.due(), buf)).await.is_err() {
            return;
        }
    }
}

/// Writes queued chunks once due, within the bandwidth cap and the byte budget. Returns when
/// the reader is done and everything is written, on error, or when the budget is spent.
async fn write_side(
    shared: &Shared,
    mut to: tokio::net::tcp::WriteHalf<'_>,
    mut from: mpsc::Receiver<(Instant, Vec<u8>)>,
    mut faults: watch::Receiver<ConnFaults>,
    budget: &AtomicU64,
) {
    let mut last_due = Instant::now();
    let mut slice_start = Instant::now();
    let mut slice_sent = 0u64;
    loop {
        // Wake on control changes too, so a zero budget closes an idle connection.
        let chunk = tokio::select! {
            c = from.recv() => c,
            r = faults.changed() => {
                if r.is_err() { return; }
                if budget.load(Ordering::Relaxed) == 0 { return; }
                continue;
            }
        };
        let Some((due, chunk)) = chunk else {
            let _ = to.shutdown().await;
            return;
        };
        last_due = last_due.max(due);
        tokio::time::sleep_until(last_due).await;
        let mut rest: &[u8] = &chunk;
        while !rest.is_empty() {
            if faults.wait_for(|f| !f.half_open).await.is_err() {
                return;
            }
            let mut n = rest.len();
            let cap = shared.bandwidth.load(Ordering::Relaxed);
            if cap > 0 {
                let per_slice = (cap * SLICE.as_millis() as u64 / 1000).max(1);
                if slice_start.elapsed() >= SLICE {
                    slice_start = Instant::now();
                    slice_sent = 0;
                }
                if slice_sent >= per_slice {
                    tokio::time::sleep_until(slice_start + SLICE).await;
                    continue;
                }
                n = n.min((per_slice - slice_sent) as usize);
            }
            let left = budget.load(Ordering::Relaxed);
            if left == 0 {
                return;
            }
            n = n.min(left.min(usize::MAX as u64) as usize);
            if to.write_all(&rest[..n]).await.is_err() {
                return;
            }
            if left != u64::MAX {
                // Another writer may have spent some meanwhile: saturate at zero.
                let _ = budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                    Some(if b == u64::MAX {
                        b
                    } else {
                        b.saturating_sub(n as u64)
                    })
                });
            }
            slice_sent += n as u64;
            rest = &rest[n..];
        }
    }
}

/// Answers the HTTP control endpoints, one request per connection.
async fn control_loop(controls: ProxyControls, listener: TcpListener) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let controls = controls.clone();
        tokio::spawn(async move {
            let Some(req) = http::read_request(&mut stream).await else {
                return;
            };
            let (status, body) = control(&controls, &req);
            let _ = stream
                .write_all(&http::response(
                    status,
                    Some("application/json"),
                    body.as_bytes(),
                ))
                .await;
            let _ = stream.shutdown().await;
        });
    }
}

fn control(c: &ProxyControls, req: &http::Request) -> (u16, String) {
    let num = |name: &str| -> Result<u64, ()> {
        match req.param(name) {
            None => Ok(0),
            Some(v) => v.parse().map_err(|_| ()),
        }
    };
    let on = || match req.param("on") {
        Some("1") | Some("true") => Ok(true),
        Some("0") | Some("false") => Ok(false),
        _ => Err(()),
    };
    let ok = (200, r#"{"ok":true}"#.to_string());
    let bad = (400, r#"{"error":"bad arguments"}"#.to_string());
    match req.path.as_str() {
        "/latency" => match (num("ms"), num("jitter_ms")) {
            (Ok(ms), Ok(j)) => {
                c.set_latency(Duration::from_millis(ms), Duration::from_millis(j));
                ok
            }
            _ => bad,
        },
        "/bandwidth" => match num("bytes_per_sec") {
            Ok(b) => {
                c.set_bandwidth((b > 0).then_some(b));
                ok
            }
            Err(()) => bad,
        },
        "/reset" => (
            200,
            format!(r#"{{"ok":true,"connections":{}}}"#, c.reset_all()),
        ),
        "/half_open" => match on() {
            Ok(v) => (
                200,
                format!(r#"{{"ok":true,"connections":{}}}"#, c.set_half_open(v)),
            ),
            Err(()) => bad,
        },
        "/close_after" => match req.param("bytes") {
            None => (
                200,
                format!(r#"{{"ok":true,"connections":{}}}"#, c.close_after(None)),
            ),
            Some(v) => match v.parse() {
                Ok(n) => (
                    200,
                    format!(r#"{{"ok":true,"connections":{}}}"#, c.close_after(Some(n))),
                ),
                Err(_) => bad,
            },
        },
        "/slow_reader" => match on() {
            Ok(v) => {
                c.set_slow_reader(v);
                ok
            }
            Err(()) => bad,
        },
        "/clear" => {
            c.clear();
            ok
        }
        "/stats" => {
            let s = c.stats();
            (
                200,
                format!(r#"{{"accepted":{},"open":{}}}"#, s.accepted, s.open),
            )
        }
        _ => (404, r#"{"error":"unknown control"}"#.to_string()),
    }
}
