//! TLS for `wss://` (feature `tls`): rustls with the ring provider, Mozilla's roots
//! (`webpki-roots`) plus any roots the socket's configuration adds.
//!
//! The client configuration for the default roots is built once per process and shared by every
//! socket (which also shares its session cache, so reconnects can resume). A socket given extra
//! roots gets its own configuration, built when the socket is created.

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use std::io;
use std::sync::{Arc, LazyLock};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// The process-wide configuration: Mozilla's roots only.
static SHARED: LazyLock<Result<Arc<ClientConfig>, String>> =
    LazyLock::new(|| client_config(webpki_roots()).map(Arc::new));

fn webpki_roots() -> RootCertStore {
    RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

fn client_config(roots: RootCertStore) -> Result<ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The shared configuration (built on first use).
pub(crate) fn shared() -> io::Result<Arc<ClientConfig>> {
    SHARED
        .as_ref()
        .map(Arc::clone)
        .map_err(|e| io::Error::other(e.clone()))
}

/// A configuration trusting Mozilla's roots and the certificates of `pem` (a PEM bundle).
pub(crate) fn with_extra_roots(pem: &[u8]) -> Result<Arc<ClientConfig>, &'static str> {
    let mut roots = webpki_roots();
    for cert in parse_pem(pem)? {
        roots
            .add(cert)
            .map_err(|_| "extra root certificate is not a valid X.509 CA certificate")?;
    }
    client_config(roots)
        .map(Arc::new)
        .map_err(|_| "TLS configuration failed")
}

/// The certificates of a PEM bundle (other sections are skipped); at least one is required.
pub(crate) fn parse_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, &'static str> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, pem::Error>>()
        .map_err(|_| "extra root certificates are not valid PEM")?;
    if certs.is_empty() {
        return Err("extra root certificates: the PEM holds no CERTIFICATE section");
    }
    Ok(certs)
}

/// Runs the TLS handshake over `tcp`, with `host` as the server name (SNI and certificate
/// check; an IP address is checked against the certificate's IP addresses, without SNI).
pub(crate) async fn handshake(
    config: Arc<ClientConfig>,
    host: &str,
    tcp: TcpStream,
) -> io::Result<TlsStream<TcpStream>> {
    let name = ServerName::try_from(host.to_owned()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{host:?} is not a valid TLS server name"),
        )
    })?;
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("TLS handshake with {host} failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_config_trusts_the_webpki_roots() {
        let a = shared().unwrap();
        let b = shared().unwrap();
        assert!(Arc::ptr_eq(&a, &b), "built once per process");
        assert!(webpki_roots().len() > 100);
    }

    #[test]
    fn invalid_pem_is_refused() {
        // Not PEM at all: no certificate section.
        assert!(with_extra_roots(b"hello").is_err());
        assert!(with_extra_roots(b"").is_err());
        // A certificate section whose body is not base64.
        let bad = b"-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n";
        assert_eq!(
            parse_pem(bad).unwrap_err(),
            "extra root certificates are not valid PEM"
        );
        // A section with no end marker.
        assert!(parse_pem(b"-----BEGIN CERTIFICATE-----\nAAAA\n").is_err());
        // Valid base64 that is not a certificate.
        let junk = b"-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQ==\n-----END CERTIFICATE-----\n";
        assert_eq!(parse_pem(junk).unwrap().len(), 1);
        assert!(with_extra_roots(junk).is_err());
        // Only a key: no certificate.
        let key = b"-----BEGIN PRIVATE KEY-----\nAAECAwQFBgcICQ==\n-----END PRIVATE KEY-----\n";
        assert!(parse_pem(key).is_err());
    }

    #[test]
    fn server_names() {
        assert!(ServerName::try_from("localhost".to_owned()).is_ok());
        assert!(matches!(
            ServerName::try_from("127.0.0.1".to_owned()),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(matches!(
            ServerName::try_from("::1".to_owned()),
            Ok(ServerName::IpAddress(_))
        ));
    }
}
