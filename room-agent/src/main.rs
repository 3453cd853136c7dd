//! `room-agent`: runs one meeting-room terminal.

fn main() {}
