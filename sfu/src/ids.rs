//! Identifiers shared by the core and its callers.

use std::fmt;

/// One WebRTC endpoint (a browser tab or a room terminal) in a meeting. Assigned by signaling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointId(pub u64);

/// A meeting: the set of endpoints that exchange media. Assigned by signaling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MeetingId(pub i64);

impl fmt::Display for EndpointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}", self.0)
    }
}

impl fmt::Display for MeetingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "m{}", self.0)
    }
}

impl EndpointId {
    /// The WebRTC media stream id (`a=msid`) under which this endpoint's tracks are offered
    /// to the others, so that a client can tell whose tile a track belongs to.
    pub fn stream_id(self) -> String {
        self.to_string()
    }
}
