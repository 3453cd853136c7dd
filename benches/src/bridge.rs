//! Our bridge as the benchmark drives it: the `bridge` binary started as a child process on
//! loopback with a fresh data folder, and endpoints that speak its WebSocket protocol
//! (`signaling/src/protocol.rs`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

use crate::http::Client;
use crate::peer::{Peer, Publish, Run};

/// A running bridge.
pub struct Bridge {
    child: Child,
    dir: PathBuf,
    /// HTTPS address.
    pub http: SocketAddr,
    api: Client,
    admin_token: String,
}

fn free_port(udp: bool) -> Result<u16> {
    Ok(if udp {
        std::net::UdpSocket::bind("127.0.0.1:0")?
            .local_addr()?
            .port()
    } else {
        std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port()
    })
}

impl Bridge {
    /// Starts `bin` on free loopback ports and waits until it is ready.
    pub async fn start(bin: &Path, log: &Path) -> Result<Self> {
        if !bin.exists() {
            bail!(
                "the bridge binary {} does not exist (build it: cargo build --release -p signaling --bin bridge)",
                bin.display()
            );
        }
        let dir = std::env::temp_dir().join(format!("loadgen-bridge-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("web"))?;
        std::fs::write(
            dir.join("web/index.html"),
            "<!doctype html><title>bench</title>",
        )?;
        let http: SocketAddr = format!("127.0.0.1:{}", free_port(false)?).parse()?;
        let media: SocketAddr = format!("127.0.0.1:{}", free_port(true)?).parse()?;
        let admin_token = format!("bench-{}", std::process::id());
        let log_file =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let child = Command::new(bin)
            .arg("--listen")
            .arg(http.to_string())
            .arg("--media-addr")
            .arg(media.to_string())
            .arg("--data-dir")
            .arg(dir.join("data"))
            .arg("--web-root")
            .arg(dir.join("web"))
            .env("BRIDGE_ADMIN_TOKEN", &admin_token)
            .env(
                "RUST_LOG",
                std::env::var("LOADGEN_BRIDGE_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let api = Client::loopback_tls(http, Duration::from_secs(10))?;
        let mut bridge = Self {
            child,
            dir,
            http,
            api,
            admin_token,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = bridge.api.request("GET", "/healthz", &[], None).await
                && r.status == 200
            {
                break;
            }
            if let Some(status) = bridge.child.try_wait()? {
                bail!(
                    "the bridge exited at start ({status}); see {}",
                    log.display()
                );
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "the bridge did not become ready in 20 s; see {}",
                    log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(bridge)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The id of the first meeting (the demo meeting created in an empty database).
    pub async fn meeting(&self) -> Result<i64> {
        let r = self.api.request("GET", "/api/meetings", &[], None).await?;
        if r.status != 200 {
            bail!("GET /api/meetings answered {}", r.status);
        }
        let v = r.json()?;
        let list = v
            .as_array()
            .or_else(|| v.get("meetings").and_then(Value::as_array))
            .context("GET /api/meetings is not a list")?;
        list.first()
            .and_then(|m| m.get("id"))
            .and_then(Value::as_i64)
            .context("the bridge has no meeting")
    }

    /// `bridge_sfu_forwarded_packets_total` from `/metrics`.
    pub async fn forwarded_packets(&self) -> Result<u64> {
        let r = self.api.request("GET", "/metrics", &[], None).await?;
        let text = String::from_utf8_lossy(&r.body);
        text.lines()
            .find_map(|l| {
                let rest = l.strip_prefix("bridge_sfu_forwarded_packets_total")?;
                rest.split_whitespace().last()?.parse::<f64>().ok()
            })
            .map(|v| v as u64)
            .context("/metrics has no bridge_sfu_forwarded_packets_total")
    }

    /// Sets the meeting's moderation policy (`POST /api/meetings/{id}/policy`).
    pub async fn set_policy(&self, meeting: i64, policy: &Value) -> Result<()> {
        let auth = format!("Bearer {}", self.admin_token);
        let r = self
            .api
            .request(
                "POST",
                &format!("/api/meetings/{meeting}/policy"),
                &[("Authorization", &auth)],
                Some(policy),
            )
            .await?;
        if r.status != 204 && r.status != 200 {
            bail!(
                "POST /api/meetings/{meeting}/policy answered {} ({}); does this bridge have the policy endpoint?",
                r.status,
                String::from_utf8_lossy(&r.body)
            );
        }
        Ok(())
    }

    /// Stops the bridge and removes its data folder.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        for _ in 0..50 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One endpoint in the bridge: its WebSocket session and its peer connection.
pub struct BridgeEndpoint {
    /// Its participant id (from `welcome`).
    pub id: u64,
    /// The peer connection.
    pub peer: Arc<Peer>,
    out: mpsc::UnboundedSender<String>,
    /// `error` messages the server sent.
    pub errors: Arc<AtomicU64>,
}

impl BridgeEndpoint {
    /// Joins `meeting` as `name`, publishing `publish` (a receive-only endpoint when empty),
    /// and waits for the connection.
    pub async fn join(
        http: SocketAddr,
        meeting: i64,
        name: String,
        publish: Publish,
        run: Arc<Run>,
    ) -> Result<Self> {
        let name = name.as_str();
        let tcp = tokio::net::TcpStream::connect(http).await?;
        tcp.set_nodelay(true)?;
        let config = crate::tls::loopback_client_config(http)?;
        let name_ip = rustls::pki_types::ServerName::IpAddress(http.ip().into());
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name_ip, tcp)
            .await
            .context("TLS handshake with the bridge")?;
        let url = format!("wss://{}/ws", http);
        let (ws, _) = tokio_tungstenite::client_async(url, tls)
            .await
            .context("WebSocket handshake with the bridge")?;
        let (mut sink, mut stream) = ws.split();

        let publishes = !publish.video.is_empty() || publish.audio.is_some();
        let peer = Arc::new(Peer::new(run.clone(), publish, name).await?);
        if !publishes {
            peer.add_recvonly_audio().await?;
        }

        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<String>();
        let (welcome_tx, welcome_rx) = oneshot::channel::<u64>();
        let (answered_tx, answered_rx) = oneshot::channel::<Result<()>>();
        let errors = Arc::new(AtomicU64::new(0));

        // Writer: everything we send, and pongs.
        let (pong_tx, mut pong_rx) = mpsc::unbounded_channel::<Vec<u8>>();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    m = out_rx.recv() => match m {
                        Some(text) => if sink.send(Message::Text(text.into())).await.is_err() { break },
                        None => break,
                    },
                    p = pong_rx.recv() => match p {
                        Some(data) => if sink.send(Message::Pong(data.into())).await.is_err() { break },
                        None => break,
                    },
                }
            }
            let _ = sink.close().await;
        });

        // Reader: the server's messages, applied in order.
        let reader_peer = peer.clone();
        let reader_out = out_tx.clone();
        let reader_errors = errors.clone();
        let who = name.to_string();
        tokio::spawn(async move {
            let mut welcome_tx = Some(welcome_tx);
            let mut answered_tx = Some(answered_tx);
            while let Some(Ok(msg)) = stream.next().await {
                let text = match msg {
                    Message::Text(t) => t.to_string(),
                    Message::Ping(d) => {
                        let _ = pong_tx.send(d.to_vec());
                        continue;
                    }
                    Message::Close(_) => break,
                    _ => continue,
                };
                let Ok(v) = serde_json::from_str::<Value>(&text) else {
                    eprintln!("loadgen: {who}: the bridge sent non-JSON: {text:.80}");
                    continue;
                };
                match v.get("type").and_then(Value::as_str).unwrap_or_default() {
                    "welcome" => {
                        if let (Some(tx), Some(id)) = (
                            welcome_tx.take(),
                            v.get("participant_id").and_then(Value::as_u64),
                        ) {
                            let _ = tx.send(id);
                        }
                    }
                    "answer" => {
                        let sdp = v.get("sdp").and_then(Value::as_str).unwrap_or_default();
                        let r = reader_peer.accept_answer(sdp.to_string()).await;
                        if let Some(tx) = answered_tx.take() {
                            let _ = tx.send(r);
                        }
                    }
                    "offer" => {
                        let sdp = v.get("sdp").and_then(Value::as_str).unwrap_or_default();
                        match reader_peer.answer(sdp.to_string()).await {
                            Ok(answer) => {
                                let msg = json!({"v":1,"type":"answer","sdp":answer});
                                let _ = reader_out.send(msg.to_string());
                            }
                            Err(e) => {
                                eprintln!("loadgen: {who}: cannot answer the bridge's offer: {e:#}")
                            }
                        }
                    }
                    "candidate" => {
                        if let Some(c) = v.get("candidate").and_then(Value::as_str) {
                            let init = webrtc::peer_connection::RTCIceCandidateInit {
                                candidate: c.to_string(),
                                ..Default::default()
                            };
                            let _ = reader_peer.pc.add_ice_candidate(init).await;
                        }
                    }
                    // The generator publishes one video track: the message is about it.
                    "send_layers" => {
                        if let Some(n) = v.get("layers").and_then(Value::as_u64) {
                            let n = u8::try_from(n).unwrap_or(u8::MAX);
                            reader_peer.asked_layers.store(n, Ordering::Relaxed);
                        }
                    }
                    "error" => {
                        reader_errors.fetch_add(1, Ordering::Relaxed);
                        eprintln!("loadgen: {who}: the bridge sent an error: {text:.200}");
                    }
                    // participant_joined, participant_left, speakers, slots, and anything new.
                    _ => {}
                }
            }
        });

        out_tx.send(json!({"v":1,"type":"join","meeting":meeting,"name":name}).to_string())?;
        let id = tokio::time::timeout(Duration::from_secs(10), welcome_rx)
            .await
            .context("no welcome from the bridge within 10 s")?
            .context("the bridge closed the session before welcome")?;
        let offer = peer.offer().await?;
        out_tx.send(json!({"v":1,"type":"offer","sdp":offer}).to_string())?;
        tokio::time::timeout(Duration::from_secs(10), answered_rx)
            .await
            .context("no answer from the bridge within 10 s")?
            .context("the bridge closed the session before answering")??;
        peer.connected(Duration::from_secs(15)).await?;
        Ok(Self {
            id,
            peer,
            out: out_tx,
            errors,
        })
    }

    /// Sends a `view`: which participants' video this endpoint shows, at what height.
    pub fn view(&self, tiles: &[(u64, u32)]) -> Result<()> {
        let tiles: Vec<Value> = tiles
            .iter()
            .map(|(p, h)| json!({"participant": p, "height": h}))
            .collect();
        self.out
            .send(json!({"v":1,"type":"view","tiles":tiles}).to_string())
            .context("the session is closed")
    }

    /// Leaves and closes the connection.
    pub async fn leave(&self) {
        let _ = self.out.send(json!({"v":1,"type":"leave"}).to_string());
        self.peer.close().await;
    }
}
