//! The front task: reads the UDP socket and routes datagrams and commands to the shard that
//! owns each room.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::Command;
use super::shard::ShardMsg;
use super::udp::{MediaSocket, RecvBuffers};
use crate::core::SfuError;
use crate::stats::SfuStats;
use crate::stun;
use crate::{EndpointId, MeetingId};

/// Largest datagram routed; WebRTC keeps packets under ~1,200 bytes, so anything longer is
/// junk.
const MAX_DATAGRAM: usize = 2048;

/// What shards tell the front about the endpoints they own.
#[derive(Debug)]
pub(super) enum FrontMsg {
    /// An endpoint joined: route STUN naming `ufrag` to its room.
    Joined {
        endpoint: EndpointId,
        meeting: MeetingId,
        ufrag: String,
    },
    /// An endpoint is gone (left, lost, its room failed, or its join failed).
    Removed { endpoint: EndpointId },
}

/// Where an endpoint's datagrams go.
#[derive(Debug, Clone, Copy)]
struct Route {
    meeting: MeetingId,
    endpoint: EndpointId,
}

#[derive(Default)]
struct Routes {
    endpoint_meeting: HashMap<EndpointId, MeetingId>,
    by_ufrag: HashMap<String, Route>,
    by_addr: HashMap<SocketAddr, Route>,
}

impl Routes {
    fn forget(&mut self, endpoint: EndpointId) {
        self.endpoint_meeting.remove(&endpoint);
        self.by_ufrag.retain(|_, r| r.endpoint != endpoint);
        self.by_addr.retain(|_, r| r.endpoint != endpoint);
    }
}

fn shard_of(meeting: MeetingId, shards: usize) -> usize {
    (meeting.0.unsigned_abs() % shards as u64) as usize
}

pub(super) async fn run(
    socket: Arc<MediaSocket>,
    mut commands: mpsc::Receiver<Command>,
    mut from_shards: mpsc::UnboundedReceiver<FrontMsg>,
    shards: Vec<mpsc::UnboundedSender<ShardMsg>>,
    stats: Arc<SfuStats>,
) {
    let mut routes = Routes::default();
    let mut buffers = RecvBuffers::new();
    let mut incoming = Vec::new();
    let send = |meeting: MeetingId, msg: ShardMsg| {
        // A shard only ends when the front does.
        let _ = shards[shard_of(meeting, shards.len())].send(msg);
    };
    loop {
        tokio::select! {
            received = socket.recv_batch(&mut buffers, &mut incoming) => {
                if let Err(e) = received {
                    tracing::debug!(error = %e, "UDP receive failed");
                }
                for (source, datagram) in incoming.drain(..) {
                    route(&mut routes, &stats, source, datagram, &send);
                }
            }
            msg = from_shards.recv() => match msg {
                Some(FrontMsg::Joined { endpoint, meeting, ufrag }) => {
                    routes.by_ufrag.insert(ufrag, Route { meeting, endpoint });
                }
                Some(FrontMsg::Removed { endpoint }) => routes.forget(endpoint),
                None => return,
            },
            command = commands.recv() => {
                let Some(command) = command else {
                    tracing::info!("SFU stopping: its control channel closed");
                    return;
                };
                dispatch(&mut routes, command, &send);
            }
        }
    }
}

fn route(
    routes: &mut Routes,
    stats: &SfuStats,
    source: SocketAddr,
    datagram: Vec<u8>,
    send: &impl Fn(MeetingId, ShardMsg),
) {
    if datagram.len() > MAX_DATAGRAM {
        stats.count_front_drop();
        return;
    }
    let route = match routes.by_addr.get(&source) {
        Some(r) => *r,
        None => {
            // A new address: only a STUN binding request naming an endpoint's ICE user
            // fragment introduces it. Its room's ICE agent checks the request itself.
            let Some(r) = stun::local_ufrag(&datagram).and_then(|u| routes.by_ufrag.get(u)) else {
                stats.count_front_drop();
                return;
            };
            let r = *r;
            routes.by_addr.insert(source, r);
            r
        }
    };
    send(
        route.meeting,
        ShardMsg::Datagram {
            meeting: route.meeting,
            source,
            bytes: datagram,
        },
    );
}

fn dispatch(routes: &mut Routes, command: Command, send: &impl Fn(MeetingId, ShardMsg)) {
    let endpoint = match &command {
        Command::Join {
            endpoint, meeting, ..
        } => {
            routes.endpoint_meeting.insert(*endpoint, *meeting);
            send(*meeting, ShardMsg::Command(command));
            return;
        }
        Command::SetMediaPolicy { meeting, .. }
        | Command::MediaPolicy { meeting, .. }
        | Command::Quality { meeting, .. } => {
            send(*meeting, ShardMsg::Command(command));
            return;
        }
        #[cfg(test)]
        Command::Explode { meeting } => {
            send(*meeting, ShardMsg::Command(command));
            return;
        }
        Command::Answer { endpoint, .. }
        | Command::Candidate { endpoint, .. }
        | Command::SetView { endpoint, .. }
        | Command::Leave { endpoint } => *endpoint,
    };
    match routes.endpoint_meeting.get(&endpoint) {
        Some(meeting) => send(*meeting, ShardMsg::Command(command)),
        None => match command {
            Command::Answer { reply, .. }
            | Command::Candidate { reply, .. }
            | Command::SetView { reply, .. } => {
                let _ = reply.send(Err(SfuError::UnknownEndpoint));
            }
            // Leaving is idempotent.
            _ => {}
        },
    }
}
