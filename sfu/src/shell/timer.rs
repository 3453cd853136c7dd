//! A shard's wake-up timer, to the microsecond.
//!
//! tokio's timers count whole milliseconds: a deadline is rounded up to the next tick and the
//! runtime's `epoll_wait` rounds its wait up again, so a timer fires up to 2 ms late. str0m's
//! pacer spaces a bandwidth probe's packets to within a millisecond or two (a 1.3 Mb/s probe of
//! 255-byte padding packets wants one every 1.5 ms): released on millisecond ticks they left at
//! about half the probe's rate, the probe measured half of what the link carries, and a
//! receiver whose estimate had to be found by probing stayed below its video for good. A
//! `timerfd` wakes the runtime's poller when the deadline passes, whatever its own timeout.

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use tokio::io::unix::AsyncFd;

/// The file descriptor, as tokio's poller wants it.
struct Fd(TimerFd);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// A one-shot timer re-armed for each deadline.
pub(crate) struct PreciseTimer {
    fd: AsyncFd<Fd>,
    /// The deadline the kernel's timer is set for, if any.
    armed: Option<Instant>,
}

impl PreciseTimer {
    /// A new timer, registered with the current tokio runtime.
    pub(crate) fn new() -> io::Result<Self> {
        let fd = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )
        .map_err(io::Error::from)?;
        // tokio deprecates its safe constructor (the only one this crate, which forbids
        // `unsafe`, may call) because a wrapper could hand it a descriptor that changes or
        // closes under it. `Fd` owns its `TimerFd` and always gives the same open descriptor,
        // until it is dropped with the `AsyncFd`.
        #[allow(deprecated)]
        let fd = AsyncFd::new(Fd(fd))?;
        Ok(Self { fd, armed: None })
    }

    /// Completes once `deadline` has passed. Cancel-safe: dropped before it completes, the
    /// timer stays set, and a later call for the same deadline does not set it again.
    pub(crate) async fn sleep_until(&mut self, deadline: Instant) -> io::Result<()> {
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(());
            }
            if self.armed != Some(deadline) {
                // A zero expiry would disarm the timer: wait at least a microsecond.
                let wait = (deadline - now).max(Duration::from_micros(1));
                self.fd
                    .get_ref()
                    .0
                    .set(
                        Expiration::OneShot(TimeSpec::from_duration(wait)),
                        TimerSetTimeFlags::empty(),
                    )
                    .map_err(io::Error::from)?;
                self.armed = Some(deadline);
            }
            let mut ready = self.fd.readable().await?;
            // Read the expiry count; "would block" means it was read already (an expiry of an
            // earlier deadline, or a spurious wake-up): wait on.
            match ready.get_inner().0.wait() {
                Ok(()) => self.armed = None,
                Err(Errno::EAGAIN) => ready.clear_ready(),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// A shard's timer: to the microsecond where the kernel gives a `timerfd`, tokio's
/// millisecond timer otherwise (then str0m's probes measure low: warned once).
pub(crate) struct ShardTimer {
    precise: Option<PreciseTimer>,
}

impl ShardTimer {
    pub(crate) fn new(shard: usize) -> Self {
        match PreciseTimer::new() {
            Ok(t) => Self { precise: Some(t) },
            Err(e) => {
                tracing::warn!(shard, error = %e, "no timerfd: this SFU shard's timers fall back to whole milliseconds");
                Self { precise: None }
            }
        }
    }

    /// Completes once `deadline` has passed. Cancel-safe.
    pub(crate) async fn sleep_until(&mut self, deadline: Instant) {
        if let Some(timer) = &mut self.precise {
            match timer.sleep_until(deadline).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "the SFU shard's timerfd failed: timers fall back to whole milliseconds");
                    self.precise = None;
                }
            }
        }
        tokio::time::sleep_until(deadline.into()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fires_once_the_deadline_has_passed() {
        let mut timer = PreciseTimer::new().expect("timerfd");
        for wait_us in [0u64, 300, 1_500, 4_000] {
            let deadline = Instant::now() + Duration::from_micros(wait_us);
            timer.sleep_until(deadline).await.expect("wait");
            assert!(Instant::now() >= deadline, "woke before {wait_us} µs");
        }
    }

    #[tokio::test]
    async fn without_a_timerfd_the_shard_still_wakes() {
        let mut timer = ShardTimer { precise: None };
        let deadline = Instant::now() + Duration::from_millis(2);
        timer.sleep_until(deadline).await;
        assert!(Instant::now() >= deadline);
    }

    #[tokio::test]
    async fn a_dropped_wait_leaves_the_timer_usable_for_a_later_deadline() {
        let mut timer = PreciseTimer::new().expect("timerfd");
        let soon = Instant::now() + Duration::from_millis(1);
        // Abandon the first wait (as `select!` does when a datagram comes first) after the
        // timer has been set; its expiry must not end the next, later, wait early.
        let _ = tokio::time::timeout(Duration::from_micros(200), timer.sleep_until(soon)).await;
        tokio::time::sleep(Duration::from_millis(3)).await;
        let later = Instant::now() + Duration::from_millis(5);
        timer.sleep_until(later).await.expect("wait");
        assert!(Instant::now() >= later);
    }
}
