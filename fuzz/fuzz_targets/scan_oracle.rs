//! The one-pass text scanner against serde_json as the oracle: `decode_text`, `decode_reply` and
//! `is_valid_json` must accept exactly what their serde_json-based references accept, with the
//! same fields, and a reply decoded with its frame must equal the one decoded on its own.

#![no_main]

use libfuzzer_sys::fuzz_target;
use phx::protocol::{
    decode_reply, decode_reply_reference, decode_text, decode_text_once, decode_text_reference,
    is_valid_json, is_valid_json_reference, Payload, PHX_REPLY,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let reference = decode_text_reference(text);
    assert_eq!(decode_text(text), reference, "frame {text:?}");
    if let Ok(once) = decode_text_once(text) {
        let frame = reference.expect("accepted by both");
        let Payload::Json(payload) = frame.payload else {
            panic!("a text frame with a binary payload");
        };
        let want = (frame.event == PHX_REPLY).then(|| decode_reply_reference(payload).ok());
        assert_eq!(once.reply, want, "reply of {text:?}");
    }
    assert_eq!(decode_reply(text), decode_reply_reference(text), "reply {text:?}");
    assert_eq!(is_valid_json(text), is_valid_json_reference(text), "json {text:?}");
});
