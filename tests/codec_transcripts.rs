//! Runs every V2 frame captured from a real Phoenix 1.7 server (`tests/fixtures/*transcripts.md`)
//! through the codec.
//!
//! * Text frames are decoded and compared with a `serde_json::Value` parse of the same line.
//! * Binary frames are decoded and compared with the `↳` annotation line that follows them.
//! * Every frame re-encodes byte-identically from its decoded fields (text frames with
//!   `encode_text`, binary frames with the encoder for their kind and direction).
//! * Replies give the right status and response through `Frame::reply()`.
//! * The deliberately invalid frames are rejected with the right `DecodeError`, and the
//!   six-element array decodes with its extra element ignored.
//!
//! The number of frames checked is compared with a plain count of the frame lines in the file,
//! so a parser that silently skipped lines would fail.

use phx::protocol::{
    decode_binary_client, decode_binary_server, decode_reply, decode_text, encode_binary_broadcast,
    encode_binary_push, encode_binary_reply, encode_binary_server_push, encode_text, DecodeError,
    Frame, Payload, Reply, PHX_REPLY,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

const MAIN_TRANSCRIPTS: &str = "phoenix-1.7-transcripts.md";
const PRESENCE_TRANSCRIPTS: &str = "phoenix-1.7-presence-transcripts.md";

/// Substrings that mark a frame line inside a transcript code block. The last four are the
/// examples in the binary layout section (`C→S push  00 01 …   kind0 jr="1" …`).
const FRAME_MARKERS: &[&str] = &[
    "C→S text",
    "S→C text",
    "C→S binary",
    "S→C binary",
    "C→S push",
    "S→C push",
    "S→C reply",
    "S→C bcast",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    ClientToServer,
    ServerToClient,
}

/// What a deliberately invalid frame must be rejected with.
#[derive(Debug, Clone)]
enum Rejection {
    /// `decode_text` fails with `DecodeError::Json(_)`.
    TextNotJson,
    /// `decode_text` fails with exactly this error.
    Text(DecodeError),
    /// A "text" frame whose bytes are not UTF-8: no `&str` can hold it.
    TextNotUtf8,
    /// `decode_binary_client` (and `decode_binary_server`) fail with exactly this error.
    Binary(DecodeError),
}

struct Invalid {
    /// The frame as the transcript prints it: JSON text, or hex for binary / raw frames.
    frame: &'static str,
    dir: Dir,
    rejection: Rejection,
    /// A piece of the `↳` annotation that must follow a binary frame.
    annotation: Option<&'static str>,
}

/// The invalid frames of the "invalid text frame" / "invalid binary frame" sections.
fn invalid_frames() -> Vec<Invalid> {
    use Dir::*;
    vec![
        Invalid {
            frame: "this is not json",
            dir: ClientToServer,
            rejection: Rejection::TextNotJson,
            annotation: None,
        },
        Invalid {
            frame: r#"{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"1"}"#,
            dir: ClientToServer,
            rejection: Rejection::Text(DecodeError::NotAnArray),
            annotation: None,
        },
        Invalid {
            frame: r#"[null,"1","phoenix","heartbeat"]"#,
            dir: ClientToServer,
            rejection: Rejection::Text(DecodeError::TooShort),
            annotation: None,
        },
        Invalid {
            frame: r#"[null,"1",42,"heartbeat",{}]"#,
            dir: ClientToServer,
            rejection: Rejection::Text(DecodeError::BadName),
            annotation: None,
        },
        // The server echoes the non-string topic back; the client refuses it the same way.
        Invalid {
            frame: r#"[null,"1",42,"phx_reply",{"response":{"reason":"unmatched topic"},"status":"error"}]"#,
            dir: ServerToClient,
            rejection: Rejection::Text(DecodeError::BadName),
            annotation: None,
        },
        Invalid {
            frame: "5b ff fe 5d",
            dir: ClientToServer,
            rejection: Rejection::TextNotUtf8,
            annotation: None,
        },
        Invalid {
            frame: "05 01 01 01 01 31 32 61 62",
            dir: ClientToServer,
            rejection: Rejection::Binary(DecodeError::UnknownKind(5)),
            annotation: Some("unknown kind 5"),
        },
        Invalid {
            frame: "00 01 01 0a",
            dir: ClientToServer,
            rejection: Rejection::Binary(DecodeError::Truncated),
            annotation: Some("truncated"),
        },
        Invalid {
            frame: "00 01 01 32 04 31 32",
            dir: ClientToServer,
            rejection: Rejection::Binary(DecodeError::Truncated),
            annotation: Some("need 61 bytes but frame has 7"),
        },
    ]
}

#[derive(Debug, Default)]
struct Stats {
    /// Lines in code blocks that contain one of [`FRAME_MARKERS`], counted without parsing.
    present: usize,
    v1_skipped: usize,
    text: usize,
    binary: usize,
    /// Deliberately invalid frames that were rejected as expected.
    invalid: usize,
    /// Text frames with more than five elements (decoded, extra elements ignored).
    extra_elements: usize,
    replies: usize,
    client_reencoded: usize,
    server_reencoded: usize,
    /// For each entry of [`invalid_frames`], how often it was seen.
    invalid_seen: Vec<usize>,
}

impl Stats {
    fn checked(&self) -> usize {
        self.text + self.binary + self.invalid
    }
}

fn read_fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| {
            assert_eq!(b.len(), 2, "bad hex byte {b:?} in {s:?}");
            u8::from_str_radix(b, 16).unwrap_or_else(|e| panic!("bad hex byte {b:?}: {e}"))
        })
        .collect()
}

/// One frame line: `+<t>ms [label] <dir> <word> <rest>`, or a layout example `<dir> <word> <rest>`.
struct FrameLine<'a> {
    label: Option<&'a str>,
    dir: Dir,
    word: &'a str,
    rest: &'a str,
}

fn parse_frame_line(line: &str) -> Option<FrameLine<'_>> {
    let mut s = line.trim_start();
    if let Some(r) = s.strip_prefix('+') {
        let r = r.trim_start();
        let digits = r.find(|c: char| !c.is_ascii_digit())?;
        s = r[digits..].strip_prefix("ms")?.trim_start();
    }
    let mut label = None;
    if let Some(r) = s.strip_prefix('[') {
        let end = r.find(']')?;
        label = Some(&r[..end]);
        s = r[end + 1..].trim_start();
    }
    let (dir, r) = if let Some(r) = s.strip_prefix("C→S ") {
        (Dir::ClientToServer, r)
    } else if let Some(r) = s.strip_prefix("S→C ") {
        (Dir::ServerToClient, r)
    } else {
        return None;
    };
    let r = r.trim_start();
    let end = r.find(' ').unwrap_or(r.len());
    Some(FrameLine {
        label,
        dir,
        word: &r[..end],
        rest: &r[end..],
    })
}

/// The `↳` annotation of a binary frame, or the decode part of a layout example.
#[derive(Debug, Default)]
struct Annotation {
    kind: Option<u8>,
    kind_name: Option<String>,
    sizes: Option<Vec<(String, usize)>>,
    fields: BTreeMap<String, String>,
    payload: Option<Vec<u8>>,
}

impl Annotation {
    fn field(&self, name: &str) -> &str {
        self.fields
            .get(name)
            .unwrap_or_else(|| panic!("annotation lacks {name}: {self:?}"))
    }
}

/// Parses a quoted string (the opening quote already consumed); returns it and the rest.
fn parse_quoted(s: &str) -> (String, &str) {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return (out, &s[i + 1..]),
            '\\' => out.push(chars.next().expect("dangling escape").1),
            c => out.push(c),
        }
    }
    panic!("unterminated string in annotation: {s:?}");
}

/// Parses `kind=0(push) sizes[join_ref=1,...] join_ref="1" ... payload=<01 02>` and the layout
/// examples' `kind0 jr="1" ... payload=01 02`.
fn parse_annotation(s: &str) -> Annotation {
    let mut a = Annotation::default();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let key_end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let key = &rest[..key_end];
        assert!(!key.is_empty(), "cannot parse annotation at {rest:?}");
        rest = &rest[key_end..];
        if let Some(n) = key.strip_prefix("kind").filter(|n| !n.is_empty()) {
            a.kind = Some(n.parse().expect("kind number"));
        } else if key == "sizes" {
            let body = rest.strip_prefix('[').expect("sizes[");
            let end = body.find(']').expect("sizes[...]");
            let sizes = body[..end]
                .split(',')
                .map(|kv| {
                    let (k, v) = kv.split_once('=').expect("size name=value");
                    (k.to_owned(), v.parse().expect("size value"))
                })
                .collect();
            a.sizes = Some(sizes);
            rest = &body[end + 1..];
        } else {
            rest = rest
                .strip_prefix('=')
                .unwrap_or_else(|| panic!("expected = after {key} in {s:?}"));
            if key == "payload" {
                if let Some(body) = rest.strip_prefix('<') {
                    let end = body.find('>').expect("payload=<...>");
                    a.payload = Some(hex(&body[..end]));
                    rest = &body[end + 1..];
                } else {
                    a.payload = Some(hex(rest));
                    rest = "";
                }
            } else if key == "kind" {
                let end = rest.find(' ').unwrap_or(rest.len());
                let (num, name) = rest[..end].split_once('(').expect("kind=N(name)");
                a.kind = Some(num.parse().expect("kind number"));
                a.kind_name = Some(name.strip_suffix(')').expect("kind name )").to_owned());
                rest = &rest[end..];
            } else {
                let body = rest
                    .strip_prefix('"')
                    .unwrap_or_else(|| panic!("expected a quoted {key} in {s:?}"));
                let (value, r) = parse_quoted(body);
                let name = if key == "jr" { "join_ref" } else { key };
                a.fields.insert(name.to_owned(), value);
                rest = r;
            }
        }
        rest = rest.trim_start();
    }
    a
}

/// A JSON envelope element that must be a string or null.
fn opt_str(v: &Value) -> Option<&str> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s),
        other => panic!("envelope ref is neither null nor a string: {other}"),
    }
}

fn nonempty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

fn check_text(text: &str, stats: &mut Stats) {
    let value: Value = serde_json::from_str(text).expect("a valid transcript frame is JSON");
    let arr = value.as_array().expect("a V2 frame is a JSON array");
    assert!(arr.len() >= 5, "V2 frame with fewer than 5 elements");

    let frame = decode_text(text).unwrap_or_else(|e| panic!("decode_text failed: {e}"));
    assert_eq!(frame.join_ref.as_deref(), opt_str(&arr[0]), "join_ref");
    assert_eq!(frame.ref_.as_deref(), opt_str(&arr[1]), "ref");
    assert_eq!(Some(&*frame.topic), arr[2].as_str(), "topic");
    assert_eq!(Some(&*frame.event), arr[3].as_str(), "event");
    assert_eq!(frame.binary_reply_status, None);
    let Payload::Json(raw) = frame.payload else {
        panic!("text frame with a binary payload");
    };
    let payload: Value = serde_json::from_str(raw).expect("raw payload is JSON");
    assert_eq!(payload, arr[4], "payload");

    // The payload is borrowed verbatim from the frame text.
    let start = (raw.as_ptr() as usize)
        .checked_sub(text.as_ptr() as usize)
        .filter(|&s| s + raw.len() <= text.len())
        .expect("payload is not borrowed from the frame");
    let payload_end = start + raw.len();
    assert_eq!(&text[start..payload_end], raw);

    let mut out = String::new();
    encode_text(
        &mut out,
        frame.join_ref.as_deref(),
        frame.ref_.as_deref(),
        &frame.topic,
        &frame.event,
        raw,
    );
    if arr.len() == 5 {
        assert_eq!(out, text, "text frame does not re-encode byte-identically");
    } else {
        // Extra elements are dropped; everything up to the payload is kept byte for byte.
        assert_eq!(out, format!("{}]", &text[..payload_end]));
        stats.extra_elements += 1;
    }
    assert_eq!(decode_text(&out).as_ref(), Ok(&frame));

    match frame.reply() {
        Some(reply) => {
            assert_eq!(frame.event, PHX_REPLY);
            let reply = reply.unwrap_or_else(|e| panic!("reply did not decode: {e}"));
            assert_eq!(Some(&*reply.status), arr[4]["status"].as_str(), "status");
            let Payload::Json(response) = reply.response else {
                panic!("JSON reply with a binary response");
            };
            let response: Value = serde_json::from_str(response).expect("response is JSON");
            assert_eq!(response, arr[4]["response"], "response");
            assert_eq!(decode_reply(raw), Ok(reply));
            stats.replies += 1;
        }
        None => assert_ne!(frame.event, PHX_REPLY),
    }
    stats.text += 1;
}

/// The header fields, in wire order, of a valid binary frame of this direction and kind.
fn layout(dir: Dir, kind: u8) -> &'static [&'static str] {
    match (dir, kind) {
        (Dir::ClientToServer, 0) => &["join_ref", "ref", "topic", "event"],
        (Dir::ServerToClient, 0) => &["join_ref", "topic", "event"],
        (Dir::ServerToClient, 1) => &["join_ref", "ref", "topic", "status"],
        (Dir::ServerToClient, 2) => &["topic", "event"],
        other => panic!("no binary layout for {other:?}"),
    }
}

fn check_binary(dir: Dir, bytes: &[u8], ann: &Annotation, stats: &mut Stats) {
    let kind = ann.kind.expect("annotation has a kind");
    assert_eq!(bytes[0], kind, "kind byte");
    if let Some(name) = &ann.kind_name {
        let expected = ["push", "reply", "broadcast"][usize::from(kind)];
        assert_eq!(name, expected, "kind name");
    }
    let names = layout(dir, kind);
    for (i, name) in names.iter().enumerate() {
        assert_eq!(
            usize::from(bytes[1 + i]),
            ann.field(name).len(),
            "size byte of {name}"
        );
    }
    if let Some(sizes) = &ann.sizes {
        let expected: Vec<(String, usize)> = names
            .iter()
            .map(|n| (n.to_string(), ann.field(n).len()))
            .collect();
        assert_eq!(sizes, &expected, "annotated sizes");
    }
    let payload = ann.payload.as_deref().expect("annotation has a payload");

    let mut out = Vec::new();
    match dir {
        Dir::ClientToServer => {
            let frame = decode_binary_client(bytes).unwrap_or_else(|e| panic!("{e}"));
            let expected = Frame {
                join_ref: nonempty(ann.field("join_ref")).map(Into::into),
                ref_: nonempty(ann.field("ref")).map(Into::into),
                topic: ann.field("topic").into(),
                event: ann.field("event").into(),
                payload: Payload::Binary(payload),
                binary_reply_status: None,
            };
            assert_eq!(frame, expected);
            assert!(frame.reply().is_none());
            encode_binary_push(
                &mut out,
                frame.join_ref.as_deref(),
                frame.ref_.as_deref(),
                &frame.topic,
                &frame.event,
                payload,
            )
            .unwrap();
            assert_eq!(
                out, bytes,
                "client push does not re-encode byte-identically"
            );
            stats.client_reencoded += 1;
        }
        Dir::ServerToClient => {
            let frame = decode_binary_server(bytes).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(frame.payload, Payload::Binary(payload), "payload");
            assert_eq!(frame.topic, ann.field("topic"), "topic");
            match kind {
                0 => {
                    assert_eq!(frame.join_ref.as_deref(), nonempty(ann.field("join_ref")));
                    assert_eq!(frame.ref_, None);
                    assert_eq!(frame.event, ann.field("event"));
                    assert_eq!(frame.binary_reply_status, None);
                    assert!(frame.reply().is_none());
                    encode_binary_server_push(
                        &mut out,
                        frame.join_ref.as_deref(),
                        &frame.topic,
                        &frame.event,
                        payload,
                    )
                    .unwrap();
                }
                1 => {
                    let status = ann.field("status");
                    assert_eq!(frame.join_ref.as_deref(), nonempty(ann.field("join_ref")));
                    assert_eq!(frame.ref_.as_deref(), nonempty(ann.field("ref")));
                    assert_eq!(frame.event, PHX_REPLY);
                    assert_eq!(frame.binary_reply_status, Some(status));
                    let reply = frame.reply().expect("a binary reply is a reply");
                    assert_eq!(
                        reply,
                        Ok(Reply {
                            status: status.into(),
                            response: Payload::Binary(payload),
                        })
                    );
                    stats.replies += 1;
                    encode_binary_reply(
                        &mut out,
                        frame.join_ref.as_deref(),
                        frame.ref_.as_deref(),
                        &frame.topic,
                        status,
                        payload,
                    )
                    .unwrap();
                }
                2 => {
                    assert_eq!(frame.join_ref, None);
                    assert_eq!(frame.ref_, None);
                    assert_eq!(frame.event, ann.field("event"));
                    assert_eq!(frame.binary_reply_status, None);
                    assert!(frame.reply().is_none());
                    encode_binary_broadcast(&mut out, &frame.topic, &frame.event, payload).unwrap();
                }
                _ => unreachable!("layout() accepted kind {kind}"),
            }
            assert_eq!(
                out, bytes,
                "server frame does not re-encode byte-identically"
            );
            // A client never sends replies or broadcasts: the client-side decoder refuses them.
            if kind != 0 {
                assert_eq!(
                    decode_binary_client(bytes),
                    Err(DecodeError::UnknownKind(kind))
                );
            }
            stats.server_reencoded += 1;
        }
    }
    stats.binary += 1;
}

/// Checks a frame against the invalid-frame table; true if it was one of them (and rejected).
fn check_invalid(
    dir: Dir,
    frame: &str,
    annotation: Option<&str>,
    table: &[Invalid],
    stats: &mut Stats,
) -> bool {
    let Some(i) = table.iter().position(|inv| inv.frame == frame) else {
        return false;
    };
    let inv = &table[i];
    assert_eq!(dir, inv.dir, "direction of invalid frame {frame:?}");
    match inv.rejection {
        Rejection::TextNotJson => {
            assert!(matches!(decode_text(frame), Err(DecodeError::Json(_))));
            assert!(serde_json::from_str::<Value>(frame).is_err());
        }
        Rejection::Text(ref e) => assert_eq!(decode_text(frame).as_ref(), Err(e)),
        Rejection::TextNotUtf8 => assert!(std::str::from_utf8(&hex(frame)).is_err()),
        Rejection::Binary(ref e) => {
            let bytes = hex(frame);
            assert_eq!(decode_binary_client(&bytes).as_ref(), Err(e));
            assert_eq!(decode_binary_server(&bytes).as_ref(), Err(e));
        }
    }
    if let Some(expected) = inv.annotation {
        let got = annotation.expect("invalid binary frame without annotation");
        assert!(
            got.contains(expected),
            "annotation {got:?} lacks {expected:?}"
        );
    }
    stats.invalid_seen[i] += 1;
    stats.invalid += 1;
    true
}

fn check_transcript(name: &str) -> Stats {
    let doc = read_fixture(name);
    let table = invalid_frames();
    let mut stats = Stats {
        invalid_seen: vec![0; table.len()],
        ..Stats::default()
    };
    let lines: Vec<&str> = doc.lines().collect();
    let mut in_code = false;
    for (i, &line) in lines.iter().enumerate() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if !in_code {
            continue;
        }
        let has_marker = FRAME_MARKERS.iter().any(|m| line.contains(m));
        stats.present += usize::from(has_marker);
        let Some(fl) = parse_frame_line(line) else {
            assert!(!has_marker, "{name}:{}: unparsed frame line", i + 1);
            continue;
        };
        let next_annotation = || {
            lines
                .get(i + 1)
                .and_then(|l| l.split_once('↳'))
                .map(|(_, a)| a.trim())
        };
        let at = format!("{name}:{}: {line}", i + 1);
        let run = std::panic::AssertUnwindSafe(|| match fl.word {
            "text" => {
                let rest = fl.rest.trim_start();
                if let Some(raw) = rest.strip_prefix("(raw bytes)") {
                    let raw = raw.trim();
                    assert!(
                        check_invalid(fl.dir, raw, None, &table, &mut stats),
                        "raw text frame not in the invalid table"
                    );
                } else if fl.label.is_some_and(|l| l.contains("V1")) {
                    // V1 serializer (no vsn): JSON objects, not this codec's format.
                    assert!(rest.starts_with('{'), "V1 frame is not an object");
                    assert_eq!(decode_text(rest), Err(DecodeError::NotAnArray));
                    stats.v1_skipped += 1;
                } else if !check_invalid(fl.dir, rest, None, &table, &mut stats) {
                    check_text(rest, &mut stats);
                }
            }
            "binary" => {
                let rest = fl.rest.trim_start();
                let (declared, hex_part) = rest
                    .strip_prefix('(')
                    .and_then(|r| r.split_once(" bytes)"))
                    .expect("binary (N bytes)");
                let declared: usize = declared.parse().expect("byte count");
                let hex_part = hex_part.trim();
                let bytes = hex(hex_part);
                assert_eq!(bytes.len(), declared, "declared byte count");
                let annotation = next_annotation().expect("binary frame without ↳ line");
                if !check_invalid(fl.dir, hex_part, Some(annotation), &table, &mut stats) {
                    check_binary(fl.dir, &bytes, &parse_annotation(annotation), &mut stats);
                }
            }
            "push" | "reply" | "bcast" => {
                let (hex_part, ann) = fl.rest.split_once("kind").expect("example with kindN");
                let ann = parse_annotation(&format!("kind{ann}"));
                let expected_kind = match fl.word {
                    "push" => 0,
                    "reply" => 1,
                    _ => 2,
                };
                assert_eq!(ann.kind, Some(expected_kind), "example kind");
                check_binary(fl.dir, &hex(hex_part), &ann, &mut stats);
            }
            "close" | "ping" | "pong" => assert!(!has_marker),
            other => panic!("unknown frame line kind {other:?}"),
        });
        if let Err(e) = std::panic::catch_unwind(run) {
            eprintln!("while checking {at}");
            std::panic::resume_unwind(e);
        }
    }
    assert!(!in_code, "{name}: unterminated code block");
    println!("{name}: {stats:?}");
    stats
}

#[test]
fn phoenix_transcripts_decode_and_reencode() {
    let stats = check_transcript(MAIN_TRANSCRIPTS);
    let table = invalid_frames();

    // Every frame line present was checked; only the four V1 lines were skipped.
    assert!(stats.present >= 170, "too few frame lines found: {stats:?}");
    assert_eq!(stats.v1_skipped, 4, "{stats:?}");
    assert!(
        stats.checked() >= stats.present - stats.v1_skipped,
        "{stats:?}"
    );
    assert_eq!(
        stats.checked() + stats.v1_skipped,
        stats.present,
        "{stats:?}"
    );

    // Both binary directions and all three server kinds, plus the four layout examples.
    assert!(stats.binary >= 17, "{stats:?}");
    assert!(stats.client_reencoded >= 8, "{stats:?}");
    assert!(stats.server_reencoded >= 9, "{stats:?}");
    assert!(stats.text >= 140, "{stats:?}");
    assert!(stats.replies >= 70, "{stats:?}");

    // Each deliberately invalid frame was found and rejected; the 6-element frame decoded.
    for (inv, seen) in table.iter().zip(&stats.invalid_seen) {
        assert!(
            *seen >= 1,
            "invalid frame {:?} not found in the transcript",
            inv.frame
        );
    }
    assert_eq!(stats.invalid, table.len(), "{stats:?}");
    assert_eq!(stats.extra_elements, 1, "{stats:?}");
}

#[test]
fn presence_transcripts_decode_and_reencode() {
    let stats = check_transcript(PRESENCE_TRANSCRIPTS);
    assert!(stats.present >= 60, "too few frame lines found: {stats:?}");
    assert_eq!(stats.checked(), stats.present, "{stats:?}");
    assert_eq!(stats.text, stats.present, "{stats:?}");
    assert_eq!(stats.invalid, 0, "{stats:?}");
}

#[test]
fn annotation_parser_reads_both_formats() {
    let a = parse_annotation(
        r#"kind=0(push) sizes[join_ref=0,ref=1,topic=6,event=1] join_ref="" ref="8" topic="echo:b" event="x" payload=<41>"#,
    );
    assert_eq!(a.kind, Some(0));
    assert_eq!(a.kind_name.as_deref(), Some("push"));
    assert_eq!(a.sizes.as_ref().map(Vec::len), Some(4));
    assert_eq!(a.field("join_ref"), "");
    assert_eq!(a.field("topic"), "echo:b");
    assert_eq!(a.payload.as_deref(), Some(&[0x41][..]));
    let b = parse_annotation(r#"kind2 topic="a \"q\"" event="e" payload=be ef"#);
    assert_eq!(b.kind, Some(2));
    assert_eq!(b.field("topic"), "a \"q\"");
    assert_eq!(b.payload.as_deref(), Some(&[0xbe, 0xef][..]));
    let c = parse_annotation("kind=1(reply) payload=<>");
    assert_eq!(c.payload.as_deref(), Some(&[][..]));
}
