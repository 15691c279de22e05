//! The two handle types C holds and what they share: `phx_socket_t` (one engine socket and
//! the C surface's state for it, [`SocketCore`]) and `phx_channel_t` (one engine channel
//! instance). The entry points that use them live in `socket`, `channel`, `events` and
//! `blocking`; this module knows none of them.
//!
//! # Lifetimes
//!
//! A `phx_socket_t *` is one reference to an `Arc`. Every entry point takes a reference of its
//! own for as long as it runs ([`socket_arg`]), and `phx_socket_free` only gives up the
//! caller's, so a call already in progress on another thread (a blocking wait above all) keeps
//! what it uses alive and returns `PHX_ERR_CLOSED`. Starting a new call once `phx_socket_free`
//! has begun remains the caller's error, as with any freed pointer.
//!
//! A `phx_channel_t *` is one reference to an `Arc` as well; it outlives its socket (its
//! operations then return `PHX_ERR_CLOSED`).
//!
//! # Handlers
//!
//! The engine calls one handler per socket ([`SocketHub`], installed at creation) and one per
//! channel instance ([`ChannelTap`]); they feed the event queue and call the caller's
//! registration, which the `*_set_handler` functions swap under a mutex never held while user
//! code runs (the registration is cloned out first).

use super::callbacks::{ChannelRegistration, SocketRegistration};
use super::queue::EventQueue;
use super::status::phx_status_t;
use super::util::{handle_ref, lock, FfiResult};
use crate::engine::{
    Channel, ChannelHandler, ChannelState, DisconnectReason, LogLevel, Message, PresenceChange,
    ReplyRef, Socket, SocketHandler, SocketState, Status,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// A Phoenix socket (opaque). Created by `phx_socket_new`, freed by `phx_socket_free`.
pub struct phx_socket_t {
    pub(crate) socket: Socket,
    pub(crate) core: Arc<SocketCore>,
    /// The connect provider's registration, released by `phx_socket_free`.
    pub(crate) provider: std::sync::Mutex<Option<super::provide::ProviderKeep>>,
}

/// What the socket's handler, its channels and its entry points share.
pub(crate) struct SocketCore {
    /// Set by `phx_socket_free`: no handler callback runs any more, channel operations
    /// return `PHX_ERR_CLOSED`, waiters return.
    closed: AtomicBool,
    /// The caller's socket callbacks.
    pub(crate) user: Mutex<Option<Arc<SocketRegistration>>>,
    /// The owned event queue, once enabled.
    pub(crate) events: OnceLock<Arc<EventQueue>>,
    /// The C handles and registrations of the engine's live channel instances, by instance id.
    channels: Mutex<HashMap<u64, CachedChannel>>,
}

/// One channel instance as the C surface knows it. The handle is weak: the caller's
/// references keep it; the hub (the caller's callbacks) lives as long as the engine instance.
struct CachedChannel {
    handle: Weak<phx_channel_t>,
    hub: Arc<ChannelHub>,
}

impl SocketCore {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(SocketCore {
            closed: AtomicBool::new(false),
            user: Mutex::new(None),
            events: OnceLock::new(),
            channels: Mutex::new(HashMap::new()),
        })
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The socket is being freed: from now on no handler callback starts, operations fail
    /// and queue waiters return.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        if let Some(queue) = self.events.get() {
            queue.close();
        }
    }

    /// Releases the caller's registrations (after the engine stopped calling them).
    pub(crate) fn release(&self) {
        let user = lock(&self.user).take();
        let channels = std::mem::take(&mut *lock(&self.channels));
        drop(user);
        drop(channels);
        if let Some(queue) = self.events.get() {
            queue.discard();
        }
    }

    /// The event queue, or `PHX_ERR_STATE` before `phx_socket_events_enable`.
    pub(crate) fn queue(&self) -> FfiResult<Arc<EventQueue>> {
        self.events
            .get()
            .cloned()
            .ok_or(phx_status_t::PHX_ERR_STATE)
    }

    /// Channel instances the C handles' cache holds.
    pub(crate) fn cached_channels(&self) -> usize {
        lock(&self.channels).len()
    }

    /// The C handle of engine channel `channel`: the existing one (a new reference), or a new
    /// one whose handler is installed before it is returned, so it sees every event.
    pub(crate) fn handle_for(self: &Arc<Self>, channel: Channel) -> Arc<phx_channel_t> {
        let mut channels = lock(&self.channels);
        let id = channel.id();
        if let Some(cached) = channels.get(&id) {
            if let Some(handle) = cached.handle.upgrade() {
                return handle; // `channel`, a second engine handle, is dropped
            }
        }
        let hub = match channels.get(&id) {
            Some(cached) => cached.hub.clone(),
            None => {
                let hub = Arc::new(ChannelHub {
                    id,
                    topic: channel.topic().into(),
                    core: Arc::downgrade(self),
                    slot: Mutex::new(HubSlot {
                        user: None,
                        retired: false,
                    }),
                });
                channel.set_handler(Some(Arc::new(ChannelTap {
                    hub: hub.clone(),
                    core: self.clone(),
                })));
                hub
            }
        };
        let handle = Arc::new(phx_channel_t {
            channel,
            hub: hub.clone(),
            core: self.clone(),
        });
        let cached = CachedChannel {
            handle: Arc::downgrade(&handle),
            hub,
        };
        channels.insert(id, cached);
        handle
    }
}

/// The engine-side handler of a socket.
pub(crate) struct SocketHub(pub(crate) Arc<SocketCore>);

impl SocketHandler for SocketHub {
    fn on_state(&self, state: SocketState, reason: Option<&DisconnectReason>) {
        let core = &self.0;
        if core.is_closed() {
            return;
        }
        if let Some(queue) = core.events.get() {
            queue.push_socket_state(state, reason);
        }
        let user = lock(&core.user).clone();
        if let Some(user) = user {
            user.on_state(state, reason);
        }
    }

    fn on_log_record(&self, level: LogLevel, target: &str, message: &str) {
        let core = &self.0;
        if core.is_closed() {
            return;
        }
        let user = lock(&core.user).clone();
        if let Some(user) = user {
            user.on_log(level, target, message);
        }
    }
}

/// Takes a reference of the caller's socket for the duration of a call (see the module
/// documentation); NULL is an invalid argument.
///
/// # Safety
/// `s` is NULL or a socket whose `phx_socket_free` has not begun.
pub(crate) unsafe fn socket_arg(s: *const phx_socket_t) -> FfiResult<Arc<phx_socket_t>> {
    if s.is_null() {
        return Err(phx_status_t::PHX_ERR_INVALID_ARGUMENT);
    }
    Arc::increment_strong_count(s);
    Ok(Arc::from_raw(s))
}

// ---- channels ---------------------------------------------------------------------------------

/// A channel of a socket (opaque, reference counted). Each `phx_socket_channel` returns a new
/// reference, each `phx_channel_free` releases one.
pub struct phx_channel_t {
    pub(crate) channel: Channel,
    pub(crate) hub: Arc<ChannelHub>,
    pub(crate) core: Arc<SocketCore>,
}

/// The caller's registration for one channel instance.
pub(crate) struct ChannelHub {
    pub(crate) id: u64,
    pub(crate) topic: Arc<str>,
    /// The socket's shared state, for completions that report into its event queue; weak, so
    /// that a completion still pending keeps neither the socket's state nor its queue alive.
    pub(crate) core: Weak<SocketCore>,
    slot: Mutex<HubSlot>,
}

struct HubSlot {
    user: Option<Arc<ChannelRegistration>>,
    /// The engine released the channel: no callback will run again.
    retired: bool,
}

impl ChannelHub {
    fn current(&self) -> Option<Arc<ChannelRegistration>> {
        lock(&self.slot).user.clone()
    }

    /// Replaces the caller's registration; `PHX_ERR_CLOSED` once the channel is released
    /// (nothing is consumed then). The old registration is dropped by the caller, with no
    /// lock held.
    pub(crate) fn replace(
        &self,
        registration: Option<Arc<ChannelRegistration>>,
    ) -> Result<Option<Arc<ChannelRegistration>>, Option<Arc<ChannelRegistration>>> {
        let mut slot = lock(&self.slot);
        if slot.retired {
            return Err(registration);
        }
        Ok(std::mem::replace(&mut slot.user, registration))
    }
}

/// The engine-side handler of a channel instance.
struct ChannelTap {
    hub: Arc<ChannelHub>,
    core: Arc<SocketCore>,
}

impl ChannelHandler for ChannelTap {
    fn on_message(&self, message: &Message<'_>) {
        if self.core.is_closed() {
            return;
        }
        if let Some(queue) = self.core.events.get() {
            queue.push_message(self.hub.id, message);
        }
        if let Some(user) = self.hub.current() {
            user.on_message(message);
        }
    }

    fn on_state(&self, state: ChannelState) {
        if self.core.is_closed() {
            return;
        }
        if let Some(queue) = self.core.events.get() {
            queue.push_channel_state(self.hub.id, &self.hub.topic, state);
        }
        if let Some(user) = self.hub.current() {
            user.on_state(state);
        }
    }

    fn on_rejoin(&self, status: Status, reply: Option<ReplyRef<'_>>) {
        if self.core.is_closed() {
            return;
        }
        if let Some(queue) = self.core.events.get() {
            let code = phx_status_t::from(status) as u32;
            queue.push_rejoin(self.hub.id, &self.hub.topic, code, reply.as_ref());
        }
        if let Some(user) = self.hub.current() {
            user.on_rejoin(status, reply);
        }
    }

    fn on_presence(&self, change: &PresenceChange) {
        if self.core.is_closed() {
            return;
        }
        if let Some(queue) = self.core.events.get() {
            queue.push_presence(self.hub.id, &self.hub.topic, Some(change));
        }
        if let Some(user) = self.hub.current() {
            user.on_presence(change);
        }
    }

    fn on_presence_sync(&self) {
        if self.core.is_closed() {
            return;
        }
        if let Some(queue) = self.core.events.get() {
            queue.push_presence(self.hub.id, &self.hub.topic, None);
        }
        if let Some(user) = self.hub.current() {
            user.on_presence_sync();
        }
    }

    fn on_rejoined(&self, response: ReplyRef<'_>, missed: bool) {
        if self.core.is_closed() {
            return;
        }
        if let Some(queue) = self.core.events.get() {
            queue.push_rejoined(self.hub.id, &self.hub.topic, &response, missed);
        }
        if let Some(user) = self.hub.current() {
            user.on_rejoined(&response, missed);
        }
    }
}

impl Drop for ChannelTap {
    /// The engine released the instance: its callbacks are released and it leaves the cache.
    fn drop(&mut self) {
        super::util::contain(|| {
            let user = {
                let mut slot = lock(&self.hub.slot);
                slot.retired = true;
                slot.user.take()
            };
            drop(user);
            let entry = lock(&self.core.channels).remove(&self.hub.id);
            drop(entry);
        });
    }
}

/// Borrows a channel handle whose socket is still alive (`PHX_ERR_CLOSED` once it is freed).
///
/// # Safety
/// `c` is NULL or a live channel handle.
pub(crate) unsafe fn live<'a>(c: *const phx_channel_t) -> FfiResult<&'a phx_channel_t> {
    let c = handle_ref(c)?;
    if c.core.is_closed() {
        return Err(phx_status_t::PHX_ERR_CLOSED);
    }
    Ok(c)
}
