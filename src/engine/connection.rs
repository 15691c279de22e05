//! One WebSocket connection: opening it (byte stream + upgrade) and a write queue that never
//! blocks the socket's task.

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

/// Plain TCP (`ws://`). `wss://` fails with an explanatory I/O error: this build has no TLS.
pub struct TcpConnector;

impl Connector for TcpConnector {
    fn connect(&self, endpoint: &Endpoint) -> IoFuture {
        let (host, port, tls) = (endpoint.host.clone(), endpoint.port, endpoint.tls);
        Box::pin(async move {
            if tls {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "wss:// needs TLS, which this build of libphx does not include",
                ));
            }
            let stream = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            stream.set_nodelay(true)?;
            Ok(Box::new(stream) as BoxIo)
        })
    }
}

pub(crate) type Ws = WebSocketStream<BoxIo>;

/// Opens a connection: byte stream, then the WebSocket upgrade, within the connect timeout.
pub(crate) async fn open(
    connector: &dyn Connector,
    endpoint: &Endpoint,
    config: &Config,
) -> Result<Ws, DisconnectReason> {
    let attempt = async {
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
        tokio_tungstenite::client_async_with_config(endpoint.url.as_str(), io, Some(ws_config))
            .await
            .map(|(ws, _response)| ws)
            .map_err(reason_of)
    };
    match tokio::time::timeout(config.connect_timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(DisconnectReason::ConnectTimeout),
    }
}

/// Maps a WebSocket error to the reason reported to the user.
pub(crate) fn reason_of(e: tungstenite::Error) -> DisconnectReason {
    match e {
        tungstenite::Error::Http(resp) => DisconnectReason::HttpStatus(resp.status().as_u16()),
        tungstenite::Error::Io(e) => DisconnectReason::Io(e.to_string()),
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
            DisconnectReason::Io("connection closed".into())
        }
        tungstenite::Error::Protocol(
            tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
        ) => DisconnectReason::Io("connection reset without a close frame".into()),
        tungstenite::Error::Protocol(p) => DisconnectReason::Protocol(p.to_string()),
        other => DisconnectReason::Protocol(other.to_string()),
    }
}

/// An open connection with its write queue. Frames are queued by the socket's task and written
/// as the stream accepts them, so a slow peer never blocks reading.
pub(crate) struct Conn {
    pub(crate) ws: Ws,
    outbox: VecDeque<WsMessage>,
    unflushed: bool,
}

impl Conn {
    pub(crate) fn new(ws: Ws) -> Self {
        Conn {
            ws,
            outbox: VecDeque::new(),
            unflushed: false,
        }
    }

    pub(crate) fn queue(&mut self, msg: WsMessage) {
        self.outbox.push_back(msg);
    }

    pub(crate) fn queued(&self) -> usize {
        self.outbox.len()
    }

    /// Moves queued frames into the stream and flushes; `Err` means the connection is broken.
    pub(crate) fn poll_write(&mut self, cx: &mut Context<'_>) -> Result<(), tungstenite::Error> {
        while !self.outbox.is_empty() {
            match Pin::new(&mut self.ws).poll_ready(cx) {
                Poll::Ready(Ok(())) => {
                    let msg = self.outbox.pop_front().expect("outbox is not empty");
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
        self.outbox.push_back(WsMessage::Close(Some(frame)));
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
