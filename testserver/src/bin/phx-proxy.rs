//! `phx-proxy --upstream HOST:PORT [--port 0] [--control-port 0] [--exit-on-stdin-eof]`
//!
//! A TCP fault proxy in front of a server (see `docs/testserver.md`). Prints two lines on
//! stdout: the address clients connect to, then the base URL of the HTTP controls
//! (`http://127.0.0.1:PORT`), and serves until killed or, with `--exit-on-stdin-eof`, until
//! stdin reaches EOF.

use phx_testserver::Proxy;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::ExitCode;

const USAGE: &str =
    "usage: phx-proxy --upstream HOST:PORT [--port PORT] [--control-port PORT] [--exit-on-stdin-eof]";

fn main() -> ExitCode {
    let mut upstream = None;
    let mut port = 0u16;
    let mut control_port = 0u16;
    let mut exit_on_eof = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let ok = match arg.as_str() {
            "--upstream" => args.next().and_then(|v| {
                std::net::ToSocketAddrs::to_socket_addrs(&v)
                    .ok()?
                    .next()
                    .map(|a| upstream = Some(a))
            }),
            "--port" => args.next().and_then(|v| v.parse().ok()).map(|p| port = p),
            "--control-port" => args
                .next()
                .and_then(|v| v.parse().ok())
                .map(|p| control_port = p),
            "--exit-on-stdin-eof" => {
                exit_on_eof = true;
                Some(())
            }
            _ => None,
        };
        if ok.is_none() {
            eprintln!("phx-proxy: bad argument {arg}\n{USAGE}");
            return ExitCode::from(2);
        }
    }
    let Some(upstream) = upstream else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("phx-proxy: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let local = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        let mut proxy = match Proxy::start_on(local(port), upstream).await {
            Ok(p) => p,
            Err(e) => {
                eprintln!("phx-proxy: cannot listen: {e}");
                return ExitCode::FAILURE;
            }
        };
        let control = match proxy.serve_controls(local(control_port)).await {
            Ok(a) => a,
            Err(e) => {
                eprintln!("phx-proxy: cannot listen for controls: {e}");
                return ExitCode::FAILURE;
            }
        };
        let mut stdout = std::io::stdout().lock();
        if writeln!(stdout, "{}\nhttp://{control}", proxy.addr())
            .and_then(|_| stdout.flush())
            .is_err()
        {
            return ExitCode::FAILURE;
        }
        drop(stdout);
        if exit_on_eof {
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                let mut stdin = std::io::stdin().lock();
                while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
                let _ = tx.send(());
            });
            let _ = rx.await;
        } else {
            std::future::pending::<()>().await;
        }
        ExitCode::SUCCESS
    })
}
