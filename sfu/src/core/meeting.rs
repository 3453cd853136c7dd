//! One meeting in the SFU: its endpoints and who may be heard.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::allocator::Priority;
use super::speaker::{SpeakerChange, SpeakerDetector};

use crate::EndpointId;

/// How many of the most recent speakers count as active for video priority.
const ACTIVE_SPEAKERS: usize = 3;
/// Audio slots of a receiver when every voice is forwarded (loudest-N of 0).
pub(crate) const MAX_AUDIO_SLOTS: usize = 16;

/// How often speakers are re-evaluated while audio flows.
const SPEAKER_EVALUATION: Duration = Duration::from_millis(100);
/// A site shown under last-N keeps its place until this long after it last talked (unless it
/// leaves, or a new dominant speaker needs the place): when many rooms talk at once, the
/// loudest few change at every evaluation, and tiles must not change faster than people can
/// follow, nor faster than publishers can send the keyframe each new tile needs.
pub(crate) const MIN_SHOWN: Duration = Duration::from_secs(5);

/// Whose audio a meeting forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AudioMode {
    /// Everyone may speak; the loudest few are forwarded.
    #[default]
    Open,
    /// Only the chair and the current floor holder are heard.
    Floor,
}

/// The moderation decisions the SFU enforces for a meeting, whatever the clients do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaPolicy {
    /// Open or floor mode.
    pub mode: AudioMode,
    /// The chair: always heard in floor mode.
    pub chair: Option<EndpointId>,
    /// The site that holds the floor: heard in floor mode.
    pub floor_holder: Option<EndpointId>,
    /// Endpoints whose audio is never forwarded.
    pub muted: Vec<EndpointId>,
    /// In open mode, how many of the loudest are forwarded (0: all).
    pub loudest_n: usize,
    /// Video of only this many sources reaches each receiver: the most recent speakers, then
    /// the others in joining order, a site shown staying until 5 s after it last
    /// talked; the chair and floor holder always (0: all).
    pub last_n: usize,
    /// The site the chair put in the spotlight: its video goes to everyone, first, like the
    /// floor holder's (its audio follows the usual rules).
    pub spotlight: Option<EndpointId>,
    /// Who presents a document or screen: its content track (a publisher's second video
    /// track) goes to every receiver, first. Other publishers' content is not forwarded.
    pub presenter: Option<EndpointId>,
}

impl Default for MediaPolicy {
    fn default() -> Self {
        Self {
            mode: AudioMode::Open,
            chair: None,
            floor_holder: None,
            muted: Vec::new(),
            loudest_n: 3,
            last_n: 0,
            spotlight: None,
            presenter: None,
        }
    }
}

/// What the core does with one audio packet.
#[derive(Debug)]
pub(crate) struct AudioVerdict {
    /// Forward it (to receivers that have a slot for it).
    pub(crate) heard: bool,
    /// The dominant speaker changed.
    pub(crate) change: Option<SpeakerChange>,
    /// Who should be heard or seen changed: re-plan every receiver's slots.
    pub(crate) reassign: bool,
}

/// A meeting's state in the core.
#[derive(Debug)]
pub(crate) struct Meeting {
    pub(crate) members: Vec<EndpointId>,
    policy: MediaPolicy,
    speakers: SpeakerDetector,
    next_evaluation: Option<Instant>,
    /// Signaling set the policy: keep the meeting even while empty.
    pub(crate) explicit_policy: bool,
    /// Each member's rank for last-N: those shown (see `shown`) first, in the order below.
    video_rank: HashMap<EndpointId, usize>,
    /// Under last-N, the sites whose video is shown, and when each last talked while shown
    /// (see `hold_shown`).
    shown: Vec<(EndpointId, Option<Instant>)>,
    /// When the first hold of `shown` runs out: the ranking is made again then, even if no
    /// speaker changed (a site may be waiting for that place).
    hold_expiry: Option<Instant>,
}

impl Meeting {
    pub(crate) fn new(policy: MediaPolicy) -> Self {
        Self {
            members: Vec::new(),
            speakers: SpeakerDetector::new(policy.loudest_n),
            policy,
            next_evaluation: None,
            explicit_policy: false,
            video_rank: HashMap::new(),
            shown: Vec::new(),
            hold_expiry: None,
        }
    }

    pub(crate) fn policy(&self) -> &MediaPolicy {
        &self.policy
    }

    pub(crate) fn set_policy(&mut self, now: Instant, policy: MediaPolicy) {
        if policy.loudest_n != self.policy.loudest_n {
            self.speakers = SpeakerDetector::new(policy.loudest_n);
        }
        self.policy = policy;
        self.rank_video(now);
    }

    pub(crate) fn add(&mut self, now: Instant, id: EndpointId) {
        self.members.push(id);
        self.rank_video(now);
    }

    pub(crate) fn remove(&mut self, now: Instant, id: EndpointId) {
        self.members.retain(|m| *m != id);
        self.speakers.remove(id);
        self.rank_video(now);
    }

    /// Whether `receiver` gets `source`'s video under last-N. The receiver is not counted
    /// among its own N.
    pub(crate) fn video_allowed(&self, source: EndpointId, receiver: EndpointId) -> bool {
        let p = &self.policy;
        if p.last_n == 0 || self.is_featured(source) {
            return true;
        }
        let rank = |id| self.video_rank.get(&id).copied().unwrap_or(usize::MAX);
        let (s, r) = (rank(source), rank(receiver));
        s < p.last_n || (s == p.last_n && r < p.last_n)
    }

    /// Ranks the members for last-N; whether any rank changed.
    fn rank_video(&mut self, now: Instant) -> bool {
        // Who spoke last first, then who speaks now without having been dominant yet, then
        // everyone else in joining order.
        let mut desired: HashMap<EndpointId, usize> = HashMap::new();
        let recent = self
            .speakers
            .recent()
            .iter()
            .chain(self.speakers.speaking())
            .filter(|s| self.members.contains(s));
        for id in recent.chain(self.members.iter()) {
            let next = desired.len();
            desired.entry(*id).or_insert(next);
        }
        let mut order: Vec<EndpointId> = self.members.clone();
        order.sort_by_key(|id| desired.get(id).copied().unwrap_or(usize::MAX));
        // The N + 1 best are shown (a receiver among them does not see itself), held.
        if self.policy.last_n > 0 {
            let dominant = self
                .speakers
                .dominant()
                .filter(|d| self.members.contains(d));
            self.shown = hold_shown(
                &self.shown,
                &order,
                self.speakers.speaking(),
                dominant,
                self.policy.last_n.saturating_add(1),
                now,
            );
            self.hold_expiry = hold_expiry(&self.shown, now);
            let shown: Vec<EndpointId> = self.shown.iter().map(|(id, _)| *id).collect();
            order.sort_by_key(|id| !shown.contains(id));
        } else {
            self.shown.clear();
            self.hold_expiry = None;
        }
        let rank: HashMap<EndpointId, usize> = order
            .into_iter()
            .enumerate()
            .map(|(i, id)| (id, i))
            .collect();
        let changed = rank != self.video_rank;
        self.video_rank = rank;
        changed
    }

    /// Marks the shown sites that talk now (speak among the loudest, or are the dominant
    /// speaker) as having talked now: each is held until [`MIN_SHOWN`] after it last talked,
    /// whenever the ranking was last made.
    fn note_talkers(&mut self, now: Instant) {
        let dominant = self.speakers.dominant();
        let speaking = self.speakers.speaking();
        for (id, talked) in &mut self.shown {
            if talks(*id, speaking, dominant) {
                *talked = Some(now);
            }
        }
        self.hold_expiry = hold_expiry(&self.shown, now);
    }

    /// An audio packet from `source` arrived: whether to forward it, and what changed.
    pub(crate) fn on_audio(
        &mut self,
        now: Instant,
        source: EndpointId,
        level: Option<i8>,
    ) -> AudioVerdict {
        let knew = self.speakers.knows(source);
        if let Some(level) = level {
            self.speakers.record(now, source, level);
        }
        // A source that starts reporting levels leaves the "unranked, always heard" group.
        let mut reassign = knew != self.speakers.knows(source);
        let mut change = None;
        if self.next_evaluation.is_none_or(|t| now >= t) {
            let loudest_before = self.speakers.loudest().to_vec();
            let speaking_before = self.speakers.speaking().to_vec();
            change = self.speakers.evaluate(now);
            self.next_evaluation = Some(now + SPEAKER_EVALUATION);
            let hold_ran_out = self.hold_expiry.is_some_and(|t| now >= t);
            self.note_talkers(now);
            // Who is heard, and how much each video matters, follow the loudest and the
            // dominant speaker; who is seen follows the ranks.
            let heard_changed = change.is_some() || loudest_before != self.speakers.loudest();
            if heard_changed || speaking_before != self.speakers.speaking() || hold_ran_out {
                let ranks_changed = self.rank_video(now);
                reassign |= heard_changed || ranks_changed;
            }
        }
        AudioVerdict {
            heard: self.may_be_heard(source),
            change,
            reassign,
        }
    }

    /// How many audio slots a receiver needs: one per voice that may be heard at once.
    pub(crate) fn audio_slots(&self) -> usize {
        match self.policy.mode {
            AudioMode::Floor => 2,
            AudioMode::Open if self.policy.loudest_n > 0 => self.policy.loudest_n + 1,
            AudioMode::Open => MAX_AUDIO_SLOTS,
        }
    }

    /// Whether `source`'s audio should have a slot at receivers, and its rank among those
    /// that should (lower first): the chair and floor holder, then the loudest, then voices
    /// without levels, in joining order.
    pub(crate) fn audio_rank(&self, source: EndpointId) -> Option<(u8, usize)> {
        if !self.may_be_heard(source) {
            return None;
        }
        let p = &self.policy;
        let group = if p.chair == Some(source) || p.floor_holder == Some(source) {
            0
        } else if self.speakers.is_loud(source) {
            1
        } else {
            2
        };
        Some((group, self.rank_of(source)))
    }

    /// The rank of `source`'s video among those a receiver should get (lower first): the
    /// floor, active speakers, then the gallery by last-N rank.
    pub(crate) fn video_order(&self, source: EndpointId) -> (u8, usize) {
        let group = match self.priority_of(source) {
            Priority::Floor => 0,
            Priority::Speaker => 1,
            Priority::Gallery => 2,
        };
        (group, self.rank_of(source))
    }

    fn rank_of(&self, id: EndpointId) -> usize {
        self.video_rank.get(&id).copied().unwrap_or(usize::MAX)
    }

    /// The current dominant speaker.
    pub(crate) fn dominant(&self) -> Option<EndpointId> {
        self.speakers.dominant()
    }

    /// How much `source`'s video matters to the others: the floor first, recent speakers next.
    pub(crate) fn priority_of(&self, source: EndpointId) -> Priority {
        if self.is_featured(source) {
            Priority::Floor
        } else if self
            .speakers
            .recent()
            .iter()
            .take(ACTIVE_SPEAKERS)
            .any(|s| *s == source)
        {
            Priority::Speaker
        } else {
            Priority::Gallery
        }
    }

    /// Whether `source`'s camera is one everyone sees large: the chair's, the floor holder's,
    /// the spotlighted site's.
    fn is_featured(&self, source: EndpointId) -> bool {
        let p = &self.policy;
        [p.chair, p.floor_holder, p.spotlight].contains(&Some(source))
    }

    /// Whether `source`'s content track (document, screen) is forwarded.
    pub(crate) fn presents(&self, source: EndpointId) -> bool {
        self.policy.presenter == Some(source)
    }

    fn may_be_heard(&self, source: EndpointId) -> bool {
        let p = &self.policy;
        if p.muted.contains(&source) {
            return false;
        }
        match p.mode {
            AudioMode::Floor => p.chair == Some(source) || p.floor_holder == Some(source),
            AudioMode::Open => {
                p.loudest_n == 0 || self.speakers.is_loud(source) || !self.speakers.knows(source)
            }
        }
    }
}

/// Whether `id` talks now, for the last-N hold: it speaks among the loudest, or is the dominant
/// speaker.
fn talks(id: EndpointId, speaking: &[EndpointId], dominant: Option<EndpointId>) -> bool {
    Some(id) == dominant || speaking.contains(&id)
}

/// When the first hold of `shown` runs out, if one has yet to.
fn hold_expiry(shown: &[(EndpointId, Option<Instant>)], now: Instant) -> Option<Instant> {
    shown
        .iter()
        .filter_map(|(_, talked)| talked.map(|t| t + MIN_SHOWN))
        .filter(|expiry| *expiry > now)
        .min()
}

/// The sites shown under last-N, each with when it last talked (spoke loud enough to rank
/// among the loudest, or was the dominant speaker) while shown: the `places` best of `desired`
/// (best first), except that a site keeps its place until [`MIN_SHOWN`] after it last talked,
/// and the dominant speaker takes a place at once, from the least wanted held one if it must.
/// In `desired` order.
fn hold_shown(
    shown: &[(EndpointId, Option<Instant>)],
    desired: &[EndpointId],
    talking: &[EndpointId],
    dominant: Option<EndpointId>,
    places: usize,
    now: Instant,
) -> Vec<(EndpointId, Option<Instant>)> {
    let last_talk = |id: &EndpointId| {
        if talks(*id, talking, dominant) {
            return Some(now);
        }
        shown.iter().find(|(s, _)| s == id).and_then(|(_, t)| *t)
    };
    let was_shown = |id: &EndpointId| shown.iter().any(|(s, _)| s == id);
    let held = |id: &EndpointId| {
        was_shown(id) && last_talk(id).is_some_and(|t| now.saturating_duration_since(t) < MIN_SHOWN)
    };
    // Those held, and the dominant speaker, in `desired` order (leavers are not in it).
    let mut next: Vec<EndpointId> = desired
        .iter()
        .filter(|id| held(id) || Some(**id) == dominant)
        .copied()
        .collect();
    while next.len() > places {
        // The least wanted that is not the dominant speaker.
        let Some(i) = next.iter().rposition(|id| Some(*id) != dominant) else {
            break;
        };
        next.remove(i);
    }
    for id in desired {
        if next.len() >= places {
            break;
        }
        if !next.contains(id) {
            next.push(*id);
        }
    }
    next.sort_by_key(|id| desired.iter().position(|d| d == id));
    next.into_iter().map(|id| (id, last_talk(&id))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[u64]) -> Vec<EndpointId> {
        list.iter().map(|i| EndpointId(*i)).collect()
    }

    fn shown_ids(shown: &[(EndpointId, Option<Instant>)]) -> Vec<u64> {
        shown.iter().map(|(id, _)| id.0).collect()
    }

    #[test]
    fn a_site_that_talked_keeps_its_place_for_the_minimum_then_yields() {
        let t0 = Instant::now();
        let shown = hold_shown(
            &[],
            &ids(&[1, 2, 3, 4, 5, 6]),
            &ids(&[1, 2, 3]),
            None,
            3,
            t0,
        );
        assert_eq!(shown_ids(&shown), [1, 2, 3]);

        // 5 and 6 talk now: wanted first, but 1–3 talked only a second ago.
        let desired = ids(&[5, 6, 1, 2, 3, 4]);
        let talking = ids(&[5, 6]);
        let t1 = t0 + Duration::from_secs(1);
        let held = hold_shown(&shown, &desired, &talking, None, 3, t1);
        assert_eq!(shown_ids(&held), [1, 2, 3]);

        // Once the minimum has passed since they talked, the talkers take the places of the
        // least wanted.
        let t2 = t0 + MIN_SHOWN;
        let after = hold_shown(&held, &desired, &talking, None, 3, t2);
        assert_eq!(shown_ids(&after), [5, 6, 1]);
        let talked: Vec<Option<Instant>> = after.iter().map(|(_, t)| *t).collect();
        assert_eq!(talked, [Some(t2), Some(t2), Some(t0)]);
    }

    #[test]
    fn sites_shown_only_to_fill_the_places_yield_at_once() {
        let t0 = Instant::now();
        let shown = hold_shown(&[], &ids(&[1, 2, 3, 4, 5]), &[], None, 3, t0);
        assert_eq!(shown_ids(&shown), [1, 2, 3]);
        let next = hold_shown(&shown, &ids(&[5, 1, 2, 3, 4]), &ids(&[5]), None, 3, t0);
        assert_eq!(shown_ids(&next), [5, 1, 2]);
    }

    #[test]
    fn the_dominant_speaker_is_shown_at_once_in_place_of_the_least_wanted_held() {
        let t0 = Instant::now();
        let shown = hold_shown(&[], &ids(&[1, 2, 3, 4]), &ids(&[1, 2, 3]), None, 3, t0);
        let t1 = t0 + Duration::from_millis(500);
        let next = hold_shown(&shown, &ids(&[4, 1, 2, 3]), &[], Some(EndpointId(4)), 3, t1);
        assert_eq!(shown_ids(&next), [4, 1, 2]);
    }

    #[test]
    fn leavers_free_their_places_at_once() {
        let t0 = Instant::now();
        let shown = hold_shown(&[], &ids(&[1, 2, 3, 4]), &ids(&[1, 2, 3]), None, 3, t0);
        // 2 left: it is no longer among the members, so not in `desired`.
        let next = hold_shown(&shown, &ids(&[1, 3, 4]), &ids(&[1, 3]), None, 3, t0);
        assert_eq!(shown_ids(&next), [1, 3, 4]);
    }

    #[test]
    fn with_many_rooms_talking_the_shown_set_changes_no_faster_than_the_hold_allows() {
        // 30 members; every 100 ms three others are the loudest, as in a meeting where all
        // rooms talk. Nine places plus one.
        let t0 = Instant::now();
        let members: Vec<u64> = (1..=30).collect();
        let mut shown = Vec::new();
        let mut entries = 0;
        let steps = 600; // 60 s
        for step in 0..steps {
            let now = t0 + Duration::from_millis(100) * step;
            let loud: Vec<u64> = (0..3)
                .map(|k| 1 + (u64::from(step) * 7 + k * 11) % 30)
                .collect();
            let mut desired = loud.clone();
            desired.extend(members.iter().filter(|m| !loud.contains(m)));
            let next = hold_shown(&shown, &ids(&desired), &ids(&loud), None, 10, now);
            entries += next
                .iter()
                .filter(|(id, _)| !shown.iter().any(|(s, _)| s == id))
                .count();
            shown = next;
            assert_eq!(shown.len(), 10);
        }
        // After the first ten, each place takes a new site at most once per MIN_SHOWN; without
        // the hold it would be three every step.
        let bound = 10 + 10 * (steps as usize / 10) / MIN_SHOWN.as_secs() as usize;
        assert!(
            entries <= bound,
            "{entries} new sites shown, at most {bound} expected"
        );
        assert!(entries > 10, "the talkers must get in");
    }
}
