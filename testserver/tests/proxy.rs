//! The TCP fault proxy over real sockets, against a tiny upstream that records what it gets.

use phx_testserver::Proxy;
use std::io::ErrorKind;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};

/// An upstream that echoes everything it reads (`echo`) or only reports it. Every accepted
/// connection's stream of reads arrives on the receiver (an empty vector at EOF).
async fn upstream(echo: bool) -> (std::net::SocketAddr, mpsc::UnboundedReceiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                loop {
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    let _ = tx.send(buf[..n].to_vec());
                    if n == 0 || (echo && s.write_all(&buf[..n]).await.is_err()) {
                        return;
                    }
                }
            });
        }
    });
    (addr, rx)
}

async fn read_exact_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    timeout(Duration::from_secs(30), s.read_exact(&mut buf))
        .await
        .expect("bytes within 30 s")
        .expect("read");
    buf
}

/// Collects what the upstream received until `n` bytes (or EOF).
async fn received(rx: &mut mpsc::UnboundedReceiver<Vec<u8>>, n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while out.len() < n {
        let chunk = timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("upstream data within 30 s")
            .unwrap();
        if chunk.is_empty() {
            break;
        }
        out.extend(chunk);
    }
    out
}

#[tokio::test]
async fn forwards_both_ways_and_counts_connections() {
    let (up, _rx) = upstream(true).await;
    let proxy = Proxy::start(up).await.unwrap();
    let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
    let data: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
    let (mut r, mut w) = c.split();
    let (_, back) = tokio::join!(w.write_all(&data), async {
        let mut buf = vec![0u8; data.len()];
        r.read_exact(&mut buf).await.unwrap();
        buf
    });
    assert_eq!(back, data);
    let stats = proxy.controls().stats();
    assert_eq!((stats.accepted, stats.open), (1, 1));
    assert_eq!(
        proxy.url_for("ws://127.0.0.1:1/socket/websocket"),
        format!("ws://{}/socket/websocket", proxy.addr())
    );
}

#[tokio::test]
async fn latency_delays_every_chunk_and_keeps_order() {
    let (up, _rx) = upstream(true).await;
    let proxy = Proxy::start(up).await.unwrap();
    proxy
        .controls()
        .set_latency(Duration::from_millis(150), Duration::from_millis(50));
    let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
    let start = Instant::now();
    for i in 0..20u8 {
        c.write_all(&[i]).await.unwrap();
    }
    let back = read_exact_n(&mut c, 20).await;
    // Out and back: at least twice the latency.
    assert!(start.elapsed() >= Duration::from_millis(300));
    assert_eq!(back, (0..20u8).collect::<Vec<_>>());
}

#[tokio::test]
async fn bandwidth_cap_slows_a_transfer() {
    let (up, mut rx) = upstream(false).await;
    let proxy = Proxy::start(up).await.unwrap();
    proxy.controls().set_bandwidth(Some(100_000));
    let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
    let start = Instant::now();
    c.write_all(&[7u8; 50_000]).await.unwrap();
    assert_eq!(received(&mut rx, 50_000).await.len(), 50_000);
    // 50 kB at 100 kB/s: at least 0.4 s whatever the machine's load (the first slice is free).
    assert!(
        start.elapsed() >= Duration::from_millis(400),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn reset_sends_an_rst_to_the_client() {
    let (up, mut rx) = upstream(true).await;
    let proxy = Proxy::start(up).await.unwrap();
    let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
    c.write_all(b"hi").await.unwrap();
    assert_eq!(read_exact_n(&mut c, 2).await, b"hi");
    assert_eq!(proxy.controls().reset_all(), 1);
    let mut buf = [0u8; 16];
    let r = timeout(Duration::from_secs(30), c.read(&mut buf))
        .await
        .unwrap();
    assert_eq!(
        r.map_err(|e| e.kind()),
        Err(ErrorKind::ConnectionReset),
        "an RST, not a FIN"
    );
    assert_eq!(
        received(&mut rx, 3).await,
        b"hi",
        "upstream sees the end too"
    );
}

#[tokio::test]
async fn half_open_holds_everything_until_turned_off_and_spares_new_connections() {
    let (up, _rx) = upstream(true).await;
    let proxy = Proxy::start(up).await.unwrap();
    let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
    c.write_all(b"a").await.unwrap();
    assert_eq!(read_exact_n(&mut c, 1).await, b"a");
    assert_eq!(proxy.controls().set_half_open(true), 1);
    c.write_all(b"held").await.unwrap();
    let mut buf = [0u8; 8];
    assert!(
        timeout(Duration::from_millis(300), c.read(&mut buf))
            .await
            .is_err(),
        "nothing comes back while half-open"
    );
    // A connection made meanwhile works.
    let mut d = TcpStream::connect(proxy.addr()).await.unwrap();
    d.write_all(b"new").await.unwrap();
    assert_eq!(read_exact_n(&mut d, 3).await, b"new");
    proxy.controls().set_half_open(false);
    assert_eq!(read_exact_n(&mut c, 4).await, b"held");
}

#[tokio::test]
async fn close_after_cuts_at_the_byte_limit() {
    let (up, mut rx) = upstream(false).await;
    let proxy = Proxy::start(up).await.unwrap();
    let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
    c.write_all(b"0123").await.unwrap();
    assert_eq!(received(&mut rx, 4).await, b"0123");
    assert_eq!(proxy.controls().close_after(Some(10)), 1);
    c.write_all(&[b'x'; 100]).await.unwrap();
    assert_eq!(received(&mut rx, 1000).await, vec![b'x'; 10]);
    let mut buf = [0u8; 8];
    let n = timeout(Duration::from_secs(30), c.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 0, "the client sees the connection close");
}

#[tokio::test]
async fn slow_reader_stops_reading_from_the_client_only() {
    let (up, mut rx) = upstream(false).await;
    let proxy = Proxy::start(up).await.unwrap();
    proxy.controls().set_slow_reader(true);
    let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
    // Write until the kernel buffers are full and the write stalls.
    let chunk = vec![1u8; 64 * 1024];
    let mut written = 0usize;
    while let Ok(r) = timeout(Duration::from_millis(500), c.write_all(&chunk)).await {
        r.unwrap();
        written += chunk.len();
        assert!(written < 512 << 20, "writes never stalled");
    }
    assert!(rx.try_recv().is_err(), "upstream got nothing");
    proxy.controls().set_slow_reader(false);
    assert!(received(&mut rx, written).await.len() >= written);
}

#[tokio::test]
async fn http_controls_drive_the_same_faults() {
    let (up, _rx) = upstream(true).await;
    let mut proxy = Proxy::start(up).await.unwrap();
    let control = proxy
        .serve_controls("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let get = |path: &'static str| async move {
        let mut s = TcpStream::connect(control).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    };
    let _c = TcpStream::connect(proxy.addr()).await.unwrap();
    assert!(get("/latency?ms=5&jitter_ms=1")
        .await
        .starts_with("HTTP/1.1 200"));
    assert!(get("/latency?ms=x").await.starts_with("HTTP/1.1 400"));
    assert!(get("/nope").await.starts_with("HTTP/1.1 404"));
    let stats = get("/stats").await;
    assert!(stats.ends_with(r#"{"accepted":1,"open":1}"#), "{stats}");
    assert!(get("/reset").await.contains(r#""connections":1"#));
}
