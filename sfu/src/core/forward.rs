//! Rewriting of one forwarded stream's sequence numbers and timestamps for one receiver.
//!
//! A receiver's stream starts at sequence number 1 whenever the publisher's stream started,
//! so that its SRTP rollover counter starts at zero (str0m cannot signal another one) and a
//! receiver that joins an hour into a meeting sees an ordinary new stream. When the SFU
//! deliberately skips packets (audio not among the loudest, a muted site), the numbering goes
//! on without a gap, so the receiver does not take the skipped packets for losses. When it
//! switches to another simulcast layer (another incoming stream with its own numbering and
//! clock offset) both sequence numbers and timestamps continue from where they were.

use std::time::Instant;

use str0m::rtp::SeqNo;

/// Why the mapping must restart at the next packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rebase {
    /// Same incoming stream: keep going.
    None,
    /// Packets of the same stream were skipped: close the sequence gap, keep the clock.
    Skip,
    /// Another incoming stream (layer switch): close the gap and re-time from wall clock.
    Switch,
}

/// Sequence number and timestamp mapping of one (publisher stream → receiver) pair.
#[derive(Debug, Default, Clone)]
pub(crate) struct StreamRewriter {
    /// `(incoming extended seq, outgoing seq)` of the packet the current mapping is based on.
    base: Option<(u64, u64)>,
    /// The highest outgoing sequence number so far.
    highest_out: u64,
    /// Added to incoming timestamps.
    ts_offset: u32,
    /// The last outgoing timestamp and when its packet arrived.
    last_ts: Option<(u32, Instant)>,
    /// The publisher's skip epoch this mapping was made in.
    epoch: u32,
}

/// One rewritten packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rewritten {
    pub(crate) seq: SeqNo,
    pub(crate) timestamp: u32,
}

impl StreamRewriter {
    /// The outgoing numbering for an incoming packet, or `None` for a packet that predates the
    /// current mapping (late and reordered: drop it).
    ///
    /// `epoch` counts the publisher's runs of deliberately skipped packets; a change since the
    /// last call means [`Rebase::Skip`]. `switched` says the packet starts another layer.
    pub(crate) fn rewrite(
        &mut self,
        seq: SeqNo,
        timestamp: u32,
        arrival: Instant,
        clock_rate: u32,
        epoch: u32,
        switched: bool,
    ) -> Option<Rewritten> {
        let incoming = *seq;
        let rebase = if switched {
            Rebase::Switch
        } else if self.base.is_none() || epoch != self.epoch {
            Rebase::Skip
        } else {
            Rebase::None
        };
        if rebase != Rebase::None {
            self.base = Some((incoming, self.highest_out + 1));
            self.epoch = epoch;
        }
        if rebase == Rebase::Switch
            && let Some((last_ts, last_at)) = self.last_ts
        {
            let elapsed = arrival.saturating_duration_since(last_at);
            let ticks = (elapsed.as_secs_f64() * f64::from(clock_rate)) as u32;
            let wanted = last_ts.wrapping_add(ticks.max(1));
            self.ts_offset = wanted.wrapping_sub(timestamp);
        }
        let (base_in, base_out) = self.base?;
        let out = base_out + incoming.checked_sub(base_in)?;
        self.highest_out = self.highest_out.max(out);
        let ts = timestamp.wrapping_add(self.ts_offset);
        self.last_ts = Some((ts, arrival));
        Some(Rewritten {
            seq: out.into(),
            timestamp: ts,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn seq(r: &mut StreamRewriter, incoming: u64, epoch: u32) -> Option<u64> {
        let now = Instant::now();
        r.rewrite(incoming.into(), 0, now, 90_000, epoch, false)
            .map(|w| *w.seq)
    }

    #[test]
    fn starts_at_one_and_keeps_gaps() {
        let mut r = StreamRewriter::default();
        assert_eq!(seq(&mut r, 70_000, 0), Some(1));
        assert_eq!(seq(&mut r, 70_001, 0), Some(2));
        // A gap from loss upstream stays a gap, for the receiver to NACK.
        assert_eq!(seq(&mut r, 70_005, 0), Some(6));
        // A retransmission of an already forwarded packet maps to the same number.
        assert_eq!(seq(&mut r, 70_001, 0), Some(2));
    }

    #[test]
    fn drops_packets_older_than_the_first() {
        let mut r = StreamRewriter::default();
        assert_eq!(seq(&mut r, 500, 0), Some(1));
        assert_eq!(seq(&mut r, 499, 0), None);
    }

    #[test]
    fn deliberately_skipped_packets_leave_no_gap() {
        let mut r = StreamRewriter::default();
        assert_eq!(seq(&mut r, 10, 0), Some(1));
        assert_eq!(seq(&mut r, 11, 0), Some(2));
        // 12..=40 were skipped by the SFU (epoch 1 began); 41 follows 2 directly.
        assert_eq!(seq(&mut r, 41, 1), Some(3));
        assert_eq!(seq(&mut r, 42, 1), Some(4));
    }

    #[test]
    fn a_layer_switch_continues_numbering_and_clock() {
        let t0 = Instant::now();
        let mut r = StreamRewriter::default();
        // Layer 0: seq from 100, timestamps from 5_000.
        let a = r
            .rewrite(100.into(), 5_000, t0, 90_000, 0, false)
            .expect("first");
        let b = r
            .rewrite(
                101.into(),
                8_000,
                t0 + Duration::from_millis(33),
                90_000,
                0,
                false,
            )
            .expect("second");
        assert_eq!((*a.seq, a.timestamp), (1, 5_000));
        assert_eq!((*b.seq, b.timestamp), (2, 8_000));
        // Layer 2 starts 33 ms later with its own seq and a wildly different clock offset.
        let t = t0 + Duration::from_millis(66);
        let c = r
            .rewrite(9_000.into(), 4_000_000_000, t, 90_000, 0, true)
            .expect("switch");
        assert_eq!(*c.seq, 3);
        assert_eq!(c.timestamp, 8_000 + 2_970);
        let d = r
            .rewrite(
                9_001.into(),
                4_000_003_000,
                t + Duration::from_millis(33),
                90_000,
                0,
                false,
            )
            .expect("after switch");
        assert_eq!((*d.seq, d.timestamp), (4, 8_000 + 2_970 + 3_000));
    }
}
