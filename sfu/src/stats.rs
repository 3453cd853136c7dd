//! Counters the SFU exports for monitoring.
//!
//! The core keeps plain integers ([`CoreCounters`]); the shell publishes them into
//! [`SfuStats`] atomics after each turn of its loop, so that readers never wait on the media
//! thread and the per-packet path never touches an atomic.

use std::sync::atomic::{AtomicU64, Ordering};

/// Plain counters owned by the core.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CoreCounters {
    /// RTP packets written towards receivers.
    pub forwarded_packets: u64,
    /// RTP payload bytes written towards receivers.
    pub forwarded_bytes: u64,
    /// Datagrams that matched no endpoint or did not parse (garbage, strays, late packets).
    pub dropped_datagrams: u64,
    /// Datagrams dropped because their shard was behind (its queue full): the SFU is overloaded.
    pub shed_datagrams: u64,
    /// Keyframe requests sent to publishers (after rate limiting).
    pub keyframe_requests_sent: u64,
    /// Keyframe requests from receivers that were merged into an earlier or later one.
    pub keyframe_requests_coalesced: u64,
    /// Endpoints currently present.
    pub endpoints: u64,
    /// Meetings with at least one endpoint.
    pub meetings: u64,
}

impl CoreCounters {
    /// Adds another set's cumulative counters (not the gauges `endpoints` and `meetings`).
    pub fn add_totals(&mut self, other: &CoreCounters) {
        self.forwarded_packets += other.forwarded_packets;
        self.forwarded_bytes += other.forwarded_bytes;
        self.dropped_datagrams += other.dropped_datagrams;
        self.shed_datagrams += other.shed_datagrams;
        self.keyframe_requests_sent += other.keyframe_requests_sent;
        self.keyframe_requests_coalesced += other.keyframe_requests_coalesced;
    }

    /// Adds another set: cumulative counters and gauges.
    pub fn add(&mut self, other: &CoreCounters) {
        self.add_totals(other);
        self.endpoints += other.endpoints;
        self.meetings += other.meetings;
    }
}

/// Shared, lock-free view of the SFU's counters for `/metrics`: one set per shard, summed on
/// reading, plus what the front task dropped.
#[derive(Debug)]
pub struct SfuStats {
    shards: Vec<ShardStats>,
    front_dropped: AtomicU64,
    shed: AtomicU64,
}

#[derive(Debug, Default)]
struct ShardStats {
    forwarded_packets: AtomicU64,
    forwarded_bytes: AtomicU64,
    dropped_datagrams: AtomicU64,
    keyframe_requests_sent: AtomicU64,
    keyframe_requests_coalesced: AtomicU64,
    endpoints: AtomicU64,
    meetings: AtomicU64,
}

impl SfuStats {
    /// Counters for `shards` shards, all zero.
    pub fn new(shards: usize) -> Self {
        Self {
            shards: (0..shards).map(|_| ShardStats::default()).collect(),
            front_dropped: AtomicU64::new(0),
            shed: AtomicU64::new(0),
        }
    }

    /// Publishes a shard's totals.
    pub(crate) fn store_shard(&self, shard: usize, c: &CoreCounters) {
        if let Some(s) = self.shards.get(shard) {
            s.store(c);
        }
    }

    /// Counts a datagram the front could not route to any room.
    pub(crate) fn count_front_drop(&self) {
        self.front_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a datagram dropped because its shard's queue was full.
    pub(crate) fn count_overload_drop(&self) {
        self.shed.fetch_add(1, Ordering::Relaxed);
    }

    /// The sum over all shards, as last published.
    pub fn load(&self) -> CoreCounters {
        let mut t = CoreCounters {
            dropped_datagrams: self.front_dropped.load(Ordering::Relaxed),
            shed_datagrams: self.shed.load(Ordering::Relaxed),
            ..CoreCounters::default()
        };
        for s in &self.shards {
            t.add(&s.load());
        }
        t
    }
}

impl ShardStats {
    fn store(&self, c: &CoreCounters) {
        self.forwarded_packets
            .store(c.forwarded_packets, Ordering::Relaxed);
        self.forwarded_bytes
            .store(c.forwarded_bytes, Ordering::Relaxed);
        self.dropped_datagrams
            .store(c.dropped_datagrams, Ordering::Relaxed);
        self.keyframe_requests_sent
            .store(c.keyframe_requests_sent, Ordering::Relaxed);
        self.keyframe_requests_coalesced
            .store(c.keyframe_requests_coalesced, Ordering::Relaxed);
        self.endpoints.store(c.endpoints, Ordering::Relaxed);
        self.meetings.store(c.meetings, Ordering::Relaxed);
    }

    fn load(&self) -> CoreCounters {
        CoreCounters {
            forwarded_packets: self.forwarded_packets.load(Ordering::Relaxed),
            forwarded_bytes: self.forwarded_bytes.load(Ordering::Relaxed),
            dropped_datagrams: self.dropped_datagrams.load(Ordering::Relaxed),
            // Counted by the front, not the shards.
            shed_datagrams: 0,
            keyframe_requests_sent: self.keyframe_requests_sent.load(Ordering::Relaxed),
            keyframe_requests_coalesced: self.keyframe_requests_coalesced.load(Ordering::Relaxed),
            endpoints: self.endpoints.load(Ordering::Relaxed),
            meetings: self.meetings.load(Ordering::Relaxed),
        }
    }
}
