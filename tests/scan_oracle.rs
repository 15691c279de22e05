//! The one-pass text scanner against serde_json as the oracle: on every input, `decode_text`,
//! `decode_reply` and `is_valid_json` accept exactly what their serde_json-based references
//! accept, with the same fields. Inputs are valid frames and payloads mutated byte by byte with
//! JSON's own punctuation, so the mutants sit right at the grammar's edges.
//!
//! The case count defaults to 512 per property; set `PROPTEST_CASES` to run more.

use phx::protocol::{
    decode_reply, decode_reply_reference, decode_text, decode_text_once, decode_text_reference,
    is_valid_json, is_valid_json_reference, Payload, PHX_REPLY,
};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 512;
    }
    config
}

/// Pieces of JSON and near-JSON, so random concatenations and mutations hit every branch.
const ATOMS: &[&str] = &[
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    " ",
    "\n",
    "\t",
    "\"",
    "\\",
    "\\u",
    "\\ud800",
    "\\udc00",
    "\\u0061",
    "\\n",
    "\\x",
    "0",
    "1",
    "-",
    ".",
    "e",
    "E",
    "+",
    "01",
    "1.5",
    "-0",
    "1e400",
    "2e",
    "true",
    "tru",
    "false",
    "null",
    "nul",
    "\u{1}",
    "\u{7f}",
    "ü",
    "😀",
    "\"status\"",
    "\"response\"",
    "\"st\\u0061tus\"",
    "\"ok\"",
    "\"phx_reply\"",
    "\"room:1\"",
    "\"1\"",
    "null,",
    "[[[[",
    "]]]]",
    "\u{a0}",
    "\r",
];

fn soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(ATOMS), 0..40).prop_map(|v| v.concat())
}

/// Frames and reply payloads that are valid, to be mutated.
fn seed() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        r#"[null,null,"echo:bench","m",{"i":1}]"#,
        r#"["1","2","room:\"x\"","phx_reply",{"response":{"a":[1,2.5e3,-0]},"status":"ok"},"extra"]"#,
        r#" [ "1" , "2" , "t" , "phx_reply" , { "status" : "error" , "response" : null } ] "#,
        r#"["1","2","t","phx_reply",{"status":1,"status":"ok","response":{}}]"#,
        r#"["1","2","t","phx_reply",{"st\u0061tus":"o\u006b","response":[]}]"#,
        r#"["1","2","t","phx_reply",[{"status":"ok","response":{}}]]"#,
        r#"["\ud83d\ude00",null,"t\n","e",[[[[[]]]]],[{}],{"a":{"b":{"c":"\u00e9"}}}]"#,
        r#"[null,"1","phoenix","heartbeat",{}]"#,
        r#"{"status":"ok","response":{"x":"y"}}"#,
        r#"{"response":true,"status":"ok","response":false}"#,
        r#"[1,"1","t","e",{}]"#,
        r#"["1","1",2,"e",{}]"#,
    ])
    .prop_map(str::to_owned)
}

#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, &'static str),
    Delete(usize),
    Replace(usize, &'static str),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        (any::<usize>(), prop::sample::select(ATOMS)).prop_map(|(i, a)| Edit::Insert(i, a)),
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), prop::sample::select(ATOMS)).prop_map(|(i, a)| Edit::Replace(i, a)),
    ];
    prop::collection::vec(edit, 0..4)
}

fn apply(mut s: String, edits: &[Edit]) -> String {
    let at = |s: &str, i: usize| {
        let mut i = i % (s.len() + 1);
        while !s.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    for e in edits {
        match *e {
            Edit::Insert(i, a) => {
                let i = at(&s, i);
                s.insert_str(i, a);
            }
            Edit::Delete(i) | Edit::Replace(i, _) if s.is_empty() => {
                let _ = i;
            }
            Edit::Delete(i) => {
                let i = at(&s, i).min(s.len() - 1);
                let i = (0..=i).rev().find(|&j| s.is_char_boundary(j)).unwrap_or(0);
                s.remove(i);
            }
            Edit::Replace(i, a) => {
                let i = at(&s, i).min(s.len() - 1);
                let i = (0..=i).rev().find(|&j| s.is_char_boundary(j)).unwrap_or(0);
                s.remove(i);
                s.insert_str(i, a);
            }
        }
    }
    s
}

/// The scanner and the references agree on `text`.
fn agree(text: &str) -> Result<(), TestCaseError> {
    let fast = decode_text(text);
    let reference = decode_text_reference(text);
    prop_assert_eq!(
        fast.is_ok(),
        reference.is_ok(),
        "accept/reject differs on {:?}",
        text
    );
    prop_assert_eq!(&fast, &reference, "on {:?}", text);
    if let Ok(once) = decode_text_once(text) {
        let Payload::Json(payload) = once.frame.payload else {
            panic!("a text frame with a binary payload");
        };
        prop_assert!(is_valid_json_reference(payload));
        let want = (once.frame.event == PHX_REPLY).then(|| decode_reply_reference(payload).ok());
        prop_assert_eq!(&once.reply, &want, "reply of {:?}", text);
    }
    prop_assert_eq!(
        decode_reply(text),
        decode_reply_reference(text),
        "reply {:?}",
        text
    );
    prop_assert_eq!(
        is_valid_json(text),
        is_valid_json_reference(text),
        "json {:?}",
        text
    );
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn scanner_agrees_on_mutated_frames(seed in seed(), edits in edits()) {
        agree(&apply(seed, &edits))?;
    }

    #[test]
    fn scanner_agrees_on_json_soup(text in soup()) {
        agree(&text)?;
        agree(&format!("[null,null,\"t\",\"e\",{text}]"))?;
        agree(&format!("[\"1\",\"2\",\"t\",\"phx_reply\",{{\"status\":\"ok\",\"response\":{text}}}]"))?;
    }
}

#[test]
fn scanner_agrees_on_duplicate_and_escaped_reply_keys() {
    // serde_json's reply decoder fails at the first status it cannot take (not a string, or a
    // string or key it refuses to unescape), whatever follows; otherwise later duplicates win.
    for payload in [
        r#"{"status":"\ud800","status":"ok","response":{}}"#,
        r#"{"status":"ok","status":"\ud800","response":{}}"#,
        r#"{"status":"ok","\ud800":1,"response":{}}"#,
        r#"{"status":null,"status":"ok","response":{}}"#,
        r#"{"status":"ok","response":1,"response":[2]}"#,
        r#"{"st\u0061tus":"\u006fk","r\u0065sponse":{}}"#,
        r#"{"response":{},"status":"o\"k"}"#,
    ] {
        agree(payload).unwrap();
        agree(&format!("[\"1\",\"2\",\"t\",\"phx_reply\",{payload}]")).unwrap();
    }
}

#[test]
fn scanner_agrees_on_numbers_of_every_length_at_every_word_offset() {
    // Digits are read eight at a time, up to the text's very end: every length and tail, at
    // the end of the text, in a flat object, in a nested one and after a shifted prefix.
    for len in 0..20 {
        for head in ["", "-", "0", "-0"] {
            for tail in ["", ".5", "e3", "E+1", "e-", ".", "x", " ", "0", "}"] {
                let n = format!("{head}{}{tail}", "7".repeat(len));
                agree(&n).unwrap();
                for pad in ["", "a", "abc", "abcdefg"] {
                    agree(&format!("{{\"{pad}\":{n}}}")).unwrap();
                    agree(&format!("[null,null,\"t{pad}\",\"e\",{{\"k\":{n}}}]")).unwrap();
                    agree(&format!(
                        "[null,null,\"t\",\"e\",{{\"k\":[{n},{{\"{pad}\":{n}}}]}}]"
                    ))
                    .unwrap();
                }
            }
        }
    }
}

#[test]
fn scanner_agrees_on_deep_nesting_and_long_strings() {
    for depth in [1, 63, 64, 65, 127, 128, 129, 255, 256, 257, 5000] {
        let open = "[".repeat(depth);
        let close = "]".repeat(depth);
        let objects = "{\"a\":".repeat(depth) + "1" + &"}".repeat(depth);
        for payload in [
            format!("{open}{close}"),
            objects.clone(),
            format!("{open}{close}]"),
        ] {
            let frame = format!("[null,null,\"t\",\"e\",{payload}]");
            agree(&frame).unwrap();
            agree(&payload).unwrap();
        }
        let mixed = "[{\"a\":".repeat(depth) + "0" + &"}]".repeat(depth);
        agree(&format!(
            "[\"1\",\"2\",\"t\",\"phx_reply\",{{\"status\":\"ok\",\"response\":{mixed}}}]"
        ))
        .unwrap();
    }
    for len in 0..40 {
        for tail in ["", "\\\"", "\u{1f}", "é", "\\u00e9"] {
            let s = "x".repeat(len) + tail;
            agree(&format!("[null,\"{s}\",\"{s}\",\"e\",\"{s}\"]")).unwrap();
        }
    }
}
