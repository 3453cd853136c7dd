//! `loadgen`: the load generator and side-by-side benchmark of the bridge's SFU.
//!
//! It plays endpoints over real ICE, DTLS and SRTP with webrtc-rs (not the SFU's own stack),
//! replays pre-encoded VP8 and Opus at their real pace, and measures what every receiver gets
//! while it reads the SFU's CPU time and memory from `/proc`. See `BENCHMARKS.md`.

// The results object is one `json!` literal with many fields.
#![recursion_limit = "256"]

mod bridge;
mod child;
mod http;
mod janus;
mod keyframes;
mod media;
mod peer;
mod rtp;
mod scenario;
mod sys;
mod tls;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};

/// The benchmark's scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// 1 publisher (VP8 1 Mb/s, no simulcast) to N subscribers; Janus can carry it too.
    Matched,
    /// Floor mode: chair and floor holder publish simulcast video and audio to all others
    /// (who also publish their cameras, and the silence of the room they listen in); the
    /// chair shows a gallery.
    Broadcast,
    /// 30 active publishers, last-N 9, loudest-3 audio, every endpoint receives.
    Working,
}

/// Which SFU carries the load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Sfu {
    /// This repository's bridge.
    Ours,
    /// Janus VideoRoom (matched scenario only).
    Janus,
}

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    about = "Load generator and side-by-side SFU benchmark"
)]
pub struct Cli {
    /// Scenarios to run, in order.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "matched")]
    pub scenario: Vec<Scenario>,
    /// SFUs to run each scenario against (Janus runs only the matched scenario).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "ours,janus")]
    pub sfu: Vec<Sfu>,
    /// Subscribers in the matched scenario.
    #[arg(long, default_value_t = 50)]
    pub subscribers: usize,
    /// Endpoints in the broadcast and working scenarios.
    #[arg(long, default_value_t = 213)]
    pub endpoints: usize,
    /// Length of the measurement window, in seconds.
    #[arg(long, default_value_t = 30)]
    pub duration: u64,
    /// Seconds between everyone connected and the window's start.
    #[arg(long, default_value_t = 5)]
    pub warmup: u64,
    /// The bridge binary.
    #[arg(long, default_value = "target/release/bridge")]
    pub bridge_bin: PathBuf,
    /// Where results go: a JSON array, merged by (scenario, sfu) with what is there.
    #[arg(long, default_value = "benches/results/latest.json")]
    pub out: PathBuf,
    /// Where the encoded media is cached.
    #[arg(long)]
    pub media_dir: Option<PathBuf>,
    /// Where the SFUs' logs go.
    #[arg(long, default_value = "target/bench-logs")]
    pub log_dir: PathBuf,
    /// Endpoints that join at the same time.
    #[arg(long, default_value_t = 4)]
    pub join_concurrency: usize,
    /// Fail (exit 1) when receivers got less than this share of the packets the publishers
    /// sent them, or when a subscriber got no video (the smoke run uses 0.8).
    #[arg(long)]
    pub min_delivery: Option<f64>,
    /// Print the results file (`--out`) as a Markdown table and exit.
    #[arg(long)]
    pub table: bool,
    /// Working scenario: spread the receive-only endpoints over this many generator
    /// processes (this one and children), to tell what the SFU does from what one busy
    /// process does to its receivers (results: `child_receivers`).
    #[arg(long, default_value_t = 1)]
    pub receiver_processes: usize,
    /// Internal: run as a child process holding receive-only endpoints (a JSON spec).
    #[arg(long, hide = true)]
    pub child: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // LOADGEN_LOG=<filter> (as RUST_LOG, e.g. `rtc=debug`): the generator's own WebRTC stack's
    // log on stderr, for a diagnosis. Off by default: it costs the generator CPU.
    if let Ok(filter) = std::env::var("LOADGEN_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("loadgen: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("loadgen: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<bool> {
    if let Some(spec) = &cli.child {
        child::run(spec).await?;
        return Ok(true);
    }
    if cli.table {
        let text = std::fs::read_to_string(&cli.out)
            .with_context(|| format!("reading {}", cli.out.display()))?;
        let results: Vec<serde_json::Value> = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a JSON array", cli.out.display()))?;
        print!("{}", scenario::markdown_table(&results));
        return Ok(true);
    }
    if let Some(m) = cli.min_delivery
        && !(0.0..=1.0).contains(&m)
    {
        anyhow::bail!("--min-delivery must be between 0 and 1, not {m}");
    }
    if cli.duration == 0 {
        anyhow::bail!("--duration must be at least 1 second");
    }
    std::fs::create_dir_all(&cli.log_dir)
        .with_context(|| format!("creating {}", cli.log_dir.display()))?;
    let media_dir = cli.media_dir.clone().unwrap_or_else(media::default_dir);
    let media = media::prepare(&media_dir)?;
    eprintln!(
        "loadgen: media: simulcast {:.0}/{:.0}/{:.0} kb/s, matched {:.0} kb/s, audio {} packets",
        media.simulcast[0].bitrate_bps() / 1000.0,
        media.simulcast[1].bitrate_bps() / 1000.0,
        media.simulcast[2].bitrate_bps() / 1000.0,
        media.matched.bitrate_bps() / 1000.0,
        media.audio.packets.len()
    );
    let mut results = Vec::new();
    let mut ok = true;
    for &scenario in &cli.scenario {
        for &sfu in &cli.sfu {
            if sfu == Sfu::Janus && scenario != Scenario::Matched {
                eprintln!("loadgen: {scenario:?} runs on our bridge only; skipping Janus");
                continue;
            }
            eprintln!("loadgen: == {scenario:?} on {sfu:?}");
            let result = scenario::run(&cli, &media, scenario, sfu).await?;
            scenario::print_summary(&result);
            if let Some(min) = cli.min_delivery
                && let Err(why) = scenario::check_delivery(&result, min)
            {
                eprintln!("loadgen: FAILED: {why}");
                ok = false;
            }
            results.push(result);
        }
    }
    scenario::add_ratios(&mut results);
    scenario::merge_into(&cli.out, results)?;
    eprintln!("loadgen: results written to {}", cli.out.display());
    Ok(ok)
}
