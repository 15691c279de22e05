//! The engine against the test server. Most tests run client and server on one paused Tokio
//! clock (in-memory streams), so timer behaviour is exact and nothing waits for real seconds.

mod auth;
mod bounds;
mod calls;
mod channel;
mod faults;
mod hostile;
mod invariants;
mod live;
mod policies;
mod presence;
mod socket;
mod support;
#[cfg(feature = "tls")]
mod tls;
#[cfg(feature = "tls")]
mod tls_trust;
