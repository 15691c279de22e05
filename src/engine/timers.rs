//! All of a socket's timers in one ordered map, served by a single `Sleep`: arming or cancelling
//! a timer is a map operation, and the task never holds more than one Tokio timer.

use std::collections::BTreeMap;
use tokio::time::Instant;

/// Identifies an armed timer so its owner can cancel it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct TimerKey(Instant, u64);

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
    map: BTreeMap<TimerKey, Timer>,
    seq: u64,
}

impl Timers {
    pub(crate) fn arm(&mut self, at: Instant, timer: Timer) -> TimerKey {
        self.seq += 1;
        let key = TimerKey(at, self.seq);
        self.map.insert(key, timer);
        key
    }

    pub(crate) fn cancel(&mut self, key: Option<TimerKey>) {
        if let Some(key) = key {
            self.map.remove(&key);
        }
    }

    /// The earliest deadline, if any timer is armed.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.map.keys().next().map(|k| k.0)
    }

    /// Removes and returns the earliest timer if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Timer> {
        let entry = self.map.first_entry()?;
        (entry.key().0 <= now).then(|| entry.remove())
    }

    /// Armed timers other than the socket-level ones (heartbeat, reconnect).
    pub(crate) fn operation_timers(&self) -> usize {
        self.map
            .values()
            .filter(|t| !matches!(t, Timer::Heartbeat | Timer::Reconnect))
            .count()
    }
}
