//! The SFU's UDP socket with batched system calls: many datagrams read per call (`recvmmsg`,
//! and GRO where the kernel coalesces a flow's datagrams), and a receiver's consecutive
//! datagrams written in one call (GSO). On the machines this runs on, the kernel's per-call
//! cost, not encryption, is what a forwarded packet costs most (see TESTING.md).

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;

use quinn_udp::{RecvMeta, Transmit, UdpSocketState};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Datagrams read per system call at most.
const RECV_BATCH: usize = quinn_udp::BATCH_SIZE;
/// Each receive buffer holds what GRO may coalesce: up to 64 datagrams of one flow.
const RECV_BUFFER: usize = 64 * 1500;
/// The most bytes one GSO write may carry (the UDP length limit, less headers).
const GSO_MAX_BYTES: usize = 65_000;

/// The socket and its batching state. Shared by the front (reads) and the shards (writes).
#[derive(Debug)]
pub(crate) struct MediaSocket {
    socket: UdpSocket,
    state: UdpSocketState,
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
        Ok(Self { socket, state })
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

    /// Sends datagrams, merging each destination's consecutive ones into GSO writes where
    /// their sizes allow. The order among datagrams to one destination is kept.
    pub(crate) async fn send_all(&self, datagrams: &mut [(SocketAddr, Vec<u8>)]) {
        // Stable: each destination's datagrams stay in order.
        datagrams.sort_by_key(|(destination, _)| *destination);
        let max_segments = self.state.max_gso_segments().max(1);
        let mut batch = Vec::with_capacity(GSO_MAX_BYTES);
        let mut i = 0;
        while i < datagrams.len() {
            let (destination, first) = &datagrams[i];
            let segment = first.len();
            batch.clear();
            batch.extend_from_slice(first);
            let mut j = i + 1;
            // Equal sizes, the last may be shorter; all to the same place.
            while j < datagrams.len()
                && j - i < max_segments
                && datagrams[j].0 == *destination
                && datagrams[j].1.len() <= segment
                && batch.len() + datagrams[j].1.len() <= GSO_MAX_BYTES
                && batch.len() % segment == 0
            {
                batch.extend_from_slice(&datagrams[j].1);
                j += 1;
            }
            let transmit = Transmit {
                destination: *destination,
                ecn: None,
                contents: &batch,
                segment_size: (j - i > 1).then_some(segment),
                src_ip: None,
            };
            self.send(&transmit).await;
            i = j;
        }
    }

    async fn send(&self, transmit: &Transmit<'_>) {
        loop {
            match self.socket.try_io(Interest::WRITABLE, || {
                self.state.try_send((&self.socket).into(), transmit)
            }) {
                Ok(()) => return,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if self.socket.writable().await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    // A peer gone away (ICMP unreachable) or a full buffer: UDP is lossy by
                    // nature; the sessions above recover or time out.
                    tracing::debug!(error = %e, destination = %transmit.destination, "UDP send failed");
                    return;
                }
            }
        }
    }
}
