//! Socket configuration: the seed's defaults, every one of them adjustable.

use super::auth::Provider;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Where the root certificates that `wss://` servers are checked against come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsRoots {
    /// The operating system's trust store (the default): on Linux the distribution's CA bundle
    /// (`SSL_CERT_FILE` / `SSL_CERT_DIR` override where it is read from), the keychain on
    /// macOS, the system store on Windows. Read once per process.
    #[default]
    System,
    /// Mozilla's root list compiled into the library (`webpki-roots`): for minimal containers
    /// without a CA bundle.
    Mozilla,
    /// Only the roots the configuration adds ([`Config::extra_root_certs_pem`],
    /// [`Config::ca_file`]).
    ConfiguredOnly,
}

/// Everything a socket can be configured with. `Config::new(url)` gives the defaults of the
/// client contract. Its `Debug` form hides every secret (query and param values, the auth
/// token, header values, the client key), so a configuration can be logged.
#[derive(Clone)]
pub struct Config {
    /// `ws://` or `wss://` URL of the socket endpoint, e.g. `ws://host:4000/socket/websocket`.
    pub url: String,
    /// Connect params, sent URL-encoded in the query string beside `vsn=2.0.0`.
    pub params: Vec<(String, String)>,
    /// Heartbeat period (30 s). A heartbeat still unanswered when the next is due closes the
    /// connection.
    pub heartbeat_interval: Duration,
    /// Delays before reconnect attempts 1, 2, ...; the last repeats (1, 2, 4, 8, 16, 30 s).
    pub reconnect_schedule: Vec<Duration>,
    /// Delays before rejoin attempts while connected; the last repeats (1, 2, 5, 10 s).
    pub rejoin_schedule: Vec<Duration>,
    /// Join and push timeout when the call gives none (10 s).
    pub default_timeout: Duration,
    /// How long `leave()` waits for the server's reply (5 s).
    pub leave_timeout: Duration,
    /// How long one connection attempt (TCP, TLS handshake, upgrade) may take (10 s).
    pub connect_timeout: Duration,
    /// Largest frame accepted from the server (16 MiB).
    pub max_frame_size: usize,
    /// WebSocket read buffer per connection (8 KiB; tungstenite's default is 128 KiB).
    pub read_buffer_size: usize,
    /// Extra trusted root certificates for `wss://`, as a PEM bundle (`-----BEGIN
    /// CERTIFICATE-----` sections), added to the roots of [`Config::tls_roots`]: for servers
    /// with a private CA or a self-signed certificate. Empty (the default): none. Invalid PEM
    /// makes socket creation fail. The TLS settings below are likewise checked when the socket
    /// is created, and none is examined in a build without the `tls` feature.
    pub extra_root_certs_pem: Vec<u8>,
    /// Where the trusted roots come from (default: the operating system's store).
    pub tls_roots: TlsRoots,
    /// A PEM file of extra trusted roots, read when the socket is created (added like
    /// [`Config::extra_root_certs_pem`]). A file that cannot be read or holds no certificate
    /// makes socket creation fail.
    pub ca_file: Option<PathBuf>,
    /// Client certificate for mutual TLS: the chain, leaf first, as PEM. Needs
    /// [`Config::client_key_pem`]. Empty (the default): no client certificate.
    pub client_cert_pem: Vec<u8>,
    /// The client certificate's private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub client_key_pem: Vec<u8>,
    /// Development only: accept any server certificate (the handshake's signatures are still
    /// checked, the server's identity is not). Every connection opened this way logs a warning.
    pub tls_insecure_skip_verify: bool,
    /// Fraction (0.0 to 1.0) by which each reconnect delay is shortened at random: the delay is
    /// drawn uniformly from `[d × (1 − jitter), d]`, so a fleet of clients dropped at once does
    /// not come back in step. 0.0 (the default): the schedule exactly.
    pub reconnect_jitter: f64,
    /// The same for the rejoin schedule. 0.0 (the default): the schedule exactly.
    pub rejoin_jitter: f64,
    /// Seed of the jitter's random numbers (for reproducible schedules); `None` (the default):
    /// seeded from the clock.
    pub jitter_seed: Option<u64>,
    /// Close codes that stop reconnection: a server close frame with one of them leaves the
    /// socket `Disconnected` (reason [`DisconnectReason::CloseFrame`](crate::engine::DisconnectReason))
    /// instead of `Reconnecting`. Empty (the default): every close is followed by reconnects.
    pub stop_on_close_codes: Vec<u16>,
    /// How long a heartbeat (or probe) may stay unanswered, with nothing else heard from the
    /// server, before the connection is declared dead. `None` (the default): the heartbeat
    /// interval, i.e. until the next heartbeat is due.
    pub heartbeat_timeout: Option<std::time::Duration>,
    /// The most detailed log level reported to [`SocketHandler::on_log`](crate::engine::SocketHandler)
    /// (lines above it are not even formatted). `Debug` (the default): every line.
    pub log_level: crate::engine::LogLevel,
    /// Auth token sent as Phoenix 1.8 reads it (a socket mounted with `auth_token: true` hands
    /// it to `connect/3` as `connect_info.auth_token`): subprotocols `phoenix` and
    /// `base64url.bearer.phx.<token in base64>`, never in the URL. The server must select
    /// `phoenix`; an upgrade that does not is a failed attempt. `None` (the default): no
    /// subprotocol is requested.
    pub auth_token: Option<String>,
    /// Extra HTTP headers on the upgrade request (`Authorization`, `X-Api-Key`, ...), in
    /// order. Names and values must be valid HTTP; the handshake's own headers (`Host`,
    /// `Connection`, `Upgrade`, `Sec-WebSocket-*`) are refused at socket creation.
    pub headers: Vec<(String, String)>,
    /// Stop reconnecting after this many consecutive refused upgrades (any HTTP status
    /// instead of 101), with [`DisconnectReason::GaveUp`](crate::engine::DisconnectReason);
    /// the count restarts when a connection opens. 0 (the default): never stop.
    pub max_refusals: u32,
    /// Asked for fresh params and token before every connection attempt; what it answers
    /// replaces `params` and `auth_token`. `None` (the default): those fields are used.
    pub connect_provider: Option<Provider>,
    /// How long an attempt waits for the connect provider's answer (10 s) before it fails
    /// and the reconnect schedule goes on.
    pub provider_timeout: Duration,
    /// Bytes of frames waiting in the connection's write queue beyond which pushes are refused
    /// with [`Status::WriteQueueFull`](crate::engine::Status::WriteQueueFull) (8 MiB). Joins,
    /// leaves and heartbeats are always queued: a peer that stops reading can make the queue
    /// exceed the bound by those small frames only.
    pub max_write_queue_bytes: usize,
    /// Pushes one channel buffers while it joins (1024); more complete at once with
    /// [`Status::BufferFull`](crate::engine::Status::BufferFull).
    pub max_buffered_pushes: usize,
    /// Channels joined or joining at once on the socket (100); `join()` beyond it fails at once
    /// with [`Status::TooManyChannels`](crate::engine::Status::TooManyChannels). A channel
    /// counts from `join()` until it is closed.
    pub max_channels: usize,
    /// Bytes the C event queue may hold (32 MiB; `phx_socket_events_enable`). Messages and
    /// state events past it are dropped and counted (a `PHX_EVENT_OVERFLOW` event reports
    /// them); operation results are always queued. Not used by the Rust API.
    pub max_event_queue_bytes: usize,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Exhaustive, so a new field cannot reach `Debug` without a decision about secrecy.
        let Config {
            url,
            params,
            heartbeat_interval,
            reconnect_schedule,
            rejoin_schedule,
            default_timeout,
            leave_timeout,
            connect_timeout,
            max_frame_size,
            read_buffer_size,
            extra_root_certs_pem,
            tls_roots,
            ca_file,
            client_cert_pem,
            client_key_pem,
            tls_insecure_skip_verify,
            reconnect_jitter,
            rejoin_jitter,
            jitter_seed,
            stop_on_close_codes,
            heartbeat_timeout,
            log_level,
            auth_token,
            headers,
            max_refusals,
            connect_provider,
            provider_timeout,
            max_write_queue_bytes,
            max_buffered_pushes,
            max_channels,
            max_event_queue_bytes,
        } = self;
        let names = |pairs: &[(String, String)]| -> Vec<String> {
            pairs.iter().map(|(k, _)| format!("{k}=***")).collect()
        };
        let hidden = |secret: bool| if secret { "***" } else { "none" };
        f.debug_struct("Config")
            .field("url", &super::url::redact_query(url))
            .field("params", &names(params))
            .field("heartbeat_interval", heartbeat_interval)
            .field("reconnect_schedule", reconnect_schedule)
            .field("rejoin_schedule", rejoin_schedule)
            .field("default_timeout", default_timeout)
            .field("leave_timeout", leave_timeout)
            .field("connect_timeout", connect_timeout)
            .field("max_frame_size", max_frame_size)
            .field("read_buffer_size", read_buffer_size)
            .field("extra_root_certs_pem", &extra_root_certs_pem.len())
            .field("tls_roots", tls_roots)
            .field("ca_file", ca_file)
            .field("client_cert_pem", &client_cert_pem.len())
            .field("client_key_pem", &hidden(!client_key_pem.is_empty()))
            .field("tls_insecure_skip_verify", tls_insecure_skip_verify)
            .field("reconnect_jitter", reconnect_jitter)
            .field("rejoin_jitter", rejoin_jitter)
            .field("jitter_seed", jitter_seed)
            .field("stop_on_close_codes", stop_on_close_codes)
            .field("heartbeat_timeout", heartbeat_timeout)
            .field("log_level", log_level)
            .field("auth_token", &hidden(auth_token.is_some()))
            .field("headers", &names(headers))
            .field("max_refusals", max_refusals)
            .field("connect_provider", connect_provider)
            .field("provider_timeout", provider_timeout)
            .field("max_write_queue_bytes", max_write_queue_bytes)
            .field("max_buffered_pushes", max_buffered_pushes)
            .field("max_channels", max_channels)
            .field("max_event_queue_bytes", max_event_queue_bytes)
            .finish()
    }
}

/// Parses one schedule entry list; shared by the FFI and tests.
pub fn millis(list: &[u64]) -> Vec<Duration> {
    list.iter().copied().map(Duration::from_millis).collect()
}

impl Config {
    pub fn new(url: impl Into<String>) -> Self {
        Config {
            url: url.into(),
            params: Vec::new(),
            heartbeat_interval: Duration::from_secs(30),
            reconnect_schedule: millis(&[1000, 2000, 4000, 8000, 16000, 30000]),
            rejoin_schedule: millis(&[1000, 2000, 5000, 10000]),
            default_timeout: Duration::from_secs(10),
            leave_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(10),
            max_frame_size: 16 << 20,
            read_buffer_size: 8 << 10,
            extra_root_certs_pem: Vec::new(),
            tls_roots: TlsRoots::System,
            ca_file: None,
            client_cert_pem: Vec::new(),
            client_key_pem: Vec::new(),
            tls_insecure_skip_verify: false,
            reconnect_jitter: 0.0,
            rejoin_jitter: 0.0,
            jitter_seed: None,
            stop_on_close_codes: Vec::new(),
            heartbeat_timeout: None,
            log_level: crate::engine::LogLevel::Debug,
            auth_token: None,
            headers: Vec::new(),
            max_refusals: 0,
            connect_provider: None,
            provider_timeout: Duration::from_secs(10),
            max_write_queue_bytes: 8 << 20,
            max_buffered_pushes: 1024,
            max_channels: 100,
            max_event_queue_bytes: 32 << 20,
        }
    }

    /// The heartbeat timeout in force.
    pub(crate) fn heartbeat_timeout(&self) -> Duration {
        self.heartbeat_timeout.unwrap_or(self.heartbeat_interval)
    }

    /// The delay before attempt `n` (0-based) of a schedule; the last entry repeats.
    pub(crate) fn schedule_delay(schedule: &[Duration], n: u32) -> Duration {
        match schedule {
            [] => Duration::from_secs(1),
            s => s[(n as usize).min(s.len() - 1)],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_the_settings_and_hides_every_secret() {
        let mut c = Config::new("wss://h/socket/websocket?api_key=url-secret&vsn=2.0.0");
        c.params = vec![("token".into(), "param-secret".into())];
        c.auth_token = Some("token-secret".into());
        c.headers = vec![("Authorization".into(), "Bearer header-secret".into())];
        c.client_key_pem = b"-----BEGIN PRIVATE KEY-----key-secret".to_vec();
        c.max_refusals = 7;
        let shown = format!("{c:?}");
        for secret in [
            "url-secret",
            "param-secret",
            "token-secret",
            "header-secret",
            "key-secret",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        for setting in [
            "api_key=***",
            "vsn=2.0.0",
            "token=***",
            "Authorization=***",
            "max_refusals: 7",
        ] {
            assert!(shown.contains(setting), "{setting} missing from {shown}");
        }
    }
}
