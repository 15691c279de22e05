//! The default trust source is the operating system's store: a private CA installed into it
//! (here through `SSL_CERT_FILE`, which the store loader honours on Linux and other Unixes)
//! is trusted without any per-socket setting, while Mozilla's roots refuse the same server.
//! Its own test binary: the store is read once per process, after the variable is set.

#![cfg(all(feature = "tls", unix, not(target_os = "macos")))]

use phx::engine::*;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// A TLS WebSocket server for `localhost` with a certificate from a fresh CA; returns its
/// port and the CA's PEM.
async fn server() -> (u16, String) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let chain = CertificateDer::pem_slice_iter(leaf.pem().as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                if let Ok(mut ws) = tokio_tungstenite::accept_async(tls).await {
                    use futures_util::StreamExt;
                    while let Some(Ok(_)) = ws.next().await {}
                }
            });
        }
    });
    (port, ca.pem())
}

struct States(mpsc::UnboundedSender<(SocketState, Option<DisconnectReason>)>);

impl SocketHandler for States {
    fn on_state(&self, state: SocketState, reason: Option<&DisconnectReason>) {
        let _ = self.0.send((state, reason.cloned()));
    }
}

/// Connects and returns the first `Connected` or `Reconnecting` (with its reason).
async fn outcome(config: Config) -> (SocketState, Option<DisconnectReason>) {
    let socket = Socket::new(config, &tokio::runtime::Handle::current()).unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    socket.set_handler(Some(Arc::new(States(tx))));
    socket.connect();
    let result = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let (state, reason) = rx.recv().await.unwrap();
            if matches!(state, SocketState::Connected | SocketState::Reconnecting) {
                return (state, reason);
            }
        }
    })
    .await
    .expect("an outcome within 60 s");
    socket.shutdown_async().await;
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_roots_are_the_operating_systems_store() {
    let (port, ca_pem) = server().await;
    let dir = std::env::temp_dir().join(format!("phx-system-roots-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bundle = dir.join("ca-bundle.pem");
    std::fs::write(&bundle, &ca_pem).unwrap();
    // Before anything reads the store (once per process).
    std::env::set_var("SSL_CERT_FILE", &bundle);
    std::env::remove_var("SSL_CERT_DIR");

    let url = format!("wss://localhost:{port}/socket/websocket");
    let (state, reason) = outcome(Config::new(url.clone())).await;
    assert_eq!((state, reason), (SocketState::Connected, None));

    let mut mozilla = Config::new(url);
    mozilla.tls_roots = TlsRoots::Mozilla;
    mozilla.reconnect_schedule = millis(&[1000]);
    let (state, reason) = outcome(mozilla).await;
    assert_eq!(state, SocketState::Reconnecting);
    assert!(
        matches!(&reason, Some(DisconnectReason::Io(m)) if m.contains("UnknownIssuer")),
        "{reason:?}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
