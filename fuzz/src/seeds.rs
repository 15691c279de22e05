//! Seed corpora from the captured Phoenix transcripts (`tests/fixtures/phoenix-1.7-transcripts.md`):
//! every text and binary frame, in either direction, for the codec targets, and for the engine
//! target one seed per server frame and one per scenario (its server frames in order, after
//! joins of the topics it uses).

use crate::engine::{JoinRef, Step, TOPICS};
use std::io;
use std::path::Path;

/// One frame of a transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub from_server: bool,
    pub text: bool,
    pub bytes: Vec<u8>,
    /// The `### ` heading the frame appeared under.
    pub scenario: String,
}

/// Every frame of the transcript document: lines `+<ms> C→S text <frame>`, `+<ms> S→C binary (N
/// bytes) <hex>` and the layout table's `S→C reply <hex>` examples.
pub fn frames(doc: &str) -> Vec<Frame> {
    let mut scenario = String::new();
    let mut out = Vec::new();
    for line in doc.lines() {
        if let Some(h) = line.strip_prefix("### ") {
            scenario = h.trim().to_owned();
            continue;
        }
        let (from_server, rest) = match (line.find("C→S "), line.find("S→C ")) {
            (Some(i), _) => (false, &line[i + "C→S ".len()..]),
            (None, Some(i)) => (true, &line[i + "S→C ".len()..]),
            _ => continue,
        };
        let rest = rest.trim_start();
        let (kind, body) = rest.split_once(' ').unwrap_or((rest, ""));
        let body = body.trim_start();
        let frame = |text, bytes| Frame {
            from_server,
            text,
            bytes,
            scenario: scenario.clone(),
        };
        match kind {
            "text" => out.push(frame(true, body.as_bytes().to_vec())),
            "binary" | "reply" | "push" | "bcast" => {
                // Skip "(N bytes)", then hex pairs up to the first other token.
                let body = body
                    .find(')')
                    .filter(|_| body.starts_with('('))
                    .map_or(body, |i| &body[i + 1..]);
                let bytes: Vec<u8> = body
                    .split_whitespace()
                    .map_while(|t| {
                        (t.len() == 2)
                            .then(|| u8::from_str_radix(t, 16).ok())
                            .flatten()
                    })
                    .collect();
                if !bytes.is_empty() {
                    out.push(frame(false, bytes));
                }
            }
            _ => {}
        }
    }
    out
}

fn encode(steps: &[Step]) -> Vec<u8> {
    let mut out = Vec::new();
    for s in steps {
        s.encode(&mut out);
    }
    out
}

/// Writes `decode_text/`, `scan_oracle/`, `decode_binary/` and `engine/` under `dir`; returns how many files.
pub fn write(doc: &str, dir: &Path) -> io::Result<usize> {
    let frames = frames(doc);
    let mut n = 0;
    let mut put = |target: &str, name: String, bytes: &[u8]| -> io::Result<()> {
        let d = dir.join(target);
        std::fs::create_dir_all(&d)?;
        std::fs::write(d.join(name), bytes)?;
        n += 1;
        Ok(())
    };
    let joins: Vec<Step> = (0..TOPICS.len() as u8)
        .flat_map(|t| {
            [
                Step::Join {
                    topic: t,
                    timeout: 0,
                },
                Step::Reply {
                    back: 0,
                    status: 0,
                    join_ref: JoinRef::Latest,
                    binary: false,
                },
            ]
        })
        .collect();
    let raw = |f: &Frame| Step::Raw {
        text: f.text,
        bytes: f.bytes.clone(),
    };
    let mut scenarios: Vec<(String, Vec<Step>)> = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        let targets: &[&str] = if f.text {
            &["decode_text", "scan_oracle"]
        } else {
            &["decode_binary"]
        };
        for target in targets {
            put(target, format!("transcript-{i:03}"), &f.bytes)?;
        }
        if !f.from_server {
            continue;
        }
        let mut steps = joins.clone();
        steps.extend([raw(f), Step::Advance(3)]);
        put(
            "engine",
            format!("transcript-frame-{i:03}"),
            &encode(&steps),
        )?;
        match scenarios.last_mut() {
            Some((s, steps)) if *s == f.scenario => steps.push(raw(f)),
            _ => scenarios.push((f.scenario.clone(), vec![raw(f)])),
        }
    }
    for (i, (_, frames)) in scenarios.iter().enumerate() {
        let mut steps = joins.clone();
        steps.extend(frames.iter().cloned());
        steps.extend([Step::Advance(5), Step::Leave(0)]);
        put(
            "engine",
            format!("transcript-scenario-{i:02}"),
            &encode(&steps),
        )?;
    }
    // A whole life cycle in structured steps: join, push, message, rejoin after a drop, leave.
    let life = [
        Step::Join {
            topic: 0,
            timeout: 0,
        },
        Step::Reply {
            back: 0,
            status: 0,
            join_ref: JoinRef::Latest,
            binary: false,
        },
        Step::Push {
            topic: 0,
            event: 0,
            timeout: 0,
            binary: false,
        },
        Step::Message {
            topic: 0,
            event: 0,
            join_ref: JoinRef::Latest,
            binary: false,
        },
        Step::Reply {
            back: 0,
            status: 0,
            join_ref: JoinRef::Latest,
            binary: true,
        },
        Step::Drop,
        Step::Advance(3),
        Step::Reply {
            back: 0,
            status: 0,
            join_ref: JoinRef::Latest,
            binary: false,
        },
        Step::Message {
            topic: 0,
            event: 0,
            join_ref: JoinRef::Older,
            binary: false,
        },
        Step::Control {
            topic: 0,
            close: false,
            join_ref: JoinRef::Older,
        },
        Step::Leave(0),
        Step::Reply {
            back: 0,
            status: 0,
            join_ref: JoinRef::Latest,
            binary: false,
        },
    ];
    put("engine", "life-cycle".into(), &encode(&life))?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_round_trip() {
        let steps = vec![
            Step::Push {
                topic: 2,
                event: 1,
                timeout: 3,
                binary: true,
            },
            Step::Raw {
                text: true,
                bytes: b"[1]".to_vec(),
            },
            Step::Reply {
                back: 1,
                status: 2,
                join_ref: JoinRef::Bogus,
                binary: false,
            },
            Step::Refuse(true),
        ];
        assert_eq!(Step::decode(&encode(&steps)), steps);
    }

    #[test]
    fn every_transcript_frame_is_found() {
        let doc = include_str!("../../tests/fixtures/phoenix-1.7-transcripts.md");
        let frames = frames(doc);
        let count = |server, text| {
            frames
                .iter()
                .filter(|f| f.from_server == server && f.text == text)
                .count()
        };
        let lines = |pat: &str| doc.matches(pat).count();
        assert_eq!(count(false, true), lines("C→S text"));
        assert_eq!(count(true, true), lines("S→C text"));
        assert_eq!(count(false, false), lines("C→S binary") + lines("C→S push"));
        assert_eq!(
            count(true, false),
            lines("S→C binary") + lines("S→C reply") + lines("S→C push") + lines("S→C bcast")
        );
    }
}

#[cfg(test)]
mod engine_runs {
    /// The engine seeds run clean through the driver (no fuzzer needed):
    /// `cargo test --manifest-path fuzz/Cargo.toml --lib`.
    #[test]
    fn every_engine_seed_passes() {
        let doc = include_str!("../../tests/fixtures/phoenix-1.7-transcripts.md");
        let dir = std::env::temp_dir().join(format!("phx-fuzz-seeds-{}", std::process::id()));
        super::write(doc, &dir).unwrap();
        let mut seeds: Vec<_> = std::fs::read_dir(dir.join("engine"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        seeds.sort();
        assert!(seeds.len() > 50);
        for seed in seeds {
            let data = std::fs::read(&seed).unwrap();
            crate::engine::run(crate::engine::Step::decode(&data));
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
