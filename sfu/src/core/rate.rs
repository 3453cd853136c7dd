//! A cheap bitrate meter: bytes over the last second, in two half-second buckets.

use std::time::{Duration, Instant};

const HALF: Duration = Duration::from_millis(500);

/// Bitrate of one incoming stream.
#[derive(Debug, Clone, Default)]
pub(crate) struct RateMeter {
    /// Start of the current bucket.
    bucket_start: Option<Instant>,
    current: u64,
    previous: u64,
}

impl RateMeter {
    /// Counts a packet of `bytes`.
    pub(crate) fn record(&mut self, now: Instant, bytes: usize) {
        self.roll(now);
        self.current += bytes as u64;
    }

    /// Bits per second over the last half second to second; `None` before any data.
    pub(crate) fn bps(&self, now: Instant) -> Option<u64> {
        let start = self.bucket_start?;
        let age = now.saturating_duration_since(start);
        if age >= 2 * HALF {
            return Some(0);
        }
        // The window is the previous bucket (whole) and the current one (so far).
        let (bytes, window) = if age >= HALF {
            (self.current, age)
        } else {
            (self.previous + self.current, HALF + age)
        };
        Some((bytes as f64 * 8.0 / window.as_secs_f64().max(0.001)) as u64)
    }

    fn roll(&mut self, now: Instant) {
        let Some(start) = self.bucket_start else {
            self.bucket_start = Some(now);
            return;
        };
        let age = now.saturating_duration_since(start);
        if age >= 2 * HALF {
            self.previous = 0;
            self.current = 0;
            self.bucket_start = Some(now);
        } else if age >= HALF {
            self.previous = self.current;
            self.current = 0;
            self.bucket_start = Some(start + HALF);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_a_steady_stream() {
        let t0 = Instant::now();
        let mut m = RateMeter::default();
        // 100 packets of 1,250 bytes per second = 1 Mb/s.
        for i in 0..300 {
            m.record(t0 + Duration::from_millis(10 * i), 1250);
        }
        let bps = m.bps(t0 + Duration::from_millis(2995)).expect("measured");
        assert!((900_000..=1_100_000).contains(&bps), "{bps}");
    }

    #[test]
    fn a_stopped_stream_reads_zero() {
        let t0 = Instant::now();
        let mut m = RateMeter::default();
        m.record(t0, 1000);
        assert_eq!(m.bps(t0 + Duration::from_secs(3)), Some(0));
        assert_eq!(RateMeter::default().bps(t0), None);
    }
}
