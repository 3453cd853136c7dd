//! Rate limiting of keyframe requests towards one publisher's video stream.
//!
//! Every receiver that loses a packet or starts decoding asks for a keyframe; in a meeting of
//! 200 sites that would be a storm of PLIs, and each keyframe costs the publisher's uplink ten
//! times an ordinary frame. At most one request per interval goes to the publisher; requests
//! inside the interval are merged into one sent when it ends, so none is lost.

use std::time::{Duration, Instant};

use str0m::media::KeyframeRequestKind;

/// The verdict on one incoming request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Throttled {
    /// Send this request to the publisher now.
    SendNow(KeyframeRequestKind),
    /// Merged into a request that will be sent at [`KeyframeThrottle::deadline`].
    Deferred,
}

/// Keyframe request state of one published video track.
#[derive(Debug, Clone)]
pub(crate) struct KeyframeThrottle {
    interval: Duration,
    last_sent: Option<Instant>,
    pending: Option<KeyframeRequestKind>,
}

impl KeyframeThrottle {
    pub(crate) fn new(interval: Duration) -> Self {
        Self {
            interval,
            last_sent: None,
            pending: None,
        }
    }

    /// A receiver asks for a keyframe.
    pub(crate) fn request(&mut self, now: Instant, kind: KeyframeRequestKind) -> Throttled {
        match self.last_sent {
            Some(last) if now < last + self.interval => {
                // FIR is the stronger request: keep it if any receiver asked for one.
                self.pending = Some(match (self.pending, kind) {
                    (Some(KeyframeRequestKind::Fir), _) | (_, KeyframeRequestKind::Fir) => {
                        KeyframeRequestKind::Fir
                    }
                    _ => KeyframeRequestKind::Pli,
                });
                Throttled::Deferred
            }
            _ => {
                self.last_sent = Some(now);
                Throttled::SendNow(kind)
            }
        }
    }

    /// A request that is only worth sending now: sent if the interval allows, else dropped (the
    /// caller asks again later if it still needs it). For the SFU's own needs, such as a layer
    /// switch, where a late request would be useless.
    pub(crate) fn try_now(&mut self, now: Instant) -> bool {
        match self.last_sent {
            Some(last) if now < last + self.interval => false,
            _ => {
                self.last_sent = Some(now);
                true
            }
        }
    }

    /// When a deferred request is due, if one is pending.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let last = self.last_sent?;
        self.pending.map(|_| last + self.interval)
    }

    /// The deferred request to send now, if it is due.
    pub(crate) fn poll_due(&mut self, now: Instant) -> Option<KeyframeRequestKind> {
        if self.deadline()? > now {
            return None;
        }
        self.last_sent = Some(now);
        self.pending.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLI: KeyframeRequestKind = KeyframeRequestKind::Pli;
    const FIR: KeyframeRequestKind = KeyframeRequestKind::Fir;

    #[test]
    fn first_request_goes_out_at_once() {
        let now = Instant::now();
        let mut t = KeyframeThrottle::new(Duration::from_millis(500));
        assert_eq!(t.request(now, PLI), Throttled::SendNow(PLI));
        assert_eq!(t.deadline(), None);
    }

    #[test]
    fn requests_within_the_interval_merge_into_one_deferred_request() {
        let t0 = Instant::now();
        let mut t = KeyframeThrottle::new(Duration::from_millis(500));
        assert_eq!(t.request(t0, PLI), Throttled::SendNow(PLI));
        for ms in [10, 100, 200, 499] {
            assert_eq!(
                t.request(t0 + Duration::from_millis(ms), PLI),
                Throttled::Deferred
            );
        }
        assert_eq!(
            t.request(t0 + Duration::from_millis(300), FIR),
            Throttled::Deferred
        );
        assert_eq!(t.deadline(), Some(t0 + Duration::from_millis(500)));
        assert_eq!(t.poll_due(t0 + Duration::from_millis(499)), None);
        assert_eq!(t.poll_due(t0 + Duration::from_millis(500)), Some(FIR));
        assert_eq!(t.poll_due(t0 + Duration::from_millis(900)), None);
        assert_eq!(t.deadline(), None);
    }

    #[test]
    fn an_sfu_need_is_sent_or_dropped_never_deferred() {
        let t0 = Instant::now();
        let mut t = KeyframeThrottle::new(Duration::from_millis(500));
        assert!(t.try_now(t0));
        assert!(!t.try_now(t0 + Duration::from_millis(100)));
        assert_eq!(t.deadline(), None);
        assert!(t.try_now(t0 + Duration::from_millis(500)));
    }

    #[test]
    fn a_request_after_the_interval_goes_out_at_once() {
        let t0 = Instant::now();
        let mut t = KeyframeThrottle::new(Duration::from_millis(500));
        t.request(t0, PLI);
        let later = t0 + Duration::from_millis(600);
        assert_eq!(t.request(later, PLI), Throttled::SendNow(PLI));
    }
}
