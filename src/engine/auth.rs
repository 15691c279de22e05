//! What each connection attempt authenticates with: the auth token carried as Phoenix 1.8
//! reads it, extra upgrade headers, the connect provider asked before every attempt, and the
//! delay after a refused upgrade.
//!
//! Phoenix 1.8 (`Phoenix.Transports.WebSocket` with `auth_token: true`) takes the token from
//! the `Sec-WebSocket-Protocol` request header: the entry `base64url.bearer.phx.<token>`,
//! decoded with `Base.decode64!(_, padding: false)` (the standard alphabet, no `=`; phoenix.js
//! sends `btoa(token).replace(/=/g, "")`), beside the subprotocol `phoenix`, which the server
//! then selects. Carried there, the token stays out of URLs, so out of proxies' access logs.

use base64::Engine as _;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::http::{header, HeaderMap, HeaderName, HeaderValue};

/// The subprotocol the server must select when a token is sent.
pub const PHOENIX_SUBPROTOCOL: &str = "phoenix";

pub(crate) use tokio_tungstenite::tungstenite::http::header::SEC_WEBSOCKET_PROTOCOL;

/// The prefix of the subprotocol entry that carries the token.
pub const AUTH_TOKEN_PREFIX: &str = "base64url.bearer.phx.";

/// The subprotocol entry carrying `token`: [`AUTH_TOKEN_PREFIX`] and the token in standard
/// base64 without padding (what phoenix.js sends; despite the prefix, not URL-safe base64).
pub fn auth_subprotocol(token: &str) -> String {
    let mut out = String::from(AUTH_TOKEN_PREFIX);
    base64::engine::general_purpose::STANDARD_NO_PAD.encode_string(token, &mut out);
    out
}

/// What one connection attempt sends: the connect params (query string) and the auth token.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    pub params: Vec<(String, String)>,
    pub auth_token: Option<String>,
}

/// Never shows the values: they are secrets.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("params", &self.params.len())
            .field(
                "auth_token",
                &self.auth_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Supplies fresh [`Credentials`] before every connection attempt (so an expired token is
/// replaced before reconnecting), as phoenix.js's `params` and `authToken` closures do, but
/// asynchronously: the provider may take its time (a token refresh over the network) without
/// holding up the runtime.
///
/// `provide` is called on a library thread, in the socket's task, before each attempt. It must
/// not block: it answers through `reply`, now or later, from any thread. Without an answer
/// within [`Config::provider_timeout`](crate::engine::Config::provider_timeout) the attempt
/// fails with [`DisconnectReason::Provider`](crate::engine::DisconnectReason::Provider) and the
/// reconnect schedule goes on.
pub trait ConnectProvider: Send + Sync {
    fn provide(&self, reply: ProvideReply);
}

impl<F: Fn(ProvideReply) + Send + Sync> ConnectProvider for F {
    fn provide(&self, reply: ProvideReply) {
        self(reply)
    }
}

/// The answer to one [`ConnectProvider::provide`] call. Dropping it unanswered fails the
/// attempt at once.
pub struct ProvideReply {
    tx: oneshot::Sender<Result<Credentials, String>>,
}

impl ProvideReply {
    /// The credentials for this attempt: they replace the configured params and token.
    pub fn send(self, credentials: Credentials) {
        let _ = self.tx.send(Ok(credentials));
    }

    /// This attempt cannot be made; it fails with `reason` (which is logged, so it must not
    /// hold a secret).
    pub fn fail(self, reason: impl Into<String>) {
        let _ = self.tx.send(Err(reason.into()));
    }

    /// False once the attempt no longer waits (timed out, or the socket disconnected).
    pub fn is_waiting(&self) -> bool {
        !self.tx.is_closed()
    }
}

/// A [`ConnectProvider`] in a [`Config`](crate::engine::Config).
#[derive(Clone)]
pub struct Provider(pub Arc<dyn ConnectProvider>);

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Provider(..)")
    }
}

/// Asks `provider` for credentials: returns the reply handle to give it and the future of
/// its answer, `Err` with the reason the attempt fails.
pub(crate) fn ask() -> (
    ProvideReply,
    impl std::future::Future<Output = Result<Credentials, String>>,
) {
    let (tx, rx) = oneshot::channel();
    let answer = async move {
        match rx.await {
            Ok(result) => result,
            Err(_) => Err("the provider dropped its reply without answering".into()),
        }
    };
    (ProvideReply { tx }, answer)
}

/// Checks extra upgrade headers: valid names and values, and none that the WebSocket
/// handshake itself sets (or that would carry a second token).
pub(crate) fn check_headers(headers: &[(String, String)]) -> Result<(), &'static str> {
    const RESERVED: [&str; 8] = [
        "host",
        "connection",
        "upgrade",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-protocol",
        "sec-websocket-extensions",
        "content-length",
    ];
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| "invalid header name")?;
        if RESERVED.contains(&name.as_str()) {
            return Err("header reserved for the WebSocket handshake");
        }
        HeaderValue::from_str(value).map_err(|_| "invalid header value")?;
    }
    Ok(())
}

/// Adds the extra headers and the token's subprotocols to an upgrade request.
pub(crate) fn decorate(
    headers: &mut HeaderMap,
    extra: &[(String, String)],
    token: Option<&str>,
) -> Result<(), &'static str> {
    for (name, value) in extra {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| "invalid header name")?;
        let value = HeaderValue::from_str(value).map_err(|_| "invalid header value")?;
        headers.append(name, value);
    }
    if let Some(token) = token {
        let protocols = format!("{PHOENIX_SUBPROTOCOL}, {}", auth_subprotocol(token));
        let value = HeaderValue::from_str(&protocols).map_err(|_| "invalid auth token")?;
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, value);
    }
    Ok(())
}

/// The `Retry-After` of a refusal, in delta-seconds (an HTTP date is not honoured), capped at
/// a day so a wrong value cannot park the socket for good.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs: u64 = headers
        .get(header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs.min(86_400)))
}

/// The delay before the attempt after a refusal: the schedule's, or the server's
/// `Retry-After` if that is longer.
pub(crate) fn refusal_delay(scheduled: Duration, retry_after: Option<Duration>) -> Duration {
    retry_after.map_or(scheduled, |r| r.max(scheduled))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_standard_base64_without_padding() {
        // phoenix.js's own test: authToken "1234" → "MTIzNA".
        assert_eq!(auth_subprotocol("1234"), "base64url.bearer.phx.MTIzNA");
        // `+` and `/` of the standard alphabet, not `-` and `_`.
        assert_eq!(auth_subprotocol("??>"), "base64url.bearer.phx.Pz8+");
        assert_eq!(auth_subprotocol("???"), "base64url.bearer.phx.Pz8/");
    }

    #[test]
    fn headers_are_checked() {
        let h = |n: &str, v: &str| vec![(n.to_owned(), v.to_owned())];
        assert!(check_headers(&h("x-api-key", "k")).is_ok());
        assert!(check_headers(&h("Authorization", "Bearer t")).is_ok());
        assert!(check_headers(&h("bad name", "v")).is_err());
        assert!(check_headers(&h("x-a", "line\nbreak")).is_err());
        assert!(check_headers(&h("Sec-WebSocket-Protocol", "x")).is_err());
        assert!(check_headers(&h("host", "x")).is_err());
    }

    #[test]
    fn retry_after_is_delta_seconds() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            header::RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), None);
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("99999999"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(86_400)));
        let s = Duration::from_secs;
        assert_eq!(refusal_delay(s(1), Some(s(7))), s(7));
        assert_eq!(refusal_delay(s(8), Some(s(7))), s(8));
        assert_eq!(refusal_delay(s(2), None), s(2));
    }

    #[test]
    fn credentials_debug_hides_values() {
        let c = Credentials {
            params: vec![("token".into(), "s3cret".into())],
            auth_token: Some("t0ken".into()),
        };
        let text = format!("{c:?}");
        assert!(
            !text.contains("s3cret") && !text.contains("t0ken"),
            "{text}"
        );
    }
}
