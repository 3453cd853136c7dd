//! A shard task: the rooms (one [`SfuCore`] per meeting) it owns, their timers and outputs.
//! Every call into a room runs under `catch_unwind`: a panic closes that room only.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::Command;
use super::front::FrontMsg;
use super::timer::ShardTimer;
use super::udp::MediaSocket;
use crate::core::{CoreOutput, GoneReason, SfuConfig, SfuCore, SfuError, SfuEvent};
use crate::stats::{CoreCounters, SfuStats};
use crate::stun;
use crate::{EndpointId, MeetingId};

/// Messages handled in one turn before outputs are flushed.
const BATCH: usize = 64;

/// Datagrams waiting for a shard at most. Past this the shard is behind (its core cannot keep
/// up with its meetings) and the front drops what arrives, counted: media that waited longer
/// is useless to a live meeting, and a queue without a bound grows without one.
pub(crate) const DATAGRAM_QUEUE: usize = 4096;

/// A datagram for a room.
pub(crate) struct ShardDatagram {
    pub(crate) meeting: MeetingId,
    pub(crate) source: SocketAddr,
    pub(crate) bytes: Vec<u8>,
}

/// How the front reaches a shard.
pub(crate) struct ShardInbox {
    /// Commands for its rooms: never dropped.
    pub(crate) commands: mpsc::UnboundedSender<Command>,
    pub(crate) datagrams: mpsc::Sender<ShardDatagram>,
}

pub(super) struct Shard {
    index: usize,
    config: SfuConfig,
    rooms: BTreeMap<MeetingId, SfuCore>,
    endpoint_room: HashMap<EndpointId, MeetingId>,
    /// Counters of rooms closed, so the totals never go backwards.
    retired: CoreCounters,
    socket: Arc<MediaSocket>,
    events: mpsc::UnboundedSender<SfuEvent>,
    front: mpsc::UnboundedSender<FrontMsg>,
    stats: Arc<SfuStats>,
}

impl Shard {
    pub(super) fn spawn(
        index: usize,
        config: SfuConfig,
        socket: Arc<MediaSocket>,
        events: mpsc::UnboundedSender<SfuEvent>,
        front: mpsc::UnboundedSender<FrontMsg>,
        stats: Arc<SfuStats>,
    ) -> ShardInbox {
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (datagrams, datagram_rx) = mpsc::channel(DATAGRAM_QUEUE);
        let shard = Shard {
            index,
            config,
            rooms: BTreeMap::new(),
            endpoint_room: HashMap::new(),
            retired: CoreCounters::default(),
            socket,
            events,
            front,
            stats,
        };
        tokio::spawn(shard.run(command_rx, datagram_rx));
        ShardInbox {
            commands,
            datagrams,
        }
    }

    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut datagrams: mpsc::Receiver<ShardDatagram>,
    ) {
        // Timers are met when they fall due, not gathered into slices: waking at the end of
        // 1 ms slices (tried: the receivers' paced packets then left together) cut CPU per
        // packet by 8 %, but sent all receivers' packets in synchronised bursts, and with
        // transport-cc feedback their estimates sank and the allocator paused video: less than
        // half the packets arrived (BENCHMARKS.md). And met to the microsecond (see `timer`):
        // str0m paces bandwidth probes finer than tokio's millisecond timers.
        let mut timer = ShardTimer::new(self.index);
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            self.flush().await;
            let deadline = self
                .rooms
                .values()
                .filter_map(SfuCore::poll_timeout)
                .min()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
            tokio::select! {
                msg = commands.recv() => {
                    let Some(command) = msg else { return };
                    self.command(Instant::now(), command);
                    self.drain_rooms();
                }
                received = datagrams.recv_many(&mut batch, BATCH) => {
                    if received == 0 {
                        return;
                    }
                    let now = Instant::now();
                    let local = self.config.local_addr;
                    for d in batch.drain(..) {
                        self.in_room(d.meeting, |room| room.receive(now, d.source, local, &d.bytes));
                    }
                    // Each receiver's session is polled once for the whole batch.
                    self.drain_rooms();
                }
                // Every room meets what has fallen due, not only the room that set the time.
                () = timer.sleep_until(deadline) => self.drain_rooms(),
            }
        }
    }

    /// Polls every room's sessions that have something to send or say, and meets the deadlines
    /// that have fallen due.
    fn drain_rooms(&mut self) {
        let now = Instant::now();
        let rooms: Vec<MeetingId> = self.rooms.keys().copied().collect();
        for meeting in rooms {
            self.in_room(meeting, |room| room.drain(now));
        }
    }

    fn command(&mut self, now: Instant, command: Command) {
        // A caller that stopped waiting for its reply is not an error of the SFU's.
        match command {
            Command::Join {
                endpoint,
                meeting,
                offer,
                reply,
            } => {
                let config = &self.config;
                self.rooms
                    .entry(meeting)
                    .or_insert_with(|| SfuCore::new(config.clone()));
                let result = self
                    .in_room(meeting, |room| room.join(now, endpoint, meeting, &offer))
                    .unwrap_or(Err(SfuError::Unavailable));
                match &result {
                    Ok(answer) => {
                        self.endpoint_room.insert(endpoint, meeting);
                        let ufrag = stun::sdp_ufrag(answer).unwrap_or_default().to_string();
                        let _ = self.front.send(FrontMsg::Joined {
                            endpoint,
                            meeting,
                            ufrag,
                        });
                    }
                    Err(SfuError::AlreadyJoined) => {}
                    Err(_) => {
                        let _ = self.front.send(FrontMsg::Removed { endpoint });
                    }
                }
                let _ = reply.send(result);
                self.retire_if_idle(meeting);
            }
            Command::Answer {
                endpoint,
                sdp,
                reply,
            } => {
                let r = self.for_endpoint(endpoint, |room| room.answer(now, endpoint, &sdp));
                let _ = reply.send(r);
            }
            Command::Candidate {
                endpoint,
                candidate,
                reply,
            } => {
                let r = self.for_endpoint(endpoint, |room| room.candidate(endpoint, &candidate));
                let _ = reply.send(r);
            }
            Command::RestartIce { endpoint, reply } => {
                let r = self.for_endpoint(endpoint, |room| room.restart_ice(now, endpoint));
                let _ = reply.send(r);
            }
            Command::SetView {
                endpoint,
                view,
                reply,
            } => {
                let r = self.for_endpoint(endpoint, |room| room.set_view(now, endpoint, &view));
                let _ = reply.send(r);
            }
            Command::Leave { endpoint } => {
                let _ = self.for_endpoint(endpoint, |room| {
                    room.leave(now, endpoint);
                    Ok(())
                });
                self.forget(endpoint);
            }
            Command::SetMediaPolicy { meeting, policy } => {
                let config = &self.config;
                self.rooms
                    .entry(meeting)
                    .or_insert_with(|| SfuCore::new(config.clone()));
                self.in_room(meeting, |room| room.set_media_policy(now, meeting, policy));
            }
            Command::MediaPolicy { meeting, reply } => {
                let policy = self
                    .rooms
                    .get(&meeting)
                    .and_then(|room| room.media_policy(meeting));
                let _ = reply.send(policy);
            }
            // The front applies it; it never reaches a shard.
            Command::Impair { .. } => {}
            Command::Quality { meeting, reply } => {
                let quality = self.in_room(meeting, |room| room.quality(now, meeting));
                let _ = reply.send(quality.unwrap_or_default());
            }
            #[cfg(test)]
            Command::Explode { meeting } => {
                self.in_room(meeting, |_| panic!("test: a room fails"));
            }
        }
    }

    fn for_endpoint<R>(
        &mut self,
        endpoint: EndpointId,
        f: impl FnOnce(&mut SfuCore) -> Result<R, SfuError>,
    ) -> Result<R, SfuError> {
        let Some(meeting) = self.endpoint_room.get(&endpoint).copied() else {
            return Err(SfuError::UnknownEndpoint);
        };
        self.in_room(meeting, f)
            .unwrap_or(Err(SfuError::Unavailable))
    }

    /// Runs `f` on a room; if it panics, the room is closed and `None` returned.
    fn in_room<R>(&mut self, meeting: MeetingId, f: impl FnOnce(&mut SfuCore) -> R) -> Option<R> {
        let room = self.rooms.get_mut(&meeting)?;
        match catch_unwind(AssertUnwindSafe(|| f(room))) {
            Ok(r) => Some(r),
            Err(_) => {
                self.close_failed_room(meeting);
                None
            }
        }
    }

    fn close_failed_room(&mut self, meeting: MeetingId) {
        tracing::error!(%meeting, shard = self.index, "a room failed and was closed; other rooms go on");
        if let Some(room) = self.rooms.remove(&meeting)
            && let Ok(c) = catch_unwind(AssertUnwindSafe(|| room.counters()))
        {
            self.retire_counters(&c);
        }
        let gone: Vec<EndpointId> = self
            .endpoint_room
            .iter()
            .filter(|(_, m)| **m == meeting)
            .map(|(e, _)| *e)
            .collect();
        for endpoint in gone {
            self.forget(endpoint);
            let _ = self.events.send(SfuEvent::Gone {
                endpoint,
                reason: GoneReason::RoomFailed,
            });
        }
    }

    fn forget(&mut self, endpoint: EndpointId) {
        if let Some(meeting) = self.endpoint_room.remove(&endpoint) {
            self.retire_if_idle(meeting);
        }
        let _ = self.front.send(FrontMsg::Removed { endpoint });
    }

    fn retire_if_idle(&mut self, meeting: MeetingId) {
        if self.rooms.get(&meeting).is_some_and(SfuCore::is_idle)
            && let Some(room) = self.rooms.remove(&meeting)
        {
            self.retire_counters(&room.counters());
        }
    }

    fn retire_counters(&mut self, c: &CoreCounters) {
        self.retired.add_totals(c);
    }

    /// Sends every room's datagrams, passes on its events, and publishes the counters.
    async fn flush(&mut self) {
        let mut outputs = Vec::new();
        let mut totals = self.retired;
        for room in self.rooms.values_mut() {
            while let Some(o) = room.poll_output() {
                outputs.push(o);
            }
            totals.add(&room.counters());
        }
        self.stats.store_shard(self.index, &totals);
        let mut datagrams = Vec::with_capacity(outputs.len());
        for output in outputs {
            match output {
                CoreOutput::Transmit {
                    destination,
                    contents,
                } => datagrams.push((destination, contents)),
                CoreOutput::Event(event) => {
                    match &event {
                        SfuEvent::Gone { endpoint, .. } => self.forget(*endpoint),
                        // An ICE restart's offer brings a new user fragment: the client's
                        // checks with it (perhaps from a new address) must reach this room.
                        SfuEvent::Offer { endpoint, sdp } => {
                            if let (Some(meeting), Some(ufrag)) =
                                (self.endpoint_room.get(endpoint), stun::sdp_ufrag(sdp))
                            {
                                let _ = self.front.send(FrontMsg::Joined {
                                    endpoint: *endpoint,
                                    meeting: *meeting,
                                    ufrag: ufrag.to_string(),
                                });
                            }
                        }
                        _ => {}
                    }
                    // The receiver lives as long as signaling; if it is gone we are shutting down.
                    let _ = self.events.send(event);
                }
            }
        }
        self.socket.send_all(&datagrams).await;
    }
}
