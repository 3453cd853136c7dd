//! When each endpoint must next be visited, and how late that visit may be.
//!
//! Most of an endpoint's deadlines are housekeeping set tens of milliseconds ahead: str0m's
//! pacer turns every 40 ms, RTCP, liveness, keyframe throttles. Met each on its own, fifty
//! receivers' pacer turns alone woke a shard some 1,250 times a second, each wake-up costing
//! more than the work it did (BENCHMARKS.md). So a deadline set far ahead may be met a little
//! late, within an eighth of how far ahead it was set and at most [`MAX_LATENESS`]; any pass
//! the shard makes anyway (a packet arrived, another deadline fell due) meets every deadline
//! already due. A deadline set close is met on time: that is how str0m paces bandwidth probes
//! and, above about 1 Mb/s, media (1,200-byte packets less than 10 ms apart); probes spaced
//! 1.5 ms apart must leave that far apart, or they measure a slower link than there is. Below
//! that rate a paced packet may leave up to an eighth of its spacing late (at most 5 ms).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::EndpointId;

/// Deadlines set less than this far ahead are met on time.
const LENIENT_FROM: Duration = Duration::from_millis(10);
/// The most a deadline is met late.
const MAX_LATENESS: Duration = Duration::from_millis(5);

/// One endpoint's next deadline, as filed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Deadline {
    /// When it falls due: visiting before this does nothing.
    pub(crate) due: Instant,
    /// When it must have been met at the latest.
    pub(crate) wake: Instant,
}

impl Deadline {
    /// A deadline falling due at `due`, set at `now`.
    pub(crate) fn new(now: Instant, due: Instant) -> Self {
        let ahead = due.saturating_duration_since(now);
        let lateness = if ahead < LENIENT_FROM {
            Duration::ZERO
        } else {
            (ahead / 8).min(MAX_LATENESS)
        };
        Self {
            due,
            wake: due + lateness,
        }
    }
}

/// Every endpoint's deadline, ordered both by when it falls due and by when it must be met.
#[derive(Debug, Default)]
pub(crate) struct Deadlines {
    by_due: BTreeSet<(Instant, EndpointId)>,
    by_wake: BTreeSet<(Instant, EndpointId)>,
}

impl Deadlines {
    /// Files `id`'s deadline `new` in place of `old` (what was filed for it before).
    pub(crate) fn replace(&mut self, id: EndpointId, old: Option<Deadline>, new: Option<Deadline>) {
        if let Some(old) = old {
            self.by_due.remove(&(old.due, id));
            self.by_wake.remove(&(old.wake, id));
        }
        if let Some(new) = new {
            self.by_due.insert((new.due, id));
            self.by_wake.insert((new.wake, id));
        }
    }

    /// When the earliest deadline must be met.
    pub(crate) fn next_wake(&self) -> Option<Instant> {
        self.by_wake.first().map(|(t, _)| *t)
    }

    /// Whether any deadline has fallen due by `now`.
    pub(crate) fn any_due(&self, now: Instant) -> bool {
        self.by_due.first().is_some_and(|(t, _)| *t <= now)
    }

    /// The endpoints whose deadlines have fallen due by `now`, earliest first.
    pub(crate) fn due(&self, now: Instant) -> Vec<EndpointId> {
        self.by_due
            .iter()
            .take_while(|(t, _)| *t <= now)
            .map(|(_, id)| *id)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn close_deadlines_are_met_on_time_far_ones_within_an_eighth_and_five_ms() {
        let now = Instant::now();
        for (ahead, lateness) in [
            (Duration::ZERO, Duration::ZERO),
            (Duration::from_micros(1_500), Duration::ZERO),
            (ms(9), Duration::ZERO),
            (ms(16), ms(2)),
            (ms(40), ms(5)),
            (ms(30_000), ms(5)),
        ] {
            let d = Deadline::new(now, now + ahead);
            assert_eq!(d.due, now + ahead);
            assert_eq!(d.wake - d.due, lateness, "set {ahead:?} ahead");
        }
        // A deadline already past when filed is met at once.
        let past = Deadline::new(now + ms(50), now);
        assert_eq!(past.wake, past.due);
    }

    #[test]
    fn wake_at_the_earliest_must_meet_visit_all_that_are_due() {
        let now = Instant::now();
        let (a, b, c) = (EndpointId(1), EndpointId(2), EndpointId(3));
        let mut index = Deadlines::default();
        let lenient = Deadline::new(now, now + ms(40)); // due +40, wake +45
        let strict = Deadline::new(now, now + ms(2)); // due +2, wake +2
        index.replace(a, None, Some(lenient));
        index.replace(b, None, Some(strict));
        assert_eq!(index.next_wake(), Some(now + ms(2)));
        assert!(!index.any_due(now + ms(1)));
        assert_eq!(index.due(now + ms(2)), vec![b]);

        // b met and refiled far ahead: the wake is now a's, five ms after it falls due, and a
        // pass made for any reason in between meets it.
        let later = Deadline::new(now + ms(2), now + ms(60));
        index.replace(b, Some(strict), Some(later));
        assert_eq!(index.next_wake(), Some(now + ms(45)));
        assert!(index.any_due(now + ms(41)));
        assert_eq!(index.due(now + ms(41)), vec![a]);

        // A third, due before a but set close: it sets the wake.
        let close = Deadline::new(now + ms(30), now + ms(35));
        index.replace(c, None, Some(close));
        assert_eq!(index.next_wake(), Some(now + ms(35)));
        assert_eq!(index.due(now + ms(41)), vec![c, a]);

        index.replace(a, Some(lenient), None);
        index.replace(c, Some(close), None);
        assert_eq!(index.due(now + ms(100)), vec![b]);
        index.replace(b, Some(later), None);
        assert_eq!(index.next_wake(), None);
    }
}
