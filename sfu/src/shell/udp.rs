//! The SFU's UDP socket with batched system calls: many datagrams read per call (`recvmmsg`,
//! and GRO where the kernel coalesces a flow's datagrams), and many written per call
//! (`sendmmsg`). On the machines this runs on, the kernel's per-call cost, not encryption, is
//! what a forwarded packet costs most (see TESTING.md).
//!
//! Writes are not merged with GSO: GSO merges datagrams to one destination, and str0m's pacer
//! releases a receiver's packets one at a time, so in measured runs no two ever merged; a
//! pass's datagrams go to many receivers, which `sendmmsg` batches.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, sendmmsg};
use quinn_udp::{RecvMeta, UdpSocketState};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Datagrams read per system call at most.
const RECV_BATCH: usize = quinn_udp::BATCH_SIZE;
/// Each receive buffer holds what GRO may coalesce: up to 64 datagrams of one flow.
const RECV_BUFFER: usize = 64 * 1500;
/// Datagrams written per system call at most.
const SEND_BATCH: usize = 64;

/// The socket and its batching state. Shared by the front (reads) and the shards (writes).
#[derive(Debug)]
pub(crate) struct MediaSocket {
    socket: UdpSocket,
    state: UdpSocketState,
    /// Whether it is an IPv6 socket (which reaches IPv4 peers by mapped addresses).
    ipv6: bool,
}

/// Reusable receive buffers (allocated once per reader).
pub(crate) struct RecvBuffers {
    bufs: Vec<Vec<u8>>,
    meta: Vec<RecvMeta>,
}

impl RecvBuffers {
    pub(crate) fn new() -> Self {
        Self {
            bufs: (0..RECV_BATCH).map(|_| vec![0u8; RECV_BUFFER]).collect(),
            meta: vec![RecvMeta::default(); RECV_BATCH],
        }
    }
}

impl MediaSocket {
    pub(crate) fn new(socket: UdpSocket) -> io::Result<Self> {
        let state = UdpSocketState::new((&socket).into())?;
        let ipv6 = socket.local_addr()?.is_ipv6();
        Ok(Self {
            socket,
            state,
            ipv6,
        })
    }

    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Waits for datagrams, then appends each one read (up to a batch) to `out`.
    pub(crate) async fn recv_batch(
        &self,
        buffers: &mut RecvBuffers,
        out: &mut Vec<(SocketAddr, Vec<u8>)>,
    ) -> io::Result<()> {
        let RecvBuffers { bufs, meta } = buffers;
        let count = loop {
            self.socket.readable().await?;
            let mut slices: Vec<IoSliceMut<'_>> =
                bufs.iter_mut().map(|b| IoSliceMut::new(b)).collect();
            match self.socket.try_io(Interest::READABLE, || {
                self.state.recv((&self.socket).into(), &mut slices, meta)
            }) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        };
        for (buf, m) in bufs.iter().zip(meta.iter()).take(count) {
            let stride = m.stride.max(1);
            for datagram in buf[..m.len].chunks(stride) {
                out.push((m.addr, datagram.to_vec()));
            }
        }
        Ok(())
    }

    /// Sends datagrams in order, many per system call (`sendmmsg`).
    pub(crate) async fn send_all(&self, datagrams: &[(SocketAddr, Vec<u8>)]) {
        let mut sent = 0;
        while sent < datagrams.len() {
            let batch = &datagrams[sent..datagrams.len().min(sent + SEND_BATCH)];
            match self
                .socket
                .try_io(Interest::WRITABLE, || self.send_batch(batch))
            {
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if self.socket.writable().await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    // The batch's first datagram failed: a peer gone away (ICMP unreachable),
                    // say. UDP is lossy by nature; the sessions above recover or time out.
                    tracing::debug!(error = %e, destination = %batch[0].0, "UDP send failed");
                    sent += 1;
                }
            }
        }
    }

    /// One `sendmmsg`: how many of `batch` (not empty) the kernel took, at least one.
    fn send_batch(&self, batch: &[(SocketAddr, Vec<u8>)]) -> io::Result<usize> {
        let addrs: Vec<Option<SockaddrStorage>> = batch
            .iter()
            .map(|(addr, _)| Some(SockaddrStorage::from(self.reachable(*addr))))
            .collect();
        let slices: Vec<[IoSlice<'_>; 1]> = batch
            .iter()
            .map(|(_, bytes)| [IoSlice::new(bytes)])
            .collect();
        let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(batch.len(), None);
        let sent = sendmmsg(
            self.socket.as_raw_fd(),
            &mut headers,
            &slices,
            &addrs,
            [],
            MsgFlags::empty(),
        )?
        .count();
        Ok(sent)
    }

    /// `addr` as this socket can send to it: an IPv4 peer of a dual-stack IPv6 socket by its
    /// mapped address.
    fn reachable(&self, addr: SocketAddr) -> SocketAddr {
        match (self.ipv6, addr) {
            (true, SocketAddr::V4(v4)) => {
                SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port())
            }
            _ => addr,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::time::Duration;

    use super::*;

    async fn media_socket(ip: IpAddr) -> MediaSocket {
        let socket = UdpSocket::bind((ip, 0))
            .await
            .expect("bind the SFU's socket");
        MediaSocket::new(socket).expect("the SFU's socket state")
    }

    async fn peer(ip: IpAddr) -> UdpSocket {
        UdpSocket::bind((ip, 0))
            .await
            .expect("bind a peer's socket")
    }

    /// Reads `count` datagrams from `socket`, in the order they arrive.
    async fn read(socket: &UdpSocket, count: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = [0u8; 1500];
        while out.len() < count {
            let (n, _) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buf))
                .await
                .expect("a datagram within 5 s")
                .expect("recv_from");
            out.push(buf[..n].to_vec());
        }
        out
    }

    #[tokio::test]
    async fn many_batches_reach_every_destination_in_order() {
        let sfu = media_socket(Ipv4Addr::LOCALHOST.into()).await;
        let peers = [
            peer(Ipv4Addr::LOCALHOST.into()).await,
            peer(Ipv4Addr::LOCALHOST.into()).await,
            peer(Ipv4Addr::LOCALHOST.into()).await,
        ];
        // More than two batches' worth, interleaved over the three, of varied sizes.
        let datagrams: Vec<(SocketAddr, Vec<u8>)> = (0..150u32)
            .map(|i| {
                let peer = &peers[i as usize % 3];
                let mut bytes = i.to_be_bytes().to_vec();
                bytes.resize(4 + (i as usize * 7) % 1200, 0xab);
                (peer.local_addr().expect("local address"), bytes)
            })
            .collect();
        sfu.send_all(&datagrams).await;
        for (p, peer) in peers.iter().enumerate() {
            let got = read(peer, 50).await;
            let expected: Vec<Vec<u8>> = datagrams
                .iter()
                .skip(p)
                .step_by(3)
                .map(|(_, b)| b.clone())
                .collect();
            assert_eq!(got, expected, "peer {p}");
        }
    }

    #[tokio::test]
    async fn a_dual_stack_socket_reaches_ipv4_peers_and_a_failed_send_does_not_stop_the_rest() {
        let sfu = media_socket(Ipv6Addr::UNSPECIFIED.into()).await;
        let v4 = peer(Ipv4Addr::LOCALHOST.into()).await;
        let v6 = peer(Ipv6Addr::LOCALHOST.into()).await;
        // Port 0 cannot be sent to (EINVAL), here in the first and a middle place of a batch.
        let unreachable: SocketAddr = (Ipv4Addr::UNSPECIFIED, 0).into();
        let datagrams = vec![
            (unreachable, b"lost".to_vec()),
            (v4.local_addr().expect("local address"), b"one".to_vec()),
            (unreachable, b"lost".to_vec()),
            (v6.local_addr().expect("local address"), b"two".to_vec()),
        ];
        sfu.send_all(&datagrams).await;
        assert_eq!(read(&v4, 1).await, vec![b"one".to_vec()]);
        assert_eq!(read(&v6, 1).await, vec![b"two".to_vec()]);
    }
}
