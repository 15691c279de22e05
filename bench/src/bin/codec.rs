//! `phx-bench-codec`: the wire codec alone, in a loop, for instruction counts under callgrind
//! (deterministic, unlike wall time): run it twice with different `--n` and divide the
//! difference in instructions by the difference in `n`.
//!
//! ```text
//! phx-bench-codec --op decode-push|decode-reply|encode|validate --n N
//! ```

use phx::protocol::{decode_text_once, encode_text, is_valid_json};
use phx_bench::*;
use std::hint::black_box;

fn main() {
    let args = match Args::parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("phx-bench-codec: {e}");
            std::process::exit(2);
        }
    };
    let op = args.required("op").unwrap_or("decode-push").to_string();
    let n = args.u64_or("n", 100_000).unwrap_or(100_000);
    let push = format!(r#"[null,null,"{TOPIC}","{BLAST_EVENT}",{{"i":12345}}]"#);
    let reply = format!(
        r#"["1","12345","{TOPIC}","phx_reply",{{"response":{ECHO_PAYLOAD},"status":"ok"}}]"#
    );
    let mut sink = 0usize;
    let mut out = String::with_capacity(256);
    for i in 0..n {
        match op.as_str() {
            "decode-push" => {
                let d = decode_text_once(black_box(&push)).expect("decodes");
                sink += d.frame.topic.len();
            }
            "decode-reply" => {
                let d = decode_text_once(black_box(&reply)).expect("decodes");
                sink += d.reply.map_or(0, |r| r.map_or(0, |r| r.status.len()));
            }
            "encode" => {
                out.clear();
                let r = i.to_string();
                encode_text(&mut out, Some("1"), Some(&r), TOPIC, "echo", ECHO_PAYLOAD);
                sink += black_box(&out).len();
            }
            "validate" => sink += usize::from(is_valid_json(black_box(ECHO_PAYLOAD))),
            other => {
                eprintln!("phx-bench-codec: unknown op {other:?}");
                std::process::exit(2);
            }
        }
    }
    println!("RESULT op={op} n={n} sink={sink}");
}
