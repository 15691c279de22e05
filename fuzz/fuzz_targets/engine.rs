//! The engine against a scripted server on a paused clock: see `phx_fuzz::engine`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    phx_fuzz::engine::run(phx_fuzz::engine::Step::decode(data));
});
