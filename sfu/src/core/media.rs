//! The media path of the core: publishing tracks, choosing per receiver what to forward, and
//! keyframe requests.

use std::collections::HashMap;
use std::time::Instant;

use str0m::format::Codec;
use str0m::media::{KeyframeRequestKind, MediaKind, Mid, Rid};
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite};

use super::codec::{VideoCodec, keyframe_start};
use super::endpoint::{MAX_LAYERS, TrackIn, TrackOut};
use super::keyframe::Throttled;
use super::layers::{Layer, LayerDecision};
use super::{CoreOutput, SfuCore, SfuError, SfuEvent};
use crate::EndpointId;

/// The most sources a view may name (a province meeting has 213 sites).
pub const MAX_VIEW_ENTRIES: usize = 512;

impl SfuCore {
    /// What a receiver shows: each source's video at the given picture height in pixels.
    /// Sources left out are not shown and their video is not forwarded to it. Until a receiver
    /// sets a view, it gets every source's top layer.
    pub fn set_view(
        &mut self,
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
        for track in &mut ep.tracks_out {
            if track.kind == MediaKind::Video
                && !ep
                    .view
                    .as_ref()
                    .is_some_and(|v| v.contains_key(&track.source))
            {
                track.layers.set_target(None);
            }
        }
        Ok(())
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
        ep.tracks_in
            .push(TrackIn::new(mid, kind, rids, self.config.keyframe_interval));
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
        if is_video {
            track_in.last_seen[usize::from(layer)] = Some(now);
        }
        let layers = track_in.layer_info(now);
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
        let exts = ExtensionValues {
            audio_level: packet.header.ext_vals.audio_level,
            voice_activity: packet.header.ext_vals.voice_activity,
            video_orientation: packet.header.ext_vals.video_orientation,
            ..Default::default()
        };
        // Layers some receiver waits for a keyframe of (a bit set: at most MAX_LAYERS).
        let mut keyframes_wanted = 0u8;
        for receiver_id in &meeting.members {
            if *receiver_id == source {
                continue;
            }
            let Some(receiver) = self.endpoints.get_mut(receiver_id) else {
                continue;
            };
            let Some(index) = receiver.track_out_index(source, mid) else {
                continue;
            };
            let wanted = if is_video {
                receiver.wanted_layer(source, &layers)
            } else {
                None
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
            let switched = if is_video {
                let target = wanted.map(|w| layers.available(w));
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
                switched,
            ) else {
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
            if !self.dirty.contains(receiver_id) {
                self.dirty.push(*receiver_id);
            }
        }
        for l in 0..MAX_LAYERS as Layer {
            if keyframes_wanted & (1 << l) != 0 {
                self.need_keyframe(now, source, mid, l);
            }
        }
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
            .endpoints
            .get_mut(&source)
            .and_then(|ep| ep.tracks_in.iter_mut().find(|t| t.mid == mid))
            .and_then(|t| t.keyframes.get_mut(usize::from(layer)))
        else {
            return;
        };
        match throttle.request(now, kind) {
            Throttled::SendNow(kind) => self.send_keyframe_request(source, mid, layer, kind),
            Throttled::Deferred => self.counters.keyframe_requests_coalesced += 1,
        }
    }

    /// A receiver waits for a keyframe of this layer to start or switch: ask the publisher,
    /// at most once per interval, for as long as the wait lasts.
    fn need_keyframe(&mut self, now: Instant, source: EndpointId, mid: Mid, layer: Layer) {
        let allowed = self
            .endpoints
            .get_mut(&source)
            .and_then(|ep| ep.tracks_in.iter_mut().find(|t| t.mid == mid))
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
