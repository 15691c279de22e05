//! The C surface declared in `include/phx.h` (generated from this module by cbindgen; see
//! `docs/c-api.md` for the design).
//!
//! Rules every entry point follows:
//! - it runs behind a panic boundary ([`util::guard`]): a panic becomes `PHX_ERR_INTERNAL`
//!   (or a safe default for functions without a status), never an unwind into C;
//! - every pointer is checked, every C string validated as UTF-8, and out-parameters are
//!   written only on `PHX_OK`;
//! - ownership is carried by Rust types: sockets and options are `Box`es, channel handles are
//!   `Arc`s (one reference per handle returned), events and responses are boxes freed by their
//!   own free function;
//! - user code (callbacks, `free_user_data`) is never called with a lock of ours held.
//!
//! The contract of each function (ownership, lifetimes, threads) is stated in its doc comment,
//! which cbindgen copies into the header.
//!
//! Layers, each importing only those before it: the plain values (`status`, `types`, `util`,
//! `sync`); callback registrations and the completion protocol (`callbacks`); the event queue
//! (`queue`); the handle types and what they share (`handles`); the entry points (`options`,
//! `socket`, `channel`, `events`), and the blocking forms over the channel operations
//! (`blocking`).

#![allow(non_camel_case_types)]
#![allow(clippy::missing_safety_doc)]

// Declared in the order the header presents them (cbindgen follows it).

/// Status codes.
mod status;

/// Enumerations and the plain values handed to callbacks.
mod types;

/// Socket options.
mod options;

/// The connect provider.
mod provide;

/// Sockets.
mod socket;

/// Channels and their operations.
mod channel;

/// Blocking conveniences.
mod blocking;

/// The owned event queue: entry points.
mod events;
mod presence;

/// Statistics and probes.
mod observe;

/// The handle types and what they share.
mod handles;

/// The owned event queue itself.
mod queue;

/// Where queued events are stored.
mod event_store;

/// Callback registrations and completions.
mod callbacks;

/// Panic boundary, pointer checks, handle conversions.
mod util;

/// std's synchronisation, or loom's when model checking.
mod sync;

pub use blocking::*;
pub use callbacks::{
    phx_channel_handler_ex_t, phx_channel_handler_t, phx_free_fn, phx_presence_change_t,
    phx_presence_kind_t, phx_reply_cb, phx_socket_handler_ex_t, phx_socket_handler_t, phx_wake_fn,
};
pub use channel::*;
pub use events::*;
pub use handles::{phx_channel_t, phx_socket_t};
pub use observe::*;
pub use options::*;
pub use presence::*;
pub use provide::*;
pub use queue::phx_event_t;
pub use socket::*;
pub use status::*;
pub use types::*;

use std::ffi::c_char;

/// Introspection for libphx's own tests: not part of the C API (nothing here is exported to C).
#[doc(hidden)]
pub mod testing {
    use super::handles::phx_socket_t;

    /// Threads blocked in `phx_socket_next_event` and `phx_socket_connect_wait` on `s`.
    ///
    /// # Safety
    /// `s` is a live socket.
    pub unsafe fn blocked_waiters(s: *const phx_socket_t) -> usize {
        let s = &*s;
        s.core.events.get().map_or(0, |q| q.waiters()) + s.socket.blocked_waiters()
    }

    /// Channel instances `s` tracks: the engine's live table and the C handles' cache.
    ///
    /// # Safety
    /// `s` is a live socket.
    pub unsafe fn tracked_channels(s: *const phx_socket_t) -> (usize, usize) {
        let s = &*s;
        (s.socket.tracked_channels(), s.core.cached_channels())
    }

    /// The engine's table counts for `s` (waits for the socket's task to answer; not on a
    /// library thread).
    ///
    /// # Safety
    /// `s` is a live socket.
    pub unsafe fn engine_stats(s: *const phx_socket_t) -> crate::engine::EngineStats {
        let s = &*s;
        crate::engine::runtime::shared().block_on(s.socket.stats())
    }
}

/// The library's version, `"MAJOR.MINOR.PATCH"` (the same as the `PHX_VERSION_*` macros of
/// the header it was built with). Static text: never NULL, never to be freed. Any thread.
#[no_mangle]
pub extern "C" fn phx_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}
