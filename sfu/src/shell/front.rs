//! The front task: reads the UDP socket and routes datagrams and commands to the shard that
//! owns each room.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::Command;
use super::shard::{ShardDatagram, ShardInbox};
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
    /// Test hook: endpoints whose incoming RTP is partly dropped (see [`Impairment`]).
    impaired: HashMap<EndpointId, Impairment>,
}

impl Routes {
    /// `endpoint`'s ICE user fragment is `ufrag` now (it joined, or an ICE restart renewed
    /// it): the old one no longer admits a new address, and a client restarting again and
    /// again does not grow the map.
    fn joined(&mut self, endpoint: EndpointId, meeting: MeetingId, ufrag: String) {
        self.by_ufrag.retain(|_, r| r.endpoint != endpoint);
        self.by_ufrag.insert(ufrag, Route { meeting, endpoint });
    }

    fn forget(&mut self, endpoint: EndpointId) {
        self.endpoint_meeting.remove(&endpoint);
        self.by_ufrag.retain(|_, r| r.endpoint != endpoint);
        self.by_addr.retain(|_, r| r.endpoint != endpoint);
        self.impaired.remove(&endpoint);
    }
}

/// A test hook: drops a share of an endpoint's incoming RTP as if its link lost it (STUN,
/// DTLS and RTCP pass, so the connection stays up). Deterministic: an error-diffusion counter,
/// not a random draw, so that exactly `percent` of the packets go.
#[derive(Debug, Clone, Copy)]
struct Impairment {
    percent: u8,
    owed: u32,
}

impl Impairment {
    /// Whether this packet is dropped.
    fn drop_next(&mut self) -> bool {
        self.owed += u32::from(self.percent);
        if self.owed >= 100 {
            self.owed -= 100;
            return true;
        }
        false
    }
}

/// Whether a datagram is RTP (not RTCP, STUN or DTLS): version 2, and a payload type outside
/// RTCP's 192–223 (RFC 5761).
fn is_rtp(datagram: &[u8]) -> bool {
    datagram.len() >= 12 && datagram[0] >> 6 == 2 && !(192..=223).contains(&datagram[1])
}

fn shard_of(meeting: MeetingId, shards: usize) -> usize {
    (meeting.0.unsigned_abs() % shards as u64) as usize
}

pub(super) async fn run(
    socket: Arc<MediaSocket>,
    mut commands: mpsc::Receiver<Command>,
    mut from_shards: mpsc::UnboundedReceiver<FrontMsg>,
    shards: Vec<ShardInbox>,
    stats: Arc<SfuStats>,
) {
    let mut routes = Routes::default();
    let mut buffers = RecvBuffers::new();
    let mut incoming = Vec::new();
    let send = |meeting: MeetingId, command: Command| {
        // A shard only ends when the front does.
        let _ = shards[shard_of(meeting, shards.len())]
            .commands
            .send(command);
    };
    let to_shard = |datagram: ShardDatagram| deliver(&shards, &stats, datagram);
    loop {
        tokio::select! {
            received = socket.recv_batch(&mut buffers, &mut incoming) => {
                if let Err(e) = received {
                    tracing::debug!(error = %e, "UDP receive failed");
                }
                for (source, datagram) in incoming.drain(..) {
                    route(&mut routes, &stats, source, datagram, &to_shard);
                }
            }
            msg = from_shards.recv() => match msg {
                Some(FrontMsg::Joined { endpoint, meeting, ufrag }) => {
                    routes.joined(endpoint, meeting, ufrag);
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

/// Queues a datagram for its meeting's shard, or drops it (counted) when that shard is behind.
fn deliver(shards: &[ShardInbox], stats: &SfuStats, datagram: ShardDatagram) {
    let shard = &shards[shard_of(datagram.meeting, shards.len())];
    if let Err(mpsc::error::TrySendError::Full(_)) = shard.datagrams.try_send(datagram) {
        stats.count_overload_drop();
    }
}

fn route(
    routes: &mut Routes,
    stats: &SfuStats,
    source: SocketAddr,
    datagram: Vec<u8>,
    deliver: &impl Fn(ShardDatagram),
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
    if let Some(impairment) = routes.impaired.get_mut(&route.endpoint)
        && is_rtp(&datagram)
        && impairment.drop_next()
    {
        return;
    }
    deliver(ShardDatagram {
        meeting: route.meeting,
        source,
        bytes: datagram,
    });
}

fn dispatch(routes: &mut Routes, command: Command, send: &impl Fn(MeetingId, Command)) {
    let endpoint = match &command {
        Command::Join {
            endpoint, meeting, ..
        } => {
            routes.endpoint_meeting.insert(*endpoint, *meeting);
            send(*meeting, command);
            return;
        }
        Command::SetMediaPolicy { meeting, .. }
        | Command::MediaPolicy { meeting, .. }
        | Command::Quality { meeting, .. } => {
            send(*meeting, command);
            return;
        }
        #[cfg(test)]
        Command::Explode { meeting } => {
            send(*meeting, command);
            return;
        }
        Command::Impair { endpoint, percent } => {
            if *percent == 0 {
                routes.impaired.remove(endpoint);
            } else if routes.endpoint_meeting.contains_key(endpoint) {
                let percent = (*percent).min(100);
                routes
                    .impaired
                    .insert(*endpoint, Impairment { percent, owed: 0 });
            }
            return;
        }
        Command::Answer { endpoint, .. }
        | Command::Candidate { endpoint, .. }
        | Command::SetView { endpoint, .. }
        | Command::RestartIce { endpoint, .. }
        | Command::Leave { endpoint } => *endpoint,
    };
    match routes.endpoint_meeting.get(&endpoint) {
        Some(meeting) => send(*meeting, command),
        None => match command {
            Command::Answer { reply, .. }
            | Command::Candidate { reply, .. }
            | Command::SetView { reply, .. }
            | Command::RestartIce { reply, .. } => {
                let _ = reply.send(Err(SfuError::UnknownEndpoint));
            }
            // Leaving is idempotent.
            _ => {}
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_is_known_by_its_latest_user_fragment_only() {
        let mut routes = Routes::default();
        let (a, b) = (EndpointId(1), EndpointId(2));
        routes.joined(a, MeetingId(7), "old".into());
        routes.joined(b, MeetingId(7), "other".into());
        for i in 0..100 {
            routes.joined(a, MeetingId(7), format!("restart{i}"));
        }
        assert_eq!(routes.by_ufrag.len(), 2);
        assert!(routes.by_ufrag.contains_key("restart99"));
        assert!(!routes.by_ufrag.contains_key("old"));
        assert!(
            routes.by_ufrag.contains_key("other"),
            "another endpoint's stays"
        );
    }

    #[test]
    fn a_shard_that_is_behind_sheds_datagrams_and_they_are_counted() {
        let (commands, _command_rx) = mpsc::unbounded_channel();
        let (datagrams, mut datagram_rx) = mpsc::channel(2);
        let shards = [ShardInbox {
            commands,
            datagrams,
        }];
        let stats = SfuStats::new(1);
        let datagram = |n: u8| ShardDatagram {
            meeting: MeetingId(1),
            source: "127.0.0.1:5000".parse().expect("address"),
            bytes: vec![n],
        };
        for n in 0..5 {
            deliver(&shards, &stats, datagram(n));
        }
        assert_eq!(stats.load().shed_datagrams, 3, "three found the queue full");
        // The queue kept the first two, in order, and takes more once they are read.
        assert_eq!(datagram_rx.try_recv().expect("queued").bytes, vec![0]);
        assert_eq!(datagram_rx.try_recv().expect("queued").bytes, vec![1]);
        deliver(&shards, &stats, datagram(9));
        assert_eq!(datagram_rx.try_recv().expect("queued").bytes, vec![9]);
        assert_eq!(stats.load().shed_datagrams, 3);
    }

    #[test]
    fn an_impairment_drops_exactly_its_share() {
        let mut i = Impairment {
            percent: 7,
            owed: 0,
        };
        let dropped = (0..1000).filter(|_| i.drop_next()).count();
        assert_eq!(dropped, 70);
        let mut all = Impairment {
            percent: 100,
            owed: 0,
        };
        assert!((0..10).all(|_| all.drop_next()));
    }

    #[test]
    fn only_rtp_is_impaired() {
        let mut rtp = [0u8; 20];
        rtp[0] = 0x80;
        rtp[1] = 96;
        assert!(is_rtp(&rtp));
        let mut rtcp = rtp;
        rtcp[1] = 200;
        assert!(!is_rtp(&rtcp));
        // STUN (first two bits 0) and DTLS (first byte 20 to 63).
        assert!(!is_rtp(&[
            0x00, 0x01, 0, 0, 0x21, 0x12, 0xa4, 0x42, 0, 0, 0, 0
        ]));
        assert!(!is_rtp(&[22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
        assert!(!is_rtp(&[0x80]));
    }
}
