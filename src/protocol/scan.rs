//! A single-pass scanner for text frames: the five-element envelope, the payload validated as
//! JSON in the same pass, and for a `phx_reply` the payload's `status` and `response` found on
//! the way. It accepts exactly what `serde_json` accepts for the same shapes (the serde-based
//! decoder in `text.rs` is kept as the reference and as the error reporter; the fuzz target
//! `decode_text` and `tests/codec_props.rs` hold the two to the same accept/reject).
//!
//! No allocation unless a field or the reply's status carries escapes (they are unescaped by
//! serde_json, so lone surrogates and the like are judged by the same code as before), or the
//! nesting is deeper than 64 levels.

use super::{Frame, Payload, Reply, PHX_REPLY};
use std::borrow::Cow;

/// A frame and, for a `phx_reply`, its reply decoded in the same pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded<'a> {
    pub frame: Frame<'a>,
    /// `None` unless the frame is a reply; `Some(None)` for a reply payload without a string
    /// `status` and a `response` (or not an object).
    pub reply: Option<Option<Reply<'a>>>,
}

/// Scans a text frame; `None` when it is not one (the caller asks the reference decoder why).
pub fn scan_text(text: &str) -> Option<Decoded<'_>> {
    let mut s = Scanner {
        b: text.as_bytes(),
        i: 0,
    };
    s.ws();
    s.eat(b'[')?;
    let join_ref = s.field(text)?.into_ref()?;
    s.comma()?;
    let ref_ = s.field(text)?.into_ref()?;
    s.comma()?;
    let topic = s.field(text)?.into_name()?;
    s.comma()?;
    let event = s.field(text)?.into_name()?;
    s.comma()?;
    s.ws();
    let start = s.i;
    let mut reply = (event == PHX_REPLY).then(ReplyScan::default);
    s.value(reply.as_mut())?;
    let payload = &text[start..s.i];
    // Extra elements are validated and ignored.
    loop {
        s.ws();
        match s.peek()? {
            b']' => break,
            b',' => {
                s.i += 1;
                s.ws();
                s.value(None)?;
            }
            _ => return None,
        }
    }
    s.i += 1;
    s.ws();
    if s.i != s.b.len() {
        return None;
    }
    let reply = match reply {
        Some(r) => Some(r.finish(text)?),
        None => None,
    };
    Some(Decoded {
        frame: Frame {
            join_ref,
            ref_,
            topic,
            event,
            payload: Payload::Json(payload),
            binary_reply_status: None,
        },
        reply,
    })
}

/// A reply payload `{"response": <any>, "status": "<status>"}` (keys in any order, later
/// duplicates win), or `None`.
pub fn scan_reply(json: &str) -> Option<Reply<'_>> {
    let mut s = Scanner {
        b: json.as_bytes(),
        i: 0,
    };
    let mut reply = ReplyScan::default();
    s.ws();
    s.value(Some(&mut reply))?;
    s.ws();
    if s.i != s.b.len() {
        return None;
    }
    reply.finish(json)?
}

/// True when `s` holds a byte JSON must escape (a quote, a backslash, a control byte).
#[inline]
pub(crate) fn needs_escape(s: &str) -> bool {
    let b = s.as_bytes();
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        if stops(u64::from_le_bytes(c.try_into().expect("8 bytes"))) != 0 {
            return true;
        }
    }
    chunks
        .remainder()
        .iter()
        .any(|&c| c == b'"' || c == b'\\' || c < 0x20)
}

/// True when `text` is exactly one JSON value (surrounding whitespace allowed), as serde_json
/// judges it.
pub fn is_json(text: &str) -> bool {
    let mut s = Scanner {
        b: text.as_bytes(),
        i: 0,
    };
    s.ws();
    if s.value(None).is_none() {
        return false;
    }
    s.ws();
    s.i == s.b.len()
}

/// An envelope element: null or a string (anything else fails the frame, which the reference
/// decoder then classifies).
enum Field<'a> {
    Null,
    Str(Cow<'a, str>),
}

impl<'a> Field<'a> {
    fn into_ref(self) -> Option<Option<Cow<'a, str>>> {
        Some(match self {
            Field::Null => None,
            Field::Str(s) => Some(s),
        })
    }

    fn into_name(self) -> Option<Cow<'a, str>> {
        match self {
            Field::Str(s) => Some(s),
            Field::Null => None,
        }
    }
}

/// The reply's top-level keys as the payload object is scanned.
#[derive(Default)]
struct ReplyScan {
    /// The payload is an object (so far the only shape a reply may have).
    object: bool,
    /// What the key being read names, and where its value starts.
    key: Key,
    value_start: usize,
    status: Option<(usize, usize)>,
    /// Some `status` was not a string: serde's reply decoder fails at the first such value.
    status_bad: bool,
    response: Option<(usize, usize)>,
}

#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum Key {
    #[default]
    Other,
    Status,
    Response,
}

impl ReplyScan {
    /// The reply, or `Some(None)` for a payload that is not one; `None` only when an escaped
    /// status turns out to be invalid (then the reference decoder rejects the frame too).
    fn finish(self, text: &str) -> Option<Option<Reply<'_>>> {
        let (Some((s0, s1)), Some((r0, r1))) = (self.status, self.response) else {
            return Some(None);
        };
        if !self.object || self.status_bad {
            return Some(None);
        }
        let Some(status) = unescape(&text[s0..s1]) else {
            return Some(None);
        };
        Some(Some(Reply {
            status,
            response: Payload::Json(&text[r0..r1]),
        }))
    }
}

/// The contents of a JSON string literal (`lit` includes the quotes), borrowed when there is
/// nothing to unescape.
fn unescape(lit: &str) -> Option<Cow<'_, str>> {
    let inner = &lit[1..lit.len() - 1];
    if !inner.as_bytes().contains(&b'\\') {
        return Some(Cow::Borrowed(inner));
    }
    unescape_owned(lit).map(Cow::Owned)
}

/// The contents of an escaped JSON string literal, judged by serde_json (lone surrogates and
/// all). Out of line: escapes are rare, and the hot functions stay small.
#[cold]
#[inline(never)]
fn unescape_owned(lit: &str) -> Option<String> {
    serde_json::from_str::<String>(lit).ok()
}

/// Containers open around the scanner, one bit each (1 = object); 64 levels inline.
struct Nesting {
    inline: u64,
    spill: Vec<u64>,
    depth: usize,
}

impl Nesting {
    #[inline]
    fn new() -> Self {
        Nesting {
            inline: 0,
            spill: Vec::new(),
            depth: 0,
        }
    }

    #[inline]
    fn word(&mut self, d: usize) -> &mut u64 {
        match d / 64 {
            0 => &mut self.inline,
            w => {
                if self.spill.len() < w {
                    self.spill.resize(w, 0);
                }
                &mut self.spill[w - 1]
            }
        }
    }

    #[inline]
    fn push(&mut self, object: bool) {
        let d = self.depth;
        let bit = 1u64 << (d % 64);
        let w = self.word(d);
        if object {
            *w |= bit;
        } else {
            *w &= !bit;
        }
        self.depth += 1;
    }

    #[inline]
    fn top_is_object(&mut self) -> bool {
        let d = self.depth - 1;
        *self.word(d) & (1u64 << (d % 64)) != 0
    }
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The high bit of every byte of the word that is a quote, a backslash or a control byte (and
/// possibly of bytes above the first such byte: only the lowest flag is exact).
#[inline]
fn stops(w: u64) -> u64 {
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGHS;
    zero(w ^ (ONES * b'"' as u64)) | zero(w ^ (ONES * b'\\' as u64)) | below_space
}

impl Scanner<'_> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    #[inline]
    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    #[inline]
    fn comma(&mut self) -> Option<()> {
        self.ws();
        self.eat(b',')
    }

    /// An envelope element: null or a string; anything else (even valid JSON) is `None`.
    #[inline]
    fn field<'t>(&mut self, text: &'t str) -> Option<Field<'t>> {
        self.ws();
        match self.peek()? {
            b'n' => {
                self.literal(b"null")?;
                Some(Field::Null)
            }
            b'"' => {
                let start = self.i;
                let escaped = self.string()?;
                let lit = &text[start..self.i];
                if escaped {
                    unescape_owned(lit).map(|s| Field::Str(Cow::Owned(s)))
                } else {
                    Some(Field::Str(Cow::Borrowed(&lit[1..lit.len() - 1])))
                }
            }
            _ => None,
        }
    }

    #[inline]
    fn literal<const N: usize>(&mut self, word: &[u8; N]) -> Option<()> {
        let end = self.i + N;
        (self.b.get(self.i..end)? == word).then(|| self.i = end)
    }

    /// A string literal starting at the opening quote; true if it holds escapes.
    #[inline]
    fn string(&mut self) -> Option<bool> {
        let b = self.b;
        let mut i = self.i + 1;
        let mut escaped = false;
        loop {
            // Jump to the next quote, backslash or control byte, eight bytes at a time (the
            // lowest flagged byte of the word is exact), the last few one by one.
            while let Some(chunk) = b.get(i..i + 8) {
                let m = stops(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
                if m != 0 {
                    i += (m.trailing_zeros() / 8) as usize;
                    break;
                }
                i += 8;
            }
            while let Some(&c) = b.get(i) {
                if c == b'"' || c == b'\\' || c < 0x20 {
                    break;
                }
                i += 1;
            }
            match *b.get(i)? {
                b'"' => {
                    self.i = i + 1;
                    return Some(escaped);
                }
                b'\\' => {
                    escaped = true;
                    match *b.get(i + 1)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                        b'u' => {
                            let hex = b.get(i + 2..i + 6)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return None;
                            }
                            i += 6;
                        }
                        _ => return None,
                    }
                }
                _ => return None, // a control character
            }
        }
    }

    #[inline]
    fn digits(&mut self) -> usize {
        let start = self.i;
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        self.i - start
    }

    #[inline]
    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek()? {
            b'0' => self.i += 1,
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        Some(())
    }

    /// One JSON value at any depth, without recursion. With `reply`, the keys of a top-level
    /// object are noted on the way.
    fn value(&mut self, mut reply: Option<&mut ReplyScan>) -> Option<()> {
        let mut nest = Nesting::new();
        loop {
            // A value starts here.
            self.ws();
            match self.peek()? {
                b'{' => {
                    self.i += 1;
                    self.ws();
                    if self.peek()? == b'}' {
                        self.i += 1;
                    } else {
                        if nest.depth == 0 {
                            if let Some(r) = reply.as_deref_mut() {
                                r.object = true;
                            }
                        }
                        nest.push(true);
                        self.key(nest.depth, reply.as_deref_mut())?;
                        continue;
                    }
                }
                b'[' => {
                    self.i += 1;
                    self.ws();
                    if self.peek()? == b']' {
                        self.i += 1;
                    } else {
                        nest.push(false);
                        continue;
                    }
                }
                b'"' => {
                    self.string()?;
                }
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                b'-' | b'0'..=b'9' => self.number()?,
                _ => return None,
            }
            // A value ended here: close containers until another value is due.
            loop {
                if nest.depth == 1 {
                    if let Some(r) = reply.as_deref_mut() {
                        let span = Some((r.value_start, self.i));
                        match r.key {
                            Key::Status if self.b[r.value_start] == b'"' => r.status = span,
                            Key::Status => r.status_bad = true,
                            Key::Response => r.response = span,
                            Key::Other => {}
                        }
                        r.key = Key::Other;
                    }
                }
                if nest.depth == 0 {
                    return Some(());
                }
                self.ws();
                let object = nest.top_is_object();
                match self.peek()? {
                    b',' => {
                        self.i += 1;
                        if object {
                            self.key(nest.depth, reply.as_deref_mut())?;
                        }
                        break;
                    }
                    b']' if !object => {}
                    b'}' if object => {}
                    _ => return None,
                }
                self.i += 1;
                nest.depth -= 1;
            }
        }
    }

    /// An object key and its colon; at the reply's top level, notes which key it is.
    #[inline]
    fn key(&mut self, depth: usize, reply: Option<&mut ReplyScan>) -> Option<()> {
        self.ws();
        if self.peek()? != b'"' {
            return None;
        }
        let start = self.i;
        let escaped = self.string()?;
        let end = self.i;
        self.ws();
        self.eat(b':')?;
        if depth == 1 {
            if let Some(r) = reply {
                let lit = &self.b[start..end];
                r.key = if escaped {
                    // Rare: compare the unescaped key (an invalid one fails as serde's would).
                    let lit = std::str::from_utf8(lit).ok()?;
                    let key = unescape_owned(lit).unwrap_or_else(|| {
                        r.object = false;
                        String::new()
                    });
                    key_kind(key.as_bytes())
                } else {
                    key_kind(&lit[1..lit.len() - 1])
                };
                self.ws();
                r.value_start = self.i;
            }
        }
        Some(())
    }
}

fn key_kind(key: &[u8]) -> Key {
    match key {
        b"status" => Key::Status,
        b"response" => Key::Response,
        _ => Key::Other,
    }
}
