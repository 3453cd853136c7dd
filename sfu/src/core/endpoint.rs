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
use super::deadline::Deadline;
use super::forward::StreamRewriter;
use super::keyframe::KeyframeThrottle;
use super::layers::{Layer, LayerSelector, layer_for_height};
use super::rate::RateMeter;
use crate::quality::StreamMeter;
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
    /// A document or screen rather than a camera: a publisher's second video track.
    pub(crate) content: bool,
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
    /// Per layer: loss, jitter, frames and freezes (made on the first packet, which gives the
    /// clock rate).
    pub(crate) meters: Vec<Option<StreamMeter>>,
    /// Counts the runs of packets the SFU chose not to forward (see `SeqRewriter`).
    pub(crate) skip_epoch: u32,
    /// Whether the last packet was not forwarded.
    pub(crate) skipping: bool,
    /// The receivers that have this track on one of their slots: whom a packet goes to.
    pub(crate) receivers: Vec<EndpointId>,
    /// Which simulcast layers the publisher is asked to send.
    pub(crate) demand: LayerDemand,
}

/// A kind of media not heard from for this long no longer counts as arriving.
pub(crate) const MEDIA_STALE: Duration = Duration::from_secs(3);

/// Whether an endpoint's audio and video arrive, for roll call.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Arriving {
    last_audio: Option<Instant>,
    /// Per simulcast layer (one for a single stream).
    last_video: [Option<Instant>; MAX_LAYERS],
    /// What signaling was last told: audio, and how many video layers.
    reported: (bool, u8),
    /// When that was worked out.
    checked: Option<Instant>,
}

impl Arriving {
    /// A packet arrived (`video`: its layer). Returns the new state if signaling must be told.
    pub(crate) fn packet(&mut self, now: Instant, video: Option<Layer>) -> Option<(bool, u8)> {
        match video {
            Some(layer) => {
                if let Some(t) = self.last_video.get_mut(usize::from(layer)) {
                    *t = Some(now);
                }
            }
            None => self.last_audio = Some(now),
        }
        self.check(now)
    }

    /// What arrives at `now` (audio; how many video layers), if it differs from what
    /// signaling was last told.
    pub(crate) fn check(&mut self, now: Instant) -> Option<(bool, u8)> {
        let fresh =
            |t: &Option<Instant>| t.is_some_and(|t| now.saturating_duration_since(t) < MEDIA_STALE);
        let layers = self.last_video.iter().filter(|t| fresh(t)).count() as u8;
        let state = (fresh(&self.last_audio), layers);
        self.checked = Some(now);
        (state != self.reported).then(|| {
            self.reported = state;
            state
        })
    }

    /// When something that arrived at the last check goes stale, if anything did.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let checked = self.checked?;
        std::iter::once(&self.last_audio)
            .chain(&self.last_video)
            .flatten()
            .map(|t| *t + MEDIA_STALE)
            .filter(|stale| *stale > checked)
            .min()
    }
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
            content: false,
            rids,
            heights: vec![None; n],
            last_seen: vec![None; n],
            keyframes: vec![KeyframeThrottle::new(keyframe_interval); n],
            rates: vec![RateMeter::default(); n],
            meters: vec![None; n],
            skip_epoch: 0,
            skipping: false,
            receivers: Vec::new(),
            demand: LayerDemand::new(n as Layer),
        }
    }

    /// A layer's quality meter, made for `clock_rate` on first use.
    pub(crate) fn meter(&mut self, layer: Layer, clock_rate: u32) -> Option<&mut StreamMeter> {
        let meter = self.meters.get_mut(usize::from(layer))?;
        Some(meter.get_or_insert_with(|| StreamMeter::new(clock_rate)))
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
            // A layer that stopped (suspended, or dropped by the publisher) costs what it
            // did when it last flowed; one never measured, a typical rate for its place.
            info.rates[i] = self.rates[i]
                .bps(now)
                .filter(|bps| *bps > 0)
                .or_else(|| self.rates[i].settled())
                .unwrap_or_else(|| default_layer_bps(count, i));
            info.arriving[i] =
                self.last_seen[i].is_some_and(|t| now.saturating_duration_since(t) < LAYER_STALE);
        }
        info
    }
}

/// A layer no receiver has wanted for this long is suspended: the publisher stops sending it.
pub(crate) const SUSPEND_AFTER: Duration = Duration::from_secs(5);

/// Layer suspension for one simulcast track: the publisher sends only up to the highest layer
/// some receiver wants (after the allocator's verdict), so a commune whose camera everyone
/// shows as a small tile, or nobody shows, sends its lowest layer only. The lowest layer always
/// flows: roll call sees the camera, and a tile shown small starts at once. A layer wanted
/// again is asked for at once; one no longer wanted is stopped only after [`SUSPEND_AFTER`]
/// (a gallery that reshuffles, or a speaker who comes and goes, does not flap the uplink).
#[derive(Debug, Clone)]
pub(crate) struct LayerDemand {
    /// The highest layer the publisher is asked to send (its top layer until told otherwise).
    sending: Layer,
    /// Since when everyone has wanted less than `sending`.
    lower_since: Option<Instant>,
    /// The most any receiver wanted since `lower_since`.
    lower_max: Layer,
}

impl LayerDemand {
    fn new(count: Layer) -> Self {
        Self {
            sending: count.saturating_sub(1),
            lower_since: None,
            lower_max: 0,
        }
    }

    /// How many of the lowest layers the publisher is asked to send.
    pub(crate) fn count(&self) -> u8 {
        self.sending + 1
    }

    /// Takes `wanted`, the highest layer any receiver wants now (0 when none shows the track).
    /// Returns the new number of layers to send when the publisher must be told.
    pub(crate) fn update(&mut self, now: Instant, wanted: Layer) -> Option<u8> {
        if wanted >= self.sending {
            self.lower_since = None;
            if wanted == self.sending {
                return None;
            }
            self.sending = wanted;
            return Some(self.count());
        }
        let since = match self.lower_since {
            Some(since) => {
                self.lower_max = self.lower_max.max(wanted);
                since
            }
            None => {
                self.lower_max = wanted;
                *self.lower_since.insert(now)
            }
        };
        if now.saturating_duration_since(since) < SUSPEND_AFTER {
            return None;
        }
        self.sending = self.lower_max;
        self.lower_since = None;
        Some(self.count())
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

    /// The bitrate a receiver allowed up to `limit` actually gets: that of the layer
    /// [`Self::available`] picks, or nothing while no layer of the track arrives.
    pub(crate) fn flowing_bps(&self, limit: Layer) -> u64 {
        let layer = usize::from(self.available(limit));
        if self.arriving[layer] {
            self.rates[layer]
        } else {
            0
        }
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

/// Where a receive slot is in negotiation. Slots are only ever added: a slot whose source goes
/// away stays negotiated and idle until another source is switched onto it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlotState {
    /// Waiting for the next offer to add it.
    ToOpen,
    /// Offered under this mid; waiting for the answer.
    Opening(Mid),
    /// Negotiated: media may flow.
    Open(Mid),
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

/// A published track: its publisher and the publisher's mid for it.
pub(crate) type SourceTrack = (EndpointId, Mid);

/// A receive slot: one m-line of a receiver's session onto which the SFU switches whichever
/// source the receiver should get now. A receiver of a 213-site meeting has a few audio slots
/// (the loudest speakers) and as many video slots as tiles it shows, not an m-line per site.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) kind: MediaKind,
    pub(crate) state: SlotState,
    /// The source forwarded on this slot now, if any.
    pub(crate) source: Option<SourceTrack>,
    /// This slot's number on its endpoint (names its stream for the client).
    pub(crate) number: usize,
    /// Filled on the first packet: the send stream of the negotiated mid.
    pub(crate) tx_ssrc: Option<Ssrc>,
    pub(crate) rewriter: StreamRewriter,
    /// The next packet continues the stream from another source: rebase the numbering.
    pub(crate) rebase: bool,
    /// Which simulcast layer this receiver gets (video).
    pub(crate) layers: LayerSelector,
    /// What the bandwidth allocator allows (video).
    pub(crate) budget: Budget,
    /// The layer the tile wanted when the allocator last planned it.
    pub(crate) planned_for: Option<Layer>,
    /// Publisher payload type → this receiver's payload type for the same codec.
    pub(crate) pt_map: Vec<(Pt, Pt)>,
}

impl Slot {
    fn new(kind: MediaKind, number: usize) -> Self {
        Self {
            kind,
            state: SlotState::ToOpen,
            source: None,
            number,
            tx_ssrc: None,
            rewriter: StreamRewriter::default(),
            rebase: false,
            layers: LayerSelector::default(),
            budget: Budget::Open,
            planned_for: None,
            pt_map: Vec::new(),
        }
    }

    /// Puts another source (or none) on this slot. The stream the receiver sees goes on: the
    /// next packet rebases the numbering, and video waits for a keyframe of the new source.
    fn switch_to(&mut self, source: Option<SourceTrack>) {
        self.source = source;
        self.rebase = true;
        self.layers = LayerSelector::default();
        self.budget = Budget::Open;
        self.planned_for = None;
        self.pt_map.clear();
    }

    pub(crate) fn open_mid(&self) -> Option<Mid> {
        match self.state {
            SlotState::Open(m) => Some(m),
            _ => None,
        }
    }

    /// The mid this slot has on the receiver's session, negotiated or on offer.
    pub(crate) fn local_mid(&self) -> Option<Mid> {
        match self.state {
            SlotState::ToOpen => None,
            SlotState::Opening(m) | SlotState::Open(m) => Some(m),
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
    /// Receive slots, in the order they were added.
    pub(crate) slots: Vec<Slot>,
    /// The slot mapping changed since signaling was last told.
    pub(crate) slots_changed: bool,
    /// The client asked for an ICE restart: the next offer carries new ICE credentials.
    pub(crate) ice_restart: bool,
    /// Incoming SSRC → the mid and RID it belongs to, filled on first sight.
    pub(crate) ssrc_mid: HashMap<Ssrc, (Mid, Option<Rid>)>,
    /// `(source, source mid)` → index in `slots`: the per-packet lookup.
    slot_index: HashMap<SourceTrack, usize>,
    /// What the client shows: source → picture height. `None` until it says: then it gets
    /// every source at the top layer.
    pub(crate) view: Option<HashMap<EndpointId, u32>>,
    /// Remote addresses datagrams came from (to unregister them on removal).
    pub(crate) addrs: Vec<SocketAddr>,
    pub(crate) next_timeout: Instant,
    pub(crate) last_receive: Instant,
    /// The earliest of its deadlines, as filed in the core's deadline index.
    pub(crate) deadline: Option<Deadline>,
    /// The latest bandwidth estimate towards this endpoint, bits per second.
    pub(crate) estimate: Option<u64>,
    pub(crate) allocator: Allocator,
    /// When to re-run the allocation (for upgrades to complete their hold).
    pub(crate) next_allocation: Option<Instant>,
    /// When the estimator was last asked to probe, and the token raise that asked it.
    pub(crate) last_probe: Option<Instant>,
    pub(crate) probe_nudge: u64,
    /// The desired rate the estimator was last told (without the nudge).
    pub(crate) desired_told: Option<u64>,
    pub(crate) connected: bool,
    /// What it publishes that arrives: when its last audio and video packets came, and what
    /// signaling was last told (see [`SfuEvent::Media`](super::SfuEvent::Media)).
    pub(crate) arriving: Arriving,
    /// Queued in the core's list of endpoints to drain (so it is queued once, in O(1)).
    pub(crate) dirty: bool,
    /// What str0m's statistics and the forwarding path say of its link (see [`Measured`]).
    pub(crate) measured: Measured,
}

/// A stream (mid, RID) and the last cumulative counters str0m gave for it.
type Seen<const N: usize> = Vec<(StreamKey, [u64; N])>;
type StreamKey = (Mid, Option<Rid>);

/// Per endpoint, what is measured beyond its incoming streams' meters: str0m's per-stream
/// counters turned into monotonic totals (streams come and go with slots), the latest
/// round-trip time and loss its receiver reports give, its last audio level.
#[derive(Debug, Default, Clone)]
pub(crate) struct Measured {
    /// Per outgoing stream, the last cumulative `[packets, bytes, nacks, plis, firs]` seen.
    egress_seen: Seen<5>,
    /// Per incoming stream, the last cumulative `[nacks, plis, firs]` sent.
    ingress_seen: Seen<3>,
    /// Sent to it: `[packets, bytes, nacks received, plis received, firs received]`.
    pub(crate) egress: [u64; 5],
    /// Asked of it: `[nacks, plis, firs]`.
    pub(crate) ingress_requests: [u64; 3],
    pub(crate) rtt: Option<Duration>,
    /// Share of what the SFU sends it that its receiver reports say was lost, 0 to 1.
    pub(crate) receiver_loss: Option<f32>,
    /// Its last audio level, dBov (RFC 6464: 0 loudest, -127 silence).
    pub(crate) audio_level: Option<i8>,
}

impl Measured {
    /// Folds in one outgoing stream's cumulative counters.
    pub(crate) fn egress_stats(&mut self, key: StreamKey, now: [u64; 5]) {
        add_delta(&mut self.egress_seen, key, now, &mut self.egress);
    }

    /// Folds in one incoming stream's cumulative requests sent.
    pub(crate) fn ingress_stats(&mut self, key: StreamKey, now: [u64; 3]) {
        add_delta(&mut self.ingress_seen, key, now, &mut self.ingress_requests);
    }
}

/// Adds to `totals` what `now` grew by since the last value seen for `key` (a stream that
/// restarts its counters adds its new values).
fn add_delta<const N: usize>(
    seen: &mut Seen<N>,
    key: StreamKey,
    now: [u64; N],
    totals: &mut [u64; N],
) {
    let last = match seen.iter_mut().find(|(k, _)| *k == key) {
        Some((_, last)) => last,
        None => {
            seen.push((key, [0; N]));
            &mut seen.last_mut().expect("just pushed").1
        }
    };
    for i in 0..N {
        let grew = if now[i] >= last[i] {
            now[i] - last[i]
        } else {
            now[i]
        };
        totals[i] += grew;
    }
    *last = now;
}

impl Endpoint {
    pub(crate) fn new(id: EndpointId, meeting: MeetingId, rtc: Rtc, now: Instant) -> Self {
        Self {
            id,
            meeting,
            rtc,
            negotiation: Negotiation::Stable,
            tracks_in: Vec::new(),
            slots: Vec::new(),
            slots_changed: false,
            ice_restart: false,
            ssrc_mid: HashMap::new(),
            view: None,
            slot_index: HashMap::new(),
            addrs: Vec::new(),
            next_timeout: now,
            last_receive: now,
            deadline: None,
            estimate: None,
            allocator: Allocator::default(),
            next_allocation: None,
            last_probe: None,
            probe_nudge: 0,
            desired_told: None,
            connected: false,
            arriving: Arriving::default(),
            dirty: false,
            measured: Measured::default(),
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

    /// The layer this endpoint wants of `source`'s video, `None` if it does not show it. A
    /// presentation (`content`) is shown large by everyone, whatever the view names.
    pub(crate) fn wanted_layer(
        &self,
        source: EndpointId,
        content: bool,
        layers: &LayerInfo,
    ) -> Option<Layer> {
        if content {
            return Some(layers.top());
        }
        match &self.view {
            None => Some(layers.top()),
            Some(view) => view.get(&source).map(|height| layers.for_height(*height)),
        }
    }

    /// The index of the slot that `(source, source_mid)` is forwarded on.
    pub(crate) fn slot_of(&self, source: EndpointId, source_mid: Mid) -> Option<usize> {
        self.slot_index.get(&(source, source_mid)).copied()
    }

    /// Puts exactly the sources in `wanted` (most wanted first, already no more than a
    /// receiver may get) on this endpoint's slots of `kind`. A source already on a slot stays there; the others take
    /// the slots freed, then new slots (negotiated at the next offer). Appends to `removed`
    /// and `added` the sources that left or got a slot.
    pub(crate) fn assign_slots(
        &mut self,
        kind: MediaKind,
        wanted: &[SourceTrack],
        removed: &mut Vec<SourceTrack>,
        added: &mut Vec<SourceTrack>,
    ) {
        let before = (removed.len(), added.len());
        for slot in self.slots.iter_mut().filter(|s| s.kind == kind) {
            if let Some(source) = slot.source
                && !wanted.contains(&source)
            {
                slot.switch_to(None);
                removed.push(source);
            }
        }
        for source in wanted {
            if self.slot_index.contains_key(source) {
                continue;
            }
            added.push(*source);
            match self
                .slots
                .iter()
                .position(|s| s.kind == kind && s.source.is_none())
            {
                Some(free) => self.slots[free].switch_to(Some(*source)),
                None => {
                    let mut slot = Slot::new(kind, self.slots.len());
                    slot.source = Some(*source);
                    self.slots.push(slot);
                }
            }
        }
        if (removed.len(), added.len()) != before {
            self.slot_index = self
                .slots
                .iter()
                .enumerate()
                .filter_map(|(i, s)| Some((s.source?, i)))
                .collect();
            self.slots_changed = true;
            tracing::debug!(
                endpoint = %self.id,
                ?kind,
                removed = removed.len() - before.0,
                added = added.len() - before.1,
                "slot sources changed"
            );
        }
    }

    /// Each slot that has a mid, with its kind and source: what the client needs to know to
    /// show the right picture in the right tile.
    pub(crate) fn slot_mapping(&self) -> Vec<(Mid, MediaKind, Option<SourceTrack>)> {
        self.slots
            .iter()
            .filter_map(|s| Some((s.local_mid()?, s.kind, s.source)))
            .collect()
    }

    /// One of the tracks it publishes.
    pub(crate) fn track_in(&self, mid: Mid) -> Option<&TrackIn> {
        self.tracks_in.iter().find(|t| t.mid == mid)
    }

    /// If the session is stable and slots need adding, makes an SDP offer for them. Returns
    /// the offer to relay to the client.
    pub(crate) fn offer_if_needed(&mut self) -> Option<String> {
        if !matches!(self.negotiation, Negotiation::Stable) {
            return None;
        }
        if !self.ice_restart && !self.slots.iter().any(|s| s.state == SlotState::ToOpen) {
            return None;
        }
        let mut sdp = self.rtc.sdp_api();
        if std::mem::take(&mut self.ice_restart) {
            // The SFU's own address does not change: its candidates stay.
            sdp.ice_restart(true);
        }
        for slot in &mut self.slots {
            if slot.state == SlotState::ToOpen {
                let name = format!("slot{}", slot.number);
                let mid = sdp.add_media(
                    slot.kind,
                    Direction::SendOnly,
                    Some(name.clone()),
                    Some(name),
                    None,
                );
                slot.state = SlotState::Opening(mid);
            }
        }
        let (offer, pending) = sdp.apply()?;
        self.negotiation = Negotiation::AwaitingAnswer(pending);
        self.slots_changed = true;
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
            // The offer is spent either way. Put the slots back so the next offer retries
            // them rather than leaving them half-negotiated.
            for slot in &mut self.slots {
                if let SlotState::Opening(_) = slot.state {
                    slot.state = SlotState::ToOpen;
                }
            }
            return Err(SfuError::Negotiation(e.to_string()));
        }
        for slot in &mut self.slots {
            if let SlotState::Opening(mid) = slot.state {
                slot.state = SlotState::Open(mid);
            }
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint() -> Endpoint {
        let now = Instant::now();
        Endpoint::new(EndpointId(1), MeetingId(1), Rtc::new(now), now)
    }

    fn source(id: u64) -> SourceTrack {
        (EndpointId(id), Mid::from("1"))
    }

    #[test]
    fn layers_wanted_again_resume_at_once_and_unwanted_ones_stop_after_a_hold() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut d = LayerDemand::new(3);
        assert_eq!(d.count(), 3, "all layers until someone says otherwise");
        // Nobody wants more than the lowest: nothing changes within the hold...
        assert_eq!(d.update(at(0), 0), None);
        assert_eq!(d.update(at(4_999), 0), None);
        // ...and a brief want of the middle layer during it is remembered.
        assert_eq!(d.update(at(2_000), 1), None);
        assert_eq!(d.update(at(5_000), 0), Some(2));
        // The middle layer goes after another hold of no one wanting it.
        assert_eq!(d.update(at(6_000), 0), None);
        assert_eq!(d.update(at(10_999), 0), None);
        assert_eq!(d.update(at(11_000), 0), Some(1));
        assert_eq!(d.update(at(12_000), 0), None);
        // Someone shows the track large: the top layer is asked for at once.
        assert_eq!(d.update(at(12_001), 2), Some(3));
        // A want equal to what is sent ends a pending lowering.
        assert_eq!(d.update(at(13_000), 1), None);
        assert_eq!(d.update(at(17_000), 2), None);
        assert_eq!(d.update(at(21_000), 1), None);
        assert_eq!(d.update(at(25_999), 1), None);
        assert_eq!(d.update(at(26_000), 1), Some(2));
    }

    /// Which source each video slot carries, in slot order.
    fn video(ep: &Endpoint) -> Vec<Option<u64>> {
        ep.slots
            .iter()
            .filter(|s| s.kind == MediaKind::Video)
            .map(|s| s.source.map(|(e, _)| e.0))
            .collect()
    }

    fn assign(ep: &mut Endpoint, ids: &[u64]) -> (Vec<SourceTrack>, Vec<SourceTrack>) {
        let wanted: Vec<SourceTrack> = ids.iter().map(|i| source(*i)).collect();
        let (mut removed, mut added) = (Vec::new(), Vec::new());
        ep.assign_slots(MediaKind::Video, &wanted, &mut removed, &mut added);
        (removed, added)
    }

    #[test]
    fn sources_keep_their_slots_and_freed_slots_are_reused_before_new_ones() {
        let mut ep = endpoint();
        assign(&mut ep, &[2, 3, 4]);
        assert_eq!(video(&ep), [Some(2), Some(3), Some(4)]);
        assert!(ep.slots.iter().all(|s| s.state == SlotState::ToOpen));

        // 3 goes, 5 comes: 5 takes 3's slot; 2 and 4 do not move.
        let (removed, added) = assign(&mut ep, &[4, 5, 2]);
        assert_eq!(video(&ep), [Some(2), Some(5), Some(4)]);
        assert_eq!((removed, added), (vec![source(3)], vec![source(5)]));
        assert_eq!(ep.slot_of(EndpointId(5), Mid::from("1")), Some(1));
        assert_eq!(ep.slot_of(EndpointId(3), Mid::from("1")), None);
        assert!(
            ep.slots[1].rebase,
            "the new source continues the slot's stream"
        );

        // Nothing changes: nothing is reported, and no slot is touched.
        ep.slots_changed = false;
        assert_eq!(assign(&mut ep, &[2, 4, 5]), (vec![], vec![]));
        assert!(!ep.slots_changed);

        // Fewer wanted: slots fall idle but stay; more wanted later: idle ones first.
        assign(&mut ep, &[2]);
        assert_eq!(video(&ep), [Some(2), None, None]);
        assign(&mut ep, &[2, 6, 7, 8]);
        assert_eq!(video(&ep), [Some(2), Some(6), Some(7), Some(8)]);
        assert_eq!(ep.slots.len(), 4, "one new slot, only when all were busy");
    }

    #[test]
    fn offers_carry_new_slots_once_and_garbage_answers_leave_the_offer_pending() {
        let mut ep = endpoint();
        assign(&mut ep, &[2]);
        let offer = ep.offer_if_needed().expect("a new slot is offered");
        assert!(offer.contains("m=video"), "{offer}");
        assert!(ep.offer_if_needed().is_none(), "one offer at a time");
        let mapping = ep.slot_mapping();
        assert_eq!(mapping.len(), 1);
        assert_eq!(mapping[0].2, Some(source(2)));
        assert!(matches!(
            ep.accept_answer("not sdp"),
            Err(SfuError::BadSdp(_))
        ));
        assert!(matches!(ep.slots[0].state, SlotState::Opening(_)));
        assert!(
            ep.offer_if_needed().is_none(),
            "still waiting for the real answer"
        );
    }

    #[test]
    fn only_layers_that_arrive_count_as_flowing() {
        let info = LayerInfo {
            count: 3,
            heights: [None; MAX_LAYERS],
            // The top layer is suspended; the lower two arrive.
            arriving: [true, true, false, false],
            rates: [150_000, 500_000, 1_500_000, 0],
        };
        // A receiver allowed the top layer gets the highest one arriving.
        assert_eq!(info.flowing_bps(2), 500_000);
        assert_eq!(info.flowing_bps(0), 150_000);
        let silent = LayerInfo {
            arriving: [false; MAX_LAYERS],
            ..info
        };
        assert_eq!(silent.flowing_bps(2), 0, "a camera that sends nothing");
    }
}
