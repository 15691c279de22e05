//! `phx-bench-server`: a minimal Phoenix V2 server for benchmarking clients (not itself).
//!
//! ```text
//! phx-bench-server [--host 127.0.0.1] [--port 0] [--max-blast N]
//! ```
//!
//! Prints its WebSocket URL (`ws://HOST:PORT/socket/websocket`) as the only stdout line, then
//! serves every connection on one thread (run it pinned to a core of its own). It speaks just
//! enough of the protocol:
//!
//! - `phx_join`, `phx_leave` and `heartbeat` are answered `ok` with an empty response;
//! - any other push on an `echo:*` topic is answered `ok` with the push's payload as the
//!   response, spliced as raw text into the reply (no JSON tree is built);
//! - the event `blast` with payload `{"n":N}` makes the server write N server pushes
//!   `[null,null,TOPIC,"m",{"i":K}]` (K = 0..N) as fast as the socket takes them, then reply
//!   `ok` with `{"n":N}`. The frames are encoded once, as WebSocket wire bytes, before the
//!   first blast (`--max-blast` pre-builds them at start) and written with plain socket
//!   writes, so the blast costs the server almost nothing but the copy into the kernel.
//!
//! Client frames are decoded with `phx::protocol::decode_text`.

use futures_util::{FutureExt, SinkExt, StreamExt};
use phx::protocol::{decode_text, write_json_string};
use phx_bench::{Args, BLAST_EVENT};
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

/// Largest blast accepted (bounds the server's memory: about 45 bytes per frame).
const MAX_BLAST: u64 = 20_000_000;

/// The wire bytes of server pushes `i = 0..ends.len()` on one topic, back to back.
struct Blast {
    topic: String,
    bytes: Vec<u8>,
    /// `ends[k]`: where frame `k` ends in `bytes`; a blast of `n` writes `bytes[..ends[n-1]]`.
    ends: Vec<usize>,
}

impl Blast {
    fn build(topic: &str, n: u64) -> Blast {
        let mut bytes = Vec::with_capacity(n as usize * (topic.len() + 40));
        let mut ends = Vec::with_capacity(n as usize);
        let mut text = String::new();
        for i in 0..n {
            text.clear();
            text.push_str("[null,null,");
            write_json_string(&mut text, topic);
            text.push(',');
            write_json_string(&mut text, BLAST_EVENT);
            text.push_str(&format!(",{{\"i\":{i}}}]"));
            push_server_frame(&mut bytes, text.as_bytes());
            ends.push(bytes.len());
        }
        Blast {
            topic: topic.to_string(),
            bytes,
            ends,
        }
    }

    fn prefix(&self, n: u64) -> &[u8] {
        match n {
            0 => &[],
            n => &self.bytes[..self.ends[n as usize - 1]],
        }
    }
}

/// Appends an unmasked, final WebSocket text frame (server to client).
fn push_server_frame(out: &mut Vec<u8>, payload: &[u8]) {
    out.push(0x81);
    match payload.len() {
        n if n < 126 => out.push(n as u8),
        n if n <= u16::MAX as usize => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
}

type BlastCache = Arc<Mutex<Option<Arc<Blast>>>>;

fn blast_for(cache: &BlastCache, topic: &str, n: u64) -> Arc<Blast> {
    let mut slot = cache.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(b) = slot.as_ref() {
        if b.topic == topic && b.ends.len() as u64 >= n {
            return b.clone();
        }
    }
    let have = slot.as_ref().map_or(0, |b| b.ends.len() as u64);
    let blast = Arc::new(Blast::build(topic, n.max(have)));
    *slot = Some(blast.clone());
    blast
}

fn main() {
    if let Err(e) = run() {
        eprintln!("phx-bench-server: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), String> {
    let args = Args::parse()?;
    let host = args.str("host").unwrap_or("127.0.0.1").to_string();
    let port = args.u64_or("port", 0)? as u16;
    let prebuild = args.u64_or("max-blast", 0)?.min(MAX_BLAST);
    let cache: BlastCache = Arc::new(Mutex::new(None));
    if prebuild > 0 {
        blast_for(&cache, phx_bench::TOPIC, prebuild);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let listener = listen(&host, port)
            .await
            .map_err(|e| format!("bind {host}:{port}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let mut stdout = std::io::stdout();
        let _ = writeln!(stdout, "ws://{addr}/socket/websocket");
        let _ = stdout.flush();
        loop {
            let (tcp, _) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    // Out of descriptors, say: back off instead of spinning.
                    eprintln!("phx-bench-server: accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let cache = cache.clone();
            tokio::spawn(async move {
                let _ = serve(tcp, cache).await;
            });
        }
    })
}

/// Binds with a deep accept queue: clients open a thousand connections at once, and a full
/// queue drops SYNs, which then wait a second for their retransmission.
async fn listen(host: &str, port: u16) -> std::io::Result<TcpListener> {
    let addr = tokio::net::lookup_host((host, port))
        .await?
        .next()
        .ok_or_else(|| std::io::Error::other("host resolves to nothing"))?;
    let socket = match addr {
        std::net::SocketAddr::V4(_) => TcpSocket::new_v4()?,
        std::net::SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

async fn serve(tcp: TcpStream, cache: BlastCache) -> Result<(), WsError> {
    tcp.set_nodelay(true)?;
    let config = WebSocketConfig::default()
        .read_buffer_size(64 << 10)
        .write_buffer_size(64 << 10)
        .max_write_buffer_size(usize::MAX);
    let mut ws = tokio_tungstenite::accept_async_with_config(tcp, Some(config)).await?;
    while let Some(msg) = ws.next().await {
        handle(&mut ws, msg?, &cache).await?;
        // Answer everything already received, then flush once.
        loop {
            match ws.next().now_or_never() {
                Some(Some(msg)) => handle(&mut ws, msg?, &cache).await?,
                Some(None) => return Ok(()),
                None => break,
            }
        }
        ws.flush().await?;
    }
    Ok(())
}

async fn handle(
    ws: &mut WebSocketStream<TcpStream>,
    msg: Message,
    cache: &BlastCache,
) -> Result<(), WsError> {
    let Message::Text(text) = msg else {
        return Ok(()); // pings are answered by tungstenite; binary frames are not used here
    };
    let Ok(frame) = decode_text(text.as_str()) else {
        return Ok(());
    };
    let phx::protocol::Payload::Json(payload) = frame.payload else {
        return Ok(());
    };
    let (jr, r, topic) = (
        frame.join_ref.as_deref(),
        frame.ref_.as_deref(),
        &*frame.topic,
    );
    let echo = topic.starts_with("echo:");
    let response = match &*frame.event {
        "phx_join" | "phx_leave" | "heartbeat" => Response::Ok("{}"),
        "blast" if echo => {
            let n = payload
                .bytes()
                .filter(u8::is_ascii_digit)
                .fold(0u64, |n, d| {
                    n.saturating_mul(10).saturating_add((d - b'0') as u64)
                })
                .min(MAX_BLAST);
            let blast = blast_for(cache, topic, n);
            ws.flush().await?;
            ws.get_mut().write_all(blast.prefix(n)).await?;
            let mut out = String::new();
            reply(&mut out, jr, r, topic, "ok", &format!("{{\"n\":{n}}}"));
            return ws.feed(Message::Text(out.into())).await;
        }
        _ if echo => Response::Ok(payload),
        _ => Response::Error(r#"{"reason":"unmatched topic"}"#),
    };
    let mut out = String::with_capacity(payload.len() + topic.len() + 64);
    match response {
        Response::Ok(p) => reply(&mut out, jr, r, topic, "ok", p),
        Response::Error(p) => reply(&mut out, jr, r, topic, "error", p),
    }
    ws.feed(Message::Text(out.into())).await
}

enum Response<'a> {
    Ok(&'a str),
    Error(&'a str),
}

/// `[jr,ref,topic,"phx_reply",{"status":STATUS,"response":RESPONSE}]`, `response` spliced raw.
fn reply(
    out: &mut String,
    jr: Option<&str>,
    r: Option<&str>,
    topic: &str,
    status: &str,
    response: &str,
) {
    out.push('[');
    for field in [jr, r] {
        match field {
            Some(s) => write_json_string(out, s),
            None => out.push_str("null"),
        }
        out.push(',');
    }
    write_json_string(out, topic);
    out.push_str(",\"phx_reply\",{\"status\":\"");
    out.push_str(status);
    out.push_str("\",\"response\":");
    out.push_str(response);
    out.push_str("}]");
}
