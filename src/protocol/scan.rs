//! A single-pass scanner for text frames: the five-element envelope, the payload validated as
//! JSON in the same pass, and for a `phx_reply` the payload's `status` and `response` found on
//! the way. It accepts exactly what `serde_json` accepts for the same shapes (the serde-based
//! decoder in `text.rs` is kept as the reference and as the error reporter; the oracle tests in
//! `tests/scan_oracle.rs` and the fuzz target `scan_oracle` hold the two to the same
//! accept/reject).
//!
//! The scanner works on byte positions and never recurses: strings are skipped eight bytes at a
//! time, containers nest on a bitset (64 levels in a register, a `Vec` beyond), and a reply's
//! top-level object is read by its own loop so the generic one carries no reply bookkeeping.
//! Nothing is allocated unless a field or the reply's status carries escapes (they are
//! unescaped by serde_json, so lone surrogates and the like are judged by the same code as the
//! reference), or the nesting is deeper than 64 levels.
//!
//! Why a scanner rather than a library: measured with `phx-bench-codec` under callgrind
//! (instructions per frame), serde_json with a typed tuple and `&RawValue` cost 1,214 for a
//! server push and 2,229 for a reply, sonic-rs 0.5.10 with `LazyValue` 2,005 and 2,823, when
//! this scanner's first version cost 1,078 and 2,041 (now about 570 and 1,100). Neither library
//! can take the payload raw or as a reply depending on an event read in the same pass without
//! a custom visitor, which is the second pass this replaces.

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
#[inline]
pub fn scan_text(text: &str) -> Option<Decoded<'_>> {
    let b = text.as_bytes();
    let i = ws(b, 0);
    if *b.get(i)? != b'[' {
        return None;
    }
    // A server push or broadcast carries neither ref: one comparison for both.
    let (join_ref, ref_, i) = if b.get(i + 1..i + 11) == Some(b"null,null,") {
        (None, None, i + 11)
    } else {
        let (join_ref, i) = field(text, i + 1)?;
        let (ref_, i) = field(text, comma(b, i)?)?;
        (join_ref, ref_, comma(b, i)?)
    };
    let (topic, i) = field(text, i)?;
    let (event, i) = field(text, comma(b, i)?)?;
    let (topic, event) = (topic?, event?);
    let start = ws(b, comma(b, i)?);
    let (end, reply) = if event.as_bytes() == PHX_REPLY.as_bytes() {
        let (end, reply) = reply_value(text, start)?;
        (end, Some(reply))
    } else {
        (value_end(b, start)?, None)
    };
    let mut i = ws(b, end);
    if *b.get(i)? != b']' {
        i = extra_elements(b, i)?;
    }
    if ws(b, i + 1) != b.len() {
        return None;
    }
    Some(Decoded {
        frame: Frame {
            join_ref,
            ref_,
            topic,
            event,
            payload: Payload::Json(sub(text, start, end)),
            binary_reply_status: None,
        },
        reply,
    })
}

/// A reply payload `{"response": <any>, "status": "<status>"}` (keys in any order, later
/// duplicates win), or `None`.
pub fn scan_reply(json: &str) -> Option<Reply<'_>> {
    let b = json.as_bytes();
    let (end, reply) = reply_value(json, ws(b, 0))?;
    if ws(b, end) != b.len() {
        return None;
    }
    reply
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
    let b = text.as_bytes();
    value_end(b, ws(b, 0)).is_some_and(|end| ws(b, end) == b.len())
}

// ---- the envelope ---------------------------------------------------------------------------

/// An envelope element (whitespace first): `Some((None, end))` for `null`, a string's contents,
/// or `None` for anything else, even valid JSON (the reference decoder then classifies it).
#[inline(always)]
#[allow(clippy::type_complexity)]
fn field(text: &str, i: usize) -> Option<(Option<Cow<'_, str>>, usize)> {
    let b = text.as_bytes();
    let i = ws(b, i);
    match *b.get(i)? {
        b'n' => Some((None, literal_end(b, i, b"null")?)),
        b'"' => {
            let (end, escaped) = string_end(b, i)?;
            let s = if escaped {
                Cow::Owned(unescape_owned(&text[i..end])?)
            } else {
                Cow::Borrowed(sub(text, i + 1, end - 1))
            };
            Some((Some(s), end))
        }
        _ => None,
    }
}

/// The comma after an envelope element (whitespace first); the position after it.
#[inline(always)]
fn comma(b: &[u8], i: usize) -> Option<usize> {
    let i = ws(b, i);
    (*b.get(i)? == b',').then_some(i + 1)
}

/// Elements after the payload, from the comma at `i`: validated and ignored, as Phoenix does.
/// Returns the position of the closing bracket.
#[cold]
#[inline(never)]
fn extra_elements(b: &[u8], mut i: usize) -> Option<usize> {
    loop {
        match *b.get(i)? {
            b']' => return Some(i),
            b',' => i = ws(b, value_end(b, ws(b, i + 1))?),
            _ => return None,
        }
    }
}

// ---- a reply's payload ------------------------------------------------------------------------

/// The payload of a `phx_reply`, at `i` (after whitespace): the position after it and, if it is
/// an object with a string `status` and a `response`, the reply; `None` when it is not JSON.
///
/// Like serde_json's reply decoder (`decode_reply_reference`): later duplicate keys win, a
/// `status` that is not a string (or a string or key whose escapes serde_json refuses to
/// unescape) makes the payload not a reply.
fn reply_value(text: &str, i: usize) -> Option<(usize, Option<Reply<'_>>)> {
    let b = text.as_bytes();
    if *b.get(i)? != b'{' {
        return Some((value_end(b, i)?, None));
    }
    let mut i = ws(b, i + 1);
    if *b.get(i)? == b'}' {
        return Some((i + 1, None));
    }
    let mut status: Option<Cow<'_, str>> = None;
    let mut response: Option<&str> = None;
    let mut bad = false;
    loop {
        if *b.get(i)? != b'"' {
            return None;
        }
        let (key_end, escaped) = string_end(b, i)?;
        let key = if escaped {
            key_kind_escaped(&text[i..key_end])
        } else {
            key_kind(&b[i + 1..key_end - 1])
        };
        i = ws(b, key_end);
        if *b.get(i)? != b':' {
            return None;
        }
        let start = ws(b, i + 1);
        let end;
        match key {
            Some(Key::Status) if b.get(start) == Some(&b'"') => {
                let escaped;
                (end, escaped) = string_end(b, start)?;
                if !escaped {
                    status = Some(Cow::Borrowed(sub(text, start + 1, end - 1)));
                } else if let Some(s) = unescape_owned(&text[start..end]) {
                    status = Some(Cow::Owned(s));
                } else {
                    bad = true;
                }
            }
            Some(Key::Status) => {
                end = value_end(b, start)?;
                bad = true;
            }
            Some(Key::Response) => {
                end = value_end(b, start)?;
                response = Some(sub(text, start, end));
            }
            Some(Key::Other) => end = value_end(b, start)?,
            None => {
                end = value_end(b, start)?;
                bad = true;
            }
        }
        i = ws(b, end);
        match *b.get(i)? {
            b',' => i = ws(b, i + 1),
            b'}' => break,
            _ => return None,
        }
    }
    let reply = match (status, response, bad) {
        (Some(status), Some(response), false) => Some(Reply {
            status,
            response: Payload::Json(response),
        }),
        _ => None,
    };
    Some((i + 1, reply))
}

/// Which of a reply's keys an unescaped key is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Key {
    Other,
    Status,
    Response,
}

#[inline(always)]
fn key_kind(key: &[u8]) -> Option<Key> {
    Some(match key {
        b"status" => Key::Status,
        b"response" => Key::Response,
        _ => Key::Other,
    })
}

/// [`key_kind`] of an escaped key literal; `None` when serde_json refuses to unescape it.
#[cold]
#[inline(never)]
fn key_kind_escaped(lit: &str) -> Option<Key> {
    key_kind(unescape_owned(lit)?.as_bytes())
}

/// The contents of an escaped JSON string literal, judged by serde_json (lone surrogates and
/// all). Out of line: escapes are rare, and the hot functions stay small.
#[cold]
#[inline(never)]
fn unescape_owned(lit: &str) -> Option<String> {
    serde_json::from_str::<String>(lit).ok()
}

/// `text[a..b]`, where `a <= b` are positions the scanner reached by reading `text` (so in
/// bounds) and each is next to an ASCII byte it read: a quote, a bracket, the first or last
/// byte of a JSON value (so both are char boundaries). Unchecked: this runs several times per
/// frame, and the checked slice was a call each time.
#[inline(always)]
fn sub(text: &str, a: usize, b: usize) -> &str {
    debug_assert!(a <= b && text.is_char_boundary(a) && text.is_char_boundary(b));
    // SAFETY: `a <= b <= text.len()` and both are char boundaries (see above).
    unsafe { text.get_unchecked(a..b) }
}

// ---- JSON values --------------------------------------------------------------------------------

/// Skips JSON whitespace from `i`. Frames rarely hold any, so the loop is out of line.
#[inline(always)]
fn ws(b: &[u8], i: usize) -> usize {
    match b.get(i) {
        Some(&c) if c <= b' ' => ws_slow(b, i),
        _ => i,
    }
}

#[inline(never)]
fn ws_slow(b: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = b.get(i) {
        i += 1;
    }
    i
}

/// The position after `word` if it stands at `i`.
#[inline(always)]
fn literal_end<const N: usize>(b: &[u8], i: usize, word: &[u8; N]) -> Option<usize> {
    (b.get(i..i + N)? == word).then_some(i + N)
}

/// One JSON value at `i` (after whitespace): the position after it, or `None` if there is none.
#[inline]
fn value_end(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => Some(string_end(b, i)?.0),
        b'{' => object_end(b, i),
        b'[' => container_end(b, i),
        b'-' | b'0'..=b'9' => number_end(b, i),
        b't' => literal_end(b, i, b"true"),
        b'f' => literal_end(b, i, b"false"),
        b'n' => literal_end(b, i, b"null"),
        _ => None,
    }
}

/// An object opening at `i`: the position after it. Its members' values are read here unless
/// they are containers (then [`container_end`]): most payloads are one flat object, and this
/// loop is cheaper than the general one.
fn object_end(b: &[u8], i: usize) -> Option<usize> {
    let mut i = ws(b, i + 1);
    if *b.get(i)? == b'}' {
        return Some(i + 1);
    }
    loop {
        i = key_end(b, i)?;
        i = match *b.get(i)? {
            b'"' => string_end(b, i)?.0,
            b'{' | b'[' => container_end(b, i)?,
            b'-' | b'0'..=b'9' => number_end(b, i)?,
            b't' => literal_end(b, i, b"true")?,
            b'f' => literal_end(b, i, b"false")?,
            b'n' => literal_end(b, i, b"null")?,
            _ => return None,
        };
        i = ws(b, i);
        match *b.get(i)? {
            b',' => i = ws(b, i + 1),
            b'}' => return Some(i + 1),
            _ => return None,
        }
    }
}

/// An object or array opening at `i`, at any depth, without recursion: the position after it.
fn container_end(b: &[u8], mut i: usize) -> Option<usize> {
    // The kinds of the open containers (1 = object), the innermost in bit 0; those pushed out
    // of the word, beyond 64 levels, wait in `spill`.
    let mut stack: u64 = 0;
    let mut depth: usize = 0;
    let mut spill: Vec<bool> = Vec::new();
    loop {
        // A value starts at `i`.
        match *b.get(i)? {
            c @ (b'{' | b'[') => {
                let object = c == b'{';
                i = ws(b, i + 1);
                if *b.get(i)? == c + 2 {
                    // `{}` or `[]` (the closing brackets are two past the opening ones).
                    i += 1;
                } else {
                    if depth >= 64 {
                        spill.push(stack >> 63 != 0);
                    }
                    stack = stack << 1 | u64::from(object);
                    depth += 1;
                    if object {
                        i = key_end(b, i)?;
                    }
                    continue;
                }
            }
            b'"' => i = string_end(b, i)?.0,
            b'-' | b'0'..=b'9' => i = number_end(b, i)?,
            b't' => i = literal_end(b, i, b"true")?,
            b'f' => i = literal_end(b, i, b"false")?,
            b'n' => i = literal_end(b, i, b"null")?,
            _ => return None,
        }
        // A value ended at `i`: close containers until another value is due.
        loop {
            if depth == 0 {
                return Some(i);
            }
            i = ws(b, i);
            let object = stack & 1 != 0;
            match *b.get(i)? {
                b',' => {
                    i = ws(b, i + 1);
                    if object {
                        i = key_end(b, i)?;
                    }
                    break;
                }
                b'}' if object => {}
                b']' if !object => {}
                _ => return None,
            }
            i += 1;
            stack >>= 1;
            depth -= 1;
            if depth >= 64 {
                stack |= u64::from(spill.pop()?) << 63;
            }
        }
    }
}

/// An object key at `i`, its colon and the whitespace after it: where the value starts.
#[inline(always)]
fn key_end(b: &[u8], i: usize) -> Option<usize> {
    if *b.get(i)? != b'"' {
        return None;
    }
    let i = ws(b, string_end(b, i)?.0);
    if *b.get(i)? != b':' {
        return None;
    }
    Some(ws(b, i + 1))
}

/// A number at `i` (JSON's grammar, as serde_json checks it when skipping a value): the
/// position after it.
#[inline(always)]
fn number_end(b: &[u8], mut i: usize) -> Option<usize> {
    if b[i] == b'-' {
        i += 1;
    }
    match *b.get(i)? {
        b'0' => i += 1,
        b'1'..=b'9' => i = digits_end(b, i + 1),
        _ => return None,
    }
    match b.get(i) {
        Some(b'.' | b'e' | b'E') => fraction_end(b, i),
        _ => Some(i),
    }
}

/// A number's fraction and exponent (either may be absent) from `i`.
#[inline(never)]
fn fraction_end(b: &[u8], mut i: usize) -> Option<usize> {
    if b.get(i) == Some(&b'.') {
        let end = digits_end(b, i + 1);
        if end == i + 1 {
            return None;
        }
        i = end;
    }
    if let Some(b'e' | b'E') = b.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = b.get(i) {
            i += 1;
        }
        let end = digits_end(b, i);
        if end == i {
            return None;
        }
        i = end;
    }
    Some(i)
}

/// The first byte from `i` that is not a decimal digit (or the end), eight bytes at a time.
#[inline(always)]
fn digits_end(b: &[u8], mut i: usize) -> usize {
    loop {
        // A digit XOR '0' is 0..=9: neither it nor it plus 6 reaches the high nibble. A carry
        // out of a byte only reaches bytes above a flagged one, so the lowest flag is exact.
        let x = word_at(b, i) ^ (ONES * u64::from(b'0'));
        let m = (x | x.wrapping_add(ONES * 6)) & (ONES * 0xf0);
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
}

/// A string literal opening at `i`: the position after its closing quote, and whether it
/// holds escapes.
#[inline(always)]
fn string_end(b: &[u8], i: usize) -> Option<(usize, bool)> {
    let mut j = next_stop(b, i + 1);
    if *b.get(j)? == b'"' {
        return Some((j + 1, false));
    }
    loop {
        match *b.get(j)? {
            b'"' => return Some((j + 1, true)),
            b'\\' => j = next_stop(b, escape_end(b, j)?),
            _ => return None, // a control character
        }
    }
}

/// The escape at `i` (a backslash): the position after it.
#[inline(never)]
fn escape_end(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i + 1)? {
        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(i + 2),
        b'u' => b
            .get(i + 2..i + 6)?
            .iter()
            .all(u8::is_ascii_hexdigit)
            .then_some(i + 6),
        _ => None,
    }
}

/// The first quote, backslash or control byte from `i` (or the end), eight bytes at a time
/// (the lowest flagged byte of a word is exact).
#[inline(always)]
fn next_stop(b: &[u8], mut i: usize) -> usize {
    while let Some(chunk) = b.get(i..i + 8) {
        let m = stops(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if c == b'"' || c == b'\\' || c < 0x20 {
            break;
        }
        i += 1;
    }
    i
}

/// The eight bytes from `i` (at most `b.len()`) as a little-endian word, zeros past the end: a
/// zero byte stops every scan above (it is a control byte and not a digit), and the caller
/// then finds the end.
#[inline(always)]
fn word_at(b: &[u8], i: usize) -> u64 {
    match b.get(i..i + 8) {
        Some(w) => u64::from_le_bytes(w.try_into().expect("8 bytes")),
        None => word_near_end(b, i),
    }
}

/// [`word_at`] for the last seven bytes: the text's last word shifted down, so no byte is read
/// one at a time.
#[inline(never)]
fn word_near_end(b: &[u8], i: usize) -> u64 {
    let left = b.len().saturating_sub(i);
    if left == 0 {
        return 0;
    }
    match b.len().checked_sub(8) {
        Some(last) => {
            let w = u64::from_le_bytes(b[last..].try_into().expect("8 bytes"));
            w >> (8 * (8 - left))
        }
        None => {
            let mut w = [0u8; 8];
            w[..left].copy_from_slice(&b[i..]);
            u64::from_le_bytes(w)
        }
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The high bit of every byte of the word that is a quote, a backslash or a control byte (and
/// possibly of bytes above the first such byte: only the lowest flag is exact).
#[inline(always)]
fn stops(w: u64) -> u64 {
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGHS;
    zero(w ^ (ONES * b'"' as u64)) | zero(w ^ (ONES * b'\\' as u64)) | below_space
}
