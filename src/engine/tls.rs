//! TLS for `wss://` (feature `tls`): rustls with the ring provider.
//!
//! Trusted roots come from the operating system's store by default (`rustls-native-certs`:
//! the distribution's bundle on Linux, honouring `SSL_CERT_FILE` / `SSL_CERT_DIR`; the
//! keychain on macOS; the system store on Windows), or from Mozilla's list compiled in
//! (`webpki-roots`, for minimal containers without a CA bundle), or from the configuration
//! alone. Extra roots (PEM bytes or a PEM file), a client certificate (mutual TLS) and a
//! development-only mode that skips verification come on top.
//!
//! The two configurations without per-socket settings (system or Mozilla roots, nothing else)
//! are built once per process on first use and shared by every socket (which also shares their
//! session cache, so reconnects can resume); the system store is read once per process. A
//! socket with its own settings gets its own configuration, built when the socket is created,
//! so a bad certificate or key is refused there.

use super::config::{Config, TlsRoots};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::io;
use std::sync::{Arc, LazyLock};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// The warning logged at every connection made without certificate verification.
pub(crate) const INSECURE_WARNING: &str = "TLS certificate verification is disabled \
     (development only): the server's identity was not checked";

fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: LazyLock<Arc<CryptoProvider>> =
        LazyLock::new(|| Arc::new(rustls::crypto::ring::default_provider()));
    PROVIDER.clone()
}

/// The operating system's roots, read once per process: the usable certificates, or why
/// there are none.
static SYSTEM_ROOTS: LazyLock<Result<Vec<CertificateDer<'static>>, String>> = LazyLock::new(|| {
    let found = rustls_native_certs::load_native_certs();
    let mut store = RootCertStore::empty();
    let (added, _ignored) = store.add_parsable_certificates(found.certs.iter().cloned());
    if added > 0 {
        return Ok(found.certs);
    }
    let errors: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
    Err(format!(
        "no trusted root certificate found in the operating system's store{} (install \
             the CA bundle, e.g. the ca-certificates package, point SSL_CERT_FILE at one, or \
             choose the Mozilla roots)",
        if errors.is_empty() {
            String::new()
        } else {
            format!(": {}", errors.join("; "))
        }
    ))
});

fn roots(source: TlsRoots) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match source {
        TlsRoots::System => {
            let certs = SYSTEM_ROOTS.as_ref().map_err(Clone::clone)?;
            store.add_parsable_certificates(certs.iter().cloned());
        }
        TlsRoots::Mozilla => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        TlsRoots::ConfiguredOnly => {}
    }
    Ok(store)
}

type Shared = LazyLock<Result<Arc<ClientConfig>, String>>;
static SYSTEM: Shared = LazyLock::new(|| build(roots(TlsRoots::System)?, None, false));
static MOZILLA: Shared = LazyLock::new(|| build(roots(TlsRoots::Mozilla)?, None, false));

fn build(
    roots: RootCertStore,
    client: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    insecure: bool,
) -> Result<Arc<ClientConfig>, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?;
    let builder = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider())))
    } else {
        builder.with_root_certificates(roots)
    };
    let config = match client {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| format!("client certificate: {e}"))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// How a socket's connections are secured: a process-wide configuration, or its own.
#[derive(Clone)]
pub(crate) enum Tls {
    Shared(TlsRoots),
    Own(Arc<ClientConfig>),
}

impl Default for Tls {
    fn default() -> Self {
        Tls::Shared(TlsRoots::System)
    }
}

impl Tls {
    /// The TLS settings of `config`, checked: extra roots and the CA file must hold usable
    /// certificates, a client certificate needs its key (and the key its certificate).
    pub(crate) fn of(config: &Config) -> Result<Tls, &'static str> {
        let mut extra = Vec::new();
        if !config.extra_root_certs_pem.is_empty() {
            extra.extend(parse_pem(&config.extra_root_certs_pem)?);
        }
        if let Some(path) = &config.ca_file {
            let pem = std::fs::read(path).map_err(|_| "CA file: cannot be read")?;
            extra.extend(parse_pem(&pem).map_err(|_| "CA file: no valid PEM certificate")?);
        }
        let client = match (
            config.client_cert_pem.is_empty(),
            config.client_key_pem.is_empty(),
        ) {
            (true, true) => None,
            (false, false) => Some(client_identity(
                &config.client_cert_pem,
                &config.client_key_pem,
            )?),
            _ => {
                return Err("client certificate: both the certificate chain and its key are needed")
            }
        };
        let insecure = config.tls_insecure_skip_verify;
        if extra.is_empty()
            && client.is_none()
            && !insecure
            && config.tls_roots != TlsRoots::ConfiguredOnly
        {
            // Read the system's store on the creating thread rather than on a runtime
            // worker at the first connection (about 0.1 s, once per process).
            if config.tls_roots == TlsRoots::System && is_wss(&config.url) {
                LazyLock::force(&SYSTEM);
            }
            return Ok(Tls::Shared(config.tls_roots));
        }
        let mut store = match roots(config.tls_roots) {
            Ok(store) => store,
            // A system without a CA bundle still trusts the configured roots.
            Err(_) if !extra.is_empty() || insecure => RootCertStore::empty(),
            Err(_) => return Err("no trusted root certificate in the operating system's store"),
        };
        for cert in extra {
            store
                .add(cert)
                .map_err(|_| "extra root certificate is not a valid X.509 CA certificate")?;
        }
        if store.is_empty() && !insecure {
            return Err("no trusted root certificate: the configuration adds none");
        }
        build(store, client, insecure)
            .map(Tls::Own)
            .map_err(|_| "TLS configuration failed (client certificate and key do not match?)")
    }

    /// The client configuration (a shared one is built on first use; failing to read the
    /// system's store is reported here, at every connection attempt).
    pub(crate) fn client_config(&self) -> io::Result<Arc<ClientConfig>> {
        let shared = match self {
            Tls::Own(config) => return Ok(config.clone()),
            Tls::Shared(TlsRoots::Mozilla) => &MOZILLA,
            Tls::Shared(_) => &SYSTEM,
        };
        shared
            .as_ref()
            .map(Arc::clone)
            .map_err(|e| io::Error::other(e.clone()))
    }
}

fn is_wss(url: &str) -> bool {
    url.get(..6)
        .is_some_and(|s| s.eq_ignore_ascii_case("wss://"))
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

/// A client certificate chain (leaf first) and its private key (PKCS#8, PKCS#1 or SEC1 PEM).
fn client_identity(
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), &'static str> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, pem::Error>>()
        .ok()
        .filter(|c| !c.is_empty())
        .ok_or("client certificate: no valid PEM certificate")?;
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|_| "client certificate: the key is not a valid PEM private key")?;
    let signing = provider().key_provider.load_private_key(key.clone_key());
    signing.map_err(|_| "client certificate: the key type is not supported")?;
    Ok((chain, key))
}

/// Accepts any server certificate, still checking the handshake's signatures (so the
/// connection is encrypted to whoever holds the presented certificate's key). Development only.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
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

    fn mozilla() -> Config {
        let mut c = Config::new("wss://example.com/socket");
        c.tls_roots = TlsRoots::Mozilla;
        c
    }

    #[test]
    fn shared_configs_are_built_once_per_process() {
        let tls = Tls::of(&mozilla()).unwrap();
        assert!(matches!(tls, Tls::Shared(TlsRoots::Mozilla)));
        let (a, b) = (tls.client_config().unwrap(), tls.client_config().unwrap());
        assert!(Arc::ptr_eq(&a, &b), "built once per process");
        assert!(roots(TlsRoots::Mozilla).unwrap().len() > 100);
        assert!(matches!(
            Tls::of(&Config::new("wss://x/")).unwrap(),
            Tls::Shared(TlsRoots::System)
        ));
    }

    #[test]
    fn invalid_pem_is_refused() {
        let with = |pem: &[u8]| {
            let mut c = mozilla();
            c.extra_root_certs_pem = pem.to_vec();
            Tls::of(&c)
        };
        // Not PEM at all: no certificate section.
        assert!(with(b"hello").is_err());
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
        assert!(with(junk).is_err());
        // Only a key: no certificate.
        let key = b"-----BEGIN PRIVATE KEY-----\nAAECAwQFBgcICQ==\n-----END PRIVATE KEY-----\n";
        assert!(parse_pem(key).is_err());
    }

    #[test]
    fn client_certificate_needs_both_halves_and_a_valid_key() {
        let mut c = mozilla();
        c.client_cert_pem =
            b"-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQ==\n-----END CERTIFICATE-----\n".to_vec();
        let err = Tls::of(&c).err().unwrap();
        assert!(err.contains("both"), "{err}");
        c.client_key_pem = b"not a key".to_vec();
        let err = Tls::of(&c).err().unwrap();
        assert!(err.contains("key"), "{err}");
    }

    #[test]
    fn configured_only_roots_need_a_root() {
        let mut c = mozilla();
        c.tls_roots = TlsRoots::ConfiguredOnly;
        assert!(Tls::of(&c).is_err());
        c.tls_insecure_skip_verify = true;
        assert!(matches!(Tls::of(&c), Ok(Tls::Own(_))));
    }

    #[test]
    fn a_missing_ca_file_is_refused() {
        let mut c = mozilla();
        c.ca_file = Some("/nonexistent/ca.pem".into());
        assert_eq!(Tls::of(&c).err(), Some("CA file: cannot be read"));
    }

    /// A measurement, not a check: how long reading the system's store takes.
    #[test]
    #[ignore]
    fn system_store_load_time() {
        let start = std::time::Instant::now();
        let found = rustls_native_certs::load_native_certs();
        let read = start.elapsed();
        let usable = roots(TlsRoots::System).map_or(0, |r| r.len());
        println!(
            "system store: {} certificates, {usable} usable roots, read in {read:?}; errors: {:?}",
            found.certs.len(),
            found.errors
        );
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
