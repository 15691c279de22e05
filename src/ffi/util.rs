//! The helpers every entry point uses: the panic boundary, pointer and UTF-8 checks, the
//! Box/Arc conversions of handles, and the per-thread scratch buffer used to NUL-terminate
//! borrowed strings for callbacks without allocating.

use super::status::phx_status_t;
use std::cell::Cell;
use std::ffi::{c_char, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The result type of an entry point's body: `Err` carries the status to return.
pub(crate) type FfiResult<T = ()> = Result<T, phx_status_t>;

/// Runs an entry point's body behind the panic boundary: `Ok` becomes `PHX_OK`, `Err(s)` is
/// returned as is, a panic becomes `PHX_ERR_INTERNAL`.
pub(crate) fn guard(body: impl FnOnce() -> FfiResult) -> phx_status_t {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => phx_status_t::PHX_OK,
        Ok(Err(status)) => status,
        Err(_) => phx_status_t::PHX_ERR_INTERNAL,
    }
}

/// Runs a body that has no status to return (a free function, a string getter): a panic
/// yields `default`.
pub(crate) fn guard_or<T>(default: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(default)
}

/// Runs library-internal code that calls out to C (callbacks, `free_user_data`) where nothing
/// can be returned: a panic of our own code is contained.
pub(crate) fn contain(body: impl FnOnce()) {
    let _ = catch_unwind(AssertUnwindSafe(body));
}

const INVALID: phx_status_t = phx_status_t::PHX_ERR_INVALID_ARGUMENT;

/// Borrows a NUL-terminated UTF-8 string from C. NULL and invalid UTF-8 are invalid arguments.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that stays valid for `'a`.
pub(crate) unsafe fn c_str<'a>(p: *const c_char) -> FfiResult<&'a str> {
    if p.is_null() {
        return Err(INVALID);
    }
    CStr::from_ptr(p).to_str().map_err(|_| INVALID)
}

/// Like [`c_str`], but NULL gives `None`.
///
/// # Safety
/// As [`c_str`].
pub(crate) unsafe fn opt_c_str<'a>(p: *const c_char) -> FfiResult<Option<&'a str>> {
    if p.is_null() {
        Ok(None)
    } else {
        c_str(p).map(Some)
    }
}

/// Borrows a slice from C: `(NULL, 0)` is empty, `(NULL, n > 0)` is an invalid argument.
///
/// # Safety
/// `p` is NULL or points to `len` readable, initialised `T`s valid for `'a`.
pub(crate) unsafe fn c_slice<'a, T>(p: *const T, len: usize) -> FfiResult<&'a [T]> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() || len > isize::MAX as usize / std::mem::size_of::<T>().max(1) {
        return Err(INVALID);
    }
    Ok(std::slice::from_raw_parts(p, len))
}

/// Checks an out-parameter before any work is done, so a failure consumes nothing.
pub(crate) fn out_ptr<T>(p: *mut T) -> FfiResult<*mut T> {
    if p.is_null() {
        Err(INVALID)
    } else {
        Ok(p)
    }
}

/// Writes an out-parameter (already checked by [`out_ptr`]) without reading or dropping what
/// the caller's memory held.
///
/// # Safety
/// `p` is non-NULL, aligned and writable.
pub(crate) unsafe fn write_out<T>(p: *mut T, value: T) {
    p.write(value);
}

// ---- handles ----------------------------------------------------------------------------------

/// Hands a uniquely owned object to C.
pub(crate) fn box_into_raw<T>(value: T) -> *mut T {
    Box::into_raw(Box::new(value))
}

/// Borrows a boxed (or Arc-backed) handle; NULL is an invalid argument.
///
/// # Safety
/// `p` is NULL or a live handle of type `T` that outlives `'a`.
pub(crate) unsafe fn handle_ref<'a, T>(p: *const T) -> FfiResult<&'a T> {
    p.as_ref().ok_or(INVALID)
}

/// Takes back a boxed handle; NULL gives `None`.
///
/// # Safety
/// `p` is NULL or came from [`box_into_raw`] and is not used again.
pub(crate) unsafe fn box_from_raw<T>(p: *mut T) -> Option<Box<T>> {
    (!p.is_null()).then(|| Box::from_raw(p))
}

/// Hands one reference of a shared object to C.
pub(crate) fn arc_into_raw<T>(value: Arc<T>) -> *mut T {
    Arc::into_raw(value).cast_mut()
}

/// Takes back one reference of a shared handle; NULL gives `None`.
///
/// # Safety
/// `p` is NULL or came from [`arc_into_raw`], and this reference is not used again.
pub(crate) unsafe fn arc_from_raw<T>(p: *const T) -> Option<Arc<T>> {
    (!p.is_null()).then(|| Arc::from_raw(p))
}

// ---- small shared pieces ------------------------------------------------------------------------

/// Locks a mutex whose data stays consistent even if a holder panicked.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The longest duration accepted anywhere (about 10 years): larger values, `UINT64_MAX`
/// included, are clamped so deadlines never overflow.
pub(crate) const MAX_MS: u64 = 10 * 365 * 24 * 3600 * 1000;

/// A duration in milliseconds from C, clamped to [`MAX_MS`].
pub(crate) fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms.min(MAX_MS))
}

/// An operation timeout from C: 0 means "the socket's default".
pub(crate) fn op_timeout(ms: u64) -> Option<Duration> {
    (ms != 0).then(|| millis(ms))
}

/// A pointer from C that may cross threads with the registration that carries it. libphx
/// never dereferences it; the caller promised it may be used from library threads.
#[derive(Clone, Copy)]
pub(crate) struct UserData(pub(crate) *mut std::ffi::c_void);

// SAFETY: the pointer is only handed back to the caller's own callbacks, which the C API
// documents as running on library threads.
unsafe impl Send for UserData {}
unsafe impl Sync for UserData {}

// ---- scratch buffer -------------------------------------------------------------------------

thread_local! {
    /// Reused to NUL-terminate strings handed to callbacks; taken out while in use, so a
    /// nested use (a callback inside a callback) simply starts a fresh one.
    static SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Beyond this capacity the scratch buffer is not kept for reuse.
const SCRATCH_KEEP: usize = 64 << 10;

/// Runs `f` with this thread's scratch buffer, empty. Pointers into it stay valid until `f`
/// returns, as long as `f` stops appending before taking them.
pub(crate) fn with_scratch<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    // `try_with`: during thread teardown the buffer may be gone; a fresh one does then.
    let mut buf = SCRATCH.try_with(Cell::take).unwrap_or_default();
    buf.clear();
    let result = f(&mut buf);
    if buf.capacity() <= SCRATCH_KEEP {
        let _ = SCRATCH.try_with(|c| {
            let nested = c.replace(buf);
            drop(nested);
        });
    }
    result
}

/// Where a string was put into a [`StrPack`].
#[derive(Clone, Copy)]
pub(crate) struct Packed {
    offset: usize,
    len: usize,
}

/// Packs NUL-terminated copies of strings (and payload bytes, without a NUL) into one buffer;
/// pointers are taken once packing is finished, so the buffer never moves under them.
pub(crate) struct StrPack<'b> {
    buf: &'b mut Vec<u8>,
}

impl<'b> StrPack<'b> {
    pub(crate) fn new(buf: &'b mut Vec<u8>) -> Self {
        StrPack { buf }
    }

    /// Appends `bytes` and a NUL.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Packed {
        let offset = self.buf.len();
        self.buf.extend_from_slice(bytes);
        self.buf.push(0);
        Packed {
            offset,
            len: bytes.len(),
        }
    }

    /// Appends `bytes` without a NUL (payloads are never NUL-terminated).
    pub(crate) fn push_bytes(&mut self, bytes: &[u8]) -> Packed {
        let offset = self.buf.len();
        self.buf.extend_from_slice(bytes);
        Packed {
            offset,
            len: bytes.len(),
        }
    }

    /// Finishes packing: the buffer, to take pointers from.
    pub(crate) fn finish(self) -> &'b [u8] {
        self.buf
    }
}

impl Packed {
    /// The packed string's pointer (NUL-terminated) in `buf`.
    pub(crate) fn ptr(self, buf: &[u8]) -> *const c_char {
        buf[self.offset..].as_ptr().cast()
    }

    pub(crate) fn bytes_ptr(self, buf: &[u8]) -> *const u8 {
        buf[self.offset..].as_ptr()
    }

    pub(crate) fn len(self) -> usize {
        self.len
    }
}
