//! Rewriting of one forwarded stream's sequence numbers for one receiver.
//!
//! A receiver's stream starts at sequence number 1 whenever the publisher's stream started,
//! so that its SRTP rollover counter starts at zero (str0m cannot signal another one) and a
//! receiver that joins an hour into a meeting sees an ordinary new stream.

use str0m::rtp::SeqNo;

/// Sequence number mapping of one (publisher stream → receiver) pair.
#[derive(Debug, Default, Clone)]
pub(crate) struct SeqRewriter {
    /// `(first incoming extended seq, first outgoing seq)` once the first packet is seen.
    base: Option<(u64, u64)>,
}

impl SeqRewriter {
    /// The outgoing sequence number for an incoming one, or `None` for a packet that predates
    /// the first one forwarded to this receiver (a late reordered packet: drop it).
    pub(crate) fn rewrite(&mut self, incoming: SeqNo) -> Option<SeqNo> {
        let incoming = *incoming;
        let (first_in, first_out) = *self.base.get_or_insert((incoming, 1));
        let delta = incoming.checked_sub(first_in)?;
        Some((first_out + delta).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_at_one_and_keeps_gaps() {
        let mut r = SeqRewriter::default();
        assert_eq!(r.rewrite(70_000.into()), Some(1.into()));
        assert_eq!(r.rewrite(70_001.into()), Some(2.into()));
        assert_eq!(r.rewrite(70_005.into()), Some(6.into()));
        // A retransmission of an already forwarded packet maps to the same number.
        assert_eq!(r.rewrite(70_001.into()), Some(2.into()));
    }

    #[test]
    fn drops_packets_older_than_the_first() {
        let mut r = SeqRewriter::default();
        assert_eq!(r.rewrite(500.into()), Some(1.into()));
        assert_eq!(r.rewrite(499.into()), None);
    }
}
