//! The hub: the one owner of who is in which meeting right now.
//!
//! WebSocket sessions and the SFU talk to it by messages; it keeps each participant's outbox,
//! tells the others when someone enters or leaves, and runs each scheduled meeting's live state
//! ([`Live`]): it hands the SFU the media policy to enforce, stores moderation and attendance,
//! and sends roll call to those who see it. No locks: one task owns the state.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sfu::{EndpointId, MediaPolicy, MeetingId, SfuEvent, SfuHandle, SlotKind};
use tokio::sync::{mpsc, oneshot};

use crate::attendance;
use crate::db::Db;
use crate::live::{Command, Live, Refusal, RollCallEntry, Setup, Who};
use crate::protocol::{MeetingInfo, ParticipantInfo, ServerMsg, SlotMsg};

/// How many messages may wait for a slow client before it is disconnected.
pub const OUTBOX_CAPACITY: usize = 256;
/// Roll call goes out at most this often while it changes.
const ROLL_CALL_EVERY: Duration = Duration::from_secs(1);

/// Live counts for `/metrics`.
#[derive(Debug, Default)]
pub struct HubGauges {
    /// Participants in any meeting.
    pub participants: AtomicU64,
    /// Meetings with at least one participant.
    pub meetings: AtomicU64,
}

/// What a joining session gets back.
#[derive(Debug)]
pub struct Joined {
    /// Its participant id (also its SFU endpoint id).
    pub id: u64,
    /// Everyone else in the meeting.
    pub others: Vec<ParticipantInfo>,
}

/// A request to enter a meeting.
pub struct JoinRequest {
    /// The meeting.
    pub meeting: MeetingInfo,
    /// Display name.
    pub name: String,
    /// Who the session proved to be.
    pub who: Who,
    /// The meeting's live set-up, used if it is not live yet.
    pub setup: Setup,
    /// Where this participant's messages go.
    pub outbox: mpsc::Sender<ServerMsg>,
}

enum HubMsg {
    Join {
        request: Box<JoinRequest>,
        reply: oneshot::Sender<Result<Joined, Refusal>>,
    },
    Leave {
        id: u64,
    },
    Command {
        id: u64,
        command: Command,
        reply: oneshot::Sender<Result<(), Refusal>>,
    },
    Online {
        site: i64,
        connected: bool,
    },
    Terminal {
        site: i64,
        key: u64,
        commands: Option<mpsc::Sender<ServerMsg>>,
    },
    Health {
        site: i64,
        report: Box<crate::protocol::HealthReport>,
    },
    GetHealth {
        site: i64,
        reply: oneshot::Sender<Option<(crate::protocol::HealthReport, Duration)>>,
    },
    Placed {
        reply: oneshot::Sender<Vec<crate::quality::Placed>>,
    },
    Healths {
        reply: oneshot::Sender<Vec<(i64, crate::protocol::HealthReport, Duration)>>,
    },
    /// A quality message for those of a meeting who see roll call.
    ToViewers {
        meeting: i64,
        msg: ServerMsg,
    },
    /// What a participant's browser decodes.
    ClientStats {
        id: u64,
        stats: crate::protocol::ClientStats,
    },
    /// A message for the dashboards following a meeting only.
    ToWatchers {
        meeting: i64,
        msg: ServerMsg,
    },
    /// A dashboard session follows a meeting (`None`: stops).
    Watch {
        key: u64,
        watch: Option<(i64, mpsc::Sender<ServerMsg>)>,
    },
    SendCommand {
        site: i64,
        command: ServerMsg,
        reply: oneshot::Sender<bool>,
    },
    RollCall {
        meeting: i64,
        setup: Box<Setup>,
        reply: oneshot::Sender<Vec<RollCallEntry>>,
    },
    /// The meeting ended or was called off: everyone in it is told and let go.
    Over {
        meeting: i64,
    },
    Sfu(SfuEvent),
    Tick,
}

struct Participant {
    meeting: i64,
    name: String,
    who: Who,
    outbox: mpsc::Sender<ServerMsg>,
    /// Its attendance row, in a scheduled meeting.
    attendance: Option<i64>,
    /// What its browser last said it decodes.
    client: Option<crate::protocol::ClientStats>,
}

/// The sending side of the hub. Cheap to clone.
#[derive(Clone)]
pub struct Hub {
    tx: mpsc::UnboundedSender<HubMsg>,
    gauges: Arc<HubGauges>,
}

impl Hub {
    /// Starts the hub task. It consumes the SFU's events.
    pub fn spawn(
        db: Db,
        sfu: SfuHandle,
        mut sfu_events: mpsc::UnboundedReceiver<SfuEvent>,
    ) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let gauges = Arc::new(HubGauges::default());
        let forward = tx.clone();
        tokio::spawn(async move {
            while let Some(event) = sfu_events.recv().await {
                if forward.send(HubMsg::Sfu(event)).is_err() {
                    return;
                }
            }
        });
        let ticks = tx.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(ROLL_CALL_EVERY);
            loop {
                every.tick().await;
                if ticks.send(HubMsg::Tick).is_err() {
                    return;
                }
            }
        });
        let mut state = HubState {
            participants: HashMap::new(),
            live: HashMap::new(),
            policies: HashMap::new(),
            online: BTreeMap::new(),
            terminals: HashMap::new(),
            watchers: HashMap::new(),
            health: HashMap::new(),
            roll_call_due: BTreeSet::new(),
            ticks: 0,
            next_id: 1,
            db,
            sfu,
            gauges: gauges.clone(),
        };
        tokio::spawn(async move {
            while let Some(msg) = rx.recv().await {
                state.handle(msg).await;
            }
        });
        Self { tx, gauges }
    }

    /// Enters a meeting. Messages for this participant go to the request's outbox; when the
    /// hub drops it (the participant was removed), the session should close. `None`: the hub
    /// is gone.
    pub async fn join(&self, request: JoinRequest) -> Option<Result<Joined, Refusal>> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(HubMsg::Join {
                request: Box::new(request),
                reply,
            })
            .ok()?;
        rx.await.ok()
    }

    /// Leaves (idempotent).
    pub fn leave(&self, id: u64) {
        let _ = self.tx.send(HubMsg::Leave { id });
    }

    /// A meeting ended or was called off: its participants are told and let go.
    pub fn meeting_over(&self, meeting: i64) {
        let _ = self.tx.send(HubMsg::Over { meeting });
    }

    /// A floor-control or moderation command from participant `id`.
    pub async fn command(&self, id: u64, command: Command) -> Option<Result<(), Refusal>> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(HubMsg::Command { id, command, reply }).ok()?;
        rx.await.ok()
    }

    /// A session of `site` connected to signaling (`true`) or went away: roll call shows it.
    pub fn online(&self, site: i64, connected: bool) {
        let _ = self.tx.send(HubMsg::Online { site, connected });
    }

    /// A room terminal's session connected (with where its commands go) or went away.
    pub fn terminal(&self, site: i64, key: u64, commands: Option<mpsc::Sender<ServerMsg>>) {
        let _ = self.tx.send(HubMsg::Terminal {
            site,
            key,
            commands,
        });
    }

    /// A terminal's health report.
    pub fn health(&self, site: i64, report: crate::protocol::HealthReport) {
        let _ = self.tx.send(HubMsg::Health {
            site,
            report: Box::new(report),
        });
    }

    /// `site`'s latest health report and its age.
    pub async fn latest_health(
        &self,
        site: i64,
    ) -> Option<(crate::protocol::HealthReport, Duration)> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(HubMsg::GetHealth { site, reply }).ok()?;
        rx.await.ok().flatten()
    }

    /// Sends a command to `site`'s terminal (its latest session); false if none is connected.
    pub async fn command_terminal(&self, site: i64, command: ServerMsg) -> bool {
        let (reply, rx) = oneshot::channel();
        if self
            .tx
            .send(HubMsg::SendCommand {
                site,
                command,
                reply,
            })
            .is_err()
        {
            return false;
        }
        rx.await.unwrap_or(false)
    }

    /// Roll call of `meeting` now (from `setup` if it is not live).
    pub async fn roll_call(&self, meeting: i64, setup: Setup) -> Option<Vec<RollCallEntry>> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(HubMsg::RollCall {
                meeting,
                setup: Box::new(setup),
                reply,
            })
            .ok()?;
        rx.await.ok()
    }

    /// Every participant now: its meeting and site.
    pub async fn placed(&self) -> Vec<crate::quality::Placed> {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(HubMsg::Placed { reply }).is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// What participant `id`'s browser decodes.
    pub fn client_stats(&self, id: u64, stats: crate::protocol::ClientStats) {
        let _ = self.tx.send(HubMsg::ClientStats { id, stats });
    }

    /// Sends `msg` to the dashboards following `meeting`.
    pub fn to_watchers(&self, meeting: i64, msg: ServerMsg) {
        let _ = self.tx.send(HubMsg::ToWatchers { meeting, msg });
    }

    /// A dashboard session (`key`) follows `meeting`'s roll call and quality through `tx`;
    /// `None` stops it.
    pub fn watch(&self, key: u64, watch: Option<(i64, mpsc::Sender<ServerMsg>)>) {
        let _ = self.tx.send(HubMsg::Watch { key, watch });
    }

    /// Sends `msg` to those in `meeting` who see roll call (chair, administrators, technicians).
    pub fn to_viewers(&self, meeting: i64, msg: ServerMsg) {
        let _ = self.tx.send(HubMsg::ToViewers { meeting, msg });
    }

    /// Every terminal's latest health report and its age.
    pub async fn healths(&self) -> Vec<(i64, crate::protocol::HealthReport, Duration)> {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(HubMsg::Healths { reply }).is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// Live counts.
    pub fn gauges(&self) -> &HubGauges {
        &self.gauges
    }
}

struct HubState {
    participants: HashMap<u64, Participant>,
    /// Meetings with someone in them.
    live: HashMap<i64, Live>,
    /// The policy last handed to the SFU per scheduled meeting.
    policies: HashMap<i64, MediaPolicy>,
    /// Connected sessions per site.
    online: BTreeMap<i64, usize>,
    /// Each site's latest health report, and when it came.
    health: HashMap<i64, (tokio::time::Instant, crate::protocol::HealthReport)>,
    /// Room terminals' command channels per site, latest last.
    terminals: HashMap<i64, Vec<(u64, mpsc::Sender<ServerMsg>)>>,
    /// Dashboard sessions: key → the meeting they follow and where their messages go.
    watchers: HashMap<u64, (i64, mpsc::Sender<ServerMsg>)>,
    /// Meetings whose roll call changed since it was last sent.
    roll_call_due: BTreeSet<i64>,
    ticks: i64,
    next_id: u64,
    db: Db,
    sfu: SfuHandle,
    gauges: Arc<HubGauges>,
}

impl HubState {
    async fn handle(&mut self, msg: HubMsg) {
        match msg {
            HubMsg::Join { request, reply } => self.join(*request, reply).await,
            HubMsg::Leave { id } => self.remove(id).await,
            HubMsg::Over { meeting } => {
                let ids: Vec<u64> = self
                    .participants
                    .iter()
                    .filter(|(_, p)| p.meeting == meeting)
                    .map(|(id, _)| *id)
                    .collect();
                for id in ids {
                    let msg = ServerMsg::error("meeting_ended", "the chair ended the meeting");
                    self.send_to(id, msg).await;
                    self.remove(id).await;
                }
            }
            HubMsg::Command { id, command, reply } => {
                let result = self.command(id, command).await;
                let _ = reply.send(result);
            }
            HubMsg::Online { site, connected } => {
                let n = self.online.entry(site).or_default();
                if connected {
                    *n += 1;
                } else {
                    *n = n.saturating_sub(1);
                }
                for (meeting, live) in &self.live {
                    if live.invites(site) {
                        self.roll_call_due.insert(*meeting);
                    }
                }
            }
            HubMsg::Terminal {
                site,
                key,
                commands,
            } => {
                let sessions = self.terminals.entry(site).or_default();
                sessions.retain(|(k, _)| *k != key);
                if let Some(commands) = commands {
                    sessions.push((key, commands));
                }
                if sessions.is_empty() {
                    self.terminals.remove(&site);
                }
            }
            HubMsg::Health { site, report } => {
                self.health
                    .insert(site, (tokio::time::Instant::now(), *report));
            }
            HubMsg::Placed { reply } => {
                let placed = self
                    .participants
                    .iter()
                    .map(|(id, p)| crate::quality::Placed {
                        meeting: p.meeting,
                        endpoint: *id,
                        site: p.who.site_id,
                        client: p.client,
                    })
                    .collect();
                let _ = reply.send(placed);
            }
            HubMsg::ClientStats { id, stats } => {
                if let Some(p) = self.participants.get_mut(&id) {
                    p.client = Some(stats);
                }
            }
            HubMsg::ToWatchers { meeting, msg } => self.tell_watchers(meeting, &msg),
            HubMsg::Watch { key, watch } => match watch {
                Some(w) => {
                    self.watchers.insert(key, w);
                }
                None => {
                    self.watchers.remove(&key);
                }
            },
            HubMsg::ToViewers { meeting, msg } => self.tell_viewers(meeting, msg).await,
            HubMsg::Healths { reply } => {
                let all = self
                    .health
                    .iter()
                    .map(|(site, (at, r))| (*site, r.clone(), at.elapsed()))
                    .collect();
                let _ = reply.send(all);
            }
            HubMsg::GetHealth { site, reply } => {
                let latest = self
                    .health
                    .get(&site)
                    .map(|(at, r)| (r.clone(), at.elapsed()));
                let _ = reply.send(latest);
            }
            HubMsg::SendCommand {
                site,
                command,
                reply,
            } => {
                let delivered = self
                    .terminals
                    .get(&site)
                    .and_then(|s| s.last())
                    .is_some_and(|(_, tx)| tx.try_send(command).is_ok());
                let _ = reply.send(delivered);
            }
            HubMsg::RollCall {
                meeting,
                setup,
                reply,
            } => {
                let entries = match self.live.get(&meeting) {
                    Some(live) => live.roll_call(&self.online),
                    None => Live::new(*setup).roll_call(&self.online),
                };
                let _ = reply.send(entries);
            }
            HubMsg::Tick => self.tick().await,
            HubMsg::Sfu(event) => self.sfu_event(event).await,
        }
        self.update_gauges();
    }

    async fn join(
        &mut self,
        request: JoinRequest,
        reply: oneshot::Sender<Result<Joined, Refusal>>,
    ) {
        let JoinRequest {
            meeting,
            name,
            who,
            setup,
            outbox,
        } = request;
        let live = self
            .live
            .entry(meeting.id)
            .or_insert_with(|| Live::new(setup));
        if let Err(refusal) = live.may_join(&who) {
            let _ = reply.send(Err(refusal));
            if live.is_empty() {
                self.live.remove(&meeting.id);
            }
            return;
        }
        // One terminal per site: a second device with the site's credential replaces the
        // first (a terminal that rebooted must not be locked out by its own ghost).
        if who.terminal
            && let Some(site) = who.site_id
            && let Some(old) = live.terminal_of(site)
        {
            tracing::info!(
                site,
                old,
                "a second terminal of the site replaces the first"
            );
            self.send_to(
                old,
                ServerMsg::error(
                    "replaced",
                    "another device logged in with this site's credential took its place",
                ),
            )
            .await;
            self.remove(old).await;
        }
        let Some(live) = self.live.get_mut(&meeting.id) else {
            return;
        };
        let id = self.next_id;
        self.next_id += 1;
        live.join(id, who.clone());
        let scheduled = live.is_scheduled();
        let others = self
            .participants
            .iter()
            .filter(|(_, p)| p.meeting == meeting.id)
            .map(|(id, p)| ParticipantInfo {
                id: *id,
                name: p.name.clone(),
                site: p.who.site_id,
                chair: live.is_named_chair(&p.who),
            })
            .collect();
        let info = ParticipantInfo {
            id,
            name: name.clone(),
            site: who.site_id,
            chair: live.is_named_chair(&who),
        };
        let attendance = if scheduled && (who.site_id.is_some() || who.person_id.is_some()) {
            match attendance::arrived(&self.db, meeting.id, who.site_id, who.person_id).await {
                Ok(row) => Some(row),
                Err(e) => {
                    tracing::error!(error = %e, "recording attendance failed");
                    None
                }
            }
        } else {
            None
        };
        tracing::info!(meeting = meeting.id, participant = id, site = ?who.site_id, "participant joined");
        self.participants.insert(
            id,
            Participant {
                meeting: meeting.id,
                name,
                who,
                outbox,
                attendance,
                client: None,
            },
        );
        if reply.send(Ok(Joined { id, others })).is_err() {
            // The session went away while joining.
            self.remove(id).await;
            return;
        }
        self.broadcast(
            meeting.id,
            id,
            ServerMsg::ParticipantJoined { participant: info },
        )
        .await;
        if scheduled {
            let floor = self.floor_msg(meeting.id);
            self.send_to(id, floor).await;
            self.push_policy(meeting.id).await;
            self.roll_call_due.insert(meeting.id);
        }
    }

    async fn command(&mut self, id: u64, command: Command) -> Result<(), Refusal> {
        let Some(p) = self.participants.get(&id) else {
            return Err(Refusal::NoSite);
        };
        let (meeting, actor) = (p.meeting, p.who.actor.clone());
        let Some(live) = self.live.get_mut(&meeting) else {
            return Err(Refusal::NoSite);
        };
        let changed = live.apply(id, command)?;
        if changed.moderation {
            let moderation = live.moderation().clone();
            let action = match command {
                Command::Grant(_) => "floor.grant",
                Command::Revoke => "floor.revoke",
                Command::Mute(..) => "moderation.mute",
                Command::MuteAll(_) => "moderation.mute_all",
                Command::Lock(_) => "moderation.lock",
                Command::Spotlight(_) => "moderation.spotlight",
                Command::Request | Command::Withdraw | Command::Refuse(_) | Command::Share(_) => {
                    "floor.change"
                }
            };
            if let Err(e) =
                attendance::save_moderation(&self.db, meeting, &moderation, &actor, action).await
            {
                tracing::error!(meeting, error = %e.message, "storing moderation failed");
            }
            self.push_policy(meeting).await;
        } else if let Command::Refuse(site) = command {
            // Not stored state, but a moderation decision all the same.
            let db = self.db.clone();
            let detail = format!("site {site}'s request refused");
            if let Ok(mut tx) = db.pool().begin().await
                && crate::audit::record(
                    &mut tx,
                    &actor,
                    "floor.refuse",
                    &format!("meeting:{meeting}"),
                    &detail,
                )
                .await
                .is_ok()
            {
                let _ = tx.commit().await;
            }
        }
        if changed.presenter {
            self.push_policy(meeting).await;
        }
        if changed.moderation || changed.queue || changed.presenter {
            let floor = self.floor_msg(meeting);
            self.broadcast(meeting, 0, floor).await;
        }
        Ok(())
    }

    async fn sfu_event(&mut self, event: SfuEvent) {
        match event {
            SfuEvent::Offer { endpoint, sdp } => {
                self.send_to(endpoint.0, ServerMsg::Offer { sdp }).await;
            }
            SfuEvent::Gone { endpoint, reason } => {
                tracing::info!(participant = endpoint.0, ?reason, "media connection lost");
                self.remove(endpoint.0).await;
            }
            SfuEvent::Speakers {
                meeting,
                dominant,
                recent,
            } => {
                let msg = ServerMsg::Speakers {
                    dominant: dominant.0,
                    recent: recent.iter().map(|e| e.0).collect(),
                };
                self.broadcast(meeting.0, 0, msg).await;
            }
            SfuEvent::Slots { endpoint, slots } => {
                let slots = slots
                    .into_iter()
                    .map(|s| SlotMsg {
                        mid: s.mid,
                        kind: match s.kind {
                            SlotKind::Audio => "audio",
                            SlotKind::Video => "video",
                        }
                        .into(),
                        participant: s.source.map(|e| e.0),
                        content: s.content,
                    })
                    .collect();
                self.send_to(endpoint.0, ServerMsg::Slots { slots }).await;
            }
            SfuEvent::Media {
                endpoint,
                audio,
                video_layers,
            } => {
                let meeting = self.participants.get(&endpoint.0).map(|p| p.meeting);
                if let Some(meeting) = meeting
                    && let Some(live) = self.live.get_mut(&meeting)
                    && live.media(endpoint.0, audio, video_layers)
                {
                    self.roll_call_due.insert(meeting);
                }
            }
            SfuEvent::SendLayers {
                endpoint,
                mid,
                layers,
            } => {
                self.send_to(endpoint.0, ServerMsg::SendLayers { mid, layers })
                    .await;
            }
            SfuEvent::Connected { endpoint } => {
                tracing::debug!(participant = endpoint.0, "media connected");
            }
        }
    }

    /// Sends `msg` to those in `meeting` who see roll call (chair, administrators,
    /// technicians) and to the dashboards following it.
    async fn tell_viewers(&mut self, meeting: i64, msg: ServerMsg) {
        self.tell_watchers(meeting, &msg);
        let viewers: Vec<u64> = match self.live.get(&meeting) {
            Some(live) => self
                .participants
                .iter()
                .filter(|(_, p)| p.meeting == meeting && live.sees_roll_call(&p.who))
                .map(|(id, _)| *id)
                .collect(),
            None => Vec::new(),
        };
        for id in viewers {
            self.send_to(id, msg.clone()).await;
        }
    }

    /// Hands `msg` to the dashboards following `meeting`; one that cannot keep up misses it
    /// (the next message brings it up to date), and one that is gone is forgotten.
    fn tell_watchers(&mut self, meeting: i64, msg: &ServerMsg) {
        self.watchers.retain(|_, (m, tx)| {
            *m != meeting
                || !matches!(
                    tx.try_send(msg.clone()),
                    Err(mpsc::error::TrySendError::Closed(_))
                )
        });
    }

    /// Sends due roll calls; every few ticks, marks attendance as still going.
    async fn tick(&mut self) {
        self.ticks += 1;
        let due = std::mem::take(&mut self.roll_call_due);
        for meeting in due {
            let Some(live) = self.live.get(&meeting) else {
                continue;
            };
            let msg = ServerMsg::RollCall {
                sites: live.roll_call(&self.online),
            };
            self.tell_viewers(meeting, msg).await;
        }
        let every = attendance::HEARTBEAT_SECS / ROLL_CALL_EVERY.as_secs().max(1) as i64;
        if self.ticks % every.max(1) == 0
            && self.participants.values().any(|p| p.attendance.is_some())
            && let Err(e) = attendance::heartbeat(&self.db).await
        {
            tracing::warn!(error = %e, "attendance heartbeat failed");
        }
    }

    fn floor_msg(&self, meeting: i64) -> ServerMsg {
        match self.live.get(&meeting) {
            Some(live) => {
                let m = live.moderation();
                ServerMsg::Floor {
                    holder: m.floor,
                    queue: live.queue().to_vec(),
                    muted: m.muted.iter().copied().collect(),
                    locked: m.locked,
                    spotlight: m.spotlight,
                    presenter: live.presenter(),
                }
            }
            None => ServerMsg::Floor {
                holder: None,
                queue: Vec::new(),
                muted: Vec::new(),
                locked: false,
                spotlight: None,
                presenter: None,
            },
        }
    }

    /// Hands the SFU a scheduled meeting's policy if it changed.
    async fn push_policy(&mut self, meeting: i64) {
        let Some(live) = self.live.get(&meeting) else {
            return;
        };
        let policy = live.policy();
        // The demo meeting keeps the SFU's default policy (or one set through the moderation
        // API) until someone presents in it.
        if !live.is_scheduled()
            && policy.presenter.is_none()
            && !self.policies.contains_key(&meeting)
        {
            return;
        }
        if self.policies.get(&meeting) == Some(&policy) {
            return;
        }
        self.policies.insert(meeting, policy.clone());
        if self
            .sfu
            .set_media_policy(MeetingId(meeting), policy)
            .await
            .is_err()
        {
            tracing::error!(meeting, "the media plane did not take the meeting's policy");
        }
    }

    async fn send_to(&mut self, id: u64, msg: ServerMsg) {
        let Some(p) = self.participants.get(&id) else {
            return;
        };
        if p.outbox.try_send(msg).is_err() {
            tracing::warn!(
                participant = id,
                "client too slow or gone: disconnecting it"
            );
            Box::pin(self.remove(id)).await;
        }
    }

    /// Sends `msg` to every participant of `meeting` but `except` (0: nobody is excepted; ids
    /// start at 1).
    async fn broadcast(&mut self, meeting: i64, except: u64, msg: ServerMsg) {
        let ids: Vec<u64> = self
            .participants
            .iter()
            .filter(|(id, p)| p.meeting == meeting && **id != except)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.send_to(id, msg.clone()).await;
        }
    }

    /// Removes a participant: from the SFU, from the meeting, and tells the others.
    async fn remove(&mut self, id: u64) {
        let Some(p) = self.participants.remove(&id) else {
            return;
        };
        tracing::info!(meeting = p.meeting, participant = id, "participant left");
        self.sfu.leave(EndpointId(id)).await;
        if let Some(row) = p.attendance
            && let Err(e) = attendance::left(&self.db, row).await
        {
            tracing::error!(error = %e, "recording a departure failed");
        }
        let mut floor_changed = false;
        if let Some(live) = self.live.get_mut(&p.meeting) {
            let changed = live.leave(id);
            floor_changed = changed.queue || changed.presenter;
            if live.is_empty() {
                self.live.remove(&p.meeting);
                self.policies.remove(&p.meeting);
            } else {
                self.roll_call_due.insert(p.meeting);
            }
        }
        Box::pin(self.broadcast(p.meeting, id, ServerMsg::ParticipantLeft { id })).await;
        if floor_changed {
            let floor = self.floor_msg(p.meeting);
            Box::pin(self.broadcast(p.meeting, 0, floor)).await;
        }
        Box::pin(self.push_policy(p.meeting)).await;
    }

    fn update_gauges(&self) {
        let mut meetings: Vec<i64> = self.participants.values().map(|p| p.meeting).collect();
        meetings.sort_unstable();
        meetings.dedup();
        self.gauges
            .participants
            .store(self.participants.len() as u64, Ordering::Relaxed);
        self.gauges
            .meetings
            .store(meetings.len() as u64, Ordering::Relaxed);
    }
}
