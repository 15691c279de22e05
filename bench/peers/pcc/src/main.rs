//! `phx-bench-pcc`: the benchmark's workloads through `phoenix_channels_client` 0.1.2
//! (crates.io), for comparison with libphx. Same server, scenarios, warm-ups and `RESULT` line
//! as `phx-bench-client` (bench/src/bin/client.rs); a separate project so that its dependencies
//! stay out of the workspace.
//!
//! ```text
//! phx-bench-pcc --url URL --scenario recv|reqresp|latency|memory [--n N] [--window W]
//! ```
//!
//! In *memory* N is the number of sockets (clients), each connected and joined to one channel
//! at once, after 10 first; the line reports the resident memory they added, per socket.
//!
//! This client hands server pushes to channels through a bounded broadcast queue that drops
//! what a slow listener has not taken, so in *receive* it may deliver fewer than N pushes: it
//! waits for the server's reply to the blast (written after the last push), then until no push
//! has arrived for 200 ms, and reports what it delivered (`count`) beside what was sent (`sent`).

use phoenix_channels_client::{Channel, Client, Config, Payload};
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "../../measure.rs"]
mod measure;
use measure::{opts, rss_kib, Opts, Stopwatch};

const TOPIC: &str = "echo:bench";
const TIMEOUT: Option<Duration> = Some(Duration::from_secs(600));

async fn open(url: &str) -> Result<(Client, Arc<Channel>), String> {
    let config = Config::new(url).map_err(|e| format!("url: {e:?}"))?;
    let mut client = Client::new(config).map_err(|e| format!("client: {e:?}"))?;
    client
        .connect()
        .await
        .map_err(|e| format!("connect: {e:?}"))?;
    let channel = client
        .join(TOPIC, Some(Duration::from_secs(30)))
        .await
        .map_err(|e| format!("join: {e:?}"))?;
    Ok((client, channel))
}

/// Asks the server for `n` pushes; returns when they stopped arriving, with the time the last
/// one was seen.
async fn blast(channel: &Channel, count: &AtomicU64, n: u64) -> Instant {
    let target = count.load(Ordering::Relaxed) + n;
    channel
        .send_with_timeout("blast", json!({ "n": n }), TIMEOUT)
        .await
        .expect("blast reply");
    let (mut seen, mut at, mut quiet) = (count.load(Ordering::Relaxed), Instant::now(), 0);
    while seen < target && quiet < 20 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let now = count.load(Ordering::Relaxed);
        if now == seen {
            quiet += 1;
        } else {
            (seen, at, quiet) = (now, Instant::now(), 0);
        }
    }
    at
}

async fn recv(o: &Opts) -> Result<String, String> {
    let (_client, channel) = open(&o.url).await?;
    let count = Arc::new(AtomicU64::new(0));
    let c = count.clone();
    channel
        .on("m", move |_, _: &Payload| {
            c.fetch_add(1, Ordering::Relaxed);
        })
        .await
        .map_err(|e| format!("on: {e:?}"))?;
    blast(&channel, &count, (o.n / 10).clamp(1, 50_000)).await;
    let before = count.load(Ordering::Relaxed);
    let sw = Stopwatch::start();
    let end = blast(&channel, &count, o.n).await;
    let got = count.load(Ordering::Relaxed) - before;
    Ok(format!("count={got} {}", sw.fields(end)))
}

/// `total` pushes, at most `window` in flight; returns (completed, errors).
async fn pipeline(channel: &Arc<Channel>, total: u64, window: u64) -> (u64, u64) {
    let issued = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..window.min(total))
        .map(|_| {
            let (channel, issued, errors) = (channel.clone(), issued.clone(), errors.clone());
            tokio::spawn(async move {
                let mut done = 0u64;
                while issued.fetch_add(1, Ordering::Relaxed) < total {
                    let body = json!({ "body": "0123456789abcdef" });
                    if channel
                        .send_with_timeout("echo", body, TIMEOUT)
                        .await
                        .is_err()
                    {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    done += 1;
                }
                done
            })
        })
        .collect();
    let mut completed = 0;
    for w in workers {
        completed += w.await.unwrap_or(0);
    }
    (completed, errors.load(Ordering::Relaxed))
}

async fn reqresp(o: &Opts) -> Result<String, String> {
    let (_client, channel) = open(&o.url).await?;
    pipeline(&channel, (o.n / 10).clamp(1, 20_000), o.window).await;
    let sw = Stopwatch::start();
    let (done, errors) = pipeline(&channel, o.n, o.window).await;
    let end = Instant::now();
    Ok(format!(
        "count={done} window={} errors={errors} {}",
        o.window,
        sw.fields(end)
    ))
}

async fn latency(o: &Opts) -> Result<String, String> {
    let (_client, channel) = open(&o.url).await?;
    let once = || async {
        let t = Instant::now();
        let body = json!({ "body": "0123456789abcdef" });
        channel
            .send_with_timeout("echo", body, TIMEOUT)
            .await
            .map_err(|e| format!("echo: {e:?}"))?;
        Ok::<f64, String>(t.elapsed().as_secs_f64() * 1e6)
    };
    for _ in 0..(o.n / 10).clamp(1, 2_000) {
        once().await?;
    }
    let sw = Stopwatch::start();
    let mut rtts = Vec::with_capacity(o.n as usize);
    for _ in 0..o.n {
        rtts.push(once().await?);
    }
    let end = Instant::now();
    rtts.sort_by(f64::total_cmp);
    let q = |q: f64| rtts[((q * rtts.len() as f64).ceil() as usize).clamp(1, rtts.len()) - 1];
    let mean = rtts.iter().sum::<f64>() / rtts.len().max(1) as f64;
    Ok(format!(
        "count={} {} p50_us={:.1} p99_us={:.1} mean_us={mean:.1}",
        rtts.len(),
        sw.fields(end),
        q(0.5),
        q(0.99)
    ))
}

/// Opens `count` clients at once, each connected and joined; keeps them in `keep`.
async fn open_many(
    url: &str,
    count: u64,
    keep: &mut Vec<(Client, Arc<Channel>)>,
) -> Result<(), String> {
    let tasks: Vec<_> = (0..count)
        .map(|_| {
            let url = url.to_string();
            tokio::spawn(async move { open(&url).await })
        })
        .collect();
    for t in tasks {
        keep.push(t.await.map_err(|e| format!("task: {e}"))??);
    }
    Ok(())
}

async fn memory(o: &Opts) -> Result<String, String> {
    let mut keep = Vec::new();
    open_many(&o.url, 10, &mut keep).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_kib();
    let sw = Stopwatch::start();
    open_many(&o.url, o.n, &mut keep).await?;
    let end = Instant::now();
    let fields = sw.fields(end);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = rss_kib();
    let per = after.saturating_sub(before) as f64 / o.n.max(1) as f64;
    // Skip tearing the clients down: the measurement is over.
    std::mem::forget(keep);
    Ok(format!(
        "count={} rss_before_kib={before} rss_after_kib={after} kib_per_socket={per:.2} {fields}",
        o.n
    ))
}

#[tokio::main]
async fn main() {
    let result = match opts() {
        Ok(o) => match o.scenario.as_str() {
            "recv" => recv(&o).await,
            "reqresp" => reqresp(&o).await,
            "latency" => latency(&o).await,
            "memory" => memory(&o).await,
            s => Err(format!("unknown scenario {s}")),
        }
        .map(|fields| format!("RESULT client=pcc scenario={} {fields}", o.scenario)),
        Err(e) => Err(e),
    };
    match result {
        Ok(line) => println!("{line}"),
        Err(e) => {
            eprintln!("phx-bench-pcc: {e}");
            std::process::exit(2);
        }
    }
    // Skip the teardown (a thousand clients in *memory*): the measurement is over.
    std::process::exit(0);
}
