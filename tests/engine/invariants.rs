//! Random sequences of operations interleaved with faults, on a paused clock. Whatever happens:
//! every accepted join, push and leave completes exactly once; no message is delivered twice or
//! after its channel's leave; once everything settles the engine's tables are empty.

use crate::support::*;
use phx::engine::*;
use proptest::prelude::*;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const TOPICS: [&str; 3] = ["room:a", "room:b", "room:slow"];

#[derive(Debug, Clone)]
enum Op {
    Channel(usize),
    Join(usize),
    Push(usize, &'static str),
    Leave(usize),
    Connect,
    Disconnect,
    Drop,
    Blackhole(bool),
    Restart,
    Delay(u64),
    Wait(u64),
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let topic = 0..TOPICS.len();
    prop_oneof![
        2 => topic.clone().prop_map(Op::Channel),
        3 => topic.clone().prop_map(Op::Join),
        6 => (topic.clone(), prop_oneof![
            Just("echo"), Just("push_me"), Just("noreply"), Just("crash"), Just("stop"), Just("fail")
        ]).prop_map(|(t, e)| Op::Push(t, e)),
        2 => topic.prop_map(Op::Leave),
        1 => Just(Op::Connect),
        1 => Just(Op::Disconnect),
        1 => Just(Op::Drop),
        1 => any::<bool>().prop_map(Op::Blackhole),
        1 => Just(Op::Restart),
        1 => prop_oneof![Just(0u64), Just(50), Just(700)].prop_map(Op::Delay),
        4 => prop_oneof![Just(1u64), Just(100), Just(1500), Just(12_000), Just(65_000)].prop_map(Op::Wait),
    ]
}

/// What one channel instance's handler saw, checked as it arrives.
#[derive(Default)]
struct Seen {
    left: bool,
    violations: Vec<String>,
    pushed_ids: HashSet<String>,
}

struct Watch(Mutex<Seen>);

impl ChannelHandler for Watch {
    fn on_message(&self, m: &Message<'_>) {
        let mut seen = self.0.lock().unwrap();
        if seen.left {
            seen.violations
                .push(format!("message {} after leave", m.event));
        }
        if m.event == "pushed" {
            let id = format!("{:?}", m.payload);
            if !seen.pushed_ids.insert(id.clone()) {
                seen.violations.push(format!("delivered twice: {id}"));
            }
        }
    }
    fn on_state(&self, state: ChannelState) {
        if state == ChannelState::Leaving {
            self.0.lock().unwrap().left = true;
        }
    }
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let world = World::new().await;
    let mut config = world.config();
    config.heartbeat_interval = secs(5);
    let (socket, _events) = world.socket_with(config);
    socket.connect();
    let mut channels: HashMap<usize, (Channel, Arc<Watch>)> = HashMap::new();
    let mut watches = Vec::new();
    let completions: Arc<Mutex<Vec<Arc<AtomicUsize>>>> = Arc::default();
    let mut next_id = 0u64;
    let counted = |completions: &Arc<Mutex<Vec<Arc<AtomicUsize>>>>| {
        let count = Arc::new(AtomicUsize::new(0));
        let c = count.clone();
        let cb: OnReply = Box::new(move |_, _| {
            c.fetch_add(1, Ordering::SeqCst);
        });
        (cb, count, completions.clone())
    };

    for op in ops {
        // Operations on a topic without a channel yet take one first.
        let op = match op {
            Op::Join(t) | Op::Push(t, _) | Op::Leave(t) if !channels.contains_key(&t) => {
                Op::Channel(t)
            }
            op => op,
        };
        match op {
            Op::Channel(t) => {
                let ch = socket.channel(TOPICS[t]);
                let known = channels.get(&t).is_some_and(|(c, _)| c.same_as(&ch));
                if !known {
                    let watch = Arc::new(Watch(Mutex::default()));
                    ch.set_handler(Some(watch.clone()));
                    watches.push(watch.clone());
                    channels.insert(t, (ch, watch));
                }
            }
            Op::Join(t) => {
                let (cb, count, all) = counted(&completions);
                if channels[&t].0.join(json("{}"), None, cb).is_ok() {
                    all.lock().unwrap().push(count);
                }
            }
            Op::Push(t, event) => {
                next_id += 1;
                let (cb, count, all) = counted(&completions);
                let payload = json(&format!(r#"{{"id":{next_id}}}"#));
                if channels[&t].0.push(event, payload, None, cb).is_ok() {
                    all.lock().unwrap().push(count);
                }
            }
            Op::Leave(t) => {
                let (cb, count, all) = counted(&completions);
                if channels[&t].0.leave(None, cb).is_ok() {
                    all.lock().unwrap().push(count);
                }
            }
            Op::Connect => socket.connect(),
            Op::Disconnect => socket.disconnect(),
            Op::Drop => world.controls().drop_all(),
            Op::Blackhole(on) => world.controls().set_blackhole(on),
            Op::Restart => world.controls().restart(ms(300)).await.expect("restart"),
            Op::Delay(m) => world.controls().set_delay(ms(m)),
            Op::Wait(m) => tokio::time::sleep(ms(m)).await,
        }
        tokio::task::yield_now().await;
    }

    // Settle: no faults, connected, every timer run out.
    world.controls().reset();
    socket.connect();
    tokio::time::sleep(secs(120)).await;
    for (i, c) in completions.lock().unwrap().iter().enumerate() {
        prop_assert_eq!(
            c.load(Ordering::SeqCst),
            1,
            "operation {} completed {} times",
            i,
            c.load(Ordering::SeqCst)
        );
    }
    for w in &watches {
        let seen = w.0.lock().unwrap();
        prop_assert!(seen.violations.is_empty(), "{:?}", seen.violations);
    }
    let stats = socket.stats().await;
    prop_assert_eq!(
        (
            stats.pending_replies,
            stats.buffered_pushes,
            stats.operation_timers,
            stats.outbox
        ),
        (0, 0, 0, 0),
        "tables not empty after settling: {:?}",
        stats
    );
    socket.disconnect();
    tokio::time::sleep(secs(1)).await;
    let stats = socket.stats().await;
    prop_assert_eq!(
        stats.pending_replies + stats.buffered_pushes + stats.operation_timers,
        0
    );
    socket.shutdown_async().await;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn every_operation_completes_exactly_once_whatever_the_faults(
        ops in proptest::collection::vec(op_strategy(), 1..60)
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(run(ops))?;
    }
}
