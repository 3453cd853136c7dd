//! Receive-only endpoints in a process of their own (`--receiver-processes`).
//!
//! Every endpoint of one generator process shares its async runtime: when dozens of webrtc-rs
//! peer connections receive at once, each datagram waits for its connection's task before it
//! is time-stamped for transport-cc, and the SFU's delay-based estimator may read that wait as
//! congestion. To tell that apart from what the SFU does, the working scenario can put some of
//! its receivers in child processes (the same meeting, the same view): if receivers in small
//! children get the video that receivers in the big parent do not, the generator is the cause.
//!
//! The parent spawns `loadgen --child '<json spec>'`; the child joins, shows the tiles, waits,
//! counts over its window and prints one JSON line on stdout.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::bridge::BridgeEndpoint;
use crate::peer::{self, Publish, Run};
use crate::rtp::Kind;

/// What a child does.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChildSpec {
    /// The bridge's HTTPS address.
    pub http: SocketAddr,
    /// The meeting to join.
    pub meeting: i64,
    /// Receive-only endpoints to hold.
    pub count: usize,
    /// Number of the first endpoint (for names).
    pub first: usize,
    /// The view every endpoint shows: (participant, height).
    pub tiles: Vec<(u64, u32)>,
    /// Seconds from all connected to the window's start.
    pub warmup: u64,
    /// The window, seconds.
    pub duration: u64,
}

/// What a child counted over its window.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ChildReport {
    /// Endpoints it held.
    pub receivers: usize,
    /// Video streams that delivered packets in the window, over all its endpoints.
    pub video_streams_received: usize,
    /// Its endpoints that got no video in the window.
    pub receivers_without_video: usize,
    /// RTP packets received in the window.
    pub packets_received: u64,
    /// The window's length, seconds.
    pub window_s: f64,
}

/// Runs a child: joins, counts, prints its report.
pub async fn run(spec: &str) -> Result<()> {
    let spec: ChildSpec = serde_json::from_str(spec).context("the --child spec is not valid")?;
    if spec.count == 0 || spec.duration == 0 {
        bail!("a child needs endpoints and a window");
    }
    let run = Arc::new(Run::default());
    let mut sessions = Vec::with_capacity(spec.count);
    for i in spec.first..spec.first + spec.count {
        let name = format!("lgc{i}");
        let s = BridgeEndpoint::join(
            spec.http,
            spec.meeting,
            name,
            Publish::default(),
            run.clone(),
        )
        .await?;
        s.view(&spec.tiles)?;
        sessions.push(s);
    }
    let peers: Vec<_> = sessions.iter().map(|s| s.peer.clone()).collect();
    peer::wait_for_video(&peers, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(spec.warmup)).await;
    for s in &sessions {
        s.peer.reset_counts();
    }
    let start = Instant::now();
    run.measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(spec.duration)).await;
    run.measuring.store(false, Ordering::Relaxed);
    run.stop.store(true, Ordering::Relaxed);
    let mut report = ChildReport {
        receivers: sessions.len(),
        window_s: start.elapsed().as_secs_f64(),
        ..ChildReport::default()
    };
    for s in &sessions {
        let counts = s.peer.stream_counts();
        let videos = counts
            .iter()
            .filter(|(k, c)| *k == Kind::Video && c.received > 0)
            .count();
        report.video_streams_received += videos;
        report.receivers_without_video += usize::from(videos == 0);
        report.packets_received += counts.iter().map(|(_, c)| c.received).sum::<u64>();
    }
    println!("{}", serde_json::to_string(&report)?);
    for s in &sessions {
        s.leave().await;
    }
    Ok(())
}

/// Spawns a child process for `spec`; its report is read with [`collect`].
pub fn spawn(spec: &ChildSpec) -> Result<std::process::Child> {
    let exe = std::env::current_exe().context("finding the loadgen binary")?;
    std::process::Command::new(exe)
        .arg("--child")
        .arg(serde_json::to_string(spec)?)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting a child generator process")
}

/// Waits for the children and adds up their reports.
pub async fn collect(children: Vec<std::process::Child>) -> Result<Value> {
    let mut total = ChildReport::default();
    let processes = children.len();
    for child in children {
        let output = tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .context("waiting for a child generator process")??;
        if !output.status.success() {
            bail!("a child generator process failed ({})", output.status);
        }
        let text = String::from_utf8_lossy(&output.stdout);
        let line = text.lines().last().unwrap_or_default();
        let r: ChildReport = serde_json::from_str(line)
            .with_context(|| format!("a child's report is not valid: {line:.200}"))?;
        total.receivers += r.receivers;
        total.video_streams_received += r.video_streams_received;
        total.receivers_without_video += r.receivers_without_video;
        total.packets_received += r.packets_received;
        total.window_s = total.window_s.max(r.window_s);
    }
    Ok(serde_json::json!({
        "processes": processes,
        "receivers": total.receivers,
        "video_streams_received": total.video_streams_received,
        "receivers_without_video": total.receivers_without_video,
        "packets_received": total.packets_received,
        "window_s": (total.window_s * 100.0).round() / 100.0,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_travels_as_json() {
        let spec = ChildSpec {
            http: "127.0.0.1:4443".parse().expect("address"),
            meeting: 3,
            count: 12,
            first: 30,
            tiles: vec![(7, 270), (8, 270)],
            warmup: 5,
            duration: 10,
        };
        let text = serde_json::to_string(&spec).expect("serialises");
        let back: ChildSpec = serde_json::from_str(&text).expect("parses");
        assert_eq!(back.tiles, spec.tiles);
        assert_eq!((back.meeting, back.count, back.first), (3, 12, 30));
    }
}
