//! The tokio shell around the room cores: the UDP socket, the clocks and the command channel.
//!
//! Each meeting has its own [`crate::SfuCore`] (a room), owned by one of several shard tasks that the
//! runtime spreads over its worker threads. The front task reads the one UDP socket and routes
//! each datagram to the shard of its room; commands from signaling ([`SfuHandle`]) take the
//! same way. A panic inside a room closes that room (its endpoints are reported gone), never
//! the process. Nothing here decides anything about media.

mod front;
mod shard;
mod timer;
mod udp;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::core::{MediaPolicy, SfuConfig, SfuError, SfuEvent};
use crate::quality::EndpointQuality;
use crate::stats::SfuStats;
use crate::{EndpointId, MeetingId};

/// How many commands may queue before callers wait.
const COMMAND_QUEUE: usize = 256;
/// Socket buffers: a burst of a few hundred packets (keyframes of many publishers at once)
/// must wait in the kernel rather than be dropped while the media task is busy. Linux caps
/// this at `net.core.rmem_max` / `wmem_max` (see deploy notes).
const SOCKET_BUFFER: usize = 4 * 1024 * 1024;

pub(crate) enum Command {
    Join {
        endpoint: EndpointId,
        meeting: MeetingId,
        offer: String,
        reply: oneshot::Sender<Result<String, SfuError>>,
    },
    Answer {
        endpoint: EndpointId,
        sdp: String,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    Candidate {
        endpoint: EndpointId,
        candidate: String,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    Leave {
        endpoint: EndpointId,
    },
    RestartIce {
        endpoint: EndpointId,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    SetView {
        endpoint: EndpointId,
        view: Vec<(EndpointId, u32)>,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    SetMediaPolicy {
        meeting: MeetingId,
        policy: MediaPolicy,
    },
    MediaPolicy {
        meeting: MeetingId,
        reply: oneshot::Sender<Option<MediaPolicy>>,
    },
    Quality {
        meeting: MeetingId,
        reply: oneshot::Sender<Vec<EndpointQuality>>,
    },
    Impair {
        endpoint: EndpointId,
        percent: u8,
    },
    /// Makes a room panic, to test that only that room closes.
    #[cfg(test)]
    Explode {
        meeting: MeetingId,
    },
}

/// The control side of a running SFU. Cheap to clone.
#[derive(Clone)]
pub struct SfuHandle {
    commands: mpsc::Sender<Command>,
    stats: Arc<SfuStats>,
    local_addr: SocketAddr,
}

impl SfuHandle {
    /// See [`SfuCore::join`].
    pub async fn join(
        &self,
        endpoint: EndpointId,
        meeting: MeetingId,
        offer: String,
    ) -> Result<String, SfuError> {
        self.request(|reply| Command::Join {
            endpoint,
            meeting,
            offer,
            reply,
        })
        .await
    }

    /// See [`SfuCore::answer`].
    pub async fn answer(&self, endpoint: EndpointId, sdp: String) -> Result<(), SfuError> {
        self.request(|reply| Command::Answer {
            endpoint,
            sdp,
            reply,
        })
        .await
    }

    /// See [`SfuCore::restart_ice`].
    pub async fn restart_ice(&self, endpoint: EndpointId) -> Result<(), SfuError> {
        self.request(|reply| Command::RestartIce { endpoint, reply })
            .await
    }

    /// See [`SfuCore::candidate`].
    pub async fn candidate(&self, endpoint: EndpointId, candidate: String) -> Result<(), SfuError> {
        self.request(|reply| Command::Candidate {
            endpoint,
            candidate,
            reply,
        })
        .await
    }

    /// See [`SfuCore::leave`].
    pub async fn leave(&self, endpoint: EndpointId) {
        // If the media plane is gone, the endpoint is gone with it.
        let _ = self.send(Command::Leave { endpoint }).await;
    }

    /// See [`SfuCore::set_view`].
    pub async fn set_view(
        &self,
        endpoint: EndpointId,
        view: Vec<(EndpointId, u32)>,
    ) -> Result<(), SfuError> {
        self.request(|reply| Command::SetView {
            endpoint,
            view,
            reply,
        })
        .await
    }

    /// The policy a meeting's media is forwarded by now (`None`: no meeting, or the default).
    pub async fn media_policy(&self, meeting: MeetingId) -> Option<MediaPolicy> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::MediaPolicy { meeting, reply })
            .await
            .ok()?;
        rx.await.ok().flatten()
    }

    /// What is measured of each endpoint of a meeting (see [`SfuCore::quality`]); empty when
    /// the meeting has no media.
    pub async fn quality(&self, meeting: MeetingId) -> Vec<EndpointQuality> {
        let (reply, rx) = oneshot::channel();
        if self
            .send(Command::Quality { meeting, reply })
            .await
            .is_err()
        {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// Test hook: drops `percent` of the RTP arriving from `endpoint` as if its link lost it
    /// (0 stops). For end-to-end tests of monitoring and alerts; the bridge offers it only
    /// when started with `--test-hooks`.
    pub async fn impair(&self, endpoint: EndpointId, percent: u8) {
        let _ = self.send(Command::Impair { endpoint, percent }).await;
    }

    /// See [`SfuCore::set_media_policy`].
    pub async fn set_media_policy(
        &self,
        meeting: MeetingId,
        policy: MediaPolicy,
    ) -> Result<(), SfuError> {
        self.send(Command::SetMediaPolicy { meeting, policy }).await
    }

    /// Makes a room panic (tests only).
    #[cfg(test)]
    pub(crate) async fn explode(&self, meeting: MeetingId) {
        let _ = self.send(Command::Explode { meeting }).await;
    }

    /// The SFU's counters as last published by its task.
    pub fn stats(&self) -> &SfuStats {
        &self.stats
    }

    /// The address of the SFU's UDP socket.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Sends a command that carries a reply channel, and waits for the reply.
    async fn request<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T, SfuError>>) -> Command,
    ) -> Result<T, SfuError> {
        let (reply, rx) = oneshot::channel();
        self.send(command(reply)).await?;
        rx.await.map_err(|_| SfuError::Unavailable)?
    }

    async fn send(&self, command: Command) -> Result<(), SfuError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| SfuError::Unavailable)
    }
}

/// Binds the UDP socket and starts the front and shard tasks. Events for signaling arrive on the
/// returned receiver. If `config.local_addr` has port 0, the chosen port replaces it (also in
/// the advertised candidates that used port 0).
pub async fn spawn(
    mut config: SfuConfig,
) -> io::Result<(SfuHandle, mpsc::UnboundedReceiver<SfuEvent>)> {
    let socket = Arc::new(udp::MediaSocket::new(bind_udp(config.local_addr)?)?);
    let local_addr = socket.local_addr()?;
    config.local_addr = local_addr;
    for c in &mut config.candidate_addrs {
        if c.port() == 0 {
            c.set_port(local_addr.port());
        }
    }
    let shards = std::thread::available_parallelism()
        .map_or(2, usize::from)
        .clamp(1, 64);
    let (commands, command_rx) = mpsc::channel(COMMAND_QUEUE);
    let (event_tx, events) = mpsc::unbounded_channel();
    let stats = Arc::new(SfuStats::new(shards));
    let (front_tx, front_rx) = mpsc::unbounded_channel();
    let shard_txs = (0..shards)
        .map(|index| {
            shard::Shard::spawn(
                index,
                config.clone(),
                socket.clone(),
                event_tx.clone(),
                front_tx.clone(),
                stats.clone(),
            )
        })
        .collect();
    tokio::spawn(front::run(
        socket,
        command_rx,
        front_rx,
        shard_txs,
        stats.clone(),
    ));
    Ok((
        SfuHandle {
            commands,
            stats,
            local_addr,
        },
        events,
    ))
}

/// The SFU's one UDP socket, with large buffers.
fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: the kernel may grant less than asked.
    if let Err(e) = socket.set_recv_buffer_size(SOCKET_BUFFER) {
        tracing::warn!(error = %e, "could not enlarge the UDP receive buffer");
    }
    if let Err(e) = socket.set_send_buffer_size(SOCKET_BUFFER) {
        tracing::warn!(error = %e, "could not enlarge the UDP send buffer");
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::time::Instant;

    use str0m::Rtc;
    use str0m::media::{Direction, MediaKind};

    use super::*;
    use crate::GoneReason;

    fn an_offer() -> String {
        let mut rtc = Rtc::builder().build(Instant::now());
        let mut sdp = rtc.sdp_api();
        sdp.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let (offer, _) = sdp.apply().expect("an offer");
        offer.to_sdp_string()
    }

    #[tokio::test]
    async fn a_failing_room_closes_alone_and_the_others_go_on() {
        let config = SfuConfig::new((Ipv4Addr::LOCALHOST, 0).into());
        let (sfu, mut events) = spawn(config).await.expect("the SFU starts");
        let (a, b) = (EndpointId(1), EndpointId(2));
        sfu.join(a, MeetingId(1), an_offer())
            .await
            .expect("joins meeting 1");
        sfu.join(b, MeetingId(2), an_offer())
            .await
            .expect("joins meeting 2");

        sfu.explode(MeetingId(1)).await;
        let event = tokio::time::timeout(std::time::Duration::from_secs(5), events.recv())
            .await
            .expect("an event in time")
            .expect("the SFU is still running");
        assert_eq!(
            event,
            SfuEvent::Gone {
                endpoint: a,
                reason: GoneReason::RoomFailed
            }
        );
        // The other meeting is untouched; the failed one can start afresh.
        sfu.set_view(b, vec![])
            .await
            .expect("meeting 2 still serves its endpoint");
        assert_eq!(
            sfu.set_view(a, vec![]).await,
            Err(SfuError::UnknownEndpoint)
        );
        sfu.join(EndpointId(3), MeetingId(1), an_offer())
            .await
            .expect("meeting 1 opens again");
        // The counters follow: the two live endpoints, the failed room's one gone.
        let mut endpoints = 0;
        for _ in 0..50 {
            endpoints = sfu.stats().load().endpoints;
            if endpoints == 2 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(endpoints, 2);
    }
}
