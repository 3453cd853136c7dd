//! Rewriting of one forwarded stream's sequence numbers for one receiver.
//!
//! A receiver's stream starts at sequence number 1 whenever the publisher's stream started,
//! so that its SRTP rollover counter starts at zero (str0m cannot signal another one) and a
//! receiver that joins an hour into a meeting sees an ordinary new stream. When the SFU
//! deliberately skips packets (audio not among the loudest, a muted site), the numbering goes
//! on without a gap, so the receiver does not take the skipped packets for losses and ask for
//! them again.

use str0m::rtp::SeqNo;

/// Sequence number mapping of one (publisher stream → receiver) pair.
#[derive(Debug, Default, Clone)]
pub(crate) struct SeqRewriter {
    /// `(incoming extended seq, outgoing seq)` of the packet the current mapping is based on.
    base: Option<(u64, u64)>,
    /// The highest outgoing sequence number so far.
    highest_out: u64,
    /// The publisher's skip epoch this mapping was made in.
    epoch: u32,
}

impl SeqRewriter {
    /// The outgoing sequence number for an incoming one, or `None` for a packet that predates
    /// the current mapping (a late reordered packet: drop it).
    ///
    /// `epoch` counts the publisher's runs of deliberately skipped packets: when it changed
    /// since the last call, the mapping restarts right after the highest number sent.
    pub(crate) fn rewrite(&mut self, incoming: SeqNo, epoch: u32) -> Option<SeqNo> {
        let incoming = *incoming;
        if self.base.is_none() || epoch != self.epoch {
            self.base = Some((incoming, self.highest_out + 1));
            self.epoch = epoch;
        }
        let (base_in, base_out) = self.base?;
        let out = base_out + incoming.checked_sub(base_in)?;
        self.highest_out = self.highest_out.max(out);
        Some(out.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_at_one_and_keeps_gaps() {
        let mut r = SeqRewriter::default();
        assert_eq!(r.rewrite(70_000.into(), 0), Some(1.into()));
        assert_eq!(r.rewrite(70_001.into(), 0), Some(2.into()));
        // A gap from loss upstream stays a gap, for the receiver to NACK.
        assert_eq!(r.rewrite(70_005.into(), 0), Some(6.into()));
        // A retransmission of an already forwarded packet maps to the same number.
        assert_eq!(r.rewrite(70_001.into(), 0), Some(2.into()));
    }

    #[test]
    fn drops_packets_older_than_the_first() {
        let mut r = SeqRewriter::default();
        assert_eq!(r.rewrite(500.into(), 0), Some(1.into()));
        assert_eq!(r.rewrite(499.into(), 0), None);
    }

    #[test]
    fn deliberately_skipped_packets_leave_no_gap() {
        let mut r = SeqRewriter::default();
        assert_eq!(r.rewrite(10.into(), 0), Some(1.into()));
        assert_eq!(r.rewrite(11.into(), 0), Some(2.into()));
        // 12..=40 were skipped by the SFU (epoch 1 began); 41 follows 2 directly.
        assert_eq!(r.rewrite(41.into(), 1), Some(3.into()));
        assert_eq!(r.rewrite(42.into(), 1), Some(4.into()));
    }
}
