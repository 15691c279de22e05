//! `phx-testserver [--host 127.0.0.1] [--port 0] [--idle-timeout-ms 60000] [--tls]
//! [--auth-token] [--cert-out FILE] [--exit-on-stdin-eof]`
//!
//! Prints the WebSocket URL as the first (and only) line on stdout, then serves until killed,
//! or until stdin reaches EOF with `--exit-on-stdin-eof`. With `--tls` it serves `wss://` with a
//! self-signed certificate, written to FILE (`--cert-out`) or else printed on stderr, PEM,
//! before the URL is printed.

use phx_testserver::{Config, TestServer};
use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage: phx-testserver [--host HOST] [--port PORT] [--idle-timeout-ms MS] [--tls] [--auth-token] [--cert-out FILE] [--exit-on-stdin-eof]";

struct Args {
    config: Config,
    exit_on_eof: bool,
    cert_out: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut config = Config::default();
    let mut exit_on_eof = false;
    let mut cert_out = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |what: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs {what}"))
        };
        match name.as_str() {
            "--host" => config.host = value("a host")?,
            "--port" => {
                config.port = value("a port")?
                    .parse()
                    .map_err(|_| "--port needs a number 0-65535".to_string())?
            }
            "--idle-timeout-ms" => {
                let ms: u64 = value("milliseconds")?
                    .parse()
                    .map_err(|_| "--idle-timeout-ms needs a number".to_string())?;
                config.idle_timeout = Duration::from_millis(ms);
            }
            "--tls" => config.tls = true,
            "--auth-token" => config.auth_token = true,
            "--cert-out" => cert_out = Some(value("a file path")?),
            "--exit-on-stdin-eof" => exit_on_eof = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if cert_out.is_some() && !config.tls {
        return Err("--cert-out needs --tls".into());
    }
    Ok(Args {
        config,
        exit_on_eof,
        cert_out,
    })
}

fn main() -> ExitCode {
    let Args {
        config,
        exit_on_eof,
        cert_out,
    } = match parse_args() {
        Ok(c) => c,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("phx-testserver: {msg}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("phx-testserver: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let server = match TestServer::start(config).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("phx-testserver: cannot listen: {e}");
                return ExitCode::FAILURE;
            }
        };
        if let Some(pem) = server.cert_pem() {
            let written = match &cert_out {
                Some(path) => std::fs::write(path, pem).map_err(|e| format!("{path}: {e}")),
                None => {
                    let mut stderr = std::io::stderr().lock();
                    stderr
                        .write_all(pem.as_bytes())
                        .and_then(|_| stderr.flush())
                        .map_err(|e| e.to_string())
                }
            };
            if let Err(e) = written {
                eprintln!("phx-testserver: cannot write the certificate: {e}");
                return ExitCode::FAILURE;
            }
        }
        let mut stdout = std::io::stdout().lock();
        if writeln!(stdout, "{}", server.url())
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
        drop(server);
        ExitCode::SUCCESS
    })
}
