//! The agent's WebRTC side: str0m, fed with the encoded frames of the GStreamer pipeline.
//!
//! Why str0m and not GStreamer's `webrtcbin` (see the crate's README): the SFU's own stack, in
//! frame mode it packetizes VP8 and Opus itself, sends simulcast layers by RID with no SDP
//! munging, and its bandwidth estimate (transport-cc) tells the encoders what the link allows;
//! and it needs no ICE library (libnice gathers no loopback candidates).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::bwe::{Bitrate, BweKind};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, MediaTime, Mid, Rid, Simulcast, SimulcastLayer};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;

use crate::config::Layer;
use crate::media::Frame;

/// RIDs of the layers, lowest first (the SFU's convention).
const RIDS: [&str; 3] = ["q", "h", "f"];
/// The estimate the bandwidth estimator starts from.
const INITIAL_ESTIMATE: u64 = 600_000;
/// Share of the estimate given to video (audio and headroom keep the rest).
const VIDEO_SHARE: f64 = 0.85;
/// While the estimate falls short of what the layers want, how often the estimator is asked to
/// probe the link again.
const PROBE_EVERY: Duration = Duration::from_secs(3);

/// Why the call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// SDP could not be made or understood.
    #[error("negotiation failed: {0}")]
    Negotiation(String),
    /// The network failed.
    #[error("media network error: {0}")]
    Io(String),
}

/// What the call reports to the agent.
#[derive(Debug)]
pub enum CallEvent {
    /// ICE and DTLS are up.
    Connected,
    /// The connection is gone.
    Disconnected,
    /// The SFU wants a keyframe of this layer.
    Keyframe(usize),
    /// The uplink's bandwidth estimate and the encoder bitrates per layer it leads to, bits
    /// per second (sent when either moved by a tenth, or a layer paused or resumed).
    Bitrates {
        /// The estimate.
        estimate: u64,
        /// Per layer, lowest first; `None`: paused.
        rates: Vec<Option<u32>>,
    },
    /// What the SFU reports of what it got: loss (0 to 1) and round-trip time.
    Stats {
        /// Loss.
        loss: Option<f32>,
        /// Round-trip time, milliseconds.
        rtt_ms: Option<f32>,
    },
    /// A received Opus packet on audio slot `mid`.
    Audio {
        /// The slot.
        mid: String,
        /// The packet.
        data: Vec<u8>,
    },
    /// A received video frame on slot `mid`.
    Video {
        /// The slot.
        mid: String,
        /// The VP8 frame.
        data: Vec<u8>,
    },
}

/// One meeting's media.
pub struct Call {
    rtc: Rtc,
    socket: Option<Arc<UdpSocket>>,
    local: Option<SocketAddr>,
    pending: Option<SdpPendingOffer>,
    audio: Mid,
    video: Mid,
    rids: Vec<Rid>,
    layers: Vec<Layer>,
    max_bps: Option<u64>,
    /// How many of the lowest layers the SFU wants (`send_layers`): the rest stay paused
    /// whatever the uplink allows, as nobody in the meeting shows them.
    asked: usize,
    bitrates: Vec<Option<u32>>,
    /// The last bandwidth estimate reported, bits per second.
    estimate: u64,
    /// Keeps media time going forward when the pipeline is rebuilt (its clock starts at 0).
    timeline: Timeline,
    /// When the estimator was last told what the layers want, and the token raise that makes
    /// it probe again (str0m probes when the desired rate rises, not when it is repeated).
    wanted_at: Option<Instant>,
    probe_nudge: u64,
    /// Packets sent and received, for health.
    pub sent_bytes: u64,
}

impl Call {
    /// A call publishing audio and `layers` of video; returns it and the offer to send.
    pub fn offer(layers: &[Layer], max_kbps: Option<u32>) -> Result<(Self, String), CallError> {
        let now = Instant::now();
        let mut rtc = Rtc::builder()
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .enable_bwe(Some(Bitrate::bps(INITIAL_ESTIMATE)))
            .set_stats_interval(Some(Duration::from_secs(2)))
            .build(now);
        let mut sdp = rtc.sdp_api();
        let audio = sdp.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let mut simulcast = Simulcast::new();
        for rid in &RIDS[..layers.len()] {
            simulcast.add_send_layer(SimulcastLayer::new(rid));
        }
        let video = sdp.add_media(
            MediaKind::Video,
            Direction::SendOnly,
            None,
            None,
            Some(simulcast),
        );
        let (offer, pending) = sdp
            .apply()
            .ok_or_else(|| CallError::Negotiation("nothing to offer".into()))?;
        let call = Self {
            rtc,
            socket: None,
            local: None,
            pending: Some(pending),
            audio,
            video,
            rids: RIDS[..layers.len()].iter().map(|r| Rid::from(*r)).collect(),
            layers: layers.to_vec(),
            max_bps: max_kbps.map(|k| u64::from(k) * 1000),
            asked: layers.len(),
            bitrates: layers.iter().map(|l| Some(l.kbps * 1000)).collect(),
            estimate: INITIAL_ESTIMATE,
            timeline: Timeline::default(),
            wanted_at: None,
            probe_nudge: 0,
            sent_bytes: 0,
        };
        Ok((call, offer.to_sdp_string()))
    }

    /// The SFU's answer: binds the media socket towards the SFU's candidate and starts ICE.
    pub async fn accept_answer(&mut self, sdp: &str) -> Result<(), CallError> {
        let answer =
            SdpAnswer::from_sdp_string(sdp).map_err(|e| CallError::Negotiation(e.to_string()))?;
        let pending = self
            .pending
            .take()
            .ok_or_else(|| CallError::Negotiation("no offer pending".into()))?;
        let remote = sdp
            .lines()
            .filter_map(|l| l.trim().strip_prefix("a="))
            .filter(|l| l.starts_with("candidate:"))
            .filter_map(|l| Candidate::from_sdp_string(l).ok())
            .map(|c| c.addr())
            .next()
            .ok_or_else(|| CallError::Negotiation("the answer has no candidate".into()))?;
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| CallError::Negotiation(e.to_string()))?;
        // The local address the route to the SFU leaves from.
        let probe = std::net::UdpSocket::bind(if remote.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        })
        .and_then(|s| s.connect(remote).and_then(|_| s.local_addr()))
        .map_err(|e| CallError::Io(format!("no route to the SFU at {remote}: {e}")))?;
        let socket = UdpSocket::bind(SocketAddr::new(probe.ip(), 0))
            .await
            .map_err(|e| CallError::Io(e.to_string()))?;
        let local = socket
            .local_addr()
            .map_err(|e| CallError::Io(e.to_string()))?;
        let candidate =
            Candidate::host(local, "udp").map_err(|e| CallError::Negotiation(e.to_string()))?;
        self.rtc.add_local_candidate(candidate);
        self.socket = Some(Arc::new(socket));
        self.local = Some(local);
        Ok(())
    }

    /// An offer from the SFU (receive slots added); returns the answer.
    pub fn accept_offer(&mut self, sdp: &str) -> Result<String, CallError> {
        let offer =
            SdpOffer::from_sdp_string(sdp).map_err(|e| CallError::Negotiation(e.to_string()))?;
        self.rtc
            .sdp_api()
            .accept_offer(offer)
            .map(|a| a.to_sdp_string())
            .map_err(|e| CallError::Negotiation(e.to_string()))
    }

    /// Sends one encoded frame.
    pub fn write(&mut self, frame: Frame) {
        let now = Instant::now();
        let (mid, rid, data, pts, level, codec) = match frame {
            Frame::Video { layer, data, pts } => {
                let Some(rid) = self.rids.get(layer).copied() else {
                    return;
                };
                (self.video, Some(rid), data, pts, None, Codec::Vp8)
            }
            Frame::Audio { data, pts, level } => {
                (self.audio, None, data, pts, Some(level), Codec::Opus)
            }
        };
        self.sent_bytes += data.len() as u64;
        let Some(writer) = self.rtc.writer(mid) else {
            return;
        };
        let Some((pt, clock)) = writer
            .payload_params()
            .find(|p| p.spec().codec == codec)
            .map(|p| (p.pt(), p.spec().clock_rate))
        else {
            return;
        };
        let mut writer = writer;
        if let Some(rid) = rid {
            writer = writer.rid(rid);
        }
        if let Some(level) = level {
            writer = writer.audio_level(level, level > -50);
        }
        let pts = self.timeline.media_time(pts);
        let time = MediaTime::from_micros(pts.as_micros() as u64).rebase(clock);
        if let Err(e) = writer.write(pt, now, time, data) {
            tracing::debug!(error = %e, "frame not sent");
        }
    }

    /// The media socket (once the answer is in).
    pub fn socket(&self) -> Option<Arc<UdpSocket>> {
        self.socket.clone()
    }

    /// Time passed.
    pub fn handle_timeout(&mut self) {
        let now = Instant::now();
        self.want_bandwidth(now);
        let _ = self.rtc.handle_input(Input::Timeout(now));
    }

    /// Tells the bandwidth estimator what the layers would use, so that it probes the link for
    /// it (without this, the estimate stays near what is sent, and what is sent follows the
    /// estimate: a link that narrowed once would keep the layers low for good).
    fn want_bandwidth(&mut self, now: Instant) {
        if self.wanted_at.is_some_and(|t| now < t + PROBE_EVERY) {
            return;
        }
        let video = desired_video(&self.layers[..self.asked], self.max_bps);
        let desired = (video as f64 / VIDEO_SHARE) as u64;
        if self.wanted_at.is_some() && self.estimate < desired {
            self.probe_nudge += 1;
        }
        self.wanted_at = Some(now);
        self.rtc
            .bwe()
            .set_bitrate(Bitrate::ZERO, Bitrate::bps(desired + self.probe_nudge));
    }

    /// Handles a datagram from the network.
    pub fn receive(&mut self, from: SocketAddr, data: &[u8]) {
        let (Some(local), Ok(contents)) = (self.local, data.try_into()) else {
            return;
        };
        let input = Input::Receive(
            Instant::now(),
            Receive {
                proto: Protocol::Udp,
                source: from,
                destination: local,
                contents,
            },
        );
        if let Err(e) = self.rtc.handle_input(input) {
            tracing::debug!(error = %e, "datagram rejected");
        }
    }

    /// Runs str0m until it waits: sends what it has (without blocking: a full socket buffer
    /// drops, as the network would), collects events, returns when to come back.
    pub fn drive(&mut self, events: &mut Vec<CallEvent>) -> Instant {
        loop {
            let output = match self.rtc.poll_output() {
                Ok(o) => o,
                Err(e) => {
                    tracing::warn!(error = %e, "media session failed");
                    events.push(CallEvent::Disconnected);
                    return Instant::now() + Duration::from_secs(3600);
                }
            };
            match output {
                Output::Timeout(t) => return t,
                Output::Transmit(t) => {
                    if let Some(socket) = &self.socket {
                        let _ = socket.try_send_to(&t.contents, t.destination);
                    }
                }
                Output::Event(e) => self.event(e, events),
            }
        }
    }

    fn event(&mut self, event: Event, events: &mut Vec<CallEvent>) {
        match event {
            Event::Connected => events.push(CallEvent::Connected),
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                events.push(CallEvent::Disconnected)
            }
            Event::KeyframeRequest(req) => {
                let layer = req
                    .rid
                    .and_then(|rid| self.rids.iter().position(|r| *r == rid))
                    .unwrap_or(0);
                events.push(CallEvent::Keyframe(layer));
            }
            Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. }) => {
                let estimate = estimate.as_u64();
                let rates = self.rates_for(estimate);
                let moved = |new: u64, old: u64| new.abs_diff(old) * 10 > old;
                let changed = rates.iter().zip(&self.bitrates).any(|(n, o)| match (n, o) {
                    (Some(n), Some(o)) => moved(u64::from(*n), u64::from(*o)),
                    (n, o) => n.is_some() != o.is_some(),
                }) || moved(estimate, self.estimate);
                if changed {
                    self.bitrates = rates.clone();
                    self.estimate = estimate;
                    events.push(CallEvent::Bitrates { estimate, rates });
                }
            }
            Event::PeerStats(stats)
                if stats.egress_loss_fraction.is_some() || stats.rtt.is_some() =>
            {
                events.push(CallEvent::Stats {
                    loss: stats.egress_loss_fraction,
                    rtt_ms: stats.rtt.map(|d| d.as_secs_f32() * 1000.0),
                });
            }
            Event::MediaEgressStats(stats) if stats.loss.is_some() || stats.rtt.is_some() => {
                events.push(CallEvent::Stats {
                    loss: stats.loss,
                    rtt_ms: stats.rtt.map(|d| d.as_secs_f32() * 1000.0),
                });
            }
            Event::MediaData(data) if data.params.spec().codec == Codec::Opus => {
                events.push(CallEvent::Audio {
                    mid: data.mid.to_string(),
                    data: data.data.to_vec(),
                });
            }
            Event::MediaData(data) if data.params.spec().codec == Codec::Vp8 => {
                events.push(CallEvent::Video {
                    mid: data.mid.to_string(),
                    data: data.data.to_vec(),
                });
            }
            _ => {}
        }
    }

    /// The SFU asks for only the lowest `layers` layers of the track on `mid` (nobody wants
    /// more now): the others pause at once, and resume when asked for again.
    pub fn send_layers(&mut self, mid: &str, layers: u8, events: &mut Vec<CallEvent>) {
        if mid != self.video.to_string() {
            return;
        }
        self.asked = usize::from(layers).clamp(1, self.layers.len().max(1));
        let rates = self.rates_for(self.estimate);
        // The estimator is told anew what the layers want.
        self.wanted_at = None;
        if rates != self.bitrates {
            self.bitrates = rates.clone();
            events.push(CallEvent::Bitrates {
                estimate: self.estimate,
                rates,
            });
        }
    }

    /// The encoders' targets for `estimate`: the layers the SFU asks for, within the ceiling.
    fn rates_for(&self, estimate: u64) -> Vec<Option<u32>> {
        share_asked(
            &self.layers,
            self.asked,
            estimate,
            self.max_bps,
            &self.bitrates,
        )
    }

    /// Sets the ceiling on the video bitrate (technicians' command).
    pub fn set_max_kbps(&mut self, kbps: Option<u32>) {
        self.max_bps = kbps.map(|k| u64::from(k) * 1000);
        self.wanted_at = None;
    }
}

/// Media time for the RTP timestamps: the pipeline's timestamps, shifted so that they keep
/// going forward when a rebuilt pipeline starts its clock at 0 again (a receiver's jitter
/// buffer takes a stream whose timestamps jump back for a very late one, and drops it).
#[derive(Debug, Default, Clone, Copy)]
struct Timeline {
    offset: Duration,
    latest: Duration,
}

/// A jump back larger than this is a new pipeline, not audio and video interleaving.
const NEW_PIPELINE_JUMP: Duration = Duration::from_millis(500);

impl Timeline {
    fn media_time(&mut self, pts: Duration) -> Duration {
        let mut t = pts + self.offset;
        if t + NEW_PIPELINE_JUMP < self.latest {
            // Go on a frame after the latest time written.
            self.offset = self.latest + Duration::from_millis(40) - pts;
            t = pts + self.offset;
        }
        self.latest = self.latest.max(t);
        t
    }
}

/// What the layers send at most, bits per second: their configured rates, within the ceiling.
fn desired_video(layers: &[Layer], max_bps: Option<u64>) -> u64 {
    let all: u64 = layers.iter().map(|l| u64::from(l.kbps) * 1000).sum();
    all.min(max_bps.unwrap_or(u64::MAX))
}

/// Below this share of its configured rate a layer above the lowest is paused: a picture that
/// starved is worse than the layer below it, and its encoder could not keep to the rate anyway
/// (the quantiser has a ceiling, and the excess would queue on the link and be lost).
const PAUSE_BELOW: f64 = 0.4;
/// A paused layer resumes from this share (hysteresis: no pause and resume at every wobble).
const RESUME_FROM: f64 = 0.6;
/// The least the lowest layer is asked for: it is never paused.
const FLOOR_BPS: u64 = 30_000;

/// Shares a bandwidth estimate among the layers, lowest first: each gets what it is configured
/// for while the estimate allows; a higher layer left with too little is paused (`None`), and
/// the ones above it too. `sending` is the previous share (which layers were on).
pub fn share(
    layers: &[Layer],
    estimate: u64,
    max_bps: Option<u64>,
    sending: &[Option<u32>],
) -> Vec<Option<u32>> {
    let mut left = ((estimate as f64 * VIDEO_SHARE) as u64).min(max_bps.unwrap_or(u64::MAX));
    let mut paused = false;
    layers
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let want = u64::from(l.kbps) * 1000;
            let got = want.min(left);
            if i > 0 {
                let was_on = sending.get(i).is_some_and(Option::is_some);
                let needed = if was_on { PAUSE_BELOW } else { RESUME_FROM };
                paused = paused || (got as f64) < want as f64 * needed;
                if paused {
                    return None;
                }
            }
            left -= got;
            Some(got.max(FLOOR_BPS) as u32)
        })
        .collect()
}

/// [`share`] among the lowest `asked` layers; the others are paused.
pub fn share_asked(
    layers: &[Layer],
    asked: usize,
    estimate: u64,
    max_bps: Option<u64>,
    sending: &[Option<u32>],
) -> Vec<Option<u32>> {
    let asked = asked.min(layers.len());
    let mut rates = share(&layers[..asked], estimate, max_bps, sending);
    rates.resize(layers.len(), None);
    rates
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAYERS: [Layer; 2] = [
        Layer {
            height: 180,
            kbps: 150,
        },
        Layer {
            height: 720,
            kbps: 1500,
        },
    ];

    #[test]
    fn the_estimate_is_shared_lowest_layer_first() {
        const ON: [Option<u32>; 2] = [Some(150_000), Some(1_500_000)];
        assert_eq!(share(&LAYERS, 4_000_000, None, &ON), ON.to_vec());
        // 1 Mb/s: 850 kb/s for video, the top layer gets what the bottom leaves (47 %).
        assert_eq!(
            share(&LAYERS, 1_000_000, None, &ON),
            vec![Some(150_000), Some(700_000)]
        );
        // A thin link: the bottom layer gets it all, the top one pauses.
        assert_eq!(share(&LAYERS, 100_000, None, &ON), vec![Some(85_000), None]);
        // Thinner still: the bottom layer is kept, at its floor.
        assert_eq!(share(&LAYERS, 10_000, None, &ON), vec![Some(30_000), None]);
        // The technician's ceiling wins.
        assert_eq!(
            share(&LAYERS, 4_000_000, Some(1_000_000), &ON),
            vec![Some(150_000), Some(850_000)]
        );
        assert_eq!(
            share(&LAYERS, 4_000_000, Some(500_000), &ON),
            vec![Some(150_000), None]
        );
    }

    #[test]
    fn layers_the_sfu_does_not_ask_for_stay_paused() {
        const ON: [Option<u32>; 2] = [Some(150_000), Some(1_500_000)];
        assert_eq!(
            share_asked(&LAYERS, 1, 4_000_000, None, &ON),
            vec![Some(150_000), None]
        );
        // Asked for again: the estimate decides as before.
        assert_eq!(
            share_asked(&LAYERS, 2, 4_000_000, None, &[Some(150_000), None]),
            ON.to_vec()
        );
        assert_eq!(
            share_asked(&LAYERS, 2, 100_000, None, &ON),
            vec![Some(85_000), None]
        );
    }

    #[test]
    fn a_paused_layer_resumes_only_with_room_to_spare() {
        const PAUSED: [Option<u32>; 2] = [Some(150_000), None];
        // 47 % of its rate keeps a running layer on, but does not resume a paused one.
        assert_eq!(
            share(&LAYERS, 1_000_000, None, &PAUSED),
            vec![Some(150_000), None]
        );
        // 62 % does.
        assert_eq!(
            share(&LAYERS, 1_300_000, None, &PAUSED),
            vec![Some(150_000), Some(955_000)]
        );
    }

    #[test]
    fn layers_above_a_paused_one_pause_too() {
        let three = [
            Layer {
                height: 180,
                kbps: 150,
            },
            Layer {
                height: 360,
                kbps: 500,
            },
            Layer {
                height: 720,
                kbps: 100,
            },
        ];
        let on = [Some(1), Some(1), Some(1)];
        assert_eq!(
            share(&three, 300_000, None, &on),
            vec![Some(150_000), None, None]
        );
    }

    #[test]
    fn media_time_keeps_going_forward_across_a_new_pipeline() {
        let ms = Duration::from_millis;
        let mut t = Timeline::default();
        // Audio and video interleave a little: no shift.
        assert_eq!(t.media_time(ms(0)), ms(0));
        assert_eq!(t.media_time(ms(5000)), ms(5000));
        assert_eq!(t.media_time(ms(4980)), ms(4980));
        // The pipeline is rebuilt: its clock starts again.
        assert_eq!(t.media_time(ms(10)), ms(5040));
        assert_eq!(t.media_time(ms(50)), ms(5080));
        assert_eq!(
            t.media_time(ms(30)),
            ms(5060),
            "the other kind of the new pipeline"
        );
    }

    #[test]
    fn the_estimator_is_asked_for_what_the_layers_send_within_the_ceiling() {
        assert_eq!(desired_video(&LAYERS, None), 1_650_000);
        assert_eq!(desired_video(&LAYERS, Some(500_000)), 500_000);
    }

    #[test]
    fn the_offer_publishes_audio_and_simulcast_video() {
        let (_, sdp) = Call::offer(&LAYERS, None).expect("offer");
        assert!(sdp.contains("m=audio"), "{sdp}");
        assert!(sdp.contains("m=video"), "{sdp}");
        assert!(sdp.contains("a=simulcast:send q;h"), "{sdp}");
    }
}
