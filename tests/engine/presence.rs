//! Presence lists against the test server: the transcript's steps seen from alice's socket,
//! and a rejoin that starts over from the next `presence_state`.

use crate::support::*;
use phx::engine::*;
use serde_json::Value;

async fn member(w: &World, token: &str) -> (Socket, Channel, Events) {
    let mut config = w.config();
    config.params = vec![("token".into(), token.into())];
    let (socket, _events) = w.connected_with(config).await;
    let (ch, events) = channel(&socket, "presence:room1");
    (socket, ch, events)
}

/// Waits for the next sync and returns the list then as (key, devices).
async fn synced(ch: &Channel, events: &mut Events) -> Vec<(String, Vec<String>)> {
    events.until(|e| matches!(e, Ev::PresenceSync)).await;
    devices(ch)
}

fn devices(ch: &Channel) -> Vec<(String, Vec<String>)> {
    ch.presence()
        .iter()
        .map(|(k, m)| {
            let metas: Vec<Value> = serde_json::from_str(m).unwrap();
            let d = metas
                .iter()
                .map(|m| m["device"].as_str().unwrap().to_owned());
            (k.to_owned(), d.collect())
        })
        .collect()
}

fn list(entries: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
    entries
        .iter()
        .map(|(k, d)| (k.to_string(), d.iter().map(|s| s.to_string()).collect()))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn the_transcript_steps_from_alices_socket() {
    let w = World::new().await;
    // (a) alice joins: her own diff is held back until the state, then deduplicated.
    let (a_socket, a, mut ae) = member(&w, "alice").await;
    join_ok(&a).await;
    assert_eq!(synced(&a, &mut ae).await, list(&[("alice", &["default"])]));
    let changes: Vec<Ev> = ae.drain();
    assert!(
        !changes.iter().any(|e| matches!(e, Ev::PresenceSync)),
        "one sync for the state and the diff held back: {changes:?}"
    );
    assert_eq!(a_socket.stats().await.held_presence_diffs, 0);

    // (b) bob joins with device laptop.
    let (_b, b, mut be) = member(&w, "bob").await;
    let (cb, rx) = op();
    b.join(json(r#"{"device":"laptop"}"#), None, cb).unwrap();
    assert_eq!(done(rx).await.status, Status::Ok);
    let want = list(&[("alice", &["default"]), ("bob", &["laptop"])]);
    assert_eq!(synced(&b, &mut be).await, want);
    let (_, ev) = ae.until(|e| matches!(e, Ev::Presence(_))).await;
    assert!(
        matches!(&ev, Ev::Presence(PresenceChange::Join { key, current: None, .. }) if key == "bob"),
        "{ev:?}"
    );
    assert_eq!(synced(&a, &mut ae).await, want);

    // (c) alice's second socket: a second meta under alice, after the first.
    let (_a2, a2, mut a2e) = member(&w, "alice").await;
    let (cb, rx) = op();
    a2.join(json(r#"{"device":"phone"}"#), None, cb).unwrap();
    assert_eq!(done(rx).await.status, Status::Ok);
    let want = list(&[("alice", &["default", "phone"]), ("bob", &["laptop"])]);
    assert_eq!(synced(&a2, &mut a2e).await, want);
    assert_eq!(synced(&a, &mut ae).await, want);

    // (d) bob updates: one diff, the new meta joins and the old one leaves.
    assert_eq!(
        done(push(&b, "update", r#"{"device":"tablet"}"#))
            .await
            .status,
        Status::Ok
    );
    let (_, join) = ae.until(|e| matches!(e, Ev::Presence(_))).await;
    let (_, leave) = ae.until(|e| matches!(e, Ev::Presence(_))).await;
    assert!(
        matches!(&join, Ev::Presence(PresenceChange::Join { key, current: Some(_), joined })
            if key == "bob" && joined.contains("phx_ref_prev")),
        "{join:?}"
    );
    assert!(
        matches!(&leave, Ev::Presence(PresenceChange::Leave { key, current, left })
            if key == "bob" && current.contains("tablet") && left.contains("laptop")),
        "{leave:?}"
    );
    let want = list(&[("alice", &["default", "phone"]), ("bob", &["tablet"])]);
    assert_eq!(synced(&a, &mut ae).await, want);

    // (f) alice's second socket leaves: only the phone meta leaves; A2 keeps its last list.
    let (cb, rx) = op();
    a2.leave(None, cb).unwrap();
    assert_eq!(done(rx).await.status, Status::Ok);
    let want_a = list(&[("alice", &["default"]), ("bob", &["tablet"])]);
    assert_eq!(synced(&a, &mut ae).await, want_a);
    assert_eq!(devices(&a2), want);

    // (g) alice untracks: her key leaves with its current metas.
    assert_eq!(done(push(&a, "untrack", "{}")).await.status, Status::Ok);
    assert_eq!(synced(&a, &mut ae).await, list(&[("bob", &["tablet"])]));
    let json: Value = serde_json::from_str(a.presence().to_json()).unwrap();
    assert_eq!(json["bob"]["metas"][0]["device"], "tablet");
}

#[tokio::test(start_paused = true)]
async fn a_rejoin_starts_over_from_its_presence_state() {
    let w = World::new().await;
    let (a_socket, a, mut ae) = member(&w, "alice").await;
    join_ok(&a).await;
    synced(&a, &mut ae).await;
    let (b_socket, b, mut be) = member(&w, "bob").await;
    join_ok(&b).await;
    synced(&b, &mut be).await;
    assert_eq!(
        synced(&a, &mut ae).await,
        list(&[("alice", &["default"]), ("bob", &["default"])])
    );
    let before = a.presence().to_json().to_owned();
    // Bob is gone for good while every connection drops and alice rejoins.
    b_socket.shutdown_async().await;
    w.controls().drop_all();
    ae.rejoin().await;
    let after = synced(&a, &mut ae).await;
    assert_eq!(after, list(&[("alice", &["default"])]));
    assert_ne!(
        a.presence().to_json(),
        before,
        "a new phx_ref for alice's new track"
    );
    assert_eq!(a_socket.stats().await.held_presence_diffs, 0);
    let _ = ae.drain();
}

/// The list is kept for a channel without a handler too (read through `Channel::presence`).
#[tokio::test(start_paused = true)]
async fn the_list_is_kept_without_a_handler() {
    let w = World::new().await;
    let (_socket, watched, mut events) = member(&w, "alice").await;
    join_ok(&watched).await;
    synced(&watched, &mut events).await;
    drop(events);
    let mut config = w.config();
    config.params = vec![("token".into(), "bob".into())];
    let (bob_socket, _bob_events) = w.connected_with(config).await;
    let bare = bob_socket.channel("presence:room1");
    join_ok(&bare).await;
    // Polls the observable list (nothing else reports it without a handler).
    for _ in 0..1000 {
        if devices(&bare).len() == 2 {
            break;
        }
        tokio::time::sleep(ms(1)).await;
    }
    let keys: Vec<String> = devices(&bare).into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["alice", "bob"], "bob's list, kept with no handler");
}
