//! The hub: the one owner of who is in which meeting right now.
//!
//! WebSocket sessions and the SFU talk to it by messages; it keeps each participant's outbox
//! and tells the others when someone enters or leaves. No locks: one task owns the state.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sfu::{EndpointId, SfuEvent, SfuHandle, SlotKind};
use tokio::sync::{mpsc, oneshot};

use crate::protocol::{MeetingInfo, ParticipantInfo, ServerMsg, SlotMsg};

/// How many messages may wait for a slow client before it is disconnected.
pub const OUTBOX_CAPACITY: usize = 256;

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

enum HubMsg {
    Join {
        meeting: MeetingInfo,
        name: String,
        outbox: mpsc::Sender<ServerMsg>,
        reply: oneshot::Sender<Joined>,
    },
    Leave {
        id: u64,
    },
    Sfu(SfuEvent),
}

struct Participant {
    meeting: i64,
    name: String,
    outbox: mpsc::Sender<ServerMsg>,
}

/// The sending side of the hub. Cheap to clone.
#[derive(Clone)]
pub struct Hub {
    tx: mpsc::UnboundedSender<HubMsg>,
    gauges: Arc<HubGauges>,
}

impl Hub {
    /// Starts the hub task. It consumes the SFU's events.
    pub fn spawn(sfu: SfuHandle, mut sfu_events: mpsc::UnboundedReceiver<SfuEvent>) -> Self {
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
        let mut state = HubState {
            participants: HashMap::new(),
            next_id: 1,
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

    /// Enters a meeting. Messages for this participant go to `outbox`; when the hub drops it
    /// (the participant was removed), the session should close.
    pub async fn join(
        &self,
        meeting: MeetingInfo,
        name: String,
        outbox: mpsc::Sender<ServerMsg>,
    ) -> Option<Joined> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(HubMsg::Join {
                meeting,
                name,
                outbox,
                reply,
            })
            .ok()?;
        rx.await.ok()
    }

    /// Leaves (idempotent).
    pub fn leave(&self, id: u64) {
        let _ = self.tx.send(HubMsg::Leave { id });
    }

    /// Live counts.
    pub fn gauges(&self) -> &HubGauges {
        &self.gauges
    }
}

struct HubState {
    participants: HashMap<u64, Participant>,
    next_id: u64,
    sfu: SfuHandle,
    gauges: Arc<HubGauges>,
}

impl HubState {
    async fn handle(&mut self, msg: HubMsg) {
        match msg {
            HubMsg::Join {
                meeting,
                name,
                outbox,
                reply,
            } => {
                let id = self.next_id;
                self.next_id += 1;
                let others = self
                    .participants
                    .iter()
                    .filter(|(_, p)| p.meeting == meeting.id)
                    .map(|(id, p)| ParticipantInfo {
                        id: *id,
                        name: p.name.clone(),
                    })
                    .collect();
                let info = ParticipantInfo {
                    id,
                    name: name.clone(),
                };
                tracing::info!(meeting = meeting.id, participant = id, "participant joined");
                self.participants.insert(
                    id,
                    Participant {
                        meeting: meeting.id,
                        name,
                        outbox,
                    },
                );
                if reply.send(Joined { id, others }).is_err() {
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
            }
            HubMsg::Leave { id } => self.remove(id).await,
            HubMsg::Sfu(SfuEvent::Offer { endpoint, sdp }) => {
                self.send_to(endpoint.0, ServerMsg::Offer { sdp }).await;
            }
            HubMsg::Sfu(SfuEvent::Gone { endpoint, reason }) => {
                tracing::info!(participant = endpoint.0, ?reason, "media connection lost");
                self.remove(endpoint.0).await;
            }
            HubMsg::Sfu(SfuEvent::Speakers {
                meeting,
                dominant,
                recent,
            }) => {
                let msg = ServerMsg::Speakers {
                    dominant: dominant.0,
                    recent: recent.iter().map(|e| e.0).collect(),
                };
                self.broadcast(meeting.0, 0, msg).await;
            }
            HubMsg::Sfu(SfuEvent::Slots { endpoint, slots }) => {
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
                    })
                    .collect();
                self.send_to(endpoint.0, ServerMsg::Slots { slots }).await;
            }
            HubMsg::Sfu(SfuEvent::Connected { endpoint }) => {
                tracing::debug!(participant = endpoint.0, "media connected");
            }
        }
        self.update_gauges();
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
        Box::pin(self.broadcast(p.meeting, id, ServerMsg::ParticipantLeft { id })).await;
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
