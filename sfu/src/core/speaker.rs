//! Who is speaking: a dominant speaker with hysteresis, the recent speakers, and the loudest few
//! whose audio is forwarded.
//!
//! Input is the RFC 6464 audio level each publisher puts on its packets (0 dBov loudest, -127
//! silence). Levels are smoothed per endpoint; the dominant speaker changes only when another
//! endpoint has been clearly louder for a while, so a cough or a door slam does not move the
//! big tile, and the loudest-N set changes only when a newcomer is clearly louder than the
//! weakest member, so audio does not flap between two quiet rooms.

use std::time::{Duration, Instant};

use crate::EndpointId;

/// Smoothing time constant of the per-endpoint loudness.
const SMOOTHING: Duration = Duration::from_millis(300);
/// Below this smoothed activity (dB above silence) an endpoint is not speaking.
const SPEECH_MIN: f32 = 40.0;
/// A challenger must be this much louder (dB of activity) than the dominant speaker...
const SWITCH_MARGIN: f32 = 6.0;
/// ...for this long before it takes over.
const SWITCH_HOLD: Duration = Duration::from_millis(500);
/// A newcomer must be this much louder than the weakest of the loudest-N to replace it.
const LOUDEST_MARGIN: f32 = 6.0;
/// How many recent speakers are remembered.
const RECENT_MAX: usize = 16;
/// The sound one packet stands for: its weight in the smoothed loudness. After a gap (silence
/// suppression sends a packet every 400 ms) a packet still counts for one frame only; the gap
/// itself counts as silence.
const FRAME: Duration = Duration::from_millis(20);

#[derive(Debug, Clone)]
struct Voice {
    id: EndpointId,
    /// Smoothed activity: dB above silence (0 = silent, 127 = full scale).
    activity: f32,
    last_update: Instant,
}

impl Voice {
    fn activity_at(&self, now: Instant) -> f32 {
        // Silence suppression (DTX) sends nothing: decay as if silent packets had arrived.
        let idle = now.saturating_duration_since(self.last_update);
        self.activity * decay(idle)
    }
}

fn decay(elapsed: Duration) -> f32 {
    (-elapsed.as_secs_f32() / SMOOTHING.as_secs_f32()).exp()
}

/// What changed after an update, for signaling to announce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpeakerChange {
    /// The new dominant speaker.
    pub dominant: EndpointId,
    /// Recent speakers, most recent first (the dominant one first of all).
    pub recent: Vec<EndpointId>,
}

/// Speaker state of one meeting.
#[derive(Debug, Clone)]
pub(crate) struct SpeakerDetector {
    voices: Vec<Voice>,
    dominant: Option<EndpointId>,
    /// A challenger and since when it has been louder by the margin.
    challenger: Option<(EndpointId, Instant)>,
    recent: Vec<EndpointId>,
    loudest: Vec<EndpointId>,
    /// Of `loudest`, those above the speech threshold, loudest first.
    speaking: Vec<EndpointId>,
    loudest_n: usize,
}

impl SpeakerDetector {
    pub(crate) fn new(loudest_n: usize) -> Self {
        Self {
            voices: Vec::new(),
            dominant: None,
            challenger: None,
            recent: Vec::new(),
            loudest: Vec::new(),
            speaking: Vec::new(),
            loudest_n,
        }
    }

    /// An audio packet from `id` with RFC 6464 level `level` (-127..=0 dBov).
    pub(crate) fn record(&mut self, now: Instant, id: EndpointId, level: i8) {
        let sample = 127.0 - f32::from(level.clamp(-127, 0).unsigned_abs());
        match self.voices.iter_mut().find(|v| v.id == id) {
            Some(v) => {
                let dt = now.saturating_duration_since(v.last_update);
                let weight = 1.0 - decay(dt.min(FRAME));
                v.activity = v.activity * decay(dt) + sample * weight;
                v.last_update = now;
            }
            None => self.voices.push(Voice {
                id,
                activity: sample * 0.1,
                last_update: now,
            }),
        }
    }

    /// Re-evaluates the dominant speaker and the loudest set. Returns a change of dominant
    /// speaker, if there was one.
    pub(crate) fn evaluate(&mut self, now: Instant) -> Option<SpeakerChange> {
        self.update_loudest(now);
        let (loudest, level) = self
            .voices
            .iter()
            .map(|v| (v.id, v.activity_at(now)))
            .max_by(|a, b| a.1.total_cmp(&b.1))?;
        if level < SPEECH_MIN || Some(loudest) == self.dominant {
            self.challenger = None;
            return None;
        }
        let current = self
            .dominant
            .and_then(|d| self.voices.iter().find(|v| v.id == d))
            .map_or(0.0, |v| v.activity_at(now));
        if self.dominant.is_some() && level < current + SWITCH_MARGIN {
            self.challenger = None;
            return None;
        }
        let since = match self.challenger {
            Some((id, since)) if id == loudest => since,
            _ => {
                self.challenger = Some((loudest, now));
                now
            }
        };
        // The first speaker of a meeting takes the floor at once; later ones must hold.
        if self.dominant.is_some() && now.saturating_duration_since(since) < SWITCH_HOLD {
            return None;
        }
        self.challenger = None;
        self.dominant = Some(loudest);
        self.recent.retain(|r| *r != loudest);
        self.recent.insert(0, loudest);
        self.recent.truncate(RECENT_MAX);
        Some(SpeakerChange {
            dominant: loudest,
            recent: self.recent.clone(),
        })
    }

    fn update_loudest(&mut self, now: Instant) {
        let mut ranked: Vec<(EndpointId, f32)> = self
            .voices
            .iter()
            .map(|v| (v.id, v.activity_at(now)))
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        let level_of = |id: EndpointId| ranked.iter().find(|(r, _)| *r == id).map_or(0.0, |r| r.1);
        for (candidate, level) in ranked.iter().copied() {
            if self.loudest.contains(&candidate) {
                continue;
            }
            if self.loudest.len() < self.loudest_n {
                self.loudest.push(candidate);
                continue;
            }
            let Some((weakest_index, weakest_level)) = self
                .loudest
                .iter()
                .enumerate()
                .map(|(i, id)| (i, level_of(*id)))
                .min_by(|a, b| a.1.total_cmp(&b.1))
            else {
                break;
            };
            if level > weakest_level + LOUDEST_MARGIN {
                self.loudest[weakest_index] = candidate;
            } else {
                // Ranked loudest first: no later candidate can do better.
                break;
            }
        }
        self.speaking = ranked
            .iter()
            .filter(|(id, level)| *level >= SPEECH_MIN && self.loudest.contains(id))
            .map(|(id, _)| *id)
            .collect();
    }

    /// The loudest N (as of the last evaluation), in no particular order.
    pub(crate) fn loudest(&self) -> &[EndpointId] {
        &self.loudest
    }

    /// Those of the loudest N who are speaking (as of the last evaluation), loudest first.
    pub(crate) fn speaking(&self) -> &[EndpointId] {
        &self.speaking
    }

    /// Whether `id`'s audio is among the loudest N (as of the last evaluation).
    pub(crate) fn is_loud(&self, id: EndpointId) -> bool {
        self.loudest.contains(&id)
    }

    /// Whether `id` has ever reported an audio level. Audio without levels cannot be ranked,
    /// so it is forwarded rather than silenced.
    pub(crate) fn knows(&self, id: EndpointId) -> bool {
        self.voices.iter().any(|v| v.id == id)
    }

    /// Forgets an endpoint that left.
    pub(crate) fn remove(&mut self, id: EndpointId) {
        self.voices.retain(|v| v.id != id);
        self.loudest.retain(|l| *l != id);
        self.speaking.retain(|l| *l != id);
        self.recent.retain(|r| *r != id);
        if self.dominant == Some(id) {
            self.dominant = None;
        }
        if self.challenger.is_some_and(|(c, _)| c == id) {
            self.challenger = None;
        }
    }

    /// Recent speakers, most recent first.
    pub(crate) fn recent(&self) -> &[EndpointId] {
        &self.recent
    }

    /// The current dominant speaker.
    pub(crate) fn dominant(&self) -> Option<EndpointId> {
        self.dominant
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: Duration = Duration::from_millis(20);

    /// Feeds every endpoint its level each 20 ms for `duration`, evaluating each 100 ms.
    fn run(
        d: &mut SpeakerDetector,
        now: &mut Instant,
        duration: Duration,
        levels: &[(u64, i8)],
    ) -> Vec<(Duration, SpeakerChange)> {
        let start = *now;
        let mut changes = Vec::new();
        let mut n = 0;
        while *now < start + duration {
            *now += TICK;
            for (id, level) in levels {
                d.record(*now, EndpointId(*id), *level);
            }
            n += 1;
            if n % 5 == 0
                && let Some(c) = d.evaluate(*now)
            {
                changes.push((*now - start, c));
            }
        }
        changes
    }

    #[test]
    fn the_only_voice_becomes_dominant_at_once() {
        let mut d = SpeakerDetector::new(3);
        let mut now = Instant::now();
        let changes = run(
            &mut d,
            &mut now,
            Duration::from_secs(1),
            &[(1, -127), (2, -30), (3, -127)],
        );
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(changes[0].1.dominant, EndpointId(2));
        assert!(changes[0].0 <= Duration::from_millis(400), "{changes:?}");
    }

    #[test]
    fn silence_elects_nobody() {
        let mut d = SpeakerDetector::new(3);
        let mut now = Instant::now();
        let changes = run(
            &mut d,
            &mut now,
            Duration::from_secs(2),
            &[(1, -127), (2, -110)],
        );
        assert!(changes.is_empty(), "{changes:?}");
        assert_eq!(d.dominant(), None);
    }

    #[test]
    fn a_new_speaker_takes_over_after_the_hold_and_the_old_one_stays_recent() {
        let mut d = SpeakerDetector::new(3);
        let mut now = Instant::now();
        run(
            &mut d,
            &mut now,
            Duration::from_secs(2),
            &[(1, -30), (2, -127)],
        );
        let changes = run(
            &mut d,
            &mut now,
            Duration::from_secs(2),
            &[(1, -127), (2, -30)],
        );
        assert_eq!(changes.len(), 1, "{changes:?}");
        let (after, change) = &changes[0];
        assert_eq!(change.dominant, EndpointId(2));
        assert_eq!(change.recent, vec![EndpointId(2), EndpointId(1)]);
        assert!(*after >= SWITCH_HOLD, "switched after {after:?}");
    }

    #[test]
    fn a_short_burst_does_not_move_the_dominant_speaker() {
        let mut d = SpeakerDetector::new(3);
        let mut now = Instant::now();
        run(
            &mut d,
            &mut now,
            Duration::from_secs(2),
            &[(1, -35), (2, -127)],
        );
        // A 200 ms cough from 2, louder than 1.
        let cough = run(
            &mut d,
            &mut now,
            Duration::from_millis(200),
            &[(1, -35), (2, -5)],
        );
        let after = run(
            &mut d,
            &mut now,
            Duration::from_secs(2),
            &[(1, -35), (2, -127)],
        );
        assert!(cough.is_empty() && after.is_empty(), "{cough:?} {after:?}");
        assert_eq!(d.dominant(), Some(EndpointId(1)));
    }

    #[test]
    fn two_equally_loud_speakers_do_not_flap() {
        let mut d = SpeakerDetector::new(3);
        let mut now = Instant::now();
        let changes = run(
            &mut d,
            &mut now,
            Duration::from_secs(10),
            &[(1, -30), (2, -31), (3, -29)],
        );
        assert_eq!(
            changes.len(),
            1,
            "one election, then stability: {changes:?}"
        );
    }

    #[test]
    fn the_loudest_set_keeps_n_and_admits_only_a_clearly_louder_newcomer() {
        let mut d = SpeakerDetector::new(2);
        let mut now = Instant::now();
        run(
            &mut d,
            &mut now,
            Duration::from_secs(1),
            &[(1, -40), (2, -45), (3, -47)],
        );
        assert!(d.is_loud(EndpointId(1)) && d.is_loud(EndpointId(2)) && !d.is_loud(EndpointId(3)));
        // 3 is a little louder than 2 now: not enough to swap.
        run(
            &mut d,
            &mut now,
            Duration::from_secs(1),
            &[(1, -40), (2, -45), (3, -43)],
        );
        assert!(d.is_loud(EndpointId(2)) && !d.is_loud(EndpointId(3)));
        // 3 speaks up: it replaces the weakest.
        run(
            &mut d,
            &mut now,
            Duration::from_secs(1),
            &[(1, -40), (2, -45), (3, -20)],
        );
        assert!(d.is_loud(EndpointId(3)) && d.is_loud(EndpointId(1)) && !d.is_loud(EndpointId(2)));
    }

    #[test]
    fn one_loud_packet_after_a_silence_suppressed_gap_counts_for_one_frame() {
        // Room 1 speaks softly; room 2 is silent with DTX: a packet every 400 ms.
        let mut d = SpeakerDetector::new(1);
        let mut now = Instant::now();
        for n in 1..=100 {
            now += TICK;
            d.record(now, EndpointId(1), -50);
            if n % 20 == 0 {
                d.record(now, EndpointId(2), -127);
            }
            d.evaluate(now);
        }
        assert_eq!(d.loudest(), [EndpointId(1)]);
        // 400 ms after its last packet, room 2 sends one loud frame (a door slams) and goes
        // silent again. It stood for 20 ms of sound, not for the 400 ms before it.
        for n in 1..=20 {
            now += TICK;
            d.record(now, EndpointId(1), -50);
            if n == 20 {
                d.record(now, EndpointId(2), -5);
            }
            assert!(d.evaluate(now).is_none());
            assert_eq!(d.loudest(), [EndpointId(1)], "after {n} frames");
        }
        assert_eq!(d.dominant(), Some(EndpointId(1)));
    }

    #[test]
    fn a_departed_endpoint_is_forgotten() {
        let mut d = SpeakerDetector::new(3);
        let mut now = Instant::now();
        run(&mut d, &mut now, Duration::from_secs(1), &[(1, -30)]);
        assert_eq!(d.dominant(), Some(EndpointId(1)));
        d.remove(EndpointId(1));
        assert_eq!(d.dominant(), None);
        assert!(!d.is_loud(EndpointId(1)));
    }
}
