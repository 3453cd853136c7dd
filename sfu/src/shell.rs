//! The tokio shell around [`SfuCore`]: the UDP socket, the clock and the command channel.
//!
//! One task owns the core; signaling talks to it through [`SfuHandle`] (commands with replies)
//! and hears from it on an event channel. Nothing here decides anything.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::core::{CoreOutput, MediaPolicy, SfuConfig, SfuCore, SfuError, SfuEvent};
use crate::stats::SfuStats;
use crate::{EndpointId, MeetingId};

/// Largest datagram read; WebRTC keeps packets under ~1,200 bytes, so anything longer is junk.
const MAX_DATAGRAM: usize = 2048;
/// Datagrams read in one turn before outputs are flushed (keeps latency bounded under load).
const READ_BATCH: usize = 64;
/// How many commands may queue before callers wait.
const COMMAND_QUEUE: usize = 256;
/// Socket buffers: a burst of a few hundred packets (keyframes of many publishers at once)
/// must wait in the kernel rather than be dropped while the media task is busy. Linux caps
/// this at `net.core.rmem_max` / `wmem_max` (see deploy notes).
const SOCKET_BUFFER: usize = 4 * 1024 * 1024;

enum Command {
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
    SetView {
        endpoint: EndpointId,
        view: Vec<(EndpointId, u32)>,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    SetMediaPolicy {
        meeting: MeetingId,
        policy: MediaPolicy,
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
        let (reply, rx) = oneshot::channel();
        self.send(Command::Join {
            endpoint,
            meeting,
            offer,
            reply,
        })
        .await?;
        rx.await.map_err(|_| SfuError::Unavailable)?
    }

    /// See [`SfuCore::answer`].
    pub async fn answer(&self, endpoint: EndpointId, sdp: String) -> Result<(), SfuError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Answer {
            endpoint,
            sdp,
            reply,
        })
        .await?;
        rx.await.map_err(|_| SfuError::Unavailable)?
    }

    /// See [`SfuCore::candidate`].
    pub async fn candidate(&self, endpoint: EndpointId, candidate: String) -> Result<(), SfuError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Candidate {
            endpoint,
            candidate,
            reply,
        })
        .await?;
        rx.await.map_err(|_| SfuError::Unavailable)?
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
        let (reply, rx) = oneshot::channel();
        self.send(Command::SetView {
            endpoint,
            view,
            reply,
        })
        .await?;
        rx.await.map_err(|_| SfuError::Unavailable)?
    }

    /// See [`SfuCore::set_media_policy`].
    pub async fn set_media_policy(
        &self,
        meeting: MeetingId,
        policy: MediaPolicy,
    ) -> Result<(), SfuError> {
        self.send(Command::SetMediaPolicy { meeting, policy }).await
    }

    /// The SFU's counters as last published by its task.
    pub fn stats(&self) -> &SfuStats {
        &self.stats
    }

    /// The address of the SFU's UDP socket.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    async fn send(&self, command: Command) -> Result<(), SfuError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| SfuError::Unavailable)
    }
}

/// Binds the UDP socket and starts the SFU task. Events for signaling arrive on the returned
/// receiver. If `config.local_addr` has port 0, the chosen port replaces it (also in the
/// advertised candidates that used port 0).
pub async fn spawn(
    mut config: SfuConfig,
) -> io::Result<(SfuHandle, mpsc::UnboundedReceiver<SfuEvent>)> {
    let socket = bind_udp(config.local_addr)?;
    let local_addr = socket.local_addr()?;
    config.local_addr = local_addr;
    for c in &mut config.candidate_addrs {
        if c.port() == 0 {
            c.set_port(local_addr.port());
        }
    }
    let (commands, command_rx) = mpsc::channel(COMMAND_QUEUE);
    let (event_tx, events) = mpsc::unbounded_channel();
    let stats = Arc::new(SfuStats::default());
    let core = SfuCore::new(config);
    tokio::spawn(run(
        core,
        socket,
        local_addr,
        command_rx,
        event_tx,
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

async fn run(
    mut core: SfuCore,
    socket: UdpSocket,
    local_addr: SocketAddr,
    mut commands: mpsc::Receiver<Command>,
    events: mpsc::UnboundedSender<SfuEvent>,
    stats: Arc<SfuStats>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        flush(&mut core, &socket, &events).await;
        stats.store(&core.counters());
        let deadline = core
            .poll_timeout()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
        tokio::select! {
            received = socket.recv_from(&mut buf) => {
                match received {
                    Ok((n, source)) => core.handle_datagram(Instant::now(), source, local_addr, &buf[..n]),
                    Err(e) => tracing::debug!(error = %e, "UDP receive failed"),
                }
                // Take what else is already queued before flushing.
                for _ in 1..READ_BATCH {
                    match socket.try_recv_from(&mut buf) {
                        Ok((n, source)) => core.handle_datagram(Instant::now(), source, local_addr, &buf[..n]),
                        Err(_) => break,
                    }
                }
            }
            command = commands.recv() => {
                let Some(command) = command else {
                    tracing::info!("SFU stopping: its control channel closed");
                    return;
                };
                handle_command(&mut core, command);
            }
            _ = tokio::time::sleep_until(deadline.into()) => {
                core.handle_timeout(Instant::now());
            }
        }
    }
}

fn handle_command(core: &mut SfuCore, command: Command) {
    let now = Instant::now();
    // A caller that stopped waiting for its reply is not an error of the SFU's.
    match command {
        Command::Join {
            endpoint,
            meeting,
            offer,
            reply,
        } => {
            let _ = reply.send(core.join(now, endpoint, meeting, &offer));
        }
        Command::Answer {
            endpoint,
            sdp,
            reply,
        } => {
            let _ = reply.send(core.answer(now, endpoint, &sdp));
        }
        Command::Candidate {
            endpoint,
            candidate,
            reply,
        } => {
            let _ = reply.send(core.candidate(endpoint, &candidate));
        }
        Command::Leave { endpoint } => core.leave(now, endpoint),
        Command::SetView {
            endpoint,
            view,
            reply,
        } => {
            let _ = reply.send(core.set_view(now, endpoint, &view));
        }
        Command::SetMediaPolicy { meeting, policy } => core.set_media_policy(meeting, policy),
    }
}

async fn flush(core: &mut SfuCore, socket: &UdpSocket, events: &mpsc::UnboundedSender<SfuEvent>) {
    while let Some(output) = core.poll_output() {
        match output {
            CoreOutput::Transmit {
                destination,
                contents,
            } => {
                if let Err(e) = socket.send_to(&contents, destination).await {
                    tracing::debug!(error = %e, "UDP send failed");
                }
            }
            CoreOutput::Event(event) => {
                // The receiver lives as long as signaling; if it is gone we are shutting down.
                let _ = events.send(event);
            }
        }
    }
}
