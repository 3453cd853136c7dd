//! The media path of the core: publishing tracks, choosing per receiver what to forward, and
//! keyframe requests.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use str0m::bwe::Bitrate;
use str0m::format::Codec;
use str0m::media::{KeyframeRequestKind, MediaKind, Mid, Rid};
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite};

use super::allocator::{HEADROOM, Priority, Want};
use super::codec::{VideoCodec, keyframe_start};
use super::endpoint::{Budget, MAX_LAYERS, SourceTrack, TrackIn};
use super::keyframe::Throttled;
use super::layers::{Layer, LayerDecision};
use super::{CoreOutput, SfuCore, SfuError, SfuEvent};
use crate::{EndpointId, MeetingId};

/// Kept out of a receiver's estimate for each voice it gets (Opus with its overheads).
const AUDIO_SLOT_BPS: u64 = 40_000;
/// The estimator is asked to find this much more than the tiles need. str0m paces at 1.1 × its
/// estimate (libwebrtc at 2.5 ×) and its estimate stays near what it is asked to probe for, so
/// this margin is also the room a keyframe has to leave the pacer: at 1.25 a keyframe of the
/// matched benchmark's 1 Mb/s stream waited some 150 ms and froze every receiver's picture
/// twice in 30 s; at 2.5 none did, and the 99th percentile latency fell from 165 to 68–96 ms
/// (BENCHMARKS.md, "Findings"). On a thin link the delay-based estimate caps it anyway.
const PROBE_MARGIN: f64 = 2.5;
/// While a receiver gets less than it wants, how often the estimator is asked to probe.
const PROBE_EVERY: Duration = Duration::from_secs(3);
/// A change of the desired rate smaller than this share is not passed on to the estimator.
/// str0m probes whenever the desired rate rises, and the measured layer rates it is made of
/// move a little with every keyframe: passed on as they are, they started a probe or two a
/// second per receiver, and str0m takes a probe's result as the new estimate even when it
/// measured low (BENCHMARKS.md, "Findings"); with receivers that negotiate RTX every probe
/// is padding the SFU sends too.
const DESIRED_STEP: f64 = 0.15;
/// How often a receiver's allocation is re-planned even without a new estimate.
const REALLOCATE_EVERY: Duration = Duration::from_millis(500);

/// The most sources a view may name (a province meeting has 213 sites).
pub const MAX_VIEW_ENTRIES: usize = 512;
/// The most videos one receiver gets at once: a gallery larger than this is not legible on
/// any meeting-room screen, and each one is a decoder on the receiver.
pub const MAX_VIDEO_SLOTS: usize = 25;

impl SfuCore {
    /// What a receiver shows: each source's video at the given picture height in pixels.
    /// Sources left out are not shown and their video is not forwarded to it. Until a receiver
    /// sets a view, it gets every source's top layer.
    pub fn set_view(
        &mut self,
        now: Instant,
        receiver: EndpointId,
        view: &[(EndpointId, u32)],
    ) -> Result<(), SfuError> {
        if view.len() > MAX_VIEW_ENTRIES {
            return Err(SfuError::TooManyViewEntries(view.len()));
        }
        let ep = self
            .endpoints
            .get_mut(&receiver)
            .ok_or(SfuError::UnknownEndpoint)?;
        ep.view = Some(view.iter().copied().collect::<HashMap<_, _>>());
        // Layers follow at the next packet of each source; a hidden source stops at once.
        for slot in &mut ep.slots {
            if let Some((source, _)) = slot.source
                && slot.kind == MediaKind::Video
                && !ep.view.as_ref().is_some_and(|v| v.contains_key(&source))
            {
                slot.layers.set_target(None);
            }
        }
        self.plan_slots(receiver);
        self.reallocate(now, receiver);
        self.drain_dirty(now);
        Ok(())
    }

    /// Re-plans which sources `receiver`'s slots carry (at the next drain).
    pub(super) fn plan_slots(&mut self, receiver: EndpointId) {
        self.slot_plans.insert(receiver);
    }

    /// Re-plans the slots of every member of a meeting (at the next drain).
    pub(super) fn plan_meeting_slots(&mut self, meeting: MeetingId) {
        if let Some(m) = self.meetings.get(&meeting) {
            self.slot_plans.extend(m.members.iter().copied());
        }
    }

    /// Ranks once what the members of `meeting` may get: every video track that may be shown
    /// and every voice that may be heard, most important first. Each receiver's plan is then
    /// one pass over these lists ([`Self::assign_slots`]), so re-planning a whole meeting (a
    /// new speaker re-plans all 213 sites) costs a ranking, not one per receiver.
    pub(super) fn candidates(&self, meeting_id: MeetingId) -> Option<Candidates> {
        let meeting = self.meetings.get(&meeting_id)?;
        let mut video = Vec::new();
        let mut audio = Vec::new();
        for &source in &meeting.members {
            let Some(publisher) = self.endpoints.get(&source) else {
                continue;
            };
            for track in &publisher.tracks_in {
                match track.kind {
                    // The presentation before every camera, whatever the receiver's view.
                    MediaKind::Video if track.content => {
                        if meeting.presents(source) {
                            video.push(((0, (0, 0)), (source, track.mid), true));
                        }
                    }
                    MediaKind::Video => {
                        video.push(((1, meeting.video_order(source)), (source, track.mid), false));
                    }
                    MediaKind::Audio => {
                        if let Some(rank) = meeting.audio_rank(source) {
                            audio.push((rank, (source, track.mid)));
                        }
                    }
                }
            }
        }
        video.sort_unstable();
        audio.sort_unstable();
        Some(Candidates {
            meeting: meeting_id,
            video: video
                .into_iter()
                .map(|(_, s, content)| (s, content))
                .collect(),
            audio: audio.into_iter().map(|(_, s)| s).collect(),
        })
    }

    /// Puts on `receiver`'s slots the sources it should get now, from its meeting's
    /// `candidates`: the videos it shows that last-N allows, most important first, and the
    /// voices that may be heard, never its own.
    pub(super) fn assign_slots(
        &mut self,
        now: Instant,
        receiver: EndpointId,
        candidates: &Candidates,
    ) {
        let Some(ep) = self.endpoints.get(&receiver) else {
            return;
        };
        let Some(meeting) = self.meetings.get(&candidates.meeting) else {
            return;
        };
        let video: Vec<SourceTrack> = candidates
            .video
            .iter()
            .filter(|((source, _), content)| {
                *source != receiver
                    && (*content
                        || (ep.view.as_ref().is_none_or(|v| v.contains_key(source))
                            && meeting.video_allowed(*source, receiver)))
            })
            .map(|(track, _)| *track)
            .take(MAX_VIDEO_SLOTS)
            .collect();
        let audio: Vec<SourceTrack> = candidates
            .audio
            .iter()
            .filter(|(source, _)| *source != receiver)
            .copied()
            .take(meeting.audio_slots())
            .collect();
        let Some(ep) = self.endpoints.get_mut(&receiver) else {
            return;
        };
        let (mut removed, mut added) = (Vec::new(), Vec::new());
        ep.assign_slots(MediaKind::Video, &video, &mut removed, &mut added);
        let video_changed = !removed.is_empty() || !added.is_empty();
        ep.assign_slots(MediaKind::Audio, &audio, &mut removed, &mut added);
        if removed.is_empty() && added.is_empty() {
            return;
        }
        for source in removed {
            if let Some(track) = self.track_in_mut(source) {
                track.receivers.retain(|r| *r != receiver);
            }
        }
        for source in added {
            if let Some(track) = self.track_in_mut(source)
                && !track.receivers.contains(&receiver)
            {
                track.receivers.push(receiver);
            }
        }
        self.mark_dirty(receiver);
        if video_changed {
            self.reallocate(now, receiver);
        }
    }

    /// A published track.
    pub(super) fn track_in_mut(&mut self, (source, mid): SourceTrack) -> Option<&mut TrackIn> {
        self.endpoints
            .get_mut(&source)?
            .tracks_in
            .iter_mut()
            .find(|t| t.mid == mid)
    }

    /// A new track from `id`: offer it to every other endpoint of the meeting.
    pub(super) fn publish(
        &mut self,
        id: EndpointId,
        mid: Mid,
        kind: MediaKind,
        mut rids: Vec<Rid>,
    ) {
        let Some(ep) = self.endpoints.get_mut(&id) else {
            return;
        };
        if ep.tracks_in.iter().any(|t| t.mid == mid) {
            return;
        }
        rids.truncate(MAX_LAYERS);
        // The first video track is the camera; a second one carries a document or screen.
        let content =
            kind == MediaKind::Video && ep.tracks_in.iter().any(|t| t.kind == MediaKind::Video);
        let mut track = TrackIn::new(mid, kind, rids, self.config.keyframe_interval);
        track.content = content;
        ep.tracks_in.push(track);
        let meeting = ep.meeting;
        self.plan_meeting_slots(meeting);
    }

    /// Writes a publisher's packet to every other endpoint of its meeting that should get it.
    pub(super) fn forward(&mut self, now: Instant, source: EndpointId, packet: RtpPacket) {
        let Some(ep) = self.endpoints.get_mut(&source) else {
            return;
        };
        let Some((mid, rid)) = ep.mid_of(packet.header.ssrc) else {
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
        let spec = params.spec();
        let is_video = spec.codec.is_video();
        let clock_rate = spec.clock_rate.get();
        let meeting_id = ep.meeting;

        let Some(track_in) = ep.tracks_in.iter_mut().find(|t| t.mid == mid) else {
            return;
        };
        let Some(layer) = track_in.layer_of(rid) else {
            return;
        };
        if !is_video && let Some(level) = packet.header.ext_vals.audio_level {
            ep.measured.audio_level = Some(level);
        }
        if let Some((audio, video_layers)) = ep.arriving.packet(now, is_video.then_some(layer)) {
            self.outputs.push_back(CoreOutput::Event(SfuEvent::Media {
                endpoint: source,
                audio,
                video_layers,
            }));
        }
        let codec = match spec.codec {
            Codec::Vp8 => VideoCodec::Vp8,
            Codec::H264 => VideoCodec::H264,
            _ => VideoCodec::Other,
        };
        // Codecs we cannot parse are forwarded as if every packet could start a picture.
        let keyframe = is_video
            && match keyframe_start(codec, &packet.payload) {
                Some(k) => {
                    if let Some((_, height)) = k.size {
                        track_in.heights[usize::from(layer)] = Some(height);
                    }
                    true
                }
                None => codec == VideoCodec::Other,
            };
        if let Some(meter) = track_in.meter(layer, clock_rate) {
            let header = &packet.header;
            let size = packet.payload.len();
            meter.packet(
                now,
                header.sequence_number,
                header.timestamp,
                size,
                is_video,
            );
            // Only a parsed keyframe start counts (an unparsed codec's every packet may start one).
            if keyframe && codec != VideoCodec::Other {
                meter.keyframe();
            }
        }
        if is_video {
            track_in.last_seen[usize::from(layer)] = Some(now);
            track_in.rates[usize::from(layer)].record(now, packet.payload.len());
        }
        let layers = track_in.layer_info(now);
        let content = track_in.content;
        let Some(meeting) = self.meetings.get_mut(&meeting_id) else {
            return;
        };
        if !is_video {
            let verdict = meeting.on_audio(now, source, packet.header.ext_vals.audio_level);
            if verdict.reassign {
                self.slot_plans.extend(meeting.members.iter().copied());
            }
            if let Some(c) = verdict.change {
                self.outputs
                    .push_back(CoreOutput::Event(SfuEvent::Speakers {
                        meeting: meeting_id,
                        dominant: c.dominant,
                        recent: c.recent,
                    }));
            }
            if !verdict.heard {
                if !track_in.skipping {
                    track_in.skipping = true;
                    track_in.skip_epoch = track_in.skip_epoch.wrapping_add(1);
                }
                return;
            }
        }
        track_in.skipping = false;
        let epoch = track_in.skip_epoch;
        let exts = ExtensionValues {
            audio_level: packet.header.ext_vals.audio_level,
            voice_activity: packet.header.ext_vals.voice_activity,
            video_orientation: packet.header.ext_vals.video_orientation,
            abs_capture_time: packet.header.ext_vals.abs_capture_time,
            ..Default::default()
        };
        // Only the receivers that have this track on a slot; the list is put back below.
        let receivers = std::mem::take(&mut track_in.receivers);
        // Layers some receiver waits for a keyframe of (a bit set: at most MAX_LAYERS).
        let mut keyframes_wanted = 0u8;
        // The highest layer any receiver wants, as its allocation allows (layer suspension).
        let mut most_wanted: Layer = 0;
        for receiver_id in &receivers {
            let Some(receiver) = self.endpoints.get_mut(receiver_id) else {
                continue;
            };
            let Some(index) = receiver.slot_of(source, mid) else {
                continue;
            };
            // The slot itself says last-N allows this source (slots are re-planned when it
            // changes); the view says at what size.
            let wanted = if is_video {
                receiver.wanted_layer(source, content, &layers)
            } else {
                None
            };
            // A slot not negotiated yet wants nothing: its allocation is not planned, and the
            // receiver may not have said what it shows. Once open, its next packet counts.
            let slot = &receiver.slots[index];
            if slot.open_mid().is_some()
                && let Some(allowed) = wanted.and_then(|w| slot.budget.limit(w))
            {
                most_wanted = most_wanted.max(allowed);
            }
            let Some(pt) = receiver.slots[index]
                .pt_map
                .iter()
                .find(|(from, _)| *from == params.pt())
                .map(|(_, to)| *to)
                .or_else(|| {
                    let to = receiver.matching_pt(&params)?;
                    receiver.slots[index].pt_map.push((params.pt(), to));
                    Some(to)
                })
            else {
                continue;
            };
            let track = &mut receiver.slots[index];
            let Some(local_mid) = track.open_mid() else {
                continue;
            };
            let layer_switch = if is_video {
                let target = wanted
                    .and_then(|w| track.budget.limit(w))
                    .map(|w| layers.available(w));
                if track.layers.target() != target {
                    track.layers.set_target(target);
                }
                let decision = track.layers.on_packet(layer, keyframe);
                if let Some(l) = track.layers.awaiting_keyframe() {
                    keyframes_wanted |= 1 << l;
                }
                match decision {
                    LayerDecision::Drop => continue,
                    LayerDecision::Forward => false,
                    LayerDecision::SwitchAndForward => true,
                }
            } else {
                false
            };
            let Some(out) = track.rewriter.rewrite(
                packet.seq_no,
                packet.header.timestamp,
                now,
                clock_rate,
                epoch,
                layer_switch || track.rebase,
            ) else {
                continue;
            };
            track.rebase = false;
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
                out.seq,
                out.timestamp,
                packet.timestamp,
                packet.payload.clone(),
            )
            .marker(packet.header.marker)
            .ext_vals(exts.clone())
            .nackable(is_video);
            stream.write_rtp(write);
            self.counters.forwarded_packets += 1;
            self.counters.forwarded_bytes += packet.payload.len() as u64;
            if !receiver.dirty {
                receiver.dirty = true;
                self.dirty.push(*receiver_id);
            }
        }
        if let Some(track) = self.track_in_mut((source, mid)) {
            track.receivers = receivers;
            if is_video
                && track.rids.len() > 1
                && let Some(layers) = track.demand.update(now, most_wanted)
            {
                tracing::debug!(publisher = %source, %mid, layers, "layers asked of the publisher");
                self.outputs
                    .push_back(CoreOutput::Event(SfuEvent::SendLayers {
                        endpoint: source,
                        mid: mid.to_string(),
                        layers,
                    }));
            }
        }
        for l in 0..MAX_LAYERS as Layer {
            if keyframes_wanted & (1 << l) != 0 {
                self.need_keyframe(now, source, mid, l);
            }
        }
    }

    /// Re-plans what a receiver's bandwidth estimate allows of each video it shows, and tells
    /// its bandwidth estimator what to probe for.
    pub(super) fn reallocate(&mut self, now: Instant, receiver: EndpointId) {
        let Some(ep) = self.endpoints.get(&receiver) else {
            return;
        };
        let (Some(estimate), Some(meeting)) = (ep.estimate, self.meetings.get(&ep.meeting)) else {
            return;
        };
        let mut indexes = Vec::new();
        let mut infos = Vec::new();
        let mut wants = Vec::new();
        let mut current = Vec::new();
        let mut new = Vec::new();
        // Tracks not shown now: when they are again, they start afresh.
        let mut unshown = Vec::new();
        for (i, track) in ep.slots.iter().enumerate() {
            if track.kind != MediaKind::Video || track.open_mid().is_none() {
                continue;
            }
            let Some((source, source_mid)) = track.source else {
                continue;
            };
            let Some((info, content)) = self
                .endpoints
                .get(&source)
                .and_then(|s| s.track_in(source_mid))
                .map(|t| (t.layer_info(now), t.content))
            else {
                continue;
            };
            let wanted = (content || meeting.video_allowed(source, receiver))
                .then(|| ep.wanted_layer(source, content, &info))
                .flatten();
            let Some(layer) = wanted else {
                unshown.push(i);
                continue;
            };
            indexes.push(i);
            infos.push(info);
            wants.push(Want {
                priority: if content {
                    Priority::Floor
                } else {
                    meeting.priority_of(source)
                },
                layer,
                rates: info.rates(),
            });
            current.push(match track.budget {
                Budget::UpTo(l) => Some(l),
                Budget::Open | Budget::Paused => None,
            });
            // A tile just shown, or made bigger by the person watching, is served at once if the
            // estimate allows: only the estimate's own ups and downs wait for the hold.
            new.push(track.budget == Budget::Open || track.planned_for.is_none_or(|p| layer > p));
        }
        let audio_reserve = AUDIO_SLOT_BPS
            * ep.slots
                .iter()
                .filter(|s| s.kind == MediaKind::Audio && s.source.is_some())
                .count() as u64;
        let video_estimate = estimate.saturating_sub(audio_reserve);
        let Some(ep) = self.endpoints.get_mut(&receiver) else {
            return;
        };
        let plan = ep
            .allocator
            .update(now, video_estimate, &wants, &current, &new);
        for i in unshown {
            ep.slots[i].budget = Budget::Open;
            ep.slots[i].planned_for = None;
        }
        let mut planned = 0;
        let mut flowing = 0;
        let mut desired = 0;
        for (((i, want), info), layer) in indexes.into_iter().zip(&wants).zip(&infos).zip(&plan) {
            let track = &mut ep.slots[i];
            let budget = match layer {
                Some(l) => Budget::UpTo(*l),
                None => Budget::Paused,
            };
            if track.budget != budget {
                tracing::debug!(
                    %receiver, source = ?track.source, ?budget, estimate, "video allocation changed"
                );
            }
            track.budget = budget;
            track.planned_for = Some(want.layer);
            planned += layer.map_or(0, |l| want.rates[usize::from(l)]);
            flowing += layer.map_or(0, |l| info.flowing_bps(l));
            desired += want
                .rates
                .get(usize::from(want.layer))
                .copied()
                .unwrap_or(0);
        }
        // Probe for what the tiles want; keep up what flows (below). str0m probes when
        // the desired rate rises, not when it is repeated: while the plan falls short of what
        // is wanted, raise it by a token amount now and then, so that a link that has widened
        // is found (otherwise an estimate that sank during a squeeze could stay down for good).
        if desired > planned && ep.last_probe.is_none_or(|t| now >= t + PROBE_EVERY) {
            ep.last_probe = Some(now);
            ep.probe_nudge += 1;
        }
        // The estimate that affords it with room to spare: the allocator keeps headroom
        // below the estimate, and an estimate that settles just at the need would pause and
        // resume tiles with its every wobble.
        let wanted = (desired as f64 * PROBE_MARGIN / HEADROOM) as u64 + audio_reserve;
        let told = steady_desired(ep.desired_told, wanted);
        ep.desired_told = Some(told);
        // str0m pads up to the minimum whatever media leaves of it, so the minimum is the video
        // that flows: a tile planned for a source that sends nothing (not yet started, its
        // camera off, a layer suspended) would otherwise be replaced by padding at its full
        // rate, for every receiver. Probing for more is `desired`'s work.
        ep.rtc
            .bwe()
            .set_bitrate(Bitrate::bps(flowing), Bitrate::bps(told + ep.probe_nudge));
        ep.next_allocation = Some(now + REALLOCATE_EVERY);
        self.mark_dirty(receiver);
    }

    /// A receiver wants a keyframe of a layer of `(source, mid)`: pass it on, rate-limited.
    pub(super) fn request_keyframe(
        &mut self,
        now: Instant,
        source: EndpointId,
        mid: Mid,
        layer: Layer,
        kind: KeyframeRequestKind,
    ) {
        let Some(throttle) = self
            .track_in_mut((source, mid))
            .and_then(|t| t.keyframes.get_mut(usize::from(layer)))
        else {
            return;
        };
        match throttle.request(now, kind) {
            Throttled::SendNow(kind) => self.send_keyframe_request(source, mid, layer, kind),
            Throttled::Deferred => {
                self.counters.keyframe_requests_coalesced += 1;
                // Its deadline moved: the drain files it.
                self.mark_dirty(source);
            }
        }
    }

    /// A receiver waits for a keyframe of this layer to start or switch: ask the publisher,
    /// at most once per interval, for as long as the wait lasts.
    fn need_keyframe(&mut self, now: Instant, source: EndpointId, mid: Mid, layer: Layer) {
        let allowed = self
            .track_in_mut((source, mid))
            .and_then(|t| t.keyframes.get_mut(usize::from(layer)))
            .is_some_and(|throttle| throttle.try_now(now));
        if allowed {
            self.send_keyframe_request(source, mid, layer, KeyframeRequestKind::Pli);
        }
    }

    pub(super) fn send_keyframe_request(
        &mut self,
        source: EndpointId,
        mid: Mid,
        layer: Layer,
        kind: KeyframeRequestKind,
    ) {
        let Some(ep) = self.endpoints.get_mut(&source) else {
            return;
        };
        let rid = ep
            .tracks_in
            .iter()
            .find(|t| t.mid == mid)
            .and_then(|t| t.rid_of(layer));
        if let Some(stream) = ep.rtc.direct_api().stream_rx_by_mid(mid, rid) {
            stream.request_keyframe(kind);
            self.counters.keyframe_requests_sent += 1;
            self.mark_dirty(source);
        }
    }
}

/// The desired rate to tell the estimator, given what it was last told and what is wanted
/// now: unchanged unless the want moved by more than [`DESIRED_STEP`].
fn steady_desired(told: Option<u64>, wanted: u64) -> u64 {
    match told {
        Some(t) if (wanted as f64 - t as f64).abs() <= t as f64 * DESIRED_STEP => t,
        _ => wanted,
    }
}

/// What the members of one meeting may get, ranked once for all of them (see
/// [`SfuCore::candidates`]).
pub(super) struct Candidates {
    meeting: MeetingId,
    /// Video tracks, most important first; `true` marks a presentation, which every receiver
    /// gets whatever it shows. The others still pass the receiver's view and last-N.
    video: Vec<(SourceTrack, bool)>,
    /// Voices that may be heard, most important first.
    audio: Vec<SourceTrack>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_desired_rate_moves_only_by_real_steps() {
        assert_eq!(steady_desired(None, 1_000_000), 1_000_000);
        // Keyframes move the measured rates a little: the estimator hears nothing new.
        assert_eq!(steady_desired(Some(1_000_000), 1_080_000), 1_000_000);
        assert_eq!(steady_desired(Some(1_000_000), 920_000), 1_000_000);
        // A tile added or removed is a real step.
        assert_eq!(steady_desired(Some(1_000_000), 1_400_000), 1_400_000);
        assert_eq!(steady_desired(Some(1_000_000), 600_000), 600_000);
    }
}
