//! A cheap bitrate meter: bytes over the last three seconds, in half-second buckets.
//!
//! Three seconds, not one: a video stream's keyframe (every few seconds, several times a
//! delta frame's size) must not read as a jump in its rate, or the bandwidth allocator would
//! pause a tile each time one passes.

use std::time::{Duration, Instant};

const BUCKET: Duration = Duration::from_millis(500);
const BUCKETS: usize = 6;

/// Bitrate of one incoming stream.
#[derive(Debug, Clone, Default)]
pub(crate) struct RateMeter {
    /// Start of the current bucket.
    bucket_start: Option<Instant>,
    /// Bytes per bucket; `current` indexes the one filling now.
    bytes: [u64; BUCKETS],
    current: usize,
    /// Completed buckets so far, up to `BUCKETS - 1` (the window grows to its full length).
    completed: usize,
    /// The rate over the last full window that had data: what the stream costs when it flows
    /// again after a pause (a suspended simulcast layer is priced by it, not by a guess).
    settled: Option<u64>,
}

impl RateMeter {
    /// Counts a packet of `bytes`.
    pub(crate) fn record(&mut self, now: Instant, bytes: usize) {
        self.roll(now);
        self.bytes[self.current] += bytes as u64;
    }

    /// The rate the stream had over its last full window with data, kept while it is stopped;
    /// `None` until it has flowed for a whole window.
    pub(crate) fn settled(&self) -> Option<u64> {
        self.settled
    }

    /// Bits per second over the window (up to three seconds); `None` before any data.
    pub(crate) fn bps(&self, now: Instant) -> Option<u64> {
        let start = self.bucket_start?;
        let age = now.saturating_duration_since(start);
        // Buckets that have ended since the last packet count as empty.
        let idle = (age.as_nanos() / BUCKET.as_nanos()) as usize;
        if idle >= BUCKETS {
            return Some(0);
        }
        let kept = self.completed.min(BUCKETS - 1 - idle);
        let total: u64 = (0..=kept)
            .map(|back| self.bytes[(self.current + BUCKETS - back) % BUCKETS])
            .sum();
        Some(bits_per_second(total, BUCKET * kept as u32 + age))
    }

    fn roll(&mut self, now: Instant) {
        let Some(start) = self.bucket_start else {
            self.bucket_start = Some(now);
            return;
        };
        let mut start = start;
        let mut steps = 0;
        while now.saturating_duration_since(start) >= BUCKET {
            start += BUCKET;
            steps += 1;
            if steps > BUCKETS {
                // Silent for longer than the window: start afresh.
                *self = Self {
                    settled: self.settled,
                    ..Self::default()
                };
                self.bucket_start = Some(now);
                return;
            }
            if steps == 1 && self.completed == BUCKETS - 1 && self.bytes[self.current] > 0 {
                // The window is full and its last bucket, which had data, just ended: remember
                // its rate (not on later steps over a silence, which would only dilute it).
                let total: u64 = self.bytes.iter().sum();
                self.settled = Some(bits_per_second(total, BUCKET * BUCKETS as u32));
            }
            self.current = (self.current + 1) % BUCKETS;
            self.bytes[self.current] = 0;
            self.completed = (self.completed + 1).min(BUCKETS - 1);
        }
        self.bucket_start = Some(start);
    }
}

fn bits_per_second(bytes: u64, over: Duration) -> u64 {
    (bytes as f64 * 8.0 / over.as_secs_f64().max(0.001)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1 Mb/s: packets `range` of 1,250 bytes, one every 10 ms from `t0`.
    fn one_megabit(m: &mut RateMeter, t0: Instant, range: std::ops::Range<u64>) {
        for i in range {
            m.record(t0 + Duration::from_millis(10 * i), 1250);
        }
    }

    #[test]
    fn measures_a_steady_stream() {
        let t0 = Instant::now();
        let mut m = RateMeter::default();
        one_megabit(&mut m, t0, 0..300);
        let bps = m.bps(t0 + Duration::from_millis(2995)).expect("measured");
        assert!((900_000..=1_100_000).contains(&bps), "{bps}");
    }

    #[test]
    fn a_keyframe_every_few_seconds_hardly_moves_the_rate() {
        let t0 = Instant::now();
        let mut m = RateMeter::default();
        // 30 frames a second of 4,000 bytes (960 kb/s), a keyframe of 30,000 bytes every 2.5 s.
        let mut highest = 0;
        for frame in 0..300u32 {
            let at = t0 + Duration::from_millis(u64::from(frame) * 1000 / 30);
            let size = if frame % 75 == 0 { 30_000 } else { 4_000 };
            m.record(at, size);
            if frame > 90 {
                highest = highest.max(m.bps(at).expect("measured"));
            }
        }
        assert!(highest < 1_250_000, "a keyframe reads as {highest} b/s");
    }

    #[test]
    fn a_stopped_stream_reads_zero() {
        let t0 = Instant::now();
        let mut m = RateMeter::default();
        m.record(t0, 1000);
        assert_eq!(m.bps(t0 + Duration::from_secs(3)), Some(0));
        assert_eq!(RateMeter::default().bps(t0), None);
    }

    #[test]
    fn a_stopped_stream_keeps_the_rate_it_had_for_when_it_resumes() {
        let t0 = Instant::now();
        let mut m = RateMeter::default();
        // Less than a full window: nothing settled yet.
        one_megabit(&mut m, t0, 0..250);
        assert_eq!(m.settled(), None);
        // 4 s of 1 Mb/s, then silence, then one packet 10 s later.
        one_megabit(&mut m, t0, 250..400);
        let settled = m.settled().expect("a full window flowed");
        assert!((900_000..=1_100_000).contains(&settled), "{settled}");
        m.record(t0 + Duration::from_secs(14), 100);
        assert_eq!(m.settled(), Some(settled));
    }
}
