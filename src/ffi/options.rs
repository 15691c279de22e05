//! `phx_options_t`: socket settings collected before `phx_socket_new`, which copies them.

use super::status::phx_status_t;
use super::util::{box_from_raw, box_into_raw, c_slice, c_str, guard, guard_or, millis, FfiResult};
use crate::engine::Config;
use crate::engine::TlsRoots;
use std::ffi::c_char;
use std::path::PathBuf;
use std::time::Duration;

/// Socket options (opaque). Created by `phx_options_new`, freed by `phx_options_free`;
/// `phx_socket_new` copies them, so they may be freed or reused right after.
#[derive(Default)]
pub struct phx_options_t {
    params: Option<Vec<(String, String)>>,
    heartbeat: Option<Duration>,
    reconnect: Option<Vec<Duration>>,
    rejoin: Option<Vec<Duration>>,
    timeout: Option<Duration>,
    leave_timeout: Option<Duration>,
    connect_timeout: Option<Duration>,
    ca_pem: Option<Vec<u8>>,
    auth_token: Option<String>,
    headers: Vec<(String, String)>,
    max_refusals: Option<u32>,
    provider: Option<(crate::engine::Provider, super::provide::ProviderKeep)>,
    provider_timeout: Option<Duration>,
    jitter: Option<(f64, f64)>,
    jitter_seed: Option<u64>,
    stop_codes: Option<Vec<u16>>,
    heartbeat_timeout: Option<Duration>,
    log_level: Option<crate::engine::LogLevel>,
    max_frame_size: Option<usize>,
    max_write_queue_bytes: Option<usize>,
    max_buffered_pushes: Option<usize>,
    max_channels: Option<usize>,
    max_event_queue_bytes: Option<usize>,
    tls_roots: Option<TlsRoots>,
    ca_file: Option<PathBuf>,
    client_identity: Option<(Vec<u8>, Vec<u8>)>,
    tls_insecure: Option<bool>,
}

impl phx_options_t {
    /// Applies the options that were set to `config`.
    pub(crate) fn apply(&self, config: &mut Config) {
        if let Some(p) = &self.params {
            config.params = p.clone();
        }
        if let Some(d) = self.heartbeat {
            config.heartbeat_interval = d;
        }
        if let Some(s) = &self.reconnect {
            config.reconnect_schedule = s.clone();
        }
        if let Some(s) = &self.rejoin {
            config.rejoin_schedule = s.clone();
        }
        if let Some(d) = self.timeout {
            config.default_timeout = d;
        }
        if let Some(d) = self.leave_timeout {
            config.leave_timeout = d;
        }
        if let Some(d) = self.connect_timeout {
            config.connect_timeout = d;
        }
        if let Some(pem) = &self.ca_pem {
            config.extra_root_certs_pem = pem.clone();
        }
        if let Some(t) = &self.auth_token {
            config.auth_token = Some(t.clone());
        }
        config.headers.extend(self.headers.iter().cloned());
        if let Some(n) = self.max_refusals {
            config.max_refusals = n;
        }
        if let Some((p, _)) = &self.provider {
            config.connect_provider = Some(p.clone());
        }
        if let Some(d) = self.provider_timeout {
            config.provider_timeout = d;
        }
        if let Some((reconnect, rejoin)) = self.jitter {
            config.reconnect_jitter = reconnect;
            config.rejoin_jitter = rejoin;
        }
        if self.jitter_seed.is_some() {
            config.jitter_seed = self.jitter_seed;
        }
        if let Some(codes) = &self.stop_codes {
            config.stop_on_close_codes = codes.clone();
        }
        if self.heartbeat_timeout.is_some() {
            config.heartbeat_timeout = self.heartbeat_timeout;
        }
        if let Some(level) = self.log_level {
            config.log_level = level;
        }
        let bounds = [
            (self.max_frame_size, &mut config.max_frame_size),
            (
                self.max_write_queue_bytes,
                &mut config.max_write_queue_bytes,
            ),
            (self.max_buffered_pushes, &mut config.max_buffered_pushes),
            (self.max_channels, &mut config.max_channels),
            (
                self.max_event_queue_bytes,
                &mut config.max_event_queue_bytes,
            ),
        ];
        for (set, field) in bounds {
            if let Some(v) = set {
                *field = v;
            }
        }
        if let Some(roots) = self.tls_roots {
            config.tls_roots = roots;
        }
        if let Some(path) = &self.ca_file {
            config.ca_file = Some(path.clone());
        }
        if let Some((cert, key)) = &self.client_identity {
            config.client_cert_pem = cert.clone();
            config.client_key_pem = key.clone();
        }
        if let Some(on) = self.tls_insecure {
            config.tls_insecure_skip_verify = on;
        }
    }

    /// What a socket made from these options keeps alive (the C provider's registration).
    pub(crate) fn provider_keep(&self) -> Option<super::provide::ProviderKeep> {
        self.provider.as_ref().map(|(_, keep)| keep.clone())
    }
}

const INVALID: phx_status_t = phx_status_t::PHX_ERR_INVALID_ARGUMENT;

/// Parses the connect params: a JSON object whose values are strings, numbers or booleans.
pub(crate) fn parse_params(json: &str) -> FfiResult<Vec<(String, String)>> {
    let value: serde_json::Value = serde_json::from_str(json).map_err(|_| INVALID)?;
    let serde_json::Value::Object(map) = value else {
        return Err(INVALID);
    };
    map.into_iter()
        .map(|(k, v)| {
            let v = match v {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                _ => return Err(INVALID),
            };
            Ok((k, v))
        })
        .collect()
}

/// A positive bound.
fn positive_bound(v: usize) -> FfiResult<Option<usize>> {
    if v == 0 {
        Err(INVALID)
    } else {
        Ok(Some(v))
    }
}

/// A positive duration in milliseconds.
fn positive(ms: u64) -> FfiResult<Duration> {
    if ms == 0 {
        Err(INVALID)
    } else {
        Ok(millis(ms))
    }
}

/// A schedule: at least one delay, each in milliseconds (0 allowed: no delay).
unsafe fn schedule(delays: *const u64, n: usize) -> FfiResult<Vec<Duration>> {
    let delays = c_slice(delays, n)?;
    if delays.is_empty() {
        return Err(INVALID);
    }
    Ok(delays.iter().map(|&ms| millis(ms)).collect())
}

/// Runs `f` on the options behind `o`.
unsafe fn with_options(
    o: *mut phx_options_t,
    f: impl FnOnce(&mut phx_options_t) -> FfiResult,
) -> phx_status_t {
    guard(|| f(o.as_mut().ok_or(INVALID)?))
}

/// Creates an options object holding the defaults (heartbeat 30 s, reconnect 1, 2, 4, 8, 16,
/// 30 s, rejoin 1, 2, 5, 10 s, join/push timeout 10 s, leave timeout 5 s, connect timeout
/// 10 s, no params). The caller owns it and frees it with `phx_options_free`. Returns NULL only
/// if an internal error occurred. Any thread.
///
/// An options object is a plain value: its functions may be called from any thread, but not
/// concurrently on the same object (nothing in it is synchronised).
#[no_mangle]
pub extern "C" fn phx_options_new() -> *mut phx_options_t {
    guard_or(std::ptr::null_mut(), || {
        box_into_raw(phx_options_t::default())
    })
}

/// Frees an options object. NULL is a no-op. Any thread, once, with no other call on it.
#[no_mangle]
pub unsafe extern "C" fn phx_options_free(opts: *mut phx_options_t) {
    guard_or((), || drop(box_from_raw(opts)))
}

/// Sets the connect params, sent URL-encoded in the query string beside `vsn=2.0.0`,
/// replacing any set before. `json_object` (NUL-terminated UTF-8, borrowed for the call) is a
/// JSON object whose values are strings, numbers or booleans, e.g. `{"token":"t"}`.
/// Returns `PHX_ERR_INVALID_ARGUMENT` for NULL, invalid UTF-8, invalid JSON, a non-object or
/// another value type; the options are unchanged then. Any thread, one at a time per options object.
#[no_mangle]
pub unsafe extern "C" fn phx_options_set_params_json(
    o: *mut phx_options_t,
    json_object: *const c_char,
) -> phx_status_t {
    with_options(o, |o| {
        o.params = Some(parse_params(c_str(json_object)?)?);
        Ok(())
    })
}

/// Sets the heartbeat period in milliseconds (> 0; default 30000). A heartbeat still
/// unanswered when the next is due closes the connection, which then reconnects. Returns
/// `PHX_ERR_INVALID_ARGUMENT` for NULL or 0. Values above about 10 years are clamped. Any
/// thread.
#[no_mangle]
pub unsafe extern "C" fn phx_options_set_heartbeat_ms(
    o: *mut phx_options_t,
    ms: u64,
) -> phx_status_t {
    with_options(o, |o| {
        o.heartbeat = Some(positive(ms)?);
        Ok(())
    })
}

/// Sets the delays before reconnect attempts 1, 2, ... in milliseconds; the last one repeats.
/// `delays` (borrowed for the call) holds `n >= 1` values. Returns `PHX_ERR_INVALID_ARGUMENT`
/// for a NULL options object, `n == 0`, or `delays` NULL with `n > 0`. Any thread, one at a time per options object.
#[no_mangle]
pub unsafe extern "C" fn phx_options_set_reconnect_schedule_ms(
    o: *mut phx_options_t,
    delays: *const u64,
    n: usize,
) -> phx_status_t {
    with_options(o, |o| {
        o.reconnect = Some(schedule(delays, n)?);
        Ok(())
    })
}

/// Sets the delays before rejoin attempts of an errored channel while the socket stays
/// connected, in milliseconds; the last one repeats. Same rules as
/// `phx_options_set_reconnect_schedule_ms`. Any thread, one at a time per options object.
#[no_mangle]
pub unsafe extern "C" fn phx_options_set_rejoin_schedule_ms(
    o: *mut phx_options_t,
    delays: *const u64,
    n: usize,
) -> phx_status_t {
    with_options(o, |o| {
        o.rejoin = Some(schedule(delays, n)?);
        Ok(())
    })
}

/// Sets the default join and push timeout in milliseconds (> 0; default 10000), used when an
/// operation is given a timeout of 0. Returns `PHX_ERR_INVALID_ARGUMENT` for NULL or 0. Any
/// thread.
#[no_mangle]
pub unsafe extern "C" fn phx_options_set_timeout_ms(
    o: *mut phx_options_t,
    ms: u64,
) -> phx_status_t {
    with_options(o, |o| {
        o.timeout = Some(positive(ms)?);
        Ok(())
    })
}

/// Sets how long a leave waits for the server's reply by default, in milliseconds (> 0;
/// default 5000). Returns `PHX_ERR_INVALID_ARGUMENT` for NULL or 0. Any thread, one at a time per options object.
#[no_mangle]
pub unsafe extern "C" fn phx_options_set_leave_timeout_ms(
    o: *mut phx_options_t,
    ms: u64,
) -> phx_status_t {
    with_options(o, |o| {
        o.leave_timeout = Some(positive(ms)?);
        Ok(())
    })
}

/// Sets how long one connection attempt (TCP and WebSocket upgrade) may take, in
/// milliseconds (> 0; default 10000); also the default wait of `phx_socket_connect_wait`.
/// Returns `PHX_ERR_INVALID_ARGUMENT` for NULL or 0. Any thread, one at a time per options object.
#[no_mangle]
pub unsafe extern "C" fn phx_options_set_connect_timeout_ms(
    o: *mut phx_options_t,
    ms: u64,
) -> phx_status_t {
    with_options(o, |o| {
        o.connect_timeout = Some(positive(ms)?);
        Ok(())
    })
}

/// Adds trusted root certificates for `wss://` (a private CA or a self-signed server), on top
/// of the roots chosen by `phx_options_set_tls_roots` (default: the operating system's),
/// replacing any set before. `pem` (NUL-terminated, borrowed for
/// the call, copied) holds one or more PEM `CERTIFICATE` blocks. Returns
/// `PHX_ERR_INVALID_ARGUMENT` for NULL, invalid UTF-8 or PEM without a usable certificate; the
/// options are unchanged then. In a build without TLS the PEM is kept but unused. Any thread, one at a time per options object.
#[no_mangle]
pub unsafe extern "C" fn phx_options_set_ca_pem(
    o: *mut phx_options_t,
    pem: *const c_char,
) -> phx_status_t {
    with_options(o, |o| {
        let pem = c_str(pem)?.as_bytes();
        if pem.is_empty() || crate::engine::TcpConnector::with_extra_roots(pem).is_err() {
            return Err(INVALID);
        }
        o.ca_pem = Some(pem.to_vec());
        Ok(())
    })
}

/// Sets the auth token, sent as Phoenix 1.8 reads it (a socket mounted with
/// `auth_token: true` hands it to `connect/3` as `connect_info.auth_token`): the WebSocket
/// subprotocols `phoenix` and `base64url.bearer.phx.<token in standard base64, unpadded>`,
/// never in the URL, never in log lines. The server must select `phoenix`; an upgrade that
/// does not fails the attempt (`PHX_REASON_PROTOCOL`). Replaces any token set before.
/// `token` (NUL-terminated UTF-8) is borrowed for the call and copied. Returns
/// `PHX_ERR_INVALID_ARGUMENT` for NULL or invalid UTF-8; the options are unchanged then. Any
/// thread, one at a time per options object.
#[no_mangle]
pub unsafe extern "C" fn phx_options_set_auth_token(
    o: *mut phx_options_t,
    token: *const c_char,
) -> phx_status_t {
    with_options(o, |o| {
        o.auth_token = Some(c_str(token)?.to_owned());
        Ok(())
    })
}

/// Adds an HTTP header to the upgrade request (`Authorization`, `X-Api-Key`, ...), after those
/// added before. `name` and `value` (NUL-terminated UTF-8) are borrowed for the call and
/// copied. Returns `PHX_ERR_INVALID_ARGUMENT` for NULL, invalid UTF-8, a name or value that
/// is not valid HTTP (a line break, say), or a header of the WebSocket handshake itself
/// (`Host`, `Connection`, `Upgrade`, `Sec-WebSocket-*`); the options are unchanged then. Any
/// thread, one at a time per options object.
#[no_mangle]
pub unsafe extern "C" fn phx_options_add_header(
    o: *mut phx_options_t,
    name: *const c_char,
    value: *const c_char,
) -> phx_status_t {
    with_options(o, |o| {
        let header = (c_str(name)?.to_owned(), c_str(value)?.to_owned());
        crate::engine::check_headers(std::slice::from_ref(&header)).map_err(|_| INVALID)?;
        o.headers.push(header);
        Ok(())
    })
}

/// Stops reconnecting after `n` consecutive refused upgrades (any HTTP status instead of
/// 101): the socket becomes `PHX_SOCKET_DISCONNECTED` with reason `PHX_REASON_GAVE_UP` until
/// `phx_socket_connect` is called again. The count restarts whenever a connection opens. 0 (the
/// default): never stop. Returns `PHX_ERR_INVALID_ARGUMENT` for NULL. Any thread, one at a
/// time per options object.
#[no_mangle]
pub unsafe extern "C" fn phx_options_set_max_refusals(
    o: *mut phx_options_t,
    n: u32,
) -> phx_status_t {
    with_options(o, |o| {
        o.max_refusals = Some(n);
        Ok(())
    })
}

/// Sets the connect provider: `provide` is called before every connection attempt (the first
/// and every reconnect) for the params and token of that attempt, so an expired token is
/// replaced before reconnecting. Replaces any provider set before (the old one's
/// `free_user_data` runs once no socket uses it).
///
/// - `provide`: called on a library thread, in the socket's task, with `user_data` and a
///   request the application answers exactly once, now or later, from any thread, with
///   `phx_provide_complete` or `phx_provide_fail`. It must return quickly (hand a slow token
///   refresh to a thread of its own); other sockets keep running meanwhile.
/// - `timeout_ms`: how long an attempt waits for the answer (> 0); past it the attempt fails
///   with `PHX_REASON_PROVIDER` and the reconnect schedule goes on (a late answer is then
///   accepted and ignored).
/// - `free_user_data` (nullable): called exactly once with `user_data`, by whichever of
///   `phx_options_free` and the `phx_socket_free` of the sockets created from these options
///   comes last (or when the provider is replaced on options no socket was created from).
///
/// What the provider answers replaces the params (`phx_options_set_params_json`) and the auth
/// token (`phx_options_set_auth_token`) for that attempt. Ownership: on `PHX_OK` the options
/// own `user_data` (released through `free_user_data`); on an error nothing is consumed.
/// Returns `PHX_ERR_INVALID_ARGUMENT` for NULL `o` or `provide`, or `timeout_ms` 0. Any thread,
/// one at a time per options object.
#[no_mangle]
pub unsafe extern "C" fn phx_options_set_connect_provider(
    o: *mut phx_options_t,
    provide: super::provide::phx_provide_fn,
    user_data: *mut std::ffi::c_void,
    free_user_data: super::callbacks::phx_free_fn,
    timeout_ms: u64,
) -> phx_status_t {
    with_options(o, |o| {
        let timeout = positive(timeout_ms)?;
        let provider = super::provide::provider(provide, user_data, free_user_data)?;
        o.provider = Some(provider);
        o.provider_timeout = Some(timeout);
        Ok(())
    })
}

/// Sets the jitter of the reconnect and rejoin schedules: each delay `d` is drawn uniformly
/// from `[d × (1 − jitter), d]`, so clients dropped together do not return together. Each
/// value lies in 0.0 to 1.0; 0.0 (the default) keeps the schedule exact. Returns
/// `PHX_ERR_INVALID_ARGUMENT` for NULL or a value outside 0.0 to 1.0 (NaN included). Any
/// thread, one at a time per options object.
#[no_mangle]
pub unsafe extern "C" fn phx_options_set_jitter(
    o: *mut phx_options_t,
    reconnect: f64,
    rejoin: f64,
) -> phx_status_t {
    with_options(o, |o| {
        let ok = |j: f64| (0.0..=1.0).contains(&j);
        if !ok(reconnect) || !ok(rejoin) {
            return Err(INVALID);
        }
        o.jitter = Some((reconnect, rejoin));
        Ok(())
    })
}

/// Seeds the jitter's random numbers (for reproducible schedules in tests); by default they
/// are seeded from the clock. Returns `PHX_ERR_INVALID_ARGUMENT` for NULL. Any thread, one at
/// a time per options object.
#[no_mangle]
pub unsafe extern "C" fn phx_options_set_jitter_seed(
    o: *mut phx_options_t,
    seed: u64,
) -> phx_status_t {
    with_options(o, |o| {
        o.jitter_seed = Some(seed);
        Ok(())
    })
}

/// Sets the close codes that stop reconnection: a server close frame with one of them leaves
/// the socket `PHX_SOCKET_DISCONNECTED` with reason `PHX_REASON_CLOSE_FRAME` (its `code` the
/// close code) instead of reconnecting; `phx_socket_connect` starts again. `codes` (borrowed
/// for the call, copied) holds `n` codes; `n == 0` clears the list (the default: every close
/// is followed by reconnects). Returns `PHX_ERR_INVALID_ARGUMENT` for a NULL options object or
/// `codes` NULL with `n > 0`. Any thread, one at a time per options object.
#[no_mangle]
pub unsafe extern "C" fn phx_options_set_stop_close_codes(
    o: *mut phx_options_t,
    codes: *const u16,
    n: usize,
) -> phx_status_t {
    with_options(o, |o| {
        o.stop_codes = Some(c_slice(codes, n)?.to_vec());
        Ok(())
    })
}

/// Sets how long a heartbeat (or probe) may stay unanswered, with nothing else heard from the
/// server, before the connection is closed (`PHX_REASON_HEARTBEAT_TIMEOUT`) and reconnects;
/// in milliseconds (> 0). By default it is the heartbeat interval (the next heartbeat's due
/// time). Returns `PHX_ERR_INVALID_ARGUMENT` for NULL or 0. Any thread, one at a time per
/// options object.
#[no_mangle]
pub unsafe extern "C" fn phx_options_set_heartbeat_timeout_ms(
    o: *mut phx_options_t,
    ms: u64,
) -> phx_status_t {
    with_options(o, |o| {
        o.heartbeat_timeout = Some(positive(ms)?);
        Ok(())
    })
}

/// Sets the most detailed log level reported to `on_log` / `on_log_record` (a `PHX_LOG_*`
/// value; lines above it are not even formatted). Default `PHX_LOG_DEBUG`: every line.
/// Returns `PHX_ERR_INVALID_ARGUMENT` for NULL or an unknown level. Any thread, one at a
/// time per options object.
#[no_mangle]
pub unsafe extern "C" fn phx_options_set_log_level(
    o: *mut phx_options_t,
    level: u32,
) -> phx_status_t {
    use crate::engine::LogLevel;
    with_options(o, |o| {
        o.log_level = Some(match level {
            1 => LogLevel::Error,
            2 => LogLevel::Warn,
            3 => LogLevel::Info,
            4 => LogLevel::Debug,
            _ => return Err(INVALID),
        });
        Ok(())
    })
}

/// Sets the largest frame (and message) accepted from the server, in bytes (> 0; default
/// 16777216, 16 MiB). A larger one ends the connection: the client closes it with code 1009,
/// reports reason `PHX_REASON_FRAME_TOO_LARGE` (socket state event, `phx_socket_last_reason`)
/// and reconnects on the reconnect schedule. Returns `PHX_ERR_INVALID_ARGUMENT` for NULL or 0.
/// Any thread, one at a time per options object.
#[no_mangle]
pub unsafe extern "C" fn phx_options_set_max_frame_size(
    o: *mut phx_options_t,
    bytes: usize,
) -> phx_status_t {
    with_options(o, |o| {
        o.max_frame_size = positive_bound(bytes)?;
        Ok(())
    })
}

/// Sets the bound of the connection's write queue, in bytes (> 0; default 8388608, 8 MiB).
/// While the server does not read, frames wait there; a push whose frame would take the
/// queue past the bound is not sent and completes with `PHX_ERR_QUEUE_FULL`. Joins, leaves
/// and heartbeats are always queued (the queue may exceed the bound by those small frames
/// only). Returns `PHX_ERR_INVALID_ARGUMENT` for NULL or 0. Any thread, one at a time per
/// options object.
#[no_mangle]
pub unsafe extern "C" fn phx_options_set_max_write_queue_bytes(
    o: *mut phx_options_t,
    bytes: usize,
) -> phx_status_t {
    with_options(o, |o| {
        o.max_write_queue_bytes = positive_bound(bytes)?;
        Ok(())
    })
}

/// Sets how many pushes one channel buffers while it joins (> 0; default 1024). A push past
/// it completes at once with `PHX_ERR_BUFFER_FULL`. Returns `PHX_ERR_INVALID_ARGUMENT` for
/// NULL or 0. Any thread, one at a time per options object.
#[no_mangle]
pub unsafe extern "C" fn phx_options_set_max_buffered_pushes(
    o: *mut phx_options_t,
    pushes: usize,
) -> phx_status_t {
    with_options(o, |o| {
        o.max_buffered_pushes = positive_bound(pushes)?;
        Ok(())
    })
}

/// Sets how many channels of the socket may be joined or joining at once (> 0; default 100).
/// A channel counts from its join until it is closed (left, refused, closed by the server or
/// by `phx_socket_disconnect`). A join past the limit fails at once with
/// `PHX_ERR_TOO_MANY_CHANNELS` and leaves the channel unjoined (it may join later). Returns
/// `PHX_ERR_INVALID_ARGUMENT` for NULL or 0. Any thread, one at a time per options object.
#[no_mangle]
pub unsafe extern "C" fn phx_options_set_max_channels(
    o: *mut phx_options_t,
    channels: usize,
) -> phx_status_t {
    with_options(o, |o| {
        o.max_channels = positive_bound(channels)?;
        Ok(())
    })
}

/// Sets how many bytes the socket's event queue (`phx_socket_events_enable`) may hold
/// (> 0; default 33554432, 32 MiB): the events and everything they point to. Past it, as
/// past the queue's capacity in events, messages and state events are dropped and counted
/// (reported by a `PHX_EVENT_OVERFLOW` event); `PHX_EVENT_REPLY` events are always queued.
/// One event is always admitted into an empty queue, whatever its size. Returns
/// `PHX_ERR_INVALID_ARGUMENT` for NULL or 0. Any thread, one at a time per options object.
#[no_mangle]
pub unsafe extern "C" fn phx_options_set_max_event_queue_bytes(
    o: *mut phx_options_t,
    bytes: usize,
) -> phx_status_t {
    with_options(o, |o| {
        o.max_event_queue_bytes = positive_bound(bytes)?;
        Ok(())
    })
}

/// Chooses where the trusted roots for `wss://` come from: `roots` is a `phx_tls_roots_t`
/// value (default `PHX_TLS_ROOTS_SYSTEM`, the operating system's store;
/// `PHX_TLS_ROOTS_MOZILLA` for the list compiled in, for containers without a CA bundle;
/// `PHX_TLS_ROOTS_CONFIGURED_ONLY` for only the roots added with `phx_options_set_ca_pem` /
/// `phx_options_set_ca_file`). Returns `PHX_ERR_INVALID_ARGUMENT` for NULL or another value.
/// A system store without any certificate fails each connection attempt with a reason saying
/// so (reason `PHX_REASON_IO`). Any thread, one at a time per options object.
#[no_mangle]
pub unsafe extern "C" fn phx_options_set_tls_roots(
    o: *mut phx_options_t,
    roots: u32,
) -> phx_status_t {
    with_options(o, |o| {
        o.tls_roots = Some(match roots {
            0 => TlsRoots::System,
            1 => TlsRoots::Mozilla,
            2 => TlsRoots::ConfiguredOnly,
            _ => return Err(INVALID),
        });
        Ok(())
    })
}

/// Adds the trusted root certificates of a PEM file (a private CA), on top of the chosen
/// roots and of `phx_options_set_ca_pem`'s, replacing any file set before. `path`
/// (NUL-terminated, borrowed for the call, copied) is read by `phx_socket_new`, which fails
/// with `PHX_ERR_INVALID_ARGUMENT` if it cannot be read or holds no certificate. Returns
/// `PHX_ERR_INVALID_ARGUMENT` for NULL, an empty path or invalid UTF-8. Any thread, one at a
/// time per options object.
#[no_mangle]
pub unsafe extern "C" fn phx_options_set_ca_file(
    o: *mut phx_options_t,
    path: *const c_char,
) -> phx_status_t {
    with_options(o, |o| {
        let path = c_str(path)?;
        if path.is_empty() {
            return Err(INVALID);
        }
        o.ca_file = Some(PathBuf::from(path));
        Ok(())
    })
}

/// Sets the client certificate presented to servers that ask for one (mutual TLS), replacing
/// any set before. `cert_pem` (NUL-terminated, borrowed for the call, copied) is the chain,
/// leaf first, as PEM `CERTIFICATE` blocks; `key_pem` (likewise) its private key as PEM
/// (PKCS#8, PKCS#1 or SEC1). Returns `PHX_ERR_INVALID_ARGUMENT` for NULL, invalid UTF-8, no
/// certificate, or a key that is not a usable private key; the options are unchanged then.
/// A key that does not match the certificate makes `phx_socket_new` fail. In a build without
/// TLS both are kept but unused. Any thread, one at a time per options object.
#[no_mangle]
pub unsafe extern "C" fn phx_options_set_client_cert_pem(
    o: *mut phx_options_t,
    cert_pem: *const c_char,
    key_pem: *const c_char,
) -> phx_status_t {
    with_options(o, |o| {
        let (cert, key) = (c_str(cert_pem)?.as_bytes(), c_str(key_pem)?.as_bytes());
        let mut probe = Config::new(String::new());
        probe.client_cert_pem = cert.to_vec();
        probe.client_key_pem = key.to_vec();
        probe.tls_roots = TlsRoots::Mozilla;
        if cert.is_empty()
            || key.is_empty()
            || crate::engine::TcpConnector::from_config(&probe).is_err()
        {
            return Err(INVALID);
        }
        o.client_identity = Some((cert.to_vec(), key.to_vec()));
        Ok(())
    })
}

/// Development only: `on` != 0 accepts any server certificate on `wss://` (the handshake's
/// signatures are still checked, the server's identity is not), so a man in the middle can
/// read and change everything. Every connection opened this way logs a `PHX_LOG_WARN` line
/// through `on_log` saying verification is disabled. Default 0. Returns
/// `PHX_ERR_INVALID_ARGUMENT` for NULL. Any thread, one at a time per options object.
#[no_mangle]
pub unsafe extern "C" fn phx_options_set_tls_insecure_skip_verify(
    o: *mut phx_options_t,
    on: i32,
) -> phx_status_t {
    with_options(o, |o| {
        o.tls_insecure = Some(on != 0);
        Ok(())
    })
}
