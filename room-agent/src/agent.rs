//! The shell: carries out what [`Control`] decides, and feeds it what happens. It logs in to the
//! bridge, keeps the signaling WebSocket, reads the schedule, joins and leaves, runs the
//! GStreamer pipelines and the call, and shows the speaker, the floor holder or the chair.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

use crate::config::{Capture, Config, Display};
use crate::control::{Action, Control, Input, Planned};
use crate::media::{self, AudioPlayer, Frame, Receiver, Sender};
use crate::net::{Bridge, NetError, Ws};
use crate::rtc::{Call, CallEvent};
use crate::view::{self, Other};
use crate::visca;

/// Largest secret file read.
const MAX_SECRET: u64 = 4096;
/// How often the agent reports its health.
const HEALTH_EVERY: Duration = Duration::from_secs(5);
/// Frames queued between the pipeline and the call.
const FRAME_QUEUE: usize = 64;
/// The longest camera failure reason sent with health (the protocol's limit).
const MAX_CAMERA_ERROR: usize = 200;

/// What the agent tells the call task.
enum CallCmd {
    Offer(String, oneshot::Sender<Result<String, String>>),
    MaxKbps(Option<u32>),
    /// The SFU wants only the lowest layers of the track on a mid.
    SendLayers(String, u8),
}

/// What the last health report counted: when, frames and bytes per layer, CPU busy and total.
type Counters = (Instant, Vec<(u64, u64)>, Option<(u64, u64)>);

/// A schedule read from the bridge, or why not.
type ScheduleRead = Result<Vec<Planned>, NetError>;

/// Reads the device credential.
pub fn read_secret(path: &Path) -> anyhow::Result<String> {
    let meta = std::fs::metadata(path)
        .map_err(|e| anyhow::anyhow!("cannot read the secret file {}: {e}", path.display()))?;
    if meta.len() > MAX_SECRET {
        anyhow::bail!("{} is larger than 4 KiB: not a credential", path.display());
    }
    let secret = std::fs::read_to_string(path)?.trim().to_string();
    if secret.is_empty() {
        anyhow::bail!("{} is empty", path.display());
    }
    Ok(secret)
}

/// The running agent.
struct Agent {
    config: Config,
    bridge: Bridge,
    secret: String,
    control: Control,
    token: Option<String>,
    ws: Option<Ws>,
    /// The meeting a join was sent for.
    joining: Option<i64>,
    /// The meeting that welcomed the agent, until its media is negotiated.
    welcomed: Option<i64>,
    /// The call's commands and its frames (for pipeline rebuilds).
    call: Option<(mpsc::Sender<CallCmd>, mpsc::Sender<Frame>)>,
    /// The offer's call before the answer arrives.
    offered: Option<Call>,
    call_events: (
        mpsc::UnboundedSender<CallEvent>,
        mpsc::UnboundedReceiver<CallEvent>,
    ),
    failures: (
        mpsc::UnboundedSender<String>,
        mpsc::UnboundedReceiver<String>,
    ),
    schedules: (
        mpsc::UnboundedSender<ScheduleRead>,
        mpsc::UnboundedReceiver<ScheduleRead>,
    ),
    sender: Option<Sender>,
    receiver: Option<Receiver>,
    /// One player per audio slot, by mid.
    players: HashMap<String, AudioPlayer>,
    /// Audio buffers decoded so far (all slots).
    heard: std::sync::Arc<std::sync::atomic::AtomicU64>,
    self_id: Option<u64>,
    /// Receive slots: mid → participant.
    slots: HashMap<String, Option<u64>>,
    /// Everyone else, in joining order.
    others: Vec<Other>,
    /// The site holding the floor.
    floor: Option<i64>,
    dominant: Option<u64>,
    shown: Option<u64>,
    /// The microphone is muted (by a technician).
    muted: bool,
    /// The latest loss and round-trip time the SFU reported.
    link: (Option<f32>, Option<f32>),
    /// The camera device's presence at the last check (`None`: not checked yet).
    camera_seen: Option<bool>,
    /// The pipeline being built or running captures the camera.
    capturing_camera: bool,
    /// Why the camera's pipeline last failed (cleared when the camera runs or goes).
    camera_error: Option<String>,
    /// The uplink's bandwidth estimate and the encoder targets per layer, bits per second.
    uplink: Option<(u64, Vec<Option<u32>>)>,
    /// How many of its lowest layers the SFU last asked for (`send_layers`), in this call.
    asked_layers: Option<u8>,
    /// Counters at the last health report, to turn them into rates.
    last_health: Option<Counters>,
}

/// Busy and total CPU time since boot (`/proc/stat`), if readable.
fn cpu_times() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = fields.iter().sum();
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// Runs the agent until the process is stopped.
pub async fn run(config: Config) -> anyhow::Result<()> {
    media::init()?;
    let bridge = Bridge::new(&config.server)?;
    let secret = read_secret(&config.server.secret_file)?;
    let poll = Duration::from_secs(config.server.schedule_poll_secs);
    let mut agent = Agent {
        control: Control::new(Instant::now(), poll),
        config,
        bridge,
        secret,
        token: None,
        ws: None,
        joining: None,
        welcomed: None,
        call: None,
        offered: None,
        call_events: mpsc::unbounded_channel(),
        failures: mpsc::unbounded_channel(),
        schedules: mpsc::unbounded_channel(),
        sender: None,
        receiver: None,
        players: HashMap::new(),
        heard: Default::default(),
        self_id: None,
        slots: HashMap::new(),
        others: Vec::new(),
        floor: None,
        dominant: None,
        shown: None,
        muted: false,
        link: (None, None),
        uplink: None,
        asked_layers: None,
        camera_seen: None,
        capturing_camera: false,
        camera_error: None,
        last_health: None,
    };
    agent.handle(Input::Tick).await;
    // The camera unplugged or back: the state machine decides what the pipeline captures.
    let mut camera_check = tokio::time::interval(Duration::from_secs(2));
    let mut health = tokio::time::interval(HEALTH_EVERY);
    loop {
        let deadline = agent
            .control
            .next_deadline()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
        let input = tokio::select! {
            msg = next_message(&mut agent.ws) => match msg {
                Some(text) => {
                    agent.message(&text).await;
                    continue;
                }
                None => {
                    agent.ws = None;
                    tracing::info!("signaling connection lost");
                    Input::SignalingDown
                }
            },
            Some(event) = agent.call_events.1.recv() => {
                agent.call_event(event).await;
                continue;
            }
            Some(failure) = agent.failures.1.recv() => agent.pipeline_failed(failure),
            Some(schedule) = agent.schedules.1.recv() => match schedule {
                Ok(list) => Input::Schedule(list),
                Err(e) => {
                    tracing::warn!(error = %e, "reading the schedule failed");
                    if matches!(e, NetError::Status { status: 401, .. }) {
                        // The session expired: log in again.
                        agent.ws = None;
                        Input::SignalingDown
                    } else {
                        continue;
                    }
                }
            },
            _ = health.tick() => {
                agent.report_health().await;
                continue;
            }
            _ = camera_check.tick() => {
                let camera = &agent.config.capture.camera;
                let present = media::camera_present(camera);
                if agent.camera_seen == Some(present) {
                    continue;
                }
                if agent.camera_seen.is_some() {
                    tracing::info!(camera = %camera, present, "the camera came or went");
                }
                agent.camera_seen = Some(present);
                if !present {
                    agent.camera_error = None;
                }
                Input::Camera(present)
            }
            _ = tokio::time::sleep_until(deadline.into()) => Input::Tick,
        };
        agent.handle(input).await;
    }
}

/// The next text message of the WebSocket; `None` when it is closed (or there is none).
async fn next_message(ws: &mut Option<Ws>) -> Option<String> {
    let Some(socket) = ws else {
        return std::future::pending().await;
    };
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(t))) => return Some(t.to_string()),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => continue,
        }
    }
}

impl Agent {
    /// Feeds `input` to the control and carries out its actions (which may produce inputs).
    async fn handle(&mut self, input: Input) {
        let mut queue = vec![input];
        while let Some(input) = queue.pop() {
            for action in self.control.handle(Instant::now(), input) {
                if let Some(next) = self.act(action).await {
                    queue.push(next);
                }
            }
        }
    }

    async fn act(&mut self, action: Action) -> Option<Input> {
        match action {
            Action::Connect => Some(match self.connect().await {
                Ok(()) => Input::SignalingUp,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot connect to the bridge");
                    Input::SignalingDown
                }
            }),
            Action::FetchSchedule => {
                let (bridge, token, out) = (
                    self.bridge.clone(),
                    self.token.clone(),
                    self.schedules.0.clone(),
                );
                tokio::spawn(async move {
                    let result = bridge
                        .request("GET", "/api/schedule", token.as_deref(), &Value::Null)
                        .await
                        .map(|v| planned(&v));
                    let _ = out.send(result);
                });
                None
            }
            Action::Join(id) => {
                self.joining = Some(id);
                let name = self.config.display_name();
                self.send(json!({"type": "join", "meeting": id, "name": name}))
                    .await;
                None
            }
            Action::Leave => {
                self.send(json!({"type": "leave"})).await;
                self.end_call();
                None
            }
            Action::StartPipeline { camera } => Some(self.start_pipeline(camera)),
            Action::StopPipeline => {
                self.sender = None;
                None
            }
        }
    }

    async fn connect(&mut self) -> Result<(), NetError> {
        let session = self
            .bridge
            .request(
                "POST",
                "/api/device/login",
                None,
                &json!({"terminal_id": self.config.server.terminal_id, "secret": self.secret}),
            )
            .await?;
        let token = session["token"]
            .as_str()
            .ok_or_else(|| NetError::Connect("no token in the login answer".into()))?
            .to_string();
        self.ws = Some(self.bridge.websocket(&token).await?);
        self.token = Some(token);
        tracing::info!("connected to the bridge");
        Ok(())
    }

    async fn send(&mut self, mut msg: Value) {
        msg["v"] = json!(1);
        if let Some(ws) = &mut self.ws
            && ws
                .send(Message::Text(msg.to_string().into()))
                .await
                .is_err()
        {
            self.ws = None;
        }
    }

    /// Builds the capture pipeline from the camera, or (`camera: false`) the test picture.
    fn start_pipeline(&mut self, camera: bool) -> Input {
        let Some((_, frames)) = &self.call else {
            return Input::PipelineFailed("no call".into());
        };
        self.sender = None;
        self.capturing_camera = camera;
        let capture = if camera {
            self.config.capture.clone()
        } else {
            Capture {
                camera: "test".into(),
                ..self.config.capture.clone()
            }
        };
        match Sender::start(
            &capture,
            &self.config.video.layers,
            &self.config.video.encoder,
            frames.clone(),
            self.failures.0.clone(),
        ) {
            Ok(sender) => {
                sender.set_muted(self.muted);
                // A rebuilt pipeline keeps the layers the uplink and the SFU allow.
                if let Some((_, rates)) = &self.uplink {
                    for (layer, bps) in rates.iter().enumerate() {
                        sender.set_bitrate(layer, *bps);
                    }
                }
                tracing::info!(
                    camera = sender.camera,
                    encoder = sender.encoder,
                    "capture and encoding running"
                );
                if sender.camera {
                    self.camera_error = None;
                }
                self.sender = Some(sender);
                Input::PipelineRunning
            }
            Err(e) => self.pipeline_failed(e.to_string()),
        }
    }

    /// The pipeline failed: say so, and keep the reason if it captured the camera.
    fn pipeline_failed(&mut self, failure: String) -> Input {
        tracing::warn!(%failure, camera = self.capturing_camera, "pipeline failed");
        self.sender = None;
        if self.capturing_camera {
            self.camera_error = Some(failure.chars().take(MAX_CAMERA_ERROR).collect());
        }
        Input::PipelineFailed(failure)
    }

    fn end_call(&mut self) {
        self.welcomed = None;
        self.call = None;
        self.offered = None;
        self.receiver = None;
        self.players.clear();
        self.sender = None;
        self.slots.clear();
        self.others.clear();
        self.floor = None;
        self.dominant = None;
        self.shown = None;
        self.uplink = None;
        self.asked_layers = None;
    }

    async fn message(&mut self, text: &str) {
        let Ok(msg) = serde_json::from_str::<Value>(text) else {
            return;
        };
        match msg["type"].as_str().unwrap_or_default() {
            "welcome" => {
                let Some(id) = self.joining.take() else {
                    return;
                };
                self.self_id = msg["participant_id"].as_u64();
                let participants = msg["participants"].as_array().cloned().unwrap_or_default();
                self.others = participants.iter().filter_map(Other::from_json).collect();
                match Call::offer(&self.config.video.layers, self.config.video.max_kbps) {
                    Ok((call, sdp)) => {
                        self.offered = Some(call);
                        self.welcomed = Some(id);
                        self.send(json!({"type": "offer", "sdp": sdp})).await;
                    }
                    Err(e) => tracing::error!(error = %e, "cannot make an offer"),
                }
            }
            "answer" => {
                let Some(mut call) = self.offered.take() else {
                    return;
                };
                if let Err(e) = call
                    .accept_answer(msg["sdp"].as_str().unwrap_or_default())
                    .await
                {
                    tracing::error!(error = %e, "the SFU's answer failed");
                    return;
                }
                let (commands, frames) = spawn_call(call, self.call_events.0.clone());
                self.call = Some((commands, frames));
                match Receiver::start(self.config.display == Display::Auto && has_display()) {
                    Ok(r) => self.receiver = Some(r),
                    Err(e) => tracing::warn!(error = %e, "cannot show the meeting"),
                }
                // In, with media negotiated: capture starts.
                if let Some(id) = self.welcomed.take() {
                    self.handle(Input::Joined(id)).await;
                }
            }
            "offer" => {
                let Some((commands, _)) = &self.call else {
                    return;
                };
                let (reply, answer) = oneshot::channel();
                let sdp = msg["sdp"].as_str().unwrap_or_default().to_string();
                if commands.send(CallCmd::Offer(sdp, reply)).await.is_err() {
                    return;
                }
                match answer.await {
                    Ok(Ok(sdp)) => self.send(json!({"type": "answer", "sdp": sdp})).await,
                    Ok(Err(e)) => tracing::warn!(error = %e, "the SFU's offer failed"),
                    Err(_) => {}
                }
            }
            "send_layers" => {
                let (Some((commands, _)), Some(mid), Some(layers)) = (
                    &self.call,
                    msg["mid"].as_str(),
                    msg["layers"].as_u64().and_then(|l| u8::try_from(l).ok()),
                ) else {
                    return;
                };
                tracing::info!(mid, layers, "the SFU asks for the lowest layers only");
                // The lowest layer is never suspended, whatever the message says.
                self.asked_layers = Some(layers.max(1));
                let _ = commands
                    .send(CallCmd::SendLayers(mid.to_string(), layers))
                    .await;
            }
            "participant_joined" => {
                if let Some(other) = Other::from_json(&msg["participant"]) {
                    self.others.push(other);
                    self.choose_view().await;
                }
            }
            "participant_left" => {
                if let Some(id) = msg["id"].as_u64() {
                    self.others.retain(|o| o.id != id);
                    self.choose_view().await;
                }
            }
            "speakers" => {
                self.dominant = msg["dominant"]
                    .as_u64()
                    .filter(|d| Some(*d) != self.self_id);
                self.choose_view().await;
            }
            "floor" => {
                self.floor = msg["holder"].as_i64();
                self.choose_view().await;
            }
            "slots" => {
                self.slots = msg["slots"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|s| {
                                Some((s["mid"].as_str()?.to_string(), s["participant"].as_u64()))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
            }
            "command" => self.command(&msg["command"]).await,
            "error" => {
                let code = msg["code"].as_str().unwrap_or_default().to_string();
                tracing::warn!(%code, message = %msg["message"], "the bridge refused");
                if code == "replaced" {
                    self.end_call();
                    self.handle(Input::Replaced).await;
                } else if let Some(id) = self.joining.take() {
                    self.handle(Input::JoinRefused(id, code)).await;
                }
            }
            _ => {}
        }
    }

    /// Sends the health report: pipeline, camera, CPU, what each layer sends, the link.
    async fn report_health(&mut self) {
        let now = Instant::now();
        let counters: Vec<(u64, u64)> = self
            .sender
            .as_ref()
            .map(|s| {
                s.frames
                    .iter()
                    .zip(s.bytes.iter())
                    .map(|(f, b)| {
                        (
                            f.load(std::sync::atomic::Ordering::Relaxed),
                            b.load(std::sync::atomic::Ordering::Relaxed),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let cpu = cpu_times();
        let (layers, cpu_share) = match &self.last_health {
            Some((then, before, cpu_before)) => {
                let secs = now.duration_since(*then).as_secs_f32().max(0.001);
                let layers = self
                    .config
                    .video
                    .layers
                    .iter()
                    .zip(
                        counters
                            .iter()
                            .zip(before.iter().chain(std::iter::repeat(&(0, 0)))),
                    )
                    .enumerate()
                    .map(|(i, (l, ((f, b), (f0, b0))))| {
                        let target = self.uplink.as_ref().and_then(|(_, t)| t.get(i));
                        json!({
                            "width": media::width_of(l.height),
                            "height": l.height,
                            "kbps": (b.saturating_sub(*b0) * 8) as f32 / secs / 1000.0,
                            "target_kbps": target.map(|bps| bps.unwrap_or(0) as f32 / 1000.0),
                            "paused": self.sender.as_ref().is_some_and(|s| s.is_paused(i)),
                            "suspended": self.asked_layers.is_some_and(|n| i >= usize::from(n)),
                            "fps": f.saturating_sub(*f0) as f32 / secs,
                        })
                    })
                    .collect::<Vec<_>>();
                let share = match (cpu, cpu_before) {
                    (Some((busy, total)), Some((busy0, total0))) if total > *total0 => {
                        (busy - busy0) as f32 / (total - total0) as f32
                    }
                    _ => 0.0,
                };
                (layers, share)
            }
            None => (Vec::new(), 0.0),
        };
        self.last_health = Some((now, counters, cpu));
        let pipeline = match (&self.sender, self.control.meeting()) {
            (Some(_), _) => "running",
            (None, Some(_)) => "failed",
            (None, None) => "stopped",
        };
        let report = json!({
            "type": "health",
            "pipeline": pipeline,
            "camera": self.sender.as_ref().is_some_and(|s| s.camera),
            "camera_error": self.camera_error,
            "muted": self.muted,
            "cpu": cpu_share,
            "meeting": self.control.meeting(),
            "layers": layers,
            "loss": self.link.0,
            "rtt_ms": self.link.1,
            "uplink_kbps": self.uplink.as_ref().map(|(e, _)| *e as f32 / 1000.0),
            "shown_frames": self.receiver.as_ref().map_or(0, |r| r.decoded.load(std::sync::atomic::Ordering::Relaxed)),
            "heard_frames": self.heard.load(std::sync::atomic::Ordering::Relaxed),
        });
        if self.control.is_connected() {
            self.send(report).await;
        }
    }

    /// A technician's command.
    async fn command(&mut self, command: &Value) {
        tracing::info!(%command, "command from a technician");
        match command["action"].as_str().unwrap_or_default() {
            "preset" => {
                let Some(preset) = command["preset"]
                    .as_u64()
                    .and_then(|p| u8::try_from(p).ok())
                else {
                    return;
                };
                let Some(control) = self.config.camera_control.clone() else {
                    tracing::warn!(
                        "a camera preset was asked, but no camera_control is configured"
                    );
                    return;
                };
                tokio::spawn(async move {
                    let timeout = Duration::from_millis(control.timeout_ms);
                    let result = async {
                        let mut camera = visca::Camera::connect(control.address, timeout).await?;
                        camera.reset_sequence().await?;
                        camera.execute(visca::Command::RecallPreset(preset)).await
                    }
                    .await;
                    match result {
                        Ok(()) => tracing::info!(preset, "camera preset recalled"),
                        Err(e) => tracing::warn!(preset, error = %e, "camera preset failed"),
                    }
                });
            }
            "mute" => {
                self.muted = command["muted"].as_bool().unwrap_or(false);
                if let Some(s) = &self.sender {
                    s.set_muted(self.muted);
                }
            }
            "restart" => self.handle(Input::RestartPipeline).await,
            "max_bitrate" => {
                let kbps = command["kbps"].as_u64().and_then(|k| u32::try_from(k).ok());
                let kbps = kbps.filter(|k| *k > 0);
                self.config.video.max_kbps = kbps;
                if let Some((commands, _)) = &self.call {
                    let _ = commands.send(CallCmd::MaxKbps(kbps)).await;
                }
            }
            other => tracing::warn!(action = other, "unknown command"),
        }
    }

    /// Shows one participant full screen (see [`crate::view`]).
    async fn choose_view(&mut self) {
        let wanted = view::choose(&self.others, self.dominant, self.floor);
        if wanted == self.shown {
            return;
        }
        self.shown = wanted;
        let tiles: Vec<Value> = wanted
            .map(|p| vec![json!({"participant": p, "height": 720})])
            .unwrap_or_default();
        self.send(json!({"type": "view", "tiles": tiles})).await;
    }

    async fn call_event(&mut self, event: CallEvent) {
        match event {
            CallEvent::Connected => tracing::info!("media connected"),
            CallEvent::Disconnected => {
                tracing::warn!("media disconnected");
                self.end_call();
                self.handle(Input::Left).await;
            }
            CallEvent::Keyframe(layer) => {
                if let Some(s) = &self.sender {
                    s.request_keyframe(layer);
                }
            }
            CallEvent::Bitrates { estimate, rates } => {
                if let Some(s) = &self.sender {
                    for (layer, bps) in rates.iter().enumerate() {
                        s.set_bitrate(layer, *bps);
                    }
                }
                self.uplink = Some((estimate, rates));
            }
            CallEvent::Stats { loss, rtt_ms } => {
                self.link = (loss.or(self.link.0), rtt_ms.or(self.link.1));
            }
            CallEvent::Audio { mid, data } => {
                if !self.players.contains_key(&mid) {
                    let audible = self.config.display == Display::Auto;
                    match AudioPlayer::start(audible, self.heard.clone()) {
                        Ok(p) => {
                            self.players.insert(mid.clone(), p);
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot play the meeting's sound");
                            return;
                        }
                    }
                }
                if let Some(p) = self.players.get(&mid) {
                    p.push(&data);
                }
            }
            CallEvent::Video { mid, data } => {
                let shows =
                    self.shown.is_some() && self.slots.get(&mid).copied().flatten() == self.shown;
                if shows && let Some(r) = &self.receiver {
                    r.push(&data);
                }
            }
        }
    }
}

/// Whether there is a screen to show the meeting on.
fn has_display() -> bool {
    std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some()
}

/// The schedule's meetings as the control sees them.
fn planned(schedule: &Value) -> Vec<Planned> {
    schedule
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| {
                    let state = m["state"].as_str()?;
                    Some(Planned {
                        id: m["id"].as_i64()?,
                        open: state == "roll_call" || state == "in_progress",
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Runs the call in a task of its own: frames in, datagrams in and out, events out.
fn spawn_call(
    mut call: Call,
    events: mpsc::UnboundedSender<CallEvent>,
) -> (mpsc::Sender<CallCmd>, mpsc::Sender<Frame>) {
    let (commands_tx, mut commands) = mpsc::channel::<CallCmd>(8);
    let (frames_tx, mut frames) = mpsc::channel::<Frame>(FRAME_QUEUE);
    tokio::spawn(async move {
        let Some(socket) = call.socket() else { return };
        let mut buf = vec![0u8; 2048];
        let mut out = Vec::new();
        loop {
            let next = call.drive(&mut out);
            for e in out.drain(..) {
                if events.send(e).is_err() {
                    return;
                }
            }
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(CallCmd::Offer(sdp, reply)) => {
                        let _ = reply.send(call.accept_offer(&sdp).map_err(|e| e.to_string()));
                    }
                    Some(CallCmd::MaxKbps(kbps)) => call.set_max_kbps(kbps),
                    Some(CallCmd::SendLayers(mid, layers)) => {
                        call.send_layers(&mid, layers, &mut out);
                    }
                    // The agent ended the call.
                    None => return,
                },
                frame = frames.recv() => match frame {
                    Some(f) => call.write(f),
                    None => return,
                },
                received = socket.recv_from(&mut buf) => {
                    if let Ok((n, from)) = received {
                        call.receive(from, &buf[..n]);
                    }
                }
                _ = tokio::time::sleep_until(next.into()) => call.handle_timeout(),
            }
        }
    });
    (commands_tx, frames_tx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_tells_which_meetings_are_open() {
        let v = json!([
            {"id": 1, "state": "scheduled"},
            {"id": 2, "state": "roll_call"},
            {"id": 3, "state": "in_progress"},
            {"id": "x"}
        ]);
        assert_eq!(
            planned(&v),
            vec![
                Planned { id: 1, open: false },
                Planned { id: 2, open: true },
                Planned { id: 3, open: true },
            ]
        );
    }
}
