//! phx-testserver: a local server that speaks Phoenix Channels exactly as a Phoenix 1.7 server
//! running the test application does (`tests/fixtures/test-app.md`), with fault controls.
//! With [`Config::tls`] it serves `wss://` behind a self-signed certificate
//! ([`TestServer::cert_pem`]). See `docs/testserver.md`.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let server = phx_testserver::TestServer::start(phx_testserver::Config::default()).await?;
//! let url = server.url(); // ws://127.0.0.1:PORT/socket/websocket
//! server.controls().drop_all();
//! let (client_io, _task) = server.connect_in_memory();
//! # drop((url, client_io)); Ok(()) }
//! ```

mod conn;
mod http;
mod json;
mod proxy;
mod state;
mod tls;

pub use json::Json;
pub use proxy::{Proxy, ProxyControls, ProxyStats};

use state::Shared;
use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::DuplexStream;
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;

/// Server settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address or host name to listen on (default `127.0.0.1`).
    pub host: String,
    /// Port to listen on; 0 (the default) picks a free one.
    pub port: u16,
    /// A WebSocket that receives nothing for this long is closed with 1002 (default 60 s).
    pub idle_timeout: Duration,
    /// Serve TLS (`wss://`, and `https://` for the controls) instead of plain TCP, with a
    /// self-signed certificate made at startup for `localhost`, `127.0.0.1`, `::1` and `host`
    /// (see [`TestServer::cert_pem`]). Default off.
    pub tls: bool,
    /// Mount the socket with `auth_token: true`, as Phoenix 1.8 does (`--auth-token`): the
    /// token is read from a `base64url.bearer.phx.` subprotocol, and `phoenix` is selected
    /// when requested (any other subprotocol list: HTTP 403). Default off: Phoenix 1.7's
    /// behaviour, no subprotocol ever selected.
    pub auth_token: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            host: "127.0.0.1".into(),
            port: 0,
            idle_timeout: Duration::from_secs(60),
            tls: false,
            auth_token: false,
        }
    }
}

/// A running server. Dropping it stops the listener and every connection.
pub struct TestServer {
    shared: Arc<Shared>,
}

impl TestServer {
    /// Binds the listener and starts serving.
    pub async fn start(config: Config) -> io::Result<TestServer> {
        let addr = tokio::net::lookup_host((config.host.as_str(), config.port))
            .await?
            .next()
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "host resolves to nothing")
            })?;
        let tls = match config.tls {
            true => Some(tls::Tls::self_signed(&config.host)?),
            false => None,
        };
        let listener = bind(addr)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(config, addr, tls));
        start_accepting(&shared, listener);
        Ok(TestServer { shared })
    }

    /// `ws://HOST:PORT/socket/websocket` (`wss://` with [`Config::tls`]).
    pub fn url(&self) -> String {
        let scheme = if self.is_tls() { "wss" } else { "ws" };
        format!("{scheme}://{}/socket/websocket", self.shared.addr)
    }

    /// `http://HOST:PORT` (`https://` with [`Config::tls`]): the base of the `/control/...`
    /// endpoints.
    pub fn http_base(&self) -> String {
        let scheme = if self.is_tls() { "https" } else { "http" };
        format!("{scheme}://{}", self.shared.addr)
    }

    /// Whether the server speaks TLS ([`Config::tls`]).
    pub fn is_tls(&self) -> bool {
        self.shared.tls.is_some()
    }

    /// The server's self-signed certificate, PEM (`-----BEGIN CERTIFICATE-----`), when it
    /// speaks TLS: the root a client must trust to connect.
    pub fn cert_pem(&self) -> Option<&str> {
        self.shared.tls.as_ref().map(|t| t.cert_pem.as_str())
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// The fault controls (the same as the `/control/*` endpoints).
    pub fn controls(&self) -> Controls {
        Controls {
            shared: self.shared.clone(),
        }
    }

    /// A new in-memory byte stream into this server. The server side runs the full HTTP
    /// handling (upgrade included), exactly as for a TCP connection. The second value is the
    /// task serving it. While the server is down (restart), the stream is closed at once.
    /// The stream is plain (no TLS) even when the server listens with TLS.
    pub fn connect_in_memory(&self) -> (DuplexStream, JoinHandle<()>) {
        let (client, server) = tokio::io::duplex(64 * 1024);
        if self.shared.is_down() {
            drop(server);
            return (client, tokio::spawn(async {}));
        }
        let task = self.shared.spawn_connection(server);
        (client, task)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shared.shutdown();
    }
}

fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// How long a TLS client may take to complete its handshake.
const TLS_HANDSHAKE: Duration = Duration::from_secs(10);

fn start_accepting(shared: &Arc<Shared>, listener: TcpListener) {
    let s = shared.clone();
    let handle = tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    match &s.tls {
                        Some(tls) => {
                            let accept = tls.acceptor.accept(stream);
                            s.spawn_connection_after(async move {
                                // A client that never finishes its handshake is dropped.
                                match tokio::time::timeout(TLS_HANDSHAKE, accept).await {
                                    Ok(Ok(tls_stream)) => Some(tls_stream),
                                    _ => None,
                                }
                            });
                        }
                        None => {
                            s.spawn_connection(stream);
                        }
                    }
                }
                // Out of file descriptors and the like: back off a little.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    });
    shared.set_accept_task(handle);
}

/// Counters, as `/control/stats` reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Open WebSocket connections.
    pub connections: usize,
    /// Upgrades accepted since the start (or the last restart).
    pub accepted: u64,
    /// `phx_join` frames received, per topic.
    pub joins: BTreeMap<String, u64>,
    /// `phx_leave` frames received, per topic.
    pub leaves: BTreeMap<String, u64>,
    /// Channels currently joined, per topic (topics with none are left out).
    pub joined: BTreeMap<String, u64>,
}

impl Stats {
    /// The JSON `/control/stats` answers with.
    pub fn to_json(&self) -> String {
        let counts = |m: &BTreeMap<String, u64>| {
            Json::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), Json::Int(v.to_string())))
                    .collect(),
            )
        };
        // Written in the documented key order.
        let mut out = format!(
            "{{\"connections\":{},\"accepted\":{},\"joins\":",
            self.connections, self.accepted
        );
        counts(&self.joins).encode_into(&mut out);
        out.push_str(",\"leaves\":");
        counts(&self.leaves).encode_into(&mut out);
        out.push_str(",\"joined\":");
        counts(&self.joined).encode_into(&mut out);
        out.push('}');
        out
    }
}

/// One frame the server received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// The connection it came on (numbered from 1 in upgrade order).
    pub conn: u64,
    pub frame: LogFrame,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogFrame {
    Text(String),
    Binary(Vec<u8>),
}

/// `[{"conn":N,"frame":"..."}, {"conn":N,"binary":"<hex>"}]`
pub fn log_to_json(log: &[LogEntry]) -> String {
    let items = log
        .iter()
        .map(|e| {
            let (k, v) = match &e.frame {
                LogFrame::Text(t) => ("frame", Json::str(t.clone())),
                LogFrame::Binary(b) => ("binary", Json::str(hex(b))),
            };
            Json::object([("conn", Json::Int(e.conn.to_string())), (k, v)])
        })
        .collect();
    Json::Array(items).encode()
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The fault controls of one server (cheap to clone).
#[derive(Clone)]
pub struct Controls {
    shared: Arc<Shared>,
}

impl Controls {
    /// Drops every open WebSocket connection abruptly: TCP closed, no close frame.
    pub fn drop_all(&self) {
        let tasks = {
            let mut hub = self.shared.hub();
            let ids = hub.ws_tasks();
            hub.take_tasks(&ids)
        };
        for t in tasks {
            t.abort();
        }
    }

    /// Closes every open WebSocket connection with `code` and an empty reason.
    pub fn close_all(&self, code: u16) {
        self.shared.hub().close_all(code);
    }

    /// Stops (`true`) or resumes answering heartbeats; everything else still works.
    pub fn set_blackhole(&self, on: bool) {
        self.shared.faults.blackhole.store(on, Ordering::Relaxed);
    }

    /// Stops (`true`) or resumes sending anything at all on existing and new connections;
    /// received frames are read (and logged) but not handled.
    pub fn set_silence(&self, on: bool) {
        self.shared.faults.silence.store(on, Ordering::Relaxed);
    }

    /// Stops (`true`) or resumes reading the client's frames on existing and new connections:
    /// nothing is read from the socket (the bytes stay in the kernel's buffers, so a client's
    /// writes stall once those are full), while everything the server sends still goes out.
    /// The idle timeout is suspended meanwhile and starts over when reading resumes; then the
    /// frames left waiting are handled in order. A stop for one connection
    /// ([`set_stop_reading_for`](Self::set_stop_reading_for)) is separate from this one.
    pub fn set_stop_reading(&self, on: bool) {
        self.shared.set_stop_reading(on);
    }

    /// [`set_stop_reading`](Self::set_stop_reading) for the WebSocket connection numbered
    /// `conn` alone ([`LogEntry::conn`]); it lasts until turned off, [`reset`](Self::reset) or
    /// the end of that connection. Reading stops where either switch is on.
    pub fn set_stop_reading_for(&self, conn: u64, on: bool) {
        self.shared.set_stop_reading_for(conn, on);
    }

    /// Delays every frame the server sends by `delay` (zero turns it off); order is kept.
    pub fn set_delay(&self, delay: Duration) {
        let us = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        self.shared.faults.delay_us.store(us, Ordering::Relaxed);
    }

    /// Answers new upgrades with HTTP `status` for `duration` (`None`: until [`reset`](Self::reset)).
    pub fn refuse(&self, status: u16, duration: Option<Duration>) {
        self.refuse_with(status, duration, None);
    }

    /// [`refuse`](Self::refuse), each refusal carrying `Retry-After: <retry_after>` (seconds)
    /// when given, as a throttling (429) or unavailable (503) server sends it.
    pub fn refuse_with(&self, status: u16, duration: Option<Duration>, retry_after: Option<u64>) {
        let until = duration.map(|d| tokio::time::Instant::now() + d);
        *state::lock(&self.shared.faults.refuse) = Some((status, until, retry_after));
    }

    /// Closes the listener and drops every connection (all server state, counters and log
    /// are lost), waits `down`, then listens again on the same port. Returns once listening.
    pub async fn restart(&self, down: Duration) -> io::Result<()> {
        let _one_at_a_time = self.shared.restart_lock().lock().await;
        self.shared.go_down(None).await;
        tokio::time::sleep(down).await;
        relisten(&self.shared).await
    }

    /// Resolves once the server accepts connections (at once unless a restart is under way).
    pub async fn listening(&self) {
        self.shared.wait_listening().await
    }

    /// Clears every fault (blackhole, silence, stop reading, delay, refuse).
    pub fn reset(&self) {
        self.shared.reset_faults();
    }

    pub fn stats(&self) -> Stats {
        self.shared.hub().stats()
    }

    /// Every frame received since the last [`clear_log`](Self::clear_log), oldest first.
    pub fn log(&self) -> Vec<LogEntry> {
        self.shared.hub().take_log()
    }

    pub fn clear_log(&self) {
        self.shared.hub().clear_log();
    }
}

async fn relisten(shared: &Arc<Shared>) -> io::Result<()> {
    let mut attempts = 0;
    let listener = loop {
        match bind(shared.addr) {
            Ok(l) => break l,
            Err(e) if attempts < 100 => {
                attempts += 1;
                let _ = e;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => return Err(e),
        }
    };
    shared.set_up();
    start_accepting(shared, listener);
    Ok(())
}

/// `/control/<name>`: returns the status and JSON body. `restart` is special-cased by the
/// caller (it must answer before listening again).
pub(crate) fn control(shared: &Arc<Shared>, name: &str, req: &http::Request) -> (u16, String) {
    let controls = Controls {
        shared: shared.clone(),
    };
    let ok = || (200, r#"{"ok":true}"#.to_string());
    let bad = |msg: &str| (400, Json::object([("error", Json::str(msg))]).encode());
    let flag = |name: &str| match req.param(name) {
        Some("1" | "true" | "on") => Some(true),
        Some("0" | "false" | "off") => Some(false),
        _ => None,
    };
    let number = |name: &str| req.param(name).and_then(|v| v.parse::<u64>().ok());
    match name {
        "drop" => {
            controls.drop_all();
            ok()
        }
        "close" => match req.param("code").and_then(|c| c.parse::<u16>().ok()) {
            Some(code) if valid_close_code(code) => {
                controls.close_all(code);
                ok()
            }
            _ => bad("code must be a close code (1000-4999, not 1004-1006 or 1015)"),
        },
        "blackhole" => match flag("on") {
            Some(on) => {
                controls.set_blackhole(on);
                ok()
            }
            None => bad("on must be 1 or 0"),
        },
        "silence" => match flag("on") {
            Some(on) => {
                controls.set_silence(on);
                ok()
            }
            None => bad("on must be 1 or 0"),
        },
        "stop_reading" => match (flag("on"), req.param("conn")) {
            (Some(on), None) => {
                controls.set_stop_reading(on);
                ok()
            }
            (Some(on), Some(conn)) => match conn.parse::<u64>() {
                Ok(conn) => {
                    controls.set_stop_reading_for(conn, on);
                    ok()
                }
                Err(_) => bad("conn must be a connection number"),
            },
            (None, _) => bad("on must be 1 or 0"),
        },
        "delay" => match number("ms") {
            Some(ms) => {
                controls.set_delay(Duration::from_millis(ms));
                ok()
            }
            None => bad("ms must be a number"),
        },
        "refuse" => {
            let status = req.param("status").and_then(|s| s.parse::<u16>().ok());
            let ms = match req.param("ms") {
                None | Some("") => Some(0),
                Some(_) => number("ms"),
            };
            let retry_after = match req.param("retry_after") {
                None | Some("") => Some(None),
                Some(_) => number("retry_after").map(Some),
            };
            match (status, ms, retry_after) {
                (Some(status), Some(ms), Some(retry_after)) if (200..=599).contains(&status) => {
                    let duration = (ms > 0).then(|| Duration::from_millis(ms));
                    controls.refuse_with(status, duration, retry_after);
                    ok()
                }
                _ => bad(
                    "status must be an HTTP status (200-599), ms and retry_after numbers of \
                     milliseconds and seconds",
                ),
            }
        }
        "reset" => {
            controls.reset();
            ok()
        }
        "stats" => (200, controls.stats().to_json()),
        "log" => match req.param("clear") {
            Some("1" | "true") => {
                controls.clear_log();
                ok()
            }
            Some("0" | "false") | None => (200, log_to_json(&controls.log())),
            Some(_) => bad("clear must be 1"),
        },
        _ => (
            404,
            Json::object([("error", Json::str(format!("unknown control {name:?}")))]).encode(),
        ),
    }
}

fn valid_close_code(code: u16) -> bool {
    (1000..=4999).contains(&code) && !matches!(code, 1004..=1006 | 1015)
}

/// `/control/restart?down_ms=N`: goes down (keeping the control connection `keep`), and
/// returns the delay after which [`finish_restart`] must be spawned; `Err` on a bad argument.
pub(crate) async fn begin_restart(
    shared: &Arc<Shared>,
    keep: u64,
    req: &http::Request,
) -> Result<Duration, String> {
    let down = match req.param("down_ms") {
        None | Some("") => 0,
        Some(v) => v
            .parse::<u64>()
            .map_err(|_| "down_ms must be a number".to_string())?,
    };
    shared.go_down(Some(keep)).await;
    Ok(Duration::from_millis(down))
}

pub(crate) fn finish_restart(shared: Arc<Shared>, down: Duration) {
    tokio::spawn(async move {
        tokio::time::sleep(down).await;
        if let Err(e) = relisten(&shared).await {
            eprintln!(
                "phx-testserver: cannot listen again on {}: {e}",
                shared.addr
            );
        }
    });
}
