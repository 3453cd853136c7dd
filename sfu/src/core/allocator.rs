//! Sharing one receiver's estimated bandwidth among the videos it shows.
//!
//! Priority first: the floor holder and the chair get what they want before any active speaker
//! gets anything, and active speakers before the gallery. Within a class every track first gets
//! its lowest layer, then the class is upgraded towards what each tile wants. So when the link
//! shrinks, gallery tiles pause before the floor holder loses a single layer; and the floor
//! (chair and floor holder) is never paused: its lowest layer goes even over the estimate.
//!
//! Stability: a shortfall (what is being sent no longer fits the estimate) is corrected at once;
//! an upgrade waits until the estimate has allowed it for [`UPGRADE_HOLD`], so layers do not flap
//! on a noisy estimate. Showing a new tile is not an upgrade and starts at once.

use std::time::{Duration, Instant};

use super::layers::Layer;

/// How long an upgrade must stay affordable before it is made.
pub(crate) const UPGRADE_HOLD: Duration = Duration::from_millis(2000);
/// An upgrade undone by a shortfall within this time doubles the next hold...
const REVERSAL_WINDOW: Duration = Duration::from_secs(10);
/// ...up to this long.
const MAX_HOLD: Duration = Duration::from_secs(32);
/// After this long without a reversal the hold is back to [`UPGRADE_HOLD`].
const CALM: Duration = Duration::from_secs(60);
/// Upgrades are planned within this share of the estimate, leaving headroom.
pub(crate) const HEADROOM: f64 = 0.85;

/// How much a video matters to this receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Priority {
    /// The chair or the floor holder.
    Floor,
    /// A recent speaker.
    Speaker,
    /// Everyone else.
    Gallery,
}

/// One video the receiver shows.
#[derive(Debug, Clone)]
pub(crate) struct Want {
    pub(crate) priority: Priority,
    /// The layer the tile wants (already limited to the layers the publisher has).
    pub(crate) layer: Layer,
    /// Bitrate of each layer, lowest first, in bits per second.
    pub(crate) rates: Vec<u64>,
}

/// The layer each video gets: `None` is paused.
pub(crate) type Allocation = Vec<Option<Layer>>;

fn cost(wants: &[Want], allocation: &[Option<Layer>]) -> u64 {
    wants
        .iter()
        .zip(allocation)
        .filter_map(|(w, a)| a.and_then(|l| w.rates.get(usize::from(l))))
        .sum()
}

/// The allocation of `budget` bits per second by priority (see the module doc).
pub(crate) fn allocate(budget: u64, wants: &[Want]) -> Allocation {
    let mut out: Allocation = vec![None; wants.len()];
    let mut left = budget;
    let mut order: Vec<usize> = (0..wants.len()).collect();
    order.sort_by_key(|i| wants[*i].priority);
    for class in order.chunk_by(|a, b| wants[*a].priority == wants[*b].priority) {
        for &i in class {
            let Some(&rate) = wants[i].rates.first() else {
                continue;
            };
            // The floor is never dark: its lowest layer goes even beyond the estimate (the
            // estimator then sees the real rate), and nothing else gets anything.
            if rate <= left || wants[i].priority == Priority::Floor {
                left = left.saturating_sub(rate);
                out[i] = Some(0);
            }
        }
        // Upgrade the class one layer at a time, in turn, so tiles of a class share fairly.
        loop {
            let mut upgraded = false;
            for &i in class {
                let Some(current) = out[i] else { continue };
                if current >= wants[i].layer {
                    continue;
                }
                let rates = &wants[i].rates;
                let (now_rate, next_rate) =
                    (rates[usize::from(current)], rates[usize::from(current) + 1]);
                let extra = next_rate.saturating_sub(now_rate);
                if extra <= left {
                    left -= extra;
                    out[i] = Some(current + 1);
                    upgraded = true;
                }
            }
            if !upgraded {
                break;
            }
        }
    }
    out
}

/// Allocation state of one receiver.
#[derive(Debug, Clone)]
pub(crate) struct Allocator {
    /// Since when an upgrade has been affordable.
    upgrade_since: Option<Instant>,
    /// The hold in force: it grows when upgrades turn out not to last.
    hold: Duration,
    last_upgrade: Option<Instant>,
    last_reversal: Option<Instant>,
}

impl Default for Allocator {
    fn default() -> Self {
        Self {
            upgrade_since: None,
            hold: UPGRADE_HOLD,
            last_upgrade: None,
            last_reversal: None,
        }
    }
}

impl Allocator {
    /// The next allocation, given the one in force (`current`, same order as `wants`; `None`
    /// is paused) and the estimate. `new[i]` marks a tile just shown, which starts at once.
    pub(crate) fn update(
        &mut self,
        now: Instant,
        estimate: u64,
        wants: &[Want],
        current: &[Option<Layer>],
        new: &[bool],
    ) -> Allocation {
        // What is sent now, less anything no longer wanted.
        let kept: Allocation = current
            .iter()
            .zip(wants)
            .map(|(c, w)| c.map(|l| l.min(w.layer)))
            .collect();
        let ideal = allocate((estimate as f64 * HEADROOM) as u64, wants);
        if self
            .last_reversal
            .is_some_and(|t| now.saturating_duration_since(t) >= CALM)
        {
            self.hold = UPGRADE_HOLD;
            self.last_reversal = None;
        }
        if cost(wants, &kept) > estimate {
            if self
                .last_upgrade
                .is_some_and(|t| now.saturating_duration_since(t) < REVERSAL_WINDOW)
            {
                self.hold = (self.hold * 2).min(MAX_HOLD);
                self.last_reversal = Some(now);
                self.last_upgrade = None;
            }
            self.upgrade_since = None;
            return ideal;
        }
        // A paused tile resuming is an upgrade too (pause/resume must not flap either).
        let upgrade = ideal
            .iter()
            .zip(&kept)
            .zip(new)
            .any(|((i, k), new)| !new && i > k);
        let hold_done = match (upgrade, self.upgrade_since) {
            (false, _) => {
                self.upgrade_since = None;
                false
            }
            (true, None) => {
                self.upgrade_since = Some(now);
                false
            }
            (true, Some(since)) => now.saturating_duration_since(since) >= self.hold,
        };
        if hold_done {
            self.upgrade_since = None;
            self.last_upgrade = Some(now);
            return ideal;
        }
        // Keep what is sent; start newly shown tiles the ideal plan affords, at once. Paused
        // tiles the plan affords resume at their lowest layer after the base hold, even while
        // raises wait out a longer one: a lowest layer is cheap to take back, and a tile
        // frozen for half a minute while the link has room is worse than one more pause.
        // Priority still rules: nothing resumes while a more important tile waits for more.
        let resume = self
            .upgrade_since
            .is_some_and(|since| now.saturating_duration_since(since) >= UPGRADE_HOLD);
        let waiting = wants
            .iter()
            .zip(ideal.iter().zip(&kept))
            .filter(|(_, (i, k))| k.is_some() && i > k)
            .map(|(w, _)| w.priority)
            .min();
        let mut next = kept;
        for (((n, ideal), new), want) in next.iter_mut().zip(&ideal).zip(new).zip(wants) {
            if *new {
                *n = *ideal;
            } else if resume
                && n.is_none()
                && ideal.is_some()
                && waiting.is_none_or(|p| want.priority <= p)
            {
                *n = Some(0);
            }
        }
        if cost(wants, &next) > estimate {
            self.upgrade_since = None;
            return ideal;
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KBPS: u64 = 1000;

    fn want(priority: Priority, layer: Layer) -> Want {
        Want {
            priority,
            layer,
            rates: vec![150 * KBPS, 500 * KBPS, 1500 * KBPS],
        }
    }

    #[test]
    fn plenty_of_bandwidth_gives_everyone_what_they_want() {
        let wants = [
            want(Priority::Floor, 2),
            want(Priority::Gallery, 0),
            want(Priority::Gallery, 1),
        ];
        assert_eq!(
            allocate(10_000 * KBPS, &wants),
            vec![Some(2), Some(0), Some(1)]
        );
    }

    #[test]
    fn the_gallery_pauses_before_the_floor_holder_degrades() {
        let wants = [
            want(Priority::Gallery, 0),
            want(Priority::Floor, 2),
            want(Priority::Gallery, 0),
            want(Priority::Speaker, 1),
        ];
        // 1.5 Mb/s for the floor, 150 kb/s for the speaker's lowest layer, nothing more.
        let got = allocate(1700 * KBPS, &wants);
        assert_eq!(got, vec![None, Some(2), None, Some(0)]);
        // Less still: the floor degrades only when nothing else is left to take from.
        assert_eq!(
            allocate(600 * KBPS, &wants),
            vec![None, Some(1), None, None]
        );
        // The floor is never dark: its lowest layer goes even when it does not fit.
        assert_eq!(
            allocate(100 * KBPS, &wants),
            vec![None, Some(0), None, None]
        );
    }

    #[test]
    fn a_class_shares_its_bandwidth_fairly() {
        let wants = [
            want(Priority::Gallery, 2),
            want(Priority::Gallery, 2),
            want(Priority::Gallery, 2),
        ];
        // Three lowest layers (450) plus one upgrade each (3 x 350) = 1500.
        assert_eq!(
            allocate(1500 * KBPS, &wants),
            vec![Some(1), Some(1), Some(1)]
        );
    }

    #[test]
    fn a_shortfall_is_corrected_at_once_and_an_upgrade_waits() {
        let t0 = Instant::now();
        let wants = [want(Priority::Floor, 2)];
        let mut a = Allocator::default();
        let start = a.update(t0, 2000 * KBPS, &wants, &[None], &[true]);
        assert_eq!(
            start,
            vec![Some(2)],
            "a new tile starts at what the plan affords"
        );
        // The link shrinks: down at once.
        let down = a.update(
            t0 + Duration::from_millis(100),
            700 * KBPS,
            &wants,
            &start,
            &[false],
        );
        assert_eq!(down, vec![Some(1)]);
        // It recovers: the upgrade waits for the hold, then happens.
        let mut now = t0 + Duration::from_millis(200);
        let mut current = down;
        let mut upgraded_at = None;
        while now < t0 + Duration::from_secs(5) {
            current = a.update(now, 2000 * KBPS, &wants, &current, &[false]);
            if current == vec![Some(2)] && upgraded_at.is_none() {
                upgraded_at = Some(now);
            }
            now += Duration::from_millis(100);
        }
        let waited = upgraded_at.expect("upgraded") - (t0 + Duration::from_millis(200));
        assert!(waited >= UPGRADE_HOLD, "upgraded after only {waited:?}");
    }

    #[test]
    fn a_noisy_estimate_does_not_make_layers_flap() {
        let t0 = Instant::now();
        let wants = [want(Priority::Floor, 2), want(Priority::Gallery, 1)];
        let mut a = Allocator::default();
        let mut current = vec![None, None];
        let mut new = [true, true];
        let mut changes = 0;
        for step in 0..100 {
            // The estimate wobbles ±10% around a level that affords floor top + gallery middle.
            let estimate = if step % 2 == 0 { 2300 } else { 2800 } * KBPS;
            let next = a.update(
                t0 + Duration::from_millis(100 * step),
                estimate,
                &wants,
                &current,
                &new,
            );
            new = [false, false];
            if next != current {
                changes += 1;
            }
            current = next;
        }
        assert!(changes <= 2, "{changes} changes");
    }

    #[test]
    fn an_upgrade_that_does_not_last_makes_the_next_one_wait_longer() {
        let t0 = Instant::now();
        let wants = [want(Priority::Floor, 2)];
        let mut a = Allocator::default();
        let mut current = a.update(t0, 700 * KBPS, &wants, &[None], &[true]);
        assert_eq!(current, vec![Some(1)]);
        let mut upgrades = Vec::new();
        // The estimate looks good for 3 s, then falls short for 1 s, over and over.
        for step in 0..400 {
            let now = t0 + Duration::from_millis(100 * (step + 1));
            let estimate = if step % 40 < 30 { 2000 } else { 1000 } * KBPS;
            let next = a.update(now, estimate, &wants, &current, &[false]);
            if next > current {
                upgrades.push(now - t0);
            }
            current = next;
        }
        // Without backoff this would upgrade every 4 s (10 times); with it, far less often.
        assert!(upgrades.len() <= 5, "{upgrades:?}");
        assert!(!upgrades.is_empty());
    }

    #[test]
    fn a_paused_tile_resumes_after_the_base_hold_even_after_reversals() {
        let t0 = Instant::now();
        // The floor holder is shown small; two gallery tiles, one big.
        let wants = [
            want(Priority::Floor, 0),
            want(Priority::Gallery, 2),
            want(Priority::Gallery, 0),
        ];
        let mut a = Allocator::default();
        let mut current = a.update(t0, 2500 * KBPS, &wants, &[None, None, None], &[true; 3]);
        // Raises of the big gallery tile that keep failing grow the hold.
        for step in 0..200 {
            let now = t0 + Duration::from_millis(100 * (step + 1));
            let estimate = if step % 40 < 30 { 2500 } else { 900 } * KBPS;
            current = a.update(now, estimate, &wants, &current, &[false; 3]);
        }
        assert!(a.hold > UPGRADE_HOLD, "the hold grew: {:?}", a.hold);
        // A squeeze pauses the gallery; then the link has room again.
        let t1 = t0 + Duration::from_secs(30);
        current = a.update(t1, 300 * KBPS, &wants, &current, &[false; 3]);
        assert_eq!(current, vec![Some(0), None, None], "the gallery paused");
        let mut resumed_at = None;
        for step in 1..100 {
            let now = t1 + Duration::from_millis(100 * step);
            current = a.update(now, 2500 * KBPS, &wants, &current, &[false; 3]);
            if current[1].is_some() && current[2].is_some() && resumed_at.is_none() {
                resumed_at = Some(now - t1);
            }
        }
        let waited = resumed_at.expect("resumed");
        assert!(
            waited <= UPGRADE_HOLD + Duration::from_millis(200),
            "waited {waited:?}"
        );
    }

    #[test]
    fn nothing_resumes_while_a_more_important_tile_waits_for_more() {
        let t0 = Instant::now();
        let wants = [want(Priority::Floor, 2), want(Priority::Gallery, 0)];
        let mut a = Allocator::default();
        // Floor at its lowest layer, gallery paused.
        let mut current = a.update(t0, 200 * KBPS, &wants, &[None, None], &[true, true]);
        assert_eq!(current, vec![Some(0), None]);
        for step in 1..100 {
            let now = t0 + Duration::from_millis(100 * step);
            current = a.update(now, 5000 * KBPS, &wants, &current, &[false, false]);
            assert!(
                current[1].is_none() || current[0] == Some(2),
                "the gallery resumed before the floor holder got its layer: {current:?}"
            );
        }
        assert_eq!(current, vec![Some(2), Some(0)]);
    }

    #[test]
    fn a_tile_that_wants_less_gets_less_at_once() {
        let t0 = Instant::now();
        let mut a = Allocator::default();
        let big = [want(Priority::Gallery, 2)];
        let current = a.update(t0, 5000 * KBPS, &big, &[None], &[true]);
        assert_eq!(current, vec![Some(2)]);
        let small = [want(Priority::Gallery, 0)];
        assert_eq!(
            a.update(t0, 5000 * KBPS, &small, &current, &[false]),
            vec![Some(0)]
        );
    }

    #[test]
    fn a_paused_tile_resumes_only_after_the_hold() {
        let t0 = Instant::now();
        let wants = [want(Priority::Floor, 0), want(Priority::Gallery, 0)];
        let mut a = Allocator::default();
        let paused = a.update(t0, 200 * KBPS, &wants, &[None, None], &[true, true]);
        assert_eq!(paused, vec![Some(0), None]);
        let soon = a.update(
            t0 + Duration::from_millis(100),
            2000 * KBPS,
            &wants,
            &paused,
            &[false, false],
        );
        assert_eq!(soon, paused, "no resume on the first good estimate");
        let later = a.update(
            t0 + Duration::from_millis(2200),
            2000 * KBPS,
            &wants,
            &soon,
            &[false, false],
        );
        assert_eq!(later, vec![Some(0), Some(0)]);
    }
}
