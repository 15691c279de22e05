//! The replay test: every Bandit scenario of `tests/fixtures/phoenix-1.7-transcripts.md` and the
//! raw-frame scenarios of `tests/fixtures/phoenix-1.7-presence-transcripts.md` are parsed, their
//! client frames are sent to the test server (in memory, on a paused clock, at the transcript's
//! times) and the server must answer with exactly the transcript's frames, in order, with the
//! same close codes and HTTP statuses. Presence refs and times are compared modulo renaming.

mod common;

use common::*;
use futures_util::SinkExt;
use phx_testserver::{Config, TestServer};
use std::collections::HashMap;
use std::time::Duration;
use tokio::io::DuplexStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

fn fixture(name: &str) -> String {
    let path = format!("{}/../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[derive(Debug, Clone)]
enum Action {
    Connect {
        query: String,
        headers: Vec<(String, String)>,
    },
    HttpStatus {
        status: u16,
        body: Option<String>,
    },
    PlainGet {
        target: String,
    },
    SendText(String),
    SendRaw(Vec<u8>),
    SendBinary(Vec<u8>),
    SendPing(Vec<u8>),
    SendClose(u16),
    ExpectText(String),
    ExpectBinary(Vec<u8>),
    ExpectPong(Vec<u8>),
    ExpectClosed(u16),
    Quiet,
    Terminate,
    JoinMany(u32, u32),
}

#[derive(Debug, Clone)]
struct Step {
    ms: u64,
    label: String,
    action: Action,
}

#[derive(Debug)]
struct Scenario {
    title: String,
    steps: Vec<Step>,
}

/// `...(HEX)` or `... (N bytes) HEX`
fn hex_after(s: &str, marker: &str) -> Vec<u8> {
    let rest = &s[s.find(marker).expect("marker") + marker.len()..];
    from_hex(rest.trim().trim_start_matches('(').trim_end_matches(')'))
}

fn parse_step(line: &str) -> Option<Step> {
    let line = line.trim_end();
    let rest = line.strip_prefix('+')?.trim_start();
    let (ms, rest) = rest.split_once("ms")?;
    let ms: u64 = ms.trim().parse().ok()?;
    let mut rest = rest.trim_start();
    let mut label = String::new();
    if let Some(r) = rest.strip_prefix('[') {
        let end = r.find(']')?;
        label = r[..end].to_string();
        rest = r[end + 1..].trim_start();
    }
    let action = if let Some(r) = rest.strip_prefix("-- GET ") {
        let target = r.split(' ').next().unwrap();
        let query = target
            .split_once('?')
            .map(|(_, q)| q)
            .unwrap_or("")
            .to_string();
        let headers = match label.as_str() {
            "Sec-WebSocket-Protocol: phoenix" => {
                vec![("sec-websocket-protocol".into(), "phoenix".into())]
            }
            "permessage-deflate offered" => vec![(
                "sec-websocket-extensions".into(),
                "permessage-deflate; client_max_window_bits".into(),
            )],
            _ => vec![],
        };
        Action::Connect { query, headers }
    } else if let Some(r) = rest.strip_prefix("-- HTTP ") {
        let status: u16 = r[..3].parse().ok()?;
        let body = r.find("body=\"").map(|i| {
            let b = &r[i + 6..r.len() - 1];
            b.replace("\\\"", "\"").replace("\\\\", "\\")
        });
        Action::HttpStatus { status, body }
    } else if let Some(r) = rest.strip_prefix("-- plain HTTP GET (no upgrade headers) to ") {
        Action::PlainGet {
            target: r.trim_end_matches(':').to_string(),
        }
    } else if rest.starts_with("C→S text (raw bytes)") {
        Action::SendRaw(hex_after(rest, "(raw bytes)"))
    } else if let Some(r) = rest.strip_prefix("C→S text") {
        Action::SendText(r.trim_start().to_string())
    } else if rest.starts_with("C→S binary") {
        Action::SendBinary(hex_after(rest, "bytes)"))
    } else if rest.starts_with("C→S ping") {
        Action::SendPing(hex_after(rest, "ping"))
    } else if let Some(r) = rest.strip_prefix("C→S close ") {
        Action::SendClose(r.trim().parse().ok()?)
    } else if let Some(r) = rest.strip_prefix("S→C text") {
        Action::ExpectText(r.trim_start().to_string())
    } else if rest.starts_with("S→C binary") {
        Action::ExpectBinary(hex_after(rest, "bytes)"))
    } else if rest.starts_with("S→C pong") {
        Action::ExpectPong(hex_after(rest, "pong"))
    } else if let Some(r) = rest.strip_prefix("-- closed: close code ") {
        Action::ExpectClosed(r.split_whitespace().next()?.parse().ok()?)
    } else if rest.starts_with("-- client destroys the TCP socket") {
        Action::Terminate
    } else if rest.starts_with("-- still open")
        || rest.starts_with("(waited")
        || rest.contains("ms quiet")
    {
        Action::Quiet
    } else if rest.starts_with("... joins ") {
        let range = rest.trim_start_matches("... joins ").split(' ').next()?;
        let (a, b) = range.split_once("..")?;
        Action::JoinMany(a.parse().ok()?, b.parse().ok()?)
    } else {
        // annotations: `↳` decode lines, negotiated extensions (checked on the 101), notes
        return None;
    };
    Some(Step { ms, label, action })
}

/// The `### ` sections (with their code blocks) between `## <start>` and the next `## `.
fn sections(doc: &str, start: &str) -> Vec<(String, Vec<Step>)> {
    let mut out = Vec::new();
    let mut inside = false;
    let mut title: Option<String> = None;
    let mut in_code = false;
    let mut steps = Vec::new();
    for line in doc.lines() {
        if line.starts_with("## ") {
            if let Some(t) = title.take() {
                out.push((t, std::mem::take(&mut steps)));
            }
            inside = line.starts_with(start);
            continue;
        }
        if !inside {
            continue;
        }
        if let Some(t) = line.strip_prefix("### ") {
            if let Some(prev) = title.replace(t.to_string()) {
                out.push((prev, std::mem::take(&mut steps)));
            }
            continue;
        }
        if line.starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            if let Some(s) = parse_step(line) {
                steps.push(s);
            }
        }
    }
    if let Some(t) = title {
        out.push((t, steps));
    }
    out
}

enum Sock {
    /// Upgrade requested, response not yet checked.
    Http {
        resp: Response,
        io: Option<DuplexStream>,
    },
    Ws(WebSocketStream<DuplexStream>),
    Gone,
}

struct Replay<'a> {
    server: &'a TestServer,
    title: String,
    start: Instant,
    socks: HashMap<String, Sock>,
    presence: bool,
    /// server phx_ref → transcript phx_ref, and back
    refs: HashMap<String, String>,
    refs_back: HashMap<String, String>,
}

fn phx_refs(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    for key in ["\"phx_ref\":\"", "\"phx_ref_prev\":\""] {
        let mut from = 0;
        while let Some(i) = s[from..].find(key) {
            let at = from + i + key.len();
            out.push((at, s[at..at + 16].to_string()));
            from = at;
        }
    }
    out.sort();
    out.into_iter().map(|(_, r)| r).collect()
}

fn zero_online_at(s: &str) -> String {
    let key = "\"online_at\":";
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find(key) {
        out.push_str(&rest[..i + key.len()]);
        rest = &rest[i + key.len()..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        assert!(digits > 0, "online_at is an integer in {s}");
        out.push('0');
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

impl Replay<'_> {
    fn ctx(&self, step: &Step) -> String {
        format!(
            "[{}] +{}ms [{}] {:?}",
            self.title, step.ms, step.label, step.action
        )
    }

    fn ws(&mut self, label: &str) -> &mut WebSocketStream<DuplexStream> {
        match self.socks.get_mut(label) {
            Some(Sock::Ws(ws)) => ws,
            _ => panic!("[{}] socket [{label}] is not an open WebSocket", self.title),
        }
    }

    /// The transcript's frame, with the server's presence refs renamed to the transcript's.
    fn normalize(&mut self, expected: &str, actual: &str, ctx: &str) -> (String, String) {
        if !self.presence {
            return (expected.to_string(), actual.to_string());
        }
        let (exp_refs, act_refs) = (phx_refs(expected), phx_refs(actual));
        assert_eq!(
            exp_refs.len(),
            act_refs.len(),
            "{ctx}: phx_refs in\n  expected {expected}\n  actual   {actual}"
        );
        let mut actual = actual.to_string();
        for (e, a) in exp_refs.iter().zip(&act_refs) {
            assert!(
                a.len() == 16
                    && a.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{ctx}: phx_ref {a:?} is not 16 URL-safe base64 chars"
            );
            let mapped = self
                .refs
                .entry(a.clone())
                .or_insert_with(|| e.clone())
                .clone();
            assert_eq!(
                &mapped, e,
                "{ctx}: server ref {a} stands for {mapped}, the transcript has {e}"
            );
            let back = self
                .refs_back
                .entry(e.clone())
                .or_insert_with(|| a.clone())
                .clone();
            assert_eq!(
                &back, a,
                "{ctx}: transcript ref {e} was {back}, now {a} (refs must be unique)"
            );
            actual = actual.replace(&format!("\"{a}\""), &format!("\"{e}\""));
        }
        (zero_online_at(expected), zero_online_at(&actual))
    }

    fn check_time(&self, step: &Step) {
        // Timers of the server (slow join, idle timeout) show in the long scenarios.
        if step.ms >= 1000 {
            let at = self.start.elapsed().as_millis() as i64;
            assert!(
                (at - step.ms as i64).abs() <= 100,
                "{}: arrived at +{at}ms, the transcript says +{}ms",
                self.ctx(step),
                step.ms
            );
        }
    }

    async fn run(&mut self, steps: &[Step]) {
        for step in steps {
            let ctx = self.ctx(step);
            let at = self.start + Duration::from_millis(step.ms);
            match &step.action {
                Action::Connect { query, headers } => {
                    tokio::time::sleep_until(at).await;
                    let (mut io, _) = self.server.connect_in_memory();
                    let target = if query.is_empty() {
                        "/socket/websocket".to_string()
                    } else {
                        format!("/socket/websocket?{query}")
                    };
                    let extra: Vec<(&str, &str)> = headers
                        .iter()
                        .map(|(a, b)| (a.as_str(), b.as_str()))
                        .collect();
                    let resp = request(&mut io, "GET", &target, &upgrade_headers(&extra)).await;
                    self.socks
                        .insert(step.label.clone(), Sock::Http { resp, io: Some(io) });
                }
                Action::PlainGet { target } => {
                    tokio::time::sleep_until(at).await;
                    let (mut io, _) = self.server.connect_in_memory();
                    let resp =
                        request(&mut io, "GET", target, &[("connection", "keep-alive")]).await;
                    self.socks
                        .insert(step.label.clone(), Sock::Http { resp, io: None });
                }
                Action::HttpStatus { status, body } => {
                    let Some(Sock::Http { resp, io }) = self.socks.remove(&step.label) else {
                        panic!("{ctx}: no request pending");
                    };
                    assert_eq!(resp.status, *status, "{ctx}: {resp:?}");
                    if let Some(body) = body {
                        assert_eq!(String::from_utf8_lossy(&resp.body), *body, "{ctx}");
                    }
                    if *status == 101 {
                        assert_switching_protocols(&resp);
                        let io = io.expect("upgrade stream");
                        let ws =
                            WebSocketStream::from_partially_read(io, resp.rest, Role::Client, None)
                                .await;
                        self.socks.insert(step.label.clone(), Sock::Ws(ws));
                    } else {
                        assert_eq!(
                            resp.header("content-length"),
                            Some(body.as_deref().map_or(0, str::len).to_string().as_str())
                        );
                        assert_eq!(
                            resp.header("cache-control"),
                            Some("max-age=0, private, must-revalidate")
                        );
                        self.socks.insert(step.label.clone(), Sock::Gone);
                    }
                }
                Action::SendText(t) => {
                    tokio::time::sleep_until(at).await;
                    self.ws(&step.label)
                        .send(Message::text(t.clone()))
                        .await
                        .expect("send");
                }
                Action::SendRaw(bytes) => {
                    tokio::time::sleep_until(at).await;
                    let frame = Frame::message(bytes.clone(), OpCode::Data(Data::Text), true);
                    self.ws(&step.label)
                        .send(Message::Frame(frame))
                        .await
                        .expect("send");
                }
                Action::SendBinary(bytes) => {
                    tokio::time::sleep_until(at).await;
                    self.ws(&step.label)
                        .send(Message::binary(bytes.clone()))
                        .await
                        .expect("send");
                }
                Action::SendPing(bytes) => {
                    tokio::time::sleep_until(at).await;
                    self.ws(&step.label)
                        .send(Message::Ping(bytes.clone().into()))
                        .await
                        .expect("send");
                }
                Action::SendClose(code) => {
                    tokio::time::sleep_until(at).await;
                    close(self.ws(&step.label), *code).await;
                }
                Action::ExpectText(expected) => {
                    let got = next_within(self.ws(&step.label), 120).await;
                    let Some(Message::Text(t)) = got else {
                        panic!("{ctx}: expected a text frame, got {got:?}");
                    };
                    let (e, a) = self.normalize(expected, t.as_str(), &ctx);
                    assert_eq!(a, e, "{ctx}");
                    self.check_time(step);
                }
                Action::ExpectBinary(expected) => {
                    let got = next_within(self.ws(&step.label), 120).await;
                    let Some(Message::Binary(b)) = got else {
                        panic!("{ctx}: expected a binary frame, got {got:?}");
                    };
                    assert_eq!(b.as_ref(), expected.as_slice(), "{ctx}");
                    self.check_time(step);
                }
                Action::ExpectPong(expected) => {
                    let got = next_within(self.ws(&step.label), 120).await;
                    let Some(Message::Pong(b)) = got else {
                        panic!("{ctx}: expected a pong, got {got:?}");
                    };
                    assert_eq!(b.as_ref(), expected.as_slice(), "{ctx}");
                    self.check_time(step);
                }
                Action::ExpectClosed(1006) => {
                    // the client's own abort (presence step e): nothing to receive
                    assert!(
                        matches!(self.socks.get(&step.label), Some(Sock::Gone)),
                        "{ctx}"
                    );
                }
                Action::ExpectClosed(code) => {
                    let presence = self.presence;
                    let ws = self.ws(&step.label);
                    let got = loop {
                        let got = next_within(ws, 120).await;
                        // Leave diffs of sockets closing at the same moment race the close.
                        if presence {
                            if let Some(Message::Text(t)) = &got {
                                if t.as_str().contains("\"presence_diff\",{\"joins\":{},") {
                                    continue;
                                }
                            }
                        }
                        break got;
                    };
                    match got {
                        Some(Message::Close(Some(f))) => {
                            assert_eq!(u16::from(f.code), *code, "{ctx}")
                        }
                        other => panic!("{ctx}: expected close {code}, got {other:?}"),
                    }
                    self.check_time(step);
                    // the stream ends after the closing handshake
                    let end = next_within(self.ws(&step.label), 120).await;
                    assert!(end.is_none(), "{ctx}: frame after the close: {end:?}");
                    self.socks.insert(step.label.clone(), Sock::Gone);
                }
                Action::Quiet => {
                    tokio::time::sleep_until(at).await;
                    for (label, s) in self.socks.iter_mut() {
                        if let Sock::Ws(ws) = s {
                            assert_nothing_pending(ws, &format!("{ctx} socket [{label}]"));
                        }
                    }
                }
                Action::Terminate => {
                    tokio::time::sleep_until(at).await;
                    self.socks.insert(step.label.clone(), Sock::Gone);
                }
                Action::JoinMany(a, b) => {
                    let ws = self.ws(&step.label);
                    for i in *a..=*b {
                        send_text(ws, &format!(r#"["{i}","{i}","room:m{i}","phx_join",{{}}]"#))
                            .await;
                        let reply = next_text(ws).await;
                        let want = format!(
                            r#"["{i}","{i}","room:m{i}","phx_reply",{{"response":{{}},"status":"ok"}}]"#
                        );
                        assert_eq!(reply, want, "{ctx}");
                    }
                }
            }
        }
        for (label, s) in self.socks.iter_mut() {
            if let Sock::Ws(ws) = s {
                assert_nothing_pending(ws, &format!("[{}] end, socket [{label}]", self.title));
            }
        }
    }
}

async fn replay(title: &str, steps: &[Step], presence: bool) {
    let server = TestServer::start(Config::default()).await.expect("server");
    let mut r = Replay {
        server: &server,
        title: title.to_string(),
        start: Instant::now(),
        socks: HashMap::new(),
        presence,
        refs: HashMap::new(),
        refs_back: HashMap::new(),
    };
    r.run(steps).await;
}

fn v2_scenarios() -> Vec<Scenario> {
    sections(
        &fixture("phoenix-1.7-transcripts.md"),
        "## Scenarios (Bandit",
    )
    .into_iter()
    .map(|(title, steps)| Scenario { title, steps })
    .collect()
}

/// Every Bandit scenario; the titles are listed so a scenario that stops parsing is noticed.
#[tokio::test(start_paused = true)]
async fn every_v2_scenario_replays_byte_exact() {
    let scenarios = v2_scenarios();
    let titles: Vec<&str> = scenarios.iter().map(|s| s.title.as_str()).collect();
    assert_eq!(
        titles,
        [
            "connect + heartbeat",
            "join ok",
            "join error",
            "join crash",
            "join slow",
            "pushes: echo / fail / noreply / push_me / flood / new_msg",
            "push crash",
            "push stop / stop_reply",
            "push to a topic never joined",
            "duplicate join (same topic, same socket)",
            "join slow, then leave and rejoin pipelined behind it (what a client sends when its join times out)",
            "leave (phx_leave)",
            "server-forced disconnect",
            "connect rejected / bad upgrade requests",
            "binary frames",
            "binary push to a topic never joined",
            "invalid text frame: not JSON",
            "invalid text frame: JSON object instead of array",
            "invalid text frame: JSON array too short",
            "invalid text frame: JSON array, 6 elements",
            "invalid text frame: topic is not a string",
            "invalid text frame: not UTF-8",
            "invalid binary frame: unknown kind byte 5",
            "invalid binary frame: kind 0 with truncated header",
            "invalid binary frame: kind 0 with sizes longer than the frame",
            "max channels per socket (default 100)",
            "idle timeout (no client data at all)",
            "idle with only websocket ping frames every 20s (no phoenix heartbeat)",
            "idle with phoenix heartbeat every 30s (client default)",
        ]
    );
    for s in &scenarios {
        let expected_frames = s
            .steps
            .iter()
            .filter(|st| {
                matches!(
                    st.action,
                    Action::ExpectText(_)
                        | Action::ExpectBinary(_)
                        | Action::ExpectPong(_)
                        | Action::ExpectClosed(_)
                        | Action::HttpStatus { .. }
                )
            })
            .count();
        assert!(expected_frames > 0, "[{}] parsed no server output", s.title);
        replay(&s.title, &s.steps, false).await;
    }
}

/// The connect-rejected scenario's HTTP answers, checked apart so a failure names them.
#[tokio::test(start_paused = true)]
async fn rejected_connects_answer_like_phoenix() {
    let s = v2_scenarios()
        .into_iter()
        .find(|s| s.title.starts_with("connect rejected"))
        .expect("scenario");
    let statuses: Vec<u16> = s
        .steps
        .iter()
        .filter_map(|st| match st.action {
            Action::HttpStatus { status, .. } => Some(status),
            _ => None,
        })
        .collect();
    assert_eq!(statuses, [403, 403, 403, 101, 101, 101, 400]);
    replay(&s.title, &s.steps, false).await;
}

/// The leave the client sends when its join timed out, with the rejoin right behind it: both
/// wait while `room:slow` joins, and the rejoin kills the channel before it answers the leave.
#[tokio::test(start_paused = true)]
async fn a_rejoin_pipelined_behind_a_leave_leaves_it_unanswered() {
    let s = v2_scenarios()
        .into_iter()
        .find(|s| s.title.starts_with("join slow, then leave and rejoin"))
        .expect("scenario");
    let answers: Vec<&str> = s
        .steps
        .iter()
        .filter_map(|st| match &st.action {
            Action::ExpectText(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        answers,
        [
            r#"["1","1","room:slow","phx_reply",{"response":{},"status":"ok"}]"#,
            r#"["3","3","room:slow","phx_reply",{"response":{},"status":"ok"}]"#,
            r#"["1","1","room:slow","phx_close",{}]"#,
        ],
        "no reply for the leave (ref 2)"
    );
    replay(&s.title, &s.steps, false).await;
}

/// The presence session (steps a–h: one clock, six sockets) and the silent-peer scenario.
#[tokio::test(start_paused = true)]
async fn presence_transcripts_replay() {
    let doc = fixture("phoenix-1.7-presence-transcripts.md");
    let secs = sections(&doc, "## Scenarios (Bandit");
    let mut session = Vec::new();
    let mut silent = None;
    for (title, steps) in secs {
        if title.starts_with('(') {
            session.extend(steps);
        } else if title.starts_with("silent peer") {
            silent = Some(steps);
        }
    }
    assert!(session.len() > 50, "steps a-h parsed: {}", session.len());
    replay("presence a-h", &session, true).await;

    // The silent peer's own frames are not in the transcript: it connects and joins just
    // before its join diff reaches A, then never sends again.
    let mut steps = silent.expect("silent peer scenario");
    let i = steps
        .iter()
        .position(|s| matches!(&s.action, Action::ExpectText(t) if t.contains("sleepy")))
        .expect("sleepy's join diff");
    let ms = steps[i].ms;
    let step = |action| Step {
        ms,
        label: "S".into(),
        action,
    };
    steps.splice(
        i..i,
        [
            step(Action::Connect {
                query: "vsn=2.0.0&token=sleepy".into(),
                headers: vec![],
            }),
            step(Action::HttpStatus {
                status: 101,
                body: None,
            }),
            step(Action::SendText(
                r#"["1","1","presence:stall","phx_join",{}]"#.into(),
            )),
        ],
    );
    // S's unread frames are its own join reply/diff/state; it is dropped unread at the end.
    let mut r_steps = steps;
    r_steps.push(Step {
        ms: r_steps.last().unwrap().ms,
        label: "S".into(),
        action: Action::Terminate,
    });
    replay("presence silent peer", &r_steps, true).await;
}

#[test]
fn the_parser_reads_every_frame_line() {
    // Every `C→S`/`S→C` line of the V2 scenarios turns into a step.
    let doc = fixture("phoenix-1.7-transcripts.md");
    let scenarios = sections(&doc, "## Scenarios (Bandit");
    let parsed: usize = scenarios
        .iter()
        .map(|(_, steps)| {
            steps
                .iter()
                .filter(|s| {
                    matches!(
                        s.action,
                        Action::SendText(_)
                            | Action::SendRaw(_)
                            | Action::SendBinary(_)
                            | Action::SendPing(_)
                            | Action::SendClose(_)
                            | Action::ExpectText(_)
                            | Action::ExpectBinary(_)
                            | Action::ExpectPong(_)
                    )
                })
                .count()
        })
        .sum();
    let start = doc.find("## Scenarios (Bandit").unwrap();
    let end = doc.find("## Cowboy").unwrap();
    let raw = doc[start..end]
        .lines()
        .filter(|l| l.contains("C→S ") || l.contains("S→C "))
        .count();
    assert_eq!(parsed, raw);
}
