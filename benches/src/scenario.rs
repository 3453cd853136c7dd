//! The scenarios: who joins, who publishes what, who shows whom; the measurement window; and
//! the figures each run reports.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::bridge::{Bridge, BridgeEndpoint};
use crate::child::{self, ChildSpec};
use crate::janus::Janus;
use crate::media::{self, Media};
use crate::peer::{self, Peer, Publish, Run};
use crate::rtp::Kind;
use crate::sys::{self, CpuMark};
use crate::{Cli, Scenario, Sfu};

/// The SFU process under test.
enum Server {
    Ours(Bridge),
    Janus(Janus),
}

impl Server {
    fn pid(&self) -> u32 {
        match self {
            Server::Ours(b) => b.pid(),
            Server::Janus(j) => j.pid(),
        }
    }
}

/// Endpoints of a run: everyone who receives (measured), and what keeps sessions open.
struct Endpoints {
    receivers: Vec<Arc<Peer>>,
    publishers: usize,
    bridge_sessions: Vec<BridgeEndpoint>,
    janus_peers: Vec<Arc<Peer>>,
    /// Packets each receiver should get per packet a publisher sends (matched: 1 per
    /// subscriber), when that is known.
    fanout: Option<usize>,
    /// Child processes holding more receivers (`--receiver-processes`), and how many.
    children: Vec<std::process::Child>,
    child_endpoints: usize,
}

fn name(i: usize) -> String {
    format!("lg{i}")
}

fn simulcast_publish(media: &Media, i: usize, level_offset_db: u8) -> Publish {
    Publish {
        video: media.simulcast.iter().cloned().map(Arc::new).collect(),
        audio: Some(Arc::new(media.audio.clone())),
        level_offset_db,
        // Spread keyframes: publishers start at different places in the clip.
        start_frame: (i * 7) % media::CLIP_FRAMES as usize,
        listening: false,
    }
}

/// Joins endpoints `range` with at most `concurrency` joining at once.
async fn join_many<F, Fut, T>(count: usize, concurrency: usize, f: F) -> Result<Vec<T>>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut out = Vec::with_capacity(count);
    let mut i = 0;
    while i < count {
        let batch: Vec<_> = (i..(i + concurrency.max(1)).min(count)).map(&f).collect();
        for r in join_all(batch).await {
            out.push(r?);
        }
        i += concurrency.max(1);
        if i % 50 < concurrency.max(1) {
            eprintln!("loadgen:   {} of {count} joined", i.min(count));
        }
    }
    Ok(out)
}

async fn setup_matched(
    cli: &Cli,
    media: &Media,
    server: &Server,
    run: &Arc<Run>,
) -> Result<Endpoints> {
    let publish = Publish {
        video: vec![Arc::new(media.matched.clone())],
        audio: None,
        level_offset_db: 0,
        start_frame: 0,
        listening: false,
    };
    let subs = cli.subscribers;
    match server {
        Server::Ours(bridge) => {
            let meeting = bridge.meeting().await?;
            // Subscribers first: today the SFU hands existing tracks to a newcomer only when
            // the newcomer publishes, so a receive-only endpoint must be there before the
            // publisher's track appears.
            let mut sessions = join_many(subs, cli.join_concurrency, |i| {
                BridgeEndpoint::join(
                    bridge.http,
                    meeting,
                    name(i),
                    Publish::default(),
                    run.clone(),
                )
            })
            .await?;
            let publisher = BridgeEndpoint::join(
                bridge.http,
                meeting,
                "publisher".into(),
                publish,
                run.clone(),
            )
            .await?;
            publisher.peer.start_publishing(run.clone()).await?;
            let receivers = sessions.iter().map(|s| s.peer.clone()).collect();
            sessions.push(publisher);
            Ok(Endpoints {
                receivers,
                publishers: 1,
                bridge_sessions: sessions,
                janus_peers: Vec::new(),
                fanout: Some(subs),
                children: Vec::new(),
                child_endpoints: 0,
            })
        }
        Server::Janus(janus) => {
            let (feed, publisher) = janus.publisher(publish, run.clone(), "publisher").await?;
            let publisher = Arc::new(publisher);
            publisher.start_publishing(run.clone()).await?;
            let receivers: Vec<Arc<Peer>> = join_many(subs, cli.join_concurrency, |i| async move {
                Ok(Arc::new(
                    janus.subscriber(feed, run.clone(), &name(i)).await?,
                ))
            })
            .await?;
            let mut all = receivers.clone();
            all.push(publisher);
            Ok(Endpoints {
                receivers,
                publishers: 1,
                bridge_sessions: Vec::new(),
                janus_peers: all,
                fanout: Some(subs),
                children: Vec::new(),
                child_endpoints: 0,
            })
        }
    }
}

/// The moderation policy of the province scenarios: last-N 9 and loudest-3, in `mode`, with
/// the chair and floor holder (participant ids) once they are known.
fn province_policy(mode: &str, chair: Option<u64>, floor_holder: Option<u64>) -> Value {
    json!({"mode":mode,"chair":chair,"floor_holder":floor_holder,"muted":[],"loudest_n":3,"last_n":9})
}

async fn setup_broadcast(
    cli: &Cli,
    media: &Media,
    bridge: &Bridge,
    run: &Arc<Run>,
) -> Result<Endpoints> {
    let n = cli.endpoints;
    if n < 3 {
        bail!("the broadcast scenario needs at least 3 endpoints");
    }
    let meeting = bridge.meeting().await?;
    // The meeting's last-N is configured before the sites join, as an administrator sets it
    // for a province meeting; the chair and the floor holder are named once they are in.
    bridge
        .set_policy(meeting, &province_policy("open", None, None))
        .await?;
    let sessions = join_many(n, cli.join_concurrency, |i| {
        // The chair (0) and the floor holder (1) speak; every other room listens, its
        // microphone hearing the room's silence.
        let publish = Publish {
            listening: i >= 2,
            ..simulcast_publish(media, i, (i % 40) as u8)
        };
        BridgeEndpoint::join(bridge.http, meeting, name(i), publish, run.clone())
    })
    .await?;
    let chair = sessions[0].id;
    let floor = sessions[1].id;
    bridge
        .set_policy(meeting, &province_policy("floor", Some(chair), Some(floor)))
        .await?;
    for s in &sessions {
        s.peer.start_publishing(run.clone()).await?;
    }
    // The chair shows the floor holder large and a gallery of 8 others; everyone else shows
    // the floor holder large and the chair small.
    let gallery: Vec<(u64, u32)> = std::iter::once((floor, 540))
        .chain(sessions.iter().skip(2).take(8).map(|s| (s.id, 180)))
        .collect();
    sessions[0].view(&gallery)?;
    for s in sessions.iter().skip(1) {
        let tiles = if s.id == floor {
            vec![(chair, 540)]
        } else {
            vec![(floor, 540), (chair, 180)]
        };
        s.view(&tiles)?;
    }
    Ok(Endpoints {
        receivers: sessions.iter().map(|s| s.peer.clone()).collect(),
        publishers: n,
        bridge_sessions: sessions,
        janus_peers: Vec::new(),
        fanout: None,
        children: Vec::new(),
        child_endpoints: 0,
    })
}

const WORKING_PUBLISHERS: usize = 30;

async fn setup_working(
    cli: &Cli,
    media: &Media,
    bridge: &Bridge,
    run: &Arc<Run>,
) -> Result<Endpoints> {
    let n = cli.endpoints;
    let publishers = WORKING_PUBLISHERS.min(n);
    let meeting = bridge.meeting().await?;
    // Configured before the sites join, as an administrator sets it for a province meeting.
    bridge
        .set_policy(meeting, &province_policy("open", None, None))
        .await?;
    // With --receiver-processes P, this process holds its share of the receive-only
    // endpoints and P - 1 children hold the rest (see `child`).
    let all_receivers = n - publishers;
    let mut processes = cli.receiver_processes.max(1);
    if all_receivers / processes == 0 && processes > 1 {
        eprintln!(
            "loadgen:   {all_receivers} receive-only endpoints cannot fill {processes} processes; all stay in this one"
        );
        processes = 1;
    }
    let per_child = all_receivers / processes;
    let in_children = per_child * (processes - 1);
    let n = n - in_children;
    // Receive-only endpoints first (see setup_matched), then the publishers.
    let receivers = n - publishers;
    let sessions = join_many(n, cli.join_concurrency, |i| {
        let publish = if i >= receivers {
            // Different loudness per publisher, so the loudest three are well defined.
            simulcast_publish(media, i, ((i - receivers) * 2) as u8)
        } else {
            Publish::default()
        };
        BridgeEndpoint::join(bridge.http, meeting, name(i), publish, run.clone())
    })
    .await?;
    for s in sessions.iter().skip(receivers) {
        s.peer.start_publishing(run.clone()).await?;
    }
    // Every endpoint shows a gallery of the active publishers (the SFU forwards the last N).
    let gallery: Vec<(u64, u32)> = sessions
        .iter()
        .skip(receivers)
        .map(|s| (s.id, 270))
        .collect();
    for s in &sessions {
        let tiles: Vec<(u64, u32)> = gallery.iter().copied().filter(|t| t.0 != s.id).collect();
        s.view(&tiles)?;
    }
    let mut children = Vec::new();
    for c in 1..processes {
        let spec = ChildSpec {
            http: bridge.http,
            meeting,
            count: per_child,
            first: n + (c - 1) * per_child,
            tiles: gallery.clone(),
            warmup: cli.warmup,
            duration: cli.duration,
        };
        children.push(child::spawn(&spec)?);
    }
    if !children.is_empty() {
        eprintln!(
            "loadgen:   {in_children} more receivers in {} child processes",
            children.len()
        );
    }
    Ok(Endpoints {
        receivers: sessions.iter().map(|s| s.peer.clone()).collect(),
        publishers,
        bridge_sessions: sessions,
        janus_peers: Vec::new(),
        fanout: None,
        children,
        child_endpoints: in_children,
    })
}

/// Runs one scenario on one SFU and returns its result object.
pub async fn run(cli: &Cli, media: &Media, scenario: Scenario, sfu: Sfu) -> Result<Value> {
    let log = cli
        .log_dir
        .join(format!("{}-{}.log", label(scenario), sfu_label(sfu)));
    let server = match sfu {
        Sfu::Ours => Server::Ours(Bridge::start(&cli.bridge_bin, &log).await?),
        Sfu::Janus => Server::Janus(Janus::start(&log).await?),
    };
    let result = measure(cli, media, scenario, sfu, &server).await;
    match server {
        Server::Ours(b) => b.stop(),
        Server::Janus(j) => j.stop().await,
    }
    result.with_context(|| format!("{} on {}", label(scenario), sfu_label(sfu)))
}

async fn measure(
    cli: &Cli,
    media: &Media,
    scenario: Scenario,
    sfu: Sfu,
    server: &Server,
) -> Result<Value> {
    let ticks = sys::clock_ticks_per_second()?;
    let pid = server.pid();
    let own = std::process::id();
    let rss_idle = sys::rss_bytes(pid)?;
    let run = Arc::new(Run::default());
    tokio::spawn(peer::watch_stalls(run.clone()));
    let joined_at = Instant::now();
    let mut eps = match (scenario, server) {
        (Scenario::Matched, s) => setup_matched(cli, media, s, &run).await?,
        (Scenario::Broadcast, Server::Ours(b)) => setup_broadcast(cli, media, b, &run).await?,
        (Scenario::Working, Server::Ours(b)) => setup_working(cli, media, b, &run).await?,
        (_, Server::Janus(_)) => bail!("only the matched scenario runs on Janus"),
    };
    let endpoints = eps.bridge_sessions.len().max(eps.janus_peers.len()) + eps.child_endpoints;
    eprintln!(
        "loadgen:   {endpoints} endpoints connected in {:.1} s",
        joined_at.elapsed().as_secs_f64()
    );

    // Everyone should be receiving video before the window opens.
    let waiting = peer::wait_for_video(&eps.receivers, Duration::from_secs(30)).await;
    if waiting > 0 {
        eprintln!("loadgen:   {waiting} receivers still have no video after 30 s");
    }
    tokio::time::sleep(Duration::from_secs(cli.warmup)).await;

    // The window.
    for p in &eps.receivers {
        p.reset_counts();
    }
    run.sent_packets.store(0, Ordering::Relaxed);
    run.sent_frames.store(0, Ordering::Relaxed);
    let fwd_start = match server {
        Server::Ours(b) => b.forwarded_packets().await.ok(),
        Server::Janus(_) => None,
    };
    let sfu_start = CpuMark::now(pid)?;
    let gen_start = CpuMark::now(own)?;
    run.measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(cli.duration)).await;
    run.measuring.store(false, Ordering::Relaxed);
    let sfu_end = CpuMark::now(pid)?;
    let gen_end = CpuMark::now(own)?;
    let rss = sys::rss_bytes(pid)?;
    let fwd_end = match server {
        Server::Ours(b) => b.forwarded_packets().await.ok(),
        Server::Janus(_) => None,
    };
    let gen_rss = sys::rss_bytes(own)?;
    run.stop.store(true, Ordering::Relaxed);
    let children = if eps.children.is_empty() {
        Value::Null
    } else {
        child::collect(std::mem::take(&mut eps.children)).await?
    };

    // What the receivers counted.
    let (sfu_cpu, wall) = sfu_start.until(&sfu_end, ticks);
    let (gen_cpu, _) = gen_start.until(&gen_end, ticks);
    let mut received = 0u64;
    let mut expected_seq = 0u64;
    let mut freezes = 0u64;
    let mut frozen = Duration::ZERO;
    let mut abs = 0u64;
    let mut min_fps = f64::INFINITY;
    let mut video_streams = 0usize;
    let mut receivers_without_video = 0usize;
    for p in &eps.receivers {
        let counts = p.stream_counts();
        let mut has_video = false;
        for (kind, c) in &counts {
            received += c.received;
            expected_seq += c.expected();
            abs += c.with_abs_capture_time;
            if *kind == Kind::Video && c.received > 0 {
                has_video = true;
                video_streams += 1;
                freezes += c.freezes;
                frozen += c.frozen;
                min_fps = min_fps.min(c.frames as f64 / wall);
            }
        }
        if !has_video {
            receivers_without_video += 1;
            // Which one, and what it did get: the bridge's log can then be read for it.
            let id = eps
                .bridge_sessions
                .iter()
                .find(|s| Arc::ptr_eq(&s.peer, p))
                .map(|s| s.id.to_string())
                .unwrap_or_else(|| "-".into());
            let videos_known = counts.iter().filter(|(k, _)| *k == Kind::Video).count();
            let audio: u64 = counts
                .iter()
                .filter(|(k, _)| *k == Kind::Audio)
                .map(|(_, c)| c.received)
                .sum();
            eprintln!(
                "loadgen:   receiver {id} got no video in the window: connection {:?}, {videos_known} video SSRCs seen before, {audio} audio packets",
                *p.state.borrow()
            );
        }
    }
    let sent = run.sent_packets.load(Ordering::Relaxed);
    let sent_fps = run.sent_frames.load(Ordering::Relaxed) as f64 / wall / eps.publishers as f64;
    let expected_from_senders = eps.fanout.map(|f| sent * f as u64);
    let loss = if expected_seq > 0 {
        (1.0 - received as f64 / expected_seq as f64).max(0.0)
    } else {
        1.0
    };
    let forwarded_metric = match (fwd_start, fwd_end) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    let round = |v: f64, d: i32| (v * 10f64.powi(d)).round() / 10f64.powi(d);
    let result = json!({
        "scenario": label(scenario),
        "sfu": sfu_label(sfu),
        "endpoints": endpoints,
        "publishers": eps.publishers,
        "receivers": eps.receivers.len(),
        "duration_s": round(wall, 2),
        "forwarded_packets": received,
        "forwarded_packets_sfu_metric": forwarded_metric,
        "sent_packets": sent,
        "expected_packets": expected_from_senders,
        "delivery_ratio": expected_from_senders.map(|e| if e == 0 { 0.0 } else { round(received as f64 / e as f64, 4) }),
        "cpu_s": round(sfu_cpu, 2),
        "cpu_share_of_one_core": round(sfu_cpu / wall, 3),
        "sfu_wakeups_per_s": sfu_start.wakeups_per_second(&sfu_end).map(|w| round(w, 0)),
        "cpu_us_per_forwarded_packet": if received > 0 { Some(round(sfu_cpu * 1e6 / received as f64, 2)) } else { None },
        "latency_p50_ms": run.latency.quantile_ms(0.5),
        "latency_p99_ms": run.latency.quantile_ms(0.99),
        "latency_samples": run.latency.count(),
        "loss_ratio": round(loss, 5),
        "rss_bytes": rss,
        "rss_idle_bytes": rss_idle,
        "rss_bytes_per_endpoint": rss / endpoints.max(1) as u64,
        "rss_added_bytes_per_endpoint": rss.saturating_sub(rss_idle) / endpoints.max(1) as u64,
        "video_streams_received": video_streams,
        "receivers_without_video": receivers_without_video,
        "min_receiver_fps": if min_fps.is_finite() { Some(round(min_fps, 2)) } else { None },
        "sent_fps": round(sent_fps, 2),
        "freezes": freezes,
        "frozen_s": round(frozen.as_secs_f64(), 2),
        "abs_capture_time_packets": abs,
        "generator_cpu_s": round(gen_cpu, 2),
        "generator_cpu_share_of_one_core": round(gen_cpu / wall, 3),
        "generator_rss_bytes": gen_rss,
        "generator_max_stall_ms": run.max_stall_us.load(Ordering::Relaxed) as f64 / 1000.0,
        "generator_send_errors": run.send_errors.load(Ordering::Relaxed),
        "keyframe_requests": run.keyframe_requests.load(Ordering::Relaxed),
        "frames_skipped_for_keyframes": run.frames_skipped.load(Ordering::Relaxed),
        "bridge_errors": eps.bridge_sessions.iter().map(|s| s.errors.load(Ordering::Relaxed)).sum::<u64>(),
        "machine": sys::machine(),
        "sfu_cpus": sys::cpus_allowed(pid),
        "generator_cpus": sys::cpus_allowed(own),
        "rtx": peer::negotiates_rtx(),
        // Receivers held by child processes (--receiver-processes), counted apart.
        "child_receivers": children,
    });

    for s in &eps.bridge_sessions {
        s.leave().await;
    }
    for p in &eps.janus_peers {
        p.close().await;
    }
    Ok(result)
}

fn label(s: Scenario) -> &'static str {
    match s {
        Scenario::Matched => "matched",
        Scenario::Broadcast => "broadcast",
        Scenario::Working => "working",
    }
}

fn sfu_label(s: Sfu) -> &'static str {
    match s {
        Sfu::Ours => "ours",
        Sfu::Janus => "janus",
    }
}

/// One line per run for the terminal.
pub fn print_summary(r: &Value) {
    eprintln!(
        "loadgen:   {} {}: {} endpoints, {} packets forwarded in {} s, SFU {} µs/packet ({} of a core, {} wake-ups/s), latency p50 {} ms p99 {} ms, loss {}, RSS {} B/endpoint, min fps {} (sent {}), freezes {}, keyframe requests {} ({} frames skipped), generator {} of a core",
        r["scenario"],
        r["sfu"],
        r["endpoints"],
        r["forwarded_packets"],
        r["duration_s"],
        r["cpu_us_per_forwarded_packet"],
        r["cpu_share_of_one_core"],
        r["sfu_wakeups_per_s"],
        r["latency_p50_ms"],
        r["latency_p99_ms"],
        r["loss_ratio"],
        r["rss_bytes_per_endpoint"],
        r["min_receiver_fps"],
        r["sent_fps"],
        r["freezes"],
        r["keyframe_requests"],
        r["frames_skipped_for_keyframes"],
        r["generator_cpu_share_of_one_core"],
    );
    let c = &r["child_receivers"];
    if !c.is_null() {
        eprintln!(
            "loadgen:   this process's {} receivers got {} video streams ({} without video); the {} in {} child processes got {} ({} without video)",
            r["receivers"],
            r["video_streams_received"],
            r["receivers_without_video"],
            c["receivers"],
            c["processes"],
            c["video_streams_received"],
            c["receivers_without_video"],
        );
    }
}

/// Whether receivers got enough: at least `min` of what was sent to them (or of the sequence
/// span, when the fan-out is not fixed), and every receiver some video.
pub fn check_delivery(r: &Value, min: f64) -> std::result::Result<(), String> {
    let what = format!("{} on {}", r["scenario"], r["sfu"]);
    let without = r["receivers_without_video"].as_u64().unwrap_or(0);
    if without > 0 {
        return Err(format!("{what}: {without} receivers got no video at all"));
    }
    let got = r["forwarded_packets"].as_u64().unwrap_or(0);
    let (expected, source) = match r["expected_packets"].as_u64() {
        Some(e) => (e, "packets the publisher sent times subscribers"),
        None => {
            let loss = r["loss_ratio"].as_f64().unwrap_or(1.0);
            if 1.0 - loss < min {
                return Err(format!(
                    "{what}: receivers lost {:.1}% of the packets in their sequence span (limit {:.0}%)",
                    loss * 100.0,
                    (1.0 - min) * 100.0
                ));
            }
            return Ok(());
        }
    };
    if expected == 0 || (got as f64) < min * expected as f64 {
        return Err(format!(
            "{what}: receivers got {got} packets, {:.1}% of the {expected} expected ({source}); need {:.0}%",
            if expected == 0 {
                0.0
            } else {
                got as f64 * 100.0 / expected as f64
            },
            min * 100.0
        ));
    }
    Ok(())
}

/// Adds ours/Janus ratios to our matched result when both ran.
pub fn add_ratios(results: &mut [Value]) {
    let janus = results
        .iter()
        .find(|r| r["scenario"] == "matched" && r["sfu"] == "janus")
        .cloned();
    let Some(janus) = janus else { return };
    for r in results.iter_mut() {
        if r["scenario"] == "matched" && r["sfu"] == "ours" {
            let mut ratios = serde_json::Map::new();
            for key in [
                "cpu_us_per_forwarded_packet",
                "latency_p50_ms",
                "latency_p99_ms",
                "loss_ratio",
                "rss_bytes_per_endpoint",
            ] {
                if let (Some(a), Some(b)) = (r[key].as_f64(), janus[key].as_f64())
                    && b > 0.0
                {
                    ratios.insert(key.into(), json!((a / b * 1000.0).round() / 1000.0));
                }
            }
            r["ratio_to_janus"] = Value::Object(ratios);
        }
    }
}

/// Writes `results` into the JSON array at `path`, replacing entries of the same scenario and
/// SFU and keeping the others.
pub fn merge_into(path: &Path, results: Vec<Value>) -> Result<()> {
    let mut all: Vec<Value> = match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .with_context(|| format!("{} is not a JSON array; move it away", path.display()))?,
        Err(_) => Vec::new(),
    };
    for r in results {
        all.retain(|o| !(o["scenario"] == r["scenario"] && o["sfu"] == r["sfu"]));
        all.push(r);
    }
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, serde_json::to_string_pretty(&all)? + "\n")
        .with_context(|| format!("writing {}", path.display()))
}

/// The results as a Markdown table (for BENCHMARKS.md).
pub fn markdown_table(results: &[Value]) -> String {
    let cols: [(&str, &str); 15] = [
        ("scenario", "scenario"),
        ("sfu", "SFU"),
        ("endpoints", "endpoints"),
        ("duration_s", "window (s)"),
        ("forwarded_packets", "packets received"),
        ("cpu_share_of_one_core", "SFU CPU (cores)"),
        ("cpu_us_per_forwarded_packet", "SFU CPU µs/packet"),
        ("sfu_wakeups_per_s", "SFU wake-ups/s"),
        ("latency_p50_ms", "latency p50 (ms)"),
        ("latency_p99_ms", "latency p99 (ms)"),
        ("loss_ratio", "loss"),
        ("rss_bytes_per_endpoint", "SFU RSS/endpoint (B)"),
        ("min_receiver_fps", "min fps (sent)"),
        ("freezes", "freezes"),
        ("generator_cpu_share_of_one_core", "generator CPU (cores)"),
    ];
    let mut out = String::new();
    out.push_str(&format!(
        "| {} |\n",
        cols.iter().map(|c| c.1).collect::<Vec<_>>().join(" | ")
    ));
    out.push_str(&format!("|{}\n", " --- |".repeat(cols.len())));
    for r in results {
        let cells: Vec<String> = cols
            .iter()
            .map(|(k, _)| {
                let v = &r[*k];
                let s = match v {
                    Value::String(s) => s.clone(),
                    Value::Null => "–".into(),
                    other => other.to_string(),
                };
                if *k == "min_receiver_fps" {
                    format!("{s} ({})", r["sent_fps"])
                } else {
                    s
                }
            })
            .collect();
        out.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    out
}
