//! Text frames: whatever `decode_text` accepts must survive encode + decode with the same fields,
//! and the reply decoder must agree with `Frame::reply`. Nothing may panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use phx::protocol::{decode_reply, decode_text, encode_text, is_valid_json, Payload};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = decode_reply(text);
    let Ok(frame) = decode_text(text) else {
        return;
    };
    let Payload::Json(payload) = frame.payload else {
        panic!("text frame decoded with a binary payload");
    };
    assert!(is_valid_json(payload), "payload is not one JSON value");
    let reply = decode_reply(payload);
    if let Some(from_frame) = frame.reply() {
        assert_eq!(from_frame, reply);
    }

    let mut out = String::new();
    encode_text(
        &mut out,
        frame.join_ref.as_deref(),
        frame.ref_.as_deref(),
        &frame.topic,
        &frame.event,
        payload,
    );
    let again = decode_text(&out).expect("a re-encoded frame decodes");
    assert_eq!(again, frame);
});
