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
    /// the others in joining order; the chair and floor holder always (0: all).
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
    /// Each member's rank for last-N: recent speakers first, then joining order.
    video_rank: HashMap<EndpointId, usize>,
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
        }
    }

    pub(crate) fn policy(&self) -> &MediaPolicy {
        &self.policy
    }

    pub(crate) fn set_policy(&mut self, policy: MediaPolicy) {
        if policy.loudest_n != self.policy.loudest_n {
            self.speakers = SpeakerDetector::new(policy.loudest_n);
        }
        self.policy = policy;
        self.rank_video();
    }

    pub(crate) fn add(&mut self, id: EndpointId) {
        self.members.push(id);
        self.rank_video();
    }

    pub(crate) fn remove(&mut self, id: EndpointId) {
        self.members.retain(|m| *m != id);
        self.speakers.remove(id);
        self.rank_video();
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

    fn rank_video(&mut self) {
        self.video_rank.clear();
        // Who spoke last first, then who speaks now without having been dominant yet, then
        // everyone else in joining order.
        let recent = self
            .speakers
            .recent()
            .iter()
            .chain(self.speakers.speaking())
            .filter(|s| self.members.contains(s));
        for id in recent.chain(self.members.iter()) {
            let next = self.video_rank.len();
            self.video_rank.entry(*id).or_insert(next);
        }
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
            if change.is_some()
                || loudest_before != self.speakers.loudest()
                || speaking_before != self.speakers.speaking()
            {
                self.rank_video();
                reassign = true;
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
