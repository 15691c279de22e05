//! `presence:*` beyond the transcripts: key order, unique refs, leave diffs when a channel
//! crashes, is replaced by a duplicate join, or its socket drops; chained `phx_ref_prev`.

mod common;

use common::*;
use phx_testserver::{Config, TestServer};
use serde_json::{json, Value};
use tokio::io::DuplexStream;
use tokio_tungstenite::WebSocketStream;

type Ws = WebSocketStream<DuplexStream>;

async fn connect(server: &TestServer, token: &str) -> Ws {
    let (io, _) = server.connect_in_memory();
    upgrade(io, &format!("vsn=2.0.0&token={token}")).await
}

fn parse(frame: &str) -> Value {
    serde_json::from_str(frame).unwrap_or_else(|e| panic!("{frame}: {e}"))
}

/// Joins `topic` and returns (own join diff, presence_state) after checking the join reply.
async fn join(ws: &mut Ws, join_ref: &str, topic: &str, payload: &str) -> (Value, String) {
    let reply = roundtrip(
        ws,
        &format!(r#"["{join_ref}","{join_ref}","{topic}","phx_join",{payload}]"#),
    )
    .await;
    assert_eq!(
        reply,
        format!(
            r#"["{join_ref}","{join_ref}","{topic}","phx_reply",{{"response":{{}},"status":"ok"}}]"#
        )
    );
    let diff = parse(&next_text(ws).await);
    assert_eq!(diff[3], "presence_diff", "{diff}");
    let state = next_text(ws).await;
    assert!(
        state.starts_with(&format!(
            r#"["{join_ref}",null,"{topic}","presence_state","#
        )),
        "{state}"
    );
    (diff, state)
}

fn only_meta(diff: &Value, side: &str, key: &str) -> Value {
    let metas = diff[4][side][key]["metas"]
        .as_array()
        .unwrap_or_else(|| panic!("{side}.{key} in {diff}"));
    assert_eq!(metas.len(), 1, "{diff}");
    metas[0].clone()
}

fn assert_ref(r: &Value) {
    let r = r.as_str().expect("phx_ref is a string");
    assert!(
        r.len() == 16
            && r.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{r:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn state_keys_are_sorted_bytewise_and_refs_unique() {
    let server = TestServer::start(Config::default()).await.unwrap();
    let keys = ["k", "b", "z", "a", "10", "9", "B", "_", "é", "aa", "yy"];
    let mut sockets = Vec::new();
    let mut refs = std::collections::HashSet::new();
    for key in keys {
        let mut ws = connect(&server, &urlencode(key)).await;
        let (diff, _) = join(&mut ws, "1", "presence:few", "{}").await;
        let meta = only_meta(&diff, "joins", key);
        assert_ref(&meta["phx_ref"]);
        assert!(
            refs.insert(meta["phx_ref"].as_str().unwrap().to_string()),
            "unique refs"
        );
        assert_eq!(meta["device"], "default");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(meta["online_at"].as_u64().unwrap().abs_diff(now) < 5);
        sockets.push(ws);
    }
    let mut last = connect(&server, "zz").await;
    let (_, state) = join(&mut last, "7", "presence:few", r#"{"device":"phone"}"#).await;
    let wire_order: Vec<usize> = [
        "10", "9", "B", "_", "a", "aa", "b", "k", "yy", "z", "zz", "é",
    ]
    .iter()
    .map(|k| {
        state
            .find(&format!(r#""{k}":{{"metas""#))
            .unwrap_or_else(|| panic!("{k} in {state}"))
    })
    .collect();
    assert!(
        wire_order.windows(2).all(|w| w[0] < w[1]),
        "keys sorted bytewise: {state}"
    );
    // every earlier socket got exactly the same diff bytes for the last join
    let mut diffs = Vec::new();
    for (i, ws) in sockets.iter_mut().enumerate() {
        // first the diffs of the sockets that joined after this one, in join order
        for later in &keys[i + 1..] {
            let d = parse(&next_text(ws).await);
            assert!(d[4]["joins"][later].is_object(), "{d}");
        }
        diffs.push(next_text(ws).await);
    }
    assert!(diffs.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(
        only_meta(&parse(&diffs[0]), "joins", "zz")["device"],
        "phone"
    );
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn leave_diffs_for_crash_duplicate_join_and_dropped_socket() {
    let server = TestServer::start(Config::default()).await.unwrap();
    let mut a = connect(&server, "ann").await;
    join(&mut a, "1", "presence:x", "{}").await;
    let mut b = connect(&server, "ben").await;
    let (diff, _) = join(&mut b, "1", "presence:x", r#"{"device":"desk"}"#).await;
    let ben1 = only_meta(&diff, "joins", "ben");
    assert_eq!(parse(&next_text(&mut a).await), diff, "A sees ben join");

    // an event the channel has no clause for crashes it: phx_error, and ben leaves for A
    send_text(&mut b, r#"["1","2","presence:x","boom",{}]"#).await;
    assert_eq!(
        next_text(&mut b).await,
        r#"["1","1","presence:x","phx_error",{}]"#
    );
    let left = parse(&next_text(&mut a).await);
    assert_eq!(
        left[4],
        json!({"joins": {}, "leaves": {"ben": {"metas": [ben1]}}})
    );

    // rejoin, then a duplicate join replaces the channel (and the presence)
    let (diff, _) = join(&mut b, "3", "presence:x", r#"{"device":"desk"}"#).await;
    let ben3 = only_meta(&diff, "joins", "ben");
    assert_eq!(parse(&next_text(&mut a).await), diff);
    send_text(
        &mut b,
        r#"["4","4","presence:x","phx_join",{"device":"tablet"}]"#,
    )
    .await;
    assert_eq!(
        next_text(&mut b).await,
        r#"["4","4","presence:x","phx_reply",{"response":{},"status":"ok"}]"#
    );
    assert_eq!(
        next_text(&mut b).await,
        r#"["3","3","presence:x","phx_close",{}]"#
    );
    let diff4 = parse(&next_text(&mut b).await);
    let ben4 = only_meta(&diff4, "joins", "ben");
    assert_eq!(ben4["device"], "tablet");
    let state = parse(&next_text(&mut b).await);
    assert_eq!(
        state[4]["ben"]["metas"],
        json!([ben4]),
        "only the new meta is listed"
    );
    assert_eq!(
        parse(&next_text(&mut a).await)[4],
        json!({"joins": {}, "leaves": {"ben": {"metas": [ben3]}}})
    );
    assert_eq!(parse(&next_text(&mut a).await), diff4);

    // updates chain phx_ref_prev; the leave lists the meta as it was
    assert_eq!(
        roundtrip(&mut b, r#"["4","5","presence:x","update",{"device":"tv"}]"#).await,
        r#"["4","5","presence:x","phx_reply",{"response":{},"status":"ok"}]"#
    );
    let d1 = parse(&next_text(&mut b).await);
    assert_eq!(parse(&next_text(&mut a).await), d1);
    let tv = only_meta(&d1, "joins", "ben");
    assert_eq!(tv["phx_ref_prev"], ben4["phx_ref"]);
    assert_eq!(only_meta(&d1, "leaves", "ben"), ben4);
    send_text(
        &mut b,
        r#"["4","6","presence:x","update",{"device":"radio"}]"#,
    )
    .await;
    next_text(&mut b).await;
    let d2 = parse(&next_text(&mut b).await);
    assert_eq!(
        only_meta(&d2, "leaves", "ben"),
        tv,
        "the old meta keeps its phx_ref_prev"
    );
    assert_eq!(
        only_meta(&d2, "joins", "ben")["phx_ref_prev"],
        tv["phx_ref"]
    );
    let radio = only_meta(&parse(&next_text(&mut a).await), "joins", "ben");

    // the socket goes away without a close frame: A gets the leave diff
    drop(b);
    assert_eq!(
        parse(&next_text(&mut a).await)[4],
        json!({"joins": {}, "leaves": {"ben": {"metas": [radio]}}})
    );
    assert_eq!(server.controls().stats().joined["presence:x"], 1);

    // untrack: the leave diff reaches the untracking socket too; the channel stays joined
    send_text(&mut a, r#"["1","9","presence:x","untrack",{}]"#).await;
    next_text(&mut a).await;
    let diff = parse(&next_text(&mut a).await);
    assert!(diff[4]["leaves"]["ann"].is_object(), "{diff}");
    assert_eq!(
        roundtrip(&mut a, r#"["1","10","presence:x","untrack",{}]"#).await,
        r#"["1","10","presence:x","phx_reply",{"response":{},"status":"ok"}]"#,
        "untrack without a presence: ok, no diff"
    );
    assert_eq!(
        roundtrip(&mut a, r#"[null,"11","phoenix","heartbeat",{}]"#).await,
        r#"[null,"11","phoenix","phx_reply",{"response":{},"status":"ok"}]"#
    );
}
