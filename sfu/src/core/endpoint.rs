//! One endpoint of a meeting: its WebRTC session and the tracks it publishes and receives.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::Rtc;
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::PayloadParams;
use str0m::media::{Direction, MediaKind, Mid, Pt, Rid};
use str0m::rtp::Ssrc;

use super::SfuError;
use super::allocator::Allocator;
use super::forward::StreamRewriter;
use super::keyframe::KeyframeThrottle;
use super::layers::{Layer, LayerSelector, layer_for_height};
use super::rate::RateMeter;
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
    /// Simulcast layers, lowest first; empty for a single stream.
    pub(crate) rids: Vec<Rid>,
    /// Per layer (one when not simulcast): the picture height seen in its last keyframe.
    pub(crate) heights: Vec<Option<u16>>,
    /// Per layer: when its last packet arrived.
    pub(crate) last_seen: Vec<Option<Instant>>,
    /// Per layer: keyframe request rate limit.
    pub(crate) keyframes: Vec<KeyframeThrottle>,
    /// Per layer: incoming bitrate.
    pub(crate) rates: Vec<RateMeter>,
    /// Counts the runs of packets the SFU chose not to forward (see `SeqRewriter`).
    pub(crate) skip_epoch: u32,
    /// Whether the last packet was not forwarded.
    pub(crate) skipping: bool,
}

/// A layer not heard from for this long is taken as no longer sent (the publisher's own
/// bandwidth estimate dropped it, or its camera was switched off).
const LAYER_STALE: Duration = Duration::from_millis(1000);

impl TrackIn {
    pub(crate) fn new(
        mid: Mid,
        kind: MediaKind,
        rids: Vec<Rid>,
        keyframe_interval: Duration,
    ) -> Self {
        let n = rids.len().max(1);
        Self {
            mid,
            kind,
            rids,
            heights: vec![None; n],
            last_seen: vec![None; n],
            keyframes: vec![KeyframeThrottle::new(keyframe_interval); n],
            rates: vec![RateMeter::default(); n],
            skip_epoch: 0,
            skipping: false,
        }
    }

    /// The layer index of an incoming stream's RID (0 without simulcast).
    pub(crate) fn layer_of(&self, rid: Option<Rid>) -> Option<Layer> {
        match rid {
            None if self.rids.is_empty() => Some(0),
            None => None,
            Some(rid) => self.rids.iter().position(|r| *r == rid).map(|i| i as Layer),
        }
    }

    /// The RID of a layer.
    pub(crate) fn rid_of(&self, layer: Layer) -> Option<Rid> {
        self.rids.get(usize::from(layer)).copied()
    }

    /// A copy of what receivers need to know about the layers, as of `now`.
    pub(crate) fn layer_info(&self, now: Instant) -> LayerInfo {
        let mut info = LayerInfo {
            count: self.last_seen.len().min(MAX_LAYERS) as Layer,
            heights: [None; MAX_LAYERS],
            arriving: [false; MAX_LAYERS],
            rates: [0; MAX_LAYERS],
        };
        let count = usize::from(info.count);
        for i in 0..count {
            info.heights[i] = self.heights[i];
            info.rates[i] = self.rates[i]
                .bps(now)
                .filter(|bps| *bps > 0)
                .unwrap_or_else(|| default_layer_bps(count, i));
            info.arriving[i] =
                self.last_seen[i].is_some_and(|t| now.saturating_duration_since(t) < LAYER_STALE);
        }
        info
    }
}

/// The most simulcast layers a track may have (browsers send three).
pub(crate) const MAX_LAYERS: usize = 4;

/// Assumed bitrates of layers not measured yet, by layer count: a single stream is taken for
/// a moderate one, simulcast layers for those of a 720p camera.
fn default_layer_bps(count: usize, layer: usize) -> u64 {
    const SIMULCAST: [u64; MAX_LAYERS] = [50_000, 150_000, 500_000, 1_500_000];
    if count <= 1 {
        500_000
    } else {
        SIMULCAST[MAX_LAYERS - count + layer]
    }
}

/// The state of a published video track's layers, copied out for the forwarding loop.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LayerInfo {
    count: Layer,
    heights: [Option<u16>; MAX_LAYERS],
    arriving: [bool; MAX_LAYERS],
    rates: [u64; MAX_LAYERS],
}

impl LayerInfo {
    /// The highest layer.
    pub(crate) fn top(&self) -> Layer {
        self.count.saturating_sub(1)
    }

    /// The bitrate of each layer, lowest first (measured, or assumed until measured).
    pub(crate) fn rates(&self) -> Vec<u64> {
        self.rates[..usize::from(self.count)].to_vec()
    }

    /// The layer for a picture shown `height` pixels high.
    pub(crate) fn for_height(&self, height: u32) -> Layer {
        layer_for_height(height, &self.heights[..usize::from(self.count)])
    }

    /// The layer to send a receiver that wants `wanted`: the highest one arriving at or below
    /// it, else the lowest arriving above it, else `wanted` itself (nothing arrives yet).
    pub(crate) fn available(&self, wanted: Layer) -> Layer {
        let wanted = wanted.min(self.top());
        let arriving = |l: &Layer| self.arriving[usize::from(*l)];
        (0..=wanted)
            .rev()
            .find(arriving)
            .or_else(|| (wanted + 1..=self.top()).find(arriving))
            .unwrap_or(wanted)
    }
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

/// The bandwidth allocator's verdict on a forwarded video.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Budget {
    /// No estimate yet (or not allocated yet): no limit.
    Open,
    /// At most this layer.
    UpTo(Layer),
    /// Paused: the link cannot carry it.
    Paused,
}

impl Budget {
    /// The layer to aim for, given the one the tile wants.
    pub(crate) fn limit(self, wanted: Layer) -> Option<Layer> {
        match self {
            Budget::Open => Some(wanted),
            Budget::UpTo(l) => Some(wanted.min(l)),
            Budget::Paused => None,
        }
    }
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
    pub(crate) rewriter: StreamRewriter,
    /// Which simulcast layer this receiver gets (video).
    pub(crate) layers: LayerSelector,
    /// What the bandwidth allocator allows (video).
    pub(crate) budget: Budget,
    /// The layer the tile wanted when the allocator last planned it.
    pub(crate) planned_for: Option<Layer>,
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
            rewriter: StreamRewriter::default(),
            layers: LayerSelector::default(),
            budget: Budget::Open,
            planned_for: None,
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
    /// Incoming SSRC → the mid and RID it belongs to, filled on first sight.
    pub(crate) ssrc_mid: HashMap<Ssrc, (Mid, Option<Rid>)>,
    /// `(source, source mid)` → index in `tracks_out`: the per-packet lookup.
    out_index: HashMap<(EndpointId, Mid), usize>,
    /// What the client shows: source → picture height. `None` until it says: then it gets
    /// every source at the top layer.
    pub(crate) view: Option<HashMap<EndpointId, u32>>,
    /// Remote addresses datagrams came from (to unregister them on removal).
    pub(crate) addrs: Vec<SocketAddr>,
    pub(crate) next_timeout: Instant,
    pub(crate) last_receive: Instant,
    /// The latest bandwidth estimate towards this endpoint, bits per second.
    pub(crate) estimate: Option<u64>,
    pub(crate) allocator: Allocator,
    /// When to re-run the allocation (for upgrades to complete their hold).
    pub(crate) next_allocation: Option<Instant>,
    /// When the estimator was last asked to probe, and the token raise that asked it.
    pub(crate) last_probe: Option<Instant>,
    pub(crate) probe_nudge: u64,
    pub(crate) connected: bool,
    /// Queued in the core's list of endpoints to drain (so it is queued once, in O(1)).
    pub(crate) dirty: bool,
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
            view: None,
            out_index: HashMap::new(),
            addrs: Vec::new(),
            next_timeout: now,
            last_receive: now,
            estimate: None,
            allocator: Allocator::default(),
            next_allocation: None,
            last_probe: None,
            probe_nudge: 0,
            connected: false,
            dirty: false,
        }
    }

    /// The mid and RID of an incoming stream, asking str0m once per SSRC.
    pub(crate) fn mid_of(&mut self, ssrc: Ssrc) -> Option<(Mid, Option<Rid>)> {
        if let Some(found) = self.ssrc_mid.get(&ssrc) {
            return Some(*found);
        }
        let mut api = self.rtc.direct_api();
        let stream = api.stream_rx(&ssrc)?;
        let found = (stream.mid(), stream.rid());
        self.ssrc_mid.insert(ssrc, found);
        Some(found)
    }

    /// The layer this endpoint wants of `source`'s video, `None` if it does not show it.
    pub(crate) fn wanted_layer(&self, source: EndpointId, layers: &LayerInfo) -> Option<Layer> {
        match &self.view {
            None => Some(layers.top()),
            Some(view) => view.get(&source).map(|height| layers.for_height(*height)),
        }
    }

    /// The index of the forwarded track fed by `(source, source_mid)`.
    pub(crate) fn track_out_index(&self, source: EndpointId, source_mid: Mid) -> Option<usize> {
        self.out_index.get(&(source, source_mid)).copied()
    }

    /// Adds a track to forward to this endpoint (offered at the next negotiation).
    pub(crate) fn add_track_out(&mut self, track: TrackOut) {
        self.out_index
            .insert((track.source, track.source_mid), self.tracks_out.len());
        self.tracks_out.push(track);
    }

    /// Keeps only the forwarded tracks for which `keep` holds, and re-indexes them.
    fn retain_tracks_out(&mut self, keep: impl FnMut(&TrackOut) -> bool) {
        self.tracks_out.retain(keep);
        self.out_index = self
            .tracks_out
            .iter()
            .enumerate()
            .map(|(i, t)| ((t.source, t.source_mid), i))
            .collect();
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
        self.retain_tracks_out(|t| !matches!(t.state, TrackOutState::Stopping(_)));
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
        self.retain_tracks_out(|t| t.source != source || t.local_mid().is_some());
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
