//! Presence lists from C: a snapshot of a channel's list (`phx_presence_t`), its entries and
//! its JSON.

#![allow(non_camel_case_types)]

use super::handles::{live, phx_channel_t};
use super::status::phx_status_t;
use super::util::{box_from_raw, box_into_raw, guard, guard_or, handle_ref, out_ptr, write_out};
use crate::engine::PresenceList;
use std::ffi::c_char;
use std::sync::Arc;

/// A snapshot of a channel's presence list (opaque, immutable). Created by
/// `phx_channel_presence`, freed by `phx_presence_free`; it does not change when later
/// presence frames arrive and stays valid after its channel and socket are freed.
pub struct phx_presence_t {
    list: Arc<PresenceList>,
    /// The keys, NUL-terminated.
    keys: Vec<Box<[u8]>>,
}

/// Writes to `*out` a snapshot of the presence list of channel `c`: `presence_state` and
/// `presence_diff` folded as Phoenix.Presence sends them (diffs that arrive before the state
/// of the current join are applied after it; a rejoin starts over from its next state; metas
/// matched by `phx_ref`). Keys are in the order they first appeared; it is empty before the
/// first `presence_state`. A frame's changes are in the list before any callback runs for
/// that frame.
///
/// On `PHX_OK` the caller owns `*out` and frees it with `phx_presence_free`. Returns
/// `PHX_ERR_INVALID_ARGUMENT` for NULL arguments, `PHX_ERR_CLOSED` once the socket is freed;
/// `*out` is written only on `PHX_OK`. Any thread, concurrently, callbacks included.
#[no_mangle]
pub unsafe extern "C" fn phx_channel_presence(
    c: *const phx_channel_t,
    out: *mut *mut phx_presence_t,
) -> phx_status_t {
    guard(|| {
        let c = live(c)?;
        let out = out_ptr(out)?;
        let list = c.channel.presence();
        let keys = list
            .iter()
            .map(|(k, _)| {
                let mut b = Vec::with_capacity(k.len() + 1);
                b.extend_from_slice(k.as_bytes());
                b.push(0);
                b.into_boxed_slice()
            })
            .collect();
        write_out(out, box_into_raw(phx_presence_t { list, keys }));
        Ok(())
    })
}

/// Writes to `*out_len` how many keys snapshot `p` holds. Returns `PHX_ERR_INVALID_ARGUMENT`
/// for NULL arguments; `*out_len` is written only on `PHX_OK`. Any thread, concurrently.
#[no_mangle]
pub unsafe extern "C" fn phx_presence_len(
    p: *const phx_presence_t,
    out_len: *mut usize,
) -> phx_status_t {
    guard(|| {
        let p = handle_ref(p)?;
        let out = out_ptr(out_len)?;
        write_out(out, p.list.len());
        Ok(())
    })
}

/// Entry `index` (0 ≤ index < length) of snapshot `p`: its key (`*out_key`, NUL-terminated
/// UTF-8, `*out_key_len` bytes without the NUL) and its metas (`*out_metas`, a JSON array,
/// `*out_metas_len` bytes, NOT NUL-terminated). Both are owned by the snapshot and valid
/// until `phx_presence_free(p)`.
///
/// Returns `PHX_ERR_INVALID_ARGUMENT` for NULL arguments or an index out of range; the
/// out-parameters are written only on `PHX_OK`. Any thread, concurrently.
#[no_mangle]
pub unsafe extern "C" fn phx_presence_entry(
    p: *const phx_presence_t,
    index: usize,
    out_key: *mut *const c_char,
    out_key_len: *mut usize,
    out_metas: *mut *const u8,
    out_metas_len: *mut usize,
) -> phx_status_t {
    guard(|| {
        let p = handle_ref(p)?;
        let (ok, okl) = (out_ptr(out_key)?, out_ptr(out_key_len)?);
        let (om, oml) = (out_ptr(out_metas)?, out_ptr(out_metas_len)?);
        let (key, metas) = p
            .list
            .get(index)
            .ok_or(phx_status_t::PHX_ERR_INVALID_ARGUMENT)?;
        write_out(ok, p.keys[index].as_ptr().cast::<c_char>());
        write_out(okl, key.len());
        write_out(om, metas.as_ptr());
        write_out(oml, metas.len());
        Ok(())
    })
}

/// The whole snapshot `p` as JSON, `{"<key>": {"metas": [...]}, ...}` in list order (the
/// shape of `presence_state`): `*out_json`, `*out_len` bytes, NOT NUL-terminated, owned by
/// the snapshot and valid until `phx_presence_free(p)`. Returns `PHX_ERR_INVALID_ARGUMENT`
/// for NULL arguments; the out-parameters are written only on `PHX_OK`. Any thread,
/// concurrently.
#[no_mangle]
pub unsafe extern "C" fn phx_presence_json(
    p: *const phx_presence_t,
    out_json: *mut *const u8,
    out_len: *mut usize,
) -> phx_status_t {
    guard(|| {
        let p = handle_ref(p)?;
        let (oj, ol) = (out_ptr(out_json)?, out_ptr(out_len)?);
        let json = p.list.to_json();
        write_out(oj, json.as_ptr());
        write_out(ol, json.len());
        Ok(())
    })
}

/// Frees a snapshot from `phx_channel_presence` and everything it points to. NULL is a no-op.
/// Any thread, once per snapshot.
#[no_mangle]
pub unsafe extern "C" fn phx_presence_free(p: *mut phx_presence_t) {
    guard_or((), || drop(box_from_raw(p)))
}
