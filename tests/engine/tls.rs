//! `wss://` over real TCP against the test server's TLS listener (a self-signed certificate
//! made at startup), on a multi-threaded runtime.

use crate::support::*;
use phx::engine::*;
use phx_testserver::TestServer;
use serde_json::json as v;
use std::sync::Arc;

async fn tls_server() -> TestServer {
    let server = TestServer::start(phx_testserver::Config {
        tls: true,
        ..phx_testserver::Config::default()
    })
    .await
    .expect("TLS test server starts");
    assert!(server.url().starts_with("wss://"), "{}", server.url());
    assert!(server.http_base().starts_with("https://"));
    server
}

fn config(url: String, token: &str) -> Config {
    let mut config = Config::new(url);
    config.params.push(("token".into(), token.into()));
    config
}

fn cert(server: &TestServer) -> Vec<u8> {
    server
        .cert_pem()
        .expect("a TLS server has a certificate")
        .into()
}

/// Connects, joins `room:lobby`, pushes text and binary, disconnects: over `wss://` to the
/// server's IP address (checked against the certificate's IP names, no SNI) and to `localhost`
/// (sent as SNI and checked against its DNS names).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_round_trip_with_the_server_certificate_as_extra_root() {
    let server = tls_server().await;
    let port = server.local_addr().port();
    for url in [
        server.url(),
        format!("wss://localhost:{port}/socket/websocket"),
    ] {
        let mut config = config(url.clone(), "tls-tester");
        config.extra_root_certs_pem = cert(&server);
        let socket = Socket::new(config, &tokio::runtime::Handle::current()).expect("valid");
        let (rec, mut events) = recorder();
        socket.set_handler(Some(rec));
        socket.connect();
        events.socket(SocketState::Connected).await;
        assert_eq!(socket.state(), SocketState::Connected, "{url}");

        let (ch, mut ch_events) = channel(&socket, "room:lobby");
        let d = join_ok(&ch).await;
        assert_eq!(d.response(), v!({"joined":"room:lobby"}));

        let d = done(push(&ch, "echo", r#"{"over":"tls","n":[1,2]}"#)).await;
        assert_eq!(
            (d.status, d.response()),
            (Status::Ok, v!({"over":"tls","n":[1,2]}))
        );

        let bytes: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
        let (cb, rx) = op();
        ch.push("echo", Body::Binary(bytes.clone()), None, cb)
            .unwrap();
        let d = done(rx).await;
        assert_eq!(d.status, Status::Ok);
        assert_eq!(d.reply, Some(("ok".into(), Owned::Binary(bytes.clone()))));
        let (cb, rx) = op();
        ch.push("push_me", Body::Binary(vec![0xde, 0xad]), None, cb)
            .unwrap();
        assert_eq!(done(rx).await.status, Status::Ok);
        let msgs = ch_events.messages(1).await;
        let Ev::Message { event, payload, .. } = &msgs[0] else {
            unreachable!()
        };
        assert_eq!(
            (event.as_str(), payload),
            ("pushed", &Owned::Binary(vec![0xde, 0xad]))
        );

        socket.disconnect();
        events.socket(SocketState::Disconnected).await;
        assert_eq!(socket.last_reason(), Some(DisconnectReason::ClientClosed));
        socket.shutdown_async().await;
    }
    assert_eq!(server.controls().stats().accepted, 2);
}

/// Without the server's certificate among its roots the handshake fails, the socket reports
/// why (the certificate) and keeps reconnecting; no upgrade ever reaches the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_without_the_root_fails_on_the_certificate_and_keeps_reconnecting() {
    let server = tls_server().await;
    let other = tls_server().await;
    // No extra root, then another server's (self-signed) certificate as the only extra root.
    for extra in [Vec::new(), cert(&other)] {
        let mut config = config(server.url(), "tls-untrusted");
        config.reconnect_schedule = millis(&[20]);
        config.extra_root_certs_pem = extra;
        let socket = Socket::new(config, &tokio::runtime::Handle::current()).expect("valid");
        let (rec, mut events) = recorder();
        socket.set_handler(Some(rec));
        socket.connect();
        let (_, reason) = events.reconnecting().await;
        let message = match reason {
            Some(DisconnectReason::Io(m) | DisconnectReason::Protocol(m)) => m,
            other => panic!("unexpected reason {other:?}"),
        };
        assert!(message.contains("certificate"), "{message}");
        assert!(message.contains("TLS handshake"), "{message}");
        events.failed_attempts(3).await;
        assert_eq!(socket.state(), SocketState::Reconnecting);
        assert!(matches!(
            socket.last_reason(),
            Some(DisconnectReason::Io(m)) if m.contains("certificate")
        ));
        socket.shutdown_async().await;
    }
    assert_eq!(server.controls().stats().accepted, 0);
}

/// A `ws://` client against the TLS port is not answered as HTTP: the attempt fails and
/// the socket reconnects, no crash on either side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_ws_against_the_tls_port_fails_cleanly() {
    let server = tls_server().await;
    let url = server.url().replacen("wss://", "ws://", 1);
    let mut config = config(url, "tls-plain");
    config.reconnect_schedule = millis(&[20]);
    config.connect_timeout = ms(2000);
    let socket = Socket::new(config, &tokio::runtime::Handle::current()).expect("valid");
    let (rec, mut events) = recorder();
    socket.set_handler(Some(rec));
    socket.connect();
    let (_, reason) = events.reconnecting().await;
    assert!(reason.is_some());
    events.failed_attempts(1).await;
    assert_eq!(socket.state(), SocketState::Reconnecting);
    socket.shutdown_async().await;
    // The server still serves TLS clients.
    let mut config = self::config(server.url(), "tls-after");
    config.extra_root_certs_pem = cert(&server);
    let socket = Socket::new(config, &tokio::runtime::Handle::current()).unwrap();
    let (rec, mut events) = recorder();
    socket.set_handler(Some(rec));
    socket.connect();
    events.socket(SocketState::Connected).await;
    socket.shutdown_async().await;
}

#[tokio::test]
async fn invalid_extra_roots_are_refused_at_creation() {
    let rt = tokio::runtime::Handle::current();
    let server = tls_server().await;
    let bad: [&[u8]; 4] = [
        b"not pem at all",
        b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        b"-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQ==\n-----END CERTIFICATE-----\n",
        b"-----BEGIN CERTIFICATE-----\nMIIB\n",
    ];
    for url in [server.url(), "ws://127.0.0.1:1/socket/websocket".into()] {
        for pem in bad {
            let mut config = Config::new(url.clone());
            config.extra_root_certs_pem = pem.to_vec();
            let err = Socket::new(config.clone(), &rt).err().expect("refused");
            assert!(err.contains("certificate"), "{err}");
            let connector: Arc<dyn Connector> = Arc::new(TcpConnector::new());
            assert!(Socket::with_connector(config, connector, &rt).is_err());
        }
    }
    // A valid bundle: the certificate with text around it and a second copy.
    let pem = format!(
        "server certificate\n{}\n{}",
        server.cert_pem().unwrap(),
        server.cert_pem().unwrap()
    );
    let mut config = Config::new(server.url());
    config.extra_root_certs_pem = pem.into_bytes();
    assert!(Socket::new(config.clone(), &rt).is_ok());
    assert!(TcpConnector::with_extra_roots(&config.extra_root_certs_pem).is_ok());
}
