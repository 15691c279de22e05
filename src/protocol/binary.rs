//! V2 binary frames. Layouts (from Phoenix's V2 serializer, confirmed on the wire):
//!
//! | kind | direction | sizes after the kind byte | fields |
//! |---|---|---|---|
//! | 0 push | client → server | join_ref, ref, topic, event | then payload |
//! | 0 push | server → client | join_ref, topic, event (no ref) | then payload |
//! | 1 reply | server → client | join_ref, ref, topic, status | then payload |
//! | 2 broadcast | server → client | topic, event | then payload |
//!
//! A missing join_ref or ref is the empty string on the wire.

use super::{DecodeError, EncodeError, Frame, Payload, PHX_REPLY};
use std::borrow::Cow;

/// The longest join_ref, ref, topic, event or status a binary frame can carry.
pub const MAX_BINARY_FIELD: usize = 255;

const KIND_PUSH: u8 = 0;
const KIND_REPLY: u8 = 1;
const KIND_BROADCAST: u8 = 2;

/// Decodes a binary frame sent by a server: push (kind 0), reply (kind 1) or broadcast (kind 2).
pub fn decode_binary_server(bytes: &[u8]) -> Result<Frame<'_>, DecodeError> {
    let kind = *bytes.first().ok_or(DecodeError::Truncated)?;
    match kind {
        KIND_PUSH => {
            let ([join_ref, topic, event], payload) = split_fields::<3>(bytes)?;
            Ok(frame(opt(join_ref), None, topic, event, payload, None))
        }
        KIND_REPLY => {
            let ([join_ref, ref_, topic, status], payload) = split_fields::<4>(bytes)?;
            Ok(frame(
                opt(join_ref),
                opt(ref_),
                topic,
                PHX_REPLY,
                payload,
                Some(status),
            ))
        }
        KIND_BROADCAST => {
            let ([topic, event], payload) = split_fields::<2>(bytes)?;
            Ok(frame(None, None, topic, event, payload, None))
        }
        other => Err(DecodeError::UnknownKind(other)),
    }
}

/// Decodes a binary frame sent by a client: only a push (kind 0 with four sizes) is valid.
pub fn decode_binary_client(bytes: &[u8]) -> Result<Frame<'_>, DecodeError> {
    let kind = *bytes.first().ok_or(DecodeError::Truncated)?;
    if kind != KIND_PUSH {
        return Err(DecodeError::UnknownKind(kind));
    }
    let ([join_ref, ref_, topic, event], payload) = split_fields::<4>(bytes)?;
    Ok(frame(opt(join_ref), opt(ref_), topic, event, payload, None))
}

/// Appends a client push (kind 0). Fails, writing nothing, if a field exceeds 255 bytes.
pub fn encode_binary_push(
    out: &mut Vec<u8>,
    join_ref: Option<&str>,
    ref_: Option<&str>,
    topic: &str,
    event: &str,
    payload: &[u8],
) -> Result<(), EncodeError> {
    let fields = [join_ref.unwrap_or(""), ref_.unwrap_or(""), topic, event];
    write_frame(out, KIND_PUSH, &fields, payload)
}

/// Appends a server push (kind 0, no ref).
pub fn encode_binary_server_push(
    out: &mut Vec<u8>,
    join_ref: Option<&str>,
    topic: &str,
    event: &str,
    payload: &[u8],
) -> Result<(), EncodeError> {
    write_frame(
        out,
        KIND_PUSH,
        &[join_ref.unwrap_or(""), topic, event],
        payload,
    )
}

/// Appends a server reply (kind 1).
pub fn encode_binary_reply(
    out: &mut Vec<u8>,
    join_ref: Option<&str>,
    ref_: Option<&str>,
    topic: &str,
    status: &str,
    payload: &[u8],
) -> Result<(), EncodeError> {
    let fields = [join_ref.unwrap_or(""), ref_.unwrap_or(""), topic, status];
    write_frame(out, KIND_REPLY, &fields, payload)
}

/// Appends a server broadcast (kind 2).
pub fn encode_binary_broadcast(
    out: &mut Vec<u8>,
    topic: &str,
    event: &str,
    payload: &[u8],
) -> Result<(), EncodeError> {
    write_frame(out, KIND_BROADCAST, &[topic, event], payload)
}

fn write_frame(
    out: &mut Vec<u8>,
    kind: u8,
    fields: &[&str],
    payload: &[u8],
) -> Result<(), EncodeError> {
    if fields.iter().any(|f| f.len() > MAX_BINARY_FIELD) {
        return Err(EncodeError::FieldTooLong);
    }
    let total: usize = fields.iter().map(|f| f.len()).sum();
    out.reserve(1 + fields.len() + total + payload.len());
    out.push(kind);
    out.extend(fields.iter().map(|f| f.len() as u8));
    for f in fields {
        out.extend_from_slice(f.as_bytes());
    }
    out.extend_from_slice(payload);
    Ok(())
}

/// Splits `kind, N sizes, N fields, payload`, checking lengths and UTF-8.
fn split_fields<const N: usize>(bytes: &[u8]) -> Result<([&str; N], &[u8]), DecodeError> {
    let sizes = bytes.get(1..1 + N).ok_or(DecodeError::Truncated)?;
    let mut pos = 1 + N;
    let mut fields = [""; N];
    for (field, &size) in fields.iter_mut().zip(sizes) {
        let end = pos + size as usize;
        let raw = bytes.get(pos..end).ok_or(DecodeError::Truncated)?;
        *field = std::str::from_utf8(raw).map_err(|_| DecodeError::InvalidUtf8)?;
        pos = end;
    }
    Ok((fields, &bytes[pos..]))
}

fn opt(s: &str) -> Option<Cow<'_, str>> {
    (!s.is_empty()).then_some(Cow::Borrowed(s))
}

fn frame<'a>(
    join_ref: Option<Cow<'a, str>>,
    ref_: Option<Cow<'a, str>>,
    topic: &'a str,
    event: &'a str,
    payload: &'a [u8],
    binary_reply_status: Option<&'a str>,
) -> Frame<'a> {
    Frame {
        join_ref,
        ref_,
        topic: Cow::Borrowed(topic),
        event: Cow::Borrowed(event),
        payload: Payload::Binary(payload),
        binary_reply_status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_truncated_and_unknown_frames() {
        assert_eq!(decode_binary_client(&[]), Err(DecodeError::Truncated));
        assert_eq!(
            decode_binary_client(&[0, 1, 1, 10]),
            Err(DecodeError::Truncated)
        );
        assert_eq!(
            decode_binary_client(&[0, 1, 1, 50, 4, b'1', b'2']),
            Err(DecodeError::Truncated)
        );
        assert_eq!(
            decode_binary_client(&[5, 1, 1, 1, 1, b'1', b'2', b'a', b'b']),
            Err(DecodeError::UnknownKind(5))
        );
        assert_eq!(decode_binary_server(&[9]), Err(DecodeError::UnknownKind(9)));
        assert_eq!(
            decode_binary_server(&[2, 1, 1, 0xff, b'e']),
            Err(DecodeError::InvalidUtf8)
        );
    }

    #[test]
    fn field_over_255_bytes_is_refused_and_nothing_written() {
        let long = "x".repeat(256);
        let mut out = Vec::new();
        let r = encode_binary_push(&mut out, None, Some("1"), &long, "e", b"");
        assert_eq!(r, Err(EncodeError::FieldTooLong));
        assert!(out.is_empty());
        let ok = "x".repeat(255);
        encode_binary_push(&mut out, None, Some("1"), &ok, "e", b"").unwrap();
        assert_eq!(decode_binary_client(&out).unwrap().topic, ok.as_str());
    }
}
