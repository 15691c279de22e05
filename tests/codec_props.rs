//! Property tests for the wire codec: random envelopes round-trip through the text and binary
//! encoders and decoders, arbitrary input never makes a decoder panic, and over-long binary
//! fields are refused without writing anything.
//!
//! The case count defaults to 128 per property (a few seconds in debug); set `PROPTEST_CASES`
//! to run more.

use phx::protocol::{
    decode_binary_client, decode_binary_server, decode_reply, decode_text, encode_binary_broadcast,
    encode_binary_push, encode_binary_reply, encode_binary_server_push, encode_push, encode_text,
    encode_text_prepared, is_valid_json, push_len, text_len, write_json_string, write_push_middle,
    DecodeError, EncodeError, Frame, Payload, Reply, MAX_BINARY_FIELD, PHX_REPLY,
};
use proptest::prelude::*;
use serde_json::Value;

fn config() -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 128;
    }
    config
}

/// Characters that stress JSON escaping, mixed with arbitrary Unicode.
fn tricky_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => any::<char>(),
        2 => prop::sample::select(vec![
            '"', '\\', '/', '\n', '\r', '\t', '\u{0}', '\u{1}', '\u{8}', '\u{b}', '\u{c}',
            '\u{1f}', '\u{7f}', '\u{80}', '\u{2028}', '\u{2029}', '\u{feff}', '\u{fffd}', 'ü',
            '€', '😀', '[', ']', '{', '}', ',', ':', 'u', '0',
        ]),
        2 => prop::char::range(' ', '~'),
    ]
}

fn text_field() -> impl Strategy<Value = String> {
    prop::collection::vec(tricky_char(), 0..24).prop_map(String::from_iter)
}

/// JSON values with tricky strings; numbers are integers or exactly representable fractions,
/// so a `Value` survives serialise + parse unchanged.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (any::<i32>(), 0u32..8).prop_map(|(m, e)| Value::from(f64::from(m) / f64::from(1 << e))),
        text_field().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((text_field(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// A payload as JSON text: compact, pretty-printed, or with surrounding whitespace.
fn json_payload() -> impl Strategy<Value = (Value, String)> {
    (json_value(), 0u8..3).prop_map(|(v, style)| {
        let text = match style {
            0 => serde_json::to_string(&v).unwrap(),
            1 => serde_json::to_string_pretty(&v).unwrap(),
            _ => format!(" \n\t{}\r\n ", serde_json::to_string(&v).unwrap()),
        };
        (v, text)
    })
}

/// Truncates to at most `max` bytes on a char boundary.
fn truncate_bytes(mut s: String, max: usize) -> String {
    while s.len() > max {
        s.pop();
    }
    s
}

/// A binary header field: arbitrary Unicode up to 255 bytes, often exactly at the limit.
fn binary_field() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::collection::vec(tricky_char(), 0..40).prop_map(String::from_iter),
        1 => prop::collection::vec(tricky_char(), 60..130)
            .prop_map(|c| truncate_bytes(String::from_iter(c), MAX_BINARY_FIELD)),
        1 => (0..=MAX_BINARY_FIELD).prop_map(|n| "x".repeat(n)),
        1 => Just("é".repeat(127) + "x"),
    ]
}

fn opt_binary_field() -> impl Strategy<Value = Option<String>> {
    prop::option::of(binary_field())
}

fn binary_payload() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..300)
}

/// A field longer than 255 bytes.
fn long_field() -> impl Strategy<Value = String> {
    prop_oneof![
        (MAX_BINARY_FIELD + 1..600).prop_map(|n| "y".repeat(n)),
        prop::collection::vec(tricky_char(), 256..300).prop_map(String::from_iter),
        Just("é".repeat(128)),
    ]
}

/// `Some("")` and `None` are both the empty field on the binary wire and decode as `None`.
fn wire_opt(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

fn json_string(s: &str) -> String {
    let mut out = String::new();
    write_json_string(&mut out, s);
    out
}

/// Re-encodes a decoded server binary frame with the encoder for its kind.
fn reencode_server(bytes: &[u8], f: &Frame<'_>) -> Vec<u8> {
    let Payload::Binary(payload) = f.payload else {
        panic!("binary frame with a JSON payload");
    };
    let mut out = Vec::new();
    match bytes[0] {
        0 => {
            encode_binary_server_push(&mut out, f.join_ref.as_deref(), &f.topic, &f.event, payload)
        }
        1 => encode_binary_reply(
            &mut out,
            f.join_ref.as_deref(),
            f.ref_.as_deref(),
            &f.topic,
            f.binary_reply_status.expect("a binary reply has a status"),
            payload,
        ),
        2 => encode_binary_broadcast(&mut out, &f.topic, &f.event, payload),
        k => panic!("decoded unknown kind {k}"),
    }
    .expect("decoded fields fit in a binary frame");
    out
}

/// Frame-shaped garbage: JSON-ish tokens glued together, to get past the first bytes.
fn jsonish_text() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        prop::sample::select(vec![
            "[",
            "]",
            "{",
            "}",
            ",",
            ":",
            "null",
            "true",
            "1",
            "-0.5e3",
            "\"",
            "\\",
            "\\u",
            "\\ud800",
            "\"phx_reply\"",
            "\"status\"",
            "\"response\"",
            "\"ok\"",
            " ",
            "\n",
            "[null,\"1\",\"t\",\"e\",",
            "{\"response\":",
            "\"status\":",
        ])
        .prop_map(str::to_owned),
        text_field(),
    ];
    prop::collection::vec(token, 0..24).prop_map(|t| t.concat())
}

/// Bytes that start like a binary frame (kind 0-3, small sizes) followed by arbitrary bytes.
fn binaryish_bytes() -> impl Strategy<Value = Vec<u8>> {
    (
        0u8..4,
        prop::collection::vec(0u8..12, 0..6),
        prop::collection::vec(any::<u8>(), 0..40),
    )
        .prop_map(|(kind, sizes, rest)| {
            let mut v = vec![kind];
            v.extend(sizes);
            v.extend(rest);
            v
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn text_envelope_round_trips(
        join_ref in prop::option::of(text_field()),
        ref_ in prop::option::of(text_field()),
        topic in text_field(),
        event in text_field(),
        (value, payload) in json_payload(),
        prefix in "[a-z]{0,3}",
    ) {
        let mut out = prefix.clone();
        encode_text(&mut out, join_ref.as_deref(), ref_.as_deref(), &topic, &event, &payload);
        prop_assert!(out.starts_with(&prefix), "encode_text must append");
        let frame_text = &out[prefix.len()..];

        // Byte-for-byte what serde_json writes for the strings, payload verbatim.
        let opt = |s: &Option<String>| s.as_deref().map_or("null".to_owned(), json_string);
        let expected = format!(
            "[{},{},{},{},{}]",
            opt(&join_ref), opt(&ref_), json_string(&topic), json_string(&event), payload
        );
        prop_assert_eq!(frame_text, expected.as_str());
        prop_assert_eq!(json_string(&topic), serde_json::to_string(&topic).unwrap());

        let f = decode_text(frame_text).unwrap();
        prop_assert_eq!(f.join_ref.as_deref(), join_ref.as_deref());
        prop_assert_eq!(f.ref_.as_deref(), ref_.as_deref());
        prop_assert_eq!(&*f.topic, topic.as_str());
        prop_assert_eq!(&*f.event, event.as_str());
        prop_assert_eq!(f.payload, Payload::Json(payload.trim_matches([' ', '\n', '\r', '\t'])));
        prop_assert_eq!(f.binary_reply_status, None);
        let Payload::Json(raw) = f.payload else { unreachable!() };
        prop_assert_eq!(serde_json::from_str::<Value>(raw).unwrap(), value.clone());

        // serde_json agrees on the whole envelope.
        let is_reply = event == PHX_REPLY;
        let parsed: Value = serde_json::from_str(frame_text).unwrap();
        prop_assert_eq!(
            parsed,
            serde_json::json!([join_ref, ref_, topic, event, value])
        );
        prop_assert_eq!(f.reply().is_some(), is_reply);
    }

    #[test]
    fn prepared_push_frames_are_the_plain_encoders_bytes(
        join_ref in any::<u64>(),
        ref_ in any::<u64>(),
        topic in text_field(),
        event in text_field(),
        (_, payload) in json_payload(),
    ) {
        let (jr, r) = (join_ref.to_string(), ref_.to_string());
        let mut plain = String::new();
        encode_text(&mut plain, Some(&jr), Some(&r), &topic, &event, &payload);
        let mut topic_json = String::new();
        write_json_string(&mut topic_json, &topic);
        let mut prepared = String::new();
        encode_text_prepared(&mut prepared, &jr, &r, &topic_json, &event, &payload);
        prop_assert_eq!(&prepared, &plain);
        prop_assert_eq!(prepared.len(), prepared.capacity());
        // From a kept middle: the same bytes, and the length given beforehand.
        let mut middle = String::new();
        write_push_middle(&mut middle, &topic_json, &event);
        let mut from_middle = String::from("x");
        encode_push(&mut from_middle, &jr, &r, &middle, &payload);
        prop_assert_eq!(&from_middle[1..], &plain);
        prop_assert_eq!(push_len(&jr, &r, &middle, &payload), plain.len());
        prop_assert_eq!(
            text_len(Some(&jr), Some(&r), &topic, &event, &payload),
            plain.len()
        );
    }

    #[test]
    fn text_reply_round_trips(
        join_ref in prop::option::of(text_field()),
        ref_ in prop::option::of(text_field()),
        topic in text_field(),
        status in text_field(),
        (response, response_text) in json_payload(),
        extra in prop::option::of((text_field(), json_value())),
        status_first in any::<bool>(),
    ) {
        let status_json = json_string(&status);
        let mut members = vec![
            format!("\"response\":{response_text}"),
            format!("\"status\":{status_json}"),
        ];
        if status_first {
            members.reverse();
        }
        if let Some((key, value)) = &extra {
            if key != "status" && key != "response" {
                members.insert(1, format!("{}:{}", json_string(key), value));
            }
        }
        let payload = format!("{{{}}}", members.join(","));
        prop_assert!(is_valid_json(&payload));

        let mut text = String::new();
        encode_text(&mut text, join_ref.as_deref(), ref_.as_deref(), &topic, PHX_REPLY, &payload);
        let f = decode_text(&text).unwrap();
        let reply = f.reply().expect("phx_reply is a reply").unwrap();
        prop_assert_eq!(&*reply.status, status.as_str());
        let Payload::Json(raw) = reply.response else { panic!("JSON reply, binary response") };
        prop_assert_eq!(raw, response_text.trim_matches([' ', '\n', '\r', '\t']));
        prop_assert_eq!(serde_json::from_str::<Value>(raw).unwrap(), response);
        prop_assert_eq!(decode_reply(&payload), Ok(reply));
    }

    #[test]
    fn client_push_round_trips(
        join_ref in opt_binary_field(),
        ref_ in opt_binary_field(),
        topic in binary_field(),
        event in binary_field(),
        payload in binary_payload(),
        prefix in prop::collection::vec(any::<u8>(), 0..4),
    ) {
        let mut out = prefix.clone();
        encode_binary_push(&mut out, join_ref.as_deref(), ref_.as_deref(), &topic, &event, &payload)
            .unwrap();
        prop_assert_eq!(&out[..prefix.len()], &prefix[..]);
        let bytes = &out[prefix.len()..];
        let fields = [
            join_ref.as_deref().unwrap_or(""),
            ref_.as_deref().unwrap_or(""),
            &topic,
            &event,
        ];
        prop_assert_eq!(bytes[0], 0);
        for (i, field) in fields.iter().enumerate() {
            prop_assert_eq!(usize::from(bytes[1 + i]), field.len());
        }
        let header = 5 + fields.iter().map(|f| f.len()).sum::<usize>();
        prop_assert_eq!(bytes.len(), header + payload.len());

        let f = decode_binary_client(bytes).unwrap();
        prop_assert_eq!(f.join_ref.as_deref(), wire_opt(&join_ref));
        prop_assert_eq!(f.ref_.as_deref(), wire_opt(&ref_));
        prop_assert_eq!(&*f.topic, topic.as_str());
        prop_assert_eq!(&*f.event, event.as_str());
        prop_assert_eq!(f.payload, Payload::Binary(&payload));
        prop_assert_eq!(f.binary_reply_status, None);

        // Decoding then encoding again is the identity on the bytes.
        let mut again = Vec::new();
        encode_binary_push(
            &mut again, f.join_ref.as_deref(), f.ref_.as_deref(), &f.topic, &f.event, &payload,
        ).unwrap();
        prop_assert_eq!(&again[..], bytes);
    }

    #[test]
    fn server_push_round_trips(
        join_ref in opt_binary_field(),
        topic in binary_field(),
        event in binary_field(),
        payload in binary_payload(),
    ) {
        let mut out = Vec::new();
        encode_binary_server_push(&mut out, join_ref.as_deref(), &topic, &event, &payload).unwrap();
        prop_assert_eq!(out[0], 0);
        prop_assert_eq!(out.len(), 4 + join_ref.as_ref().map_or(0, String::len)
            + topic.len() + event.len() + payload.len());
        let f = decode_binary_server(&out).unwrap();
        prop_assert_eq!(f.join_ref.as_deref(), wire_opt(&join_ref));
        prop_assert_eq!(f.ref_.as_deref(), None);
        prop_assert_eq!(&*f.topic, topic.as_str());
        prop_assert_eq!(&*f.event, event.as_str());
        prop_assert_eq!(f.payload, Payload::Binary(&payload));
        prop_assert_eq!(f.binary_reply_status, None);
        prop_assert_eq!(reencode_server(&out, &f), out.clone());
    }

    #[test]
    fn reply_round_trips(
        join_ref in opt_binary_field(),
        ref_ in opt_binary_field(),
        topic in binary_field(),
        status in binary_field(),
        payload in binary_payload(),
    ) {
        let mut out = Vec::new();
        encode_binary_reply(&mut out, join_ref.as_deref(), ref_.as_deref(), &topic, &status, &payload)
            .unwrap();
        prop_assert_eq!(out[0], 1);
        let f = decode_binary_server(&out).unwrap();
        prop_assert_eq!(f.join_ref.as_deref(), wire_opt(&join_ref));
        prop_assert_eq!(f.ref_.as_deref(), wire_opt(&ref_));
        prop_assert_eq!(&*f.topic, topic.as_str());
        prop_assert_eq!(&*f.event, PHX_REPLY);
        prop_assert_eq!(f.binary_reply_status, Some(status.as_str()));
        prop_assert_eq!(f.payload, Payload::Binary(&payload));
        prop_assert_eq!(
            f.reply(),
            Some(Ok(Reply { status: status.as_str().into(), response: Payload::Binary(&payload) }))
        );
        prop_assert_eq!(reencode_server(&out, &f), out.clone());
        prop_assert_eq!(decode_binary_client(&out), Err(DecodeError::UnknownKind(1)));
    }

    #[test]
    fn broadcast_round_trips(
        topic in binary_field(),
        event in binary_field(),
        payload in binary_payload(),
    ) {
        let mut out = Vec::new();
        encode_binary_broadcast(&mut out, &topic, &event, &payload).unwrap();
        prop_assert_eq!(out[0], 2);
        prop_assert_eq!(out.len(), 3 + topic.len() + event.len() + payload.len());
        let f = decode_binary_server(&out).unwrap();
        prop_assert_eq!(f.join_ref.as_deref(), None);
        prop_assert_eq!(f.ref_.as_deref(), None);
        prop_assert_eq!(&*f.topic, topic.as_str());
        prop_assert_eq!(&*f.event, event.as_str());
        prop_assert_eq!(f.payload, Payload::Binary(&payload));
        prop_assert_eq!(f.binary_reply_status, None);
        prop_assert!(f.reply().is_none() || event == PHX_REPLY);
        prop_assert_eq!(reencode_server(&out, &f), out.clone());
        prop_assert_eq!(decode_binary_client(&out), Err(DecodeError::UnknownKind(2)));
    }

    #[test]
    fn truncated_binary_frames_are_rejected(
        topic in binary_field(),
        event in binary_field(),
        payload in binary_payload(),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut out = Vec::new();
        encode_binary_push(&mut out, Some("1"), Some("2"), &topic, &event, &payload).unwrap();
        let header = 5 + 2 + topic.len() + event.len();
        let len = cut.index(header);
        prop_assert_eq!(decode_binary_client(&out[..len]), Err(DecodeError::Truncated));
    }

    #[test]
    fn over_long_fields_are_refused_and_nothing_written(
        long in long_field(),
        position in 0usize..4,
        prefix in prop::collection::vec(any::<u8>(), 0..4),
        payload in binary_payload(),
    ) {
        prop_assert!(long.len() > MAX_BINARY_FIELD);
        let mut fields = ["1", "2", "topic", "event"];
        fields[position] = &long;
        let [a, b, c, d] = fields;
        let refused = Err(EncodeError::FieldTooLong);

        let mut out = prefix.clone();
        prop_assert_eq!(encode_binary_push(&mut out, Some(a), Some(b), c, d, &payload), refused);
        prop_assert_eq!(&out, &prefix);
        prop_assert_eq!(encode_binary_reply(&mut out, Some(a), Some(b), c, d, &payload), refused);
        prop_assert_eq!(&out, &prefix);
        let [a, b, c] = [fields[0], fields[2], fields[3]];
        let three_refused = if position == 1 { Ok(()) } else { refused };
        let mut out3 = prefix.clone();
        prop_assert_eq!(encode_binary_server_push(&mut out3, Some(a), b, c, &payload), three_refused);
        if position != 1 {
            prop_assert_eq!(&out3, &prefix);
        }
        let [a, b] = [fields[2], fields[3]];
        let two_refused = if position >= 2 { refused } else { Ok(()) };
        let mut out2 = prefix.clone();
        prop_assert_eq!(encode_binary_broadcast(&mut out2, a, b, &payload), two_refused);
        if position >= 2 {
            prop_assert_eq!(&out2, &prefix);
        }
    }

    #[test]
    fn decoding_arbitrary_text_never_panics(text in any::<String>()) {
        check_text_decoders(&text)?;
    }

    #[test]
    fn decoding_jsonish_text_never_panics(text in jsonish_text()) {
        check_text_decoders(&text)?;
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        check_binary_decoders(&bytes)?;
    }

    #[test]
    fn decoding_binaryish_bytes_never_panics(bytes in binaryish_bytes()) {
        check_binary_decoders(&bytes)?;
    }
}

/// Runs the text decoders; whatever decodes must survive encode + decode unchanged.
fn check_text_decoders(text: &str) -> Result<(), TestCaseError> {
    let _ = decode_reply(text);
    if let Ok(f) = decode_text(text) {
        let Payload::Json(payload) = f.payload else {
            return Err(TestCaseError::fail("text frame with a binary payload"));
        };
        prop_assert!(is_valid_json(payload));
        let _ = decode_reply(payload);
        let mut out = String::new();
        encode_text(
            &mut out,
            f.join_ref.as_deref(),
            f.ref_.as_deref(),
            &f.topic,
            &f.event,
            payload,
        );
        prop_assert_eq!(decode_text(&out), Ok(f.clone()));
        if let Some(reply) = f.reply() {
            prop_assert_eq!(reply, decode_reply(payload));
        }
    }
    Ok(())
}

/// Runs both binary decoders; whatever decodes must re-encode to the same bytes.
fn check_binary_decoders(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(f) = decode_binary_client(bytes) {
        let Payload::Binary(payload) = f.payload else {
            return Err(TestCaseError::fail("binary frame with a JSON payload"));
        };
        let mut out = Vec::new();
        encode_binary_push(
            &mut out,
            f.join_ref.as_deref(),
            f.ref_.as_deref(),
            &f.topic,
            &f.event,
            payload,
        )
        .unwrap();
        prop_assert_eq!(&out[..], bytes);
    }
    match decode_binary_server(bytes) {
        Ok(f) => prop_assert_eq!(&reencode_server(bytes, &f)[..], bytes),
        Err(DecodeError::UnknownKind(k)) => prop_assert!(k > 2 && bytes.first() == Some(&k)),
        Err(_) => {}
    }
    Ok(())
}

/// Deeply nested input must not overflow the stack: a nested payload is valid JSON and is
/// borrowed as is, nesting in an envelope slot or a reply is an error or a value, never a crash.
#[test]
fn deep_nesting_does_not_overflow_the_stack() {
    const DEPTH: usize = 100_000;
    let nested = format!("{}{}", "[".repeat(DEPTH), "]".repeat(DEPTH));

    let frame = format!(r#"[null,"1","t","e",{nested}]"#);
    let f = decode_text(&frame).expect("a deeply nested payload is still one JSON value");
    assert_eq!(f.payload, Payload::Json(&nested));

    let in_ref = format!(r#"[{nested},"1","t","e",{{}}]"#);
    assert_eq!(decode_text(&in_ref), Err(DecodeError::BadRef));
    let in_topic = format!(r#"[null,"1",{nested},"e",{{}}]"#);
    assert_eq!(decode_text(&in_topic), Err(DecodeError::BadName));
    let objects = format!("{}null{}", r#"{"a":"#.repeat(DEPTH), "}".repeat(DEPTH));
    assert_eq!(decode_text(&objects), Err(DecodeError::NotAnArray));

    let reply = format!(r#"{{"status":"ok","response":{nested}}}"#);
    let r = decode_reply(&reply).expect("a deeply nested response is still one JSON value");
    assert_eq!(r.response, Payload::Json(&nested));
    let unclosed = "[".repeat(DEPTH);
    assert!(matches!(decode_text(&unclosed), Err(DecodeError::Json(_))));
    assert_eq!(decode_reply(&unclosed), Err(DecodeError::BadReply));
}

/// Fixed cases the generators reach only by luck.
#[test]
fn edge_cases() {
    // JSON whitespace around the envelope and its elements is fine; other whitespace is not JSON.
    let f = decode_text(" \t\r\n[ null , \"1\" , \"t\" , \"e\" , 1 ] \n").unwrap();
    assert_eq!(
        (f.ref_.as_deref(), f.payload),
        (Some("1"), Payload::Json("1"))
    );
    assert!(matches!(
        decode_text("\u{3000}[null,\"1\",\"t\",\"e\",1]"),
        Err(DecodeError::Json(_))
    ));
    assert!(matches!(decode_text(""), Err(DecodeError::Json(_))));
    assert!(matches!(
        decode_text("[null,\"1\",\"t\",\"e\",1,]"),
        Err(DecodeError::Json(_))
    ));
    assert_eq!(decode_text("\"str\""), Err(DecodeError::NotAnArray));
    assert_eq!(decode_text("[]"), Err(DecodeError::TooShort));
    assert_eq!(
        decode_text("[true,null,\"t\",\"e\",1]"),
        Err(DecodeError::BadRef)
    );
    assert_eq!(
        decode_text("[null,null,\"t\",null,1]"),
        Err(DecodeError::BadName)
    );

    // Escaped envelope strings decode to their values.
    let f = decode_text(r#"["\u0031","a\"b","\u00fc\n","\ud83d\ude00",{}]"#).unwrap();
    assert_eq!(f.join_ref.as_deref(), Some("1"));
    assert_eq!(f.ref_.as_deref(), Some("a\"b"));
    assert_eq!(f.topic, "ü\n");
    assert_eq!(f.event, "😀");

    // Replies: status must be a string and both keys present; extra keys are ignored.
    assert_eq!(
        decode_reply(r#"{"status":"ok"}"#),
        Err(DecodeError::BadReply)
    );
    assert_eq!(
        decode_reply(r#"{"response":1}"#),
        Err(DecodeError::BadReply)
    );
    assert_eq!(
        decode_reply(r#"{"status":1,"response":1}"#),
        Err(DecodeError::BadReply)
    );
    assert_eq!(decode_reply("[]"), Err(DecodeError::BadReply));
    assert_eq!(
        decode_reply(r#" {"x":[1],"response" : {"a":1} , "status":"ok"} "#),
        Ok(Reply {
            status: "ok".into(),
            response: Payload::Json(r#"{"a":1}"#),
        })
    );

    // Binary: a frame that is exactly its header is a frame with an empty payload.
    assert_eq!(
        decode_binary_server(&[2, 0, 0]).map(|f| f.payload),
        Ok(Payload::Binary(&[]))
    );
    assert_eq!(decode_binary_server(&[2, 0]), Err(DecodeError::Truncated));
    assert_eq!(decode_binary_server(&[]), Err(DecodeError::Truncated));
    assert_eq!(
        decode_binary_client(&[0, 0, 0, 1, 0, 0xc3]),
        Err(DecodeError::InvalidUtf8)
    );
}
