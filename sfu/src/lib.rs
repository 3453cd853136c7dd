//! The media plane of the meeting-room bridge: a selective forwarding unit (SFU).
//!
//! It owns everything about media: it terminates WebRTC for every endpoint of a meeting (ICE,
//! DTLS-SRTP, RTCP, through [`str0m`]), forwards RTP among the endpoints of a meeting without
//! decoding it, relays keyframe requests to publishers and answers NACKs from its own send
//! buffers. It knows nothing about accounts, schedules or names: signaling tells it who is in
//! which meeting and relays SDP on its behalf.
//!
//! The deciding logic is [`core::SfuCore`], a sans-IO state machine: datagrams, commands and
//! `now` go in; datagrams to send, events and the next deadline come out. [`shell`] is the thin
//! tokio layer that owns the UDP socket and the clock.

pub mod core;
mod ids;
pub mod quality;
pub mod shell;
pub mod stats;
mod stun;
#[cfg(test)]
mod test_bytes;

pub use crate::core::{
    AudioMode, CoreOutput, GoneReason, MediaPolicy, SfuConfig, SfuCore, SfuError, SfuEvent,
    SlotInfo, SlotKind,
};
pub use crate::ids::{EndpointId, MeetingId};
pub use crate::shell::{SfuHandle, spawn};
pub use crate::stats::SfuStats;
