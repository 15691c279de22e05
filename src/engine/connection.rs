//! One WebSocket connection: opening it (byte stream + upgrade) and a write queue that never
//! blocks the socket's task.

use super::reclaim::Shrink;
use super::types::DisconnectReason;
use super::url::Endpoint;
use super::Config;
use futures_util::{Sink, Stream};
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};
use tokio_tungstenite::WebSocketStream;

/// A byte stream a WebSocket can run over.
pub trait AsyncIo: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> AsyncIo for T {}

/// A boxed byte stream.
pub type BoxIo = Box<dyn AsyncIo>;

/// A future resolving to a byte stream.
pub type IoFuture = Pin<Box<dyn Future<Output = io::Result<BoxIo>> + Send>>;

/// Opens byte streams to the server. The default is TCP; tests plug in in-memory streams.
pub trait Connector: Send + Sync {
    fn connect(&self, endpoint: &Endpoint) -> IoFuture;
}

/// TCP for `ws://`; TCP then TLS for `wss://` (feature `tls`, on by default), with the URL's
/// host as the server name. Without the feature, `wss://` fails with an explanatory I/O error.
///
/// [`TcpConnector::new`] trusts the operating system's root certificates through one client
/// configuration shared by the whole process; [`TcpConnector::from_config`] applies a socket's
/// TLS settings ([`Config::tls_roots`] and the fields after it).
#[derive(Clone, Default)]
pub struct TcpConnector {
    #[cfg(feature = "tls")]
    tls: super::tls::Tls,
}

impl TcpConnector {
    /// The default connector: TCP, and TLS with the operating system's roots.
    pub fn new() -> Self {
        Self::default()
    }

    /// A connector with the TLS settings of `config`: root source, extra roots (bytes and
    /// file), client certificate, verification skipped. Invalid PEM, an unreadable CA file,
    /// a certificate that is not a usable trust anchor, or half a client identity is an error.
    /// In a build without the `tls` feature nothing is examined.
    pub fn from_config(config: &Config) -> Result<Self, &'static str> {
        #[cfg(feature = "tls")]
        return Ok(TcpConnector {
            tls: super::tls::Tls::of(config)?,
        });
        #[cfg(not(feature = "tls"))]
        {
            let _ = config;
            Ok(Self::new())
        }
    }

    /// A connector whose TLS also trusts the certificates of `pem` (a PEM bundle, CERTIFICATE
    /// sections) on top of the operating system's roots: [`TcpConnector::from_config`] with
    /// only [`Config::extra_root_certs_pem`] set.
    pub fn with_extra_roots(pem: &[u8]) -> Result<Self, &'static str> {
        let mut config = Config::new(String::new());
        config.extra_root_certs_pem = pem.to_vec();
        Self::from_config(&config)
    }

    /// Whether this build can open `wss://` connections.
    pub const fn supports_tls() -> bool {
        cfg!(feature = "tls")
    }
}

impl Connector for TcpConnector {
    fn connect(&self, endpoint: &Endpoint) -> IoFuture {
        let (host, port) = (endpoint.host.clone(), endpoint.port);
        if !endpoint.tls {
            // A future of its own: the TLS one is several times larger, and every attempt
            // allocates one while the connection opens.
            return Box::pin(async move { Ok(Box::new(tcp(&host, port).await?) as BoxIo) });
        }
        #[cfg(feature = "tls")]
        {
            let tls_config = self.tls.clone();
            Box::pin(async move {
                let stream = tcp(&host, port).await?;
                let config = tls_config.client_config()?;
                let stream = super::tls::handshake(config, &host, stream).await?;
                Ok(Box::new(stream) as BoxIo)
            })
        }
        #[cfg(not(feature = "tls"))]
        Box::pin(std::future::ready(Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "wss:// needs TLS, which this build of libphx does not include \
             (cargo feature `tls`)",
        ))))
    }
}

/// A TCP connection with Nagle's algorithm off (frames are written whole, once per batch).
async fn tcp(host: &str, port: u16) -> io::Result<tokio::net::TcpStream> {
    let stream = tokio::net::TcpStream::connect((host, port)).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

pub(crate) type Ws = WebSocketStream<BoxIo>;

/// Opens a connection: byte stream, then the WebSocket upgrade (with the configured headers
/// and, given a token, the subprotocols that carry it), within the connect timeout.
pub(crate) async fn open(
    connector: &dyn Connector,
    endpoint: &Endpoint,
    config: &Config,
    token: Option<&str>,
) -> Result<Ws, DisconnectReason> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let attempt = async {
        let mut request = endpoint
            .url
            .as_str()
            .into_client_request()
            .map_err(reason_of)?;
        super::auth::decorate(request.headers_mut(), &config.headers, token)
            .map_err(|e| DisconnectReason::Protocol(e.into()))?;
        let io = connector
            .connect(endpoint)
            .await
            .map_err(|e| DisconnectReason::Io(e.to_string()))?;
        let ws_config = WebSocketConfig::default()
            .read_buffer_size(config.read_buffer_size)
            // Frames are batched up to this size before a write; the task flushes after every
            // batch, so nothing waits for the buffer to fill.
            .write_buffer_size(16 << 10)
            .max_write_buffer_size(usize::MAX)
            .max_frame_size(Some(config.max_frame_size))
            .max_message_size(Some(config.max_frame_size));
        let (ws, response) =
            tokio_tungstenite::client_async_with_config(request, io, Some(ws_config))
                .await
                .map_err(reason_of)?;
        if token.is_some() {
            // tungstenite accepts any subprotocol that was offered, the token's included.
            let chosen = response.headers().get(super::auth::SEC_WEBSOCKET_PROTOCOL);
            if chosen.is_none_or(|p| p != super::auth::PHOENIX_SUBPROTOCOL) {
                return Err(subprotocol_refused());
            }
        }
        Ok(ws)
    };
    match tokio::time::timeout(config.connect_timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(DisconnectReason::ConnectTimeout),
    }
}

/// The server upgraded without selecting `phoenix` although a token was sent.
fn subprotocol_refused() -> DisconnectReason {
    DisconnectReason::Protocol(
        "the server did not select the `phoenix` subprotocol that carries the auth token \
         (a Phoenix socket needs `auth_token: true`)"
            .into(),
    )
}

/// Maps a WebSocket error to the reason reported to the user.
pub(crate) fn reason_of(e: tungstenite::Error) -> DisconnectReason {
    match e {
        tungstenite::Error::Http(resp) => DisconnectReason::HttpStatus {
            status: resp.status().as_u16(),
            retry_after: super::auth::retry_after(resp.headers()),
        },
        tungstenite::Error::Io(e) => DisconnectReason::Io(e.to_string()),
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
            DisconnectReason::Io("connection closed".into())
        }
        tungstenite::Error::Protocol(
            tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
        ) => DisconnectReason::Io("connection reset without a close frame".into()),
        tungstenite::Error::Protocol(
            tungstenite::error::ProtocolError::SecWebSocketSubProtocolError(e),
        ) if !matches!(
            e,
            tungstenite::error::SubProtocolError::ServerSentSubProtocolNoneRequested
        ) =>
        {
            subprotocol_refused()
        }
        tungstenite::Error::Protocol(p) => DisconnectReason::Protocol(p.to_string()),
        // Its text would quote the URL, params included.
        tungstenite::Error::Url(_) => DisconnectReason::Protocol("invalid URL".into()),
        tungstenite::Error::Capacity(c) => DisconnectReason::FrameTooLarge(c.to_string()),
        other => DisconnectReason::Protocol(other.to_string()),
    }
}

/// An open connection with its write queue. Frames are queued by the socket's task and written
/// as the stream accepts them, so a slow peer never blocks reading.
pub(crate) struct Conn {
    pub(crate) ws: Ws,
    /// Frames not yet handed to the stream; `None` where a frame was withdrawn.
    outbox: VecDeque<Option<WsMessage>>,
    /// The position (see [`Conn::queue`]) of the frame at the front of `outbox`.
    front: u64,
    /// Frames in `outbox` that were not withdrawn.
    live: usize,
    /// Bytes of those frames (what [`Config::max_write_queue_bytes`] bounds).
    bytes: usize,
    unflushed: bool,
    /// The buffer text frames are encoded into (see `frames`).
    pub(crate) frames: super::frames::FrameBuf,
    /// Frames and bytes handed to the stream (the socket's statistics).
    pub(crate) sent: super::metrics::Traffic,
}

impl Conn {
    pub(crate) fn new(ws: Ws) -> Self {
        Conn {
            ws,
            outbox: VecDeque::new(),
            front: 0,
            live: 0,
            bytes: 0,
            unflushed: false,
            frames: Default::default(),
            sent: Default::default(),
        }
    }

    /// Queues a frame; returns its position, by which [`Conn::withdraw`] can take it back.
    pub(crate) fn queue(&mut self, msg: WsMessage) -> u64 {
        if self.outbox.capacity() == 0 {
            // One frame, not the ring's default four: a quiet socket's queue (the join, then
            // a heartbeat at a time) never holds more, and every socket keeps its ring.
            self.outbox.reserve_exact(1);
        }
        self.bytes += msg.len();
        self.outbox.push_back(Some(msg));
        self.live += 1;
        self.front + self.outbox.len() as u64 - 1
    }

    /// Takes back the frame queued at `position` if it has not been handed to the stream yet
    /// (a push that timed out before it was sent is never sent).
    pub(crate) fn withdraw(&mut self, position: u64) {
        let Some(index) = position.checked_sub(self.front) else {
            return; // written already
        };
        if let Some(slot) = self.outbox.get_mut(index as usize) {
            if let Some(msg) = slot.take() {
                self.live -= 1;
                self.bytes -= msg.len();
            }
        }
    }

    pub(crate) fn queued(&self) -> usize {
        self.live
    }

    /// Gives back the write queue's capacity after a burst (see `reclaim`).
    pub(crate) fn reclaim(&mut self) {
        self.outbox.reclaim();
        self.frames.reclaim();
    }

    /// Frames the write queue has room for.
    pub(crate) fn capacity(&self) -> usize {
        self.outbox.capacity()
    }

    /// Bytes of the frames waiting in the queue.
    pub(crate) fn queued_bytes(&self) -> usize {
        self.bytes
    }

    /// Moves queued frames into the stream and flushes; `Err` means the connection is broken.
    pub(crate) fn poll_write(&mut self, cx: &mut Context<'_>) -> Result<(), tungstenite::Error> {
        while let Some(front) = self.outbox.front() {
            if front.is_none() {
                self.outbox.pop_front();
                self.front += 1;
                continue;
            }
            match Pin::new(&mut self.ws).poll_ready(cx) {
                Poll::Ready(Ok(())) => {
                    let msg = self.outbox.pop_front().flatten().expect("a live frame");
                    self.front += 1;
                    self.live -= 1;
                    self.sent.add(&msg);
                    self.bytes -= msg.len();
                    Pin::new(&mut self.ws).start_send(msg)?;
                    self.unflushed = true;
                }
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => return Ok(()),
            }
        }
        if self.unflushed {
            match Pin::new(&mut self.ws).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.unflushed = false,
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => {}
            }
        }
        Ok(())
    }

    pub(crate) fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<WsMessage, tungstenite::Error>>> {
        Pin::new(&mut self.ws).poll_next(cx)
    }

    /// Sends a close frame (flushing what is queued first) and lets the closing handshake finish
    /// in the background, so the socket's task moves on at once.
    pub(crate) fn close_in_background(mut self, code: u16, reason: &'static str) {
        use tungstenite::protocol::frame::{coding::CloseCode, CloseFrame};
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.into(),
        };
        self.queue(WsMessage::Close(Some(frame)));
        let drain = async move {
            let closing = std::future::poll_fn(|cx| {
                if self.poll_write(cx).is_err() {
                    return Poll::Ready(());
                }
                loop {
                    match self.poll_read(cx) {
                        Poll::Ready(Some(Ok(_))) => continue,
                        Poll::Ready(_) => return Poll::Ready(()),
                        Poll::Pending => return Poll::Pending,
                    }
                }
            });
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), closing).await;
        };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(drain);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::endpoint;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    async fn listener() -> (TcpListener, u16) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        (l, port)
    }

    #[tokio::test]
    async fn ws_is_plain_tcp() {
        let (l, port) = listener().await;
        let ep = endpoint(&format!("ws://127.0.0.1:{port}/socket"), &[]).unwrap();
        let mut io = TcpConnector::new().connect(&ep).await.expect("connects");
        let (mut server, _) = l.accept().await.unwrap();
        io.write_all(b"GET /").await.unwrap();
        let mut buf = [0u8; 5];
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"GET /");
    }

    /// `wss://` opens TCP, then sends a TLS ClientHello naming the URL's host (SNI); a server
    /// that hangs up fails the attempt with an error saying the handshake failed.
    #[cfg(feature = "tls")]
    #[tokio::test]
    async fn wss_runs_a_tls_handshake_with_the_host_as_server_name() {
        for connector in [
            TcpConnector::new(),
            TcpConnector::with_extra_roots(b"").unwrap(),
        ] {
            let (l, port) = listener().await;
            let ep = endpoint(&format!("wss://localhost:{port}/socket"), &[]).unwrap();
            let client = tokio::spawn(async move { connector.connect(&ep).await.map(|_| ()) });
            let (mut server, _) = l.accept().await.unwrap();
            let mut hello = vec![0u8; 5];
            server.read_exact(&mut hello).await.unwrap();
            assert_eq!(hello[0], 0x16, "a TLS handshake record");
            let len = u16::from_be_bytes([hello[3], hello[4]]) as usize;
            hello.resize(5 + len, 0);
            server.read_exact(&mut hello[5..]).await.unwrap();
            assert_eq!(hello[5], 0x01, "a ClientHello");
            assert!(
                hello.windows(9).any(|w| w == b"localhost"),
                "the host is sent as SNI"
            );
            drop(server);
            let err = client.await.unwrap().expect_err("the server hung up");
            assert!(
                err.to_string()
                    .contains("TLS handshake with localhost failed"),
                "{err}"
            );
        }
    }

    #[cfg(feature = "tls")]
    #[test]
    fn extra_roots_must_be_valid_pem() {
        assert!(TcpConnector::with_extra_roots(b"").is_ok());
        assert!(TcpConnector::with_extra_roots(b"not pem").is_err());
        assert!(TcpConnector::supports_tls());
    }

    #[cfg(not(feature = "tls"))]
    #[tokio::test]
    async fn wss_is_refused_without_tls() {
        let (_l, port) = listener().await;
        let ep = endpoint(&format!("wss://127.0.0.1:{port}/socket"), &[]).unwrap();
        let err = TcpConnector::new()
            .connect(&ep)
            .await
            .err()
            .expect("refused");
        assert_eq!(err.kind(), io::ErrorKind::Unsupported);
        assert!(err.to_string().contains("does not include"), "{err}");
        assert!(TcpConnector::with_extra_roots(b"not pem").is_ok());
        assert!(!TcpConnector::supports_tls());
    }
}
