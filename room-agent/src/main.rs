//! `room-agent`: runs one meeting-room terminal (see `deploy/room-agent.toml`).

use std::path::PathBuf;

use clap::Parser;
use room_agent::config::Config;
use tracing_subscriber::EnvFilter;

/// The meeting-room terminal: joins its site's meetings by itself, sends the camera and the
/// microphone, shows the meeting, and takes technicians' commands.
#[derive(Debug, Parser)]
#[command(name = "room-agent", version)]
struct Args {
    /// The configuration file.
    #[arg(
        long,
        env = "ROOM_AGENT_CONFIG",
        default_value = "/etc/room-agent/room-agent.toml"
    )]
    config: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let config = Config::load(&args.config)?;
    room_agent::agent::run(config).await
}
