//! The sans-IO core of the SFU.
//!
//! [`SfuCore`] owns every endpoint's WebRTC session ([`str0m::Rtc`], itself sans-IO) and
//! decides what goes where. It never reads a clock or touches a socket: the caller passes
//! `now` with every input, sends the datagrams it returns and calls back at
//! [`SfuCore::poll_timeout`]. That makes a whole meeting simulable, deterministically and faster
//! than real time, in a unit test.

mod allocator;
mod codec;
mod deadline;
mod endpoint;
mod forward;
mod keyframe;
mod layers;
mod media;
mod meeting;
mod rate;
mod speaker;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::bwe::{Bitrate, BweKind};
use str0m::change::SdpOffer;
use str0m::format::{Codec, CodecConfig, FormatParams};
use str0m::media::{Frequency, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::rtp::Extension;
use str0m::{Candidate, Event, Input, Output, Rtc};

use crate::quality::EndpointQuality;
use crate::stats::CoreCounters;
use crate::{EndpointId, MeetingId};
use deadline::{Deadline, Deadlines};
use endpoint::Endpoint;
use layers::Layer;
pub use media::{MAX_VIDEO_SLOTS, MAX_VIEW_ENTRIES};
use meeting::Meeting;
pub use meeting::{AudioMode, MediaPolicy};

/// Video packets each receive slot keeps for retransmission.
const VIDEO_SEND_BUFFER: usize = 400;
/// How often str0m reports each endpoint's stream statistics (RTT, loss its receiver reports
/// give, NACKs and PLIs): for quality monitoring, not for the forwarding decisions.
const STATS_EVERY: Duration = Duration::from_secs(2);

/// Settings of the core. The defaults suit a meeting-room network.
#[derive(Debug, Clone)]
pub struct SfuConfig {
    /// The address the SFU's UDP socket is bound to.
    pub local_addr: SocketAddr,
    /// Addresses advertised to clients as ICE host candidates (the bound port on each IP).
    pub candidate_addrs: Vec<SocketAddr>,
    /// An endpoint that sent nothing for this long is removed (network lost, tab closed).
    pub liveness_timeout: Duration,
    /// An endpoint whose ICE has not connected this long after joining is removed.
    pub connect_timeout: Duration,
    /// At most one keyframe request per publisher track in this interval.
    pub keyframe_interval: Duration,
    /// The audio policy of a meeting that signaling has not set one for.
    pub media_policy: MediaPolicy,
    /// The bandwidth assumed towards a new endpoint until its estimate says otherwise.
    pub initial_estimate_bps: u64,
}

impl SfuConfig {
    /// Defaults for a socket bound to `local_addr`, advertising that same address.
    pub fn new(local_addr: SocketAddr) -> Self {
        Self {
            local_addr,
            candidate_addrs: vec![local_addr],
            liveness_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(20),
            keyframe_interval: Duration::from_millis(500),
            media_policy: MediaPolicy::default(),
            initial_estimate_bps: 1_500_000,
        }
    }
}

/// Errors returned to the caller of a core command. None of them affects other endpoints.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SfuError {
    /// The SDP did not parse. The client sent something that is not a WebRTC session description.
    #[error("malformed SDP: {0}")]
    BadSdp(String),
    /// The SDP parsed but could not be applied (unsupported codecs, answer out of order...).
    #[error("SDP negotiation failed: {0}")]
    Negotiation(String),
    /// An ICE candidate line did not parse.
    #[error("malformed ICE candidate: {0}")]
    BadCandidate(String),
    /// No endpoint with this id: it never joined, or it has left.
    #[error("unknown endpoint")]
    UnknownEndpoint,
    /// The endpoint already joined; the SFU offers every later change itself.
    #[error("endpoint already joined: only the first offer comes from the client")]
    AlreadyJoined,
    /// An answer arrived but the SFU had no offer outstanding.
    #[error("no offer is pending for this endpoint")]
    NoOfferPending,
    /// A view named more sources than any meeting has.
    #[error("a view may name at most {max} sources, not {0}", max = media::MAX_VIEW_ENTRIES)]
    TooManyViewEntries(usize),
    /// The media plane is not running (its task ended).
    #[error("the media plane is not running")]
    Unavailable,
}

/// Why an endpoint left without being told to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoneReason {
    /// Nothing arrived from it within the liveness timeout.
    Silent,
    /// ICE never connected within the connect timeout.
    NeverConnected,
    /// Its WebRTC session failed (DTLS error, ICE disconnected).
    SessionFailed,
    /// Its room failed (a bug) and was closed; the client may join again.
    RoomFailed,
}

/// What the core tells its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SfuEvent {
    /// Relay this SDP offer to the endpoint's client; its answer comes back through
    /// [`SfuCore::answer`].
    Offer {
        /// Who must answer.
        endpoint: EndpointId,
        /// The SDP offer.
        sdp: String,
    },
    /// ICE and DTLS are up: media can flow.
    Connected {
        /// Who connected.
        endpoint: EndpointId,
    },
    /// The dominant speaker of a meeting changed.
    Speakers {
        /// The meeting.
        meeting: MeetingId,
        /// Who speaks now.
        dominant: EndpointId,
        /// Recent speakers, most recent (the dominant one) first.
        recent: Vec<EndpointId>,
    },
    /// What the endpoint's receive slots carry now: tell its client which m-line (by mid)
    /// shows whom. Sent whenever it changes.
    Slots {
        /// The receiver.
        endpoint: EndpointId,
        /// Every slot that has a mid.
        slots: Vec<SlotInfo>,
    },
    /// What arrives from the endpoint changed: its first audio or video packet, or none for
    /// a few seconds (roll call shows it).
    Media {
        /// The publisher.
        endpoint: EndpointId,
        /// Audio arrives.
        audio: bool,
        /// How many video layers arrive (0: no video; 2 or 3 for simulcast).
        video_layers: u8,
    },
    /// Tell the publisher to send only the lowest `layers` simulcast layers of its track on
    /// `mid` (its own m-line): no receiver wants more now. Sent when it changes; a new endpoint
    /// sends all its layers until told otherwise. The lowest layer is never suspended.
    SendLayers {
        /// The publisher.
        endpoint: EndpointId,
        /// The publisher's mid for the track.
        mid: String,
        /// How many of the lowest layers to send (at least 1).
        layers: u8,
    },
    /// The endpoint was removed by the core itself.
    Gone {
        /// Who is gone.
        endpoint: EndpointId,
        /// Why.
        reason: GoneReason,
    },
}

/// One receive slot of an endpoint, as its client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotInfo {
    /// The m-line's mid in the receiver's session.
    pub mid: String,
    /// Audio or video.
    pub kind: SlotKind,
    /// Whose media it carries now (`None`: idle).
    pub source: Option<EndpointId>,
    /// It carries the source's presentation (document, screen), not its camera.
    pub content: bool,
}

/// The kind of a receive slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotKind {
    /// An audio m-line.
    Audio,
    /// A video m-line.
    Video,
}

/// One output of the core.
#[derive(Debug)]
pub enum CoreOutput {
    /// Send this datagram from the SFU's socket.
    Transmit {
        /// Where to.
        destination: SocketAddr,
        /// The bytes.
        contents: Vec<u8>,
    },
    /// Tell signaling.
    Event(SfuEvent),
}

/// The SFU's state: every meeting and endpoint, and what to send next.
pub struct SfuCore {
    config: SfuConfig,
    // Ordered maps: iteration order (timeouts, allocation) must not depend on a random hasher,
    // so that a simulated meeting runs the same way every time.
    endpoints: BTreeMap<EndpointId, Endpoint>,
    meetings: BTreeMap<MeetingId, Meeting>,
    by_addr: HashMap<SocketAddr, EndpointId>,
    outputs: VecDeque<CoreOutput>,
    /// Endpoints with output to drain; each at most once (see `Endpoint::dirty`).
    dirty: Vec<EndpointId>,
    /// Endpoints whose slots must be re-planned before the next drain.
    slot_plans: BTreeSet<EndpointId>,
    /// Each endpoint's next deadline (see `Endpoint::deadline`), ordered: the next timeout
    /// and the endpoints due are found without visiting every endpoint of a big meeting.
    deadlines: Deadlines,
    counters: CoreCounters,
}

impl SfuCore {
    /// A core with no meetings.
    pub fn new(config: SfuConfig) -> Self {
        Self {
            config,
            endpoints: BTreeMap::new(),
            meetings: BTreeMap::new(),
            by_addr: HashMap::new(),
            outputs: VecDeque::new(),
            dirty: Vec::new(),
            slot_plans: BTreeSet::new(),
            deadlines: Deadlines::default(),
            counters: CoreCounters::default(),
        }
    }

    /// The counters, for monitoring.
    pub fn counters(&self) -> CoreCounters {
        CoreCounters {
            endpoints: self.endpoints.len() as u64,
            meetings: self
                .meetings
                .values()
                .filter(|m| !m.members.is_empty())
                .count() as u64,
            ..self.counters
        }
    }

    /// Endpoints of a meeting, in joining order.
    pub fn members(&self, meeting: MeetingId) -> &[EndpointId] {
        self.meetings
            .get(&meeting)
            .map_or(&[], |m| m.members.as_slice())
    }

    /// The latest bandwidth estimate towards an endpoint, in bits per second.
    pub fn estimate_bps(&self, endpoint: EndpointId) -> Option<u64> {
        self.endpoints.get(&endpoint)?.estimate
    }

    /// No endpoints and no meeting policy to keep: the core can be dropped.
    pub fn is_idle(&self) -> bool {
        self.endpoints.is_empty() && self.meetings.is_empty()
    }

    /// The dominant speaker of a meeting, if anyone has spoken.
    pub fn dominant_speaker(&self, meeting: MeetingId) -> Option<EndpointId> {
        self.meetings.get(&meeting)?.dominant()
    }

    /// Sets whose audio a meeting forwards (floor mode, mutes, loudest-N). It applies from the
    /// next packet and stays until changed or [`Self::close_meeting`], even with nobody present.
    pub fn set_media_policy(&mut self, now: Instant, meeting: MeetingId, policy: MediaPolicy) {
        let m = self
            .meetings
            .entry(meeting)
            .or_insert_with(|| Meeting::new(policy.clone()));
        m.set_policy(now, policy);
        m.explicit_policy = true;
        let members = m.members.clone();
        self.plan_meeting_slots(meeting);
        for id in members {
            self.reallocate(now, id);
        }
        self.drain_dirty(now);
    }

    /// What is measured of each endpoint of `meeting`, both ways (cumulative counters: rates
    /// are differences of two calls).
    pub fn quality(&mut self, now: Instant, meeting: MeetingId) -> Vec<EndpointQuality> {
        let mut out: Vec<EndpointQuality> = self
            .endpoints
            .values_mut()
            .filter(|ep| ep.meeting == meeting)
            .map(|ep| {
                let mut audio_in = None;
                let mut video_in = Vec::new();
                for track in &mut ep.tracks_in {
                    let stats: Vec<_> = track
                        .meters
                        .iter_mut()
                        .map(|m| m.as_mut().map(|m| m.stats(now)))
                        .collect();
                    match track.kind {
                        MediaKind::Audio if audio_in.is_none() => {
                            audio_in = stats.into_iter().next().flatten();
                        }
                        MediaKind::Video if video_in.is_empty() => video_in = stats,
                        _ => {}
                    }
                }
                let m = &ep.measured;
                let [sent_packets, sent_bytes, nacks_from, plis_from, firs_from] = m.egress;
                let [nacks_to, plis_to, firs_to] = m.ingress_requests;
                EndpointQuality {
                    endpoint: ep.id,
                    audio_in,
                    video_in,
                    audio_level: m.audio_level,
                    nacks_to,
                    plis_to,
                    firs_to,
                    sent_packets,
                    sent_bytes,
                    nacks_from,
                    plis_from,
                    firs_from,
                    rtt: m.rtt,
                    receiver_loss: m.receiver_loss,
                    estimate_bps: ep.estimate,
                    layers_sent: ep
                        .slots
                        .iter()
                        .filter(|s| s.kind == MediaKind::Video && s.source.is_some())
                        .filter_map(|s| s.layers.current())
                        .collect(),
                }
            })
            .collect();
        out.sort_by_key(|q| q.endpoint);
        out
    }

    /// The policy signaling set for a meeting, if it set one.
    pub fn media_policy(&self, meeting: MeetingId) -> Option<MediaPolicy> {
        self.meetings
            .get(&meeting)
            .filter(|m| m.explicit_policy)
            .map(|m| m.policy().clone())
    }

    /// Forgets a meeting's policy once it has no endpoints left (they are removed otherwise).
    pub fn close_meeting(&mut self, meeting: MeetingId) {
        if self.members(meeting).is_empty() {
            self.meetings.remove(&meeting);
        }
    }

    /// A client's first offer: the endpoint joins `meeting` and publishes what it offers.
    /// Returns the SDP answer. Tracks of the others follow in offers from the SFU.
    pub fn join(
        &mut self,
        now: Instant,
        id: EndpointId,
        meeting: MeetingId,
        offer: &str,
    ) -> Result<String, SfuError> {
        if self.endpoints.contains_key(&id) {
            return Err(SfuError::AlreadyJoined);
        }
        let offer =
            SdpOffer::from_sdp_string(offer).map_err(|e| SfuError::BadSdp(e.to_string()))?;
        let mut builder = Rtc::builder()
            .set_rtp_mode(true)
            .set_ice_lite(true)
            .clear_codecs();
        ask_for_opus_dtx(builder.codec_config());
        let mut rtc = builder
            .enable_vp8(true)
            .enable_h264(true)
            .enable_bwe(Some(Bitrate::bps(self.config.initial_estimate_bps)))
            // Capture timestamps pass through unchanged: receivers (and the benchmark) measure
            // end-to-end delay with them. Id 7 is free in str0m's standard map.
            .set_extension(7, Extension::AbsoluteCaptureTime)
            // Packets kept per video slot to answer NACKs: ~3 s at 1.5 Mb/s, far more than a
            // retransmission can still be useful for. str0m's default (1,000) costs over 1 MB a
            // slot once full, which a 213-site meeting multiplies.
            .set_send_buffer_video(VIDEO_SEND_BUFFER)
            .set_stats_interval(Some(STATS_EVERY))
            .build(now);
        for addr in &self.config.candidate_addrs {
            let candidate = Candidate::host(*addr, "udp")
                .map_err(|e| SfuError::Negotiation(format!("host candidate {addr}: {e}")))?;
            rtc.add_local_candidate(candidate);
        }
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| SfuError::Negotiation(e.to_string()))?;
        self.endpoints
            .insert(id, Endpoint::new(id, meeting, rtc, now));
        let policy = &self.config.media_policy;
        let m = self
            .meetings
            .entry(meeting)
            .or_insert_with(|| Meeting::new(policy.clone()));
        m.add(now, id);
        self.plan_meeting_slots(meeting);
        self.mark_dirty(id);
        self.drain_dirty(now);
        Ok(answer.to_sdp_string())
    }

    /// The client's answer to an offer the SFU made.
    pub fn answer(&mut self, now: Instant, id: EndpointId, sdp: &str) -> Result<(), SfuError> {
        let ep = self
            .endpoints
            .get_mut(&id)
            .ok_or(SfuError::UnknownEndpoint)?;
        // Newly opened video asks for its keyframe when its first packet arrives.
        let result = ep.accept_answer(sdp);
        self.mark_dirty(id);
        self.drain_dirty(now);
        result
    }

    /// The client lost its connection for a while (or its network changed) and asks for an
    /// ICE restart: the SFU offers new ICE credentials (now, or once a pending offer is
    /// answered); the client answers and its ICE agent checks its paths afresh.
    pub fn restart_ice(&mut self, now: Instant, id: EndpointId) -> Result<(), SfuError> {
        let ep = self
            .endpoints
            .get_mut(&id)
            .ok_or(SfuError::UnknownEndpoint)?;
        ep.ice_restart = true;
        self.mark_dirty(id);
        self.drain_dirty(now);
        Ok(())
    }

    /// A trickled ICE candidate from the client (`candidate:...` line). An empty string means
    /// the end of candidates and is accepted as such.
    pub fn candidate(&mut self, id: EndpointId, candidate: &str) -> Result<(), SfuError> {
        let ep = self
            .endpoints
            .get_mut(&id)
            .ok_or(SfuError::UnknownEndpoint)?;
        let line = candidate.trim();
        if line.is_empty() {
            return Ok(());
        }
        let line = line.strip_prefix("a=").unwrap_or(line);
        let c =
            Candidate::from_sdp_string(line).map_err(|e| SfuError::BadCandidate(e.to_string()))?;
        ep.rtc.add_remote_candidate(c);
        Ok(())
    }

    /// The endpoint leaves (signaling saw it go). Unknown ids are ignored: leaving is idempotent.
    pub fn leave(&mut self, now: Instant, id: EndpointId) {
        let Some(mut ep) = self.endpoints.remove(&id) else {
            return;
        };
        self.deadlines.replace(id, ep.deadline, None);
        for source in ep.slots.iter().filter_map(|s| s.source) {
            if let Some(track) = self.track_in_mut(source) {
                track.receivers.retain(|r| *r != id);
            }
        }
        ep.rtc.disconnect();
        for addr in &ep.addrs {
            self.by_addr.remove(addr);
        }
        let meeting = ep.meeting;
        let Some(m) = self.meetings.get_mut(&meeting) else {
            return;
        };
        m.remove(now, id);
        if m.members.is_empty() {
            if !m.explicit_policy {
                self.meetings.remove(&meeting);
            }
            return;
        }
        // Its slots at the others go to whoever is next in line.
        self.plan_meeting_slots(meeting);
        self.drain_dirty(now);
    }

    /// A datagram arrived at the SFU's socket. Everything it causes is done before this
    /// returns: [`Self::receive`] followed by [`Self::drain`].
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
    ) {
        self.receive(now, source, destination, contents);
        self.drain(now);
    }

    /// A datagram arrived: its endpoint handles it at once (media it carries is written to
    /// the receivers' sessions), but the receivers' sessions are polled only by the next
    /// [`Self::drain`]. A caller with several datagrams in hand receives them all, then drains
    /// once: each receiver's session (ICE, DTLS, timers, pacing, encryption) is then polled once
    /// for all the packets it got, not once per packet.
    pub fn receive(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
    ) {
        let Ok(contents) = contents.try_into() else {
            self.counters.dropped_datagrams += 1;
            return;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination,
                contents,
            },
        );
        let id = match self.by_addr.get(&source) {
            Some(id) => *id,
            // A new address: only a STUN binding request naming an endpoint's ICE credentials
            // can introduce it. Rare, so a scan is fine.
            None => match self.endpoints.values().find(|e| e.rtc.accepts(&input)) {
                Some(ep) => ep.id,
                None => {
                    self.counters.dropped_datagrams += 1;
                    return;
                }
            },
        };
        let Some(ep) = self.endpoints.get_mut(&id) else {
            self.counters.dropped_datagrams += 1;
            return;
        };
        if !ep.addrs.contains(&source) {
            ep.addrs.push(source);
            self.by_addr.insert(source, id);
        }
        ep.last_receive = now;
        if let Err(e) = ep.rtc.handle_input(input) {
            // A bad datagram for this session; str0m has dropped it. Count, keep going.
            tracing::debug!(endpoint = %id, error = %e, "datagram rejected");
            self.counters.dropped_datagrams += 1;
        }
        if let Err(reason) = self.drain_endpoint(now, id) {
            self.remove_gone(now, id, reason);
        }
        self.refresh_deadline(now, id);
    }

    /// Polls every session with something to send or say (see [`Self::receive`]), and meets
    /// every deadline already due: a pass made anyway spares a wake-up later (see `deadline`).
    pub fn drain(&mut self, now: Instant) {
        if self.deadlines.any_due(now) {
            self.handle_timeout(now);
        } else {
            self.drain_dirty(now);
        }
    }

    /// The time returned by [`Self::poll_timeout`] has come (or any time earlier: deadlines
    /// not yet due are left alone).
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut gone = Vec::new();
        let mut due = Vec::new();
        let mut reallocate = Vec::new();
        for id in self.deadlines.due(now) {
            let Some(ep) = self.endpoints.get_mut(&id) else {
                continue;
            };
            if ep.connected && ep.silent_for(now) >= self.config.liveness_timeout {
                gone.push((ep.id, GoneReason::Silent));
                continue;
            }
            if !ep.connected && ep.silent_for(now) >= self.config.connect_timeout {
                gone.push((ep.id, GoneReason::NeverConnected));
                continue;
            }
            if ep.next_timeout <= now
                && let Err(e) = ep.rtc.handle_input(Input::Timeout(now))
            {
                tracing::debug!(endpoint = %ep.id, error = %e, "session timeout handling failed");
                gone.push((ep.id, GoneReason::SessionFailed));
                continue;
            }
            for track in &mut ep.tracks_in {
                for (layer, throttle) in track.keyframes.iter_mut().enumerate() {
                    if let Some(kind) = throttle.poll_due(now) {
                        due.push((ep.id, track.mid, layer as Layer, kind));
                    }
                }
            }
            if ep.next_allocation.is_some_and(|t| t <= now) {
                reallocate.push(id);
            }
            if let Some((audio, video_layers)) = ep.arriving.check(now) {
                self.outputs.push_back(CoreOutput::Event(SfuEvent::Media {
                    endpoint: id,
                    audio,
                    video_layers,
                }));
            }
            // Drained below; draining computes its next deadline.
            if !ep.dirty {
                ep.dirty = true;
                self.dirty.push(ep.id);
            }
        }
        for (id, mid, layer, kind) in due {
            self.send_keyframe_request(id, mid, layer, kind);
        }
        for id in reallocate {
            self.reallocate(now, id);
        }
        self.drain_dirty(now);
        for (id, reason) in gone {
            self.remove_gone(now, id, reason);
        }
    }

    /// The next output, if any. Call until `None` after every input.
    pub fn poll_output(&mut self) -> Option<CoreOutput> {
        self.outputs.pop_front()
    }

    /// When [`Self::handle_timeout`] must be called next at the latest.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.next_wake()
    }

    /// Recomputes an endpoint's next deadline and files it in `deadlines`.
    fn refresh_deadline(&mut self, now: Instant, id: EndpointId) {
        let Some(ep) = self.endpoints.get_mut(&id) else {
            return;
        };
        let liveness = if ep.connected {
            self.config.liveness_timeout
        } else {
            self.config.connect_timeout
        };
        let keyframes = ep
            .tracks_in
            .iter()
            .flat_map(|t| t.keyframes.iter().filter_map(|k| k.deadline()));
        let next = [
            Some(ep.next_timeout),
            Some(ep.last_receive + liveness),
            ep.next_allocation,
            ep.arriving.deadline(),
        ]
        .into_iter()
        .flatten()
        .chain(keyframes)
        .min();
        if next == ep.deadline.map(|d| d.due) {
            return;
        }
        let next = next.map(|due| Deadline::new(now, due));
        self.deadlines.replace(id, ep.deadline, next);
        ep.deadline = next;
    }

    fn remove_gone(&mut self, now: Instant, id: EndpointId, reason: GoneReason) {
        if !self.endpoints.contains_key(&id) {
            return;
        }
        self.leave(now, id);
        self.outputs.push_back(CoreOutput::Event(SfuEvent::Gone {
            endpoint: id,
            reason,
        }));
    }

    fn mark_dirty(&mut self, id: EndpointId) {
        if let Some(ep) = self.endpoints.get_mut(&id)
            && !ep.dirty
        {
            ep.dirty = true;
            self.dirty.push(id);
        }
    }

    /// Polls every dirty endpoint's session until it has nothing more to say. Forwarding marks
    /// receivers dirty, so this runs until the whole meeting is quiet.
    pub(super) fn drain_dirty(&mut self, now: Instant) {
        let mut failed = Vec::new();
        loop {
            self.make_slot_plans(now);
            let Some(id) = self.dirty.pop() else {
                break;
            };
            if let Some(ep) = self.endpoints.get_mut(&id) {
                ep.dirty = false;
            }
            if let Err(reason) = self.drain_endpoint(now, id) {
                failed.push((id, reason));
            }
            self.refresh_deadline(now, id);
        }
        for (id, reason) in failed {
            self.remove_gone(now, id, reason);
        }
    }

    /// Makes the slot plans queued by [`Self::plan_slots`] since the last batch. Meetings are
    /// ranked once per batch: nothing a plan changes (slots, allocations) moves a ranking.
    fn make_slot_plans(&mut self, now: Instant) {
        if self.slot_plans.is_empty() {
            return;
        }
        let mut ranked: HashMap<MeetingId, Option<media::Candidates>> = HashMap::new();
        while let Some(receiver) = self.slot_plans.pop_first() {
            let Some(meeting) = self.endpoints.get(&receiver).map(|ep| ep.meeting) else {
                continue;
            };
            if let Some(candidates) = ranked
                .entry(meeting)
                .or_insert_with(|| self.candidates(meeting))
            {
                self.assign_slots(now, receiver, candidates);
            }
        }
    }

    /// Relays an offer for `id`'s new slots if its session can take one, and tells
    /// signaling which source each slot carries if that changed.
    fn announce_slots(&mut self, id: EndpointId) {
        let Some(ep) = self.endpoints.get_mut(&id) else {
            return;
        };
        if let Some(sdp) = ep.offer_if_needed() {
            self.outputs
                .push_back(CoreOutput::Event(SfuEvent::Offer { endpoint: id, sdp }));
        }
        if !std::mem::take(&mut ep.slots_changed) {
            return;
        }
        let slots = ep
            .slot_mapping()
            .into_iter()
            .map(|(mid, kind, source)| SlotInfo {
                mid: mid.to_string(),
                kind: match kind {
                    MediaKind::Audio => SlotKind::Audio,
                    MediaKind::Video => SlotKind::Video,
                },
                source: source.map(|(e, _)| e),
                content: source
                    .and_then(|(e, mid)| self.endpoints.get(&e)?.track_in(mid))
                    .is_some_and(|t| t.content),
            })
            .collect();
        self.outputs.push_back(CoreOutput::Event(SfuEvent::Slots {
            endpoint: id,
            slots,
        }));
    }

    fn drain_endpoint(&mut self, now: Instant, id: EndpointId) -> Result<(), GoneReason> {
        // Slots are added and re-sourced only when plans are made (between drains) and by
        // the signaling calls, never by what the session says below: announce them once.
        self.announce_slots(id);
        // str0m asks for an immediate timeout after packets were written to it (that is when
        // it stamps them for the pacer). Honour that a bounded number of times per drain.
        let mut immediate_timeouts = 0;
        loop {
            let Some(ep) = self.endpoints.get_mut(&id) else {
                return Ok(());
            };
            let output = match ep.rtc.poll_output() {
                Ok(o) => o,
                Err(e) => {
                    tracing::debug!(endpoint = %id, error = %e, "session failed");
                    return Err(GoneReason::SessionFailed);
                }
            };
            match output {
                Output::Timeout(t) if t <= now && immediate_timeouts < 4 => {
                    immediate_timeouts += 1;
                    if let Err(e) = ep.rtc.handle_input(Input::Timeout(now)) {
                        tracing::debug!(endpoint = %id, error = %e, "session failed");
                        return Err(GoneReason::SessionFailed);
                    }
                }
                Output::Timeout(t) => {
                    ep.next_timeout = t;
                    return Ok(());
                }
                Output::Transmit(t) => self.outputs.push_back(CoreOutput::Transmit {
                    destination: t.destination,
                    contents: t.contents.into(),
                }),
                Output::Event(e) => self.handle_event(now, id, e)?,
            }
        }
    }

    fn handle_event(
        &mut self,
        now: Instant,
        id: EndpointId,
        event: Event,
    ) -> Result<(), GoneReason> {
        match event {
            Event::Connected => {
                if let Some(ep) = self.endpoints.get_mut(&id) {
                    ep.connected = true;
                }
                self.outputs
                    .push_back(CoreOutput::Event(SfuEvent::Connected { endpoint: id }));
            }
            // ICE "disconnected" is often transient (a busy client late with its checks); the
            // liveness timeout decides when an endpoint is really gone.
            Event::IceConnectionStateChange(state) => {
                tracing::debug!(endpoint = %id, ?state, "ICE state");
            }
            Event::MediaAdded(m) if m.direction.is_receiving() => {
                // Layers as the client listed them: lowest first, by this project's convention.
                let layers = m
                    .simulcast
                    .map(|s| if s.recv.is_empty() { s.send } else { s.recv })
                    .map(|l| l.into_iter().map(|l| l.rid).collect())
                    .unwrap_or_default();
                self.publish(id, m.mid, m.kind, layers);
            }
            Event::RtpPacket(packet) => self.forward(now, id, packet),
            Event::MediaEgressStats(stats) => {
                if let Some(ep) = self.endpoints.get_mut(&id) {
                    let counts = [
                        stats.packets,
                        stats.bytes,
                        stats.nacks,
                        stats.plis,
                        stats.firs,
                    ];
                    ep.measured.egress_stats((stats.mid, stats.rid), counts);
                    if stats.loss.is_some() {
                        ep.measured.receiver_loss = stats.loss;
                    }
                    ep.measured.rtt = stats.rtt.or(ep.measured.rtt);
                }
            }
            Event::MediaIngressStats(stats) => {
                if let Some(ep) = self.endpoints.get_mut(&id) {
                    let requests = [stats.nacks, stats.plis, stats.firs];
                    ep.measured.ingress_stats((stats.mid, stats.rid), requests);
                    ep.measured.rtt = stats.rtt.or(ep.measured.rtt);
                }
            }
            Event::PeerStats(stats) => {
                if let Some(ep) = self.endpoints.get_mut(&id) {
                    ep.measured.rtt = stats.rtt.or(ep.measured.rtt);
                    if stats.egress_loss_fraction.is_some() {
                        ep.measured.receiver_loss = stats.egress_loss_fraction;
                    }
                }
            }
            Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. }) => {
                if let Some(ep) = self.endpoints.get_mut(&id) {
                    ep.estimate = Some(estimate.as_u64());
                }
                self.reallocate(now, id);
            }
            Event::KeyframeRequest(req) => {
                let source = self.endpoints.get(&id).and_then(|ep| {
                    ep.slots
                        .iter()
                        .find(|t| t.local_mid() == Some(req.mid))
                        .and_then(|t| {
                            let (source, mid) = t.source?;
                            Some((source, mid, t.layers.current().unwrap_or(0)))
                        })
                });
                if let Some((source, mid, layer)) = source {
                    self.request_keyframe(now, source, mid, layer, req.kind);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Opus as str0m enables it (payload type 111, in-band FEC, 10 ms minimum packets), plus
/// `usedtx=1`: publishers stop sending while their room is silent (a packet every 400 ms
/// instead of every 20 ms). In a province meeting most of 213 rooms listen most of the time;
/// their silence is most of the audio the SFU would otherwise receive and decrypt, and most of
/// what a commune's uplink carries. Browsers and the room agent honour it.
fn ask_for_opus_dtx(codecs: &mut CodecConfig) {
    codecs.add_config(
        111.into(),
        None,
        Codec::Opus,
        Frequency::FORTY_EIGHT_KHZ,
        Some(2),
        FormatParams {
            min_p_time: Some(10),
            use_inband_fec: Some(true),
            use_dtx: Some(true),
            ..FormatParams::default()
        },
    );
}
