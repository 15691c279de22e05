//! V2 JSON text frames.

use super::scan::{is_json, needs_escape, scan_reply, scan_text, Decoded};
use super::{DecodeError, Frame, Payload, Reply};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// Decodes a text frame `[join_ref, ref, topic, event, payload, ...]`. Extra elements after the
/// payload are ignored, as Phoenix does. The payload is borrowed as raw JSON text.
pub fn decode_text(text: &str) -> Result<Frame<'_>, DecodeError> {
    decode_text_once(text).map(|d| d.frame)
}

/// [`decode_text`] and, for a `phx_reply`, its status and response, in one pass over the text.
#[inline]
pub fn decode_text_once(text: &str) -> Result<Decoded<'_>, DecodeError> {
    match scan_text(text) {
        Some(decoded) => Ok(decoded),
        None => rejected(text),
    }
}

/// A frame the scanner rejected: the reference decoder says why (and would be right if the two
/// disagreed).
#[cold]
#[inline(never)]
fn rejected(text: &str) -> Result<Decoded<'_>, DecodeError> {
    decode_text_reference(text).map(|frame| {
        let reply = frame.reply().map(Result::ok);
        Decoded { frame, reply }
    })
}

/// The serde_json-based decoder [`decode_text`] must agree with: it explains rejections, and
/// tests and the fuzz target hold the scanner to its accept/reject.
#[doc(hidden)]
pub fn decode_text_reference(text: &str) -> Result<Frame<'_>, DecodeError> {
    if !text.trim_start().starts_with('[') {
        // Still report "not JSON" for garbage, so the caller can tell the two apart.
        return Err(match serde_json::from_str::<IgnoredAny>(text) {
            Ok(_) => DecodeError::NotAnArray,
            Err(e) => DecodeError::Json(e.to_string()),
        });
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let fields = de
        .deserialize_seq(EnvelopeVisitor)
        .and_then(|f| de.end().map(|_| f))
        .map_err(|e| DecodeError::Json(e.to_string()))??;
    let (join_ref, ref_, topic, event, payload) = fields;
    Ok(Frame {
        join_ref: join_ref.into_ref()?,
        ref_: ref_.into_ref()?,
        topic: topic.into_name()?,
        event: event.into_name()?,
        payload: Payload::Json(payload.get()),
        binary_reply_status: None,
    })
}

/// Decodes a reply payload `{"response": <any>, "status": "<status>"}` (keys in any order).
pub fn decode_reply(json: &str) -> Result<Reply<'_>, DecodeError> {
    scan_reply(json).ok_or(DecodeError::BadReply)
}

/// The serde_json-based reply decoder [`decode_reply`] must agree with.
#[doc(hidden)]
pub fn decode_reply_reference(json: &str) -> Result<Reply<'_>, DecodeError> {
    let mut de = serde_json::Deserializer::from_str(json);
    let parsed = de
        .deserialize_map(ReplyVisitor)
        .and_then(|r| de.end().map(|_| r))
        .map_err(|_| DecodeError::BadReply)?;
    match parsed {
        (Some(status), Some(response)) => Ok(Reply {
            status,
            response: Payload::Json(response.get()),
        }),
        _ => Err(DecodeError::BadReply),
    }
}

/// Where the text encoders append: a `String`, or a byte buffer that only ever receives
/// `&str` pieces (so stays UTF-8).
pub trait TextOut {
    fn push_str(&mut self, s: &str);
    /// Room for `additional` more bytes (a frame's exact length is known before it is written).
    fn reserve(&mut self, additional: usize);
}

impl TextOut for String {
    fn push_str(&mut self, s: &str) {
        String::push_str(self, s)
    }
    fn reserve(&mut self, additional: usize) {
        self.reserve_exact(additional)
    }
}

/// The length of the frame [`encode_text`] writes.
pub fn text_len(
    join_ref: Option<&str>,
    ref_: Option<&str>,
    topic: &str,
    event: &str,
    payload: &str,
) -> usize {
    let opt_len = |s: Option<&str>| s.map_or(4, json_string_len);
    opt_len(join_ref)
        + opt_len(ref_)
        + json_string_len(topic)
        + json_string_len(event)
        + payload.len()
        + 6
}

/// Appends a text frame. `payload` must already be valid JSON (callers validate user input once
/// with [`is_valid_json`]); it is copied verbatim.
pub fn encode_text<O: TextOut + ?Sized>(
    out: &mut O,
    join_ref: Option<&str>,
    ref_: Option<&str>,
    topic: &str,
    event: &str,
    payload: &str,
) {
    // Exactly the frame's length: a frame whose buffer is full becomes a WebSocket message
    // without another allocation.
    out.reserve(text_len(join_ref, ref_, topic, event, payload));
    out.push_str("[");
    write_opt_string(out, join_ref);
    out.push_str(",");
    write_opt_string(out, ref_);
    out.push_str(",");
    write_json_string(out, topic);
    out.push_str(",");
    write_json_string(out, event);
    out.push_str(",");
    out.push_str(payload);
    out.push_str("]");
}

/// [`encode_text`] for the push path: `join_ref` and `ref_` are decimal numbers (nothing to
/// escape) and `topic_json` is the topic as [`write_json_string`] wrote it, once per channel.
/// Writes the same bytes as [`encode_text`], into exactly the frame's length.
pub fn encode_text_prepared<O: TextOut + ?Sized>(
    out: &mut O,
    join_ref: &str,
    ref_: &str,
    topic_json: &str,
    event: &str,
    payload: &str,
) {
    let len = join_ref.len()
        + ref_.len()
        + topic_json.len()
        + json_string_len(event)
        + payload.len()
        + 10;
    out.reserve(len);
    encode_push_head(out, join_ref, ref_);
    out.push_str("\",");
    out.push_str(topic_json);
    out.push_str(",");
    write_json_string(out, event);
    out.push_str(",");
    out.push_str(payload);
    out.push_str("]");
}

/// `["<join_ref>","<ref>`: the start of a push frame, up to its ref's closing quote.
fn encode_push_head<O: TextOut + ?Sized>(out: &mut O, join_ref: &str, ref_: &str) {
    debug_assert!(join_ref
        .bytes()
        .chain(ref_.bytes())
        .all(|b| b.is_ascii_digit()));
    out.push_str("[\"");
    out.push_str(join_ref);
    out.push_str("\",\"");
    out.push_str(ref_);
}

/// Appends the part of a push frame that stays the same while a channel pushes one event
/// name: from the ref's closing quote to the payload, `",<topic>,<event>,` (`topic_json` as
/// [`write_json_string`] wrote it). A channel keeps it between pushes.
pub fn write_push_middle(out: &mut String, topic_json: &str, event: &str) {
    out.reserve_exact(topic_json.len() + json_string_len(event) + 3);
    out.push_str("\",");
    out.push_str(topic_json);
    out.push(',');
    write_json_string(out, event);
    out.push(',');
}

/// The length of the push frame [`encode_push`] writes.
pub fn push_len(join_ref: &str, ref_: &str, middle: &str, payload: &str) -> usize {
    join_ref.len() + ref_.len() + middle.len() + payload.len() + 6
}

/// A push frame from a middle [`write_push_middle`] wrote: the same bytes as
/// [`encode_text_prepared`] with the same topic and event, in five copies. Reserves nothing
/// (see [`push_len`]).
pub fn encode_push<O: TextOut + ?Sized>(
    out: &mut O,
    join_ref: &str,
    ref_: &str,
    middle: &str,
    payload: &str,
) {
    encode_push_head(out, join_ref, ref_);
    out.push_str(middle);
    out.push_str(payload);
    out.push_str("]");
}

/// True when `text` is exactly one JSON value (surrounding whitespace allowed).
pub fn is_valid_json(text: &str) -> bool {
    is_json(text)
}

/// The serde_json judgement [`is_valid_json`] must agree with.
#[doc(hidden)]
pub fn is_valid_json_reference(text: &str) -> bool {
    serde_json::from_str::<IgnoredAny>(text).is_ok()
}

fn write_opt_string<O: TextOut + ?Sized>(out: &mut O, s: Option<&str>) {
    match s {
        Some(s) => write_json_string(out, s),
        None => out.push_str("null"),
    }
}

/// The length of `s` as written by [`write_json_string`].
fn json_string_len(s: &str) -> usize {
    if !needs_escape(s) {
        return s.len() + 2;
    }
    2 + s
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0..=0x1f => 6,
            _ => 1,
        })
        .sum::<usize>()
}

/// Appends `s` as a JSON string literal, escaping as JSON.stringify and serde_json do.
pub fn write_json_string<O: TextOut + ?Sized>(out: &mut O, s: &str) {
    if !needs_escape(s) {
        out.push_str("\"");
        out.push_str(s);
        out.push_str("\"");
        return;
    }
    out.push_str("\"");
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            let hex = [HEX[(b >> 4) as usize], HEX[(b & 0xf) as usize]];
            out.push_str(std::str::from_utf8(&hex).expect("hex digits are ASCII"));
        } else {
            out.push_str(esc);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push_str("\"");
}

/// One envelope element before it is checked: null, a string, or something else.
enum Field<'a> {
    Null,
    Str(Cow<'a, str>),
    Other,
}

impl<'a> Field<'a> {
    fn into_ref(self) -> Result<Option<Cow<'a, str>>, DecodeError> {
        match self {
            Field::Null => Ok(None),
            Field::Str(s) => Ok(Some(s)),
            Field::Other => Err(DecodeError::BadRef),
        }
    }

    fn into_name(self) -> Result<Cow<'a, str>, DecodeError> {
        match self {
            Field::Str(s) => Ok(s),
            _ => Err(DecodeError::BadName),
        }
    }
}

impl<'de> de::Deserialize<'de> for Field<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FieldVisitor)
    }
}

struct FieldVisitor;

impl<'de> Visitor<'de> for FieldVisitor {
    type Value = Field<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string or null")
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Field::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Field::Null)
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Field::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Field::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Field::Str(Cow::Owned(v)))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Field::Other)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Field::Other)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Field::Other)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Field::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Field::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Field::Other)
    }
}

type Envelope<'a> = (Field<'a>, Field<'a>, Field<'a>, Field<'a>, &'a RawValue);

struct EnvelopeVisitor;

impl<'de> Visitor<'de> for EnvelopeVisitor {
    type Value = Result<Envelope<'de>, DecodeError>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("[join_ref, ref, topic, event, payload]")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let Some(join_ref) = seq.next_element::<Field>()? else {
            return Ok(Err(DecodeError::TooShort));
        };
        let Some(ref_) = seq.next_element::<Field>()? else {
            return Ok(Err(DecodeError::TooShort));
        };
        let Some(topic) = seq.next_element::<Field>()? else {
            return Ok(Err(DecodeError::TooShort));
        };
        let Some(event) = seq.next_element::<Field>()? else {
            return Ok(Err(DecodeError::TooShort));
        };
        let Some(payload) = seq.next_element::<&RawValue>()? else {
            return Ok(Err(DecodeError::TooShort));
        };
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Ok((join_ref, ref_, topic, event, payload)))
    }
}

struct ReplyVisitor;

impl<'de> Visitor<'de> for ReplyVisitor {
    type Value = (Option<Cow<'de, str>>, Option<&'de RawValue>);

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(r#"{"response": ..., "status": "..."}"#)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (mut status, mut response) = (None, None);
        while let Some(key) = map.next_key::<Field>()? {
            match key {
                Field::Str(k) if k == "status" => match map.next_value::<Field>()? {
                    Field::Str(s) => status = Some(s),
                    _ => return Err(de::Error::custom("status is not a string")),
                },
                Field::Str(k) if k == "response" => response = Some(map.next_value()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok((status, response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_reply_with_escapes_and_extra_elements() {
        let f = decode_text(
            r#"["1","2","room:\"x\"","phx_reply",{"response":{"a":1},"status":"ok"},"extra"]"#,
        )
        .unwrap();
        assert_eq!(f.join_ref.as_deref(), Some("1"));
        assert_eq!(f.topic, "room:\"x\"");
        let r = f.reply().unwrap().unwrap();
        assert_eq!(r.status, "ok");
        assert_eq!(r.response, Payload::Json(r#"{"a":1}"#));
    }

    #[test]
    fn classifies_malformed_frames() {
        assert!(matches!(
            decode_text("this is not json"),
            Err(DecodeError::Json(_))
        ));
        assert_eq!(
            decode_text(r#"{"topic":"x"}"#),
            Err(DecodeError::NotAnArray)
        );
        assert_eq!(
            decode_text(r#"[null,"1","phoenix","heartbeat"]"#),
            Err(DecodeError::TooShort)
        );
        assert_eq!(
            decode_text(r#"[null,"1",42,"heartbeat",{}]"#),
            Err(DecodeError::BadName)
        );
        assert_eq!(
            decode_text(r#"[1,"1","t","e",{}]"#),
            Err(DecodeError::BadRef)
        );
        assert!(matches!(
            decode_text(r#"[null,"1","t","e",{}] x"#),
            Err(DecodeError::Json(_))
        ));
    }

    #[test]
    fn frames_are_encoded_into_exactly_their_length() {
        for (jr, r, topic) in [
            (Some("1"), Some("22"), "room:\"q\"\n\u{1}"),
            (None, None, "t"),
        ] {
            let mut out = String::new();
            encode_text(&mut out, jr, r, topic, "ev\\", r#"{"a":[1]}"#);
            assert_eq!(out.len(), out.capacity(), "{out}");
            assert!(decode_text(&out).is_ok());
        }
    }

    #[test]
    fn escapes_like_json_stringify() {
        let mut s = String::new();
        write_json_string(&mut s, "a\"b\\c\n\u{1}ü");
        assert_eq!(s, r#""a\"b\\c\n\u0001ü""#);
        assert_eq!(
            serde_json::from_str::<String>(&s).unwrap(),
            "a\"b\\c\n\u{1}ü"
        );
    }
}
