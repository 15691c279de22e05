//! State shared by every connection of one server: the topic registry (subscriptions and
//! presences), counters, the frame log, and the faults in force.

use crate::json::Json;
use crate::tls::Tls;
use crate::{Config, LogEntry, LogFrame, Stats};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::{AbortHandle, JoinHandle};
use tokio::time::Instant;

/// The log keeps at most this many frames (the oldest are dropped first)...
pub const LOG_LIMIT: usize = 100_000;
/// ...and at most this many bytes of frames.
pub const LOG_BYTES: usize = 32 * 1024 * 1024;

/// What a connection task can be told by others.
#[derive(Debug)]
pub(crate) enum ConnMsg {
    /// A broadcast (`new_msg`, `presence_diff`) on a topic this connection is subscribed to.
    Broadcast(Arc<Broadcast>),
    /// Close the WebSocket with this code.
    Close(u16),
}

/// A payload: JSON or bytes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Payload {
    Json(Json),
    Binary(Vec<u8>),
}

#[derive(Debug)]
pub(crate) struct Broadcast {
    pub topic: String,
    pub event: String,
    pub payload: Payload,
}

struct ConnEntry {
    tx: mpsc::UnboundedSender<ConnMsg>,
    task: u64,
    socket_id: String,
}

struct Presence {
    conn: u64,
    key: String,
    meta: Json,
}

#[derive(Default)]
struct Topic {
    subscribers: BTreeSet<u64>,
    /// Keyed by tracking order, which is the order metas are listed in.
    presences: BTreeMap<u64, Presence>,
}

#[derive(Default)]
pub(crate) struct Hub {
    /// Every accepted connection task (HTTP or WebSocket), for drop and restart.
    tasks: HashMap<u64, AbortHandle>,
    conns: HashMap<u64, ConnEntry>,
    topics: HashMap<String, Topic>,
    accepted: u64,
    joins: BTreeMap<String, u64>,
    leaves: BTreeMap<String, u64>,
    log: VecDeque<LogEntry>,
    log_bytes: usize,
    down: bool,
    next_presence: u64,
}

/// HTTP status, deadline (`None`: until reset) and `Retry-After` seconds to send.
pub(crate) type Refusal = (u16, Option<Instant>, Option<u64>);

pub(crate) struct Faults {
    pub blackhole: AtomicBool,
    pub silence: AtomicBool,
    pub delay_us: AtomicU64,
    pub refuse: Mutex<Option<Refusal>>,
    /// Whose frames are left unread; connections watch it to resume reading when it changes.
    pub stop_reading: watch::Sender<ReadStops>,
}

/// The stop-reading fault: for every connection, or for some by number.
#[derive(Debug, Clone, Default)]
pub(crate) struct ReadStops {
    pub all: bool,
    pub conns: BTreeSet<u64>,
}

impl ReadStops {
    pub fn stops(&self, conn: u64) -> bool {
        self.all || self.conns.contains(&conn)
    }
}

pub(crate) struct Shared {
    pub config: Config,
    pub addr: SocketAddr,
    /// The certificate and acceptor when the server listens with TLS.
    pub tls: Option<Tls>,
    pub faults: Faults,
    hub: Mutex<Hub>,
    accept_task: Mutex<Option<JoinHandle<()>>>,
    listening: watch::Sender<bool>,
    restart_lock: tokio::sync::Mutex<()>,
    next_task: AtomicU64,
    next_conn: AtomicU64,
    next_ref: AtomicU64,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub fn new(config: Config, addr: SocketAddr, tls: Option<Tls>) -> Shared {
        Shared {
            config,
            addr,
            tls,
            faults: Faults {
                blackhole: AtomicBool::new(false),
                silence: AtomicBool::new(false),
                delay_us: AtomicU64::new(0),
                refuse: Mutex::new(None),
                stop_reading: watch::channel(ReadStops::default()).0,
            },
            hub: Mutex::new(Hub::default()),
            accept_task: Mutex::new(None),
            listening: watch::channel(false).0,
            restart_lock: tokio::sync::Mutex::new(()),
            next_task: AtomicU64::new(1),
            next_conn: AtomicU64::new(1),
            next_ref: AtomicU64::new(1),
        }
    }

    pub fn hub(&self) -> MutexGuard<'_, Hub> {
        lock(&self.hub)
    }

    pub fn blackhole(&self) -> bool {
        self.faults.blackhole.load(Ordering::Relaxed)
    }

    pub fn silence(&self) -> bool {
        self.faults.silence.load(Ordering::Relaxed)
    }

    pub fn delay(&self) -> Duration {
        Duration::from_micros(self.faults.delay_us.load(Ordering::Relaxed))
    }

    /// The status (and `Retry-After` seconds) new upgrades are refused with, if a refusal is
    /// in force.
    pub fn refusal(&self) -> Option<(u16, Option<u64>)> {
        let mut r = lock(&self.faults.refuse);
        match *r {
            Some((_, Some(until), _)) if Instant::now() >= until => {
                *r = None;
                None
            }
            Some((status, _, retry_after)) => Some((status, retry_after)),
            None => None,
        }
    }

    pub fn reset_faults(&self) {
        self.faults.blackhole.store(false, Ordering::Relaxed);
        self.faults.silence.store(false, Ordering::Relaxed);
        self.faults.delay_us.store(0, Ordering::Relaxed);
        *lock(&self.faults.refuse) = None;
        self.faults.stop_reading.send_replace(ReadStops::default());
    }

    /// Stops (`true`) or resumes reading on every connection, existing and new.
    pub fn set_stop_reading(&self, on: bool) {
        self.faults.stop_reading.send_if_modified(|s| {
            let changed = s.all != on;
            s.all = on;
            changed
        });
    }

    /// Stops (`true`) or resumes reading on connection `conn` alone.
    pub fn set_stop_reading_for(&self, conn: u64, on: bool) {
        self.faults.stop_reading.send_if_modified(|s| match on {
            true => s.conns.insert(conn),
            false => s.conns.remove(&conn),
        });
    }

    /// What a connection watches to know whether it may read.
    pub fn read_stops(&self) -> watch::Receiver<ReadStops> {
        self.faults.stop_reading.subscribe()
    }

    /// Spawns the task serving one accepted byte stream and registers it for drop/restart.
    pub fn spawn_connection<S>(self: &Arc<Self>, stream: S) -> JoinHandle<()>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        self.spawn_connection_after(async move { Some(stream) })
    }

    /// Like [`spawn_connection`](Self::spawn_connection), for a stream that `opening` (a TLS
    /// handshake) must produce first, in the connection's task; `None` ends the task.
    pub fn spawn_connection_after<F, S>(self: &Arc<Self>, opening: F) -> JoinHandle<()>
    where
        F: std::future::Future<Output = Option<S>> + Send + 'static,
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let id = self.next_task.fetch_add(1, Ordering::Relaxed);
        let shared = self.clone();
        let mut hub = self.hub();
        let handle = tokio::spawn(async move {
            match opening.await {
                Some(stream) => crate::conn::serve(shared, stream, id).await,
                None => shared.task_done(id),
            }
        });
        hub.tasks.insert(id, handle.abort_handle());
        handle
    }

    pub fn task_done(&self, task: u64) {
        self.hub().tasks.remove(&task);
    }

    pub fn is_down(&self) -> bool {
        self.hub().down
    }

    pub fn set_accept_task(&self, handle: JoinHandle<()>) {
        *lock(&self.accept_task) = Some(handle);
        self.listening.send_replace(true);
    }

    pub async fn wait_listening(&self) {
        let mut rx = self.listening.subscribe();
        let _ = rx.wait_for(|up| *up).await;
    }

    pub fn restart_lock(&self) -> &tokio::sync::Mutex<()> {
        &self.restart_lock
    }

    /// Closes the listener, drops every connection task but `keep`, and forgets all state.
    pub async fn go_down(&self, keep: Option<u64>) {
        let accept = lock(&self.accept_task).take();
        self.listening.send_replace(false);
        if let Some(h) = accept {
            h.abort();
            let _ = h.await;
        }
        let tasks: Vec<AbortHandle> = {
            let mut hub = self.hub();
            hub.down = true;
            let tasks = std::mem::take(&mut hub.tasks);
            let (keep_tasks, drop_tasks): (HashMap<_, _>, HashMap<_, _>) =
                tasks.into_iter().partition(|(id, _)| Some(*id) == keep);
            hub.tasks = keep_tasks;
            hub.conns.clear();
            hub.topics.clear();
            hub.accepted = 0;
            hub.joins.clear();
            hub.leaves.clear();
            hub.clear_log();
            drop_tasks.into_values().collect()
        };
        for t in tasks {
            t.abort();
        }
    }

    pub fn set_up(&self) {
        self.hub().down = false;
    }

    /// Aborts the listener and every connection (server dropped).
    pub fn shutdown(&self) {
        if let Some(h) = lock(&self.accept_task).take() {
            h.abort();
        }
        self.listening.send_replace(false);
        let tasks: Vec<AbortHandle> = {
            let mut hub = self.hub();
            hub.down = true;
            hub.tasks.drain().map(|(_, t)| t).collect()
        };
        // Aborted outside the lock: a task dropped at once runs guards that take it.
        for t in tasks {
            t.abort();
        }
    }

    pub fn next_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// A fresh presence `phx_ref`: 12 bytes (time in ns, a counter) as 16 URL-safe base64 chars.
    pub fn new_phx_ref(&self) -> String {
        let n = self.next_ref.fetch_add(1, Ordering::Relaxed);
        let ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let mut bytes = [0u8; 12];
        bytes[..8].copy_from_slice(&ns.to_be_bytes());
        bytes[8..].copy_from_slice(&(n as u32).to_be_bytes());
        base64_url(&bytes)
    }
}

fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// `{"<key>": {"metas": [meta, ...]}, ...}`
fn group(entries: impl Iterator<Item = (String, Json)>) -> Json {
    let mut map: BTreeMap<String, Vec<Json>> = BTreeMap::new();
    for (key, meta) in entries {
        map.entry(key).or_default().push(meta);
    }
    Json::Object(
        map.into_iter()
            .map(|(k, metas)| (k, Json::object([("metas", Json::Array(metas))])))
            .collect(),
    )
}

fn diff(joins: Json, leaves: Json) -> Payload {
    Payload::Json(Json::object([("joins", joins), ("leaves", leaves)]))
}

fn empty() -> Json {
    Json::empty_object()
}

impl Hub {
    pub fn accept_upgrade(
        &mut self,
        conn: u64,
        task: u64,
        tx: mpsc::UnboundedSender<ConnMsg>,
        socket_id: String,
    ) {
        self.accepted += 1;
        self.conns.insert(
            conn,
            ConnEntry {
                tx,
                task,
                socket_id,
            },
        );
    }

    pub fn log(&mut self, conn: u64, frame: LogFrame) {
        let size = |f: &LogFrame| match f {
            LogFrame::Text(t) => t.len(),
            LogFrame::Binary(b) => b.len(),
        };
        let new = size(&frame);
        while !self.log.is_empty()
            && (self.log.len() >= LOG_LIMIT || self.log_bytes + new > LOG_BYTES)
        {
            if let Some(old) = self.log.pop_front() {
                self.log_bytes -= size(&old.frame);
            }
        }
        self.log_bytes += new;
        self.log.push_back(LogEntry { conn, frame });
    }

    pub fn take_log(&self) -> Vec<LogEntry> {
        self.log.iter().cloned().collect()
    }

    pub fn clear_log(&mut self) {
        self.log.clear();
        self.log_bytes = 0;
    }

    pub fn count_join(&mut self, topic: String) {
        *self.joins.entry(topic).or_default() += 1;
    }

    pub fn count_leave(&mut self, topic: String) {
        *self.leaves.entry(topic).or_default() += 1;
    }

    pub fn stats(&self) -> Stats {
        Stats {
            connections: self.conns.len(),
            accepted: self.accepted,
            joins: self.joins.clone(),
            leaves: self.leaves.clone(),
            joined: self
                .topics
                .iter()
                .filter(|(_, t)| !t.subscribers.is_empty())
                .map(|(k, t)| (k.clone(), t.subscribers.len() as u64))
                .collect(),
        }
    }

    /// Every WebSocket connection's task id (for drop).
    pub fn ws_tasks(&self) -> Vec<u64> {
        self.conns.values().map(|c| c.task).collect()
    }

    /// Removes these tasks from the registry; the caller aborts them after unlocking.
    pub fn take_tasks(&mut self, ids: &[u64]) -> Vec<AbortHandle> {
        ids.iter().filter_map(|id| self.tasks.remove(id)).collect()
    }

    /// Tells every WebSocket connection to close with `code`.
    pub fn close_all(&self, code: u16) {
        for c in self.conns.values() {
            let _ = c.tx.send(ConnMsg::Close(code));
        }
    }

    /// Closes (1000) every other connection with this socket id (`disconnect` broadcast).
    pub fn disconnect_socket_id(&self, socket_id: &str, except: u64) {
        for (id, c) in &self.conns {
            if *id != except && c.socket_id == socket_id {
                let _ = c.tx.send(ConnMsg::Close(1000));
            }
        }
    }

    fn send_to_subscribers(&self, topic: &str, b: Arc<Broadcast>, except: Option<u64>) {
        let Some(t) = self.topics.get(topic) else {
            return;
        };
        for sub in &t.subscribers {
            if Some(*sub) == except {
                continue;
            }
            if let Some(c) = self.conns.get(sub) {
                let _ = c.tx.send(ConnMsg::Broadcast(b.clone()));
            }
        }
    }

    /// Sends a broadcast to every subscriber but `from` (who emits its own copy in order).
    pub fn broadcast(
        &self,
        from: u64,
        topic: &str,
        event: &str,
        payload: Payload,
    ) -> Arc<Broadcast> {
        let b = Arc::new(Broadcast {
            topic: topic.to_owned(),
            event: event.to_owned(),
            payload,
        });
        self.send_to_subscribers(topic, b.clone(), Some(from));
        b
    }

    pub fn subscribe(&mut self, topic: &str, conn: u64) {
        self.topics
            .entry(topic.to_owned())
            .or_default()
            .subscribers
            .insert(conn);
    }

    /// Removes `conn`'s channel on `topic`; its presence (if tracked) leaves, and the leave diff
    /// goes to the remaining subscribers.
    pub fn unsubscribe(&mut self, topic: &str, conn: u64) {
        let Some(t) = self.topics.get_mut(topic) else {
            return;
        };
        t.subscribers.remove(&conn);
        let left: Vec<(String, Json)> = {
            let orders: Vec<u64> = t
                .presences
                .iter()
                .filter(|(_, p)| p.conn == conn)
                .map(|(o, _)| *o)
                .collect();
            orders
                .into_iter()
                .filter_map(|o| t.presences.remove(&o))
                .map(|p| (p.key, p.meta))
                .collect()
        };
        if !left.is_empty() {
            let b = Arc::new(Broadcast {
                topic: topic.to_owned(),
                event: "presence_diff".into(),
                payload: diff(empty(), group(left.into_iter())),
            });
            self.send_to_subscribers(topic, b, None);
        }
        let t = &self.topics[topic];
        if t.subscribers.is_empty() && t.presences.is_empty() {
            self.topics.remove(topic);
        }
    }

    /// Forgets a connection: all its channels leave (with presence leave diffs to the others).
    pub fn remove_conn(&mut self, conn: u64) {
        if self.conns.remove(&conn).is_none() {
            return;
        }
        let topics: Vec<String> = self
            .topics
            .iter()
            .filter(|(_, t)| {
                t.subscribers.contains(&conn) || t.presences.values().any(|p| p.conn == conn)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for topic in topics {
            self.unsubscribe(&topic, conn);
        }
    }

    /// Tracks `conn` on `topic` under `key`; returns the join diff (already sent to the others).
    pub fn track(&mut self, topic: &str, conn: u64, key: &str, meta: Json) -> Arc<Broadcast> {
        self.next_presence += 1;
        let order = self.next_presence;
        let t = self.topics.entry(topic.to_owned()).or_default();
        t.presences.insert(
            order,
            Presence {
                conn,
                key: key.to_owned(),
                meta: meta.clone(),
            },
        );
        let joins = group(std::iter::once((key.to_owned(), meta)));
        self.broadcast(conn, topic, "presence_diff", diff(joins, empty()))
    }

    /// `Presence.list` for the topic.
    pub fn presence_list(&self, topic: &str) -> Json {
        match self.topics.get(topic) {
            Some(t) => group(
                t.presences
                    .values()
                    .map(|p| (p.key.clone(), p.meta.clone())),
            ),
            None => empty(),
        }
    }

    /// Replaces `conn`'s meta on `topic` (keeping its position) with `update(old)`; returns the
    /// diff (already sent to the others), or `None` if `conn` is not tracked there.
    pub fn update(
        &mut self,
        topic: &str,
        conn: u64,
        update: impl FnOnce(&Json) -> Json,
    ) -> Option<Arc<Broadcast>> {
        let t = self.topics.get_mut(topic)?;
        let p = t.presences.values_mut().find(|p| p.conn == conn)?;
        let old = std::mem::replace(&mut p.meta, Json::Null);
        p.meta = update(&old);
        let key = p.key.clone();
        let joins = group(std::iter::once((key.clone(), p.meta.clone())));
        let leaves = group(std::iter::once((key, old)));
        Some(self.broadcast(conn, topic, "presence_diff", diff(joins, leaves)))
    }

    /// Stops tracking `conn` on `topic` (it stays subscribed); returns the leave diff (already
    /// sent to the others), or `None` if it was not tracked.
    pub fn untrack(&mut self, topic: &str, conn: u64) -> Option<Arc<Broadcast>> {
        let t = self.topics.get_mut(topic)?;
        let order = t
            .presences
            .iter()
            .find(|(_, p)| p.conn == conn)
            .map(|(o, _)| *o)?;
        let p = t.presences.remove(&order)?;
        let leaves = group(std::iter::once((p.key, p.meta)));
        Some(self.broadcast(conn, topic, "presence_diff", diff(empty(), leaves)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_keeps_the_latest_frames() {
        let mut hub = Hub::default();
        for i in 0..LOG_LIMIT + 2 {
            hub.log(1, LogFrame::Text(i.to_string()));
        }
        let log = hub.take_log();
        assert_eq!(log.len(), LOG_LIMIT);
        assert_eq!(log[0].frame, LogFrame::Text("2".into()));
        hub.log(2, LogFrame::Binary(vec![0; LOG_BYTES - 10]));
        hub.log(2, LogFrame::Binary(vec![1; 10]));
        let log = hub.take_log();
        assert_eq!(log.len(), 2, "older frames give way to the byte limit");
        hub.log(2, LogFrame::Binary(vec![2]));
        assert_eq!(hub.take_log().len(), 2);
        hub.clear_log();
        assert!(hub.take_log().is_empty());
    }

    #[test]
    fn base64_url_of_12_bytes_is_16_chars() {
        assert_eq!(super::base64_url(b"hello world!"), "aGVsbG8gd29ybGQh");
        assert_eq!(super::base64_url(&[0xfb, 0xff, 0xbf, 0, 0, 0]), "-_-_AAAA");
    }
}
