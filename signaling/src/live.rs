//! A meeting while it runs: who is in it from which site, roll call, and the chair's floor
//! control, as a pure state machine (no sockets, no clock, no database), so that every rule is
//! tested directly. The hub drives it and carries out what it decides: the media policy goes to
//! the SFU, which enforces it whatever the clients do; the moderation state goes to the
//! database, so that it survives a restart.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sfu::{AudioMode, EndpointId, MediaPolicy};

use crate::auth::Role;

/// Who a participant is, as their session proved it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Who {
    /// The site they take part for: a room terminal's, or a person's own.
    pub site_id: Option<i64>,
    /// The person logged in, if any.
    pub person_id: Option<i64>,
    /// The person's role.
    pub role: Option<Role>,
    /// Logged in with the site's device credential (a room terminal).
    pub terminal: bool,
    /// How the audit log names it (`person:<username>`, `site:<id>`, `guest`).
    pub actor: String,
}

/// The moderation state that survives a restart (stored with the meeting).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Moderation {
    /// The site that holds the floor.
    pub floor: Option<i64>,
    /// Sites whose audio is not forwarded.
    pub muted: BTreeSet<i64>,
    /// No site that has not been in the meeting yet may join.
    pub locked: bool,
    /// The site the chair shows to everyone large.
    pub spotlight: Option<i64>,
}

/// What the hub knows of a meeting when it goes live.
#[derive(Debug, Clone, Default)]
pub struct Setup {
    /// The chair (a person).
    pub chair_id: Option<i64>,
    /// Floor mode: only the chair and the floor holder are heard.
    pub floor_mode: bool,
    /// Last-N video (0: all).
    pub last_n: usize,
    /// Invited sites and their names, in roll-call order.
    pub invited: Vec<(i64, String)>,
    /// Moderation state stored before (after a restart).
    pub moderation: Moderation,
    /// Sites that have been in the meeting (attendance): they may come back when it is locked.
    pub attended: BTreeSet<i64>,
}

/// A chair's or a site's floor-control command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// A site asks for the floor.
    Request,
    /// A site withdraws its request.
    Withdraw,
    /// The chair gives the floor to a site (asked for or not).
    Grant(i64),
    /// The chair turns a request down.
    Refuse(i64),
    /// The chair takes the floor back.
    Revoke,
    /// The chair mutes or unmutes one site.
    Mute(i64, bool),
    /// The chair mutes or unmutes every site but the chair's.
    MuteAll(bool),
    /// The chair locks or unlocks the meeting.
    Lock(bool),
    /// The chair shows a site to everyone large, or stops (`None`).
    Spotlight(Option<i64>),
    /// A participant starts or stops presenting a document or screen. The chair may take
    /// over another's presentation, and stop it.
    Share(bool),
}

/// Why a command or a join was refused; each has a stable code for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Only the chair (or an administrator) may do this.
    #[error("only the chair may do this")]
    NotChair,
    /// A guest (no login) at a scheduled meeting.
    #[error("this meeting is for invited sites: log in first")]
    LoginRequired,
    /// The participant takes part for no site.
    #[error("only a site can do this")]
    NoSite,
    /// The site is not invited.
    #[error("site {0} is not invited to this meeting")]
    NotInvited(i64),
    /// The site did not ask for the floor.
    #[error("site {0} has not asked for the floor")]
    NotRequested(i64),
    /// The meeting is locked.
    #[error("the meeting is locked: no new site may join")]
    Locked,
    /// Someone else presents.
    #[error("another participant is presenting: ask the chair")]
    Presenting,
}

impl Refusal {
    /// The stable code sent to the client.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotChair => "not_chair",
            Self::LoginRequired => "login_required",
            Self::NoSite => "no_site",
            Self::NotInvited(_) => "not_invited",
            Self::NotRequested(_) => "not_requested",
            Self::Locked => "meeting_locked",
            Self::Presenting => "someone_presents",
        }
    }
}

/// What changed, for the hub to carry out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Changed {
    /// The stored moderation state (persist it, re-send the media policy).
    pub moderation: bool,
    /// The floor queue (tell everyone).
    pub queue: bool,
    /// Who presents (tell everyone, re-send the media policy; not stored).
    pub presenter: bool,
}

/// A site's place in roll call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    /// No session of the site is connected.
    Offline,
    /// Its terminal (or a person of the site) is connected to signaling, not in the meeting.
    Connected,
    /// In the meeting.
    Joined,
}

/// One invited site in roll call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollCallEntry {
    /// The site.
    pub site: i64,
    /// Its name.
    pub name: String,
    /// Offline, connected or in the meeting.
    pub presence: Presence,
    /// Its audio arrives at the SFU.
    pub audio: bool,
    /// Its video arrives at the SFU.
    pub video: bool,
    /// How many simulcast layers of it arrive.
    pub video_layers: u8,
}

#[derive(Debug, Clone)]
struct Member {
    who: Who,
    audio: bool,
    video_layers: u8,
}

/// A live meeting.
#[derive(Debug, Clone)]
pub struct Live {
    setup: Setup,
    invited: BTreeSet<i64>,
    members: BTreeMap<u64, Member>,
    /// Sites asking for the floor, first asked first.
    queue: Vec<i64>,
    /// The participant presenting a document or screen.
    presenter: Option<u64>,
}

impl Live {
    /// A meeting going live.
    pub fn new(setup: Setup) -> Self {
        let invited = setup.invited.iter().map(|(id, _)| *id).collect();
        Self {
            setup,
            invited,
            members: BTreeMap::new(),
            queue: Vec::new(),
            presenter: None,
        }
    }

    /// Whether the meeting has an invitation list (the demo meeting has none: anyone enters).
    pub fn is_scheduled(&self) -> bool {
        !self.setup.invited.is_empty() || self.setup.chair_id.is_some()
    }

    /// Whether `who` chairs: the meeting's chair, or an administrator.
    pub fn is_chair(&self, who: &Who) -> bool {
        who.role == Some(Role::Administrator) || self.is_named_chair(who)
    }

    /// Whether `who` is the person named as the meeting's chair (administrators moderate, but
    /// clients show the chair, not them, large).
    pub fn is_named_chair(&self, who: &Who) -> bool {
        who.person_id.is_some() && who.person_id == self.setup.chair_id
    }

    /// Whether `who` sees roll call: the chair, administrators and technicians.
    pub fn sees_roll_call(&self, who: &Who) -> bool {
        self.is_chair(who) || who.role == Some(Role::Technician)
    }

    /// Whether `who` may enter now.
    pub fn may_join(&self, who: &Who) -> Result<(), Refusal> {
        if !self.is_scheduled() || self.is_chair(who) || who.role == Some(Role::Technician) {
            return Ok(());
        }
        if who.person_id.is_none() && who.site_id.is_none() {
            return Err(Refusal::LoginRequired);
        }
        let site = who.site_id.ok_or(Refusal::NoSite)?;
        if !self.invited.contains(&site) {
            return Err(Refusal::NotInvited(site));
        }
        if self.setup.moderation.locked && !self.setup.attended.contains(&site) {
            return Err(Refusal::Locked);
        }
        Ok(())
    }

    /// A participant entered.
    pub fn join(&mut self, id: u64, who: Who) {
        if let Some(site) = who.site_id {
            self.setup.attended.insert(site);
        }
        self.members.insert(
            id,
            Member {
                who,
                audio: false,
                video_layers: 0,
            },
        );
    }

    /// A participant left; returns what changed (a leaving site's request is withdrawn).
    pub fn leave(&mut self, id: u64) -> Changed {
        let Some(m) = self.members.remove(&id) else {
            return Changed::default();
        };
        let mut changed = Changed::default();
        if self.presenter == Some(id) {
            self.presenter = None;
            changed.presenter = true;
        }
        if let Some(site) = m.who.site_id
            && !self.members.values().any(|o| o.who.site_id == Some(site))
            && let Some(i) = self.queue.iter().position(|s| *s == site)
        {
            self.queue.remove(i);
            changed.queue = true;
        }
        changed
    }

    /// A terminal's participant of `site` already in the meeting (a second device replaces it).
    pub fn terminal_of(&self, site: i64) -> Option<u64> {
        self.members
            .iter()
            .find(|(_, m)| m.who.terminal && m.who.site_id == Some(site))
            .map(|(id, _)| *id)
    }

    /// What arrives from a participant changed (audio; how many video layers). Returns
    /// whether roll call changed.
    pub fn media(&mut self, id: u64, audio: bool, video_layers: u8) -> bool {
        match self.members.get_mut(&id) {
            Some(m) if (m.audio, m.video_layers) != (audio, video_layers) => {
                (m.audio, m.video_layers) = (audio, video_layers);
                m.who.site_id.is_some()
            }
            _ => false,
        }
    }

    /// Carries out a command from participant `actor`.
    pub fn apply(&mut self, actor: u64, command: Command) -> Result<Changed, Refusal> {
        let who = self
            .members
            .get(&actor)
            .map(|m| m.who.clone())
            .unwrap_or_default();
        let chair = self.is_chair(&who);
        let chair_only = !matches!(
            command,
            Command::Request | Command::Withdraw | Command::Share(_)
        );
        if chair_only && !chair {
            return Err(Refusal::NotChair);
        }
        let chair_sites = self.chair_sites();
        let scheduled = self.is_scheduled();
        let moderation = &mut self.setup.moderation;
        let mut changed = Changed::default();
        match command {
            Command::Request => {
                let site = who.site_id.ok_or(Refusal::NoSite)?;
                if !self.queue.contains(&site) && moderation.floor != Some(site) {
                    self.queue.push(site);
                    changed.queue = true;
                }
            }
            Command::Withdraw => {
                let site = who.site_id.ok_or(Refusal::NoSite)?;
                if let Some(i) = self.queue.iter().position(|s| *s == site) {
                    self.queue.remove(i);
                    changed.queue = true;
                }
            }
            Command::Grant(site) => {
                if !self.invited.contains(&site) {
                    return Err(Refusal::NotInvited(site));
                }
                if let Some(i) = self.queue.iter().position(|s| *s == site) {
                    self.queue.remove(i);
                    changed.queue = true;
                }
                if moderation.floor != Some(site) {
                    moderation.floor = Some(site);
                    changed.moderation = true;
                }
            }
            Command::Refuse(site) => {
                let i = self
                    .queue
                    .iter()
                    .position(|s| *s == site)
                    .ok_or(Refusal::NotRequested(site))?;
                self.queue.remove(i);
                changed.queue = true;
            }
            Command::Revoke => {
                changed.moderation = moderation.floor.take().is_some();
            }
            Command::Mute(site, muted) => {
                if !self.invited.contains(&site) {
                    return Err(Refusal::NotInvited(site));
                }
                changed.moderation = if muted {
                    moderation.muted.insert(site)
                } else {
                    moderation.muted.remove(&site)
                };
            }
            Command::MuteAll(muted) => {
                let before = moderation.muted.clone();
                moderation.muted = if muted {
                    self.invited
                        .iter()
                        .filter(|s| !chair_sites.contains(s))
                        .copied()
                        .collect()
                } else {
                    BTreeSet::new()
                };
                changed.moderation = before != moderation.muted;
            }
            Command::Lock(locked) => {
                changed.moderation = moderation.locked != locked;
                moderation.locked = locked;
            }
            Command::Spotlight(site) => {
                if let Some(site) = site
                    && !self.invited.contains(&site)
                    && scheduled
                {
                    return Err(Refusal::NotInvited(site));
                }
                changed.moderation = moderation.spotlight != site;
                moderation.spotlight = site;
            }
            Command::Share(on) => {
                let next = match (on, self.presenter) {
                    (true, Some(other)) if other != actor && !chair => {
                        return Err(Refusal::Presenting);
                    }
                    (true, _) => Some(actor),
                    (false, Some(current)) if current != actor && !chair => {
                        return Err(Refusal::NotChair);
                    }
                    (false, _) => None,
                };
                changed.presenter = self.presenter != next;
                self.presenter = next;
            }
        }
        Ok(changed)
    }

    /// The sites the chair takes part from.
    fn chair_sites(&self) -> BTreeSet<i64> {
        self.members
            .values()
            .filter(|m| self.is_chair(&m.who) && m.who.role != Some(Role::Administrator))
            .filter_map(|m| m.who.site_id)
            .collect()
    }

    /// The latest participant of `site`.
    fn endpoint_of(&self, site: i64) -> Option<u64> {
        self.members
            .iter()
            .rev()
            .find(|(_, m)| m.who.site_id == Some(site))
            .map(|(id, _)| *id)
    }

    /// What the SFU must enforce.
    pub fn policy(&self) -> MediaPolicy {
        let chair = self
            .members
            .iter()
            .rev()
            .find(|(_, m)| self.is_named_chair(&m.who))
            .map(|(id, _)| EndpointId(*id));
        let moderation = &self.setup.moderation;
        MediaPolicy {
            mode: if self.setup.floor_mode {
                AudioMode::Floor
            } else {
                AudioMode::Open
            },
            chair,
            floor_holder: moderation
                .floor
                .and_then(|s| self.endpoint_of(s))
                .map(EndpointId),
            muted: self
                .members
                .iter()
                .filter(|(id, m)| {
                    m.who.site_id.is_some_and(|s| moderation.muted.contains(&s))
                        && Some(EndpointId(**id)) != chair
                })
                .map(|(id, _)| EndpointId(*id))
                .collect(),
            last_n: self.setup.last_n,
            spotlight: moderation
                .spotlight
                .and_then(|s| self.endpoint_of(s))
                .map(EndpointId),
            presenter: self.presenter.map(EndpointId),
            ..MediaPolicy::default()
        }
    }

    /// The participant presenting a document or screen.
    pub fn presenter(&self) -> Option<u64> {
        self.presenter
    }

    /// The moderation state to store.
    pub fn moderation(&self) -> &Moderation {
        &self.setup.moderation
    }

    /// Sites asking for the floor, first asked first.
    pub fn queue(&self) -> &[i64] {
        &self.queue
    }

    /// Whether `site` is invited.
    pub fn invites(&self, site: i64) -> bool {
        self.invited.contains(&site)
    }

    /// Every invited site's presence and media; `online` counts each site's connected sessions.
    pub fn roll_call(&self, online: &BTreeMap<i64, usize>) -> Vec<RollCallEntry> {
        self.setup
            .invited
            .iter()
            .map(|(site, name)| {
                let members: Vec<&Member> = self
                    .members
                    .values()
                    .filter(|m| m.who.site_id == Some(*site))
                    .collect();
                let presence = if !members.is_empty() {
                    Presence::Joined
                } else if online.get(site).is_some_and(|n| *n > 0) {
                    Presence::Connected
                } else {
                    Presence::Offline
                };
                RollCallEntry {
                    site: *site,
                    name: name.clone(),
                    presence,
                    audio: members.iter().any(|m| m.audio),
                    video: members.iter().any(|m| m.video_layers > 0),
                    video_layers: members.iter().map(|m| m.video_layers).max().unwrap_or(0),
                }
            })
            .collect()
    }

    /// Whether anyone is in the meeting.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHAIR: i64 = 100;

    fn setup() -> Setup {
        Setup {
            chair_id: Some(CHAIR),
            floor_mode: true,
            last_n: 9,
            invited: (1..=5).map(|s| (s, format!("Xã {s}"))).collect(),
            ..Setup::default()
        }
    }

    fn site(s: i64) -> Who {
        Who {
            site_id: Some(s),
            terminal: true,
            ..Who::default()
        }
    }

    fn chair() -> Who {
        Who {
            site_id: Some(1),
            person_id: Some(CHAIR),
            role: Some(Role::Chair),
            terminal: false,
            actor: "person:chair".into(),
        }
    }

    /// Chair at site 1 as participant 10; sites 2, 3, 4 as participants 2, 3, 4.
    fn meeting() -> Live {
        let mut live = Live::new(setup());
        live.join(10, chair());
        for s in 2..=4 {
            live.join(s as u64, site(s));
        }
        live
    }

    #[test]
    fn a_request_granted_makes_its_site_heard_and_taking_it_back_silences_it() {
        let mut live = meeting();
        assert_eq!(live.policy().mode, AudioMode::Floor);
        assert_eq!(live.policy().chair, Some(EndpointId(10)));
        assert_eq!(live.policy().floor_holder, None);

        assert_eq!(live.apply(3, Command::Request).map(|c| c.queue), Ok(true));
        assert_eq!(live.apply(2, Command::Request).map(|c| c.queue), Ok(true));
        assert_eq!(live.queue(), [3, 2]);
        // A site cannot grant itself the floor.
        assert_eq!(live.apply(3, Command::Grant(3)), Err(Refusal::NotChair));

        let c = live.apply(10, Command::Grant(3)).expect("chair grants");
        assert!(c.moderation && c.queue);
        assert_eq!(live.queue(), [2]);
        assert_eq!(live.policy().floor_holder, Some(EndpointId(3)));
        assert_eq!(live.moderation().floor, Some(3));

        live.apply(10, Command::Refuse(2)).expect("chair refuses");
        assert!(live.queue().is_empty());
        assert_eq!(
            live.apply(10, Command::Refuse(2)),
            Err(Refusal::NotRequested(2))
        );

        assert!(live.apply(10, Command::Revoke).expect("revoke").moderation);
        assert_eq!(live.policy().floor_holder, None);
        assert!(!live.apply(10, Command::Revoke).expect("again").moderation);
    }

    #[test]
    fn muting_is_by_site_and_never_mutes_the_chair() {
        let mut live = meeting();
        live.apply(10, Command::Mute(2, true)).expect("mute");
        assert_eq!(live.policy().muted, vec![EndpointId(2)]);
        live.apply(10, Command::MuteAll(true)).expect("mute all");
        assert_eq!(
            live.policy().muted,
            vec![EndpointId(2), EndpointId(3), EndpointId(4)]
        );
        assert_eq!(live.moderation().muted, BTreeSet::from([2, 3, 4, 5]));
        // Site 5 arrives: it is muted on arrival.
        live.join(5, site(5));
        assert!(live.policy().muted.contains(&EndpointId(5)));
        live.apply(10, Command::MuteAll(false)).expect("unmute all");
        assert!(live.policy().muted.is_empty());
        assert_eq!(
            live.apply(4, Command::Mute(2, false)),
            Err(Refusal::NotChair)
        );
        assert_eq!(
            live.apply(10, Command::Mute(99, true)),
            Err(Refusal::NotInvited(99))
        );
    }

    #[test]
    fn who_may_join() {
        let mut live = meeting();
        assert_eq!(live.may_join(&site(5)), Ok(()));
        assert_eq!(live.may_join(&site(9)), Err(Refusal::NotInvited(9)));
        assert_eq!(live.may_join(&Who::default()), Err(Refusal::LoginRequired));
        let siteless = Who {
            person_id: Some(8),
            role: Some(Role::Participant),
            ..Who::default()
        };
        assert_eq!(live.may_join(&siteless), Err(Refusal::NoSite));
        let technician = Who {
            role: Some(Role::Technician),
            person_id: Some(7),
            ..Who::default()
        };
        assert_eq!(live.may_join(&technician), Ok(()));
        live.apply(10, Command::Lock(true)).expect("lock");
        assert_eq!(live.may_join(&site(5)), Err(Refusal::Locked));
        // A site that was in comes back (a reconnect), and the chair always may.
        live.leave(3);
        assert_eq!(live.may_join(&site(3)), Ok(()));
        assert_eq!(live.may_join(&chair()), Ok(()));
        // The demo meeting (no invitations) lets anyone in.
        assert_eq!(
            Live::new(Setup::default()).may_join(&Who::default()),
            Ok(())
        );
    }

    #[test]
    fn roll_call_shows_each_invited_site() {
        let mut live = Live::new(setup());
        let mut online = BTreeMap::from([(2, 1)]);
        live.join(3, site(3));
        live.join(4, site(4));
        assert!(live.media(4, true, 0));
        assert!(!live.media(4, true, 0), "no change, no news");
        let rc = live.roll_call(&online);
        let summary: Vec<(i64, Presence, bool, bool)> = rc
            .iter()
            .map(|e| (e.site, e.presence, e.audio, e.video))
            .collect();
        assert_eq!(
            summary,
            vec![
                (1, Presence::Offline, false, false),
                (2, Presence::Connected, false, false),
                (3, Presence::Joined, false, false),
                (4, Presence::Joined, true, false),
                (5, Presence::Offline, false, false),
            ]
        );
        assert_eq!(rc[0].name, "Xã 1");
        online.insert(2, 0);
        assert_eq!(live.roll_call(&online)[1].presence, Presence::Offline);
    }

    #[test]
    fn a_site_that_leaves_drops_out_of_the_queue() {
        let mut live = meeting();
        live.apply(4, Command::Request).expect("request");
        assert!(live.leave(4).queue);
        assert!(live.queue().is_empty());
        assert_eq!(live.terminal_of(3), Some(3));
        assert_eq!(live.terminal_of(1), None, "the chair is no terminal");
    }

    #[test]
    fn moderation_stored_before_a_restart_applies_again() {
        let mut s = setup();
        s.moderation = Moderation {
            floor: Some(3),
            muted: BTreeSet::from([2]),
            locked: true,
            spotlight: Some(2),
        };
        s.attended = BTreeSet::from([2, 3]);
        let mut live = Live::new(s);
        assert_eq!(live.may_join(&site(3)), Ok(()));
        assert_eq!(live.may_join(&site(4)), Err(Refusal::Locked));
        live.join(2, site(2));
        live.join(3, site(3));
        let p = live.policy();
        assert_eq!(p.floor_holder, Some(EndpointId(3)));
        assert_eq!(p.muted, vec![EndpointId(2)]);
        assert_eq!(p.spotlight, Some(EndpointId(2)));
    }

    #[test]
    fn the_chair_spotlights_an_invited_site() {
        let mut live = meeting();
        assert_eq!(
            live.apply(2, Command::Spotlight(Some(3))),
            Err(Refusal::NotChair)
        );
        assert_eq!(
            live.apply(10, Command::Spotlight(Some(9))),
            Err(Refusal::NotInvited(9))
        );
        let c = live
            .apply(10, Command::Spotlight(Some(3)))
            .expect("spotlight");
        assert!(c.moderation, "stored: it survives a restart");
        assert_eq!(live.policy().spotlight, Some(EndpointId(3)));
        assert_eq!(live.moderation().spotlight, Some(3));
        live.apply(10, Command::Spotlight(None)).expect("off");
        assert_eq!(live.policy().spotlight, None);
    }

    #[test]
    fn one_presenter_at_a_time_and_the_chair_may_take_over_or_stop_it() {
        let mut live = meeting();
        let c = live
            .apply(2, Command::Share(true))
            .expect("site 2 presents");
        assert!(c.presenter && !c.moderation, "told to all, not stored");
        assert_eq!(live.presenter(), Some(2));
        assert_eq!(live.policy().presenter, Some(EndpointId(2)));
        assert_eq!(
            live.apply(3, Command::Share(true)),
            Err(Refusal::Presenting)
        );
        assert_eq!(
            live.apply(3, Command::Share(false)),
            Err(Refusal::NotChair),
            "nor may another site stop it"
        );
        assert!(
            !live
                .apply(2, Command::Share(true))
                .expect("again")
                .presenter
        );

        // The chair takes over, then stops; a site then presents and leaves.
        live.apply(10, Command::Share(true))
            .expect("chair takes over");
        assert_eq!(live.presenter(), Some(10));
        live.apply(10, Command::Share(false)).expect("chair stops");
        assert_eq!(live.policy().presenter, None);
        live.apply(4, Command::Share(true))
            .expect("site 4 presents");
        assert!(live.leave(4).presenter);
        assert_eq!(live.presenter(), None);
    }
}
