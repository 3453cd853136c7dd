//! One endpoint of a meeting: its WebRTC session and the tracks it publishes and receives.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::Rtc;
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::PayloadParams;
use str0m::media::{Direction, MediaKind, Mid, Pt};
use str0m::rtp::Ssrc;

use super::SfuError;
use super::forward::SeqRewriter;
use super::keyframe::KeyframeThrottle;
use crate::{EndpointId, MeetingId};

/// Where an endpoint is in the offer/answer exchange.
///
/// The rule that keeps offers from colliding: the client offers once, to publish; after that
/// every change to what it receives is offered by the SFU, one offer at a time.
#[derive(Debug)]
pub(crate) enum Negotiation {
    /// The client's first offer was answered; the SFU may offer changes.
    Stable,
    /// The SFU sent an offer and waits for its answer.
    AwaitingAnswer(SdpPendingOffer),
}

/// A track this endpoint publishes.
#[derive(Debug)]
pub(crate) struct TrackIn {
    pub(crate) mid: Mid,
    pub(crate) kind: MediaKind,
    pub(crate) keyframes: KeyframeThrottle,
    /// Counts the runs of packets the SFU chose not to forward (see `SeqRewriter`).
    pub(crate) skip_epoch: u32,
    /// Whether the last packet was not forwarded.
    pub(crate) skipping: bool,
}

/// The state of a track forwarded to this endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TrackOutState {
    /// Waiting for the next offer to add it.
    ToOpen,
    /// Offered under this mid; waiting for the answer.
    Opening(Mid),
    /// Negotiated: media flows.
    Open(Mid),
    /// The publisher is gone; waiting for the next offer to stop it.
    ToStop(Mid),
    /// Offered as stopped; removed when the answer arrives.
    Stopping(Mid),
}

/// A track of another endpoint forwarded to this one.
#[derive(Debug)]
pub(crate) struct TrackOut {
    pub(crate) source: EndpointId,
    pub(crate) source_mid: Mid,
    pub(crate) kind: MediaKind,
    pub(crate) state: TrackOutState,
    /// Filled on the first packet: the send stream of the negotiated mid.
    pub(crate) tx_ssrc: Option<Ssrc>,
    pub(crate) seq: SeqRewriter,
    /// Publisher payload type → this receiver's payload type for the same codec.
    pub(crate) pt_map: Vec<(Pt, Pt)>,
}

impl TrackOut {
    pub(crate) fn new(source: EndpointId, source_mid: Mid, kind: MediaKind) -> Self {
        Self {
            source,
            source_mid,
            kind,
            state: TrackOutState::ToOpen,
            tx_ssrc: None,
            seq: SeqRewriter::default(),
            pt_map: Vec::new(),
        }
    }

    pub(crate) fn open_mid(&self) -> Option<Mid> {
        match self.state {
            TrackOutState::Open(m) => Some(m),
            _ => None,
        }
    }

    /// The mid this track has on the receiver's session, negotiated or on offer.
    pub(crate) fn local_mid(&self) -> Option<Mid> {
        match self.state {
            TrackOutState::ToOpen => None,
            TrackOutState::Opening(m)
            | TrackOutState::Open(m)
            | TrackOutState::ToStop(m)
            | TrackOutState::Stopping(m) => Some(m),
        }
    }
}

/// One endpoint: a WebRTC session and what flows through it.
#[derive(Debug)]
pub(crate) struct Endpoint {
    pub(crate) id: EndpointId,
    pub(crate) meeting: MeetingId,
    pub(crate) rtc: Rtc,
    pub(crate) negotiation: Negotiation,
    pub(crate) tracks_in: Vec<TrackIn>,
    pub(crate) tracks_out: Vec<TrackOut>,
    /// Incoming SSRC → the mid it belongs to, filled on first sight.
    pub(crate) ssrc_mid: HashMap<Ssrc, Mid>,
    /// Remote addresses datagrams came from (to unregister them on removal).
    pub(crate) addrs: Vec<SocketAddr>,
    pub(crate) next_timeout: Instant,
    pub(crate) last_receive: Instant,
    pub(crate) connected: bool,
}

impl Endpoint {
    pub(crate) fn new(id: EndpointId, meeting: MeetingId, rtc: Rtc, now: Instant) -> Self {
        Self {
            id,
            meeting,
            rtc,
            negotiation: Negotiation::Stable,
            tracks_in: Vec::new(),
            tracks_out: Vec::new(),
            ssrc_mid: HashMap::new(),
            addrs: Vec::new(),
            next_timeout: now,
            last_receive: now,
            connected: false,
        }
    }

    /// The mid of an incoming stream, asking str0m once per SSRC.
    pub(crate) fn mid_of(&mut self, ssrc: Ssrc) -> Option<Mid> {
        if let Some(mid) = self.ssrc_mid.get(&ssrc) {
            return Some(*mid);
        }
        let mid = self.rtc.direct_api().stream_rx(&ssrc)?.mid();
        self.ssrc_mid.insert(ssrc, mid);
        Some(mid)
    }

    /// The index of the forwarded track fed by `(source, source_mid)`.
    pub(crate) fn track_out_index(&self, source: EndpointId, source_mid: Mid) -> Option<usize> {
        self.tracks_out
            .iter()
            .position(|t| t.source == source && t.source_mid == source_mid)
    }

    /// If the session is stable and forwarded tracks need adding or stopping, makes an SDP
    /// offer for them. Returns the offer to relay to the client.
    pub(crate) fn offer_if_needed(&mut self) -> Option<String> {
        if !matches!(self.negotiation, Negotiation::Stable) {
            return None;
        }
        let wanted = self
            .tracks_out
            .iter()
            .any(|t| matches!(t.state, TrackOutState::ToOpen | TrackOutState::ToStop(_)));
        if !wanted {
            return None;
        }
        let mut sdp = self.rtc.sdp_api();
        for track in &mut self.tracks_out {
            match track.state {
                TrackOutState::ToOpen => {
                    let stream_id = track.source.stream_id();
                    let track_id = format!("{}-{}", track.source, track.source_mid);
                    let mid = sdp.add_media(
                        track.kind,
                        Direction::SendOnly,
                        Some(stream_id),
                        Some(track_id),
                        None,
                    );
                    track.state = TrackOutState::Opening(mid);
                }
                TrackOutState::ToStop(mid) => {
                    sdp.stop_media(mid);
                    track.state = TrackOutState::Stopping(mid);
                }
                _ => {}
            }
        }
        let (offer, pending) = sdp.apply()?;
        self.negotiation = Negotiation::AwaitingAnswer(pending);
        Some(offer.to_sdp_string())
    }

    /// Applies the client's answer to the SFU's pending offer.
    pub(crate) fn accept_answer(&mut self, sdp: &str) -> Result<(), SfuError> {
        let answer =
            SdpAnswer::from_sdp_string(sdp).map_err(|e| SfuError::BadSdp(e.to_string()))?;
        let Negotiation::AwaitingAnswer(pending) =
            std::mem::replace(&mut self.negotiation, Negotiation::Stable)
        else {
            return Err(SfuError::NoOfferPending);
        };
        if let Err(e) = self.rtc.sdp_api().accept_answer(pending, answer) {
            // The offer is spent either way. Put the tracks back so the next offer retries
            // them rather than leaving them half-negotiated.
            self.rewind_offered_tracks();
            return Err(SfuError::Negotiation(e.to_string()));
        }
        for track in &mut self.tracks_out {
            if let TrackOutState::Opening(mid) = track.state {
                track.state = TrackOutState::Open(mid);
            }
        }
        self.tracks_out
            .retain(|t| !matches!(t.state, TrackOutState::Stopping(_)));
        Ok(())
    }

    fn rewind_offered_tracks(&mut self) {
        for track in &mut self.tracks_out {
            track.state = match track.state {
                TrackOutState::Opening(_) => TrackOutState::ToOpen,
                TrackOutState::Stopping(mid) => TrackOutState::ToStop(mid),
                other => other,
            };
        }
    }

    /// Marks every track forwarded from `source` for stopping (or forgets it if never offered).
    pub(crate) fn stop_tracks_from(&mut self, source: EndpointId) {
        self.tracks_out
            .retain(|t| t.source != source || t.local_mid().is_some());
        for track in &mut self.tracks_out {
            if track.source != source {
                continue;
            }
            track.state = match track.state {
                TrackOutState::Opening(m) | TrackOutState::Open(m) => TrackOutState::ToStop(m),
                other => other,
            };
        }
    }

    /// This receiver's payload type for the codec of `params` (a publisher's payload).
    pub(crate) fn matching_pt(&self, params: &PayloadParams) -> Option<Pt> {
        let spec = params.spec();
        let config = self.rtc.codec_config();
        config
            .find(|p| p.spec() == spec)
            .or_else(|| config.find(|p| p.spec().codec == spec.codec))
            .map(|p| p.pt())
    }

    /// How long this endpoint may stay silent before it is considered gone.
    pub(crate) fn silent_for(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.last_receive)
    }
}
