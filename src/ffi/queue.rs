//! The owned event queue of a socket: `phx_event_t`s the caller pulls and frees, with three
//! ways to learn that events are pending: a blocking wait, a file descriptor readable while the
//! queue is non-empty, and a data-less wake callback. It knows no handle; the entry points
//! that reach it through a socket are in `events`.
//!
//! Replies of `*_tagged` operations are never dropped. Other events are dropped when the queue
//! is full and counted; a `PHX_EVENT_OVERFLOW` event carrying the count is queued as soon as
//! there is room again, so loss is never silent.

#![allow(non_camel_case_types)]

use super::callbacks::{CompletionSink, WakeRegistration};
use super::event_store::{event_size, Blocks, OwnedEvent};
use super::status::phx_status_t;
use super::sync::{self, Condvar, Mutex};
use super::types::{channel_state, payload_parts, phx_event_kind_t, phx_reason_t, socket_state};
use super::util::{lock, millis};
use crate::engine::runtime;
use crate::engine::{ChannelState, DisconnectReason, Message, ReplyRef, SocketState, Status};
use crate::protocol::Payload;
use std::collections::VecDeque;
use std::ffi::{c_char, c_int};
use std::sync::Arc;
use std::time::Instant;

/// One owned event. Everything it points to belongs to it and lives until `phx_event_free`.
///
/// Which fields are set depends on `kind`; the others are 0 / NULL:
///
/// | kind | fields |
/// |---|---|
/// | `PHX_EVENT_REPLY` | `tag`, `status` (a `PHX_*` status), `channel_id`, `topic`; with a server reply (`PHX_OK`, `PHX_ERR_REPLY`) `reply_status`, `payload_kind`, `payload`, `payload_len` |
/// | `PHX_EVENT_MESSAGE` | `channel_id`, `topic`, `event`, `join_ref` and `ref` (NULL when absent), `payload_kind`, `payload`, `payload_len` |
/// | `PHX_EVENT_SOCKET_STATE` | `state` (a `PHX_SOCKET_*` value), `reason` (never NULL; kind `PHX_REASON_NONE` when none is given) |
/// | `PHX_EVENT_CHANNEL_STATE` | `channel_id`, `topic`, `state` (a `PHX_CHANNEL_*` value) |
/// | `PHX_EVENT_REJOIN` | `channel_id`, `topic`, `status`; with a server reply `reply_status` and the payload fields |
/// | `PHX_EVENT_OVERFLOW` | `dropped`: how many events were dropped since the previous overflow event |
/// | `PHX_EVENT_PRESENCE_JOIN` | `channel_id`, `topic`, `key`, `metas` (the metas that joined, a JSON array), the key's metas before the join as a JSON payload (`payload` NULL, length 0, when the key was absent) |
/// | `PHX_EVENT_PRESENCE_LEAVE` | `channel_id`, `topic`, `key`, `metas` (the metas that left), the key's metas after the leave as a JSON payload (`[]` when the key is gone) |
/// | `PHX_EVENT_PRESENCE_SYNC` | `channel_id`, `topic` (read the list with `phx_channel_presence`) |
/// | `PHX_EVENT_REJOINED` | `channel_id`, `topic`, `status` (`PHX_OK`), `reply_status` and the payload fields (the server's join response), `missed` |
/// | `PHX_EVENT_PROBE` | `tag`, `status` (`PHX_OK`, `PHX_ERR_DISCONNECTED`, `PHX_ERR_TIMEOUT` or `PHX_ERR_CLOSED`), `rtt_us` |
///
/// `channel_id` names the channel instance (`phx_channel_id`): while an old instance of a
/// topic is still leaving and a new one joins, both have the same topic but not the same id.
///
/// Strings are NUL-terminated UTF-8 and their lengths (NUL excluded) are given beside them.
/// The payload is NOT NUL-terminated, as no payload handed to C is: use `payload_len`.
#[repr(C)]
pub struct phx_event_t {
    /// A `PHX_EVENT_*` value.
    pub kind: u32,
    /// A `PHX_*` status (`PHX_EVENT_REPLY`, `PHX_EVENT_REJOIN`).
    pub status: u32,
    /// A `PHX_SOCKET_*` or `PHX_CHANNEL_*` value (state events).
    pub state: u32,
    /// A `PHX_PAYLOAD_*` value (when `payload` is set).
    pub payload_kind: u32,
    /// The tag given to the `*_tagged` call (`PHX_EVENT_REPLY`).
    pub tag: u64,
    /// Events dropped (`PHX_EVENT_OVERFLOW`).
    pub dropped: u64,
    /// The channel instance (`phx_channel_id`); 0 for socket events.
    pub channel_id: u64,
    /// The channel's topic.
    pub topic: *const c_char,
    pub topic_len: usize,
    /// The message's event name.
    pub event: *const c_char,
    pub event_len: usize,
    pub join_ref: *const c_char,
    pub join_ref_len: usize,
    pub r#ref: *const c_char,
    pub ref_len: usize,
    /// The server's reply status (`"ok"`, `"error"`, ...).
    pub reply_status: *const c_char,
    pub reply_status_len: usize,
    pub payload: *const u8,
    pub payload_len: usize,
    /// Why the socket changed state: set for `PHX_EVENT_SOCKET_STATE` (kind `PHX_REASON_NONE`
    /// when none was given), NULL for every other kind. Owned by the event.
    pub reason: *const phx_reason_t,
    /// The presence key (`PHX_EVENT_PRESENCE_JOIN`, `PHX_EVENT_PRESENCE_LEAVE`).
    pub key: *const c_char,
    pub key_len: usize,
    /// The metas that joined or left, a JSON array (presence events).
    pub metas: *const c_char,
    pub metas_len: usize,
    /// 1 when messages may have been missed (`PHX_EVENT_REJOINED`: the channel had been
    /// joined before), 0 otherwise.
    pub missed: u32,
    /// The heartbeat's round trip in microseconds (`PHX_EVENT_PROBE` with `PHX_OK`).
    pub rtt_us: u64,
}

/// What to put in an event (see [`phx_event_t`] for which fields a kind sets).
#[derive(Default)]
pub(crate) struct EventSpec<'a> {
    kind: u32,
    status: u32,
    state: u32,
    tag: u64,
    dropped: u64,
    channel_id: u64,
    topic: Option<&'a str>,
    event: Option<&'a str>,
    join_ref: Option<&'a str>,
    ref_: Option<&'a str>,
    reply_status: Option<&'a str>,
    payload: Option<Payload<'a>>,
    reason: Option<&'a phx_reason_t>,
    key: Option<&'a str>,
    metas: Option<&'a str>,
    missed: u32,
    rtt_us: u64,
}

impl EventSpec<'_> {
    /// The strings the event points to, in the order they are stored.
    fn strs(&self) -> [Option<&str>; 7] {
        [
            self.topic,
            self.event,
            self.join_ref,
            self.ref_,
            self.reply_status,
            self.key,
            self.metas,
        ]
    }

    /// The bytes the event takes in the queue's storage: the event, its reason, its strings
    /// (NUL-terminated) and its payload. What it counts for in the bound in bytes.
    fn cost(&self) -> usize {
        let strs: usize = self.strs().iter().flatten().map(|s| s.len() + 1).sum();
        let payload = self
            .payload
            .as_ref()
            .map_or(0, |p| payload_parts(p).1.len());
        let reason = self
            .reason
            .map_or(0, |_| std::mem::size_of::<phx_reason_t>());
        event_size(reason + strs + payload)
    }

    /// Writes the event into `blocks`; `cost` is [`EventSpec::cost`].
    fn build(&self, blocks: &mut Blocks, cost: usize) -> OwnedEvent {
        blocks.write(cost, |ev, at| {
            let mut at = Writer(at);
            // SAFETY: the event's size counts the reason (first, so 8-aligned), then every
            // string with its NUL, then the payload.
            unsafe {
                let reason = match self.reason {
                    Some(r) => at.reason(r),
                    None => std::ptr::null(),
                };
                let topic = at.str(self.topic);
                let event = at.str(self.event);
                let join_ref = at.str(self.join_ref);
                let ref_ = at.str(self.ref_);
                let reply_status = at.str(self.reply_status);
                let key = at.str(self.key);
                let metas = at.str(self.metas);
                let (payload_kind, payload, payload_len) = match &self.payload {
                    Some(p) => {
                        let (kind, bytes) = payload_parts(p);
                        (kind, at.bytes(bytes), bytes.len())
                    }
                    None => (0, std::ptr::null(), 0),
                };
                ev.write(phx_event_t {
                    kind: self.kind,
                    status: self.status,
                    state: self.state,
                    payload_kind,
                    tag: self.tag,
                    dropped: self.dropped,
                    channel_id: self.channel_id,
                    topic: topic.0,
                    topic_len: topic.1,
                    event: event.0,
                    event_len: event.1,
                    join_ref: join_ref.0,
                    join_ref_len: join_ref.1,
                    r#ref: ref_.0,
                    ref_len: ref_.1,
                    reply_status: reply_status.0,
                    reply_status_len: reply_status.1,
                    payload,
                    payload_len,
                    reason,
                    key: key.0,
                    key_len: key.1,
                    metas: metas.0,
                    metas_len: metas.1,
                    missed: self.missed,
                    rtt_us: self.rtt_us,
                });
            }
        })
    }
}

/// Copies what an event points to into its storage, one piece after another.
struct Writer(*mut u8);

impl Writer {
    /// # Safety
    /// There is room for the reason, and the writer is 8-aligned.
    unsafe fn reason(&mut self, r: &phx_reason_t) -> *const phx_reason_t {
        let p = self.0.cast::<phx_reason_t>();
        p.write(*r);
        self.0 = self.0.add(std::mem::size_of::<phx_reason_t>());
        p
    }

    /// # Safety
    /// There is room for `bytes`.
    unsafe fn bytes(&mut self, bytes: &[u8]) -> *const u8 {
        let p = self.0;
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len());
        self.0 = p.add(bytes.len());
        p
    }

    /// A NUL-terminated copy of `s`, or NULL (length 0).
    ///
    /// # Safety
    /// There is room for `s` and its NUL.
    unsafe fn str(&mut self, s: Option<&str>) -> (*const c_char, usize) {
        let Some(s) = s else {
            return (std::ptr::null(), 0);
        };
        let p = self.bytes(s.as_bytes());
        self.0.write(0);
        self.0 = self.0.add(1);
        (p.cast(), s.len())
    }
}

// ---- the readiness descriptor ---------------------------------------------------------------------

/// A descriptor readable while the queue is non-empty: an eventfd on Linux and Android, the
/// read end of a pipe on other Unix systems.
struct Readiness {
    read_fd: c_int,
    write_fd: c_int,
}

impl Readiness {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn new() -> Option<Self> {
        // SAFETY: plain system call.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        (fd >= 0).then_some(Readiness {
            read_fd: fd,
            write_fd: fd,
        })
    }

    #[cfg(all(unix, not(any(target_os = "linux", target_os = "android"))))]
    fn new() -> Option<Self> {
        let mut fds = [0 as c_int; 2];
        // SAFETY: plain system calls on descriptors we own.
        unsafe {
            if libc::pipe(fds.as_mut_ptr()) != 0 {
                return None;
            }
            for fd in fds {
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
                let flags = libc::fcntl(fd, libc::F_GETFL);
                libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
            }
        }
        Some(Readiness {
            read_fd: fds[0],
            write_fd: fds[1],
        })
    }

    #[cfg(not(unix))]
    fn new() -> Option<Self> {
        None
    }

    /// Makes the descriptor readable (the queue became non-empty).
    fn set(&self) {
        #[cfg(unix)]
        {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a live u64 to our descriptor; a full counter or pipe
            // (EAGAIN) means it is readable already.
            unsafe { libc::write(self.write_fd, (&one as *const u64).cast(), 8) };
        }
    }

    /// Makes the descriptor unreadable (the queue became empty).
    fn clear(&self) {
        #[cfg(unix)]
        {
            let mut sink = [0u8; 64];
            // SAFETY: reads into a live buffer from our non-blocking descriptor until empty.
            unsafe {
                while libc::read(self.read_fd, sink.as_mut_ptr().cast(), sink.len()) > 0 {
                    if self.read_fd == self.write_fd {
                        break; // an eventfd is drained by one read
                    }
                }
            }
        }
    }
}

impl Drop for Readiness {
    fn drop(&mut self) {
        #[cfg(unix)]
        // SAFETY: closes descriptors this value owns, once.
        unsafe {
            libc::close(self.read_fd);
            if self.write_fd != self.read_fd {
                libc::close(self.write_fd);
            }
        }
    }
}

// ---- the queue --------------------------------------------------------------------------------------

struct QueueState {
    items: VecDeque<OwnedEvent>,
    /// Where events are written.
    blocks: Blocks,
    capacity: usize,
    /// Bytes the queued events hold, and their bound (see [`EventSpec::cost`]).
    bytes: usize,
    max_bytes: usize,
    /// Events dropped and not yet reported by an overflow event.
    dropped: u64,
    /// The socket was freed: nothing is queued any more, waiters return.
    closed: bool,
    /// Threads blocked in `next`: only then is the condition variable signalled.
    waiters: usize,
    /// The readiness descriptor, made when first asked for (`phx_socket_event_fd`): a
    /// consumer that never asks pays no system call per batch and holds no descriptor.
    readiness: Option<Readiness>,
    /// The readiness descriptor was made readable and not cleared since.
    signalled: bool,
    /// Events were added in the socket task's current batch and the consumer is told at its
    /// end ([`runtime::defer_to_batch_end`]).
    deferred: bool,
}

/// A socket's event queue.
pub(crate) struct EventQueue {
    state: Mutex<QueueState>,
    ready: Condvar,
    wake: std::sync::Mutex<Option<Arc<WakeRegistration>>>,
}

/// What waiting for an event produced.
#[must_use]
pub(crate) enum Next {
    Event(OwnedEvent),
    Empty,
    Closed,
}

/// A notification deferred to the end of the socket task's batch.
impl runtime::BatchEnd for EventQueue {
    fn batch_end(&self) {
        let mut st = sync::lock(&self.state);
        st.deferred = false;
        if st.items.is_empty() {
            return; // taken meanwhile
        }
        self.notify(st, true);
    }
}

impl EventQueue {
    pub(crate) fn new(
        capacity: usize,
        max_bytes: usize,
        wake: Option<WakeRegistration>,
    ) -> Arc<Self> {
        Arc::new(EventQueue {
            state: Mutex::new(QueueState {
                items: VecDeque::with_capacity(capacity.min(64)),
                blocks: Blocks::new(),
                capacity,
                bytes: 0,
                max_bytes,
                dropped: 0,
                closed: false,
                waiters: 0,
                readiness: None,
                signalled: false,
                deferred: false,
            }),
            ready: Condvar::new(),
            wake: std::sync::Mutex::new(wake.map(Arc::new)),
        })
    }

    /// Takes the wake registration back (for a failed enable: nothing was consumed).
    pub(crate) fn take_wake(&self) -> Option<WakeRegistration> {
        let wake = lock(&self.wake).take()?;
        Arc::try_unwrap(wake).ok()
    }

    /// The readiness descriptor, made on the first call (readable at once if events are
    /// queued); `None` where the platform has none or it cannot be made.
    pub(crate) fn fd(&self) -> Option<c_int> {
        let mut st = sync::lock(&self.state);
        if st.readiness.is_none() {
            st.readiness = Some(Readiness::new()?);
            st.signalled = false;
        }
        if !st.items.is_empty() && !st.signalled {
            st.signalled = true;
            if let Some(r) = &st.readiness {
                r.set();
            }
        }
        st.readiness.as_ref().map(|r| r.read_fd)
    }

    /// Adds an event. `droppable` events are dropped (and counted) while the queue is full, in
    /// events or in bytes; an empty queue admits any one event.
    ///
    /// Inside a socket task's batch the consumer is told once, at the end of the batch: one
    /// descriptor write, one condition-variable signal and one wake callback for the whole
    /// batch. Elsewhere it is told at once.
    fn push(self: &Arc<Self>, spec: &EventSpec<'_>, droppable: bool) {
        let mut st = sync::lock(&self.state);
        if st.closed {
            return;
        }
        let cost = spec.cost();
        if droppable {
            self.report_overflow(&mut st);
            let full = st.items.len() >= st.capacity
                || (!st.items.is_empty() && st.bytes + cost > st.max_bytes);
            if st.dropped > 0 || full {
                st.dropped += 1;
                return;
            }
        }
        let ev = spec.build(&mut st.blocks, cost);
        st.items.push_back(ev);
        st.bytes += cost;
        if st.deferred {
            return;
        }
        if runtime::defer_to_batch_end(|| self.clone()) {
            st.deferred = true;
            return;
        }
        self.notify(st, false);
    }

    /// Tells the consumer events are queued: makes the descriptor readable, signals waiters
    /// (all of them after a batch) and calls the wake callback, with no lock held.
    fn notify(&self, mut st: sync::MutexGuard<'_, QueueState>, batch: bool) {
        if !st.signalled {
            st.signalled = true;
            if let Some(r) = &st.readiness {
                r.set();
            }
        }
        let waiting = st.waiters;
        drop(st);
        match waiting {
            0 => {}
            1 => self.ready.notify_one(),
            _ if batch => self.ready.notify_all(),
            _ => self.ready.notify_one(),
        }
        let wake = lock(&self.wake).clone();
        if let Some(wake) = wake {
            let _guard = runtime::CallbackGuard::enter();
            wake.wake();
        }
    }

    /// Queues the overflow event if events were dropped and there is room for it.
    #[inline]
    fn report_overflow(&self, st: &mut QueueState) {
        if st.dropped != 0 && st.items.len() < st.capacity {
            self.queue_overflow(st);
        }
    }

    /// [`EventQueue::report_overflow`]'s rare path.
    #[cold]
    fn queue_overflow(&self, st: &mut QueueState) {
        let spec = EventSpec {
            kind: phx_event_kind_t::PHX_EVENT_OVERFLOW as u32,
            dropped: st.dropped,
            ..EventSpec::default()
        };
        let cost = spec.cost();
        if st.items.is_empty() || st.bytes + cost <= st.max_bytes {
            if !st.signalled && !st.deferred {
                st.signalled = true;
                if let Some(r) = &st.readiness {
                    r.set();
                }
            }
            st.bytes += cost;
            let ev = spec.build(&mut st.blocks, cost);
            st.items.push_back(ev);
            st.dropped = 0;
        }
    }

    /// Threads blocked in [`EventQueue::next`].
    pub(crate) fn waiters(&self) -> usize {
        sync::lock(&self.state).waiters
    }

    /// Takes the oldest event, waiting up to `timeout_ms` (0: not at all).
    pub(crate) fn next(&self, timeout_ms: u64) -> Next {
        let mut ev = None;
        match self.next_batch(timeout_ms, 1, |e| ev = Some(e)) {
            Next::Empty if ev.is_some() => Next::Event(ev.expect("taken")),
            other => other,
        }
    }

    /// Takes up to `max` (> 0) of the oldest events, handing each to `out` in order, once at
    /// least one is queued: waits up to `timeout_ms` (0: not at all) for the first, never for
    /// more. Returns `Empty` once it has taken some (or none came in time), `Closed` if the
    /// socket is freed with none taken.
    pub(crate) fn next_batch(
        &self,
        timeout_ms: u64,
        max: usize,
        mut out: impl FnMut(OwnedEvent),
    ) -> Next {
        let mut deadline = None;
        let mut st = sync::lock(&self.state);
        loop {
            if !st.items.is_empty() {
                for _ in 0..max {
                    let Some(ev) = st.items.pop_front() else {
                        break;
                    };
                    st.bytes -= ev.cost;
                    self.report_overflow(&mut st);
                    out(ev);
                }
                if st.items.is_empty() && st.signalled {
                    st.signalled = false;
                    if let Some(r) = &st.readiness {
                        r.clear();
                    }
                }
                return Next::Empty;
            }
            if st.closed {
                return Next::Closed;
            }
            if timeout_ms == 0 {
                return Next::Empty;
            }
            // The clock is read only when there is a wait.
            let now = Instant::now();
            let deadline = *deadline.get_or_insert_with(|| now + millis(timeout_ms));
            if now >= deadline {
                return Next::Empty;
            }
            st.waiters += 1;
            st = self
                .ready
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            st.waiters -= 1;
        }
    }

    /// The socket is being freed: stop queueing, wake every waiter, release the wake callback.
    pub(crate) fn close(&self) {
        sync::lock(&self.state).closed = true;
        self.ready.notify_all();
        let wake = lock(&self.wake).take();
        drop(wake);
    }

    // ---- producers ----------------------------------------------------------------------------

    pub(crate) fn push_socket_state(
        self: &Arc<Self>,
        state: SocketState,
        reason: Option<&DisconnectReason>,
    ) {
        self.push(
            &EventSpec {
                kind: phx_event_kind_t::PHX_EVENT_SOCKET_STATE as u32,
                state: socket_state(state),
                reason: Some(&phx_reason_t::from_engine(reason)),
                ..EventSpec::default()
            },
            true,
        );
    }

    pub(crate) fn push_channel_state(
        self: &Arc<Self>,
        channel_id: u64,
        topic: &str,
        state: ChannelState,
    ) {
        self.push(
            &EventSpec {
                kind: phx_event_kind_t::PHX_EVENT_CHANNEL_STATE as u32,
                state: channel_state(state),
                channel_id,
                topic: Some(topic),
                ..EventSpec::default()
            },
            true,
        );
    }

    pub(crate) fn push_message(self: &Arc<Self>, channel_id: u64, m: &Message<'_>) {
        self.push(
            &EventSpec {
                kind: phx_event_kind_t::PHX_EVENT_MESSAGE as u32,
                channel_id,
                topic: Some(m.topic),
                event: Some(m.event),
                join_ref: m.join_ref,
                ref_: m.ref_,
                payload: Some(m.payload),
                ..EventSpec::default()
            },
            true,
        );
    }

    pub(crate) fn push_rejoin(
        self: &Arc<Self>,
        channel_id: u64,
        topic: &str,
        status: u32,
        reply: Option<&ReplyRef<'_>>,
    ) {
        self.push(
            &EventSpec {
                kind: phx_event_kind_t::PHX_EVENT_REJOIN as u32,
                status,
                channel_id,
                topic: Some(topic),
                reply_status: reply.map(|r| r.status),
                payload: reply.map(|r| r.response),
                ..EventSpec::default()
            },
            true,
        );
    }
}

impl EventQueue {
    /// A presence change (`Some`) or sync (`None`) of a channel.
    pub(crate) fn push_presence(
        self: &Arc<Self>,
        channel_id: u64,
        topic: &str,
        change: Option<&crate::engine::PresenceChange>,
    ) {
        let mut spec = EventSpec {
            kind: phx_event_kind_t::PHX_EVENT_PRESENCE_SYNC as u32,
            channel_id,
            topic: Some(topic),
            ..EventSpec::default()
        };
        if let Some(change) = change {
            let (kind, key, current, metas) = super::callbacks::presence_parts(change);
            spec.kind = if kind == super::callbacks::phx_presence_kind_t::PHX_PRESENCE_JOIN as u32 {
                phx_event_kind_t::PHX_EVENT_PRESENCE_JOIN as u32
            } else {
                phx_event_kind_t::PHX_EVENT_PRESENCE_LEAVE as u32
            };
            spec.key = Some(key);
            spec.metas = Some(metas);
            spec.payload = current.map(Payload::Json);
        }
        self.push(&spec, true);
    }

    pub(crate) fn push_rejoined(
        self: &Arc<Self>,
        channel_id: u64,
        topic: &str,
        reply: &ReplyRef<'_>,
        missed: bool,
    ) {
        self.push(
            &EventSpec {
                kind: phx_event_kind_t::PHX_EVENT_REJOINED as u32,
                status: phx_status_t::PHX_OK as u32,
                channel_id,
                topic: Some(topic),
                reply_status: Some(reply.status),
                payload: Some(reply.response),
                missed: u32::from(missed),
                ..EventSpec::default()
            },
            true,
        );
    }

    /// The outcome of a `*_tagged` operation: a `PHX_EVENT_REPLY` (never dropped).
    pub(crate) fn push_reply(
        self: &Arc<Self>,
        tag: u64,
        channel_id: u64,
        topic: &str,
        status: Status,
        reply: Option<&ReplyRef<'_>>,
    ) {
        self.push(
            &EventSpec {
                kind: phx_event_kind_t::PHX_EVENT_REPLY as u32,
                status: phx_status_t::from(status) as u32,
                tag,
                channel_id,
                topic: Some(topic),
                reply_status: reply.map(|r| r.status),
                payload: reply.map(|r| r.response),
                ..EventSpec::default()
            },
            false,
        );
    }

    /// A probe's outcome (never dropped, as replies are not).
    pub(crate) fn push_probe(self: &Arc<Self>, tag: u64, status: u32, rtt_us: u64) {
        self.push(
            &EventSpec {
                kind: phx_event_kind_t::PHX_EVENT_PROBE as u32,
                status,
                tag,
                rtt_us,
                ..EventSpec::default()
            },
            false,
        );
    }

    /// Frees the events nobody took, once the socket is freed and its task has stopped (no
    /// producer is left): a channel handle that outlives its socket keeps the queue, not them.
    pub(crate) fn discard(&self) {
        let left = {
            let mut st = sync::lock(&self.state);
            st.bytes = 0;
            std::mem::take(&mut st.items)
        };
        drop(left); // outside the lock: each drop releases its share of a block
    }

    /// Events waiting to be taken.
    pub(crate) fn len(&self) -> usize {
        sync::lock(&self.state).items.len()
    }
}

/// Completes a `*_tagged` operation into the queue as a `PHX_EVENT_REPLY` (never dropped).
#[derive(Clone)]
pub(crate) struct QueueSink {
    pub(crate) queue: Arc<EventQueue>,
    pub(crate) tag: u64,
    pub(crate) channel_id: u64,
    pub(crate) topic: Arc<str>,
}

impl CompletionSink for QueueSink {
    fn complete(&self, status: Status, reply: Option<&ReplyRef<'_>>) {
        self.queue
            .push_reply(self.tag, self.channel_id, &self.topic, status, reply);
    }
}

/// Model checks (loom) of the queue's waiting protocol: whatever the interleaving, a waiter
/// blocked in `next` is woken by an event or by `close` (no lost wake-up: loom reports a
/// deadlock), and every event is taken exactly once.
#[cfg(all(test, phx_loom))]
mod model {
    use super::*;

    fn message() -> EventSpec<'static> {
        EventSpec {
            kind: phx_event_kind_t::PHX_EVENT_MESSAGE as u32,
            topic: Some("t"),
            ..EventSpec::default()
        }
    }

    #[test]
    fn a_waiter_is_woken_by_an_event_or_by_close() {
        loom::model(|| {
            let queue = EventQueue::new(4, usize::MAX, None);
            let q = queue.clone();
            let waiter = loom::thread::spawn(move || match q.next(u64::MAX) {
                Next::Event(_) => 1,
                Next::Closed => 0,
                Next::Empty => panic!("an unbounded wait returned empty"),
            });
            let q = queue.clone();
            let producer = loom::thread::spawn(move || q.push(&message(), true));
            queue.close();
            let taken = waiter.join().unwrap();
            producer.join().unwrap();
            // Whatever the waiter did not take is still there or was refused after close.
            let left = usize::from(matches!(queue.next(0), Next::Event(_)));
            assert!(taken + left <= 1);
        });
    }

    #[test]
    fn a_batch_taker_gets_every_event_once() {
        loom::model(|| {
            let queue = EventQueue::new(4, usize::MAX, None);
            let q = queue.clone();
            let waiter = loom::thread::spawn(move || {
                let mut n = 0;
                let _ = q.next_batch(u64::MAX, 4, |_| n += 1);
                n
            });
            queue.push(&message(), true);
            queue.push(&message(), true);
            queue.close();
            let taken = waiter.join().unwrap();
            let mut left = 0;
            let _ = queue.next_batch(0, 4, |_| left += 1);
            assert!(taken >= 1, "a waiter returns with at least one event");
            assert_eq!(taken + left, 2);
        });
    }

    #[test]
    fn two_waiters_two_events_each_taken_once() {
        loom::model(|| {
            let queue = EventQueue::new(4, usize::MAX, None);
            let waiters: Vec<_> = (0..2)
                .map(|_| {
                    let q = queue.clone();
                    loom::thread::spawn(move || matches!(q.next(u64::MAX), Next::Event(_)))
                })
                .collect();
            queue.push(&message(), true);
            queue.push(&message(), true);
            let taken = waiters
                .into_iter()
                .filter(|_| true)
                .map(|w| w.join().unwrap())
                .filter(|&t| t)
                .count();
            assert_eq!(taken, 2);
        });
    }
}

#[cfg(all(test, not(phx_loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn message(payload: &str) -> EventSpec<'_> {
        EventSpec {
            kind: phx_event_kind_t::PHX_EVENT_MESSAGE as u32,
            topic: Some("t"),
            payload: Some(Payload::Json(payload)),
            ..EventSpec::default()
        }
    }

    static WAKES: AtomicUsize = AtomicUsize::new(0);

    unsafe extern "C" fn count_wake(_: *mut std::ffi::c_void) {
        WAKES.fetch_add(1, Ordering::SeqCst);
    }

    fn taken(queue: &EventQueue, max: usize) -> usize {
        let mut n = 0;
        let _ = queue.next_batch(0, max, |_| n += 1);
        n
    }

    /// Inside a socket task's batch the consumer is told once, at its end: no wake-up per
    /// event. Outside one, at once.
    #[test]
    fn a_batch_of_events_wakes_the_consumer_once() {
        let wake = WakeRegistration::new(Some(count_wake), std::ptr::null_mut(), None);
        let queue = EventQueue::new(100, usize::MAX, Some(wake));
        let readable = |q: &EventQueue| sync::lock(&q.state).signalled;
        runtime::begin_batch(false);
        for _ in 0..10 {
            queue.push(&message("{}"), true);
        }
        assert_eq!(WAKES.load(Ordering::SeqCst), 0, "not during the batch");
        assert!(!readable(&queue));
        runtime::end_batch();
        assert_eq!(WAKES.load(Ordering::SeqCst), 1, "once at its end");
        assert!(readable(&queue));
        assert_eq!(taken(&queue, 4), 4);
        assert!(readable(&queue), "readable while events remain");
        assert_eq!(taken(&queue, 100), 6);
        assert!(!readable(&queue));
        // Drained before the batch ended: nobody is told.
        runtime::begin_batch(false);
        queue.push(&message("{}"), true);
        assert_eq!(taken(&queue, 1), 1);
        runtime::end_batch();
        assert_eq!(WAKES.load(Ordering::SeqCst), 1);
        // Outside a batch: at once, per event.
        queue.push(&message("{}"), true);
        queue.push(&message("{}"), true);
        assert_eq!(WAKES.load(Ordering::SeqCst), 3);
        queue.close();
    }

    fn readable(fd: c_int) -> bool {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one live pollfd, no wait.
        unsafe { libc::poll(&mut p, 1, 0) == 1 }
    }

    /// The descriptor is made when first asked for, readable at once if events are already
    /// queued; from then on it follows the queue.
    #[cfg(unix)]
    #[test]
    fn the_descriptor_is_made_on_demand_and_tells_the_truth() {
        let queue = EventQueue::new(100, usize::MAX, None);
        queue.push(&message("{}"), true);
        assert!(sync::lock(&queue.state).readiness.is_none());
        let fd = queue.fd().expect("a descriptor");
        assert!(readable(fd), "events queued before it was made");
        assert_eq!(queue.fd(), Some(fd), "the same descriptor every time");
        assert_eq!(taken(&queue, 10), 1);
        assert!(!readable(fd));
        queue.push(&message("{}"), true);
        assert!(readable(fd));
        assert_eq!(taken(&queue, 10), 1);
        assert!(!readable(fd));
        queue.close();
    }

    /// Freeing the socket frees what nobody took; an event already taken stays valid.
    #[test]
    fn discarding_frees_untaken_events_and_spares_taken_ones() {
        let queue = EventQueue::new(100, usize::MAX, None);
        for _ in 0..3 {
            queue.push(&message("{\"kept\":1}"), true);
        }
        let Next::Event(kept) = queue.next(0) else {
            panic!("an event was queued")
        };
        queue.close();
        queue.discard();
        assert_eq!(queue.len(), 0, "untaken events are freed");
        assert_eq!(sync::lock(&queue.state).bytes, 0);
        let raw = kept.into_raw();
        // SAFETY: the event taken above, owned here until it is taken back below.
        let ev = unsafe { &*raw };
        // SAFETY: payload and payload_len describe the event's own bytes.
        let payload = unsafe { std::slice::from_raw_parts(ev.payload, ev.payload_len) };
        assert_eq!(payload, b"{\"kept\":1}");
        // SAFETY: handed out by `into_raw` above, taken back once.
        drop(unsafe { OwnedEvent::from_raw(raw) });
    }

    /// Every byte an event holds counts against the bound, presence keys and metas included.
    #[test]
    fn the_bound_in_bytes_counts_presence_metas() {
        let metas = format!("[{{\"pad\":\"{}\"}}]", "m".repeat(5000));
        let presence = EventSpec {
            kind: phx_event_kind_t::PHX_EVENT_PRESENCE_JOIN as u32,
            topic: Some("t"),
            key: Some("user"),
            metas: Some(&metas),
            ..EventSpec::default()
        };
        assert!(presence.cost() > 5000);
        let queue = EventQueue::new(100, 4 * message("{}").cost(), None);
        queue.push(&presence, true);
        queue.push(&message("{}"), true);
        let mut kinds = Vec::new();
        let _ = queue.next_batch(0, 100, |e| kinds.push((e.ev.kind, e.ev.dropped)));
        use phx_event_kind_t::*;
        assert_eq!(
            kinds,
            [
                (PHX_EVENT_PRESENCE_JOIN as u32, 0),
                (PHX_EVENT_OVERFLOW as u32, 1)
            ]
        );
    }

    /// Past the bound in bytes, droppable events are dropped and counted; an empty queue
    /// admits one event whatever its size; replies are never dropped; the overflow event
    /// comes once there is room.
    #[test]
    fn the_queue_is_bounded_in_bytes() {
        let big = "x".repeat(10_000);
        let one = message(&big).cost();
        let queue = EventQueue::new(1000, one + 10, None);
        queue.push(&message(&big), true);
        queue.push(&message(&big), true);
        queue.push(&message("{}"), true);
        let reply = EventSpec {
            kind: phx_event_kind_t::PHX_EVENT_REPLY as u32,
            payload: Some(Payload::Json(&big)),
            ..EventSpec::default()
        };
        queue.push(&reply, false);
        let mut kinds = Vec::new();
        let _ = queue.next_batch(0, 100, |e| kinds.push((e.ev.kind, e.ev.dropped)));
        use phx_event_kind_t::*;
        assert_eq!(
            kinds,
            [
                (PHX_EVENT_MESSAGE as u32, 0),
                (PHX_EVENT_REPLY as u32, 0),
                (PHX_EVENT_OVERFLOW as u32, 2)
            ]
        );
        assert_eq!(sync::lock(&queue.state).bytes, 0);
    }

    fn text(p: *const u8, len: usize) -> String {
        // SAFETY: an event's pointer and length, read while the event is alive.
        String::from_utf8(unsafe { std::slice::from_raw_parts(p, len) }.to_vec()).unwrap()
    }

    /// The topic, event and payload of a message event, checking the NULs after the strings.
    fn contents(e: &OwnedEvent) -> (String, String, String) {
        let ev = &e.ev;
        // SAFETY: strings are NUL-terminated right after their length.
        unsafe {
            assert_eq!(*ev.topic.add(ev.topic_len), 0);
            assert_eq!(*ev.event.add(ev.event_len), 0);
        }
        (
            text(ev.topic.cast(), ev.topic_len),
            text(ev.event.cast(), ev.event_len),
            text(ev.payload, ev.payload_len),
        )
    }

    fn numbered(topic: &str, i: usize, payload: &str) -> (String, String, String) {
        (topic.to_string(), format!("e{i}"), payload.to_string())
    }

    /// Events share storage, yet an event taken and kept stays intact while many more are
    /// queued, taken, freed and dropped on overflow, and after the queue itself is gone.
    #[test]
    fn kept_events_stay_intact_while_storage_is_reused() {
        let queue = EventQueue::new(50, usize::MAX, None);
        let mut kept = Vec::new();
        let mut expected = Vec::new();
        let mut overflows = 0;
        for round in 0..40 {
            // More than the queue holds: some are dropped and reported.
            for i in 0..60 {
                let n = round * 100 + i;
                let payload = format!("{{\"n\":{n},\"pad\":\"{}\"}}", "x".repeat(n % 97));
                let topic = format!("room:{}", n % 13);
                let event = format!("e{n}");
                queue.push(
                    &EventSpec {
                        kind: phx_event_kind_t::PHX_EVENT_MESSAGE as u32,
                        topic: Some(&topic),
                        event: Some(&event),
                        payload: Some(Payload::Json(&payload)),
                        ..EventSpec::default()
                    },
                    true,
                );
            }
            let _ = queue.next_batch(0, 1000, |e| {
                if e.ev.kind == phx_event_kind_t::PHX_EVENT_OVERFLOW as u32 {
                    overflows += 1;
                    return;
                }
                let n: usize = contents(&e).1[1..].parse().unwrap();
                if n % 7 == 0 {
                    let payload = format!("{{\"n\":{n},\"pad\":\"{}\"}}", "x".repeat(n % 97));
                    expected.push(numbered(&format!("room:{}", n % 13), n, &payload));
                    kept.push(e);
                }
            });
        }
        assert!(overflows > 0);
        assert!(kept.len() > 100);
        drop(queue);
        let got: Vec<_> = kept.iter().map(contents).collect();
        assert_eq!(got, expected);
    }

    /// A batch take hands events over oldest first, and a batch may be freed in any order,
    /// part now and part later.
    #[test]
    fn a_batch_take_is_in_order_and_freed_in_parts() {
        let queue = EventQueue::new(1000, usize::MAX, None);
        for i in 0..300 {
            let event = format!("e{i}");
            let payload = format!("[{i}]");
            queue.push(
                &EventSpec {
                    kind: phx_event_kind_t::PHX_EVENT_MESSAGE as u32,
                    topic: Some("t"),
                    event: Some(&event),
                    payload: Some(Payload::Json(&payload)),
                    ..EventSpec::default()
                },
                true,
            );
        }
        let mut batch = Vec::new();
        let _ = queue.next_batch(0, 200, |e| batch.push(e));
        assert_eq!(batch.len(), 200);
        // Free the odd ones at once, the others after more are taken.
        let mut rest: Vec<_> = batch
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % 2 == 0)
            .collect();
        let mut more = Vec::new();
        let _ = queue.next_batch(0, 200, |e| more.push(e));
        assert_eq!(more.len(), 100);
        for (i, e) in rest.drain(..).rev() {
            assert_eq!(contents(&e), numbered("t", i, &format!("[{i}]")));
        }
        for (i, e) in more.iter().enumerate() {
            let i = i + 200;
            assert_eq!(contents(e), numbered("t", i, &format!("[{i}]")));
        }
        assert_eq!(sync::lock(&queue.state).bytes, 0);
    }

    /// A socket state event's reason is stored with it and stays readable.
    #[test]
    fn a_state_events_reason_is_stored_with_it() {
        let queue = EventQueue::new(10, usize::MAX, None);
        let reason = DisconnectReason::CloseFrame {
            code: 4000,
            reason: "bye".into(),
        };
        queue.push_socket_state(SocketState::Disconnected, Some(&reason));
        let Next::Event(e) = queue.next(0) else {
            panic!("no event")
        };
        for _ in 0..200 {
            queue.push(&message("{\"filler\":true}"), true);
            let _ = queue.next(0);
        }
        // SAFETY: set for socket state events, alive with the event.
        let r = unsafe { &*e.ev.reason };
        assert_eq!(r.code, 4000);
        assert_eq!(
            text(r.text.as_ptr().cast(), r.text_len),
            reason_text(&reason)
        );
        assert_eq!(e.cost, queue_cost_of_state(&reason));
    }

    fn reason_text(reason: &DisconnectReason) -> String {
        let r = phx_reason_t::from_engine(Some(reason));
        text(r.text.as_ptr().cast(), r.text_len)
    }

    fn queue_cost_of_state(reason: &DisconnectReason) -> usize {
        EventSpec {
            reason: Some(&phx_reason_t::from_engine(Some(reason))),
            ..EventSpec::default()
        }
        .cost()
    }
}
