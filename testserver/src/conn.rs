//! One accepted byte stream: the HTTP request (controls, upgrade), then the Phoenix socket.
//!
//! A socket is one task that reads frames and handles each completely before the next, as the
//! Phoenix socket process does: a slow join (`room:slow`) holds up everything on that socket,
//! heartbeats included. Frames for the client go through [`Conn::emit`], which applies the
//! delay fault; frames from other sockets (broadcasts) arrive on a channel.
//!
//! Channel events are answered in line, with one exception that shows on the wire: Phoenix
//! forwards a `phx_leave` to the channel process and goes straight on to the next frame, so
//! the channel answers only once the socket has handled the frames that were already waiting
//! behind the leave. A duplicate join among them kills the channel before it has answered:
//! the leave gets no reply at all (see `Conn::finish_leaves`).

use crate::http::{self, Request};
use crate::json::{self, Json};
use crate::state::{Broadcast, ConnMsg, Payload, ReadStops, Shared};
use crate::LogFrame;
use futures_util::{FutureExt, SinkExt, StreamExt};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::{mpsc, watch};
use tokio::time::{sleep_until, timeout, Instant, Sleep};
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

/// `max_channels_per_transport`
const MAX_CHANNELS: usize = 100;
/// How long `room:slow`'s join takes.
const SLOW_JOIN: Duration = Duration::from_secs(3);
/// How long a closing socket waits for the peer's side of the closing handshake.
const LINGER: Duration = Duration::from_secs(5);
/// Per-connection buffer sizes (small: benchmarks open many connections).
const BUFFER: usize = 8 * 1024;

struct TaskGuard {
    shared: Arc<Shared>,
    task: u64,
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.shared.task_done(self.task);
    }
}

struct ConnGuard {
    shared: Arc<Shared>,
    conn: u64,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.shared.hub().remove_conn(self.conn);
        // A stop aimed at this connection alone ends with it (numbers are never reused).
        self.shared.set_stop_reading_for(self.conn, false);
    }
}

/// Serves one accepted stream (TCP or in-memory) until it ends.
pub(crate) async fn serve<S>(shared: Arc<Shared>, mut stream: S, task: u64)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let _guard = TaskGuard {
        shared: shared.clone(),
        task,
    };
    // A client that never completes its request head is dropped after a while.
    let Ok(Some(req)) = timeout(Duration::from_secs(60), http::read_request(&mut stream)).await
    else {
        return;
    };
    if let Some(name) = req.path.strip_prefix("/control/") {
        if name == "restart" {
            match crate::begin_restart(&shared, task, &req).await {
                Ok(down) => {
                    let body = br#"{"ok":true}"#;
                    respond(
                        &mut stream,
                        http::response(200, Some("application/json"), body),
                    )
                    .await;
                    crate::finish_restart(shared.clone(), down);
                }
                Err(msg) => {
                    let body = Json::object([("error", Json::str(msg))]).encode();
                    let resp = http::response(400, Some("application/json"), body.as_bytes());
                    respond(&mut stream, resp).await;
                }
            }
        } else {
            let (status, body) = crate::control(&shared, name, &req);
            let resp = http::response(status, Some("application/json"), body.as_bytes());
            respond(&mut stream, resp).await;
        }
        return;
    }
    if req.path != "/socket/websocket" {
        respond(&mut stream, http::response(404, None, b"")).await;
        return;
    }
    upgrade(shared, stream, req, task).await;
}

/// Writes a whole response, then closes gracefully (FIN, and reads until the peer closes so
/// unread request bytes do not turn the close into a reset).
async fn respond<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, bytes: Vec<u8>) {
    if stream.write_all(&bytes).await.is_err() || stream.flush().await.is_err() {
        return;
    }
    let _ = stream.shutdown().await;
    let _ = timeout(Duration::from_secs(1), async {
        let mut buf = [0u8; 1024];
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

/// Resolves once the stop-reading fault lets connection `conn` read (the closing handshake
/// waits for the client's answer only then).
async fn until_reading(stops: &mut watch::Receiver<ReadStops>, conn: u64) {
    let _ = stops.wait_for(|s| !s.stops(conn)).await;
}

/// Reads and discards until EOF (or an error).
async fn drain<S: AsyncRead + Unpin>(io: &mut S) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = io.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
}

struct Version {
    major: u64,
    minor: u64,
    patch: u64,
    pre: bool,
}

/// Elixir's `Version.parse/1`: `MAJOR.MINOR.PATCH[-PRE][+BUILD]`, no leading zeros.
fn parse_version(v: &str) -> Option<Version> {
    let ident_ok = |s: &str, numeric_rule: bool| {
        !s.is_empty()
            && s.split('.').all(|part| {
                !part.is_empty()
                    && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !(numeric_rule
                        && part.len() > 1
                        && part.starts_with('0')
                        && part.bytes().all(|b| b.is_ascii_digit()))
            })
    };
    let (v, build) = match v.split_once('+') {
        Some((v, b)) => (v, Some(b)),
        None => (v, None),
    };
    if let Some(b) = build {
        if !ident_ok(b, false) {
            return None;
        }
    }
    let (core, pre) = match v.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (v, None),
    };
    if let Some(p) = pre {
        if !ident_ok(p, true) {
            return None;
        }
    }
    let nums: Vec<&str> = core.split('.').collect();
    if nums.len() != 3 {
        return None;
    }
    let mut parsed = [0u64; 3];
    for (slot, n) in parsed.iter_mut().zip(&nums) {
        if n.is_empty()
            || !n.bytes().all(|b| b.is_ascii_digit())
            || (n.len() > 1 && n.starts_with('0'))
        {
            return None;
        }
        *slot = n.parse().ok()?;
    }
    Some(Version {
        major: parsed[0],
        minor: parsed[1],
        patch: parsed[2],
        pre: pre.is_some(),
    })
}

/// Phoenix's serializer negotiation: `~> 1.0.0` → V1, `~> 2.0.0` → V2 (`Some(true)`), else none.
fn negotiate(vsn: Option<&str>) -> Option<bool> {
    let v = parse_version(vsn.unwrap_or("1.0.0"))?;
    // `~> X.Y.0` is `>= X.Y.0 and < X.(Y+1).0-0`: a pre-release of X.Y.0 itself is below it.
    let matches = |major, minor| v.major == major && v.minor == minor && (!v.pre || v.patch > 0);
    if matches(1, 0) {
        Some(false)
    } else if matches(2, 0) {
        Some(true)
    } else {
        None
    }
}

/// `WebSockAdapter.UpgradeValidation` (HTTP/1.1), with its error messages.
fn validate_upgrade(req: &Request) -> Result<(), String> {
    if req.version != 1 {
        return Err(format!("HTTP version HTTP/1.{} unsupported", req.version));
    }
    let nonempty = |name: &str| {
        if req.header_values(name).is_empty() {
            Err(format!("'{name}' header is absent"))
        } else {
            Ok(())
        }
    };
    let contains = |name: &str, needle: &str| {
        let values = req.header_values(name);
        let found = values
            .iter()
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(needle));
        if found {
            Ok(())
        } else {
            Err(format!(
                "'{name}' header must contain '{needle}', got {}",
                http::inspect_list(&values)
            ))
        }
    };
    nonempty("host")?;
    contains("connection", "upgrade")?;
    contains("upgrade", "websocket")?;
    nonempty("sec-websocket-key")?;
    let versions: Vec<String> = req
        .header_values("sec-websocket-version")
        .iter()
        .map(|v| v.to_ascii_lowercase())
        .collect();
    if versions.len() != 1 || versions[0] != "13" {
        let refs: Vec<&str> = versions.iter().map(String::as_str).collect();
        return Err(format!(
            "'sec-websocket-version' header must equal '13', got {}",
            http::inspect_list(&refs)
        ));
    }
    Ok(())
}

/// `maybe_auth_token_from_header/2` then `Transport.check_subprotocols(conn, ["phoenix"])`
/// of Phoenix 1.8's WebSocket transport: the token of the one `base64url.bearer.phx.`
/// subprotocol (standard base64, no padding; undecodable: `Base.decode64!` raises, HTTP 500),
/// and the subprotocol to select: `phoenix` if requested, none if no subprotocol is left,
/// else HTTP 403.
fn auth_token_from_header(req: &Request) -> Result<(Option<String>, Option<&'static str>), u16> {
    use base64::Engine as _;
    const PREFIX: &str = "base64url.bearer.phx.";
    let Some(header) = req.header_values("sec-websocket-protocol").first().copied() else {
        return Ok((None, None));
    };
    let list: Vec<&str> = header
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    let (tokens, rest): (Vec<&str>, Vec<&str>) = list.iter().partition(|p| p.starts_with(PREFIX));
    let (token, rest) = match tokens.as_slice() {
        [one] => {
            let engine = base64::engine::general_purpose::STANDARD_NO_PAD;
            let bytes = engine.decode(&one[PREFIX.len()..]).map_err(|_| 500u16)?;
            (Some(String::from_utf8_lossy(&bytes).into_owned()), rest)
        }
        // None, or several: the header is left as it was.
        _ => (None, list),
    };
    if rest.is_empty() {
        return Ok((token, None));
    }
    if rest.contains(&"phoenix") {
        Ok((token, Some("phoenix")))
    } else {
        Err(403)
    }
}

/// The test application's `connect_info` answer: the params (query string), the auth token
/// (`connect_info.auth_token`) and the `x-` headers (`connect_info.x_headers`).
fn connect_info(req: &Request, auth_token: Option<&str>) -> Json {
    let params = Json::object(
        req.query
            .iter()
            .map(|(k, v)| (k.clone(), Json::str(v.clone()))),
    );
    let x_headers = Json::object(
        req.headers
            .iter()
            .filter(|(n, _)| n.starts_with("x-"))
            .map(|(n, v)| (n.clone(), Json::str(v.clone()))),
    );
    Json::object([
        ("params", params),
        ("auth_token", auth_token.map_or(Json::Null, Json::str)),
        ("x_headers", x_headers),
    ])
}

async fn upgrade<S>(shared: Arc<Shared>, mut stream: S, req: Request, task: u64)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if let Some((status, retry_after)) = shared.refusal() {
        let extra: Vec<(&str, String)> = retry_after
            .map(|s| ("retry-after", s.to_string()))
            .into_iter()
            .collect();
        respond(&mut stream, http::response_with(status, None, &extra, b"")).await;
        return;
    }
    // Phoenix.Transports.WebSocket answers anything but GET with an empty 400.
    if req.method != "GET" {
        respond(&mut stream, http::response(400, None, b"")).await;
        return;
    }
    // A socket mounted with `auth_token: true` (Phoenix 1.8) takes the token from the
    // subprotocols, and `phoenix` must then be among those requested.
    let found = if shared.config.auth_token {
        auth_token_from_header(&req)
    } else {
        Ok((None, None))
    };
    let (auth_token, subprotocol) = match found {
        Ok(found) => found,
        Err(status) => {
            respond(&mut stream, http::response(status, None, b"")).await;
            return;
        }
    };
    // connect: serializer negotiation, then UserSocket.connect/3 (token=bad is refused, in
    // the params or as the auth token).
    let token = req.param("token").map(str::to_owned);
    let Some(v2) = negotiate(req.param("vsn")) else {
        respond(&mut stream, http::response(403, None, b"")).await;
        return;
    };
    if token.as_deref() == Some("bad") || auth_token.as_deref() == Some("bad") {
        respond(&mut stream, http::response(403, None, b"")).await;
        return;
    }
    let connect_info = connect_info(&req, auth_token.as_deref());
    if let Err(msg) = validate_upgrade(&req) {
        respond(&mut stream, http::response(400, None, msg.as_bytes())).await;
        return;
    }
    let key = req.header_values("sec-websocket-key")[0].trim().to_owned();
    let head = http::switching_protocols(&derive_accept_key(key.as_bytes()), subprotocol);
    if stream.write_all(&head).await.is_err() || stream.flush().await.is_err() {
        return;
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let id = shared.next_conn_id();
    let presence_key = token.or(auth_token).unwrap_or_default();
    let socket_id = format!("user_socket:{presence_key}");
    shared.hub().accept_upgrade(id, task, tx, socket_id.clone());
    let _guard = ConnGuard {
        shared: shared.clone(),
        conn: id,
    };
    let config = WebSocketConfig::default()
        .read_buffer_size(BUFFER)
        .write_buffer_size(BUFFER);
    let io = Io {
        inner: stream,
        discard: false,
    };
    let ws = WebSocketStream::from_partially_read(io, req.rest, Role::Server, Some(config)).await;
    let idle = Box::pin(tokio::time::sleep(shared.config.idle_timeout));
    let stops = shared.read_stops();
    Conn {
        shared,
        id,
        v2,
        socket_id,
        presence_key,
        connect_info,
        ws,
        rx,
        channels: HashMap::new(),
        leaving: Vec::new(),
        pending: VecDeque::new(),
        dirty: false,
        idle,
        stops,
        reading: true,
    }
    .run()
    .await;
}

/// The byte stream under the WebSocket; while `discard` is set (silence fault) everything
/// written is dropped. It is only switched between whole frames (the write buffer is flushed
/// after every step), so the stream stays well-formed.
struct Io<S> {
    inner: S,
    discard: bool,
}

impl<S: AsyncRead + Unpin> AsyncRead for Io<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Io<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        if me.discard {
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut me.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        if me.discard {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut me.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A decoded client frame (`%Phoenix.Socket.Message{}`): any JSON in the envelope fields.
struct Msg {
    join_ref: Json,
    ref_: Json,
    topic: Json,
    event: Json,
    payload: Payload,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Room,
    Echo,
    Presence,
    ConnectInfo,
}

#[derive(Clone)]
struct Channel {
    join_ref: Json,
    kind: Kind,
}

/// A `phx_leave` handed to its channel, not answered yet.
struct Leave {
    topic: String,
    /// The leave's ref, for the reply.
    ref_: Json,
}

enum Flow {
    Continue,
    /// Close with this code (closing handshake).
    Close(u16),
    /// Close with this code; the WebSocket layer failed, so no more frames can be read.
    CloseRaw(u16),
    /// The peer sent a close frame (with this code).
    PeerClosed(Option<u16>),
}

enum Stop {
    /// The socket process crashed (undecodable frame, unencodable reply): close 1011.
    Crash,
    /// The connection is gone.
    Gone,
}

type Step = Result<Flow, Stop>;

enum End {
    Gone,
    PeerClosed(Option<u16>),
    Close { code: u16, ended: bool },
}

fn empty() -> Payload {
    Payload::Json(Json::empty_object())
}

fn reason(r: &str) -> Payload {
    Payload::Json(Json::object([("reason", Json::str(r))]))
}

fn stat_key(topic: &Json) -> String {
    match topic {
        Json::Str(s) => s.clone(),
        other => other.encode(),
    }
}

fn now_secs() -> Json {
    let s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Json::Int(s.to_string())
}

struct Conn<S> {
    shared: Arc<Shared>,
    id: u64,
    v2: bool,
    socket_id: String,
    presence_key: String,
    /// What `connect/3` was given, answered to a join of `connect_info`.
    connect_info: Json,
    ws: WebSocketStream<Io<S>>,
    rx: mpsc::UnboundedReceiver<ConnMsg>,
    /// Joined channels by topic.
    channels: HashMap<String, Channel>,
    /// Channels told to leave, in the order of their `phx_leave`; each is still in `channels`.
    leaving: Vec<Leave>,
    /// Frames held back by the delay fault, with the time each is due.
    pending: VecDeque<(Instant, Message)>,
    /// Frames were written since the last flush.
    dirty: bool,
    /// Suspended while reading is stopped: the client is not the one keeping quiet.
    idle: Pin<Box<Sleep>>,
    /// The stop-reading fault, watched for changes.
    stops: watch::Receiver<ReadStops>,
    /// Whether frames were being read as of the last look at `stops`.
    reading: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Conn<S> {
    async fn run(mut self) {
        let end = self.main_loop().await;
        // The socket process is gone: its channels leave now (presence leave diffs), whatever
        // the closing handshake below takes.
        self.shared.hub().remove_conn(self.id);
        match end {
            End::Gone => {}
            End::PeerClosed(code) => {
                // Answered like Bandit: the same code, an empty reason (tungstenite would echo
                // the reason too, so its queued reply is never flushed), then the server closes
                // the TCP connection.
                let mut frame = vec![0x88];
                match code {
                    Some(c) => {
                        frame.push(2);
                        frame.extend_from_slice(&c.to_be_bytes());
                    }
                    None => frame.push(0),
                }
                let (mut stops, id) = (self.stops.clone(), self.id);
                let io = self.ws.get_mut();
                io.discard = false;
                let _ = timeout(LINGER, async {
                    if io.write_all(&frame).await.is_ok() && io.flush().await.is_ok() {
                        let _ = io.shutdown().await;
                        until_reading(&mut stops, id).await;
                        drain(io).await;
                    }
                })
                .await;
            }
            End::Close { code, ended } => self.close(code, ended).await,
        }
    }

    async fn main_loop(&mut self) -> End {
        loop {
            let step = if self.leaving.is_empty() {
                self.next_event().await
            } else {
                self.continue_batch().await
            };
            if self.dirty {
                if self.ws.flush().await.is_err() {
                    return End::Gone;
                }
                self.dirty = false;
            }
            match step {
                Ok(Flow::Continue) => {}
                Ok(Flow::Close(code)) => return End::Close { code, ended: false },
                Ok(Flow::CloseRaw(code)) => return End::Close { code, ended: true },
                Ok(Flow::PeerClosed(code)) => return End::PeerClosed(code),
                Err(Stop::Crash) => {
                    return End::Close {
                        code: 1011,
                        ended: false,
                    }
                }
                Err(Stop::Gone) => return End::Gone,
            }
        }
    }

    /// While leaves are unanswered: the next frame if one is already waiting (the socket process
    /// handles it before the channels get to answer), else the leaves' answers.
    async fn continue_batch(&mut self) -> Step {
        if !self.sync_reading() {
            return self.finish_leaves().await;
        }
        match self.ws.next().now_or_never() {
            Some(frame) => {
                let silence = self.sync_silence();
                self.on_frame(frame, silence).await
            }
            None => self.finish_leaves().await,
        }
    }

    /// Whatever happens next: a broadcast or close order from elsewhere, a delayed frame
    /// falling due, the idle timeout, or a frame from the client.
    async fn next_event(&mut self) -> Step {
        let due = self.pending.front().map(|(t, _)| *t);
        let reading = self.sync_reading();
        tokio::select! {
            biased;
            m = self.rx.recv() => match m {
                Some(ConnMsg::Broadcast(b)) => {
                    if self.sync_silence() {
                        Ok(Flow::Continue)
                    } else {
                        self.emit_broadcast(&b).await.map(|_| Flow::Continue)
                    }
                }
                Some(ConnMsg::Close(code)) => Ok(Flow::Close(code)),
                None => Err(Stop::Gone),
            },
            _ = sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                self.sync_silence();
                self.send_due().await.map(|_| Flow::Continue)
            }
            // Looked at again on the next turn.
            Ok(()) = self.stops.changed() => Ok(Flow::Continue),
            _ = &mut self.idle, if reading => Ok(Flow::Close(1002)),
            frame = self.ws.next(), if reading => {
                let silence = self.sync_silence();
                self.on_frame(frame, silence).await
            }
        }
    }

    /// Applies the stop-reading fault as it is now: whether frames may be read. The idle timer
    /// starts over when reading resumes.
    fn sync_reading(&mut self) -> bool {
        let reading = !self.stops.borrow_and_update().stops(self.id);
        if reading && !self.reading {
            let deadline = Instant::now() + self.shared.config.idle_timeout;
            self.idle.as_mut().reset(deadline);
        }
        self.reading = reading;
        reading
    }

    /// Applies the silence fault as it is now. Only called between steps, when the write buffer
    /// is flushed (a pong tungstenite queued goes out with the next read, under the new setting).
    fn sync_silence(&mut self) -> bool {
        let silence = self.shared.silence();
        self.ws.get_mut().discard = silence;
        silence
    }

    /// Sends what is still delayed, then a close frame, then waits (bounded) for the peer.
    async fn close(mut self, code: u16, ended: bool) {
        while let Some((due, msg)) = self.pending.pop_front() {
            sleep_until(due).await;
            if self.ws.feed(msg).await.is_err() {
                return;
            }
        }
        if self.ws.flush().await.is_err() {
            return;
        }
        // The closing handshake is not held back by the silence fault.
        self.ws.get_mut().discard = false;
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: "".into(),
        };
        let _ = self.ws.send(Message::Close(Some(frame))).await;
        let (mut stops, id) = (self.stops.clone(), self.id);
        let _ = timeout(LINGER, async {
            if ended {
                let io = self.ws.get_mut();
                let _ = io.shutdown().await;
                until_reading(&mut stops, id).await;
                drain(io).await;
            } else {
                until_reading(&mut stops, id).await;
                while let Some(Ok(_)) = self.ws.next().await {}
            }
        })
        .await;
    }

    async fn on_frame(&mut self, frame: Option<Result<Message, WsError>>, silence: bool) -> Step {
        let deadline = Instant::now() + self.shared.config.idle_timeout;
        self.idle.as_mut().reset(deadline);
        let msg = match frame {
            None => return Err(Stop::Gone),
            Some(Err(e)) => {
                return match e {
                    WsError::Utf8(_) => Ok(Flow::CloseRaw(1007)),
                    WsError::Capacity(_) => Ok(Flow::CloseRaw(1009)),
                    WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
                        Err(Stop::Gone)
                    }
                    WsError::Protocol(_) => Ok(Flow::CloseRaw(1002)),
                    _ => Err(Stop::Gone),
                }
            }
            Some(Ok(m)) => m,
        };
        let (decoded, logged) = match msg {
            Message::Text(t) => (
                self.decode_text(t.as_str()),
                LogFrame::Text(t.as_str().to_owned()),
            ),
            Message::Binary(b) => (self.decode_binary(&b), LogFrame::Binary(b.to_vec())),
            Message::Close(f) => return Ok(Flow::PeerClosed(f.map(|f| u16::from(f.code)))),
            _ => return Ok(Flow::Continue),
        };
        {
            let mut hub = self.shared.hub();
            hub.log(self.id, logged);
            if let Ok(m) = &decoded {
                match m.event.as_str() {
                    Some("phx_join") => hub.count_join(stat_key(&m.topic)),
                    Some("phx_leave") => hub.count_leave(stat_key(&m.topic)),
                    _ => {}
                }
            }
        }
        if silence {
            // Read and discarded.
            return Ok(Flow::Continue);
        }
        match decoded {
            Ok(m) => self.handle(m).await,
            Err(()) => Err(Stop::Crash),
        }
    }

    /// V2: `[join_ref, ref, topic, event, payload | _]`; V1: `{"topic", "event", "payload",
    /// "ref"[, "join_ref"]}`.
    fn decode_text(&self, text: &str) -> Result<Msg, ()> {
        let value = json::parse(text)?;
        if self.v2 {
            let Json::Array(items) = value else {
                return Err(());
            };
            if items.len() < 5 {
                return Err(());
            }
            let mut it = items.into_iter();
            let mut next = || it.next().unwrap_or(Json::Null);
            Ok(Msg {
                join_ref: next(),
                ref_: next(),
                topic: next(),
                event: next(),
                payload: Payload::Json(next()),
            })
        } else {
            let Json::Object(mut map) = value else {
                return Err(());
            };
            let mut take = |k: &str| map.remove(k).ok_or(());
            Ok(Msg {
                topic: take("topic")?,
                event: take("event")?,
                payload: Payload::Json(take("payload")?),
                ref_: take("ref")?,
                join_ref: take("join_ref").unwrap_or(Json::Null),
            })
        }
    }

    fn decode_binary(&self, bytes: &[u8]) -> Result<Msg, ()> {
        if !self.v2 {
            // The V1 serializer hands any frame to the JSON decoder.
            return self.decode_text(std::str::from_utf8(bytes).map_err(|_| ())?);
        }
        let f = phx::protocol::decode_binary_client(bytes).map_err(|_| ())?;
        let s = |o: Option<Cow<'_, str>>| Json::Str(o.map(Cow::into_owned).unwrap_or_default());
        let phx::protocol::Payload::Binary(data) = f.payload else {
            return Err(());
        };
        Ok(Msg {
            join_ref: s(f.join_ref),
            ref_: s(f.ref_),
            topic: Json::Str(f.topic.into_owned()),
            event: Json::Str(f.event.into_owned()),
            payload: Payload::Binary(data.to_vec()),
        })
    }

    // ---- output -------------------------------------------------------------------------

    /// Queues a frame for the client (behind the delay fault, if any).
    async fn emit(&mut self, msg: Message) -> Result<(), Stop> {
        let delay = self.shared.delay();
        if delay.is_zero() && self.pending.is_empty() {
            self.ws.feed(msg).await.map_err(|_| Stop::Gone)?;
            self.dirty = true;
        } else {
            self.pending.push_back((Instant::now() + delay, msg));
        }
        Ok(())
    }

    async fn send_due(&mut self) -> Result<(), Stop> {
        let now = Instant::now();
        while self.pending.front().is_some_and(|(t, _)| *t <= now) {
            let (_, msg) = self.pending.pop_front().expect("front exists");
            self.ws.feed(msg).await.map_err(|_| Stop::Gone)?;
            self.dirty = true;
        }
        Ok(())
    }

    /// `[join_ref, ref, topic, event, payload]` (V2) or
    /// `{"event":..,"payload":..,"ref":..,"topic":..}` (V1).
    fn text(
        &self,
        join_ref: &Json,
        ref_: &Json,
        topic: &Json,
        event: &str,
        payload: impl FnOnce(&mut String),
    ) -> Message {
        let mut out = String::with_capacity(64);
        if self.v2 {
            out.push('[');
            join_ref.encode_into(&mut out);
            out.push(',');
            ref_.encode_into(&mut out);
            out.push(',');
            topic.encode_into(&mut out);
            out.push(',');
            json::write_string(&mut out, event);
            out.push(',');
            payload(&mut out);
            out.push(']');
        } else {
            out.push_str("{\"event\":");
            json::write_string(&mut out, event);
            out.push_str(",\"payload\":");
            payload(&mut out);
            out.push_str(",\"ref\":");
            ref_.encode_into(&mut out);
            out.push_str(",\"topic\":");
            topic.encode_into(&mut out);
            out.push('}');
        }
        Message::text(out)
    }

    /// A `phx_reply` (`%Phoenix.Socket.Reply{}`).
    fn reply_frame(
        &self,
        join_ref: &Json,
        ref_: &Json,
        topic: &Json,
        status: &str,
        response: &Payload,
    ) -> Result<Message, Stop> {
        match response {
            Payload::Json(r) => Ok(self.text(join_ref, ref_, topic, "phx_reply", |o| {
                o.push_str("{\"response\":");
                r.encode_into(o);
                o.push_str(",\"status\":");
                json::write_string(o, status);
                o.push('}');
            })),
            Payload::Binary(data) => {
                if !self.v2 {
                    return Err(Stop::Crash);
                }
                let jr = join_ref.to_elixir_string().ok_or(Stop::Crash)?;
                let r = ref_.to_elixir_string().ok_or(Stop::Crash)?;
                let topic = topic.as_str().ok_or(Stop::Crash)?;
                let mut out = Vec::new();
                phx::protocol::encode_binary_reply(
                    &mut out,
                    Some(&jr),
                    Some(&r),
                    topic,
                    status,
                    data,
                )
                .map_err(|_| Stop::Crash)?;
                Ok(Message::binary(out))
            }
        }
    }

    /// A `%Phoenix.Socket.Message{}`: `push/3`, `phx_close`, `phx_error`.
    fn message_frame(
        &self,
        join_ref: &Json,
        ref_: &Json,
        topic: &Json,
        event: &str,
        payload: &Payload,
    ) -> Result<Message, Stop> {
        match payload {
            Payload::Json(p) => Ok(self.text(join_ref, ref_, topic, event, |o| p.encode_into(o))),
            Payload::Binary(data) => {
                if !self.v2 {
                    return Err(Stop::Crash);
                }
                let jr = join_ref.to_elixir_string().ok_or(Stop::Crash)?;
                let topic = topic.as_str().ok_or(Stop::Crash)?;
                let mut out = Vec::new();
                phx::protocol::encode_binary_server_push(&mut out, Some(&jr), topic, event, data)
                    .map_err(|_| Stop::Crash)?;
                Ok(Message::binary(out))
            }
        }
    }

    async fn emit_broadcast(&mut self, b: &Broadcast) -> Result<(), Stop> {
        let msg = match &b.payload {
            Payload::Json(p) => self.text(
                &Json::Null,
                &Json::Null,
                &Json::str(b.topic.clone()),
                &b.event,
                |o| p.encode_into(o),
            ),
            Payload::Binary(data) => {
                if !self.v2 {
                    return Err(Stop::Crash);
                }
                let mut out = Vec::new();
                phx::protocol::encode_binary_broadcast(&mut out, &b.topic, &b.event, data)
                    .map_err(|_| Stop::Crash)?;
                Message::binary(out)
            }
        };
        self.emit(msg).await
    }

    async fn reply(
        &mut self,
        join_ref: &Json,
        ref_: &Json,
        topic: &Json,
        status: &str,
        response: &Payload,
    ) -> Step {
        let frame = self.reply_frame(join_ref, ref_, topic, status, response)?;
        self.emit(frame).await?;
        Ok(Flow::Continue)
    }

    async fn unmatched(&mut self, m: &Msg) -> Step {
        self.reply(
            &Json::Null,
            &m.ref_,
            &m.topic,
            "error",
            &reason("unmatched topic"),
        )
        .await
    }

    async fn broadcast(&mut self, topic: &str, event: &str, payload: Payload) -> Step {
        let b = self.shared.hub().broadcast(self.id, topic, event, payload);
        self.emit_broadcast(&b).await?;
        Ok(Flow::Continue)
    }

    // ---- Phoenix.Socket -----------------------------------------------------------------

    async fn handle(&mut self, m: Msg) -> Step {
        if m.topic.as_str() == Some("phoenix") && m.event.as_str() == Some("heartbeat") {
            if self.shared.blackhole() {
                return Ok(Flow::Continue);
            }
            return self
                .reply(&Json::Null, &m.ref_, &m.topic, "ok", &empty())
                .await;
        }
        let joined = m
            .topic
            .as_str()
            .filter(|t| self.channels.contains_key(*t))
            .map(str::to_owned);
        match (joined, m.event.as_str()) {
            (None, Some("phx_join")) => self.join(m, None).await,
            (Some(topic), Some("phx_join")) => {
                // Duplicate join: the old channel is shut down (before answering a leave it was
                // handed); its phx_close follows the new join's reply.
                self.leaving.retain(|l| l.topic != topic);
                let old = self.remove_channel(&topic);
                let close = self.message_frame(
                    &old.join_ref,
                    &old.join_ref,
                    &m.topic,
                    "phx_close",
                    &empty(),
                )?;
                self.join(m, Some(close)).await
            }
            // The channel is stopping after a leave: what else reaches it is lost.
            (Some(topic), _) if self.is_leaving(&topic) => Ok(Flow::Continue),
            (Some(topic), Some("phx_leave")) => {
                let ch = &self.channels[&topic];
                // A leave for an older join is ignored; a V1 channel has no join_ref to match.
                if ch.join_ref == m.join_ref || ch.join_ref.is_null() {
                    self.leaving.push(Leave {
                        topic,
                        ref_: m.ref_,
                    });
                }
                Ok(Flow::Continue)
            }
            (Some(topic), _) => self.channel_in(topic, m).await,
            (None, Some("phx_leave")) => {
                self.reply(&m.join_ref, &m.ref_, &m.topic, "ok", &empty())
                    .await
            }
            (None, _) => self.unmatched(&m).await,
        }
    }

    fn is_leaving(&self, topic: &str) -> bool {
        self.leaving.iter().any(|l| l.topic == topic)
    }

    /// The channels told to leave answer, in the order they were told: the ok reply, then
    /// `phx_close`. Called once no frame is waiting: the Phoenix socket process handles the
    /// frames it has read before it turns to its mailbox, where the channels' answers are.
    async fn finish_leaves(&mut self) -> Step {
        for leave in std::mem::take(&mut self.leaving) {
            let Some(ch) = self.channels.get(&leave.topic).cloned() else {
                continue;
            };
            let topic = Json::str(leave.topic.clone());
            self.reply(&ch.join_ref, &leave.ref_, &topic, "ok", &empty())
                .await?;
            self.exit_channel(&leave.topic, "phx_close").await?;
        }
        Ok(Flow::Continue)
    }

    fn remove_channel(&mut self, topic: &str) -> Channel {
        let ch = self.channels.remove(topic).expect("channel exists");
        self.shared.hub().unsubscribe(topic, self.id);
        ch
    }

    /// The channel process ends: `phx_close` (stopped, left) or `phx_error` (crashed).
    async fn exit_channel(&mut self, topic: &str, event: &str) -> Step {
        let ch = self.remove_channel(topic);
        let frame = self.message_frame(
            &ch.join_ref,
            &ch.join_ref,
            &Json::str(topic),
            event,
            &empty(),
        )?;
        self.emit(frame).await?;
        Ok(Flow::Continue)
    }

    async fn join(&mut self, m: Msg, close_old: Option<Message>) -> Step {
        let route = m.topic.as_str().and_then(|t| {
            if t.starts_with("room:") {
                Some(Kind::Room)
            } else if t.starts_with("echo:") {
                Some(Kind::Echo)
            } else if t.starts_with("presence:") {
                Some(Kind::Presence)
            } else if t == "connect_info" {
                Some(Kind::ConnectInfo)
            } else {
                None
            }
        });
        let (Some(kind), Some(topic)) = (route, m.topic.as_str().map(str::to_owned)) else {
            self.unmatched(&m).await?;
            if let Some(c) = close_old {
                self.emit(c).await?;
            }
            return Ok(Flow::Continue);
        };
        let result = if self.channels.len() >= MAX_CHANNELS {
            Err(reason("too many channels joined"))
        } else {
            match (kind, topic.as_str()) {
                (Kind::Room, "room:private") => Err(reason("unauthorized")),
                (Kind::Room, "room:crash") => Err(reason("join crashed")),
                (Kind::Room, t) => {
                    if t == "room:slow" {
                        // Blocks the whole socket, as Phoenix.Channel.Server.join/4 does.
                        tokio::time::sleep(SLOW_JOIN).await;
                    }
                    let mut resp = BTreeMap::new();
                    if t == "room:lobby" {
                        resp.insert("joined".to_owned(), Json::str(t));
                    }
                    if let Payload::Json(p) = &m.payload {
                        if let Some(echo) = p.get("echo") {
                            resp.insert("echo".to_owned(), echo.clone());
                        }
                    }
                    Ok(Payload::Json(Json::Object(resp)))
                }
                (Kind::Echo | Kind::Presence, _) => Ok(empty()),
                (Kind::ConnectInfo, _) => Ok(Payload::Json(self.connect_info.clone())),
            }
        };
        match result {
            Ok(resp) => {
                self.reply(&m.join_ref, &m.ref_, &m.topic, "ok", &resp)
                    .await?;
                self.channels.insert(
                    topic.clone(),
                    Channel {
                        join_ref: m.join_ref.clone(),
                        kind,
                    },
                );
                self.shared.hub().subscribe(&topic, self.id);
                if let Some(c) = close_old {
                    self.emit(c).await?;
                }
                if kind == Kind::Presence {
                    self.presence_after_join(&topic, &m).await?;
                }
                Ok(Flow::Continue)
            }
            Err(resp) => {
                self.reply(&m.join_ref, &m.ref_, &m.topic, "error", &resp)
                    .await?;
                if let Some(c) = close_old {
                    self.emit(c).await?;
                }
                Ok(Flow::Continue)
            }
        }
    }

    async fn channel_in(&mut self, topic: String, m: Msg) -> Step {
        let ch = self.channels[&topic].clone();
        match ch.kind {
            Kind::Echo | Kind::ConnectInfo => {
                self.reply(&ch.join_ref, &m.ref_, &m.topic, "ok", &m.payload)
                    .await
            }
            Kind::Room => self.room_in(&topic, &ch, m).await,
            Kind::Presence => self.presence_in(&topic, &ch, m).await,
        }
    }

    // ---- the test application's channels --------------------------------------------------

    async fn room_in(&mut self, topic: &str, ch: &Channel, m: Msg) -> Step {
        let jr = &ch.join_ref;
        let event = m.event.as_str().unwrap_or("");
        if let Payload::Binary(_) = &m.payload {
            return match event {
                "push_me" => {
                    let push =
                        self.message_frame(jr, &Json::Null, &m.topic, "pushed", &m.payload)?;
                    self.emit(push).await?;
                    self.reply(jr, &m.ref_, &m.topic, "ok", &empty()).await
                }
                "new_msg" => {
                    self.broadcast(topic, "new_msg", m.payload.clone()).await?;
                    self.reply(jr, &m.ref_, &m.topic, "ok", &empty()).await
                }
                _ => self.reply(jr, &m.ref_, &m.topic, "ok", &m.payload).await,
            };
        }
        let Payload::Json(payload) = &m.payload else {
            unreachable!("binary handled above")
        };
        match event {
            "echo" => self.reply(jr, &m.ref_, &m.topic, "ok", &m.payload).await,
            "new_msg" => {
                self.broadcast(topic, "new_msg", m.payload.clone()).await?;
                self.reply(jr, &m.ref_, &m.topic, "ok", &empty()).await
            }
            "fail" => {
                self.reply(jr, &m.ref_, &m.topic, "error", &reason("nope"))
                    .await
            }
            "noreply" => Ok(Flow::Continue),
            "crash" => self.exit_channel(topic, "phx_error").await,
            "stop" => self.exit_channel(topic, "phx_close").await,
            "stop_reply" => {
                let bye = Payload::Json(Json::object([("bye", Json::Bool(true))]));
                self.reply(jr, &m.ref_, &m.topic, "ok", &bye).await?;
                self.exit_channel(topic, "phx_close").await
            }
            "push_me" => {
                let push = self.message_frame(jr, &Json::Null, &m.topic, "pushed", &m.payload)?;
                self.emit(push).await?;
                self.reply(jr, &m.ref_, &m.topic, "ok", &empty()).await
            }
            "flood" => match payload.get("n").and_then(Json::as_u64) {
                Some(n) => {
                    for i in 1..=n {
                        let p = Payload::Json(Json::object([("i", Json::Int(i.to_string()))]));
                        let push =
                            self.message_frame(jr, &Json::Null, &m.topic, "flood_msg", &p)?;
                        self.emit(push).await?;
                    }
                    let sent = Payload::Json(Json::object([("sent", Json::Int(n.to_string()))]));
                    self.reply(jr, &m.ref_, &m.topic, "ok", &sent).await
                }
                None => self.exit_channel(topic, "phx_error").await,
            },
            "disconnect_me" => {
                let resp = Payload::Json(Json::object([("disconnecting", Json::Bool(true))]));
                self.reply(jr, &m.ref_, &m.topic, "ok", &resp).await?;
                // Endpoint.broadcast("user_socket:<token>", "disconnect", %{}): every socket
                // with this id closes with 1000, sending nothing for its channels.
                self.shared
                    .hub()
                    .disconnect_socket_id(&self.socket_id, self.id);
                Ok(Flow::Close(1000))
            }
            // No matching handle_in/3 clause: the channel crashes.
            _ => self.exit_channel(topic, "phx_error").await,
        }
    }

    async fn presence_after_join(&mut self, topic: &str, m: &Msg) -> Result<(), Stop> {
        let device = match &m.payload {
            Payload::Json(p) => p.get("device").cloned(),
            Payload::Binary(_) => None,
        }
        .unwrap_or_else(|| Json::str("default"));
        let meta = Json::object([
            ("device", device),
            ("online_at", now_secs()),
            ("phx_ref", Json::str(self.shared.new_phx_ref())),
        ]);
        let diff = self
            .shared
            .hub()
            .track(topic, self.id, &self.presence_key, meta);
        self.emit_broadcast(&diff).await?;
        let state = Payload::Json(self.shared.hub().presence_list(topic));
        let jr = self.channels[topic].join_ref.clone();
        let push = self.message_frame(&jr, &Json::Null, &m.topic, "presence_state", &state)?;
        self.emit(push).await
    }

    async fn presence_in(&mut self, topic: &str, ch: &Channel, m: Msg) -> Step {
        let jr = &ch.join_ref;
        let device = match &m.payload {
            Payload::Json(p) => p.get("device").cloned(),
            Payload::Binary(_) => None,
        };
        match (m.event.as_str(), device) {
            (Some("update"), Some(device)) => {
                let new_ref = Json::str(self.shared.new_phx_ref());
                let diff = self.shared.hub().update(topic, self.id, |old| {
                    let mut meta = match old {
                        Json::Object(map) => map.clone(),
                        _ => BTreeMap::new(),
                    };
                    let prev = meta.get("phx_ref").cloned().unwrap_or(Json::Null);
                    meta.insert("device".into(), device);
                    meta.insert("phx_ref".into(), new_ref);
                    meta.insert("phx_ref_prev".into(), prev);
                    Json::Object(meta)
                });
                match diff {
                    Some(diff) => {
                        self.reply(jr, &m.ref_, &m.topic, "ok", &empty()).await?;
                        self.emit_broadcast(&diff).await?;
                        Ok(Flow::Continue)
                    }
                    None => {
                        self.reply(jr, &m.ref_, &m.topic, "error", &reason(":nopresence"))
                            .await
                    }
                }
            }
            (Some("untrack"), _) => {
                let diff = self.shared.hub().untrack(topic, self.id);
                self.reply(jr, &m.ref_, &m.topic, "ok", &empty()).await?;
                if let Some(diff) = diff {
                    self.emit_broadcast(&diff).await?;
                }
                Ok(Flow::Continue)
            }
            _ => self.exit_channel(topic, "phx_error").await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_like_phoenix() {
        assert_eq!(negotiate(None), Some(false));
        assert_eq!(negotiate(Some("1.0.0")), Some(false));
        assert_eq!(negotiate(Some("2.0.0")), Some(true));
        assert_eq!(negotiate(Some("2.0.7+build.1")), Some(true));
        assert_eq!(negotiate(Some("2.0.1-rc.1")), Some(true));
        for bad in [
            "3.0.0", "abc", "", "2.0", "2.1.0", "02.0.0", "2.0.0-rc", "2.0.0-01", "2.0.0+",
        ] {
            assert_eq!(negotiate(Some(bad)), None, "{bad}");
        }
    }
}
