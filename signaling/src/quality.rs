//! Stream quality per site as Prometheus series: what the SFU measures of each endpoint
//! ([`sfu::quality::EndpointQuality`]), added up per meeting and site.
//!
//! Labels are bounded: `meeting` and `site` (ids), and where it applies `kind` (audio, video),
//! `layer` (0 to 2), `direction` (`to_site`: asked of the site, `from_site`: asked by it). No
//! per-SSRC or per-participant labels. Participants without a site (guests of the demo
//! meeting) are left out. Counters are cumulative since the endpoint joined: a site that
//! reconnects starts them again, which Prometheus' `rate()` treats as a reset.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use sfu::quality::{EndpointQuality, StreamStats};

use crate::live::{Presence, RollCallEntry};
use crate::protocol::{ClientStats, HealthReport};

/// The most simulcast layers a series is labelled with.
pub const MAX_LAYERS: usize = 3;

/// An endpoint of a live meeting and the site it takes part for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placed {
    /// The meeting.
    pub meeting: i64,
    /// The participant id (the SFU's endpoint id).
    pub endpoint: u64,
    /// Its site, if any.
    pub site: Option<i64>,
    /// What its browser last said it decodes.
    pub client: Option<ClientStats>,
}

/// One site's figures in one meeting, its endpoints added up (cumulative counters).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SiteFigures {
    /// Its endpoints.
    pub endpoints: u64,
    /// What arrives of its audio.
    pub audio: StreamStats,
    /// What arrives of its video, per simulcast layer.
    pub video: [StreamStats; MAX_LAYERS],
    /// Largest jitter among its audio streams, seconds.
    pub audio_jitter: f64,
    /// Largest jitter among its video streams, seconds.
    pub video_jitter: f64,
    /// Its last audio level, dBov.
    pub audio_level: Option<i8>,
    /// Retransmissions asked of it.
    pub nacks_to: u64,
    /// Keyframes asked of it.
    pub plis_to: u64,
    /// Retransmissions it asked for.
    pub nacks_from: u64,
    /// Keyframes it asked for.
    pub plis_from: u64,
    /// Packets sent to it.
    pub sent_packets: u64,
    /// Bytes sent to it.
    pub sent_bytes: u64,
    /// The longest round trip among its endpoints, seconds.
    pub rtt: Option<f64>,
    /// The worst loss its receivers report, 0 to 1.
    pub receiver_loss: Option<f32>,
    /// The smallest bandwidth estimate towards its endpoints, bits per second.
    pub estimate_bps: Option<u64>,
    /// Video slots it receives, per layer forwarded.
    pub slots_at: [u64; MAX_LAYERS],
}

fn add(total: &mut StreamStats, s: &StreamStats) {
    total.packets += s.packets;
    total.bytes += s.bytes;
    total.expected += s.expected;
    total.missing_at_first += s.missing_at_first;
    total.repaired += s.repaired;
    total.lost += s.lost;
    total.frames += s.frames;
    total.freezes += s.freezes;
    total.freeze_seconds += s.freeze_seconds;
    total.keyframes += s.keyframes;
}

fn max_f(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// Adds up the endpoints' figures per (meeting, site).
pub fn per_site(
    placed: &[Placed],
    quality: &[EndpointQuality],
) -> BTreeMap<(i64, i64), SiteFigures> {
    let mut sites: BTreeMap<(i64, i64), SiteFigures> = BTreeMap::new();
    for q in quality {
        let Some(p) = placed.iter().find(|p| p.endpoint == q.endpoint.0) else {
            continue;
        };
        let Some(site) = p.site else { continue };
        let f = sites.entry((p.meeting, site)).or_default();
        f.endpoints += 1;
        if let Some(a) = &q.audio_in {
            add(&mut f.audio, a);
            f.audio_jitter = f.audio_jitter.max(a.jitter_seconds);
        }
        for (layer, v) in q.video_in.iter().take(MAX_LAYERS).enumerate() {
            if let Some(v) = v {
                add(&mut f.video[layer], v);
                f.video_jitter = f.video_jitter.max(v.jitter_seconds);
            }
        }
        f.audio_level = f.audio_level.max(q.audio_level);
        f.nacks_to += q.nacks_to;
        f.plis_to += q.plis_to + q.firs_to;
        f.nacks_from += q.nacks_from;
        f.plis_from += q.plis_from + q.firs_from;
        f.sent_packets += q.sent_packets;
        f.sent_bytes += q.sent_bytes;
        f.rtt = max_f(f.rtt, q.rtt.map(|d| d.as_secs_f64()));
        f.receiver_loss = max_f(
            f.receiver_loss.map(f64::from),
            q.receiver_loss.map(f64::from),
        )
        .map(|l| l as f32);
        // Two endpoints of a site: the smaller estimate is the one that limits.
        f.estimate_bps = match (f.estimate_bps, q.estimate_bps) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        for layer in &q.layers_sent {
            if let Some(n) = f.slots_at.get_mut(usize::from(*layer)) {
                *n += 1;
            }
        }
    }
    sites
}

/// One metric: its name, type and help, then its samples.
struct Metric<'a> {
    out: &'a mut String,
}

impl<'a> Metric<'a> {
    fn new(out: &'a mut String, name: &str, kind: &str, help: &str) -> Self {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        Self { out }
    }

    fn sample(&mut self, name: &str, labels: &str, value: impl std::fmt::Display) {
        let _ = writeln!(self.out, "{name}{{{labels}}} {value}");
    }

    /// The sample of a series without labels.
    fn only(&mut self, name: &str, value: impl std::fmt::Display) {
        let _ = writeln!(self.out, "{name} {value}");
    }
}

/// Writes the per-site series for the endpoints `placed` in live meetings.
pub fn render(out: &mut String, placed: &[Placed], quality: &[EndpointQuality]) {
    let sites = per_site(placed, quality);
    let label = |(meeting, site): &(i64, i64)| format!("meeting=\"{meeting}\",site=\"{site}\"");

    // Per stream: audio (where it applies) and each video layer that arrived.
    type Counter = fn(&StreamStats) -> u64;
    let streams: [(&str, &str, bool, Counter); 6] = [
        (
            "bridge_site_received_packets_total",
            "RTP packets received from the site (retransmissions included)",
            true,
            |s| s.packets,
        ),
        (
            "bridge_site_received_bytes_total",
            "RTP payload bytes received from the site",
            true,
            |s| s.bytes,
        ),
        (
            "bridge_site_expected_packets_total",
            "RTP packets the site's sequence numbers say were sent",
            true,
            |s| s.expected,
        ),
        (
            "bridge_site_missing_packets_total",
            "Packets from the site missing when a later one arrived (loss before retransmission)",
            true,
            |s| s.missing_at_first,
        ),
        (
            "bridge_site_lost_packets_total",
            "Packets from the site still missing a second later (loss after retransmission)",
            true,
            |s| s.lost,
        ),
        (
            "bridge_site_video_frames_total",
            "Video frames received from the site",
            false,
            |s| s.frames,
        ),
    ];
    for (name, help, with_audio, get) in streams {
        let mut m = Metric::new(out, name, "counter", help);
        for (key, f) in &sites {
            let labels = label(key);
            if with_audio {
                m.sample(name, &format!("{labels},kind=\"audio\""), get(&f.audio));
            }
            for (layer, v) in f.video.iter().enumerate().filter(|(_, v)| v.packets > 0) {
                let l = format!("{labels},kind=\"video\",layer=\"{layer}\"");
                m.sample(name, &l, get(v));
            }
        }
    }

    // Per video layer that arrived, labelled by layer only.
    type Video = fn(&StreamStats) -> f64;
    let video: [(&str, &str, Video); 3] = [
        (
            "bridge_site_video_freezes_total",
            "Video frames from the site that came far later than usual (WebRTC's freeze rule)",
            |v| v.freezes as f64,
        ),
        (
            "bridge_site_video_keyframes_total",
            "Video keyframes received from the site",
            |v| v.keyframes as f64,
        ),
        (
            "bridge_site_video_freeze_seconds_total",
            "Time the site's video stood still beyond its usual frame interval",
            |v| v.freeze_seconds,
        ),
    ];
    for (name, help, get) in video {
        let mut m = Metric::new(out, name, "counter", help);
        for (key, f) in &sites {
            for (layer, v) in f.video.iter().enumerate().filter(|(_, v)| v.packets > 0) {
                m.sample(name, &format!("{},layer=\"{layer}\"", label(key)), get(v));
            }
        }
    }

    let mut m = Metric::new(
        out,
        "bridge_site_jitter_seconds",
        "gauge",
        "Interarrival jitter of what the site sends (RFC 3550), the largest of its streams",
    );
    for (key, f) in &sites {
        let l = label(key);
        m.sample(
            "bridge_site_jitter_seconds",
            &format!("{l},kind=\"audio\""),
            f.audio_jitter,
        );
        m.sample(
            "bridge_site_jitter_seconds",
            &format!("{l},kind=\"video\""),
            f.video_jitter,
        );
    }

    type ToAndFrom = fn(&SiteFigures) -> (u64, u64);
    let requests: [(&str, &str, ToAndFrom); 2] = [
        (
            "bridge_site_nacks_total",
            "Retransmission requests (NACK): asked of the site, or by it",
            |f| (f.nacks_to, f.nacks_from),
        ),
        (
            "bridge_site_keyframe_requests_total",
            "Keyframe requests (PLI, FIR): asked of the site, or by it",
            |f| (f.plis_to, f.plis_from),
        ),
    ];
    for (name, help, get) in requests {
        let mut m = Metric::new(out, name, "counter", help);
        for (key, f) in &sites {
            let (to, from) = get(f);
            let l = label(key);
            m.sample(name, &format!("{l},direction=\"to_site\""), to);
            m.sample(name, &format!("{l},direction=\"from_site\""), from);
        }
    }

    type Value = fn(&SiteFigures) -> Option<f64>;
    let gauges: [(&str, &str, &str, Value); 7] = [
        (
            "bridge_site_endpoints",
            "gauge",
            "WebRTC endpoints of the site in the meeting",
            |f| Some(f.endpoints as f64),
        ),
        (
            "bridge_site_sent_packets_total",
            "counter",
            "RTP packets sent to the site (retransmissions included)",
            |f| Some(f.sent_packets as f64),
        ),
        (
            "bridge_site_sent_bytes_total",
            "counter",
            "RTP bytes sent to the site",
            |f| Some(f.sent_bytes as f64),
        ),
        (
            "bridge_site_rtt_seconds",
            "gauge",
            "Round-trip time between the SFU and the site",
            |f| f.rtt,
        ),
        (
            "bridge_site_receiver_loss_ratio",
            "gauge",
            "Share of what the SFU sends the site that the site's receiver reports say was lost",
            |f| f.receiver_loss.map(f64::from),
        ),
        (
            "bridge_site_bandwidth_estimate_bits_per_second",
            "gauge",
            "The SFU's bandwidth estimate towards the site",
            |f| f.estimate_bps.map(|b| b as f64),
        ),
        (
            "bridge_site_audio_level_dbov",
            "gauge",
            "The site's last audio level (RFC 6464: 0 loudest, -127 silence)",
            |f| f.audio_level.map(f64::from),
        ),
    ];
    for (name, kind, help, get) in gauges {
        let mut m = Metric::new(out, name, kind, help);
        for (key, f) in &sites {
            if let Some(v) = get(f) {
                m.sample(name, &label(key), v);
            }
        }
    }

    // What the sites' browsers decode (only they know), added up per site.
    let mut clients: BTreeMap<(i64, i64), ClientStats> = BTreeMap::new();
    for p in placed {
        if let (Some(site), Some(c)) = (p.site, p.client) {
            let total = clients.entry((p.meeting, site)).or_default();
            total.frames_decoded += c.frames_decoded;
            total.fps += c.fps;
            total.freezes += c.freezes;
            total.freeze_seconds += c.freeze_seconds;
        }
    }
    type Client = fn(&ClientStats) -> f64;
    let decoded: [(&str, &str, &str, Client); 4] = [
        (
            "bridge_client_decoded_frames_total",
            "counter",
            "Video frames the site's browsers decoded",
            |c| c.frames_decoded as f64,
        ),
        (
            "bridge_client_decoded_fps",
            "gauge",
            "Video frames the site's browsers decode per second, over all their tiles",
            |c| f64::from(c.fps),
        ),
        (
            "bridge_client_freezes_total",
            "counter",
            "Freezes the site's browsers saw",
            |c| c.freezes as f64,
        ),
        (
            "bridge_client_freeze_seconds_total",
            "counter",
            "Time the site's browsers' videos stood frozen",
            |c| f64::from(c.freeze_seconds),
        ),
    ];
    for (name, kind, help, get) in decoded {
        let mut m = Metric::new(out, name, kind, help);
        for (key, c) in &clients {
            m.sample(name, &label(key), get(c));
        }
    }

    let mut m = Metric::new(
        out,
        "bridge_site_video_slots",
        "gauge",
        "Videos the SFU forwards to the site, by the simulcast layer forwarded",
    );
    for (key, f) in &sites {
        for (layer, n) in f.slots_at.iter().enumerate() {
            let l = format!("{},layer=\"{layer}\"", label(key));
            m.sample("bridge_site_video_slots", &l, n);
        }
    }
}

/// An open meeting's roll call: whether it has started, and each invited site.
#[derive(Debug, Clone)]
pub struct OpenMeeting {
    /// The meeting.
    pub meeting: i64,
    /// It has started (roll call before).
    pub in_progress: bool,
    /// Its invited sites.
    pub roll_call: Vec<RollCallEntry>,
}

/// The bridge's totals: participants and meetings (signaling) and the SFU's counters.
pub fn render_totals(
    out: &mut String,
    participants: u64,
    meetings_active: u64,
    sfu: &sfu::stats::CoreCounters,
) {
    let series: [(&str, &str, &str, u64); 10] = [
        (
            "bridge_participants",
            "gauge",
            "Participants in a meeting (signaling)",
            participants,
        ),
        (
            "bridge_meetings_active",
            "gauge",
            "Meetings with at least one participant",
            meetings_active,
        ),
        (
            "bridge_sfu_endpoints",
            "gauge",
            "WebRTC endpoints in the SFU",
            sfu.endpoints,
        ),
        (
            "bridge_sfu_meetings",
            "gauge",
            "Meetings with media in the SFU",
            sfu.meetings,
        ),
        (
            "bridge_sfu_forwarded_packets_total",
            "counter",
            "RTP packets forwarded to receivers",
            sfu.forwarded_packets,
        ),
        (
            "bridge_sfu_forwarded_bytes_total",
            "counter",
            "RTP payload bytes forwarded to receivers",
            sfu.forwarded_bytes,
        ),
        (
            "bridge_sfu_datagrams_dropped_total",
            "counter",
            "Datagrams dropped: unknown source, unparseable or rejected",
            sfu.dropped_datagrams,
        ),
        (
            "bridge_sfu_datagrams_shed_total",
            "counter",
            "Datagrams dropped because the SFU was behind: its queue for a meeting was full",
            sfu.shed_datagrams,
        ),
        (
            "bridge_sfu_keyframe_requests_total",
            "counter",
            "Keyframe requests sent to publishers",
            sfu.keyframe_requests_sent,
        ),
        (
            "bridge_sfu_keyframe_requests_coalesced_total",
            "counter",
            "Keyframe requests merged by the rate limit",
            sfu.keyframe_requests_coalesced,
        ),
    ];
    for (name, kind, help, value) in series {
        Metric::new(out, name, kind, help).only(name, value);
    }
}

/// Writes the roll-call series: each open meeting's state, each invited site's presence.
pub fn render_roll_call(out: &mut String, meetings: &[OpenMeeting]) {
    let name = "bridge_meeting_in_progress";
    let mut m = Metric::new(
        out,
        name,
        "gauge",
        "1 once the meeting has started, 0 during roll call",
    );
    for o in meetings {
        m.sample(
            name,
            &format!("meeting=\"{}\"", o.meeting),
            u8::from(o.in_progress),
        );
    }
    let name = "bridge_site_presence";
    let mut m = Metric::new(
        out,
        name,
        "gauge",
        "Each invited site: 0 offline, 1 connected to signaling but not in the meeting, 2 in it",
    );
    for o in meetings {
        for e in &o.roll_call {
            let value = match e.presence {
                Presence::Offline => 0,
                Presence::Connected => 1,
                Presence::Joined => 2,
            };
            m.sample(
                name,
                &format!("meeting=\"{}\",site=\"{}\"", o.meeting, e.site),
                value,
            );
        }
    }
}

/// Writes the room terminals' series from their latest health reports (site, report, age).
pub fn render_terminals(out: &mut String, reports: &[(i64, HealthReport, Duration)]) {
    type Value = fn(&HealthReport) -> Option<f64>;
    let series: [(&str, &str, Value); 7] = [
        (
            "bridge_terminal_cpu_ratio",
            "CPU in use on the room terminal, 0 to 1",
            |r| Some(f64::from(r.cpu)),
        ),
        (
            "bridge_terminal_camera",
            "1 when the terminal captures its camera, 0 when it sends the test picture",
            |r| Some(f64::from(u8::from(r.camera))),
        ),
        (
            "bridge_terminal_camera_failed",
            "1 when the terminal's camera failed the last time it was tried",
            |r| Some(f64::from(u8::from(r.camera_error.is_some()))),
        ),
        (
            "bridge_terminal_pipeline_running",
            "1 when the terminal's capture and encoding run",
            |r| Some(f64::from(u8::from(r.pipeline == "running"))),
        ),
        (
            "bridge_terminal_uplink_estimate_bits_per_second",
            "What the terminal estimates its link to the bridge carries",
            |r| r.uplink_kbps.map(|k| f64::from(k) * 1000.0),
        ),
        (
            "bridge_terminal_link_loss_ratio",
            "Loss of the terminal's packets on the way to the bridge, as the bridge reports it",
            |r| r.loss.map(f64::from),
        ),
        (
            "bridge_terminal_rtt_seconds",
            "Round-trip time from the terminal to the bridge",
            |r| r.rtt_ms.map(|ms| f64::from(ms) / 1000.0),
        ),
    ];
    for (name, help, get) in series {
        let mut m = Metric::new(out, name, "gauge", help);
        for (site, report, _) in reports {
            if let Some(v) = get(report).filter(|v| v.is_finite()) {
                m.sample(name, &format!("site=\"{site}\""), v);
            }
        }
    }
    let name = "bridge_terminal_report_age_seconds";
    let mut m = Metric::new(
        out,
        name,
        "gauge",
        "Time since the terminal's last health report",
    );
    for (site, _, age) in reports {
        m.sample(name, &format!("site=\"{site}\""), age.as_secs_f64());
    }
    let name = "bridge_terminal_sent_bits_per_second";
    let mut m = Metric::new(
        out,
        name,
        "gauge",
        "What the terminal's encoder sends, per layer",
    );
    for (site, report, _) in reports {
        for (layer, l) in report.layers.iter().enumerate() {
            if l.kbps.is_finite() {
                let labels = format!("site=\"{site}\",layer=\"{layer}\"");
                m.sample(name, &labels, f64::from(l.kbps) * 1000.0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sfu::EndpointId;

    fn stream(packets: u64, lost: u64, jitter: f64) -> StreamStats {
        StreamStats {
            packets,
            bytes: packets * 100,
            expected: packets + lost,
            missing_at_first: lost * 3,
            repaired: lost * 2,
            lost,
            jitter_seconds: jitter,
            frames: packets / 3,
            freezes: 1,
            freeze_seconds: 0.5,
            keyframes: 2,
        }
    }

    fn endpoint(id: u64, audio: u64, video: u64) -> EndpointQuality {
        EndpointQuality {
            endpoint: EndpointId(id),
            audio_in: Some(stream(audio, 2, 0.004)),
            video_in: vec![Some(stream(video, 1, 0.010)), None],
            audio_level: Some(-30),
            nacks_to: 5,
            plis_to: 1,
            firs_to: 0,
            sent_packets: 1000,
            sent_bytes: 900_000,
            nacks_from: 3,
            plis_from: 2,
            firs_from: 1,
            rtt: Some(Duration::from_millis(40)),
            receiver_loss: Some(0.01),
            estimate_bps: Some(1_500_000),
            layers_sent: vec![0, 2],
        }
    }

    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn each_site_gets_its_series_and_a_site_of_two_endpoints_adds_up() {
        let placed = [
            Placed {
                meeting: 4,
                endpoint: 1,
                site: Some(12),
                client: Some(ClientStats {
                    frames_decoded: 1000,
                    fps: 50.0,
                    freezes: 1,
                    freeze_seconds: 0.5,
                }),
            },
            Placed {
                meeting: 4,
                endpoint: 2,
                site: Some(12),
                client: Some(ClientStats {
                    frames_decoded: 500,
                    fps: 25.0,
                    freezes: 0,
                    freeze_seconds: 0.0,
                }),
            },
            Placed {
                meeting: 4,
                endpoint: 3,
                site: Some(13),
                client: None,
            },
            Placed {
                meeting: 4,
                endpoint: 9,
                site: None,
                client: None,
            },
        ];
        let mut one = endpoint(2, 300, 900);
        one.rtt = Some(Duration::from_millis(90));
        one.estimate_bps = Some(800_000);
        let quality = [
            endpoint(1, 500, 1500),
            one,
            endpoint(3, 100, 300),
            endpoint(9, 5, 5),
        ];
        let mut text = String::new();
        render(&mut text, &placed, &quality);
        let s12 = r#"meeting="4",site="12""#;
        let v = |series: &str| value(&text, series).unwrap_or_else(|| panic!("{series}\n{text}"));
        assert_eq!(v(&format!("bridge_site_endpoints{{{s12}}}")), 2.0);
        assert_eq!(
            v(&format!(
                r#"bridge_site_received_packets_total{{{s12},kind="audio"}}"#
            )),
            800.0
        );
        assert_eq!(
            v(&format!(
                r#"bridge_site_lost_packets_total{{{s12},kind="video",layer="0"}}"#
            )),
            2.0
        );
        assert_eq!(
            v(&format!(
                r#"bridge_site_missing_packets_total{{{s12},kind="audio"}}"#
            )),
            12.0
        );
        assert_eq!(
            v(&format!(
                r#"bridge_site_video_frames_total{{{s12},kind="video",layer="0"}}"#
            )),
            800.0
        );
        assert_eq!(
            v(&format!("bridge_site_rtt_seconds{{{s12}}}")),
            0.09,
            "the worst"
        );
        assert_eq!(
            v(&format!(
                "bridge_site_bandwidth_estimate_bits_per_second{{{s12}}}"
            )),
            800_000.0,
            "the tightest"
        );
        assert_eq!(
            v(&format!(
                r#"bridge_site_nacks_total{{{s12},direction="to_site"}}"#
            )),
            10.0
        );
        assert_eq!(
            v(&format!(
                r#"bridge_site_keyframe_requests_total{{{s12},direction="from_site"}}"#
            )),
            6.0
        );
        assert_eq!(
            v(&format!(r#"bridge_site_video_slots{{{s12},layer="2"}}"#)),
            2.0
        );
        assert_eq!(
            v(&format!(
                r#"bridge_site_jitter_seconds{{{s12},kind="video"}}"#
            )),
            0.01
        );
        assert_eq!(
            v(r#"bridge_site_received_packets_total{meeting="4",site="13",kind="audio"}"#),
            100.0
        );
        // The guest without a site, and the layer that never arrived, have no series.
        assert!(!text.contains("site=\"\""));
        assert!(!text.contains(r#"site="12",kind="video",layer="1""#));
        // Every sample line belongs to a metric declared once.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split('{').next().expect("name");
            assert_eq!(
                text.matches(&format!("# TYPE {name} ")).count(),
                1,
                "{name}"
            );
        }
    }

    fn health(cpu: f32, camera_error: Option<&str>) -> HealthReport {
        HealthReport {
            pipeline: "running".into(),
            camera: camera_error.is_none(),
            camera_error: camera_error.map(String::from),
            muted: false,
            cpu,
            meeting: Some(4),
            layers: vec![crate::protocol::LayerStats {
                width: 320,
                height: 180,
                kbps: 150.5,
                target_kbps: Some(160.0),
                paused: false,
                suspended: false,
                fps: 15.0,
            }],
            loss: Some(0.02),
            rtt_ms: Some(35.0),
            uplink_kbps: Some(900.0),
            shown_frames: 10,
            heard_frames: 20,
        }
    }

    fn entry(site: i64, presence: Presence) -> RollCallEntry {
        RollCallEntry {
            site,
            name: format!("Xã {site}"),
            presence,
            audio: false,
            video: false,
            video_layers: 0,
        }
    }

    #[test]
    fn roll_call_and_terminals_have_their_series() {
        let mut text = String::new();
        render_roll_call(
            &mut text,
            &[OpenMeeting {
                meeting: 4,
                in_progress: true,
                roll_call: vec![
                    entry(12, Presence::Joined),
                    entry(13, Presence::Connected),
                    entry(14, Presence::Offline),
                ],
            }],
        );
        render_terminals(
            &mut text,
            &[
                (12, health(0.95, None), Duration::from_secs(3)),
                (
                    13,
                    health(f32::NAN, Some("v4l2src: no device")),
                    Duration::from_secs(1),
                ),
            ],
        );
        let v = |series: &str| value(&text, series).unwrap_or_else(|| panic!("{series}\n{text}"));
        assert_eq!(v(r#"bridge_meeting_in_progress{meeting="4"}"#), 1.0);
        assert_eq!(v(r#"bridge_site_presence{meeting="4",site="12"}"#), 2.0);
        assert_eq!(v(r#"bridge_site_presence{meeting="4",site="13"}"#), 1.0);
        assert_eq!(v(r#"bridge_site_presence{meeting="4",site="14"}"#), 0.0);
        assert!((v(r#"bridge_terminal_cpu_ratio{site="12"}"#) - 0.95).abs() < 1e-6);
        assert_eq!(v(r#"bridge_terminal_camera{site="12"}"#), 1.0);
        assert_eq!(v(r#"bridge_terminal_camera_failed{site="13"}"#), 1.0);
        assert_eq!(
            v(r#"bridge_terminal_sent_bits_per_second{site="12",layer="0"}"#),
            150_500.0
        );
        assert_eq!(
            v(r#"bridge_terminal_uplink_estimate_bits_per_second{site="12"}"#),
            900_000.0
        );
        assert_eq!(v(r#"bridge_terminal_rtt_seconds{site="12"}"#), 0.035);
        assert_eq!(v(r#"bridge_terminal_report_age_seconds{site="12"}"#), 3.0);
        // A value that is not a number (a terminal's bad report) is left out, not written.
        assert!(!text.contains(r#"bridge_terminal_cpu_ratio{site="13"}"#));
        assert!(!text.contains("NaN"));
    }

    /// Every series the alert rules and the Grafana dashboard in `deploy/` use is one the
    /// bridge writes (a renamed metric would otherwise silence an alert without a word).
    #[test]
    fn the_deploy_files_use_only_series_the_bridge_writes() {
        let placed = [Placed {
            meeting: 4,
            endpoint: 1,
            site: Some(12),
            client: Some(ClientStats::default()),
        }];
        let mut text = String::new();
        render(&mut text, &placed, &[endpoint(1, 10, 10)]);
        render_roll_call(
            &mut text,
            &[OpenMeeting {
                meeting: 4,
                in_progress: false,
                roll_call: vec![entry(12, Presence::Joined)],
            }],
        );
        render_terminals(&mut text, &[(12, health(0.5, None), Duration::ZERO)]);
        render_totals(&mut text, 1, 1, &sfu::stats::CoreCounters::default());
        let written: std::collections::BTreeSet<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        for (file, contents) in [
            (
                "alerts.yml",
                include_str!("../../deploy/prometheus/alerts.yml"),
            ),
            (
                "bridge-dashboard.json",
                include_str!("../../deploy/grafana/bridge-dashboard.json"),
            ),
        ] {
            let mut used = 0;
            for (i, _) in contents.match_indices("bridge_") {
                let name: String = contents[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                assert!(
                    written.contains(name.as_str()),
                    "{file} uses {name}, which the bridge does not write"
                );
                used += 1;
            }
            assert!(used > 3, "{file}");
        }
    }
}
