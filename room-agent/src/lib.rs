//! The room agent: turns a meeting-room terminal (a small PC, a PTZ camera, a microphone, a TV)
//! into an endpoint of the bridge that needs nobody on site.
//!
//! - [`control`]: what it decides (join, leave, reconnect, rebuild), a pure state machine;
//! - [`config`]: its TOML file;
//! - [`visca`]: PTZ camera control over VISCA-over-IP;
//! - [`view`]: which participant the room's screen shows.

pub mod agent;
pub mod config;
pub mod control;
pub mod media;
pub mod net;
pub mod rtc;
pub mod view;
pub mod visca;
