//! A deterministic meeting simulator: the SFU core and real str0m clients (ICE, DTLS, SRTP)
//! exchanging datagrams over a simulated network under simulated time.
//!
//! Nothing here sleeps or opens a socket: time jumps to the next deadline, so seconds of a
//! meeting run in milliseconds.

#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use sfu::{CoreOutput, EndpointId, MeetingId, SfuConfig, SfuCore, SfuEvent};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::format::Codec;
use str0m::media::{
    Direction, KeyframeRequest, KeyframeRequestKind, MediaKind, Mid, Pt, Simulcast, SimulcastLayer,
};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{ExtensionValues, RtpWrite, Ssrc};
use str0m::{Candidate, Event, Input, Output, Rtc};

/// A datagram on the simulated wire.
#[derive(Debug, Clone)]
pub struct Datagram {
    pub source: SocketAddr,
    pub destination: SocketAddr,
    pub contents: Vec<u8>,
}

impl Datagram {
    /// The RTP payload type and sequence number, if this is an RTP packet (its header is not
    /// encrypted by SRTP, so the wire can read it).
    pub fn rtp_pt_seq(&self) -> Option<(u8, u16)> {
        let c = &self.contents;
        if c.len() < 12 || c[0] >> 6 != 2 {
            return None;
        }
        let pt = c[1] & 0x7f;
        // RTCP packet types 200..=206 appear as 72..=78 with the marker bit masked off.
        if (72..=78).contains(&pt) {
            return None;
        }
        Some((pt, u16::from_be_bytes([c[2], c[3]])))
    }
}

/// Simulcast layer names, lowest first.
pub const RIDS: [&str; 3] = ["q", "h", "f"];

/// Where the test's own markers sit in every payload: after room for a VP8 keyframe header
/// (descriptor, frame tag, start code, size), which the SFU reads.
const MARKS: usize = 11;
/// The layer mark of presentation packets (a camera has layers 0 to 2).
pub const CONTENT_LAYER: u8 = 7;

/// What a client received: who sent it, the kind, the layer and the publisher's own sequence
/// number (all carried in the payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub at: Instant,
    pub origin: u8,
    pub kind: MediaKind,
    pub layer: u8,
    pub keyframe: bool,
    pub publisher_seq: u16,
    pub ssrc: Ssrc,
    /// The sequence number on the wire to this client.
    pub seq: u64,
    /// The RTP timestamp on the wire to this client.
    pub timestamp: u32,
}

/// One simulated participant: a str0m peer in RTP mode that publishes audio and video.
pub struct Client {
    pub index: u8,
    pub id: EndpointId,
    pub addr: SocketAddr,
    pub rtc: Rtc,
    pub online: bool,
    pub connected: bool,
    /// The SFU's answer to its join offer.
    pub join_answer: String,
    pub publishing: bool,
    /// The RFC 6464 audio level put on this client's audio packets (-127 silence, 0 loudest).
    pub audio_level: i8,
    /// Silence suppression (Opus DTX, as a browser does when the SFU's answer says
    /// `usedtx=1`): while its level is -127 the client sends one audio packet every 400 ms.
    pub dtx: bool,
    pub received: Vec<Received>,
    pub keyframe_requests: Vec<(Instant, KeyframeRequest)>,
    next_timeout: Instant,
    audio_mid: Mid,
    /// `None` for an audio-only site.
    video_mid: Option<Mid>,
    /// A second video track for a document or screen, if negotiated.
    content_mid: Option<Mid>,
    /// Sends on `content_mid` (a frame per media tick, marked with layer [`CONTENT_LAYER`]).
    pub presenting: bool,
    content_seq: u64,
    audio_seq: u64,
    /// Simulcast layers sent (1: no simulcast).
    pub layers: usize,
    video_seq: [u64; 3],
    frames: u64,
    keyframe_wanted: [bool; 3],
    /// Layers this client stops sending (as a browser does when its uplink shrinks).
    pub muted_layers: [bool; 3],
    /// How many of its lowest layers the SFU last asked it to send (`SendLayers`); it
    /// honours that, as the web client and room agents do.
    pub asked_layers: usize,
    /// Keeps the SFU's offers unanswered (a client slow to negotiate) until released with
    /// [`Sim::release_offers`].
    pub hold_offers: bool,
    held_offers: Vec<String>,
    /// A bottleneck on the link towards this client: bits per second, and when its queue
    /// empties.
    downlink: Option<(u64, Instant)>,
}

impl Client {
    fn payload_type(&self, codec: Codec) -> Pt {
        self.rtc
            .codec_config()
            .find(|p| p.spec().codec == codec)
            .map(|p| p.pt())
            .expect("the codec was enabled")
    }

    /// The SFU asks for the lowest `layers` only. A layer turned back on starts with a
    /// keyframe, as in a browser.
    fn ask_layers(&mut self, layers: usize) {
        for wanted in self
            .keyframe_wanted
            .iter_mut()
            .take(layers)
            .skip(self.asked_layers)
        {
            *wanted = true;
        }
        self.asked_layers = layers;
    }

    /// The RTX payload type this client uses for VP8.
    pub fn vp8_rtx_pt(&self) -> Option<u8> {
        self.rtc
            .codec_config()
            .find(|p| p.spec().codec == Codec::Vp8)
            .and_then(|p| p.resend())
            .map(|pt| *pt)
    }

    /// The VP8 payload type of this client.
    pub fn vp8_pt(&self) -> u8 {
        *self.payload_type(Codec::Vp8)
    }

    /// Writes one audio packet and, if `video`, one video frame (a packet per layer).
    fn write_media(&mut self, now: Instant, video: bool) {
        self.frames += 1;
        if !self.dtx || self.audio_level > -127 || self.frames.is_multiple_of(20) {
            self.write_audio(now);
        }
        self.write_video(now, video);
    }

    /// One 20 ms audio packet; its timestamp counts the frames, sent or not.
    fn write_audio(&mut self, now: Instant) {
        self.audio_seq += 1;
        let audio = self.payload(MediaKind::Audio, 0, self.audio_seq, false, 80);
        let exts = ExtensionValues {
            audio_level: Some(self.audio_level),
            // str0m writes the level extension only with its voice activity flag.
            voice_activity: Some(self.audio_level > -60),
            ..Default::default()
        };
        let pt = self.payload_type(Codec::Opus);
        let (seq, time) = (self.audio_seq, (self.frames * 20 * 48) as u32);
        if let Some(stream) = self.rtc.direct_api().stream_tx_by_mid(self.audio_mid, None) {
            stream.write_rtp(
                RtpWrite::new(pt, seq.into(), time, now, audio)
                    .marker(true)
                    .ext_vals(exts),
            );
        }
    }

    fn write_video(&mut self, now: Instant, video: bool) {
        let pt = self.payload_type(Codec::Vp8);
        if let Some(mid) = self.content_mid.filter(|_| video && self.presenting) {
            self.content_seq += 1;
            let seq = self.content_seq;
            let keyframe = self.frames % 100 == 1 || std::mem::take(&mut self.keyframe_wanted[0]);
            let payload = self.payload(MediaKind::Video, CONTENT_LAYER, seq, keyframe, 600);
            let time = (self.frames * 20 * 90) as u32;
            if let Some(stream) = self.rtc.direct_api().stream_tx_by_mid(mid, None) {
                stream.write_rtp(
                    RtpWrite::new(pt, seq.into(), time, now, payload)
                        .marker(true)
                        .nackable(true),
                );
            }
        }
        let Some(video_mid) = self.video_mid.filter(|_| video) else {
            return;
        };
        for (layer, rid) in RIDS.iter().enumerate().take(self.layers) {
            if self.muted_layers[layer] || layer >= self.asked_layers {
                continue;
            }
            let periodic = self.frames % 100 == 1;
            let keyframe = periodic || std::mem::take(&mut self.keyframe_wanted[layer]);
            self.video_seq[layer] += 1;
            let seq = self.video_seq[layer];
            let size = 300 * (layer + 1);
            let payload = self.payload(MediaKind::Video, layer as u8, seq, keyframe, size);
            // Each layer has its own clock offset, as real encoders may.
            let time = (self.frames * 20 * 90) as u32 + layer as u32 * 1_000_000;
            let rid = (self.layers > 1).then(|| (*rid).into());
            if let Some(stream) = self.rtc.direct_api().stream_tx_by_mid(video_mid, rid) {
                stream.write_rtp(
                    RtpWrite::new(pt, seq.into(), time, now, payload)
                        .marker(true)
                        .nackable(true),
                );
            }
        }
    }

    /// A payload: a VP8 descriptor and frame header (a keyframe one with the layer's size),
    /// then the markers the receiving side reads back.
    fn payload(&self, kind: MediaKind, layer: u8, seq: u64, keyframe: bool, len: usize) -> Vec<u8> {
        let mut p = vec![0u8; len.max(MARKS + 5)];
        if kind == MediaKind::Video {
            let shift = (self.layers - 1).saturating_sub(usize::from(layer));
            let (w, h) = (1280u16 >> shift, 720u16 >> shift);
            p[0] = 0x10; // start of partition 0
            p[1] = if keyframe { 0x00 } else { 0x01 };
            if keyframe {
                p[4..7].copy_from_slice(&[0x9d, 0x01, 0x2a]);
                p[7..9].copy_from_slice(&w.to_le_bytes());
                p[9..11].copy_from_slice(&h.to_le_bytes());
            }
        }
        p[MARKS] = self.index;
        p[MARKS + 1] = u8::from(kind == MediaKind::Video);
        p[MARKS + 2..MARKS + 4].copy_from_slice(&(seq as u16).to_be_bytes());
        p[MARKS + 4] = layer;
        p
    }

    /// The SSRC on which this client receives `kind` from the client with index `origin`.
    pub fn rx_ssrc_from(&self, origin: u8, kind: MediaKind) -> Option<Ssrc> {
        self.received
            .iter()
            .find(|r| r.origin == origin && r.kind == kind)
            .map(|r| r.ssrc)
    }

    /// Packets received from `origin` of `kind`.
    pub fn count_from(&self, origin: u8, kind: MediaKind) -> usize {
        self.received
            .iter()
            .filter(|r| r.origin == origin && r.kind == kind)
            .count()
    }

    /// Packets of `kind` from `origin` received after `t`.
    pub fn count_from_since(&self, origin: u8, kind: MediaKind, t: Instant) -> usize {
        self.received
            .iter()
            .filter(|r| r.origin == origin && r.kind == kind && r.at > t)
            .count()
    }
}

/// The queue a bottleneck holds before it drops.
const MAX_QUEUE: Duration = Duration::from_millis(300);

/// Decides whether a datagram is lost on the wire (true = drop).
pub type DropRule = Box<dyn FnMut(&Datagram) -> bool>;

/// The simulated meeting.
pub struct Sim {
    pub start: Instant,
    pub now: Instant,
    pub core: SfuCore,
    pub sfu_addr: SocketAddr,
    pub clients: Vec<Client>,
    pub events: Vec<(Instant, SfuEvent)>,
    /// Clients that join while this is set hold the SFU's offers back (see
    /// [`Client::hold_offers`]).
    pub hold_new_offers: bool,
    /// Every datagram that left an SFU or client, with its send time (for assertions).
    pub wire: Vec<(Instant, Datagram)>,
    pub drop_rule: Option<DropRule>,
    pub dropped: usize,
    /// Packets dropped by a full bottleneck queue.
    pub queue_drops: usize,
    /// Keep every datagram in `wire` (off for large meetings: it holds every byte).
    pub keep_wire: bool,
    /// Each datagram is delayed by up to this much more than the base latency, at random
    /// (seeded), in order per destination.
    pub jitter: Duration,
    /// A video frame every this many 20 ms media ticks (1: 50 fps; 2: 25 fps).
    pub video_every: u64,
    /// Datagrams on the wire, by arrival time and then by the order they were sent in (a heap:
    /// a sorted queue moved ~100 bytes per datagram in flight at every insertion).
    in_flight: BinaryHeap<InFlight>,
    /// How many datagrams were put on the wire: the tie-break among equal arrival times.
    sent: u64,
    /// When each client next wants a timeout, soonest first. An entry whose time is no longer
    /// its client's `next_timeout` is stale and skipped: a 213-site meeting would otherwise
    /// scan every client before each step.
    client_wakes: BinaryHeap<Reverse<(Instant, usize)>>,
    latency: Duration,
    offers: VecDeque<(EndpointId, String)>,
    by_addr: HashMap<SocketAddr, usize>,
    last_arrival: HashMap<SocketAddr, Instant>,
    rng: u64,
    ticks: u64,
}

/// A datagram on the wire. Ordered so that a max-heap pops the earliest arrival first, and
/// among equal arrivals the one sent first.
struct InFlight {
    at: Instant,
    seq: u64,
    datagram: Datagram,
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for InFlight {}

impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for InFlight {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// A small seeded pseudo-random generator (xorshift64*), so that runs repeat exactly.
pub fn next_random(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    x.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// A drop rule that loses `percent` of the datagrams sent to `destinations`, chosen by a
/// seeded generator.
pub fn seeded_loss(destinations: Vec<SocketAddr>, percent: u64, seed: u64) -> DropRule {
    let mut state = seed.max(1);
    Box::new(move |d: &Datagram| {
        destinations.contains(&d.destination) && next_random(&mut state) % 100 < percent
    })
}

impl Sim {
    /// A core with default settings and no clients.
    pub fn new() -> Self {
        let sfu_addr = SocketAddr::from((Ipv4Addr::new(10, 0, 0, 1), 10000));
        Self::with_config(SfuConfig::new(sfu_addr))
    }

    /// A core with the given settings.
    pub fn with_config(config: SfuConfig) -> Self {
        let now = Instant::now();
        let sfu_addr = config.local_addr;
        Self {
            start: now,
            now,
            core: SfuCore::new(config),
            sfu_addr,
            clients: Vec::new(),
            events: Vec::new(),
            hold_new_offers: false,
            wire: Vec::new(),
            drop_rule: None,
            dropped: 0,
            queue_drops: 0,
            keep_wire: true,
            jitter: Duration::ZERO,
            video_every: 1,
            in_flight: BinaryHeap::new(),
            sent: 0,
            client_wakes: BinaryHeap::new(),
            latency: Duration::from_millis(10),
            offers: VecDeque::new(),
            by_addr: HashMap::new(),
            last_arrival: HashMap::new(),
            rng: 0x5eed,
            ticks: 0,
        }
    }

    /// Adds a client that joins `meeting` and publishes audio and video. Returns its index.
    pub fn join(&mut self, meeting: i64) -> usize {
        self.join_with_layers(meeting, 1)
    }

    /// Adds a client that publishes audio and video in `layers` simulcast layers (1 to 3).
    pub fn join_with_layers(&mut self, meeting: i64, layers: usize) -> usize {
        self.join_as(meeting, layers, true)
    }

    /// Adds a client that publishes audio only.
    pub fn join_audio_only(&mut self, meeting: i64) -> usize {
        self.join_as(meeting, 1, false)
    }

    /// Adds a client that publishes nothing: its one offer has a receive-only audio m-line.
    pub fn join_receive_only(&mut self, meeting: i64) -> usize {
        let index = self.join_with(meeting, 1, false, false, Direction::RecvOnly);
        self.clients[index].publishing = false;
        index
    }

    /// Adds a client that publishes audio, a camera and a second video track that carries a
    /// presentation while [`Client::presenting`].
    pub fn join_with_content(&mut self, meeting: i64) -> usize {
        self.join_with(meeting, 1, true, true, Direction::SendOnly)
    }

    fn join_as(&mut self, meeting: i64, layers: usize, video: bool) -> usize {
        self.join_with(meeting, layers, video, false, Direction::SendOnly)
    }

    fn join_with(
        &mut self,
        meeting: i64,
        layers: usize,
        video: bool,
        content: bool,
        audio_direction: Direction,
    ) -> usize {
        let index = self.clients.len();
        assert!(index < 250, "the simulator numbers clients in a byte");
        let addr = SocketAddr::from((Ipv4Addr::new(10, 0, 1, index as u8 + 1), 5000));
        let mut rtc = Rtc::builder()
            .set_rtp_mode(true)
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .build(self.now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").expect("a valid address"));
        let mut sdp = rtc.sdp_api();
        let audio_mid = sdp.add_media(MediaKind::Audio, audio_direction, None, None, None);
        let simulcast = (layers > 1).then(|| {
            let mut s = Simulcast::new();
            for rid in &RIDS[..layers] {
                s.add_send_layer(SimulcastLayer::new(rid));
            }
            s
        });
        let video_mid = video
            .then(|| sdp.add_media(MediaKind::Video, Direction::SendOnly, None, None, simulcast));
        let content_mid =
            content.then(|| sdp.add_media(MediaKind::Video, Direction::SendOnly, None, None, None));
        let (offer, pending) = sdp.apply().expect("an offer for two new media");
        let id = EndpointId(100 + index as u64);
        let answer = self
            .core
            .join(self.now, id, MeetingId(meeting), &offer.to_sdp_string())
            .expect("the SFU answers a valid offer");
        rtc.sdp_api()
            .accept_answer(
                pending,
                SdpAnswer::from_sdp_string(&answer).expect("valid answer"),
            )
            .expect("the client accepts the SFU's answer");
        self.clients.push(Client {
            index: index as u8,
            id,
            addr,
            rtc,
            online: true,
            connected: false,
            join_answer: answer.clone(),
            publishing: true,
            audio_level: -127,
            dtx: false,
            received: Vec::new(),
            keyframe_requests: Vec::new(),
            next_timeout: self.now,
            audio_mid,
            video_mid,
            content_mid,
            presenting: false,
            content_seq: 0,
            audio_seq: 0,
            layers,
            video_seq: [0; 3],
            frames: 0,
            keyframe_wanted: [false; 3],
            muted_layers: [false; 3],
            asked_layers: 3,
            hold_offers: self.hold_new_offers,
            held_offers: Vec::new(),
            downlink: None,
        });
        self.by_addr.insert(addr, index);
        self.wake_client(index, self.now);
        self.drain_core();
        self.poll_client(index);
        index
    }

    /// Index of the client with this endpoint id.
    pub fn index_of(&self, id: EndpointId) -> usize {
        self.clients
            .iter()
            .position(|c| c.id == id)
            .expect("a known endpoint")
    }

    /// Runs the meeting for `duration`, every connected publishing client sending an audio
    /// and a video packet every 20 ms.
    pub fn run_for(&mut self, duration: Duration) {
        let end = self.now + duration;
        let tick = Duration::from_millis(20);
        let mut next_media = self.now + tick;
        while self.now < end {
            let until = next_media.min(end);
            self.process_until(until);
            self.now = until;
            if until == next_media {
                self.ticks += 1;
                let video = self.ticks.is_multiple_of(self.video_every.max(1));
                for i in 0..self.clients.len() {
                    let c = &mut self.clients[i];
                    if c.connected && c.publishing && c.online {
                        c.write_media(self.now, video);
                        self.wake_client(i, self.now);
                    }
                }
                next_media += tick;
            }
        }
    }

    /// Client `i` next wants a timeout at `t`.
    fn wake_client(&mut self, i: usize, t: Instant) {
        self.clients[i].next_timeout = t;
        self.client_wakes.push(Reverse((t, i)));
    }

    /// The client that wants a timeout soonest (the lowest index among equals), and when;
    /// stale entries and clients no longer simulated are dropped on the way.
    fn next_client_wake(&mut self) -> Option<(usize, Instant)> {
        while let Some(&Reverse((t, i))) = self.client_wakes.peek() {
            let c = &self.clients[i];
            if c.next_timeout == t && c.online && c.rtc.is_alive() {
                return Some((i, t));
            }
            self.client_wakes.pop();
        }
        None
    }

    /// Handles every input due up to `until`, in time order.
    fn process_until(&mut self, until: Instant) {
        loop {
            let core_t = self.core.poll_timeout();
            let flight_t = self.in_flight.peek().map(|f| f.at);
            let (client_i, client_t) = self.next_client_wake().unzip();
            let next = [core_t, flight_t, client_t].into_iter().flatten().min();
            let Some(next) = next else { return };
            if next > until {
                return;
            }
            self.now = self.now.max(next);
            if flight_t == Some(next) {
                let f = self.in_flight.pop().expect("peeked above");
                self.deliver(f.datagram);
            } else if client_t == Some(next) {
                let i = client_i.expect("paired with client_t");
                self.client_wakes.pop();
                let now = self.now;
                self.clients[i]
                    .rtc
                    .handle_input(Input::Timeout(now))
                    .expect("client timeout handling");
                self.poll_client(i);
            } else {
                self.core.handle_timeout(self.now);
                self.drain_core();
            }
        }
    }

    fn send(&mut self, d: Datagram) {
        if self.keep_wire {
            self.wire.push((self.now, d.clone()));
        }
        let lost = self.drop_rule.as_mut().is_some_and(|rule| rule(&d));
        let offline = [d.source, d.destination]
            .iter()
            .filter_map(|a| self.by_addr.get(a))
            .any(|i| !self.clients[*i].online);
        if lost || offline {
            self.dropped += 1;
            return;
        }
        let mut departs = self.now;
        if let Some(i) = self.by_addr.get(&d.destination).copied()
            && let Some((bps, free_at)) = &mut self.clients[i].downlink
        {
            // A FIFO bottleneck with a 300 ms queue: beyond it, packets are tail-dropped.
            let start = (*free_at).max(self.now);
            if start - self.now > MAX_QUEUE {
                self.queue_drops += 1;
                return;
            }
            departs = start + Duration::from_secs_f64((d.contents.len() * 8) as f64 / *bps as f64);
            *free_at = departs;
        }
        let mut at = departs + self.latency;
        if !self.jitter.is_zero() {
            // Queueing delay that varies from packet to packet, on a link that keeps its order
            // (a packet never overtakes the one sent before it to the same place).
            let micros = self.jitter.as_micros() as u64;
            at += Duration::from_micros(next_random(&mut self.rng) % (micros + 1));
            let last = self.last_arrival.entry(d.destination).or_insert(at);
            at = at.max(*last);
            *last = at;
        }
        self.sent += 1;
        self.in_flight.push(InFlight {
            at,
            seq: self.sent,
            datagram: d,
        });
    }

    /// Puts a bottleneck of `bps` on the link towards client `i`.
    pub fn cap_downlink(&mut self, i: usize, bps: u64) {
        self.clients[i].downlink = Some((bps, self.now));
    }

    fn deliver(&mut self, d: Datagram) {
        if d.destination == self.sfu_addr {
            self.core
                .handle_datagram(self.now, d.source, d.destination, &d.contents);
            self.drain_core();
            return;
        }
        let Some(i) = self.by_addr.get(&d.destination).copied() else {
            return;
        };
        let now = self.now;
        let c = &mut self.clients[i];
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source: d.source,
                destination: d.destination,
                contents: d
                    .contents
                    .as_slice()
                    .try_into()
                    .expect("a datagram str0m sent"),
            },
        );
        // A client's own failures are a test failure.
        c.rtc.handle_input(input).expect("client accepts its input");
        self.poll_client(i);
    }

    fn drain_core(&mut self) {
        loop {
            while let Some(out) = self.core.poll_output() {
                match out {
                    CoreOutput::Transmit {
                        destination,
                        contents,
                    } => {
                        let d = Datagram {
                            source: self.sfu_addr,
                            destination,
                            contents,
                        };
                        self.send(d);
                    }
                    CoreOutput::Event(SfuEvent::Offer { endpoint, sdp }) => {
                        self.offers.push_back((endpoint, sdp));
                    }
                    CoreOutput::Event(e) => {
                        if let SfuEvent::SendLayers {
                            endpoint, layers, ..
                        } = &e
                            && let Some(c) = self.clients.iter_mut().find(|c| c.id == *endpoint)
                        {
                            c.ask_layers(usize::from(*layers));
                        }
                        self.events.push((self.now, e));
                    }
                }
            }
            let Some((endpoint, sdp)) = self.offers.pop_front() else {
                return;
            };
            self.events.push((
                self.now,
                SfuEvent::Offer {
                    endpoint,
                    sdp: sdp.clone(),
                },
            ));
            let Some(i) = self.clients.iter().position(|c| c.id == endpoint) else {
                continue;
            };
            if self.clients[i].hold_offers {
                self.clients[i].held_offers.push(sdp);
                continue;
            }
            let offer = SdpOffer::from_sdp_string(&sdp).expect("the SFU's offer parses");
            let answer = self.clients[i]
                .rtc
                .sdp_api()
                .accept_offer(offer)
                .expect("the client accepts the SFU's offer");
            self.core
                .answer(self.now, endpoint, &answer.to_sdp_string())
                .expect("the SFU accepts the client's answer");
            self.poll_client(i);
        }
    }

    fn poll_client(&mut self, i: usize) {
        let mut immediate = 0;
        loop {
            let now = self.now;
            let c = &mut self.clients[i];
            match c.rtc.poll_output().expect("client poll") {
                Output::Timeout(t) if t <= now && immediate < 4 => {
                    immediate += 1;
                    c.rtc
                        .handle_input(Input::Timeout(now))
                        .expect("client timeout handling");
                }
                Output::Timeout(t) => {
                    self.wake_client(i, t.max(now + Duration::from_micros(1)));
                    return;
                }
                Output::Transmit(t) => {
                    let d = Datagram {
                        source: t.source,
                        destination: t.destination,
                        contents: t.contents.into(),
                    };
                    self.send(d);
                }
                Output::Event(Event::Connected) => c.connected = true,
                Output::Event(Event::RtpPacket(p)) => {
                    let m = &p.payload;
                    if m.len() >= MARKS + 5 {
                        let kind = if m[MARKS + 1] == 1 {
                            MediaKind::Video
                        } else {
                            MediaKind::Audio
                        };
                        c.received.push(Received {
                            at: now,
                            origin: m[MARKS],
                            kind,
                            layer: m[MARKS + 4],
                            keyframe: kind == MediaKind::Video && m[1] & 1 == 0,
                            publisher_seq: u16::from_be_bytes([m[MARKS + 2], m[MARKS + 3]]),
                            ssrc: p.header.ssrc,
                            seq: *p.seq_no,
                            timestamp: p.header.timestamp,
                        });
                    }
                }
                Output::Event(Event::KeyframeRequest(r)) => {
                    let layer = r
                        .rid
                        .and_then(|rid| RIDS.iter().position(|x| **x == *rid))
                        .unwrap_or(0);
                    c.keyframe_wanted[layer] = true;
                    c.keyframe_requests.push((now, r));
                }
                Output::Event(_) => {}
            }
        }
    }

    /// Client `i` answers the offers it held back, and answers at once from now on.
    pub fn release_offers(&mut self, i: usize) {
        self.clients[i].hold_offers = false;
        let endpoint = self.clients[i].id;
        for sdp in std::mem::take(&mut self.clients[i].held_offers) {
            self.offers.push_back((endpoint, sdp));
        }
        self.drain_core();
    }

    /// Time since the simulation started.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Client `i` asks the SFU for a keyframe of what it receives on `ssrc`.
    pub fn request_keyframe(&mut self, i: usize, ssrc: Ssrc) {
        let c = &mut self.clients[i];
        let mut api = c.rtc.direct_api();
        let stream = api
            .stream_rx(&ssrc)
            .expect("a receive stream for this SSRC");
        stream.request_keyframe(KeyframeRequestKind::Pli);
        self.wake_client(i, self.now);
    }

    /// Cuts client `i` off the network without telling anyone.
    pub fn cut_network(&mut self, i: usize) {
        self.clients[i].online = false;
    }

    /// Lets the SFU remove a client (signaling saw it leave) and stops simulating it.
    pub fn leave(&mut self, i: usize) {
        let id = self.clients[i].id;
        self.clients[i].online = false;
        self.core.leave(self.now, id);
        self.drain_core();
    }
}
