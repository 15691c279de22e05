//! JSON as Phoenix's Jason sees it: strict RFC 8259 decoding (integers of any size, the first of
//! duplicate object keys wins, as `:maps.from_list` does with Jason's reversed pair list) and
//! encoding with map keys sorted bytewise, floats in Erlang's shortest form (`1.5`, `100.0`,
//! `1.0e3`, `1.0e-4`), raw UTF-8 and `\u00XX` (upper-case hex) for control characters.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Nesting deeper than this is refused (it would otherwise recurse without bound).
const MAX_DEPTH: usize = 512;

/// A decoded JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    /// An integer, as canonical decimal digits (optional leading `-`, never `-0`).
    Int(String),
    Float(f64),
    Str(String),
    Array(Vec<Json>),
    Object(BTreeMap<String, Json>),
}

impl Json {
    pub fn str(s: impl Into<String>) -> Json {
        Json::Str(s.into())
    }

    pub fn int(i: i64) -> Json {
        Json::Int(i.to_string())
    }

    pub fn object<K: Into<String>>(pairs: impl IntoIterator<Item = (K, Json)>) -> Json {
        Json::Object(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    pub fn empty_object() -> Json {
        Json::Object(BTreeMap::new())
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(m) => m.get(key),
            _ => None,
        }
    }

    /// The value as a non-negative integer that fits in u64.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Json::Int(digits) => digits.parse().ok(),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Json::Null)
    }

    /// Appends the Jason encoding.
    pub fn encode_into(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(true) => out.push_str("true"),
            Json::Bool(false) => out.push_str("false"),
            Json::Int(digits) => out.push_str(digits),
            Json::Float(f) => write_float(out, *f),
            Json::Str(s) => write_string(out, s),
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.encode_into(out);
                }
                out.push(']');
            }
            Json::Object(map) => {
                out.push('{');
                for (i, (k, v)) in map.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_string(out, k);
                    out.push(':');
                    v.encode_into(out);
                }
                out.push('}');
            }
        }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        self.encode_into(&mut out);
        out
    }

    /// Elixir's `to_string/1` of the value, as the V2 serializer applies to join_ref/ref in
    /// binary frames. `None` where Elixir would raise.
    pub fn to_elixir_string(&self) -> Option<String> {
        match self {
            Json::Null => Some(String::new()),
            Json::Bool(b) => Some(b.to_string()),
            Json::Int(d) => Some(d.clone()),
            Json::Float(f) => {
                let mut s = String::new();
                write_float(&mut s, *f);
                Some(s)
            }
            Json::Str(s) => Some(s.clone()),
            Json::Array(_) | Json::Object(_) => None,
        }
    }
}

/// Decodes one JSON document (surrounding whitespace allowed), as Jason does.
pub fn parse(text: &str) -> Result<Json, ()> {
    let mut p = Parser {
        s: text.as_bytes(),
        pos: 0,
        text,
    };
    let v = p.value(0)?;
    p.ws();
    if p.pos != p.s.len() {
        return Err(());
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.pos) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn eat(&mut self, lit: &[u8]) -> Result<(), ()> {
        if self.s[self.pos..].starts_with(lit) {
            self.pos += lit.len();
            Ok(())
        } else {
            Err(())
        }
    }

    fn value(&mut self, depth: usize) -> Result<Json, ()> {
        if depth > MAX_DEPTH {
            return Err(());
        }
        self.ws();
        match self.peek().ok_or(())? {
            b'n' => self.eat(b"null").map(|_| Json::Null),
            b't' => self.eat(b"true").map(|_| Json::Bool(true)),
            b'f' => self.eat(b"false").map(|_| Json::Bool(false)),
            b'"' => self.string().map(Json::Str),
            b'[' => {
                self.pos += 1;
                let mut items = Vec::new();
                self.ws();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                    return Ok(Json::Array(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b']') => {
                            self.pos += 1;
                            return Ok(Json::Array(items));
                        }
                        _ => return Err(()),
                    }
                }
            }
            b'{' => {
                self.pos += 1;
                let mut map = BTreeMap::new();
                self.ws();
                if self.peek() == Some(b'}') {
                    self.pos += 1;
                    return Ok(Json::Object(map));
                }
                loop {
                    self.ws();
                    if self.peek() != Some(b'"') {
                        return Err(());
                    }
                    let key = self.string()?;
                    self.ws();
                    if self.peek() != Some(b':') {
                        return Err(());
                    }
                    self.pos += 1;
                    let v = self.value(depth + 1)?;
                    // Jason keeps the first of duplicate keys.
                    map.entry(key).or_insert(v);
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b'}') => {
                            self.pos += 1;
                            return Ok(Json::Object(map));
                        }
                        _ => return Err(()),
                    }
                }
            }
            b'-' | b'0'..=b'9' => self.number(),
            _ => Err(()),
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<Json, ()> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(()),
        }
        let mut float = false;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(());
            }
            float = true;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(());
            }
            float = true;
        }
        let token = &self.text[start..self.pos];
        if float {
            let f: f64 = token.parse().map_err(|_| ())?;
            if !f.is_finite() {
                return Err(());
            }
            Ok(Json::Float(f))
        } else if token == "-0" {
            Ok(Json::Int("0".into()))
        } else {
            Ok(Json::Int(token.into()))
        }
    }

    fn hex4(&mut self) -> Result<u32, ()> {
        let h = self.s.get(self.pos..self.pos + 4).ok_or(())?;
        let h = std::str::from_utf8(h).map_err(|_| ())?;
        if !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(());
        }
        self.pos += 4;
        u32::from_str_radix(h, 16).map_err(|_| ())
    }

    fn string(&mut self) -> Result<String, ()> {
        self.pos += 1; // opening quote
        let mut out = String::new();
        let mut run = self.pos;
        loop {
            let b = self.peek().ok_or(())?;
            match b {
                b'"' => {
                    out.push_str(&self.text[run..self.pos]);
                    self.pos += 1;
                    return Ok(out);
                }
                0..=0x1f => return Err(()),
                b'\\' => {
                    out.push_str(&self.text[run..self.pos]);
                    self.pos += 1;
                    let e = self.peek().ok_or(())?;
                    self.pos += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hi = self.hex4()?;
                            let c = match hi {
                                0xD800..=0xDBFF => {
                                    self.eat(b"\\u")?;
                                    let lo = self.hex4()?;
                                    if !(0xDC00..=0xDFFF).contains(&lo) {
                                        return Err(());
                                    }
                                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                                }
                                0xDC00..=0xDFFF => return Err(()),
                                c => c,
                            };
                            out.push(char::from_u32(c).ok_or(())?);
                        }
                        _ => return Err(()),
                    }
                    run = self.pos;
                }
                _ => self.pos += 1,
            }
        }
    }
}

/// Appends `s` as a JSON string the way Jason's default (`escape: :json`) does.
pub fn write_string(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let short = match b {
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
        if short.is_empty() {
            let _ = write!(out, "\\u{:04X}", b);
        } else {
            out.push_str(short);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Appends `f` as `:erlang.float_to_binary(f, [:short])` prints it: the shortest round-trip
/// digits, in plain or scientific notation, whichever is shorter (`io_lib_format`'s rules).
pub fn write_float(out: &mut String, f: f64) {
    if f == 0.0 {
        out.push_str(if f.is_sign_negative() { "-0.0" } else { "0.0" });
        return;
    }
    if f < 0.0 {
        out.push('-');
    }
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let exp: i64 = exp.parse().expect("{:e} exponent");
    let len = digits.len() as i64;
    // value = digits × 10^place
    let place = exp - len + 1;
    let exp_str = exp.to_string();
    let exp_cost = exp_str.len() as i64 + 2;
    let insert_exp = |out: &mut String| {
        let (first, rest) = digits.split_at(1);
        out.push_str(first);
        out.push('.');
        out.push_str(if rest.is_empty() { "0" } else { rest });
        out.push('e');
        out.push_str(&exp_str);
    };
    if place < 0 {
        if exp >= 0 {
            let (int, frac) = digits.split_at((len + place) as usize);
            out.push_str(int);
            out.push('.');
            out.push_str(frac);
        } else if 2 - place - len <= exp_cost {
            out.push_str("0.");
            for _ in 0..(-place - len) {
                out.push('0');
            }
            out.push_str(&digits);
        } else {
            insert_exp(out);
        }
    } else {
        let dot = i64::from(len == 1);
        if exp_cost + dot >= place + 2 && f.abs() < 9_007_199_254_740_992.0 {
            out.push_str(&digits);
            for _ in 0..place {
                out.push('0');
            }
            out.push_str(".0");
        } else {
            insert_exp(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn re(s: &str) -> String {
        parse(s).unwrap().encode()
    }

    #[test]
    fn sorts_keys_and_keeps_utf8() {
        assert_eq!(
            re(r#"{"hello":"world","n":1.5,"u":"ü€","nested":{"a":[null,true]}}"#),
            r#"{"hello":"world","n":1.5,"nested":{"a":[null,true]},"u":"ü€"}"#
        );
        assert_eq!(re(r#"{"b":1,"a":2,"a":3}"#), r#"{"a":2,"b":1}"#);
        assert_eq!(
            re(r#" "a\u00e9\/\n\u001f\u000b" "#),
            "\"aé/\\n\\u001F\\u000B\""
        );
        assert_eq!(re(r#""\ud83d\ude00""#), "\"😀\"");
    }

    #[test]
    fn numbers_as_erlang_prints_them() {
        for (input, out) in [
            ("1.5", "1.5"),
            ("100.0", "100.0"),
            ("1000.0", "1.0e3"),
            ("1e3", "1.0e3"),
            ("0.001", "0.001"),
            ("0.0001", "1.0e-4"),
            ("0.5", "0.5"),
            ("-0.0", "-0.0"),
            ("123456789.0", "123456789.0"),
            ("1e21", "1.0e21"),
            ("1.2345e6", "1.2345e6"),
            ("0.30000000000000004", "0.30000000000000004"),
            ("-0", "0"),
            (
                "123456789012345678901234567890",
                "123456789012345678901234567890",
            ),
        ] {
            assert_eq!(re(input), out, "{input}");
        }
    }

    #[test]
    fn rejects_what_jason_rejects() {
        for bad in [
            "",
            "01",
            "1.",
            ".5",
            "[1,]",
            "{\"a\":1,}",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "1e400",
            "\"a\u{1}\"",
            "nul",
            "[1] x",
            "{'a':1}",
            "+1",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let deep = "[".repeat(MAX_DEPTH + 2) + &"]".repeat(MAX_DEPTH + 2);
        assert!(parse(&deep).is_err());
    }
}
