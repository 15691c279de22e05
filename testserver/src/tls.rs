//! The optional TLS listener: a self-signed certificate made at startup (rcgen), served with
//! rustls (ring provider).

use std::io;
use std::sync::Arc;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// The server's certificate and the acceptor that serves it.
pub(crate) struct Tls {
    pub acceptor: TlsAcceptor,
    /// The certificate, PEM: what a client adds to its trusted roots.
    pub cert_pem: String,
}

impl Tls {
    /// A fresh self-signed certificate for `localhost`, `127.0.0.1`, `::1` and `host`.
    pub fn self_signed(host: &str) -> io::Result<Tls> {
        let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if !host.is_empty() && !names.iter().any(|n| n == host) {
            names.push(host.to_owned());
        }
        let certified = rcgen::generate_simple_self_signed(names)
            .map_err(|e| io::Error::other(format!("cannot make a certificate: {e}")))?;
        let cert_pem = certified.cert.pem();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            certified.signing_key.serialize_der(),
        ));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|b| {
                b.with_no_client_auth()
                    .with_single_cert(vec![certified.cert.der().clone()], key)
            })
            .map_err(|e| io::Error::other(format!("TLS configuration: {e}")))?;
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            cert_pem,
        })
    }
}
