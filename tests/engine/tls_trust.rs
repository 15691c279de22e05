//! Certificate verification over real TCP, with certificates made at test time (rcgen): a
//! private CA, server certificates it signs, client certificates for mutual TLS, and a
//! minimal TLS WebSocket server (rustls + tungstenite) that reports what it saw.

use crate::support::*;
use phx::engine::*;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// A certificate authority made for one test.
pub struct Ca(CertifiedIssuer<'static, KeyPair>);

/// A certificate chain (leaf, then the CA) and its key, both PEM.
pub struct Identity {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        Ca(CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap())
    }

    pub fn pem(&self) -> String {
        self.0.pem()
    }

    /// A leaf for `names` (DNS names or IP addresses), for a server or a client.
    pub fn issue(&self, names: &[&str], client: bool) -> Identity {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.0).unwrap();
        Identity {
            cert_pem: format!("{}{}", cert.pem(), self.pem()),
            key_pem: key.serialize_pem(),
        }
    }
}

/// What the server saw of one connection.
#[derive(Debug)]
pub enum Seen {
    /// The TLS handshake failed on the server's side.
    HandshakeFailed(String),
    /// The WebSocket upgrade completed; with the number of client certificates presented.
    Upgraded { client_certs: usize },
}

pub struct TlsWsServer {
    pub port: u16,
    pub seen: mpsc::UnboundedReceiver<Seen>,
    pub accepted: Arc<AtomicUsize>,
}

impl TlsWsServer {
    /// Serves `identity` on 127.0.0.1; with `client_ca`, requires a client certificate it
    /// signed.
    pub async fn start(identity: &Identity, client_ca: Option<&Ca>) -> TlsWsServer {
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(identity.cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .unwrap();
        let key = PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = match client_ca {
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                roots.add(ca.0.der().clone()).unwrap();
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .unwrap();
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let config = Arc::new(builder.with_single_cert(chain, key).unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, seen) = mpsc::unbounded_channel();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let (acceptor, tx) = (tokio_rustls::TlsAcceptor::from(config.clone()), tx.clone());
                tokio::spawn(async move {
                    let tls = match acceptor.accept(tcp).await {
                        Ok(tls) => tls,
                        Err(e) => {
                            let _ = tx.send(Seen::HandshakeFailed(e.to_string()));
                            return;
                        }
                    };
                    let client_certs = tls.get_ref().1.peer_certificates().map_or(0, |c| c.len());
                    let Ok(mut ws) = tokio_tungstenite::accept_async(tls).await else {
                        // A client refused after the handshake (TLS 1.3 checks the client's
                        // certificate then) fails here.
                        let _ = tx.send(Seen::HandshakeFailed("upgrade failed".into()));
                        return;
                    };
                    let _ = tx.send(Seen::Upgraded { client_certs });
                    use futures_util::StreamExt;
                    while let Some(Ok(_)) = ws.next().await {}
                });
            }
        });
        TlsWsServer {
            port,
            seen,
            accepted,
        }
    }

    pub fn url(&self, host: &str) -> String {
        format!("wss://{host}:{}/socket/websocket", self.port)
    }
}

pub fn config(url: String) -> Config {
    let mut config = Config::new(url);
    config.reconnect_schedule = millis(&[20]);
    config.connect_timeout = ms(5000);
    config
}

/// Starts a socket with `config` and returns it with the reason of its first failed attempt.
async fn first_failure(config: Config) -> String {
    let socket = Socket::new(config, &tokio::runtime::Handle::current()).expect("valid");
    let (rec, mut events) = recorder();
    socket.set_handler(Some(rec));
    socket.connect();
    let (_, reason) = events.reconnecting().await;
    socket.shutdown_async().await;
    match reason {
        Some(DisconnectReason::Io(m) | DisconnectReason::Protocol(m)) => m,
        other => panic!("unexpected reason {other:?}"),
    }
}

/// Connects with `config` and waits until connected; returns the socket and its events.
async fn connected(config: Config) -> (Socket, Events) {
    let socket = Socket::new(config, &tokio::runtime::Handle::current()).expect("valid");
    let (rec, mut events) = recorder();
    socket.set_handler(Some(rec));
    socket.connect();
    events.socket(SocketState::Connected).await;
    (socket, events)
}

#[tokio::test]
async fn a_server_signed_by_an_unknown_ca_is_refused_with_the_reason() {
    let ca = Ca::new("unknown test CA");
    let mut server = TlsWsServer::start(&ca.issue(&["localhost"], false), None).await;
    // The default roots (the system's), Mozilla's, and another CA as the only configured root.
    let other = Ca::new("another test CA");
    for (roots, extra) in [
        (TlsRoots::System, String::new()),
        (TlsRoots::Mozilla, String::new()),
        (TlsRoots::ConfiguredOnly, other.pem()),
    ] {
        let mut config = config(server.url("localhost"));
        config.tls_roots = roots;
        config.extra_root_certs_pem = extra.into_bytes();
        let reason = first_failure(config).await;
        assert!(
            reason.contains("TLS handshake with localhost failed")
                && reason.contains("invalid peer certificate: UnknownIssuer"),
            "{roots:?}: {reason}"
        );
        assert!(matches!(
            server.seen.recv().await,
            Some(Seen::HandshakeFailed(_))
        ));
    }
}

#[tokio::test]
async fn the_right_ca_is_accepted_from_pem_bytes_or_a_file() {
    let ca = Ca::new("private test CA");
    let mut server = TlsWsServer::start(&ca.issue(&["localhost", "127.0.0.1"], false), None).await;
    let dir = std::env::temp_dir().join(format!("phx-tls-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("ca.pem");
    std::fs::write(&file, ca.pem()).unwrap();
    for (host, roots, by_file) in [
        ("localhost", TlsRoots::System, false),
        ("127.0.0.1", TlsRoots::Mozilla, true),
        ("localhost", TlsRoots::ConfiguredOnly, true),
    ] {
        let mut config = config(server.url(host));
        config.tls_roots = roots;
        if by_file {
            config.ca_file = Some(file.clone());
        } else {
            config.extra_root_certs_pem = ca.pem().into_bytes();
        }
        let (socket, _events) = connected(config).await;
        assert!(matches!(
            server.seen.recv().await,
            Some(Seen::Upgraded { client_certs: 0 })
        ));
        socket.shutdown_async().await;
    }
    std::fs::remove_dir_all(dir).unwrap();
    // A CA file that is not there, or holds no certificate, is refused at creation.
    let mut config = config(server.url("localhost"));
    config.ca_file = Some("/nonexistent/phx-ca.pem".into());
    let err = Socket::new(config.clone(), &tokio::runtime::Handle::current()).err();
    assert_eq!(err, Some("CA file: cannot be read"));
}

#[tokio::test]
async fn a_certificate_for_another_host_is_refused() {
    let ca = Ca::new("private test CA");
    let mut server = TlsWsServer::start(&ca.issue(&["other.example"], false), None).await;
    let mut config = config(server.url("localhost"));
    config.extra_root_certs_pem = ca.pem().into_bytes();
    let reason = first_failure(config).await;
    assert!(
        reason.contains("TLS handshake with localhost failed")
            && reason.contains("certificate not valid for name"),
        "{reason}"
    );
    assert!(matches!(
        server.seen.recv().await,
        Some(Seen::HandshakeFailed(_))
    ));
}

#[tokio::test]
async fn a_required_client_certificate_is_presented_or_the_connection_refused() {
    let ca = Ca::new("private test CA");
    let clients = Ca::new("client test CA");
    let mut server = TlsWsServer::start(&ca.issue(&["localhost"], false), Some(&clients)).await;
    let base = {
        let mut c = config(server.url("localhost"));
        c.extra_root_certs_pem = ca.pem().into_bytes();
        c
    };

    // Presented: the server sees the chain.
    let id = clients.issue(&["client.example"], true);
    let mut with_cert = base.clone();
    with_cert.client_cert_pem = id.cert_pem.clone().into_bytes();
    with_cert.client_key_pem = id.key_pem.clone().into_bytes();
    let (socket, _events) = connected(with_cert).await;
    assert!(matches!(
        server.seen.recv().await,
        Some(Seen::Upgraded { client_certs: 2 })
    ));
    socket.shutdown_async().await;

    // Absent: refused, and the reason says the server wanted a certificate.
    let reason = first_failure(base.clone()).await;
    assert!(reason.contains("CertificateRequired"), "{reason}");
    match server.seen.recv().await {
        Some(Seen::HandshakeFailed(m)) => assert!(m.contains("no certificates"), "{m}"),
        other => panic!("{other:?}"),
    }

    // One signed by a CA the server does not trust: refused too.
    let stranger = Ca::new("stranger CA").issue(&["client.example"], true);
    let mut wrong = base.clone();
    wrong.client_cert_pem = stranger.cert_pem.into_bytes();
    wrong.client_key_pem = stranger.key_pem.into_bytes();
    let reason = first_failure(wrong).await;
    assert!(reason.contains("alert"), "{reason}");

    // A key that is not the certificate's is refused at creation.
    let mut mismatched = base;
    mismatched.client_cert_pem = id.cert_pem.into_bytes();
    mismatched.client_key_pem = clients.issue(&["x"], true).key_pem.into_bytes();
    assert!(Socket::new(mismatched, &tokio::runtime::Handle::current()).is_err());
}

/// Events up to and including the next `Connected`.
async fn until_connected(events: &mut Events) -> Vec<Ev> {
    let mut seen = Vec::new();
    loop {
        let (_, ev) = events.next().await;
        let done = matches!(ev, Ev::Socket(SocketState::Connected, _));
        seen.push(ev);
        if done {
            return seen;
        }
    }
}

#[tokio::test]
async fn insecure_mode_connects_to_anyone_and_warns_at_every_connection() {
    let ca = Ca::new("unknown test CA");
    let server = TlsWsServer::start(&ca.issue(&["other.example"], false), None).await;
    let mut config = config(server.url("localhost"));
    config.tls_insecure_skip_verify = true;
    let socket = Socket::new(config, &tokio::runtime::Handle::current()).expect("valid");
    let (rec, mut events) = recorder();
    socket.set_handler(Some(rec));
    let warnings = |evs: &[Ev]| {
        evs.iter()
            .filter(|e| {
                matches!(e, Ev::Log(LogLevel::Warn, m)
                    if m.contains("TLS certificate verification is disabled"))
            })
            .count()
    };
    for _ in 0..2 {
        socket.connect();
        let seen = until_connected(&mut events).await;
        assert_eq!(warnings(&seen), 1, "{seen:?}");
        socket.disconnect();
        events.socket(SocketState::Disconnected).await;
    }
    assert_eq!(server.accepted.load(Ordering::SeqCst), 2);
    socket.shutdown_async().await;

    // Verification on (the default): the same server is refused.
    let reason = first_failure(self::config(server.url("localhost"))).await;
    assert!(reason.contains("UnknownIssuer"), "{reason}");
}
