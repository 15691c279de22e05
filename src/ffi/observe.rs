//! Observing a socket: its statistics (`phx_socket_stats`) and probes (`phx_socket_probe`).

use super::handles::{phx_socket_t, socket_arg};
use super::status::phx_status_t;
use super::util::{guard, UserData};
use crate::engine::{runtime, Status, REASON_KINDS};
use std::ffi::c_void;
use std::time::Duration;

/// Entries of `phx_socket_stats_t.disconnects` (indexed by `PHX_REASON_*`).
pub const PHX_STATS_REASONS: usize = 16;
const _: () = assert!(PHX_STATS_REASONS == REASON_KINDS);

/// A socket's statistics since it was created, filled by `phx_socket_stats`. A plain value
/// owned by the caller. Set `size` to `sizeof(phx_socket_stats_t)` before the call: members
/// added to later versions go at the end, and a library fills only the members that fit in
/// `size` (and writes in `size` how many bytes it filled), so old and new programs and
/// libraries mix.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct phx_socket_stats_t {
    /// In: `sizeof(phx_socket_stats_t)` as the caller was compiled. Out: bytes filled.
    pub size: usize,
    /// Round trip of the last answered heartbeat or probe, in microseconds; 0 before the first.
    pub rtt_last_us: u64,
    /// Smoothed round trip (`srtt = 7/8 srtt + 1/8 rtt`, as TCP's, RFC 6298), microseconds.
    pub rtt_smoothed_us: u64,
    /// Connections opened.
    pub connects: u64,
    /// Connections opened while reconnecting (after a lost connection or failed attempt).
    pub reconnects: u64,
    /// Connections lost and attempts failed, by reason: index `PHX_REASON_*` (index 0
    /// unused; `phx_socket_disconnect` counts under `PHX_REASON_CLIENT_CLOSED`).
    pub disconnects: [u64; PHX_STATS_REASONS],
    /// WebSocket frames and payload bytes received.
    pub frames_in: u64,
    pub bytes_in: u64,
    /// WebSocket frames and payload bytes sent.
    pub frames_out: u64,
    pub bytes_out: u64,
    /// Pushes sent and awaiting their reply.
    pub pushes_in_flight: u64,
    /// Pushes buffered while their channel joins.
    pub pushes_buffered: u64,
    /// Events in the socket's event queue, not yet taken (0 before `phx_socket_events_enable`).
    pub events_queued: u64,
}

/// Fills `*out` with socket `s`'s statistics (see `phx_socket_stats_t`; set `out->size`
/// first). The socket's task answers between two events, so the call waits briefly: it blocks
/// and may not be made on a library thread (inside a callback: `PHX_ERR_WRONG_THREAD`).
/// Counting costs the socket plain additions per frame; nothing is counted for a socket whose
/// statistics are never read but those additions.
///
/// Returns `PHX_ERR_INVALID_ARGUMENT` for NULL arguments or `out->size` smaller than a
/// `size_t`, `PHX_ERR_CLOSED` once the socket is being freed. `*out` is written only on
/// `PHX_OK`. Any thread but libphx's, concurrently.
#[no_mangle]
pub unsafe extern "C" fn phx_socket_stats(
    s: *mut phx_socket_t,
    out: *mut phx_socket_stats_t,
) -> phx_status_t {
    guard(|| {
        let s = socket_arg(s)?;
        if out.is_null() {
            return Err(phx_status_t::PHX_ERR_INVALID_ARGUMENT);
        }
        let size = std::ptr::read_unaligned(out.cast::<usize>());
        if size < std::mem::size_of::<usize>() {
            return Err(phx_status_t::PHX_ERR_INVALID_ARGUMENT);
        }
        if runtime::on_library_thread() {
            return Err(phx_status_t::PHX_ERR_WRONG_THREAD);
        }
        if s.core.is_closed() {
            return Err(phx_status_t::PHX_ERR_CLOSED);
        }
        let m = s
            .socket
            .metrics_blocking()
            .ok_or(phx_status_t::PHX_ERR_CLOSED)?;
        let us = |d: Option<Duration>| d.map_or(0, |d| d.as_micros() as u64);
        let n = size.min(std::mem::size_of::<phx_socket_stats_t>());
        let stats = phx_socket_stats_t {
            size: n,
            rtt_last_us: us(m.rtt_last),
            rtt_smoothed_us: us(m.rtt_smoothed),
            connects: m.connects,
            reconnects: m.reconnects,
            disconnects: m.disconnects,
            frames_in: m.frames_in,
            bytes_in: m.bytes_in,
            frames_out: m.frames_out,
            bytes_out: m.bytes_out,
            pushes_in_flight: m.pushes_in_flight,
            pushes_buffered: m.pushes_buffered,
            events_queued: s.core.events.get().map_or(0, |q| q.len() as u64),
        };
        let bytes = (&stats as *const phx_socket_stats_t).cast::<u8>();
        std::ptr::copy_nonoverlapping(bytes, out.cast::<u8>(), n);
        Ok(())
    })
}

/// Completion of `phx_socket_probe`: `status` `PHX_OK` with the round trip `rtt_us` in
/// microseconds; `PHX_ERR_DISCONNECTED` (not connected, or the connection dropped),
/// `PHX_ERR_TIMEOUT` (no answer within the heartbeat timeout: the connection is then closed
/// and reconnects) or `PHX_ERR_CLOSED` (disconnected or freed meanwhile) with `rtt_us` 0.
pub type phx_probe_cb =
    Option<unsafe extern "C" fn(user_data: *mut c_void, status: u32, rtt_us: u64)>;

/// Sends a heartbeat on socket `s` at once and reports its round trip: for an app back from
/// the background or after a network change, to learn at once whether the connection still
/// works (a dead one is closed after the heartbeat timeout and reconnects). If a heartbeat is
/// already awaited its answer serves; the regular heartbeats restart from the probe.
///
/// `cb` (nullable) is called exactly once with `user_data`, on a library thread, if this
/// returns `PHX_OK`; never on an error. `user_data` stays the caller's. Returns
/// `PHX_ERR_INVALID_ARGUMENT` for a NULL socket, `PHX_ERR_CLOSED` once it is being freed. Any
/// thread, callbacks included.
#[no_mangle]
pub unsafe extern "C" fn phx_socket_probe(
    s: *mut phx_socket_t,
    cb: phx_probe_cb,
    user_data: *mut c_void,
) -> phx_status_t {
    let user_data = UserData(user_data);
    probe(s, move |status, rtt| {
        let user_data = user_data; // the whole (Send) wrapper, not its raw field
        if let Some(f) = cb {
            // SAFETY: the caller's callback with its own pointer.
            unsafe { f(user_data.0, status, rtt) }
        }
    })
}

/// `phx_socket_probe` completing into the event queue: a `PHX_EVENT_PROBE` event carrying
/// `tag`, the status and `rtt_us` (never dropped, like replies). Returns `PHX_ERR_STATE`
/// before `phx_socket_events_enable`; otherwise as `phx_socket_probe`. Any thread.
#[no_mangle]
pub unsafe extern "C" fn phx_socket_probe_tagged(s: *mut phx_socket_t, tag: u64) -> phx_status_t {
    guard(|| {
        let sock = socket_arg(s)?;
        let queue = sock.core.queue()?;
        match probe(s, move |status, rtt| queue.push_probe(tag, status, rtt)) {
            phx_status_t::PHX_OK => Ok(()),
            e => Err(e),
        }
    })
}

unsafe fn probe(
    s: *mut phx_socket_t,
    report: impl FnOnce(u32, u64) + Send + 'static,
) -> phx_status_t {
    guard(|| {
        let s = socket_arg(s)?;
        if s.core.is_closed() {
            return Err(phx_status_t::PHX_ERR_CLOSED);
        }
        let on_done = Box::new(move |r: Result<Duration, Status>| {
            let (status, rtt) = match r {
                Ok(rtt) => (phx_status_t::PHX_OK, rtt.as_micros() as u64),
                Err(e) => (phx_status_t::from(e), 0),
            };
            super::util::contain(|| report(status as u32, rtt));
        });
        s.socket.probe(on_done).map_err(phx_status_t::from)
    })
}
