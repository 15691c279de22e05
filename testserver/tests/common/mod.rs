//! Client-side helpers shared by the integration tests: a raw HTTP/1.1 request over any byte
//! stream, the WebSocket upgrade done by hand (so the response can be checked), frame helpers.
#![allow(dead_code)]

use futures_util::{FutureExt, SinkExt, StreamExt};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Lower-cased names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Bytes after the head of a 101 response.
    pub rest: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `GET target` with `headers` and reads the response (the body too, unless 101).
pub async fn request<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> Response {
    let mut req = format!("{method} {target} HTTP/1.1\r\nhost: localhost\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    io.write_all(req.as_bytes()).await.expect("write request");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let mut hs = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut hs);
        if let httparse::Status::Complete(len) = resp.parse(&buf).expect("valid response") {
            let status = resp.code.expect("status");
            let headers: Vec<(String, String)> = resp
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_ascii_lowercase(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            let mut rest = buf[len..].to_vec();
            let mut body = Vec::new();
            if status != 101 {
                let n: usize = headers
                    .iter()
                    .find(|(k, _)| k == "content-length")
                    .map(|(_, v)| v.parse().expect("content-length"))
                    .unwrap_or(0);
                body = std::mem::take(&mut rest);
                while body.len() < n {
                    let got = io.read(&mut chunk).await.expect("read body");
                    assert!(got > 0, "EOF inside the body");
                    body.extend_from_slice(&chunk[..got]);
                }
            }
            return Response {
                status,
                headers,
                body,
                rest,
            };
        }
        let n = io.read(&mut chunk).await.expect("read response");
        assert!(
            n > 0,
            "EOF before the response head; got {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

pub fn upgrade_headers<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut h = vec![
        ("connection", "Upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", KEY),
    ];
    h.extend_from_slice(extra);
    h
}

/// Checks a 101 response is what Bandit sends: no subprotocol, no extension.
pub fn assert_switching_protocols(resp: &Response) {
    assert_eq!(resp.status, 101, "{resp:?}");
    assert_eq!(resp.header("upgrade"), Some("websocket"));
    assert_eq!(resp.header("connection"), Some("Upgrade"));
    assert_eq!(
        resp.header("sec-websocket-accept"),
        Some(derive_accept_key(KEY.as_bytes()).as_str())
    );
    assert_eq!(
        resp.header("cache-control"),
        Some("max-age=0, private, must-revalidate")
    );
    assert_eq!(resp.header("sec-websocket-protocol"), None);
    assert_eq!(resp.header("sec-websocket-extensions"), None);
}

/// Upgrades `io` with `query` (e.g. `vsn=2.0.0&token=t`); panics unless the server says 101.
pub async fn upgrade<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: S,
    query: &str,
) -> WebSocketStream<S> {
    let target = if query.is_empty() {
        "/socket/websocket".to_string()
    } else {
        format!("/socket/websocket?{query}")
    };
    let resp = request(&mut io, "GET", &target, &upgrade_headers(&[])).await;
    assert_switching_protocols(&resp);
    WebSocketStream::from_partially_read(io, resp.rest, Role::Client, None).await
}

/// The next message, waiting at most `secs` (of Tokio time).
pub async fn next_within<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    secs: u64,
) -> Option<Message> {
    match tokio::time::timeout(Duration::from_secs(secs), ws.next()).await {
        Ok(Some(Ok(m))) => Some(m),
        Ok(Some(Err(_))) | Ok(None) => None,
        Err(_) => panic!("no frame within {secs} s"),
    }
}

/// The next text frame (panics on anything else).
pub async fn next_text<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) -> String {
    match next_within(ws, 120).await {
        Some(Message::Text(t)) => t.as_str().to_owned(),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

/// The next frame's close code (panics unless it is a close frame).
pub async fn next_close<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) -> u16 {
    match next_within(ws, 120).await {
        Some(Message::Close(Some(f))) => u16::from(f.code),
        other => panic!("expected a close frame, got {other:?}"),
    }
}

pub async fn send_text<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>, text: &str) {
    ws.send(Message::text(text)).await.expect("send");
}

pub async fn close<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>, code: u16) {
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: "".into(),
    };
    ws.send(Message::Close(Some(frame)))
        .await
        .expect("send close");
}

/// Nothing is waiting to be read right now.
pub fn assert_nothing_pending<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    what: &str,
) {
    if let Some(m) = ws.next().now_or_never() {
        panic!("{what}: expected no frame, got {m:?}");
    }
}

/// Sends `text` and returns the next text frame.
pub async fn roundtrip<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    text: &str,
) -> String {
    send_text(ws, text).await;
    next_text(ws).await
}

pub fn from_hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).expect("hex byte"))
        .collect()
}

/// The rest of a spawned server's stdout, line by line.
pub type StdoutLines = tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>;

/// Starts the `phx-testserver` binary with `args` (stdin piped, so closing it stops the
/// server) and returns it, the address from the URL on its first stdout line (the URL's
/// scheme checked) and the rest of its stdout.
pub async fn spawn_binary(
    args: &[&std::ffi::OsStr],
    scheme: &str,
) -> (tokio::process::Child, String, StdoutLines) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_phx-testserver"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn phx-testserver");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = lines.next_line().await.unwrap().expect("a first line");
    let addr = url
        .strip_prefix(scheme)
        .and_then(|r| r.strip_prefix("://"))
        .and_then(|r| r.strip_suffix("/socket/websocket"))
        .unwrap_or_else(|| panic!("not a {scheme} URL: {url:?}"))
        .to_owned();
    (child, addr, lines)
}
