//! The sans-IO core of the SFU.
//!
//! [`SfuCore`] owns every endpoint's WebRTC session ([`str0m::Rtc`], itself sans-IO) and
//! decides what goes where. It never reads a clock or touches a socket: the caller passes
//! `now` with every input, sends the datagrams it returns and calls back at
//! [`SfuCore::poll_timeout`]. That makes a whole meeting simulable, deterministically and faster
//! than real time, in a unit test.

mod endpoint;
mod forward;
mod keyframe;
mod meeting;
mod speaker;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::change::SdpOffer;
use str0m::media::{KeyframeRequestKind, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};

use crate::stats::CoreCounters;
use crate::{EndpointId, MeetingId};
use endpoint::{Endpoint, TrackIn, TrackOut};
use keyframe::{KeyframeThrottle, Throttled};
use meeting::Meeting;
pub use meeting::{AudioMode, AudioPolicy};

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
    pub audio_policy: AudioPolicy,
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
            audio_policy: AudioPolicy::default(),
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
    /// The endpoint was removed by the core itself.
    Gone {
        /// Who is gone.
        endpoint: EndpointId,
        /// Why.
        reason: GoneReason,
    },
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
    endpoints: HashMap<EndpointId, Endpoint>,
    meetings: HashMap<MeetingId, Meeting>,
    by_addr: HashMap<SocketAddr, EndpointId>,
    outputs: VecDeque<CoreOutput>,
    /// Endpoints with output to drain; deduplicated by `is_dirty`.
    dirty: Vec<EndpointId>,
    counters: CoreCounters,
}

impl SfuCore {
    /// A core with no meetings.
    pub fn new(config: SfuConfig) -> Self {
        Self {
            config,
            endpoints: HashMap::new(),
            meetings: HashMap::new(),
            by_addr: HashMap::new(),
            outputs: VecDeque::new(),
            dirty: Vec::new(),
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

    /// The dominant speaker of a meeting, if anyone has spoken.
    pub fn dominant_speaker(&self, meeting: MeetingId) -> Option<EndpointId> {
        self.meetings.get(&meeting)?.dominant()
    }

    /// Sets whose audio a meeting forwards (floor mode, mutes, loudest-N). It applies from the
    /// next packet and stays until changed or [`Self::close_meeting`], even with nobody present.
    pub fn set_audio_policy(&mut self, meeting: MeetingId, policy: AudioPolicy) {
        let m = self
            .meetings
            .entry(meeting)
            .or_insert_with(|| Meeting::new(policy.clone()));
        m.set_policy(policy);
        m.explicit_policy = true;
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
        let mut rtc = Rtc::builder()
            .set_rtp_mode(true)
            .set_ice_lite(true)
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .enable_h264(true)
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
        let policy = &self.config.audio_policy;
        let m = self
            .meetings
            .entry(meeting)
            .or_insert_with(|| Meeting::new(policy.clone()));
        m.members.push(id);
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
        let result = ep.accept_answer(sdp);
        // Newly opened tracks need a keyframe to start decoding.
        let opened: Vec<(EndpointId, Mid)> = ep
            .tracks_out
            .iter()
            .filter(|t| t.kind == MediaKind::Video && t.tx_ssrc.is_none() && t.open_mid().is_some())
            .map(|t| (t.source, t.source_mid))
            .collect();
        for (source, mid) in opened {
            self.request_keyframe(now, source, mid, KeyframeRequestKind::Fir);
        }
        self.mark_dirty(id);
        self.drain_dirty(now);
        result
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
        ep.rtc.disconnect();
        for addr in &ep.addrs {
            self.by_addr.remove(addr);
        }
        let meeting = ep.meeting;
        let Some(m) = self.meetings.get_mut(&meeting) else {
            return;
        };
        m.remove(id);
        if m.members.is_empty() {
            if !m.explicit_policy {
                self.meetings.remove(&meeting);
            }
            return;
        }
        for other in m.members.clone() {
            if let Some(o) = self.endpoints.get_mut(&other) {
                o.stop_tracks_from(id);
            }
            self.mark_dirty(other);
        }
        self.drain_dirty(now);
    }

    /// A datagram arrived at the SFU's socket.
    pub fn handle_datagram(
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
        self.mark_dirty(id);
        self.drain_dirty(now);
    }

    /// The deadline returned by [`Self::poll_timeout`] has passed (or any time earlier).
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut gone = Vec::new();
        let mut due = Vec::new();
        for ep in self.endpoints.values_mut() {
            if ep.connected && ep.silent_for(now) >= self.config.liveness_timeout {
                gone.push((ep.id, GoneReason::Silent));
                continue;
            }
            if !ep.connected && ep.silent_for(now) >= self.config.connect_timeout {
                gone.push((ep.id, GoneReason::NeverConnected));
                continue;
            }
            if ep.next_timeout <= now {
                if let Err(e) = ep.rtc.handle_input(Input::Timeout(now)) {
                    tracing::debug!(endpoint = %ep.id, error = %e, "session timeout handling failed");
                    gone.push((ep.id, GoneReason::SessionFailed));
                    continue;
                }
                self.dirty.push(ep.id);
            }
            for track in &mut ep.tracks_in {
                if let Some(kind) = track.keyframes.poll_due(now) {
                    due.push((ep.id, track.mid, kind));
                }
            }
        }
        for (id, mid, kind) in due {
            self.send_keyframe_request(id, mid, kind);
        }
        self.dirty.sort_unstable();
        self.dirty.dedup();
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
        self.endpoints
            .values()
            .flat_map(|ep| {
                let liveness = if ep.connected {
                    self.config.liveness_timeout
                } else {
                    self.config.connect_timeout
                };
                let keyframes = ep.tracks_in.iter().filter_map(|t| t.keyframes.deadline());
                [Some(ep.next_timeout), Some(ep.last_receive + liveness)]
                    .into_iter()
                    .flatten()
                    .chain(keyframes)
            })
            .min()
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
        if !self.dirty.contains(&id) {
            self.dirty.push(id);
        }
    }

    /// Polls every dirty endpoint's session until it has nothing more to say. Forwarding marks
    /// receivers dirty, so this runs until the whole meeting is quiet.
    fn drain_dirty(&mut self, now: Instant) {
        let mut failed = Vec::new();
        while let Some(id) = self.dirty.pop() {
            if let Err(reason) = self.drain_endpoint(now, id) {
                failed.push((id, reason));
            }
        }
        for (id, reason) in failed {
            self.remove_gone(now, id, reason);
        }
    }

    fn drain_endpoint(&mut self, now: Instant, id: EndpointId) -> Result<(), GoneReason> {
        // str0m asks for an immediate timeout after packets were written to it (that is when
        // it stamps them for the pacer). Honour that a bounded number of times per drain.
        let mut immediate_timeouts = 0;
        loop {
            let Some(ep) = self.endpoints.get_mut(&id) else {
                return Ok(());
            };
            if let Some(sdp) = ep.offer_if_needed() {
                self.outputs
                    .push_back(CoreOutput::Event(SfuEvent::Offer { endpoint: id, sdp }));
            }
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
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                return Err(GoneReason::SessionFailed);
            }
            Event::MediaAdded(m) if m.direction.is_receiving() => {
                self.publish(id, m.mid, m.kind);
            }
            Event::RtpPacket(packet) => self.forward(now, id, packet),
            Event::KeyframeRequest(req) => {
                let source = self.endpoints.get(&id).and_then(|ep| {
                    ep.tracks_out
                        .iter()
                        .find(|t| t.local_mid() == Some(req.mid))
                        .map(|t| (t.source, t.source_mid))
                });
                if let Some((source, mid)) = source {
                    self.request_keyframe(now, source, mid, req.kind);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// A new track from `id`: offer it to every other endpoint of the meeting.
    fn publish(&mut self, id: EndpointId, mid: Mid, kind: MediaKind) {
        let Some(ep) = self.endpoints.get_mut(&id) else {
            return;
        };
        if ep.tracks_in.iter().any(|t| t.mid == mid) {
            return;
        }
        ep.tracks_in.push(TrackIn {
            mid,
            kind,
            keyframes: KeyframeThrottle::new(self.config.keyframe_interval),
            skip_epoch: 0,
            skipping: false,
        });
        let meeting = ep.meeting;
        let others: Vec<EndpointId> = self
            .members(meeting)
            .iter()
            .copied()
            .filter(|o| *o != id)
            .collect();
        for other in others {
            if let Some(o) = self.endpoints.get_mut(&other) {
                o.tracks_out.push(TrackOut::new(id, mid, kind));
            }
            self.mark_dirty(other);
        }
        // The newcomer receives what the others already publish.
        let existing: Vec<(EndpointId, Mid, MediaKind)> = self
            .members(meeting)
            .iter()
            .filter(|o| **o != id)
            .filter_map(|o| self.endpoints.get(o))
            .flat_map(|o| o.tracks_in.iter().map(move |t| (o.id, t.mid, t.kind)))
            .collect();
        if let Some(ep) = self.endpoints.get_mut(&id) {
            for (source, source_mid, kind) in existing {
                if ep.track_out_index(source, source_mid).is_none() {
                    ep.tracks_out.push(TrackOut::new(source, source_mid, kind));
                }
            }
        }
    }

    /// Writes a publisher's packet to every other endpoint of its meeting that has the track open.
    fn forward(&mut self, now: Instant, source: EndpointId, packet: RtpPacket) {
        let Some(ep) = self.endpoints.get_mut(&source) else {
            return;
        };
        let Some(mid) = ep.mid_of(packet.header.ssrc) else {
            return;
        };
        let Some(track_in) = ep.tracks_in.iter_mut().find(|t| t.mid == mid) else {
            return;
        };
        let Some(params) = ep
            .rtc
            .codec_config()
            .find(|p| p.pt() == packet.header.payload_type)
            .cloned()
        else {
            return;
        };
        let is_video = params.spec().codec.is_video();
        let meeting_id = ep.meeting;
        let Some(meeting) = self.meetings.get_mut(&meeting_id) else {
            return;
        };
        if !is_video {
            let (heard, change) = meeting.on_audio(now, source, packet.header.ext_vals.audio_level);
            if let Some(c) = change {
                self.outputs
                    .push_back(CoreOutput::Event(SfuEvent::Speakers {
                        meeting: meeting_id,
                        dominant: c.dominant,
                        recent: c.recent,
                    }));
            }
            if !heard {
                if !track_in.skipping {
                    track_in.skipping = true;
                    track_in.skip_epoch = track_in.skip_epoch.wrapping_add(1);
                }
                return;
            }
        }
        track_in.skipping = false;
        let epoch = track_in.skip_epoch;
        let members = &meeting.members;
        let exts = ExtensionValues {
            audio_level: packet.header.ext_vals.audio_level,
            voice_activity: packet.header.ext_vals.voice_activity,
            video_orientation: packet.header.ext_vals.video_orientation,
            ..Default::default()
        };
        for receiver_id in members {
            if *receiver_id == source {
                continue;
            }
            let Some(receiver) = self.endpoints.get_mut(receiver_id) else {
                continue;
            };
            let Some(index) = receiver.track_out_index(source, mid) else {
                continue;
            };
            let Some(pt) = receiver.tracks_out[index]
                .pt_map
                .iter()
                .find(|(from, _)| *from == params.pt())
                .map(|(_, to)| *to)
                .or_else(|| {
                    let to = receiver.matching_pt(&params)?;
                    receiver.tracks_out[index].pt_map.push((params.pt(), to));
                    Some(to)
                })
            else {
                continue;
            };
            let track = &mut receiver.tracks_out[index];
            let Some(local_mid) = track.open_mid() else {
                continue;
            };
            let Some(seq) = track.seq.rewrite(packet.seq_no, epoch) else {
                continue;
            };
            let mut api = receiver.rtc.direct_api();
            let ssrc = match track.tx_ssrc {
                Some(s) => s,
                None => match api.stream_tx_by_mid(local_mid, None) {
                    Some(stream) => {
                        let s = stream.ssrc();
                        track.tx_ssrc = Some(s);
                        s
                    }
                    None => continue,
                },
            };
            let Some(stream) = api.stream_tx(&ssrc) else {
                continue;
            };
            let write = RtpWrite::new(
                pt,
                seq,
                packet.header.timestamp,
                packet.timestamp,
                packet.payload.clone(),
            )
            .marker(packet.header.marker)
            .ext_vals(exts.clone())
            .nackable(is_video);
            stream.write_rtp(write);
            self.counters.forwarded_packets += 1;
            self.counters.forwarded_bytes += packet.payload.len() as u64;
            if !self.dirty.contains(receiver_id) {
                self.dirty.push(*receiver_id);
            }
        }
    }

    /// A receiver wants a keyframe of `(source, mid)`: pass it on, rate-limited.
    fn request_keyframe(
        &mut self,
        now: Instant,
        source: EndpointId,
        mid: Mid,
        kind: KeyframeRequestKind,
    ) {
        let Some(track) = self
            .endpoints
            .get_mut(&source)
            .and_then(|ep| ep.tracks_in.iter_mut().find(|t| t.mid == mid))
        else {
            return;
        };
        match track.keyframes.request(now, kind) {
            Throttled::SendNow(kind) => self.send_keyframe_request(source, mid, kind),
            Throttled::Deferred => self.counters.keyframe_requests_coalesced += 1,
        }
    }

    fn send_keyframe_request(&mut self, source: EndpointId, mid: Mid, kind: KeyframeRequestKind) {
        let Some(ep) = self.endpoints.get_mut(&source) else {
            return;
        };
        if let Some(stream) = ep.rtc.direct_api().stream_rx_by_mid(mid, None) {
            stream.request_keyframe(kind);
            self.counters.keyframe_requests_sent += 1;
            self.mark_dirty(source);
        }
    }
}
