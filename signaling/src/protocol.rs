//! The live-session protocol between clients and signaling: versioned JSON over WebSocket.
//!
//! Every message is a JSON object with `"v"` (the protocol version, [`VERSION`]) and
//! `"type"`. This module is the one place where the messages are typed; the web client mirrors
//! it in `web-client/src/protocol.ts`.

use serde::{Deserialize, Serialize};

/// The protocol version this server speaks.
pub const VERSION: u32 = 1;

/// The largest text message accepted from a client. SDP offers of a few tracks are a few KiB.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// A message from a client.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMsg {
    /// Enter a meeting under a display name.
    Join {
        /// The meeting to enter.
        meeting: i64,
        /// The name shown on this participant's tile.
        name: String,
    },
    /// The client's one offer: what it publishes.
    Offer {
        /// SDP.
        sdp: String,
    },
    /// The client's answer to an offer from the server.
    Answer {
        /// SDP.
        sdp: String,
    },
    /// What the client shows: which participants' video, at what height in pixels. The SFU
    /// forwards nothing else, and the smallest simulcast layer that fills each tile.
    View {
        /// The tiles shown.
        tiles: Vec<ViewTile>,
    },
    /// A trickled ICE candidate (`candidate:...`).
    Candidate {
        /// The candidate line.
        candidate: String,
    },
    /// Leave the meeting.
    Leave,
    /// The client's connection broke off or its network changed: the server offers new ICE
    /// credentials (an `offer`), which the client answers.
    IceRestart,
    /// Floor control: a site asks for the floor or withdraws; the chair grants, refuses or
    /// takes it back.
    Floor {
        /// What to do.
        action: FloorAction,
        /// The site (for grant and refuse).
        site: Option<i64>,
    },
    /// The chair mutes or unmutes one site.
    Mute {
        /// The site.
        site: i64,
        /// Muted or not.
        muted: bool,
    },
    /// The chair mutes or unmutes every site but the chair's.
    MuteAll {
        /// Muted or not.
        muted: bool,
    },
    /// The chair locks the meeting (no new site may join) or unlocks it.
    Lock {
        /// Locked or not.
        locked: bool,
    },
    /// The chair shows a site to everyone large (`null`: nobody).
    Spotlight {
        /// The site.
        site: Option<i64>,
    },
    /// Start or stop presenting a document or screen: the client's second video track.
    Share {
        /// Presenting or not.
        on: bool,
    },
    /// A technician's dashboard follows a meeting without taking part: its roll call and its
    /// sites' quality come to this session (administrators, technicians and chairs).
    Watch {
        /// The meeting.
        meeting: i64,
    },
    /// A room terminal's health and sending statistics (every few seconds).
    Health(HealthReport),
    /// What a browser in a meeting decodes (every few seconds): only it knows.
    ClientStats(ClientStats),
}

/// Most layers a health report may list.
pub const MAX_HEALTH_LAYERS: usize = 4;
/// The longest camera error in a health report, in characters.
pub const MAX_CAMERA_ERROR: usize = 200;

/// A room terminal's health, as it reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthReport {
    /// `running`, `starting`, `failed` or `stopped` (not in a meeting).
    pub pipeline: String,
    /// A camera is captured (not the test picture).
    pub camera: bool,
    /// Why capturing the camera last failed (the test picture stands in meanwhile), at most
    /// 200 characters.
    #[serde(default)]
    pub camera_error: Option<String>,
    /// The microphone is muted by a technician.
    pub muted: bool,
    /// CPU in use, 0 to 1.
    pub cpu: f32,
    /// The meeting it is in.
    pub meeting: Option<i64>,
    /// What it sends, per simulcast layer, lowest first.
    pub layers: Vec<LayerStats>,
    /// Share of its packets lost on the way to the SFU (as the SFU reports), 0 to 1.
    pub loss: Option<f32>,
    /// Round-trip time to the SFU, milliseconds.
    pub rtt_ms: Option<f32>,
    /// What its bandwidth estimate (from the SFU's transport-wide feedback) says the link to
    /// the SFU carries, kilobits per second; the layers' targets follow it.
    #[serde(default)]
    pub uplink_kbps: Option<f32>,
    /// Video frames of the meeting decoded and shown so far.
    #[serde(default)]
    pub shown_frames: u64,
    /// Audio packets of the meeting decoded and played so far.
    #[serde(default)]
    pub heard_frames: u64,
}

/// What a browser decodes of the meeting's video, added up over its tiles (cumulative since
/// it joined, but `fps`: now).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ClientStats {
    /// Video frames decoded.
    pub frames_decoded: u64,
    /// Frames decoded per second now, over all tiles.
    pub fps: f32,
    /// Freezes seen (WebRTC's `freezeCount`).
    pub freezes: u64,
    /// Time frozen, seconds (`totalFreezesDuration`).
    pub freeze_seconds: f32,
}

/// One sent layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LayerStats {
    /// Picture width.
    pub width: u32,
    /// Picture height.
    pub height: u32,
    /// Bitrate, kilobits per second.
    pub kbps: f32,
    /// The bitrate the encoder is asked for now, kilobits per second.
    #[serde(default)]
    pub target_kbps: Option<f32>,
    /// Paused: not sent, because the link cannot carry it or because it is suspended (the
    /// layers below it still go).
    #[serde(default)]
    pub paused: bool,
    /// Suspended: nobody in the meeting shows it this large, so the SFU asked the terminal
    /// not to send it (`send_layers`); it resumes when someone does.
    #[serde(default)]
    pub suspended: bool,
    /// Frames per second.
    pub fps: f32,
}

/// A floor-control action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FloorAction {
    /// A site asks for the floor.
    Request,
    /// A site withdraws its request.
    Withdraw,
    /// The chair gives the floor to `site`.
    Grant,
    /// The chair turns down `site`'s request.
    Refuse,
    /// The chair takes the floor back.
    Revoke,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FloorBody {
    action: FloorAction,
    #[serde(default)]
    site: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MuteBody {
    site: i64,
    muted: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MuteAllBody {
    muted: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LockBody {
    locked: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpotlightBody {
    site: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShareBody {
    on: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WatchBody {
    meeting: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JoinBody {
    meeting: i64,
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SdpBody {
    sdp: String,
}

/// One tile of a client's view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewTile {
    /// Whose video.
    pub participant: u64,
    /// Its height on screen, in device pixels.
    pub height: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ViewBody {
    tiles: Vec<ViewTile>,
}

#[derive(Deserialize)]
struct CandidateBody {
    candidate: String,
}

/// Why a client message was refused. Each maps to a stable error code for the client.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    /// Larger than [`MAX_MESSAGE_BYTES`].
    #[error("message of {0} bytes is larger than the limit of {MAX_MESSAGE_BYTES} bytes")]
    TooLarge(usize),
    /// Not JSON, or not an object.
    #[error("message is not a JSON object: {0}")]
    NotJson(String),
    /// A `v` other than [`VERSION`].
    #[error("unsupported protocol version {0}; this server speaks version {VERSION}")]
    Version(String),
    /// A `type` this server does not know.
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    /// A known type with missing or wrong fields.
    #[error("invalid {kind} message: {detail}")]
    Invalid {
        /// The message type.
        kind: &'static str,
        /// What serde found wrong.
        detail: String,
    },
    /// A binary frame: this protocol is text only.
    #[error("binary messages are not part of this protocol")]
    Binary,
}

impl ProtocolError {
    /// The stable code sent to the client.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge(_) => "message_too_large",
            Self::NotJson(_) => "bad_json",
            Self::Version(_) => "unsupported_version",
            Self::UnknownType(_) => "unknown_type",
            Self::Invalid { .. } => "invalid_message",
            Self::Binary => "binary_not_supported",
        }
    }
}

impl ClientMsg {
    /// Parses one text message from a client.
    pub fn parse(text: &str) -> Result<Self, ProtocolError> {
        if text.len() > MAX_MESSAGE_BYTES {
            return Err(ProtocolError::TooLarge(text.len()));
        }
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| ProtocolError::NotJson(e.to_string()))?;
        let serde_json::Value::Object(mut map) = value else {
            return Err(ProtocolError::NotJson("not an object".into()));
        };
        match map.remove("v") {
            Some(serde_json::Value::Number(n)) if n.as_u64() == Some(u64::from(VERSION)) => {}
            Some(other) => return Err(ProtocolError::Version(other.to_string())),
            None => return Err(ProtocolError::Version("(missing)".into())),
        }
        let kind = match map.remove("type") {
            Some(serde_json::Value::String(s)) => s,
            Some(other) => return Err(ProtocolError::UnknownType(other.to_string())),
            None => return Err(ProtocolError::UnknownType("(missing)".into())),
        };
        let body = serde_json::Value::Object(map);
        fn field<T: for<'de> Deserialize<'de>>(
            kind: &'static str,
            body: serde_json::Value,
        ) -> Result<T, ProtocolError> {
            serde_json::from_value(body).map_err(|e| ProtocolError::Invalid {
                kind,
                detail: e.to_string(),
            })
        }
        Ok(match kind.as_str() {
            "join" => {
                let b: JoinBody = field("join", body)?;
                ClientMsg::Join {
                    meeting: b.meeting,
                    name: b.name,
                }
            }
            "offer" => ClientMsg::Offer {
                sdp: field::<SdpBody>("offer", body)?.sdp,
            },
            "answer" => ClientMsg::Answer {
                sdp: field::<SdpBody>("answer", body)?.sdp,
            },
            "view" => ClientMsg::View {
                tiles: field::<ViewBody>("view", body)?.tiles,
            },
            "candidate" => ClientMsg::Candidate {
                candidate: field::<CandidateBody>("candidate", body)?.candidate,
            },
            "leave" => ClientMsg::Leave,
            "ice_restart" => ClientMsg::IceRestart,
            "floor" => {
                let b: FloorBody = field("floor", body)?;
                let needs_site = matches!(b.action, FloorAction::Grant | FloorAction::Refuse);
                if needs_site != b.site.is_some() {
                    return Err(ProtocolError::Invalid {
                        kind: "floor",
                        detail: "grant and refuse name a site; the other actions do not".into(),
                    });
                }
                ClientMsg::Floor {
                    action: b.action,
                    site: b.site,
                }
            }
            "mute" => {
                let b: MuteBody = field("mute", body)?;
                ClientMsg::Mute {
                    site: b.site,
                    muted: b.muted,
                }
            }
            "mute_all" => ClientMsg::MuteAll {
                muted: field::<MuteAllBody>("mute_all", body)?.muted,
            },
            "lock" => ClientMsg::Lock {
                locked: field::<LockBody>("lock", body)?.locked,
            },
            "spotlight" => ClientMsg::Spotlight {
                site: field::<SpotlightBody>("spotlight", body)?.site,
            },
            "share" => ClientMsg::Share {
                on: field::<ShareBody>("share", body)?.on,
            },
            "watch" => ClientMsg::Watch {
                meeting: field::<WatchBody>("watch", body)?.meeting,
            },
            "client_stats" => {
                let stats: ClientStats = field("client_stats", body)?;
                let fine = |v: f32, max: f32| v.is_finite() && (0.0..=max).contains(&v);
                if !fine(stats.fps, 2000.0) || !fine(stats.freeze_seconds, 1e7) {
                    return Err(ProtocolError::Invalid {
                        kind: "client_stats",
                        detail: "fps from 0 to 2000, freeze_seconds a number of seconds".into(),
                    });
                }
                ClientMsg::ClientStats(stats)
            }
            "health" => {
                let report: HealthReport = field("health", body)?;
                let camera_error = report
                    .camera_error
                    .as_ref()
                    .map_or(0, |e| e.chars().count());
                if report.layers.len() > MAX_HEALTH_LAYERS
                    || report.pipeline.len() > 16
                    || camera_error > MAX_CAMERA_ERROR
                {
                    return Err(ProtocolError::Invalid {
                        kind: "health",
                        detail: format!(
                            "at most {MAX_HEALTH_LAYERS} layers, a short pipeline state, a camera \
                             error of at most {MAX_CAMERA_ERROR} characters"
                        ),
                    });
                }
                ClientMsg::Health(report)
            }
            _ => return Err(ProtocolError::UnknownType(kind)),
        })
    }
}

/// One site's latest quality sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SiteSample {
    /// The site.
    pub site: i64,
    /// Its figures over the last period.
    #[serde(flatten)]
    pub sample: crate::monitor::Sample,
}

/// A participant as others see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantInfo {
    /// Its id (also in `slots` and `speakers` messages).
    pub id: u64,
    /// Display name.
    pub name: String,
    /// The site it takes part for (floor and roll call name sites).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<i64>,
    /// Whether it is the meeting's chair (clients show the chair large).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub chair: bool,
}

/// A meeting as a client sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MeetingInfo {
    /// Its id.
    pub id: i64,
    /// Its title.
    pub title: String,
}

/// An ICE server for the client's `RTCPeerConnection` (only what an administrator configured).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    /// `stun:` / `turn:` URLs.
    pub urls: Vec<String>,
    /// TURN user name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN credential.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// One receive slot in a `slots` message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotMsg {
    /// The m-line's mid.
    pub mid: String,
    /// `"audio"` or `"video"`.
    pub kind: String,
    /// Whose media it carries now; `null` when idle.
    pub participant: Option<u64>,
    /// It carries the participant's presentation (document, screen), not its camera.
    #[serde(default)]
    pub content: bool,
}

/// What a technician can tell a room terminal to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum TerminalCommand {
    /// Move the PTZ camera to a stored preset (0-127).
    Preset {
        /// The preset.
        preset: u8,
    },
    /// Mute or unmute the room's microphone.
    Mute {
        /// Muted or not.
        muted: bool,
    },
    /// Rebuild the capture pipeline.
    Restart,
    /// Ceiling on the video bitrate, kilobits per second (0: none).
    MaxBitrate {
        /// The ceiling.
        kbps: u32,
    },
}

/// A message to a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    /// The join succeeded.
    Welcome {
        /// This participant's id.
        participant_id: u64,
        /// The meeting entered.
        meeting: MeetingInfo,
        /// Everyone else already there.
        participants: Vec<ParticipantInfo>,
        /// ICE servers to use (empty unless an administrator configured some).
        ice_servers: Vec<IceServer>,
    },
    /// The answer to the client's offer.
    Answer {
        /// SDP.
        sdp: String,
    },
    /// A change to what the client receives; answer it.
    Offer {
        /// SDP.
        sdp: String,
    },
    /// Someone entered the meeting.
    ParticipantJoined {
        /// Who.
        participant: ParticipantInfo,
    },
    /// Someone left the meeting.
    ParticipantLeft {
        /// Their id.
        id: u64,
    },
    /// The dominant speaker changed (detected by the SFU from audio levels).
    Speakers {
        /// Who speaks now.
        dominant: u64,
        /// Recent speakers, most recent (the dominant one) first.
        recent: Vec<u64>,
    },
    /// What each of the client's receive slots (m-lines, by mid) carries now. The SFU
    /// switches sources onto a bounded set of slots; the client shows a slot's track in the
    /// tile of its participant. Sent whenever the mapping changes.
    Slots {
        /// Every slot with a mid.
        slots: Vec<SlotMsg>,
    },
    /// Send only the lowest `layers` simulcast layers of the track published on `mid` (the
    /// client's own m-line): no one in the meeting wants more of it now. Sent when it changes;
    /// a new media session starts with every layer on.
    SendLayers {
        /// The client's mid of the track.
        mid: String,
        /// How many of the lowest layers to send (at least 1).
        layers: u8,
    },
    /// The floor: who holds it, who asks, who is muted, whether the meeting is locked. Sent
    /// on joining and whenever it changes.
    Floor {
        /// The site holding the floor.
        holder: Option<i64>,
        /// Sites asking for it, first asked first.
        queue: Vec<i64>,
        /// Muted sites.
        muted: Vec<i64>,
        /// No new site may join.
        locked: bool,
        /// The site the chair shows to everyone large.
        spotlight: Option<i64>,
        /// The participant presenting a document or screen (its second video track).
        presenter: Option<u64>,
    },
    /// Roll call: every invited site's presence and media (to the chair, administrators and
    /// technicians in the meeting), at most once a second while it changes.
    RollCall {
        /// The invited sites.
        sites: Vec<crate::live::RollCallEntry>,
    },
    /// Stream quality of the meeting's sites, every few seconds (to the chair, administrators
    /// and technicians in the meeting): each sampled site's latest figures and grade, and the
    /// alerts that fired or stopped since the last message.
    Quality {
        /// Per site.
        sites: Vec<SiteSample>,
        /// Alerts that changed.
        alerts: Vec<crate::monitor::Alert>,
    },
    /// A technician's command to a room terminal.
    Command {
        /// What to do.
        command: TerminalCommand,
    },
    /// A request failed; the session goes on unless the server closes it.
    Error {
        /// Stable, machine-readable code.
        code: String,
        /// Human-readable explanation.
        message: String,
    },
}

impl ServerMsg {
    /// An error message.
    pub fn error(code: &str, message: impl Into<String>) -> Self {
        Self::Error {
            code: code.into(),
            message: message.into(),
        }
    }

    /// The JSON text of this message, with the version field.
    pub fn to_json(&self) -> String {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if let serde_json::Value::Object(map) = &mut value {
            map.insert("v".into(), VERSION.into());
        }
        value.to_string()
    }
}

/// Checks a display name: trimmed, 1 to 64 characters, no control characters.
pub fn validate_name(name: &str) -> Result<String, &'static str> {
    let name = name.trim();
    if name.is_empty() {
        return Err("the display name is empty");
    }
    if name.chars().count() > 64 {
        return Err("the display name is longer than 64 characters");
    }
    if name.chars().any(char::is_control) {
        return Err("the display name contains control characters");
    }
    Ok(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_client_message() {
        assert_eq!(
            ClientMsg::parse(r#"{"v":1,"type":"join","meeting":1,"name":"Hà Giang"}"#),
            Ok(ClientMsg::Join {
                meeting: 1,
                name: "Hà Giang".into()
            })
        );
        assert_eq!(
            ClientMsg::parse(r#"{"v":1,"type":"offer","sdp":"x"}"#),
            Ok(ClientMsg::Offer { sdp: "x".into() })
        );
        assert_eq!(
            ClientMsg::parse(r#"{"v":1,"type":"candidate","candidate":"c","sdpMid":"0"}"#),
            Ok(ClientMsg::Candidate {
                candidate: "c".into()
            })
        );
        assert_eq!(
            ClientMsg::parse(r#"{"v":1,"type":"leave"}"#),
            Ok(ClientMsg::Leave)
        );
        assert_eq!(
            ClientMsg::parse(r#"{"v":1,"type":"view","tiles":[{"participant":3,"height":180}]}"#),
            Ok(ClientMsg::View {
                tiles: vec![ViewTile {
                    participant: 3,
                    height: 180
                }]
            })
        );
    }

    #[test]
    fn refuses_bad_messages_with_stable_codes() {
        let code = |t: &str| ClientMsg::parse(t).map_err(|e| e.code());
        assert_eq!(code("not json"), Err("bad_json"));
        assert_eq!(code("[1,2]"), Err("bad_json"));
        assert_eq!(code(r#"{"type":"leave"}"#), Err("unsupported_version"));
        assert_eq!(
            code(r#"{"v":2,"type":"leave"}"#),
            Err("unsupported_version")
        );
        assert_eq!(code(r#"{"v":1,"type":"dance"}"#), Err("unknown_type"));
        assert_eq!(
            code(r#"{"v":1,"type":"join","meeting":"x"}"#),
            Err("invalid_message")
        );
        let big = format!(
            r#"{{"v":1,"type":"offer","sdp":"{}"}}"#,
            "a".repeat(MAX_MESSAGE_BYTES)
        );
        assert_eq!(code(&big), Err("message_too_large"));
    }

    #[test]
    fn server_messages_carry_version_and_type() {
        let json = ServerMsg::ParticipantLeft { id: 4 }.to_json();
        let v: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
        assert_eq!(v["v"], 1);
        assert_eq!(v["type"], "participant_left");
        assert_eq!(v["id"], 4);
        let json = ServerMsg::SendLayers {
            mid: "1".into(),
            layers: 2,
        }
        .to_json();
        let v: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
        assert_eq!(
            v,
            serde_json::json!({"v": 1, "type": "send_layers", "mid": "1", "layers": 2})
        );
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(
            validate_name("  Lê Thị Hoa 🌸 "),
            Ok("Lê Thị Hoa 🌸".into())
        );
        assert!(validate_name("   ").is_err());
        assert!(validate_name(&"x".repeat(65)).is_err());
        assert!(validate_name("a\u{0007}b").is_err());
        assert_eq!(
            validate_name("'); DROP TABLE x;--"),
            Ok("'); DROP TABLE x;--".into())
        );
    }

    #[test]
    fn client_stats_are_numbers_in_range() {
        let ok = r#"{"v":1,"type":"client_stats","frames_decoded":900,"fps":29.5,"freezes":1,"freeze_seconds":0.4}"#;
        match ClientMsg::parse(ok) {
            Ok(ClientMsg::ClientStats(c)) => assert_eq!((c.frames_decoded, c.freezes), (900, 1)),
            other => panic!("{other:?}"),
        }
        for bad in [
            r#"{"v":1,"type":"client_stats","frames_decoded":-1,"fps":1,"freezes":0,"freeze_seconds":0}"#,
            r#"{"v":1,"type":"client_stats","frames_decoded":1,"fps":5000,"freezes":0,"freeze_seconds":0}"#,
            r#"{"v":1,"type":"client_stats","frames_decoded":1,"fps":-2,"freezes":0,"freeze_seconds":0}"#,
            r#"{"v":1,"type":"client_stats","frames_decoded":1,"fps":1,"freezes":0,"freeze_seconds":0,"x":1}"#,
        ] {
            let e = ClientMsg::parse(bad).expect_err(bad);
            assert_eq!(e.code(), "invalid_message", "{bad}");
        }
    }

    #[test]
    fn health_reports_are_bounded() {
        let layer = r#"{"width":320,"height":180,"kbps":150.0,"fps":15.0}"#;
        let report = |layers: usize, extra: &str| {
            format!(
                r#"{{"v":1,"type":"health","pipeline":"running","camera":false,"muted":false,"cpu":0.3,"meeting":4,"layers":[{}],"loss":null,"rtt_ms":3.5{extra}}}"#,
                vec![layer; layers].join(",")
            )
        };
        match ClientMsg::parse(&report(2, "")) {
            Ok(ClientMsg::Health(h)) => {
                assert_eq!(h.layers.len(), 2);
                assert_eq!(h.meeting, Some(4));
            }
            other => panic!("{other:?}"),
        }
        let error = |n: usize| format!(r#","camera_error":"{}""#, "é".repeat(n));
        match ClientMsg::parse(&report(1, &error(MAX_CAMERA_ERROR))) {
            Ok(ClientMsg::Health(h)) => {
                assert_eq!(h.camera_error.map(|e| e.chars().count()), Some(200))
            }
            other => panic!("{other:?}"),
        }
        for bad in [
            report(5, ""),
            report(2, r#","cpu_temp":80"#),
            report(1, &error(MAX_CAMERA_ERROR + 1)),
        ] {
            let e = ClientMsg::parse(&bad).expect_err("refused");
            assert_eq!(e.code(), "invalid_message", "{bad}");
        }
    }
}
