//! libphx: a Phoenix Channels V2 client with a C ABI.
//!
//! - [`protocol`]: the wire codec (no I/O).
//! - [`engine`]: the socket and channel engine (one Tokio task per socket).
//! - `ffi`: the C surface declared in `include/phx.h`.

pub mod engine;
pub mod ffi;
pub mod protocol;
