//! Janus Gateway (Debian's `janus` 1.1.2, VideoRoom plugin) as the benchmark runs it: its own
//! config folder on loopback, the getifaddrs shim (compiled here with gcc) so that it offers a
//! 127.0.0.1 candidate, and its HTTP API (`docs/janus-on-loopback.md`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::http::Client;
use crate::peer::{Peer, Publish, Run};

/// The VideoRoom room the benchmark creates.
pub const ROOM: u64 = 1234;
const LIB_DIR: &str = "/usr/lib/x86_64-linux-gnu/janus";
const SHIM_SOURCE: &str = include_str!("../janus/lo_ifaddrs.c");

type Waiters = Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>>;

/// A running Janus with one API session.
pub struct Janus {
    child: Child,
    dir: PathBuf,
    api: Client,
    session: u64,
    waiters: Waiters,
    next_tx: AtomicU64,
}

fn free_tcp_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn write_configs(dir: &Path, port: u16) -> Result<()> {
    let general = format!(
        r#"general: {{
	configs_folder = "{dir}"
	plugins_folder = "{LIB_DIR}/plugins"
	transports_folder = "{LIB_DIR}/transports"
	events_folder = "{LIB_DIR}/events"
	loggers_folder = "{LIB_DIR}/loggers"
	debug_level = 3
	interface = "127.0.0.1"
	session_timeout = 60
}}
certificates: {{
}}
media: {{
	rtp_port_range = "40000-49999"
}}
nat: {{
	nice_debug = false
	ignore_mdns = true
	ice_enforce_list = "127.0.0.1"
}}
plugins: {{
	disable = "libjanus_audiobridge.so,libjanus_duktape.so,libjanus_echotest.so,libjanus_lua.so,libjanus_nosip.so,libjanus_recordplay.so,libjanus_sip.so,libjanus_streaming.so,libjanus_textroom.so,libjanus_videocall.so,libjanus_voicemail.so"
}}
transports: {{
	disable = "libjanus_mqtt.so,libjanus_nanomsg.so,libjanus_pfunix.so,libjanus_rabbitmq.so,libjanus_websockets.so"
}}
loggers: {{
	disable = "libjanus_jsonlog.so"
}}
events: {{
	broadcast = false
}}
"#,
        dir = dir.display()
    );
    std::fs::write(dir.join("janus.jcfg"), general)?;
    std::fs::write(
        dir.join("janus.transport.http.jcfg"),
        format!(
            "general: {{ json = \"plain\" base_path = \"/janus\" http = true port = {port} ip = \"127.0.0.1\" https = false }}\nadmin: {{ admin_http = false admin_https = false }}\n"
        ),
    )?;
    std::fs::write(
        dir.join("janus.plugin.videoroom.jcfg"),
        format!(
            "general: {{ }}\nroom-{ROOM}: {{ description = \"bench\" publishers = 220 bitrate = 1000000 fir_freq = 10 videocodec = \"vp8\" audiocodec = \"opus\" record = false }}\n"
        ),
    )?;
    Ok(())
}

fn build_shim(dir: &Path) -> Result<PathBuf> {
    let src = dir.join("lo_ifaddrs.c");
    let so = dir.join("lo_ifaddrs.so");
    std::fs::write(&src, SHIM_SOURCE)?;
    let status = Command::new("gcc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&so)
        .arg(&src)
        .arg("-ldl")
        .status()
        .context("running gcc (install it with: apt-get install gcc)")?;
    if !status.success() {
        bail!("gcc could not build the getifaddrs shim ({status})");
    }
    Ok(so)
}

impl Janus {
    /// Writes the config, builds the shim, starts Janus and opens an API session.
    pub async fn start(log: &Path) -> Result<Self> {
        if !Path::new("/usr/bin/janus").exists() {
            bail!("janus is not installed (apt-get install janus)");
        }
        let dir = std::env::temp_dir().join(format!("loadgen-janus-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let port = free_tcp_port()?;
        write_configs(&dir, port)?;
        let shim = build_shim(&dir)?;
        let _ = std::fs::remove_file(log);
        let child = Command::new("janus")
            .arg("-C")
            .arg(dir.join("janus.jcfg"))
            .arg("-F")
            .arg(&dir)
            .args(["-o", "-N", "-L"])
            .arg(log)
            .env("LD_PRELOAD", &shim)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting janus")?;
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let api = Client::plain(addr, Duration::from_secs(40));
        let mut janus = Self {
            child,
            dir,
            api,
            session: 0,
            waiters: Arc::default(),
            next_tx: AtomicU64::new(1),
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = janus.api.request("GET", "/janus/info", &[], None).await
                && r.status == 200
            {
                break;
            }
            if let Some(status) = janus.child.try_wait()? {
                bail!("janus exited at start ({status}); see {}", log.display());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("janus did not answer in 20 s; see {}", log.display());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let created = janus.post("/janus", json!({"janus":"create"})).await?;
        janus.session = created
            .pointer("/data/id")
            .and_then(Value::as_u64)
            .context("janus create: no session id")?;
        janus.spawn_long_poll();
        Ok(janus)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn tx(&self) -> String {
        format!("t{}", self.next_tx.fetch_add(1, Ordering::Relaxed))
    }

    async fn post(&self, path: &str, mut body: Value) -> Result<Value> {
        if body.get("transaction").is_none() {
            body["transaction"] = json!(self.tx());
        }
        let r = self.api.request("POST", path, &[], Some(&body)).await?;
        let v = r.json()?;
        if v.get("janus").and_then(Value::as_str) == Some("error") {
            bail!("janus refused {body}: {v}");
        }
        Ok(v)
    }

    /// Events arrive on the session's long poll; hand each to whoever waits for its
    /// transaction. The long poll also keeps the session alive.
    fn spawn_long_poll(&self) {
        let api = self.api.clone();
        let path = format!("/janus/{}?maxev=20", self.session);
        let waiters = self.waiters.clone();
        tokio::spawn(async move {
            loop {
                let Ok(r) = api.request("GET", &path, &[], None).await else {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                };
                let Ok(v) = r.json() else {
                    // Janus stopped: nothing more will come.
                    break;
                };
                let events = match v {
                    Value::Array(a) => a,
                    other => vec![other],
                };
                for e in events {
                    let Some(t) = e.get("transaction").and_then(Value::as_str) else {
                        continue;
                    };
                    let waiter = waiters.lock().ok().and_then(|mut w| w.remove(t));
                    if let Some(tx) = waiter {
                        let _ = tx.send(e);
                    }
                }
            }
        });
    }

    async fn attach(&self) -> Result<u64> {
        let v = self
            .post(
                &format!("/janus/{}", self.session),
                json!({"janus":"attach","plugin":"janus.plugin.videoroom"}),
            )
            .await?;
        v.pointer("/data/id")
            .and_then(Value::as_u64)
            .context("janus attach: no handle id")
    }

    /// Sends a plugin message and waits for its asynchronous result event.
    async fn message(&self, handle: u64, body: Value, jsep: Option<Value>) -> Result<Value> {
        let t = self.tx();
        let (tx, rx) = oneshot::channel();
        if let Ok(mut w) = self.waiters.lock() {
            w.insert(t.clone(), tx);
        }
        let mut msg = json!({"janus":"message","body":body,"transaction":t});
        if let Some(j) = jsep {
            msg["jsep"] = j;
        }
        let direct = self
            .post(&format!("/janus/{}/{handle}", self.session), msg)
            .await?;
        if direct.get("janus").and_then(Value::as_str) != Some("ack") {
            return Ok(direct);
        }
        let event = tokio::time::timeout(Duration::from_secs(20), rx)
            .await
            .context("no event from janus within 20 s")??;
        if let Some(err) = event.pointer("/plugindata/data/error") {
            bail!("janus videoroom error: {err}");
        }
        Ok(event)
    }

    /// Publishes `publish` into the room; returns the feed id and the connected peer.
    pub async fn publisher(
        &self,
        publish: Publish,
        run: Arc<Run>,
        name: &str,
    ) -> Result<(u64, Peer)> {
        let handle = self.attach().await?;
        let peer = Peer::new(run, publish, name).await?;
        let offer = peer.offer().await?;
        let event = self
            .message(
                handle,
                json!({"request":"joinandconfigure","ptype":"publisher","room":ROOM,"display":name}),
                Some(json!({"type":"offer","sdp":offer,"trickle":false})),
            )
            .await?;
        let feed = event
            .pointer("/plugindata/data/id")
            .and_then(Value::as_u64)
            .context("janus publisher: no feed id")?;
        let answer = event
            .pointer("/jsep/sdp")
            .and_then(Value::as_str)
            .context("janus publisher: no answer")?;
        peer.accept_answer(answer.to_string()).await?;
        peer.connected(Duration::from_secs(15)).await?;
        Ok((feed, peer))
    }

    /// Subscribes a new endpoint to `feed`; returns the connected peer.
    pub async fn subscriber(&self, feed: u64, run: Arc<Run>, name: &str) -> Result<Peer> {
        let handle = self.attach().await?;
        let event = self
            .message(
                handle,
                json!({"request":"join","ptype":"subscriber","room":ROOM,"streams":[{"feed":feed}]}),
                None,
            )
            .await?;
        let offer = event
            .pointer("/jsep/sdp")
            .and_then(Value::as_str)
            .context("janus subscriber: no offer")?;
        let peer = Peer::new(run, Publish::default(), name).await?;
        let answer = peer.answer(offer.to_string()).await?;
        self.message(
            handle,
            json!({"request":"start","room":ROOM}),
            Some(json!({"type":"answer","sdp":answer,"trickle":false})),
        )
        .await?;
        peer.connected(Duration::from_secs(15)).await?;
        Ok(peer)
    }

    /// Stops Janus (SIGTERM, then kill) and removes its config folder.
    pub async fn stop(mut self) {
        let _ = self
            .post(
                &format!("/janus/{}", self.session),
                json!({"janus":"destroy"}),
            )
            .await;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        for _ in 0..50 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
