//! The generator's endpoints on webrtc-rs (the `webrtc` crate, not the SFU's str0m): peer
//! connections with VP8, Opus and the header extensions the SFUs use, a publisher that replays
//! pre-encoded media at its real pace, and receivers that count what arrives.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use rtc::interceptor::{Registry, Slot};
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters,
    RTCRtpEncodingParameters, RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use tokio::sync::{Notify, watch};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceGatheringState, RTCPeerConnectionState, RTCSessionDescription,
    configure_nack, configure_rtcp_reports, configure_twcc,
};
use webrtc::rtp_transceiver::RtpTransceiver;

use crate::keyframes::{self, KeyframeRequests};
use crate::media::{self, AudioClip, VideoClip};
use crate::rtp::{self as lrtp, Histogram, Kind, SharedStreams, StreamState};

/// URIs of the header extensions the generator negotiates.
pub mod ext {
    /// RFC 8843 media id.
    pub const MID: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
    /// RFC 8852 RTP stream id (simulcast layer).
    pub const RID: &str = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id";
    /// RFC 6464 audio level.
    pub const AUDIO_LEVEL: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
    /// The capture instant (64-bit NTP).
    pub const ABS_CAPTURE_TIME: &str =
        "http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time";
}

const VP8_PT: u8 = 96;
const OPUS_PT: u8 = 111;
const VP8_RTX_PT: u8 = 97;

fn vp8_codec() -> RTCRtpCodec {
    let fb = |typ: &str, parameter: &str| RTCPFeedback {
        typ: typ.into(),
        parameter: parameter.into(),
    };
    RTCRtpCodec {
        mime_type: "video/VP8".into(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: vec![fb("nack", ""), fb("nack", "pli"), fb("ccm", "fir")],
    }
}

fn opus_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: "audio/opus".into(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".into(),
        rtcp_feedback: vec![],
    }
}

/// What the whole run shares: the measurement window's switch and the counters every
/// endpoint adds to.
#[derive(Default)]
pub struct Run {
    /// Whether the measurement window is open.
    pub measuring: AtomicBool,
    /// Added latency of every packet received in the window (receive instant minus the send
    /// instant in the payload's trailer).
    pub latency: Histogram,
    /// RTP packets the publishers sent in the window.
    pub sent_packets: AtomicU64,
    /// Video frames (each counted once, whatever the layers) the publishers sent in the window.
    pub sent_frames: AtomicU64,
    /// Packets that webrtc-rs refused to send (not yet bound, or closed).
    pub send_errors: AtomicU64,
    /// Whether publishers should stop.
    pub stop: AtomicBool,
    /// The longest the generator's async runtime was late to wake a 100 ms timer, in µs: a
    /// generator starved of CPU stops answering for its endpoints (see [`watch_stalls`]).
    pub max_stall_us: AtomicU64,
    /// Keyframe requests (PLI, FIR) the publishers received in the window.
    pub keyframe_requests: AtomicU64,
    /// Frames the publishers skipped in the window to answer them with their clips' next
    /// keyframe.
    pub frames_skipped: AtomicU64,
}

/// Watches the generator's own runtime until `run.stop`: how late a 100 ms timer fires. A
/// stall of seconds means every endpoint of this process fell silent meanwhile (an SFU may
/// rightly drop them), so it is reported as it happens and kept in the results.
pub async fn watch_stalls(run: Arc<Run>) {
    const TICK: Duration = Duration::from_millis(100);
    while !run.stop.load(Ordering::Relaxed) {
        let before = Instant::now();
        tokio::time::sleep(TICK).await;
        let late = before.elapsed().saturating_sub(TICK);
        let late_us = u64::try_from(late.as_micros()).unwrap_or(u64::MAX);
        run.max_stall_us.fetch_max(late_us, Ordering::Relaxed);
        if late >= Duration::from_secs(1) {
            eprintln!(
                "loadgen:   the generator's runtime stalled for {:.1} s (its endpoints were silent)",
                late.as_secs_f64()
            );
        }
    }
}

impl Run {
    fn measuring(&self) -> bool {
        self.measuring.load(Ordering::Relaxed)
    }
}

/// What an endpoint publishes.
#[derive(Clone, Default)]
pub struct Publish {
    /// Video: one clip, or three simulcast layers (q, h, f).
    pub video: Vec<Arc<VideoClip>>,
    /// Opus audio.
    pub audio: Option<Arc<AudioClip>>,
    /// Extra attenuation of this endpoint's audio level, in dB (to rank speakers).
    pub level_offset_db: u8,
    /// Where in the clips this endpoint starts (spreads keyframes across publishers).
    pub start_frame: usize,
    /// A room that listens: its microphone hears only the room, so it sends the clip's
    /// silences (as most of a broadcast's 211 rooms do while the chair speaks).
    pub listening: bool,
}

/// One generator endpoint: a peer connection and what it received.
pub struct Peer {
    /// The connection.
    pub pc: Arc<dyn PeerConnection>,
    /// Streams received, one entry per incoming SSRC.
    pub streams: SharedStreams,
    /// The connection state.
    pub state: watch::Receiver<RTCPeerConnectionState>,
    gathered: Arc<Notify>,
    abs_id: Arc<AtomicU8>,
    video_tx: Option<Arc<dyn RtpTransceiver>>,
    video_track: Option<Arc<TrackLocalStaticRTP>>,
    audio_tx: Option<Arc<dyn RtpTransceiver>>,
    audio_track: Option<Arc<TrackLocalStaticRTP>>,
    publish: Publish,
    ssrcs: Vec<u32>,
    audio_ssrc: u32,
    /// How many of its lowest simulcast layers the SFU asked this endpoint to send
    /// (`send_layers`); honoured as a browser does. Starts with all.
    pub asked_layers: Arc<AtomicU8>,
    /// The remote side asked for Opus DTX (`usedtx=1`): silence is sent as a browser sends
    /// it then (see [`dtx_sends`]).
    dtx: AtomicBool,
}

struct Handler {
    run: Arc<Run>,
    streams: SharedStreams,
    abs_id: Arc<AtomicU8>,
    state: watch::Sender<RTCPeerConnectionState>,
    gathered: Arc<Notify>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            self.gathered.notify_one();
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.state.send(state);
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let run = self.run.clone();
        let streams = self.streams.clone();
        let abs_id = self.abs_id.clone();
        tokio::spawn(async move {
            let kind = match track.kind().await {
                RtpCodecKind::Video => Kind::Video,
                _ => Kind::Audio,
            };
            receive(track, kind, run, streams, abs_id).await;
        });
    }
}

async fn receive(
    track: Arc<dyn TrackRemote>,
    kind: Kind,
    run: Arc<Run>,
    streams: SharedStreams,
    abs_id: Arc<AtomicU8>,
) {
    let mut by_ssrc: HashMap<u32, Arc<Mutex<StreamState>>> = HashMap::new();
    while let Some(event) = track.poll().await {
        match event {
            TrackRemoteEvent::OnRtpPacket(p) => {
                let now = Instant::now();
                let measuring = run.measuring();
                let id = abs_id.load(Ordering::Relaxed);
                let has_abs = id != 0 && p.header.get_extension(id).is_some();
                let state = by_ssrc.entry(p.header.ssrc).or_insert_with(|| {
                    let s = Arc::new(Mutex::new(StreamState::new(kind)));
                    if let Ok(mut all) = streams.lock() {
                        all.push(s.clone());
                    }
                    s
                });
                let new = state.lock().is_ok_and(|mut s| {
                    s.on_packet(
                        p.header.sequence_number,
                        p.header.marker,
                        has_abs,
                        now,
                        measuring,
                    )
                });
                // A duplicate's latency is its original's, long delivered.
                if measuring
                    && new
                    && let Some(sent) = lrtp::trailer_us(&p.payload)
                {
                    run.latency.record(lrtp::now_us().saturating_sub(sent));
                }
            }
            TrackRemoteEvent::OnEnded => break,
            _ => {}
        }
    }
}

/// Waits until every one of `peers` receives video, or `within` passes; returns how many
/// still have none.
pub async fn wait_for_video(peers: &[Arc<Peer>], within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        let waiting = peers.iter().filter(|p| !p.has_video()).count();
        if waiting == 0 || Instant::now() > deadline {
            return waiting;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether the generator's endpoints offer RTX, as browsers do (LOADGEN_NO_RTX=1: not).
pub fn negotiates_rtx() -> bool {
    std::env::var_os("LOADGEN_NO_RTX").is_none()
}

/// Whether an SDP asks for Opus DTX: `usedtx=1` in the fmtp line of its Opus payload type.
pub fn asks_for_opus_dtx(sdp: &str) -> bool {
    let lines = || sdp.lines().map(str::trim);
    let opus_pts: Vec<&str> = lines()
        .filter_map(|l| l.strip_prefix("a=rtpmap:"))
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, codec)| codec.to_ascii_lowercase().starts_with("opus/"))
        .map(|(pt, _)| pt)
        .collect();
    lines()
        .filter_map(|l| l.strip_prefix("a=fmtp:"))
        .filter_map(|l| l.split_once(' '))
        .any(|(pt, params)| {
            opus_pts.contains(&pt) && params.split(';').any(|p| p.trim() == "usedtx=1")
        })
}

/// With DTX, whether the `run`-th consecutive silent 20 ms frame (from 0) is sent. libopus
/// sends the first frame of a silence and then one every 400 ms (the comfort-noise update);
/// libwebrtc does not transmit the frames between.
pub fn dtx_sends(run: u32) -> bool {
    run.is_multiple_of(20)
}

/// The extmap id of `uri` in an SDP, if present.
pub fn extmap_id(sdp: &str, uri: &str) -> Option<u8> {
    sdp.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("a=extmap:")?;
        let (id, rest) = rest.split_once(' ')?;
        let id = id.split('/').next()?.parse::<u8>().ok()?;
        (rest.split_whitespace().next()? == uri).then_some(id)
    })
}

impl Peer {
    /// A new endpoint that will publish `publish` (nothing when empty), bound to 127.0.0.1.
    pub async fn new(run: Arc<Run>, publish: Publish, name: &str) -> Result<Self> {
        let mut me = MediaEngine::default();
        me.register_codec(
            RTCRtpCodecParameters {
                rtp_codec: vp8_codec(),
                payload_type: VP8_PT,
            },
            RtpCodecKind::Video,
        )?;
        // RTX (RFC 4588), as browsers negotiate it: the SFU retransmits on it and pads its
        // bandwidth probes with it. LOADGEN_NO_RTX=1 leaves it out (then str0m probes with
        // padding-only packets of its own).
        if negotiates_rtx() {
            me.register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: RTCRtpCodec {
                        mime_type: "video/rtx".into(),
                        clock_rate: 90_000,
                        channels: 0,
                        sdp_fmtp_line: format!("apt={VP8_PT}"),
                        rtcp_feedback: vec![],
                    },
                    payload_type: VP8_RTX_PT,
                },
                RtpCodecKind::Video,
            )?;
        }
        me.register_codec(
            RTCRtpCodecParameters {
                rtp_codec: opus_codec(),
                payload_type: OPUS_PT,
            },
            RtpCodecKind::Audio,
        )?;
        let cap = |uri: &str| RTCRtpHeaderExtensionCapability { uri: uri.into() };
        for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
            me.register_header_extension(cap(ext::MID), kind, None)?;
            me.register_header_extension(cap(ext::ABS_CAPTURE_TIME), kind, None)?;
        }
        me.register_header_extension(cap(ext::RID), RtpCodecKind::Video, None)?;
        me.register_header_extension(cap(ext::AUDIO_LEVEL), RtpCodecKind::Audio, None)?;
        let registry = configure_nack(Registry::new(), &mut me);
        let registry = configure_rtcp_reports(registry);
        // Keyframe requests reach the publisher, which answers them as an encoder would.
        let registry = registry.with(Slot::from(keyframes::SLOT), KeyframeRequests::default());
        // Transport-wide congestion control feedback, so the SFU's bandwidth estimator sees a
        // real receiver. Only for a diagnosis can it be left out (LOADGEN_NO_TWCC=1).
        let registry = if std::env::var_os("LOADGEN_NO_TWCC").is_some() {
            registry
        } else {
            configure_twcc(registry, &mut me)?
        };

        let streams: SharedStreams = Arc::default();
        let abs_id = Arc::new(AtomicU8::new(0));
        let gathered = Arc::new(Notify::new());
        let (state_tx, state_rx) = watch::channel(RTCPeerConnectionState::New);
        let handler = Arc::new(Handler {
            run,
            streams: streams.clone(),
            abs_id: abs_id.clone(),
            state: state_tx,
            gathered: gathered.clone(),
        });
        // No ICE servers: host candidates on loopback only.
        let config = RTCConfigurationBuilder::new().build();
        let pc = PeerConnectionBuilder::new()
            .with_configuration(config)
            .with_media_engine(me)
            .with_interceptor_registry(registry)
            .with_handler(handler)
            .with_udp_addrs(vec!["127.0.0.1:0".to_string()])
            .build()
            .await
            .context("building a webrtc-rs peer connection")?;
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);

        let mut peer = Self {
            pc,
            streams,
            state: state_rx,
            gathered,
            abs_id,
            video_tx: None,
            video_track: None,
            audio_tx: None,
            audio_track: None,
            publish: publish.clone(),
            ssrcs: Vec::new(),
            audio_ssrc: 0,
            asked_layers: Arc::new(AtomicU8::new(u8::MAX)),
            dtx: AtomicBool::new(false),
        };
        if let Some(_audio) = &publish.audio {
            let ssrc = random_ssrc();
            peer.audio_ssrc = ssrc;
            let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
                name.to_string(),
                format!("{name}-audio"),
                format!("{name}-audio"),
                RtpCodecKind::Audio,
                vec![RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        ssrc: Some(ssrc),
                        ..Default::default()
                    },
                    codec: opus_codec(),
                    ..Default::default()
                }],
            )));
            let tx = peer
                .pc
                .add_transceiver_from_track(track.clone(), Some(sendonly()))
                .await?;
            peer.audio_tx = Some(tx);
            peer.audio_track = Some(track);
        }
        if !publish.video.is_empty() {
            let rids = ["q", "h", "f"];
            let simulcast = publish.video.len() > 1;
            if publish.video.len() > rids.len() {
                bail!("at most {} video layers", rids.len());
            }
            let mut codings = Vec::new();
            for rid in rids.iter().take(publish.video.len()) {
                let ssrc = random_ssrc();
                peer.ssrcs.push(ssrc);
                codings.push(RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        rid: if simulcast {
                            (*rid).into()
                        } else {
                            String::new()
                        },
                        ssrc: Some(ssrc),
                        ..Default::default()
                    },
                    codec: vp8_codec(),
                    ..Default::default()
                });
            }
            let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
                name.to_string(),
                format!("{name}-video"),
                format!("{name}-video"),
                RtpCodecKind::Video,
                codings,
            )));
            let tx = peer
                .pc
                .add_transceiver_from_track(track.clone(), Some(sendonly()))
                .await?;
            peer.video_tx = Some(tx);
            peer.video_track = Some(track);
        }
        Ok(peer)
    }

    /// Adds a receive-only audio m-line (a client that publishes nothing still needs one
    /// m-line to open the transport).
    pub async fn add_recvonly_audio(&self) -> Result<()> {
        self.pc
            .add_transceiver_from_kind(
                RtpCodecKind::Audio,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Recvonly,
                    streams: vec![],
                    send_encodings: vec![],
                }),
            )
            .await?;
        Ok(())
    }

    /// Creates the offer, applies it, waits for candidates, and returns the SDP to send.
    pub async fn offer(&self) -> Result<String> {
        let offer = self.pc.create_offer(None).await?;
        self.pc.set_local_description(offer).await?;
        self.local_sdp().await
    }

    /// Applies a remote offer and returns the answer's SDP (with candidates).
    pub async fn answer(&self, sdp: String) -> Result<String> {
        self.set_remote(RTCSessionDescription::offer(sdp)?).await?;
        let answer = self.pc.create_answer(None).await?;
        self.pc.set_local_description(answer).await?;
        self.local_sdp().await
    }

    /// Applies a remote answer.
    pub async fn accept_answer(&self, sdp: String) -> Result<()> {
        self.set_remote(RTCSessionDescription::answer(sdp)?).await
    }

    async fn set_remote(&self, desc: RTCSessionDescription) -> Result<()> {
        if std::env::var_os("LOADGEN_DUMP_SDP").is_some() {
            eprintln!("loadgen: remote {:?}:\n{}", desc.sdp_type, desc.sdp);
        }
        if let Some(id) = extmap_id(&desc.sdp, ext::ABS_CAPTURE_TIME) {
            self.abs_id.store(id, Ordering::Relaxed);
        }
        // LOADGEN_NO_DTX=1: send every silent frame, as a client without DTX would.
        if std::env::var_os("LOADGEN_NO_DTX").is_none() && asks_for_opus_dtx(&desc.sdp) {
            self.dtx.store(true, Ordering::Relaxed);
        }
        self.pc.set_remote_description(desc).await?;
        Ok(())
    }

    async fn local_sdp(&self) -> Result<String> {
        // Gathering on one loopback socket completes at once; wait for it (or briefly, if it
        // completed before we waited), so the SDP carries the candidate.
        let _ = tokio::time::timeout(Duration::from_secs(2), self.gathered.notified()).await;
        let desc = self
            .pc
            .local_description()
            .await
            .context("no local description")?;
        if !desc.sdp.contains("a=candidate") {
            bail!("the local description has no ICE candidate");
        }
        if std::env::var_os("LOADGEN_DUMP_SDP").is_some() {
            eprintln!("loadgen: local {:?}:\n{}", desc.sdp_type, desc.sdp);
        }
        Ok(desc.sdp)
    }

    /// Waits until connected, or fails after `timeout`.
    pub async fn connected(&self, timeout: Duration) -> Result<()> {
        let mut state = self.state.clone();
        tokio::time::timeout(timeout, async {
            loop {
                let s = *state.borrow_and_update();
                match s {
                    RTCPeerConnectionState::Connected => return Ok(()),
                    RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                        bail!("the peer connection is {s}")
                    }
                    _ => {}
                }
                state.changed().await?;
            }
        })
        .await
        .context("the peer connection did not connect in time")?
    }

    /// Starts replaying this endpoint's media (after it connected). Returns at once.
    pub async fn start_publishing(&self, run: Arc<Run>) -> Result<()> {
        let video = match (&self.video_tx, &self.video_track) {
            (Some(tx), Some(track)) => Some(VideoOut {
                out: Out::new(tx, track.clone()).await?,
                asked: self.asked_layers.clone(),
                keyframe_wanted: watch_keyframe_requests(track.clone(), run.clone()),
                skipped: 0,
                layers: self
                    .publish
                    .video
                    .iter()
                    .zip(&self.ssrcs)
                    .zip(["q", "h", "f"])
                    .map(|((clip, &ssrc), rid)| LayerOut {
                        clip: clip.clone(),
                        ssrc,
                        rid: (self.publish.video.len() > 1)
                            .then(|| Bytes::from_static(rid.as_bytes())),
                        seq: rand_u16(),
                        ts0: random_ssrc(),
                        picture_id: rand_u16() & 0x7fff,
                    })
                    .collect(),
            }),
            _ => None,
        };
        let audio = match (&self.audio_tx, &self.audio_track, &self.publish.audio) {
            (Some(tx), Some(track), Some(clip)) => Some(AudioOut {
                out: Out::new(tx, track.clone()).await?,
                clip: clip.clone(),
                ssrc: self.audio_ssrc,
                seq: rand_u16(),
                ts0: random_ssrc(),
                offset_db: self.publish.level_offset_db,
                was_voice: false,
                dtx: self.dtx.load(Ordering::Relaxed),
                silent_run: 0,
                silences: self
                    .publish
                    .listening
                    .then(|| silent_packets(clip))
                    .filter(|s| !s.is_empty()),
            }),
            _ => None,
        };
        let start = self.publish.start_frame;
        tokio::spawn(publish_loop(video, audio, start, run));
        Ok(())
    }

    /// Whether any video stream has reached this endpoint.
    pub fn has_video(&self) -> bool {
        self.stream_counts().iter().any(|(k, _)| *k == Kind::Video)
    }

    /// Counts of every stream received so far.
    pub fn stream_counts(&self) -> Vec<(Kind, lrtp::StreamCount)> {
        let Ok(all) = self.streams.lock() else {
            return Vec::new();
        };
        all.iter()
            .filter_map(|s| s.lock().ok().map(|s| (s.kind, s.count.clone())))
            .collect()
    }

    /// Forgets what was counted (when the window opens).
    pub fn reset_counts(&self) {
        if let Ok(all) = self.streams.lock() {
            for s in all.iter() {
                if let Ok(mut s) = s.lock() {
                    s.reset_counts();
                }
            }
        }
    }

    /// Closes the connection.
    pub async fn close(&self) {
        let _ = self.pc.close().await;
    }
}

fn sendonly() -> RTCRtpTransceiverInit {
    RTCRtpTransceiverInit {
        direction: RTCRtpTransceiverDirection::Sendonly,
        streams: vec![],
        send_encodings: vec![],
    }
}

fn random_ssrc() -> u32 {
    // Random enough for distinct SSRCs in one process: a hash of a counter and the clock.
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(lrtp::epoch().elapsed().as_nanos());
    (h.finish() as u32).max(1)
}

fn rand_u16() -> u16 {
    random_ssrc() as u16
}

/// A negotiated sender: its track, payload type and extension ids.
struct Out {
    track: Arc<TrackLocalStaticRTP>,
    pt: u8,
    mid: Option<(u8, Bytes)>,
    rid_id: Option<u8>,
    abs_id: Option<u8>,
    level_id: Option<u8>,
}

impl Out {
    async fn new(tx: &Arc<dyn RtpTransceiver>, track: Arc<TrackLocalStaticRTP>) -> Result<Self> {
        let sender = tx.sender().await?.context("transceiver without sender")?;
        let params = sender.get_parameters().await?;
        let pt = params
            .rtp_parameters
            .codecs
            .first()
            .map(|c| c.payload_type)
            .context("no codec was negotiated for a sent track")?;
        let id = |uri: &str| {
            params
                .rtp_parameters
                .header_extensions
                .iter()
                .find(|e| e.uri == uri)
                .and_then(|e| u8::try_from(e.id).ok())
        };
        let mid = match (id(ext::MID), tx.mid().await?) {
            (Some(id), Some(mid)) => Some((id, Bytes::from(mid.into_bytes()))),
            _ => None,
        };
        Ok(Self {
            track,
            pt,
            mid,
            rid_id: id(ext::RID),
            abs_id: id(ext::ABS_CAPTURE_TIME),
            level_id: id(ext::AUDIO_LEVEL),
        })
    }

    fn header(&self, ssrc: u32, seq: u16, ts: u32, marker: bool, sent_us: u64) -> rtp::Header {
        let mut h = rtp::Header {
            version: 2,
            marker,
            payload_type: self.pt,
            sequence_number: seq,
            timestamp: ts,
            ssrc,
            ..Default::default()
        };
        if let Some((id, mid)) = &self.mid {
            let _ = h.set_extension(*id, mid.clone());
        }
        if let Some(id) = self.abs_id {
            let _ = h.set_extension(id, lrtp::abs_capture_time(sent_us));
        }
        h
    }

    async fn send(&self, run: &Run, header: rtp::Header, payload: Bytes) {
        let packet = rtp::Packet { header, payload };
        if self.track.write_rtp(packet).await.is_err() {
            run.send_errors.fetch_add(1, Ordering::Relaxed);
        } else if run.measuring() {
            run.sent_packets.fetch_add(1, Ordering::Relaxed);
        }
    }
}

struct LayerOut {
    clip: Arc<VideoClip>,
    ssrc: u32,
    rid: Option<Bytes>,
    seq: u16,
    ts0: u32,
    picture_id: u16,
}

struct VideoOut {
    out: Out,
    layers: Vec<LayerOut>,
    /// Layers at and above this index are suspended by the SFU.
    asked: Arc<AtomicU8>,
    /// A receiver asked for a keyframe since the last frame was sent.
    keyframe_wanted: Arc<AtomicBool>,
    /// Frames of the clips skipped so far to answer keyframe requests.
    skipped: usize,
}

/// Watches a sent video track for keyframe requests until it is closed; the flag it returns is
/// raised at each.
fn watch_keyframe_requests(track: Arc<TrackLocalStaticRTP>, run: Arc<Run>) -> Arc<AtomicBool> {
    let wanted = Arc::new(AtomicBool::new(false));
    let flag = wanted.clone();
    tokio::spawn(async move {
        while let Some(TrackLocalEvent::OnRtcpPacket(packets)) = track.poll().await {
            if packets
                .iter()
                .any(|p| keyframes::is_keyframe_request(p.as_ref()))
            {
                flag.store(true, Ordering::Relaxed);
                if run.measuring() {
                    run.keyframe_requests.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    });
    wanted
}

/// How many frames from `index` to the clip's next keyframe (0 if `index` is one).
fn frames_to_keyframe(clip: &VideoClip, index: usize) -> usize {
    let len = clip.frames.len();
    (0..len)
        .find(|k| clip.frames[(index + k) % len].keyframe)
        .unwrap_or(0)
}

struct AudioOut {
    out: Out,
    clip: Arc<AudioClip>,
    ssrc: u32,
    seq: u16,
    ts0: u32,
    offset_db: u8,
    was_voice: bool,
    /// Silence is sent as DTX (see [`dtx_sends`]).
    dtx: bool,
    /// Consecutive silent frames so far.
    silent_run: u32,
    /// A listening room's packets: the indexes of the clip's silent packets.
    silences: Option<Vec<usize>>,
}

/// The indexes of the clip's packets that carry no voice.
fn silent_packets(clip: &AudioClip) -> Vec<usize> {
    (0..clip.packets.len())
        .filter(|i| !clip.packets[*i].voice)
        .collect()
}

async fn publish_loop(
    mut video: Option<VideoOut>,
    mut audio: Option<AudioOut>,
    start_frame: usize,
    run: Arc<Run>,
) {
    let t0 = tokio::time::Instant::now();
    let frame_dur = Duration::from_secs(1) / media::FPS;
    let audio_dur = Duration::from_millis(u64::from(media::AUDIO_FRAME_MS));
    let (mut vn, mut an) = (0u32, 0u32);
    while !run.stop.load(Ordering::Relaxed) {
        let next_v = video.as_ref().map(|_| t0 + frame_dur * vn);
        let next_a = audio.as_ref().map(|_| t0 + audio_dur * an);
        let (due, is_video) = match (next_v, next_a) {
            (Some(v), Some(a)) if v <= a => (v, true),
            (Some(v), None) => (v, true),
            (_, Some(a)) => (a, false),
            (None, None) => return,
        };
        tokio::time::sleep_until(due).await;
        if is_video {
            if let Some(v) = video.as_mut() {
                send_video_frame(v, start_frame + vn as usize, vn, &run).await;
            }
            vn += 1;
        } else {
            if let Some(a) = audio.as_mut() {
                send_audio_packet(a, start_frame + an as usize, an, &run).await;
            }
            an += 1;
        }
    }
}

async fn send_video_frame(v: &mut VideoOut, index: usize, n: u32, run: &Run) {
    // A keyframe was asked for: the clips' next one goes now (every layer's clip has its
    // keyframes at the same frames).
    if v.keyframe_wanted.swap(false, Ordering::Relaxed)
        && let Some(first) = v.layers.first()
    {
        let skip = frames_to_keyframe(&first.clip, index + v.skipped);
        v.skipped += skip;
        debug_assert!(
            v.layers.iter().all(|l| {
                let frames = &l.clip.frames;
                frames[(index + v.skipped) % frames.len()].keyframe
            }),
            "the layers' clips have their keyframes at the same frames"
        );
        if run.measuring() {
            run.frames_skipped.fetch_add(skip as u64, Ordering::Relaxed);
        }
    }
    let index = index + v.skipped;
    // The lowest layer is never suspended.
    let asked = usize::from(v.asked.load(Ordering::Relaxed).max(1));
    for layer in v.layers.iter_mut().take(asked) {
        let frame = &layer.clip.frames[index % layer.clip.frames.len()];
        let ts = layer.ts0.wrapping_add(n.wrapping_mul(90_000 / media::FPS));
        let chunks = lrtp::vp8_chunks(&frame.data);
        let last = chunks.len() - 1;
        for (i, chunk) in chunks.iter().enumerate() {
            let sent = lrtp::now_us();
            let mut h = v.out.header(layer.ssrc, layer.seq, ts, i == last, sent);
            if let (Some(id), Some(rid)) = (v.out.rid_id, &layer.rid) {
                let _ = h.set_extension(id, rid.clone());
            }
            let payload = lrtp::vp8_payload(chunk, i == 0, layer.picture_id, sent);
            v.out.send(run, h, payload).await;
            layer.seq = layer.seq.wrapping_add(1);
        }
        layer.picture_id = (layer.picture_id + 1) & 0x7fff;
    }
    if run.measuring() {
        run.sent_frames.fetch_add(1, Ordering::Relaxed);
    }
}

async fn send_audio_packet(a: &mut AudioOut, index: usize, n: u32, run: &Run) {
    let index = match &a.silences {
        Some(silences) => silences[index % silences.len()],
        None => index % a.clip.packets.len(),
    };
    let p = &a.clip.packets[index];
    if p.voice {
        a.silent_run = 0;
    } else {
        let run_so_far = a.silent_run;
        a.silent_run = a.silent_run.saturating_add(1);
        if a.dtx && !dtx_sends(run_so_far) {
            return;
        }
    }
    let sent = lrtp::now_us();
    let ts = a
        .ts0
        .wrapping_add(n.wrapping_mul(48_000 / 1000 * media::AUDIO_FRAME_MS));
    // The marker starts a talk spurt.
    let marker = p.voice && !a.was_voice;
    a.was_voice = p.voice;
    let mut h = a.out.header(a.ssrc, a.seq, ts, marker, sent);
    if let Some(id) = a.out.level_id {
        let level = p.level.saturating_add(a.offset_db).min(127);
        let byte = if p.voice { 0x80 | level } else { level };
        let _ = h.set_extension(id, Bytes::copy_from_slice(&[byte]));
    }
    a.out.send(run, h, lrtp::audio_payload(&p.data, sent)).await;
    a.seq = a.seq.wrapping_add(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_opus_dtx_request() {
        let answer = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n\
                      a=fmtp:111 minptime=10;useinbandfec=1;usedtx=1\r\n";
        assert!(asks_for_opus_dtx(answer));
        assert!(!asks_for_opus_dtx(&answer.replace("usedtx=1", "usedtx=0")));
        // The parameter of another payload type is not Opus's.
        let vp8 = "a=rtpmap:96 VP8/90000\r\na=fmtp:96 usedtx=1\r\na=rtpmap:111 opus/48000/2\r\n";
        assert!(!asks_for_opus_dtx(vp8));
    }

    #[test]
    fn dtx_sends_a_silent_frame_every_400_ms() {
        let sent: Vec<u32> = (0..60).filter(|r| dtx_sends(*r)).collect();
        assert_eq!(sent, vec![0, 20, 40]);
    }

    #[test]
    fn finds_extmap_ids() {
        let sdp = "v=0\r\na=extmap:3 urn:ietf:params:rtp-hdrext:sdes:mid\r\na=extmap:7/sendonly http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time\r\n";
        assert_eq!(extmap_id(sdp, ext::MID), Some(3));
        assert_eq!(extmap_id(sdp, ext::ABS_CAPTURE_TIME), Some(7));
        assert_eq!(extmap_id(sdp, ext::RID), None);
        assert_eq!(extmap_id("a=extmap:x y", "y"), None);
    }
}
