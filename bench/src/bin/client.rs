//! `phx-bench-client`: the Rust clients of the benchmark.
//!
//! ```text
//! phx-bench-client --client floor|engine --scenario recv|reqresp|latency|memory --url URL
//!                  [--n N] [--window W] [--sockets S]
//! ```
//!
//! - `floor`: a raw tokio-tungstenite client with no channel logic: it sends pre-encoded frames
//!   and tells server pushes from replies by their first bytes. What any client must pay for
//!   TCP + WebSocket on this machine.
//! - `engine`: libphx's Rust engine (`phx::engine`) as an application uses it: sockets on the
//!   shared runtime, a `ChannelHandler` counting messages, pushes completed through `OnReply`.
//!
//! Prints one `RESULT ...` line (see `phx_bench`).

use futures_util::{FutureExt, SinkExt, StreamExt};
use phx::engine::{Body, Channel, ChannelHandler, Config, Message, Socket, Status};
use phx_bench::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message as WsMessage, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

struct Opts {
    url: String,
    n: u64,
    window: u64,
    sockets: u64,
}

fn main() {
    if let Err(e) = run() {
        eprintln!("phx-bench-client: {e}");
        std::process::exit(2);
    }
    // Skip tearing a thousand sockets down: the measurement is over.
    std::process::exit(0);
}

fn run() -> Result<(), String> {
    let args = Args::parse()?;
    let client = args.required("client")?.to_string();
    let scenario = args.required("scenario")?.to_string();
    let opts = Opts {
        url: args.required("url")?.to_string(),
        n: args.u64_or("n", 0)?,
        window: args.u64_or("window", 1000)?.max(1),
        sockets: args.u64_or("sockets", 1000)?.max(1),
    };
    match client.as_str() {
        "floor" => floor::run(&scenario, &opts),
        "engine" => engine::run(&scenario, &opts),
        other => Err(format!("unknown client {other:?} (floor, engine)")),
    }
}

/// The WebSocket settings libphx uses (`phx::engine::Config` defaults and
/// `engine::connection::open`), so the floor pays for the same buffers.
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(8 << 10)
        .write_buffer_size(16 << 10)
        .max_write_buffer_size(usize::MAX)
        .max_frame_size(Some(16 << 20))
        .max_message_size(Some(16 << 20))
}

// ---- the floor ----------------------------------------------------------------------------------

mod floor {
    use super::*;

    type Ws = WebSocketStream<TcpStream>;
    type WsResult<T> = Result<T, tokio_tungstenite::tungstenite::Error>;

    const JOIN: &str = r#"["1","1","echo:bench","phx_join",{}]"#;

    fn push_frame() -> Utf8Bytes {
        Utf8Bytes::from(format!(r#"["1","2","{TOPIC}","echo",{ECHO_PAYLOAD}]"#))
    }

    fn blast_frame(n: u64) -> Utf8Bytes {
        Utf8Bytes::from(format!(r#"["1","3","{TOPIC}","blast",{{"n":{n}}}]"#))
    }

    /// The cheap byte check: server pushes start `[null,null,`, replies `["`.
    fn is_push(msg: &WsMessage) -> Option<bool> {
        match msg {
            WsMessage::Text(t) => Some(t.as_bytes().starts_with(b"[null,null,")),
            _ => None,
        }
    }

    pub fn run(scenario: &str, o: &Opts) -> Result<(), String> {
        // A multi-thread runtime like libphx's shared one (one worker per available core, so
        // one when pinned); a current-thread runtime was slower here at opening many
        // connections at once.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let (scenario, o) = (
            scenario.to_string(),
            Opts {
                url: o.url.clone(),
                ..*o
            },
        );
        rt.block_on(async move {
            tokio::spawn(async move {
                match scenario.as_str() {
                    "recv" => recv(&o).await,
                    "reqresp" => reqresp(&o).await,
                    "latency" => latency(&o).await,
                    "memory" => memory(&o).await,
                    other => return Err(format!("unknown scenario {other:?}")),
                }
                .map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| e.to_string())?
        })
    }

    async fn connect(url: &str) -> WsResult<Ws> {
        let ep = phx::engine::endpoint(url, &[]).map_err(std::io::Error::other)?;
        let tcp = TcpStream::connect((ep.host.as_str(), ep.port)).await?;
        tcp.set_nodelay(true)?;
        let (ws, _) =
            tokio_tungstenite::client_async_with_config(ep.url.as_str(), tcp, Some(ws_config()))
                .await?;
        Ok(ws)
    }

    async fn connect_joined(url: &str) -> WsResult<Ws> {
        let mut ws = connect(url).await?;
        ws.send(WsMessage::Text(Utf8Bytes::from_static(JOIN)))
            .await?;
        while let Some(msg) = ws.next().await {
            if is_push(&msg?) == Some(false) {
                return Ok(ws);
            }
        }
        Err(tokio_tungstenite::tungstenite::Error::ConnectionClosed)
    }

    /// Asks for a blast of `n` and reads until `n` pushes and the blast's reply are in.
    async fn blast(ws: &mut Ws, n: u64) -> WsResult<u64> {
        ws.send(WsMessage::Text(blast_frame(n))).await?;
        let (mut pushes, mut replied) = (0u64, false);
        while pushes < n || !replied {
            let Some(msg) = ws.next().await else {
                break;
            };
            match is_push(&msg?) {
                Some(true) => pushes += 1,
                Some(false) => replied = true,
                None => {}
            }
        }
        Ok(pushes)
    }

    async fn recv(o: &Opts) -> WsResult<()> {
        let mut ws = connect_joined(&o.url).await?;
        blast(&mut ws, warmup_recv(o.n)).await?;
        let sw = Stopwatch::start();
        let got = blast(&mut ws, o.n).await?;
        let m = sw.stop();
        Record::new("floor", "recv")
            .field("count", got)
            .measured(&m)
            .print();
        Ok(())
    }

    /// `total` pushes with at most `window` unanswered; each reply sends the next push. Frames
    /// read together are answered together, with one flush.
    async fn pipeline(ws: &mut Ws, total: u64, window: u64) -> WsResult<u64> {
        let frame = push_frame();
        let mut sent = 0;
        while sent < total.min(window) {
            ws.feed(WsMessage::Text(frame.clone())).await?;
            sent += 1;
        }
        ws.flush().await?;
        let mut done = 0;
        while done < total {
            let Some(msg) = ws.next().await else {
                break;
            };
            let mut msg = msg?;
            loop {
                if is_push(&msg) == Some(false) {
                    done += 1;
                    if sent < total {
                        ws.feed(WsMessage::Text(frame.clone())).await?;
                        sent += 1;
                    }
                }
                match ws.next().now_or_never() {
                    Some(Some(next)) => msg = next?,
                    _ => break,
                }
            }
            ws.flush().await?;
        }
        Ok(done)
    }

    async fn reqresp(o: &Opts) -> WsResult<()> {
        let mut ws = connect_joined(&o.url).await?;
        pipeline(&mut ws, warmup_reqresp(o.n), o.window).await?;
        let sw = Stopwatch::start();
        let done = pipeline(&mut ws, o.n, o.window).await?;
        let m = sw.stop();
        Record::new("floor", "reqresp")
            .field("count", done)
            .field("window", o.window)
            .measured(&m)
            .print();
        Ok(())
    }

    async fn round_trips(ws: &mut Ws, n: u64, rtts: &mut Vec<f64>) -> WsResult<()> {
        let frame = push_frame();
        for _ in 0..n {
            let t = Instant::now();
            ws.send(WsMessage::Text(frame.clone())).await?;
            loop {
                let Some(msg) = ws.next().await else {
                    return Err(tokio_tungstenite::tungstenite::Error::ConnectionClosed);
                };
                if is_push(&msg?) == Some(false) {
                    break;
                }
            }
            rtts.push(t.elapsed().as_secs_f64() * 1e6);
        }
        Ok(())
    }

    async fn latency(o: &Opts) -> WsResult<()> {
        let mut ws = connect_joined(&o.url).await?;
        round_trips(&mut ws, warmup_latency(o.n), &mut Vec::new()).await?;
        let mut rtts = Vec::with_capacity(o.n as usize);
        let sw = Stopwatch::start();
        round_trips(&mut ws, o.n, &mut rtts).await?;
        let m = sw.stop();
        Record::new("floor", "latency")
            .field("count", rtts.len())
            .measured(&m)
            .latencies(rtts)
            .print();
        Ok(())
    }

    /// Opens `count` joined connections, each kept by a task reading (and dropping) frames.
    async fn open_many(url: &str, count: u64) -> WsResult<()> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for _ in 0..count {
            let (url, tx) = (url.to_string(), tx.clone());
            tokio::spawn(async move {
                match connect_joined(&url).await {
                    Ok(mut ws) => {
                        let _ = tx.send(Ok(()));
                        while let Some(Ok(_)) = ws.next().await {}
                    }
                    Err(e) => drop(tx.send(Err(e))),
                }
            });
        }
        for _ in 0..count {
            rx.recv()
                .await
                .unwrap_or(Err(tokio_tungstenite::tungstenite::Error::ConnectionClosed))?;
        }
        Ok(())
    }

    async fn memory(o: &Opts) -> WsResult<()> {
        open_many(&o.url, 10).await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = rss_kib();
        let sw = Stopwatch::start();
        open_many(&o.url, o.sockets).await?;
        let m = sw.stop();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let after = rss_kib();
        memory_record("floor", o.sockets, before, after, &m);
        Ok(())
    }
}

fn memory_record(client: &str, sockets: u64, before: u64, after: u64, m: &Measured) {
    let per = (after.saturating_sub(before)) as f64 / sockets as f64;
    Record::new(client, "memory")
        .field("count", sockets)
        .field("rss_before_kib", before)
        .field("rss_after_kib", after)
        .field("kib_per_socket", format!("{per:.2}"))
        .measured(m)
        .print();
}

// ---- the libphx engine ----------------------------------------------------------------------------

mod engine {
    use super::*;

    pub fn run(scenario: &str, o: &Opts) -> Result<(), String> {
        match scenario {
            "recv" => recv(o),
            "reqresp" => reqresp(o),
            "latency" => latency(o),
            "memory" => memory(o),
            other => Err(format!("unknown scenario {other:?}")),
        }
    }

    /// Counts the blast's messages and signals when the current target is reached.
    struct Counter {
        count: AtomicU64,
        target: AtomicU64,
        reached: Mutex<mpsc::Sender<()>>,
    }

    impl ChannelHandler for Counter {
        fn on_message(&self, message: &Message<'_>) {
            if message.event == BLAST_EVENT {
                let c = self.count.fetch_add(1, Ordering::Relaxed) + 1;
                if c == self.target.load(Ordering::Relaxed) {
                    let _ = self.reached.lock().unwrap().send(());
                }
            }
        }
    }

    /// A connected socket and its joined channel (with `handler` installed before the join).
    fn open(
        url: &str,
        handler: Option<Arc<dyn ChannelHandler>>,
    ) -> Result<(Socket, Channel), String> {
        let socket = Socket::new_shared(Config::new(url))?;
        socket.connect();
        let channel = socket.channel(TOPIC);
        channel.set_handler(handler);
        let (tx, rx) = mpsc::channel();
        channel
            .join(
                Body::Json("{}".into()),
                None,
                Box::new(move |status, _| {
                    let _ = tx.send(status);
                }),
            )
            .map_err(|s| format!("join: {s:?}"))?;
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Status::Ok) => Ok((socket, channel)),
            other => Err(format!("join failed: {other:?}")),
        }
    }

    fn blast(channel: &Channel, counter: &Counter, reached: &mpsc::Receiver<()>, n: u64) {
        let base = counter.count.load(Ordering::Relaxed);
        counter.target.store(base + n, Ordering::Relaxed);
        let (tx, replied) = mpsc::channel();
        channel
            .push(
                "blast",
                Body::Json(format!("{{\"n\":{n}}}")),
                Some(PUSH_TIMEOUT),
                Box::new(move |status, _| {
                    let _ = tx.send(status);
                }),
            )
            .expect("push blast");
        if n > 0 {
            reached.recv().expect("messages");
        }
        assert_eq!(replied.recv().expect("blast reply"), Status::Ok);
    }

    fn recv(o: &Opts) -> Result<(), String> {
        let (tx, reached) = mpsc::channel();
        let counter = Arc::new(Counter {
            count: AtomicU64::new(0),
            target: AtomicU64::new(u64::MAX),
            reached: Mutex::new(tx),
        });
        let (_socket, channel) = open(&o.url, Some(counter.clone()))?;
        blast(&channel, &counter, &reached, warmup_recv(o.n));
        let before = counter.count.load(Ordering::Relaxed);
        let sw = Stopwatch::start();
        blast(&channel, &counter, &reached, o.n);
        let m = sw.stop();
        Record::new("engine", "recv")
            .field("count", counter.count.load(Ordering::Relaxed) - before)
            .measured(&m)
            .print();
        Ok(())
    }

    /// Pipelined pushes: every completion pushes the next one, from the callback.
    struct Pipeline {
        channel: Channel,
        total: u64,
        issued: AtomicU64,
        completed: AtomicU64,
        errors: AtomicU64,
        done: Mutex<mpsc::Sender<()>>,
    }

    fn issue(p: &Arc<Pipeline>) {
        if p.issued.fetch_add(1, Ordering::Relaxed) >= p.total {
            return;
        }
        let me = p.clone();
        let on_reply = Box::new(
            move |status: Status, _: Option<phx::engine::ReplyRef<'_>>| {
                if status != Status::Ok {
                    me.errors.fetch_add(1, Ordering::Relaxed);
                }
                issue(&me);
                if me.completed.fetch_add(1, Ordering::Relaxed) + 1 == me.total {
                    let _ = me.done.lock().unwrap().send(());
                }
            },
        );
        p.channel
            .push(
                "echo",
                Body::Json(ECHO_PAYLOAD.to_string()),
                Some(PUSH_TIMEOUT),
                on_reply,
            )
            .expect("push");
    }

    fn pipeline(channel: &Channel, total: u64, window: u64) -> (u64, u64) {
        let (tx, done) = mpsc::channel();
        let p = Arc::new(Pipeline {
            channel: channel.clone(),
            total,
            issued: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            done: Mutex::new(tx),
        });
        for _ in 0..window.min(total) {
            issue(&p);
        }
        done.recv().expect("pipeline done");
        (
            p.completed.load(Ordering::Relaxed),
            p.errors.load(Ordering::Relaxed),
        )
    }

    fn reqresp(o: &Opts) -> Result<(), String> {
        let (_socket, channel) = open(&o.url, None)?;
        pipeline(&channel, warmup_reqresp(o.n), o.window);
        let sw = Stopwatch::start();
        let (done, errors) = pipeline(&channel, o.n, o.window);
        let m = sw.stop();
        Record::new("engine", "reqresp")
            .field("count", done)
            .field("window", o.window)
            .field("errors", errors)
            .measured(&m)
            .print();
        Ok(())
    }

    /// One push at a time; each completion records its round trip and pushes the next.
    struct Pinger {
        channel: Channel,
        n: usize,
        sent_at: Mutex<Instant>,
        rtts: Mutex<Vec<f64>>,
        done: Mutex<mpsc::Sender<()>>,
    }

    fn ping(p: &Arc<Pinger>) {
        let me = p.clone();
        *p.sent_at.lock().unwrap() = Instant::now();
        p.channel
            .push(
                "echo",
                Body::Json(ECHO_PAYLOAD.to_string()),
                Some(PUSH_TIMEOUT),
                Box::new(move |status, _| {
                    let rtt = me.sent_at.lock().unwrap().elapsed().as_secs_f64() * 1e6;
                    assert_eq!(status, Status::Ok);
                    let len = {
                        let mut rtts = me.rtts.lock().unwrap();
                        rtts.push(rtt);
                        rtts.len()
                    };
                    if len < me.n {
                        ping(&me);
                    } else {
                        let _ = me.done.lock().unwrap().send(());
                    }
                }),
            )
            .expect("push");
    }

    fn round_trips(channel: &Channel, n: u64) -> Vec<f64> {
        let (tx, done) = mpsc::channel();
        let p = Arc::new(Pinger {
            channel: channel.clone(),
            n: n as usize,
            sent_at: Mutex::new(Instant::now()),
            rtts: Mutex::new(Vec::with_capacity(n as usize)),
            done: Mutex::new(tx),
        });
        ping(&p);
        done.recv().expect("round trips done");
        let rtts = std::mem::take(&mut *p.rtts.lock().unwrap());
        rtts
    }

    fn latency(o: &Opts) -> Result<(), String> {
        let (_socket, channel) = open(&o.url, None)?;
        round_trips(&channel, warmup_latency(o.n));
        let sw = Stopwatch::start();
        let rtts = round_trips(&channel, o.n);
        let m = sw.stop();
        Record::new("engine", "latency")
            .field("count", rtts.len())
            .measured(&m)
            .latencies(rtts)
            .print();
        Ok(())
    }

    /// Join replies of `open_many`: counted on the runtime's threads, with one wake-up of the
    /// waiting thread when the last one is in (as the C client does), so that the figures
    /// are the library's hand-offs, not this harness's.
    struct Joins {
        replied: AtomicU64,
        failed: AtomicU64,
        target: AtomicU64,
        done: Mutex<mpsc::Sender<()>>,
    }

    /// Opens `count` sockets at once, each joining one channel; waits for every join.
    fn open_many(
        url: &str,
        count: u64,
        joins: &Arc<Joins>,
        done: &mpsc::Receiver<()>,
        keep: &mut Vec<(Socket, Channel)>,
    ) -> Result<(), String> {
        let target = joins.replied.load(Ordering::Acquire) + count;
        joins.target.store(target, Ordering::Release);
        for _ in 0..count {
            let socket = Socket::new_shared(Config::new(url))?;
            socket.connect();
            let channel = socket.channel(TOPIC);
            let joins_cb = joins.clone();
            channel
                .join(
                    Body::Json("{}".into()),
                    Some(Duration::from_secs(60)),
                    Box::new(move |status, _| {
                        if status != Status::Ok {
                            joins_cb.failed.fetch_add(1, Ordering::Relaxed);
                        }
                        let n = joins_cb.replied.fetch_add(1, Ordering::AcqRel) + 1;
                        if n == joins_cb.target.load(Ordering::Acquire) {
                            let _ = joins_cb.done.lock().unwrap().send(());
                        }
                    }),
                )
                .map_err(|s| format!("join: {s:?}"))?;
            keep.push((socket, channel));
        }
        // The last reply sends exactly one signal for this target (count > 0).
        done.recv_timeout(Duration::from_secs(120))
            .map_err(|_| "joins timed out".to_string())?;
        match joins.failed.load(Ordering::Relaxed) {
            0 => Ok(()),
            n => Err(format!("{n} joins failed")),
        }
    }

    fn memory(o: &Opts) -> Result<(), String> {
        let mut keep = Vec::new();
        let (tx, done) = mpsc::channel();
        let joins = Arc::new(Joins {
            replied: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            target: AtomicU64::new(u64::MAX),
            done: Mutex::new(tx),
        });
        open_many(&o.url, 10, &joins, &done, &mut keep)?;
        std::thread::sleep(Duration::from_millis(300));
        let before = rss_kib();
        let sw = Stopwatch::start();
        open_many(&o.url, o.sockets, &joins, &done, &mut keep)?;
        let m = sw.stop();
        std::thread::sleep(Duration::from_millis(300));
        let after = rss_kib();
        memory_record("engine", o.sockets, before, after, &m);
        drop(keep);
        Ok(())
    }
}
