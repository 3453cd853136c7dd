//! How well a stream arrives, measured from its RTP packets: loss before and after
//! retransmission, interarrival jitter (RFC 3550), frames, freezes. Pure: packets and times in,
//! cumulative counters out; rates over a period are the difference of two snapshots
//! ([`StreamStats::since`]), so whoever samples decides the period.
//!
//! Cost: a few integer operations per arriving packet (not per forwarded copy), and a short
//! queue of the sequence numbers still missing.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A packet missing this long after the one that revealed the gap is lost for good (a
/// retransmission later than this would be too late to show anyway).
pub const REPAIR_WINDOW: Duration = Duration::from_secs(1);
/// Gaps larger than this (a publisher that restarted its sequence, a long outage) are counted
/// lost at once rather than waited for one by one.
const MAX_TRACKED_GAP: u64 = 512;
/// A frame that arrives this much later than usual is a freeze: WebRTC's definition, the
/// larger of three average frame intervals and the average plus 150 ms.
const FREEZE_EXTRA: Duration = Duration::from_millis(150);
/// Weight of a new interval in the average frame interval (about the last 30 frames).
const FRAME_AVERAGE_WEIGHT: f64 = 1.0 / 30.0;

/// Cumulative counters of one stream.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct StreamStats {
    /// Packets received, duplicates and retransmissions included.
    pub packets: u64,
    /// Payload bytes received.
    pub bytes: u64,
    /// Packets expected: from the first sequence number to the highest seen.
    pub expected: u64,
    /// Packets missing when a later one arrived (loss before retransmission).
    pub missing_at_first: u64,
    /// Of those, packets that arrived later (repaired, usually by retransmission).
    pub repaired: u64,
    /// Packets still missing after [`REPAIR_WINDOW`] (loss after retransmission).
    pub lost: u64,
    /// Interarrival jitter, seconds (RFC 3550's estimate, now).
    pub jitter_seconds: f64,
    /// Frames: distinct RTP timestamps, in order (video).
    pub frames: u64,
    /// Freezes: frames that came much later than the average interval (video).
    pub freezes: u64,
    /// Time spent frozen: the part of each freeze's interval beyond the average, seconds.
    pub freeze_seconds: f64,
    /// Keyframes that began to arrive (video; retransmissions not counted again).
    pub keyframes: u64,
}

impl StreamStats {
    /// What happened between `earlier` and `self` (counters as differences; jitter as now).
    pub fn since(&self, earlier: &StreamStats) -> StreamStats {
        StreamStats {
            packets: self.packets.saturating_sub(earlier.packets),
            bytes: self.bytes.saturating_sub(earlier.bytes),
            expected: self.expected.saturating_sub(earlier.expected),
            missing_at_first: self
                .missing_at_first
                .saturating_sub(earlier.missing_at_first),
            repaired: self.repaired.saturating_sub(earlier.repaired),
            lost: self.lost.saturating_sub(earlier.lost),
            jitter_seconds: self.jitter_seconds,
            frames: self.frames.saturating_sub(earlier.frames),
            freezes: self.freezes.saturating_sub(earlier.freezes),
            freeze_seconds: (self.freeze_seconds - earlier.freeze_seconds).max(0.0),
            keyframes: self.keyframes.saturating_sub(earlier.keyframes),
        }
    }

    /// Share of the expected packets lost after retransmission, 0 to 1 (`None`: none expected).
    pub fn loss(&self) -> Option<f64> {
        (self.expected > 0).then(|| (self.lost as f64 / self.expected as f64).min(1.0))
    }

    /// Share of the expected packets missing before retransmission, 0 to 1.
    pub fn loss_before_repair(&self) -> Option<f64> {
        (self.expected > 0).then(|| (self.missing_at_first as f64 / self.expected as f64).min(1.0))
    }
}

/// What the SFU measures of one endpoint (a site), both ways, cumulative since it joined.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointQuality {
    /// The endpoint.
    pub endpoint: crate::EndpointId,
    /// What arrives from it: its audio.
    pub audio_in: Option<StreamStats>,
    /// What arrives from it: its video, per simulcast layer, lowest first (`None`: a layer
    /// that never arrived).
    pub video_in: Vec<Option<StreamStats>>,
    /// Its last audio level, dBov (RFC 6464: 0 loudest, -127 silence).
    pub audio_level: Option<i8>,
    /// Retransmissions (NACKs) and keyframes (PLIs, FIRs) asked of it.
    pub nacks_to: u64,
    /// See `nacks_to`.
    pub plis_to: u64,
    /// See `nacks_to`.
    pub firs_to: u64,
    /// RTP packets sent to it (retransmissions included).
    pub sent_packets: u64,
    /// RTP bytes sent to it.
    pub sent_bytes: u64,
    /// Retransmissions and keyframes it asked for.
    pub nacks_from: u64,
    /// See `nacks_from`.
    pub plis_from: u64,
    /// See `nacks_from`.
    pub firs_from: u64,
    /// Round-trip time to it.
    pub rtt: Option<Duration>,
    /// Share of what is sent to it that its receiver reports say was lost, 0 to 1.
    pub receiver_loss: Option<f32>,
    /// The bandwidth estimate towards it, bits per second.
    pub estimate_bps: Option<u64>,
    /// The simulcast layer forwarded to it on each video slot that has one.
    pub layers_sent: Vec<u8>,
}

/// Measures one incoming stream.
#[derive(Debug, Clone)]
pub struct StreamMeter {
    clock_rate: u32,
    stats: StreamStats,
    /// Extended sequence number of the first packet and of the highest so far.
    first_seq: Option<u64>,
    max_seq: u64,
    /// Missing sequence numbers, oldest first, with when they were found missing.
    missing: VecDeque<(u64, Instant)>,
    /// Transit time of the last in-order packet, in RTP units (RFC 3550's `transit`).
    last_transit: Option<f64>,
    /// Jitter in RTP units.
    jitter: f64,
    epoch: Option<Instant>,
    /// Video: the timestamp of the newest frame, when it began to arrive, the average interval.
    last_frame: Option<(u32, Instant)>,
    frame_interval: Option<f64>,
    /// The last packet was new (not a retransmission or duplicate).
    last_new: bool,
}

impl StreamMeter {
    /// A meter for a stream whose RTP clock runs at `clock_rate` Hz.
    pub fn new(clock_rate: u32) -> Self {
        Self {
            clock_rate: clock_rate.max(1),
            stats: StreamStats::default(),
            first_seq: None,
            max_seq: 0,
            missing: VecDeque::new(),
            last_transit: None,
            jitter: 0.0,
            epoch: None,
            last_frame: None,
            frame_interval: None,
            last_new: false,
        }
    }

    /// A packet arrived at `now`: its sequence number, RTP timestamp and payload size. `video`:
    /// count frames and freezes.
    pub fn packet(&mut self, now: Instant, seq: u16, timestamp: u32, size: usize, video: bool) {
        self.expire(now);
        self.stats.packets += 1;
        self.stats.bytes += size as u64;
        self.last_new = false;
        let Some(first) = self.first_seq else {
            let ext = u64::from(seq) + (1 << 16);
            self.first_seq = Some(ext);
            self.max_seq = ext;
            self.stats.expected = 1;
            self.arrived_in_order(now, timestamp, video);
            return;
        };
        let ext = extend(self.max_seq, seq);
        if ext > self.max_seq {
            let gap = ext - self.max_seq - 1;
            self.stats.missing_at_first += gap;
            if gap > MAX_TRACKED_GAP {
                self.stats.lost += gap;
            } else {
                self.missing
                    .extend((self.max_seq + 1..ext).map(|missing| (missing, now)));
            }
            self.max_seq = ext;
            self.stats.expected = ext - first + 1;
            self.arrived_in_order(now, timestamp, video);
        } else if let Ok(i) = self.missing.binary_search_by_key(&ext, |(s, _)| *s) {
            // Late: a retransmission (or reordering) filled a gap.
            self.missing.remove(i);
            self.stats.repaired += 1;
        }
        // Otherwise a duplicate, or too late to count: received, nothing more.
    }

    /// The counters now (missing packets past the repair window counted lost).
    pub fn stats(&mut self, now: Instant) -> StreamStats {
        self.expire(now);
        self.stats.jitter_seconds = self.jitter / f64::from(self.clock_rate);
        self.stats
    }

    fn expire(&mut self, now: Instant) {
        while let Some((_, since)) = self.missing.front() {
            if now.saturating_duration_since(*since) < REPAIR_WINDOW {
                break;
            }
            self.missing.pop_front();
            self.stats.lost += 1;
        }
    }

    /// The packet just given to [`packet`](Self::packet) begins a keyframe.
    pub fn keyframe(&mut self) {
        if self.last_new {
            self.stats.keyframes += 1;
        }
    }

    fn arrived_in_order(&mut self, now: Instant, timestamp: u32, video: bool) {
        self.last_new = true;
        // RFC 3550 A.8: transit = arrival - timestamp, both in RTP units; J += (|D| - J) / 16.
        let epoch = *self.epoch.get_or_insert(now);
        let arrival =
            now.saturating_duration_since(epoch).as_secs_f64() * f64::from(self.clock_rate);
        let transit = arrival - f64::from(timestamp);
        if let Some(last) = self.last_transit {
            // Timestamps wrap at 2^32: take the difference modulo it, signed.
            let d = wrap_signed(transit - last);
            self.jitter += (d.abs() - self.jitter) / 16.0;
        }
        self.last_transit = Some(transit);
        if video {
            self.frame(now, timestamp);
        }
    }

    fn frame(&mut self, now: Instant, timestamp: u32) {
        let Some((last_ts, last_at)) = self.last_frame else {
            self.last_frame = Some((timestamp, now));
            self.stats.frames = 1;
            return;
        };
        // A newer picture (timestamps compared modulo 2^32); packets of the same one do not count.
        let newer = timestamp != last_ts && timestamp.wrapping_sub(last_ts) < 1 << 31;
        if !newer {
            return;
        }
        self.stats.frames += 1;
        let interval = now.saturating_duration_since(last_at).as_secs_f64();
        self.last_frame = Some((timestamp, now));
        let Some(average) = self.frame_interval else {
            self.frame_interval = Some(interval);
            return;
        };
        let threshold = (3.0 * average).max(average + FREEZE_EXTRA.as_secs_f64());
        if interval > threshold {
            self.stats.freezes += 1;
            self.stats.freeze_seconds += interval - average;
            // A freeze does not teach what a normal interval is.
            return;
        }
        self.frame_interval = Some(average + (interval - average) * FRAME_AVERAGE_WEIGHT);
    }
}

/// The extended sequence number of `seq` nearest to `max` (RFC 3550's roll-over handling).
fn extend(max: u64, seq: u16) -> u64 {
    let cycle = max & !0xffff;
    let candidates = [cycle.wrapping_sub(1 << 16), cycle, cycle + (1 << 16)];
    candidates
        .into_iter()
        .map(|c| c + u64::from(seq))
        .filter(|e| *e >= 1 << 16)
        .min_by_key(|e| e.abs_diff(max))
        .unwrap_or(max)
}

/// A difference of RTP times brought into ±2^31.
fn wrap_signed(d: f64) -> f64 {
    const FULL: f64 = 4_294_967_296.0;
    let mut d = d % FULL;
    if d > FULL / 2.0 {
        d -= FULL;
    } else if d < -FULL / 2.0 {
        d += FULL;
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Audio at 48 kHz, 20 ms packets: sends `seqs` (in that order) at their due times plus
    /// `delay(seq)`.
    fn audio(seqs: &[u16], delay: impl Fn(u16) -> Duration) -> (StreamMeter, Instant) {
        let t0 = Instant::now();
        let mut m = StreamMeter::new(48_000);
        for &s in seqs {
            let due = t0 + MS * 20 * u32::from(s);
            m.packet(due + delay(s), s, u32::from(s) * 960, 100, false);
        }
        (m, t0)
    }

    #[test]
    fn a_clean_stream_has_no_loss_and_no_jitter() {
        let seqs: Vec<u16> = (0..100).collect();
        let (mut m, t0) = audio(&seqs, |_| Duration::ZERO);
        let s = m.stats(t0 + Duration::from_secs(5));
        assert_eq!((s.packets, s.expected, s.bytes), (100, 100, 10_000));
        assert_eq!((s.missing_at_first, s.repaired, s.lost), (0, 0, 0));
        assert_eq!(s.loss(), Some(0.0));
        assert!(s.jitter_seconds < 1e-9, "{}", s.jitter_seconds);
    }

    #[test]
    fn loss_is_counted_before_and_after_retransmission() {
        // 100 packets; 10, 11 and 50 missing; 11 comes back 100 ms late (a retransmission),
        // 50 comes back 1.5 s late (too late: still lost).
        let t0 = Instant::now();
        let mut m = StreamMeter::new(48_000);
        let at = |s: u16| t0 + MS * 20 * u32::from(s);
        for s in 0..100u16 {
            if s == 10 || s == 11 || s == 50 {
                continue;
            }
            m.packet(at(s), s, u32::from(s) * 960, 100, false);
            if s == 16 {
                m.packet(at(11) + MS * 100, 11, 11 * 960, 100, false);
            }
        }
        m.packet(
            at(50) + Duration::from_millis(1500),
            50,
            50 * 960,
            100,
            false,
        );
        let s = m.stats(at(99) + Duration::from_secs(2));
        assert_eq!(s.expected, 100);
        assert_eq!(s.packets, 99);
        assert_eq!(s.missing_at_first, 3);
        assert_eq!(s.repaired, 1);
        assert_eq!(s.lost, 2);
        assert_eq!(s.loss(), Some(0.02));
        assert_eq!(s.loss_before_repair(), Some(0.03));
    }

    #[test]
    fn a_gap_still_within_the_repair_window_is_not_yet_lost() {
        let (mut m, t0) = audio(&[0, 1, 2, 5, 6], |_| Duration::ZERO);
        let s = m.stats(t0 + MS * 20 * 6 + MS * 500);
        assert_eq!((s.missing_at_first, s.lost), (2, 0));
        let s = m.stats(t0 + Duration::from_secs(2));
        assert_eq!(s.lost, 2);
    }

    #[test]
    fn sequence_numbers_wrap_without_counting_loss() {
        let seqs: Vec<u16> = (65_500..=65_535).chain(0..40).collect();
        let t0 = Instant::now();
        let mut m = StreamMeter::new(48_000);
        for (i, &s) in seqs.iter().enumerate() {
            m.packet(t0 + MS * 20 * i as u32, s, i as u32 * 960, 50, false);
        }
        let s = m.stats(t0 + Duration::from_secs(10));
        assert_eq!((s.expected, s.packets, s.lost), (76, 76, 0));
        // A late duplicate from before the wrap changes nothing.
        m.packet(t0 + Duration::from_secs(10), 65_530, 30 * 960, 50, false);
        let s = m.stats(t0 + Duration::from_secs(10));
        assert_eq!((s.expected, s.lost, s.repaired), (76, 0, 0));
    }

    #[test]
    fn a_huge_jump_is_lost_at_once_without_tracking_each_packet() {
        let (mut m, t0) = audio(&[0, 1, 2, 3000], |_| Duration::ZERO);
        let s = m.stats(t0);
        assert_eq!(s.lost, 2997);
        assert!(m.missing.is_empty());
    }

    #[test]
    fn jitter_follows_rfc_3550() {
        // Every other packet 10 ms late: |D| is 10 ms for each pair after the first, so the
        // estimate converges on 10 ms (J += (|D| - J) / 16).
        let seqs: Vec<u16> = (0..400).collect();
        let (mut m, t0) = audio(&seqs, |s| if s % 2 == 1 { MS * 10 } else { Duration::ZERO });
        let j = m.stats(t0 + Duration::from_secs(9)).jitter_seconds;
        assert!((j - 0.010).abs() < 0.000_5, "jitter {j}");
        // After one step from zero the estimate is exactly |D| / 16.
        let (mut m, t0) = audio(&[0, 1], |s| if s == 1 { MS * 16 } else { Duration::ZERO });
        let j = m.stats(t0).jitter_seconds;
        assert!((j - 0.001).abs() < 1e-9, "jitter {j}");
    }

    /// Video at 90 kHz, 3 packets per frame, frames every 40 ms except `late` (frame index →
    /// extra delay).
    fn video(frames: u32, late: impl Fn(u32) -> Duration) -> (StreamMeter, Instant) {
        let t0 = Instant::now();
        let mut m = StreamMeter::new(90_000);
        let mut seq = 0u16;
        let mut shift = Duration::ZERO;
        for f in 0..frames {
            shift += late(f);
            for _ in 0..3 {
                m.packet(t0 + MS * 40 * f + shift, seq, f * 3600, 1000, true);
                seq = seq.wrapping_add(1);
            }
        }
        (m, t0)
    }

    #[test]
    fn frames_are_counted_once_per_timestamp() {
        let (mut m, t0) = video(50, |_| Duration::ZERO);
        let s = m.stats(t0);
        assert_eq!((s.frames, s.freezes), (50, 0));
        assert_eq!(s.packets, 150);
    }

    #[test]
    fn a_frame_far_later_than_usual_is_a_freeze() {
        // 25 fps; frame 30 comes 500 ms late: an interval of 540 ms against an average of
        // 40 ms (threshold max(120, 190) ms): one freeze of 500 ms.
        let (mut m, t0) = video(60, |f| if f == 30 { MS * 500 } else { Duration::ZERO });
        let s = m.stats(t0);
        assert_eq!(s.freezes, 1);
        assert!(
            (s.freeze_seconds - 0.5).abs() < 0.001,
            "{}",
            s.freeze_seconds
        );
        // 140 ms late (180 ms, under the threshold) is not a freeze.
        let (mut m, t0) = video(60, |f| if f == 30 { MS * 140 } else { Duration::ZERO });
        assert_eq!(m.stats(t0).freezes, 0);
    }

    #[test]
    fn keyframes_are_counted_once_even_when_retransmitted() {
        let t0 = Instant::now();
        let mut m = StreamMeter::new(90_000);
        m.packet(t0, 0, 0, 1000, true);
        m.keyframe();
        m.packet(t0 + MS * 40, 2, 3600, 1000, true);
        // Packet 1 (say, the start of the second keyframe) arrives late: not counted again.
        m.packet(t0 + MS * 60, 1, 3600, 1000, true);
        m.keyframe();
        m.packet(t0 + MS * 80, 3, 7200, 1000, true);
        m.keyframe();
        assert_eq!(m.stats(t0 + MS * 100).keyframes, 2);
    }

    #[test]
    fn a_period_is_the_difference_of_two_snapshots() {
        let t0 = Instant::now();
        let mut m = StreamMeter::new(90_000);
        for s in 0..10u16 {
            m.packet(
                t0 + MS * 40 * u32::from(s),
                s,
                u32::from(s) * 3600,
                500,
                true,
            );
        }
        let first = m.stats(t0 + MS * 400);
        for s in 10..30u16 {
            if s == 20 {
                continue;
            }
            m.packet(
                t0 + MS * 40 * u32::from(s),
                s,
                u32::from(s) * 3600,
                500,
                true,
            );
        }
        let later = m.stats(t0 + Duration::from_secs(3));
        let d = later.since(&first);
        assert_eq!((d.packets, d.expected, d.lost, d.bytes), (19, 20, 1, 9_500));
        assert_eq!(d.loss(), Some(0.05));
    }
}
