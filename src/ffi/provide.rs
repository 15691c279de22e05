//! The connect provider: a C callback asked for each connection attempt's params and token,
//! answered through a request handle (`phx_provide_t`) from any thread.

use super::callbacks::{phx_free_fn, Registration};
use super::options::parse_params;
use super::status::phx_status_t;
use super::util::{box_from_raw, box_into_raw, c_str, contain, guard, guard_or, opt_c_str};
use crate::engine::{ConnectProvider, Credentials, ProvideReply, Provider};
use std::ffi::{c_char, c_void};
use std::sync::{Arc, Weak};

/// One connection attempt's request for credentials (opaque). Answered exactly once with
/// `phx_provide_complete` or `phx_provide_fail`, which free it.
pub struct phx_provide_t {
    reply: ProvideReply,
}

/// The connect provider's callback: asked for the params and token of the next connection
/// attempt. Called on a library thread with the `user_data` given to
/// `phx_options_set_connect_provider` and a request owned by the application from then on,
/// to be answered exactly once, now or later, from any thread.
pub type phx_provide_fn =
    Option<unsafe extern "C" fn(user_data: *mut c_void, request: *mut phx_provide_t)>;

type ProviderRegistration = Registration<unsafe extern "C" fn(*mut c_void, *mut phx_provide_t)>;

/// The C provider as the engine holds it: weakly, so that `free_user_data` runs when the
/// options and the sockets made from them are freed (they hold [`ProviderKeep`]), not when the
/// engine's last copy of the configuration happens to go.
struct CProvider(Weak<ProviderRegistration>);

/// A strong reference to a C provider's registration, held by options and sockets.
#[derive(Clone)]
pub(crate) struct ProviderKeep(#[allow(dead_code)] Arc<ProviderRegistration>);

impl ConnectProvider for CProvider {
    fn provide(&self, reply: ProvideReply) {
        let Some(registration) = self.0.upgrade() else {
            return reply.fail("the connect provider was released");
        };
        let request = box_into_raw(phx_provide_t { reply });
        // SAFETY: the caller's callback; it owns `request` from here on.
        contain(|| unsafe { (registration.callbacks)(registration.user_data.0, request) });
    }
}

pub(crate) fn provider(
    provide: phx_provide_fn,
    user_data: *mut c_void,
    free: phx_free_fn,
) -> Result<(Provider, ProviderKeep), phx_status_t> {
    let provide = provide.ok_or(phx_status_t::PHX_ERR_INVALID_ARGUMENT)?;
    let registration = Arc::new(Registration::new(provide, user_data, free));
    let engine = Provider(Arc::new(CProvider(Arc::downgrade(&registration))));
    Ok((engine, ProviderKeep(registration)))
}

/// Answers `request` with the attempt's params and token, and frees it.
///
/// - `params_json` (nullable): a JSON object whose values are strings, numbers or booleans,
///   as for `phx_options_set_params_json`; NULL: no params.
/// - `auth_token` (nullable): the token, as for `phx_options_set_auth_token`; NULL: none.
///
/// Both are borrowed for the call and copied; together they replace the options' params and
/// token for this attempt. An answer that comes after the attempt stopped waiting (timeout,
/// `phx_socket_disconnect`, socket freed) is accepted and ignored. Returns `PHX_OK` (the
/// request is freed), or `PHX_ERR_INVALID_ARGUMENT` for a NULL request, invalid UTF-8 or
/// invalid params; the request is then NOT consumed: answer it again. Any thread, once per
/// request.
#[no_mangle]
pub unsafe extern "C" fn phx_provide_complete(
    request: *mut phx_provide_t,
    params_json: *const c_char,
    auth_token: *const c_char,
) -> phx_status_t {
    guard(|| {
        if request.is_null() {
            return Err(phx_status_t::PHX_ERR_INVALID_ARGUMENT);
        }
        let params = match opt_c_str(params_json)? {
            Some(json) => parse_params(json)?,
            None => Vec::new(),
        };
        let auth_token = opt_c_str(auth_token)?.map(str::to_owned);
        let request = box_from_raw(request).ok_or(phx_status_t::PHX_ERR_INVALID_ARGUMENT)?;
        request.reply.send(Credentials { params, auth_token });
        Ok(())
    })
}

/// Answers `request` with a failure and frees it: the attempt fails with `PHX_REASON_PROVIDER`
/// and `reason` as its text (nullable; NUL-terminated UTF-8, borrowed for the call; it is
/// logged, so it must not hold a secret), and the reconnect schedule goes on. NULL `request`
/// is a no-op. Any thread, once per request.
#[no_mangle]
pub unsafe extern "C" fn phx_provide_fail(request: *mut phx_provide_t, reason: *const c_char) {
    guard_or((), || {
        let Some(request) = box_from_raw(request) else {
            return;
        };
        let reason = c_str(reason).unwrap_or("the provider failed");
        request.reply.fail(reason);
    })
}
