//! PTZ camera control: VISCA over IP (Sony's framing of VISCA in UDP, port 52381), the protocol
//! of most meeting-room cameras. The message codec is pure; [`Camera`] sends one command at a
//! time and waits, with a timeout, for its acknowledgement and completion, so a silent or
//! confused camera ends in a clear error, never a hang. [`SimCamera`] speaks the protocol for
//! tests and records what it received.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UdpSocket;

/// Payload type of a VISCA command.
const COMMAND: u16 = 0x0100;
/// Payload type of a VISCA reply.
const REPLY: u16 = 0x0111;
/// Payload type of a control command (sequence reset).
const CONTROL: u16 = 0x0200;
/// Payload type of a control reply.
const CONTROL_REPLY: u16 = 0x0201;
/// Largest VISCA payload (a message is at most 16 bytes).
const MAX_PAYLOAD: usize = 16;

/// A pan or tilt direction, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drive {
    /// Left or up.
    Negative,
    /// Right or down.
    Positive,
    /// No movement on this axis.
    Stop,
}

/// What the camera is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Pan and tilt at speeds 1..=24 (pan) and 1..=23 (tilt).
    PanTilt {
        /// Horizontal.
        pan: Drive,
        /// Vertical.
        tilt: Drive,
        /// Pan speed.
        pan_speed: u8,
        /// Tilt speed.
        tilt_speed: u8,
    },
    /// Zoom in (`Some(true)`), out (`Some(false)`), or stop, at speed 0..=7.
    Zoom {
        /// Direction, or stop.
        tele: Option<bool>,
        /// Speed.
        speed: u8,
    },
    /// Go to a stored preset (0..=127).
    RecallPreset(u8),
    /// Store the current position as a preset.
    StorePreset(u8),
    /// Back to the home position.
    Home,
}

/// A command out of range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct OutOfRange(&'static str);

impl Command {
    /// The VISCA message (address 1), checked.
    pub fn encode(&self) -> Result<Vec<u8>, OutOfRange> {
        Ok(match *self {
            Command::PanTilt {
                pan,
                tilt,
                pan_speed,
                tilt_speed,
            } => {
                if !(1..=0x18).contains(&pan_speed) || !(1..=0x17).contains(&tilt_speed) {
                    return Err(OutOfRange("pan speed 1-24, tilt speed 1-23"));
                }
                let code = |d: Drive, neg: u8, pos: u8| match d {
                    Drive::Negative => neg,
                    Drive::Positive => pos,
                    Drive::Stop => 3,
                };
                vec![
                    0x81,
                    0x01,
                    0x06,
                    0x01,
                    pan_speed,
                    tilt_speed,
                    code(pan, 1, 2),
                    code(tilt, 1, 2),
                    0xFF,
                ]
            }
            Command::Zoom { tele, speed } => {
                if speed > 7 {
                    return Err(OutOfRange("zoom speed 0-7"));
                }
                let p = match tele {
                    Some(true) => 0x20 | speed,
                    Some(false) => 0x30 | speed,
                    None => 0x00,
                };
                vec![0x81, 0x01, 0x04, 0x07, p, 0xFF]
            }
            Command::RecallPreset(n) | Command::StorePreset(n) => {
                if n > 127 {
                    return Err(OutOfRange("presets 0-127"));
                }
                let op = if matches!(self, Command::RecallPreset(_)) {
                    0x02
                } else {
                    0x01
                };
                vec![0x81, 0x01, 0x04, 0x3F, op, n, 0xFF]
            }
            Command::Home => vec![0x81, 0x01, 0x06, 0x04, 0xFF],
        })
    }

    /// The command a VISCA message carries, if it is one of these.
    pub fn decode(m: &[u8]) -> Option<Self> {
        let drive = |b: u8, neg: u8, pos: u8| match b {
            b if b == neg => Some(Drive::Negative),
            b if b == pos => Some(Drive::Positive),
            3 => Some(Drive::Stop),
            _ => None,
        };
        match m {
            [0x81, 0x01, 0x06, 0x01, ps, ts, p, t, 0xFF] => Some(Command::PanTilt {
                pan: drive(*p, 1, 2)?,
                tilt: drive(*t, 1, 2)?,
                pan_speed: *ps,
                tilt_speed: *ts,
            }),
            [0x81, 0x01, 0x04, 0x07, p, 0xFF] => Some(Command::Zoom {
                tele: match p >> 4 {
                    0 => None,
                    2 => Some(true),
                    3 => Some(false),
                    _ => return None,
                },
                speed: p & 0x0F,
            }),
            [0x81, 0x01, 0x04, 0x3F, 0x02, n, 0xFF] => Some(Command::RecallPreset(*n)),
            [0x81, 0x01, 0x04, 0x3F, 0x01, n, 0xFF] => Some(Command::StorePreset(*n)),
            [0x81, 0x01, 0x06, 0x04, 0xFF] => Some(Command::Home),
            _ => None,
        }
    }
}

/// A VISCA-over-IP datagram: payload type, sequence number, payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Payload type (command, reply, control...).
    pub kind: u16,
    /// Sequence number.
    pub seq: u32,
    /// The VISCA message.
    pub payload: Vec<u8>,
}

impl Packet {
    /// The datagram's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.payload.len());
        out.extend_from_slice(&self.kind.to_be_bytes());
        out.extend_from_slice(&(self.payload.len() as u16).to_be_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.payload);
        out
    }

    /// Parses a datagram; `None` for anything malformed.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < 8 {
            return None;
        }
        let kind = u16::from_be_bytes([bytes[0], bytes[1]]);
        let len = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
        let seq = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        let payload = &bytes[8..];
        if len != payload.len() || len == 0 || len > MAX_PAYLOAD {
            return None;
        }
        Some(Self {
            kind,
            seq,
            payload: payload.to_vec(),
        })
    }
}

/// A reply to a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reply {
    Ack,
    Completion,
    Error(u8),
}

fn reply_of(payload: &[u8]) -> Option<Reply> {
    match payload {
        [0x90, b, 0xFF] if b & 0xF0 == 0x40 => Some(Reply::Ack),
        [0x90, b, 0xFF] if b & 0xF0 == 0x50 => Some(Reply::Completion),
        [0x90, b, code, 0xFF] if b & 0xF0 == 0x60 => Some(Reply::Error(*code)),
        _ => None,
    }
}

/// Why a command did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CameraError {
    /// The command is out of range.
    #[error("invalid camera command: {0}")]
    Invalid(#[from] OutOfRange),
    /// No (valid) reply in time.
    #[error("the camera at {addr} did not answer within {timeout:?}{detail}")]
    Timeout {
        /// The camera.
        addr: SocketAddr,
        /// The wait.
        timeout: Duration,
        /// What did arrive, if anything.
        detail: String,
    },
    /// The camera refused the command.
    #[error("the camera refused the command: {0}")]
    Refused(&'static str),
    /// The network failed.
    #[error("camera control network error: {0}")]
    Io(String),
}

fn refusal(code: u8) -> &'static str {
    match code {
        0x02 => "syntax error",
        0x03 => "command buffer full",
        0x04 => "command cancelled",
        0x05 => "no socket",
        0x41 => "command not executable now",
        _ => "unknown error",
    }
}

/// A camera's control port. One command at a time.
pub struct Camera {
    socket: UdpSocket,
    addr: SocketAddr,
    timeout: Duration,
    seq: u32,
}

impl Camera {
    /// A client for the camera at `addr`, waiting at most `timeout` for each reply.
    pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<Self, CameraError> {
        let bind: SocketAddr = if addr.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        }
        .parse()
        .map_err(|_| CameraError::Io("bind address".into()))?;
        let socket = UdpSocket::bind(bind)
            .await
            .map_err(|e| CameraError::Io(e.to_string()))?;
        Ok(Self {
            socket,
            addr,
            timeout,
            seq: 0,
        })
    }

    /// Resets the camera's sequence numbering (as cameras expect after the client starts).
    pub async fn reset_sequence(&mut self) -> Result<(), CameraError> {
        self.seq = 0;
        let packet = Packet {
            kind: CONTROL,
            seq: 0,
            payload: vec![0x01],
        };
        self.send(&packet).await?;
        self.wait(|p| p.kind == CONTROL_REPLY).await.map(|_| ())
    }

    /// Sends a command and waits for its acknowledgement and completion.
    pub async fn execute(&mut self, command: Command) -> Result<(), CameraError> {
        let payload = command.encode()?;
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        self.send(&Packet {
            kind: COMMAND,
            seq,
            payload,
        })
        .await?;
        loop {
            let packet = self
                .wait(|p| p.kind == REPLY && p.seq == seq && reply_of(&p.payload).is_some())
                .await?;
            match reply_of(&packet.payload) {
                Some(Reply::Ack) => continue,
                Some(Reply::Completion) => return Ok(()),
                Some(Reply::Error(code)) => return Err(CameraError::Refused(refusal(code))),
                None => continue,
            }
        }
    }

    async fn send(&self, packet: &Packet) -> Result<(), CameraError> {
        self.socket
            .send_to(&packet.to_bytes(), self.addr)
            .await
            .map(|_| ())
            .map_err(|e| CameraError::Io(e.to_string()))
    }

    /// The next datagram from the camera that `wanted` accepts, within the timeout; anything
    /// else (malformed, stale, from elsewhere) is skipped and reported if time runs out.
    async fn wait(&self, wanted: impl Fn(&Packet) -> bool) -> Result<Packet, CameraError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut skipped = 0;
        let mut buf = [0u8; 64];
        loop {
            let received = tokio::time::timeout_at(deadline, self.socket.recv_from(&mut buf)).await;
            let (n, from) = match received {
                Err(_) => {
                    let detail = if skipped > 0 {
                        format!(" ({skipped} malformed or unexpected replies ignored)")
                    } else {
                        String::new()
                    };
                    return Err(CameraError::Timeout {
                        addr: self.addr,
                        timeout: self.timeout,
                        detail,
                    });
                }
                Ok(Err(e)) => {
                    // ICMP port unreachable surfaces here on Linux: the camera is not there.
                    tracing::debug!(error = %e, "camera control receive failed");
                    skipped += 1;
                    tokio::time::sleep_until(
                        deadline.min(tokio::time::Instant::now() + Duration::from_millis(50)),
                    )
                    .await;
                    continue;
                }
                Ok(Ok(r)) => r,
            };
            match Packet::parse(&buf[..n]) {
                Some(p) if from == self.addr && wanted(&p) => return Ok(p),
                _ => skipped += 1,
            }
        }
    }
}

/// How the simulated camera answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimMode {
    /// Acknowledgement, then completion.
    Normal,
    /// Nothing at all.
    Silent,
    /// Bytes that are no VISCA reply.
    Garbage,
    /// An error reply with this code.
    Error(u8),
}

/// A simulated VISCA-over-IP camera for tests: answers as told, records each command.
pub struct SimCamera {
    /// Where it listens.
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Command>>>,
    mode: Arc<Mutex<SimMode>>,
    task: tokio::task::JoinHandle<()>,
}

impl SimCamera {
    /// Starts one on a free loopback port.
    pub async fn start() -> std::io::Result<Self> {
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        let addr = socket.local_addr()?;
        let received = Arc::new(Mutex::new(Vec::new()));
        let mode = Arc::new(Mutex::new(SimMode::Normal));
        let (log, how) = (received.clone(), mode.clone());
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 256];
            while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                let Some(p) = Packet::parse(&buf[..n]) else {
                    continue;
                };
                let mode = *how.lock().unwrap_or_else(|e| e.into_inner());
                let reply = |payload: Vec<u8>| Packet {
                    kind: if p.kind == CONTROL {
                        CONTROL_REPLY
                    } else {
                        REPLY
                    },
                    seq: p.seq,
                    payload,
                };
                if p.kind == CONTROL {
                    let _ = socket.send_to(&reply(vec![0x01]).to_bytes(), from).await;
                    continue;
                }
                if let Some(c) = Command::decode(&p.payload) {
                    log.lock().unwrap_or_else(|e| e.into_inner()).push(c);
                }
                let answers: Vec<Vec<u8>> = match mode {
                    SimMode::Normal => vec![
                        reply(vec![0x90, 0x41, 0xFF]).to_bytes(),
                        reply(vec![0x90, 0x51, 0xFF]).to_bytes(),
                    ],
                    SimMode::Silent => vec![],
                    SimMode::Garbage => vec![vec![0x01, 0x11, 0x00], b"hello camera".to_vec()],
                    SimMode::Error(code) => vec![reply(vec![0x90, 0x61, code, 0xFF]).to_bytes()],
                };
                for a in answers {
                    let _ = socket.send_to(&a, from).await;
                }
            }
        });
        Ok(Self {
            addr,
            received,
            mode,
            task,
        })
    }

    /// Changes how it answers.
    pub fn set_mode(&self, mode: SimMode) {
        *self.mode.lock().unwrap_or_else(|e| e.into_inner()) = mode;
    }

    /// The commands received so far.
    pub fn received(&self) -> Vec<Command> {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for SimCamera {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_encode_to_the_visca_bytes_and_back() {
        assert_eq!(
            Command::RecallPreset(3).encode(),
            Ok(vec![0x81, 0x01, 0x04, 0x3F, 0x02, 0x03, 0xFF])
        );
        assert_eq!(
            Command::StorePreset(10).encode(),
            Ok(vec![0x81, 0x01, 0x04, 0x3F, 0x01, 0x0A, 0xFF])
        );
        assert_eq!(
            Command::Zoom {
                tele: Some(true),
                speed: 4
            }
            .encode(),
            Ok(vec![0x81, 0x01, 0x04, 0x07, 0x24, 0xFF])
        );
        let left_up = Command::PanTilt {
            pan: Drive::Negative,
            tilt: Drive::Negative,
            pan_speed: 8,
            tilt_speed: 8,
        };
        assert_eq!(
            left_up.encode(),
            Ok(vec![0x81, 0x01, 0x06, 0x01, 8, 8, 1, 1, 0xFF])
        );
        for c in [
            left_up,
            Command::RecallPreset(3),
            Command::StorePreset(127),
            Command::Home,
            Command::Zoom {
                tele: None,
                speed: 0,
            },
        ] {
            assert_eq!(Command::decode(&c.encode().expect("valid")), Some(c));
        }
        assert!(Command::RecallPreset(200).encode().is_err());
        assert!(
            Command::Zoom {
                tele: Some(false),
                speed: 9
            }
            .encode()
            .is_err()
        );
    }

    #[test]
    fn packets_frame_and_malformed_ones_are_refused() {
        let p = Packet {
            kind: COMMAND,
            seq: 0x01020304,
            payload: vec![0x81, 0x01, 0x06, 0x04, 0xFF],
        };
        let bytes = p.to_bytes();
        assert_eq!(&bytes[..8], &[0x01, 0x00, 0x00, 0x05, 1, 2, 3, 4]);
        assert_eq!(Packet::parse(&bytes), Some(p));
        assert_eq!(Packet::parse(&bytes[..7]), None, "short header");
        assert_eq!(Packet::parse(&bytes[..10]), None, "length disagrees");
        let mut long = bytes.clone();
        long[3] = 40;
        long.extend_from_slice(&[0; 35]);
        assert_eq!(Packet::parse(&long), None, "longer than any VISCA message");
    }

    #[tokio::test]
    async fn a_preset_recall_reaches_the_camera_and_completes() {
        let sim = SimCamera::start().await.expect("sim");
        let mut cam = Camera::connect(sim.addr, Duration::from_millis(500))
            .await
            .expect("client");
        cam.reset_sequence().await.expect("reset");
        cam.execute(Command::RecallPreset(2)).await.expect("done");
        cam.execute(Command::Home).await.expect("done");
        assert_eq!(
            sim.received(),
            vec![Command::RecallPreset(2), Command::Home]
        );
    }

    #[tokio::test]
    async fn silence_garbage_and_refusals_end_in_clear_errors_not_hangs() {
        let sim = SimCamera::start().await.expect("sim");
        let timeout = Duration::from_millis(200);
        let mut cam = Camera::connect(sim.addr, timeout).await.expect("client");

        sim.set_mode(SimMode::Silent);
        let e = cam.execute(Command::Home).await.expect_err("silent");
        assert!(matches!(e, CameraError::Timeout { .. }), "{e}");

        sim.set_mode(SimMode::Garbage);
        let e = cam.execute(Command::Home).await.expect_err("garbage");
        assert!(e.to_string().contains("2 malformed"), "{e}");

        sim.set_mode(SimMode::Error(0x41));
        let e = cam
            .execute(Command::RecallPreset(1))
            .await
            .expect_err("refused");
        assert_eq!(e, CameraError::Refused("command not executable now"));

        // Nobody listening at all.
        let nobody = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = nobody.local_addr().expect("addr");
        drop(nobody);
        let mut cam = Camera::connect(addr, timeout).await.expect("client");
        let started = std::time::Instant::now();
        let e = cam.execute(Command::Home).await.expect_err("nobody");
        assert!(matches!(e, CameraError::Timeout { .. }), "{e}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
