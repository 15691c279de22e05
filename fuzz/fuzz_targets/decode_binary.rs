//! Binary frames: whatever either decoder accepts must re-encode to exactly the input bytes.
//! Nothing may panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use phx::protocol::{
    decode_binary_client, decode_binary_server, encode_binary_broadcast, encode_binary_push,
    encode_binary_reply, encode_binary_server_push, DecodeError, Payload, PHX_REPLY,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = decode_binary_client(data) {
        let Payload::Binary(payload) = frame.payload else {
            panic!("binary frame decoded with a JSON payload");
        };
        assert_eq!(frame.binary_reply_status, None);
        let mut out = Vec::new();
        encode_binary_push(
            &mut out,
            frame.join_ref.as_deref(),
            frame.ref_.as_deref(),
            &frame.topic,
            &frame.event,
            payload,
        )
        .expect("decoded fields fit");
        assert_eq!(out, data);
    }

    match decode_binary_server(data) {
        Ok(frame) => {
            let Payload::Binary(payload) = frame.payload else {
                panic!("binary frame decoded with a JSON payload");
            };
            let mut out = Vec::new();
            let join_ref = frame.join_ref.as_deref();
            match data[0] {
                0 => {
                    assert_eq!(frame.ref_, None);
                    encode_binary_server_push(
                        &mut out,
                        join_ref,
                        &frame.topic,
                        &frame.event,
                        payload,
                    )
                }
                1 => {
                    assert_eq!(frame.event, PHX_REPLY);
                    let status = frame.binary_reply_status.expect("a reply has a status");
                    let reply = frame.reply().expect("a binary reply is a reply");
                    assert_eq!(reply.map(|r| r.response), Ok(Payload::Binary(payload)));
                    let ref_ = frame.ref_.as_deref();
                    encode_binary_reply(&mut out, join_ref, ref_, &frame.topic, status, payload)
                }
                2 => {
                    assert_eq!((join_ref, frame.ref_.as_deref()), (None, None));
                    encode_binary_broadcast(&mut out, &frame.topic, &frame.event, payload)
                }
                kind => panic!("decoded unknown kind {kind}"),
            }
            .expect("decoded fields fit");
            assert_eq!(out, data);
        }
        Err(DecodeError::UnknownKind(kind)) => assert!(kind > 2 && data.first() == Some(&kind)),
        Err(_) => {}
    }
});
