//! The TLS listener (`Config::tls`, `--tls`): the same server behind a self-signed
//! certificate, WebSocket and controls alike.

mod common;

use common::*;
use phx_testserver::{Config, TestServer};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

const JOIN: &str = r#"["1","1","room:lobby","phx_join",{}]"#;
const JOINED: &str =
    r#"["1","1","room:lobby","phx_reply",{"response":{"joined":"room:lobby"},"status":"ok"}]"#;

fn connector(cert_pem: &str) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(cert_pem.as_bytes()) {
        roots.add(cert.expect("valid PEM")).expect("a usable root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

async fn tls_connect(
    addr: &str,
    host: &str,
    cert_pem: &str,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(host.to_owned()).unwrap();
    connector(cert_pem).connect(name, tcp).await
}

async fn tls_server() -> TestServer {
    TestServer::start(Config {
        tls: true,
        ..Config::default()
    })
    .await
    .expect("starts")
}

#[tokio::test]
async fn urls_and_certificate() {
    let plain = TestServer::start(Config::default()).await.unwrap();
    assert!(plain.url().starts_with("ws://"));
    assert!(plain.http_base().starts_with("http://"));
    assert_eq!(plain.cert_pem(), None);
    assert!(!plain.is_tls());

    let server = tls_server().await;
    let addr = server.local_addr();
    assert_eq!(server.url(), format!("wss://{addr}/socket/websocket"));
    assert_eq!(server.http_base(), format!("https://{addr}"));
    assert!(server.is_tls());
    let pem = server.cert_pem().unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    // A fresh certificate for every server.
    assert_ne!(tls_server().await.cert_pem().unwrap(), pem);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_and_controls_over_tls() {
    let server = tls_server().await;
    let pem = server.cert_pem().unwrap().to_owned();
    let addr = server.local_addr().to_string();
    for host in ["127.0.0.1", "localhost"] {
        let io = tls_connect(&addr, host, &pem).await.expect("handshake");
        let mut ws = upgrade(io, "vsn=2.0.0&token=t").await;
        assert_eq!(roundtrip(&mut ws, JOIN).await, JOINED);
        close(&mut ws, 1000).await;
    }
    let mut io = tls_connect(&addr, "localhost", &pem).await.unwrap();
    let resp = request(&mut io, "GET", "/control/stats", &[]).await;
    assert_eq!(resp.status, 200);
    let stats: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(stats["accepted"], 2);

    // drop closes the TLS connection abruptly; the server keeps serving.
    let io = tls_connect(&addr, "localhost", &pem).await.unwrap();
    let mut ws = upgrade(io, "vsn=2.0.0&token=t").await;
    assert_eq!(roundtrip(&mut ws, JOIN).await, JOINED);
    server.controls().drop_all();
    assert!(next_within(&mut ws, 5).await.is_none());

    // After a restart the listener speaks TLS again, with the same certificate.
    server.controls().restart(Duration::ZERO).await.unwrap();
    let io = tls_connect(&addr, "localhost", &pem).await.unwrap();
    let mut ws = upgrade(io, "vsn=2.0.0&token=t").await;
    assert_eq!(roundtrip(&mut ws, JOIN).await, JOINED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_and_plain_clients_are_refused() {
    let server = tls_server().await;
    let other = tls_server().await;
    let addr = server.local_addr().to_string();
    let err = tls_connect(&addr, "localhost", other.cert_pem().unwrap())
        .await
        .expect_err("another server's certificate");
    assert!(err.to_string().contains("certificate"), "{err}");
    // Plain HTTP on the TLS port gets no HTTP answer.
    let mut io = TcpStream::connect(&addr).await.unwrap();
    io.write_all(b"GET /control/stats HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), io.read_to_end(&mut buf)).await;
    assert!(!buf.starts_with(b"HTTP/"), "{buf:?}");
    // In-memory streams stay plain.
    let (io, _) = server.connect_in_memory();
    let mut ws = upgrade(io, "vsn=2.0.0&token=t").await;
    assert_eq!(roundtrip(&mut ws, JOIN).await, JOINED);
    // Still serving TLS clients.
    let pem = server.cert_pem().unwrap();
    assert!(tls_connect(&addr, "127.0.0.1", pem).await.is_ok());
}

#[tokio::test]
async fn the_binary_serves_tls_and_writes_its_certificate() {
    let dir = std::env::temp_dir().join(format!("phx-testserver-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cert_file = dir.join("cert.pem");
    let args = [
        "--tls".as_ref(),
        "--cert-out".as_ref(),
        cert_file.as_os_str(),
        "--exit-on-stdin-eof".as_ref(),
    ];
    let (mut child, addr, _) = spawn_binary(&args, "wss").await;
    // Written before the URL is printed.
    let pem = std::fs::read_to_string(&cert_file).unwrap();
    let mut io = tls_connect(&addr, "localhost", &pem).await.unwrap();
    assert_eq!(
        request(&mut io, "GET", "/control/stats", &[]).await.status,
        200
    );
    drop(child.stdin.take());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
    let _ = std::fs::remove_dir_all(&dir);

    // --cert-out needs --tls.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_phx-testserver"))
        .args(["--cert-out", "x.pem"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
