//! RTP as the generator sends and measures it: VP8 packetization (RFC 7741) of pre-encoded
//! frames, the send timestamp that every payload carries at its end, and what each receiver
//! counts (packets, sequence gaps, latency, complete frames and freezes).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};

/// Largest RTP payload the generator sends (VP8 descriptor and timestamp trailer included).
pub const MAX_PAYLOAD: usize = 1150;
/// Bytes of the VP8 payload descriptor the generator writes (X, I with a 15-bit PictureID).
pub const VP8_DESCRIPTOR: usize = 4;
/// The trailer: a marker and the send instant in microseconds since [`epoch`].
pub const TRAILER: usize = 12;
const TRAILER_MAGIC: [u8; 4] = *b"LGts";

/// The instant all send timestamps count from (the generator sends and receives in one
/// process, so one monotonic clock serves both ends).
pub fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Microseconds since [`epoch`], now.
pub fn now_us() -> u64 {
    epoch().elapsed().as_micros() as u64
}

/// Splits a VP8 frame into payload chunks (without descriptor or trailer).
pub fn vp8_chunks(frame: &Bytes) -> Vec<Bytes> {
    let room = MAX_PAYLOAD - VP8_DESCRIPTOR - TRAILER;
    let n = frame.len().div_ceil(room).max(1);
    // Even sizes, as encoders' packetizers do, so no tiny last packet.
    let per = frame.len().div_ceil(n);
    (0..n)
        .map(|i| frame.slice(i * per..((i + 1) * per).min(frame.len())))
        .collect()
}

/// One VP8 RTP payload: descriptor, a chunk of the frame, and the send-time trailer.
pub fn vp8_payload(chunk: &[u8], first: bool, picture_id: u16, sent_us: u64) -> Bytes {
    let mut b = BytesMut::with_capacity(VP8_DESCRIPTOR + chunk.len() + TRAILER);
    // X=1, S=start of partition 0 on the first packet of the frame, PID=0.
    b.put_u8(if first { 0x90 } else { 0x80 });
    b.put_u8(0x80); // I: PictureID present
    b.put_u16(0x8000 | (picture_id & 0x7fff)); // M=1: 15-bit PictureID
    b.put_slice(chunk);
    put_trailer(&mut b, sent_us);
    b.freeze()
}

/// An audio payload: the Opus packet and the send-time trailer (receivers do not decode).
pub fn audio_payload(opus: &[u8], sent_us: u64) -> Bytes {
    let mut b = BytesMut::with_capacity(opus.len() + TRAILER);
    b.put_slice(opus);
    put_trailer(&mut b, sent_us);
    b.freeze()
}

fn put_trailer(b: &mut BytesMut, sent_us: u64) {
    b.put_slice(&TRAILER_MAGIC);
    b.put_u64(sent_us);
}

/// The send instant (µs since [`epoch`]) from a payload's trailer, if it has one.
pub fn trailer_us(payload: &[u8]) -> Option<u64> {
    let at = payload.len().checked_sub(TRAILER)?;
    let t = &payload[at..];
    if t[..4] != TRAILER_MAGIC {
        return None;
    }
    let mut v = [0u8; 8];
    v.copy_from_slice(&t[4..]);
    Some(u64::from_be_bytes(v))
}

/// abs-capture-time (64-bit NTP, 32.32 fixed point) for an instant in µs since [`epoch`].
/// Only the generator reads it back, so the NTP era is counted from the epoch.
pub fn abs_capture_time(sent_us: u64) -> Bytes {
    let secs = sent_us / 1_000_000;
    let frac = ((sent_us % 1_000_000) << 32) / 1_000_000;
    Bytes::copy_from_slice(&((secs << 32) | frac).to_be_bytes())
}

/// A latency histogram shared by all receivers of a run: 10 µs buckets up to 1 s.
pub struct Histogram {
    buckets: Vec<AtomicU64>,
    over: AtomicU64,
    count: AtomicU64,
}

const BUCKET_US: u64 = 10;
const BUCKETS: usize = 100_000;

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            over: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    /// Records one latency.
    pub fn record(&self, us: u64) {
        let i = (us / BUCKET_US) as usize;
        match self.buckets.get(i) {
            Some(b) => b.fetch_add(1, Ordering::Relaxed),
            None => self.over.fetch_add(1, Ordering::Relaxed),
        };
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The `q` quantile (0..1) in milliseconds (bucket upper edge); `None` when empty or when
    /// it falls beyond the histogram's range.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Ordering::Relaxed);
            if seen >= rank {
                return Some(((i as u64 + 1) * BUCKET_US) as f64 / 1000.0);
            }
        }
        None
    }
}

/// Which media a received stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Opus.
    Audio,
    /// VP8.
    Video,
}

/// A frame gap longer than this is a freeze (W3C webrtc-stats: the larger of three frame
/// durations and one frame duration plus 150 ms, at 30 fps).
pub const FREEZE_GAP: Duration = Duration::from_millis(183);

/// What one receiver counted on one incoming SSRC while the measurement window was open.
#[derive(Debug, Default, Clone)]
pub struct StreamCount {
    /// Packets received.
    pub received: u64,
    /// First and highest extended sequence numbers seen in the window.
    pub first_seq: Option<u64>,
    /// Highest extended sequence number seen in the window.
    pub highest_seq: u64,
    /// Complete video frames (all packets up to the marker, no gap).
    pub frames: u64,
    /// Freezes (gaps between complete frames longer than [`FREEZE_GAP`]).
    pub freezes: u64,
    /// Total time frozen.
    pub frozen: Duration,
    /// Packets that carried the abs-capture-time header extension.
    pub with_abs_capture_time: u64,
}

impl StreamCount {
    /// Packets the sender numbered in the window's span.
    pub fn expected(&self) -> u64 {
        self.first_seq
            .map(|f| self.highest_seq.saturating_sub(f) + 1)
            .unwrap_or(0)
    }
}

/// Per-SSRC receive state (lives in the receiving task) and its counts (read by the report).
pub struct StreamState {
    /// Audio or video.
    pub kind: Kind,
    last_seq: Option<u64>,
    seen: SeenWindow,
    frame_intact: bool,
    last_complete: Option<Instant>,
    /// What was counted in the window.
    pub count: StreamCount,
}

impl StreamState {
    /// A new stream of `kind`.
    pub fn new(kind: Kind) -> Self {
        Self {
            kind,
            last_seq: None,
            seen: SeenWindow::default(),
            frame_intact: false,
            last_complete: None,
            count: StreamCount::default(),
        }
    }

    /// Forgets the window's counts (when measuring starts).
    pub fn reset_counts(&mut self) {
        self.count = StreamCount::default();
        self.last_complete = None;
    }

    /// One packet arrived at `now`. `measuring` says whether the window is open. Returns
    /// false for a duplicate of a packet already received (a spurious retransmission, as an
    /// SFU's bandwidth probe may send on RTX), which counts for nothing.
    pub fn on_packet(
        &mut self,
        seq: u16,
        marker: bool,
        has_abs_capture_time: bool,
        now: Instant,
        measuring: bool,
    ) -> bool {
        let ext = match self.last_seq {
            None => u64::from(seq) + (1 << 16),
            Some(last) => {
                // Extend the 16-bit number around the last one seen.
                let base = last & !0xffff;
                let cands = [base.wrapping_sub(1 << 16), base, base + (1 << 16)];
                cands
                    .iter()
                    .map(|b| b + u64::from(seq))
                    .min_by_key(|c| c.abs_diff(last))
                    .unwrap_or(last)
            }
        };
        if !self.seen.insert(ext) {
            return false;
        }
        let in_order = self.last_seq.is_none_or(|l| ext == l + 1);
        if !in_order {
            self.frame_intact = false;
        }
        if self.last_seq.is_none_or(|l| ext > l) {
            self.last_seq = Some(ext);
        }
        if measuring {
            let c = &mut self.count;
            c.received += 1;
            if c.first_seq.is_none_or(|f| ext < f) {
                c.first_seq = Some(ext);
            }
            c.highest_seq = c.highest_seq.max(ext);
            if has_abs_capture_time {
                c.with_abs_capture_time += 1;
            }
        }
        if self.kind == Kind::Video && marker {
            if self.frame_intact && measuring {
                self.count.frames += 1;
                if let Some(last) = self.last_complete {
                    let gap = now.duration_since(last);
                    if gap > FREEZE_GAP {
                        self.count.freezes += 1;
                        self.count.frozen += gap;
                    }
                }
                self.last_complete = Some(now);
            }
            // The next packet starts a frame; it is intact if it follows on.
            self.frame_intact = true;
        }
        true
    }
}

/// The extended sequence numbers received lately: a window of [`SeenWindow::SIZE`] below the
/// highest, to tell a duplicate from a packet that arrives late.
#[derive(Debug, Default)]
struct SeenWindow {
    bits: [u64; (SeenWindow::SIZE / 64) as usize],
    highest: Option<u64>,
}

impl SeenWindow {
    const SIZE: u64 = 2048;

    fn slot(seq: u64) -> (usize, u64) {
        let i = seq % Self::SIZE;
        ((i / 64) as usize, 1 << (i % 64))
    }

    /// Records `seq`: true the first time, false for a number already seen or too old to
    /// tell.
    fn insert(&mut self, seq: u64) -> bool {
        match self.highest {
            Some(h) if seq > h => {
                // The numbers entering the window are not seen yet.
                for s in (h + 1).max(seq.saturating_sub(Self::SIZE - 1))..seq {
                    let (w, b) = Self::slot(s);
                    self.bits[w] &= !b;
                }
                self.highest = Some(seq);
            }
            Some(h) if h - seq >= Self::SIZE => return false,
            Some(_) => {
                let (w, b) = Self::slot(seq);
                if self.bits[w] & b != 0 {
                    return false;
                }
            }
            None => self.highest = Some(seq),
        }
        let (w, b) = Self::slot(seq);
        self.bits[w] |= b;
        true
    }
}

/// The streams of one receiving endpoint, shared between its receiving tasks and the report.
pub type SharedStreams = std::sync::Arc<Mutex<Vec<std::sync::Arc<Mutex<StreamState>>>>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailer_round_trips_and_refuses_garbage() {
        let p = vp8_payload(b"frame", true, 7, 123_456_789);
        assert_eq!(trailer_us(&p), Some(123_456_789));
        assert_eq!(&p[..4], &[0x90, 0x80, 0x80, 0x07]);
        assert_eq!(trailer_us(b"short"), None);
        assert_eq!(trailer_us(&[0u8; 40]), None);
    }

    #[test]
    fn chunks_cover_the_frame_evenly() {
        let frame = Bytes::from(vec![1u8; 3000]);
        let chunks = vp8_chunks(&frame);
        assert_eq!(chunks.iter().map(|c| c.len()).sum::<usize>(), 3000);
        assert!(
            chunks
                .iter()
                .all(|c| c.len() + VP8_DESCRIPTOR + TRAILER <= MAX_PAYLOAD)
        );
        assert_eq!(vp8_chunks(&Bytes::new()).len(), 1);
    }

    #[test]
    fn counts_loss_frames_and_freezes() {
        let t0 = Instant::now();
        let mut s = StreamState::new(Kind::Video);
        // Frames of two packets; seq 65534.. wraps; packet 3 (frame 2) is lost.
        let mut seq = 65534u16;
        let mut t = t0;
        for i in 0..6u16 {
            for p in 0..2 {
                let lost = i == 1 && p == 1;
                if !lost {
                    s.on_packet(seq, p == 1, false, t, true);
                }
                seq = seq.wrapping_add(1);
            }
            t += if i == 3 {
                Duration::from_millis(400)
            } else {
                Duration::from_millis(33)
            };
        }
        assert_eq!(s.count.received, 11);
        assert_eq!(s.count.expected(), 12);
        // Frame 0 may have started before the first packet seen, frame 1 lost a packet and
        // frame 2 starts after that loss (its start is unknown): frames 3, 4 and 5 are complete.
        assert_eq!(s.count.frames, 3);
        assert_eq!(s.count.freezes, 1);
    }

    #[test]
    fn a_duplicate_counts_for_nothing_and_breaks_no_frame() {
        let t0 = Instant::now();
        let mut s = StreamState::new(Kind::Video);
        assert!(s.on_packet(10, true, false, t0, true));
        assert!(s.on_packet(11, false, false, t0, true));
        // A resend of 10 (a probe's padding) in the middle of frame 11-12.
        assert!(!s.on_packet(10, true, false, t0, true));
        assert!(s.on_packet(12, true, false, t0, true));
        assert_eq!(s.count.received, 3);
        // Frame 11-12 is complete (the one ending at 10 began before the first packet seen).
        assert_eq!(s.count.frames, 1);
        // A late packet is not a duplicate; far older than the window, it cannot be told.
        assert!(s.on_packet(9, false, false, t0, true));
        for seq in 13..3000u16 {
            s.on_packet(seq, true, false, t0, true);
        }
        assert!(!s.on_packet(12, true, false, t0, true));
        assert!(!s.on_packet(500, true, false, t0, true));
        assert!(!s.on_packet(2999, true, false, t0, true));
        assert!(s.on_packet(3001, true, false, t0, true));
        assert!(s.on_packet(3000, true, false, t0, true));
    }

    #[test]
    fn histogram_quantiles() {
        let h = Histogram::default();
        assert_eq!(h.quantile_ms(0.5), None);
        for us in 1..=1000 {
            h.record(us);
        }
        // Quantiles are reported at their 10 µs bucket's upper edge.
        assert_eq!(h.quantile_ms(0.5), Some(0.51));
        assert_eq!(h.quantile_ms(0.99), Some(1.0));
        h.record(10_000_000);
        assert_eq!(h.count(), 1001);
    }
}
