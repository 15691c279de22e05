//! All of a socket's timers, served by a single `Sleep`: the task never holds more than one
//! Tokio timer.
//!
//! Two stores, one order (deadline, then arming order). Push timeouts armed with a deadline no
//! earlier than the latest one in the *lane* (the common case: pushes with the same timeout,
//! armed one after another) are appended to a queue, and cancelled in place (found by binary search,
//! removed from the front at once, tombstoned elsewhere); the rest go to an ordered map. So a
//! push's timeout costs no tree insert or remove and no node allocation.
//!
//! Two inline slots take the first other timers (a socket's heartbeat or reconnect, a channel's
//! join, rejoin or leave), so a socket with one channel holds no tree node; the map's node is
//! given back when the last such timer in it goes (pushes with mixed timeouts keep it).

use super::reclaim::Shrink;
use std::collections::{BTreeMap, VecDeque};
use tokio::time::Instant;

/// Identifies an armed timer so its owner can cancel it: deadline, arming order, and where it
/// is stored (never compared in effect: arming orders are unique).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct TimerKey(Instant, u64, Store);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Store {
    Map,
    Lane,
    Slot,
}

/// What a timer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    Heartbeat,
    Reconnect,
    /// The join attempt of this channel ran out of time.
    JoinTimeout(u64),
    /// This push (by operation id) ran out of time, buffered or in flight.
    PushTimeout(u64),
    /// This channel's leave ran out of time.
    LeaveTimeout(u64),
    /// Time for this errored channel's next rejoin attempt.
    Rejoin(u64),
}

#[derive(Default)]
pub(crate) struct Timers {
    /// Timers other than in-order push timeouts, while a slot is free as they are armed.
    /// Deadline, arming order and timer (a key's store is implied).
    slots: [Option<(Instant, u64, Timer)>; 2],
    map: BTreeMap<TimerKey, Timer>,
    /// Keys in order (deadlines and sequence numbers both non-decreasing); `None` is a
    /// cancelled timer not yet at the front.
    lane: VecDeque<(TimerKey, Option<Timer>)>,
    /// Cancelled timers still in the lane.
    tombstones: usize,
    seq: u64,
}

impl Timers {
    pub(crate) fn arm(&mut self, at: Instant, timer: Timer) -> TimerKey {
        self.seq += 1;
        // Only push timeouts go to the lane: they come in bulk and in order; a long-lived timer
        // (heartbeat, join) at the lane's front would make every cancel behind it a search.
        let Timer::PushTimeout(_) = timer else {
            if let Some(free) = self.slots.iter_mut().find(|s| s.is_none()) {
                *free = Some((at, self.seq, timer));
                return TimerKey(at, self.seq, Store::Slot);
            }
            return self.insert(TimerKey(at, self.seq, Store::Map), timer);
        };
        if self.lane.back().is_none_or(|(last, _)| last.0 <= at) {
            let key = TimerKey(at, self.seq, Store::Lane);
            self.lane.push_back((key, Some(timer)));
            return key;
        }
        self.insert(TimerKey(at, self.seq, Store::Map), timer)
    }

    fn insert(&mut self, key: TimerKey, timer: Timer) -> TimerKey {
        self.map.insert(key, timer);
        key
    }

    pub(crate) fn cancel(&mut self, key: Option<TimerKey>) {
        let Some(key) = key else {
            return;
        };
        match key.2 {
            Store::Map => {
                self.remove_from_map(&key);
                return;
            }
            Store::Slot => {
                self.take_slot(key);
                return;
            }
            Store::Lane => {}
        }
        // Mostly the front (timeouts complete in the order they were armed): popped at once.
        if self.lane.front().is_some_and(|(front, _)| front.1 == key.1) {
            self.lane.pop_front();
            return self.trim();
        }
        let Ok(i) = self.lane.binary_search_by(|(k, _)| k.1.cmp(&key.1)) else {
            return;
        };
        if self.lane[i].1.take().is_none() {
            return; // cancelled before
        }
        self.tombstones += 1;
        self.trim();
        // Keep tombstones from outgrowing the live timers (one that never completes at the
        // front would otherwise hold every later one).
        if self.tombstones > 64 && self.tombstones > self.lane.len() / 2 {
            self.lane.retain(|(_, t)| t.is_some());
            self.tombstones = 0;
        }
    }

    /// Drops cancelled timers from the lane's front.
    fn trim(&mut self) {
        while let Some((_, None)) = self.lane.front() {
            self.lane.pop_front();
            self.tombstones -= 1;
        }
    }

    /// Removes a timer from the map. The map's node is given back once it holds no timer, unless
    /// a push timeout was removed (pushes with mixed timeouts would allocate a node each).
    fn remove_from_map(&mut self, key: &TimerKey) -> Option<Timer> {
        let timer = self.map.remove(key);
        if self.map.is_empty() && !matches!(timer, None | Some(Timer::PushTimeout(_))) {
            self.map = BTreeMap::new();
        }
        timer
    }

    /// Removes the timer of `key` from its slot, if it is still there.
    fn take_slot(&mut self, key: TimerKey) -> Option<Timer> {
        let slot = self
            .slots
            .iter_mut()
            .find(|s| s.is_some_and(|(_, seq, _)| seq == key.1))?;
        slot.take().map(|(_, _, t)| t)
    }

    /// The earliest armed timer's key (its store says where it is).
    fn first(&self) -> Option<TimerKey> {
        let mut first = self.lane.front().map(|(k, _)| *k);
        let slots = self.slots.iter().flatten();
        let keys = slots.map(|&(at, seq, _)| TimerKey(at, seq, Store::Slot));
        for key in keys.chain(self.map.keys().next().copied()) {
            if first.is_none_or(|f| key < f) {
                first = Some(key);
            }
        }
        first
    }

    /// The earliest deadline, if any timer is armed.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        // Deadlines only (read every few events): no keys built or compared.
        let mut first = self.lane.front().map(|(k, _)| k.0);
        for &(at, _, _) in self.slots.iter().flatten() {
            if first.is_none_or(|f| at < f) {
                first = Some(at);
            }
        }
        if let Some(k) = self.map.keys().next() {
            if first.is_none_or(|f| k.0 < f) {
                first = Some(k.0);
            }
        }
        first
    }

    /// Removes and returns the earliest timer if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Timer> {
        let key = self.first()?;
        if key.0 > now {
            return None;
        }
        match key.2 {
            Store::Lane => {
                let (_, timer) = self.lane.pop_front()?;
                self.trim();
                timer
            }
            Store::Slot => self.take_slot(key),
            Store::Map => self.remove_from_map(&key),
        }
    }

    /// Gives back the lane's capacity after a burst of push timeouts (see `reclaim`).
    pub(crate) fn reclaim(&mut self) {
        self.lane.reclaim();
    }

    /// Entries the lane has room for.
    pub(crate) fn capacity(&self) -> usize {
        self.lane.capacity()
    }

    /// Armed timers other than the socket-level ones (heartbeat, reconnect).
    pub(crate) fn operation_timers(&self) -> usize {
        let socket_level = |t: &Timer| matches!(t, Timer::Heartbeat | Timer::Reconnect);
        self.map.values().filter(|t| !socket_level(t)).count()
            + self
                .slots
                .iter()
                .flatten()
                .filter(|(_, _, t)| !socket_level(t))
                .count()
            + self
                .lane
                .iter()
                .filter(|(_, t)| t.as_ref().is_some_and(|t| !socket_level(t)))
                .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ms(base: Instant, ms: u64) -> Instant {
        base + Duration::from_millis(ms)
    }

    /// Pops every timer due by `now`, in order.
    fn due(t: &mut Timers, now: Instant) -> Vec<Timer> {
        std::iter::from_fn(|| t.pop_due(now)).collect()
    }

    #[test]
    fn fires_in_deadline_then_arming_order_across_both_stores() {
        let base = Instant::now();
        let mut t = Timers::default();
        t.arm(ms(base, 10), Timer::PushTimeout(1)); // lane
        t.arm(ms(base, 30), Timer::PushTimeout(2)); // lane
        t.arm(ms(base, 20), Timer::PushTimeout(4)); // map: earlier than the lane's last
        t.arm(ms(base, 40), Timer::Heartbeat); // map: not a push
        t.arm(ms(base, 30), Timer::PushTimeout(3)); // lane, same deadline as 2
        t.arm(ms(base, 5), Timer::Reconnect); // map
        t.arm(ms(base, 20), Timer::Rejoin(7)); // map, after the heartbeat
        assert_eq!(t.next_deadline(), Some(ms(base, 5)));
        assert_eq!(t.operation_timers(), 5);
        assert_eq!(due(&mut t, ms(base, 4)), vec![]);
        assert_eq!(
            due(&mut t, ms(base, 30)),
            vec![
                Timer::Reconnect,
                Timer::PushTimeout(1),
                Timer::PushTimeout(4),
                Timer::Rejoin(7),
                Timer::PushTimeout(2),
                Timer::PushTimeout(3),
            ]
        );
        assert_eq!(t.next_deadline(), Some(ms(base, 40)));
        assert!(t.lane.is_empty());
    }

    #[test]
    fn cancelled_timers_never_fire_wherever_they_are() {
        let base = Instant::now();
        let mut t = Timers::default();
        let keys: Vec<TimerKey> = (0..10)
            .map(|i| t.arm(ms(base, 10 * i), Timer::PushTimeout(i)))
            .collect();
        let early = t.arm(ms(base, 1), Timer::PushTimeout(99)); // earlier: the map
        t.cancel(Some(keys[0])); // the front
        t.cancel(Some(keys[5])); // the middle
        t.cancel(Some(keys[5])); // twice
        t.cancel(Some(early)); // the map
        t.cancel(None);
        assert_eq!(t.next_deadline(), Some(ms(base, 10)));
        assert_eq!(t.operation_timers(), 8);
        let fired = due(&mut t, ms(base, 1000));
        let want: Vec<Timer> = [1, 2, 3, 4, 6, 7, 8, 9]
            .into_iter()
            .map(Timer::PushTimeout)
            .collect();
        assert_eq!(fired, want);
        assert!(t.lane.is_empty() && t.tombstones == 0);
    }

    #[test]
    fn a_heartbeat_and_a_join_hold_no_tree_node_and_the_map_gives_its_node_back() {
        let base = Instant::now();
        let mut t = Timers::default();
        let join = t.arm(ms(base, 10), Timer::JoinTimeout(1));
        let heartbeat = t.arm(ms(base, 30), Timer::Heartbeat);
        assert!(
            t.map.is_empty(),
            "no tree node for a socket with one channel"
        );
        let leave = t.arm(ms(base, 20), Timer::LeaveTimeout(2)); // the slots are taken: the map
        let late = t.arm(ms(base, 5), Timer::PushTimeout(7)); // lane
        let early = t.arm(ms(base, 1), Timer::PushTimeout(8)); // out of order: the map
        assert_eq!(t.operation_timers(), 4);
        assert_eq!(t.next_deadline(), Some(ms(base, 1)));
        t.cancel(Some(early));
        assert_eq!(t.map.len(), 1, "the leave is left in the map");
        t.cancel(Some(late));
        t.cancel(Some(join));
        assert_eq!(t.next_deadline(), Some(ms(base, 20)));
        assert_eq!(due(&mut t, ms(base, 20)), vec![Timer::LeaveTimeout(2)]);
        assert!(t.map.is_empty());
        t.cancel(Some(leave)); // fired already: nothing happens
        let reconnect = t.arm(ms(base, 25), Timer::Reconnect); // the slot the join left
        assert!(t.map.is_empty());
        assert_eq!(
            due(&mut t, ms(base, 30)),
            vec![Timer::Reconnect, Timer::Heartbeat]
        );
        t.cancel(Some(heartbeat)); // fired already
        t.cancel(Some(reconnect));
        assert_eq!(t.next_deadline(), None);
        assert!(t.slots.iter().all(Option::is_none));
    }

    #[test]
    fn tombstones_behind_a_long_timer_are_compacted() {
        let base = Instant::now();
        let mut t = Timers::default();
        t.arm(ms(base, 1), Timer::PushTimeout(u64::MAX)); // never cancelled, at the front
        for i in 0..10_000 {
            let k = t.arm(ms(base, 2), Timer::PushTimeout(i));
            t.cancel(Some(k));
        }
        assert!(t.lane.len() <= 200, "lane kept {} entries", t.lane.len());
        assert_eq!(t.operation_timers(), 1);
        assert_eq!(due(&mut t, ms(base, 5)), vec![Timer::PushTimeout(u64::MAX)]);
    }
}
