//! Bad input from clients gets a clear error and never stops the server from serving others.
//! The server runs in-process on loopback with its real database, SFU task and routes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use signaling::{Config, http, protocol::MAX_MESSAGE_BYTES};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio_tungstenite::tungstenite::Message;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

struct Server {
    http: SocketAddr,
    media: SocketAddr,
    dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn start_server(name: &str) -> Server {
    start_server_with(name, |_| {}).await
}

async fn start_server_with(name: &str, configure: impl FnOnce(&mut Config)) -> Server {
    let dir = std::env::temp_dir().join(format!("bridge-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let web = dir.join("web");
    std::fs::create_dir_all(&web).expect("temp dir");
    std::fs::write(web.join("index.html"), "<!doctype html><title>test</title>").expect("index");
    let mut config = Config::for_test(dir.join("data"), web);
    configure(&mut config);
    let state = signaling::start(&config).await.expect("server starts");
    let media = state.sfu.local_addr();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let http = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(listener, http::router(state))
            .await
            .expect("serve");
    });
    Server { http, media, dir }
}

async fn connect(server: &Server) -> Ws {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", server.http))
        .await
        .expect("WebSocket connects");
    ws
}

/// The next JSON message from the server, within 5 s.
async fn next_json(ws: &mut Ws) -> serde_json::Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a message within 5 s")
            .expect("the connection stays open")
            .expect("a valid frame");
        if let Message::Text(t) = msg {
            return serde_json::from_str(t.as_str()).expect("the server sends JSON");
        }
    }
}

async fn send(ws: &mut Ws, text: impl Into<String>) {
    ws.send(Message::Text(text.into().into()))
        .await
        .expect("send");
}

async fn expect_error(ws: &mut Ws, code: &str) -> serde_json::Value {
    let msg = next_json(ws).await;
    assert_eq!(msg["type"], "error", "{msg}");
    assert_eq!(msg["code"], code, "{msg}");
    assert!(
        msg["message"].as_str().is_some_and(|m| !m.is_empty()),
        "a human message: {msg}"
    );
    assert_eq!(msg["v"], 1);
    msg
}

async fn http_get(server: &Server, path: &str) -> (u16, String) {
    http_request(server, "GET", path, "", "").await
}

/// One HTTP/1.1 request; `headers` are extra header lines, each ending in CRLF.
async fn http_request(
    server: &Server,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> (u16, String) {
    let mut s = TcpStream::connect(server.http).await.expect("connect");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{headers}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    let status = out[9..12].parse().expect("status code");
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn metric(body: &str, name: &str) -> u64 {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("metric {name} in {body}"))
}

#[tokio::test]
async fn every_kind_of_bad_message_gets_a_clear_error_and_others_keep_being_served() {
    let server = start_server("bad-input").await;
    let mut first = connect(&server).await;

    send(&mut first, "this is not JSON").await;
    expect_error(&mut first, "bad_json").await;

    let oversized = format!(
        r#"{{"v":1,"type":"offer","sdp":"{}"}}"#,
        "x".repeat(MAX_MESSAGE_BYTES + 1)
    );
    send(&mut first, oversized).await;
    expect_error(&mut first, "message_too_large").await;

    send(&mut first, r#"{"v":1,"type":"teleport"}"#).await;
    expect_error(&mut first, "unknown_type").await;

    send(&mut first, r#"{"v":9,"type":"leave"}"#).await;
    expect_error(&mut first, "unsupported_version").await;

    send(
        &mut first,
        r#"{"v":1,"type":"join","meeting":424242,"name":"Ai đó"}"#,
    )
    .await;
    expect_error(&mut first, "meeting_not_found").await;

    send(
        &mut first,
        r#"{"v":1,"type":"join","meeting":1,"name":"   "}"#,
    )
    .await;
    expect_error(&mut first, "invalid_name").await;

    send(&mut first, r#"{"v":1,"type":"offer","sdp":"v=0"}"#).await;
    expect_error(&mut first, "not_joined").await;

    let tricky = "Xã Tân Đoàn'); DROP TABLE meetings;-- \"🎥\"";
    let join = serde_json::json!({"v": 1, "type": "join", "meeting": 1, "name": tricky});
    send(&mut first, join.to_string()).await;
    let welcome = next_json(&mut first).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    let first_id = welcome["participant_id"].as_u64().expect("an id");

    send(
        &mut first,
        r#"{"v":1,"type":"offer","sdp":"v=0\r\nnot really sdp"}"#,
    )
    .await;
    expect_error(&mut first, "bad_sdp").await;
    send(&mut first, r#"{"v":1,"type":"answer","sdp":"v=0"}"#).await;
    let err = next_json(&mut first).await;
    assert_eq!(err["type"], "error", "{err}");

    // Someone else joins and sees the first participant's name exactly as typed.
    let mut second = connect(&server).await;
    send(
        &mut second,
        r#"{"v":1,"type":"join","meeting":1,"name":"Bình"}"#,
    )
    .await;
    let welcome = next_json(&mut second).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    assert_eq!(welcome["participants"][0]["name"], tricky);
    assert_eq!(welcome["participants"][0]["id"], first_id);

    // A message too large even for the transport closes that one connection...
    let huge = "y".repeat(2 * 1024 * 1024);
    let _ = first.send(Message::Text(huge.into())).await;
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match first.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the oversized connection is closed");

    // ...the others see it leave, and are still served.
    let left = next_json(&mut second).await;
    assert_eq!(left["type"], "participant_left", "{left}");
    assert_eq!(left["id"], first_id);
    send(&mut second, r#"{"v":1,"type":"nope"}"#).await;
    expect_error(&mut second, "unknown_type").await;

    let (status, _) = http_get(&server, "/healthz").await;
    assert_eq!(status, 200);
    let (status, body) = http_get(&server, "/api/meetings").await;
    assert_eq!(status, 200);
    assert!(
        body.contains("demo"),
        "the meetings table is intact: {body}"
    );
}

#[tokio::test]
async fn garbage_udp_at_the_media_port_is_dropped_and_counted() {
    let server = start_server("udp-garbage").await;
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let junk: [&[u8]; 4] = [
        b"\x00\x01\x02",
        b"GET / HTTP/1.1\r\n\r\n",
        &[0x80; 60],
        &[0xee; 1400],
    ];
    for _ in 0..25 {
        for j in junk {
            socket.send_to(j, server.media).await.expect("send");
        }
    }
    // The counter is published after the SFU handles the datagrams: poll for it.
    let mut dropped = 0;
    for _ in 0..50 {
        let (status, body) = http_get(&server, "/metrics").await;
        assert_eq!(status, 200);
        dropped = metric(&body, "bridge_sfu_datagrams_dropped_total");
        if dropped >= 100 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(dropped, 100, "every garbage datagram is counted, once");
    let (status, _) = http_get(&server, "/healthz").await;
    assert_eq!(status, 200, "still serving");
}

#[tokio::test]
async fn the_moderation_api_wants_its_token_and_a_valid_policy() {
    let off = start_server("moderation-off").await;
    let policy = r#"{"mode":"floor","chair":1,"floor_holder":2,"last_n":9}"#;
    let (status, body) = http_request(&off, "POST", "/api/meetings/1/policy", "", policy).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("moderation_disabled"), "{body}");

    let server = start_server_with("moderation", |c| {
        c.admin_token = Some("s3cret".into());
    })
    .await;
    let auth = "Authorization: Bearer s3cret\r\n";
    let cases = [
        ("", policy, 401, "unauthorized"),
        (
            "Authorization: Bearer wrong\r\n",
            policy,
            401,
            "unauthorized",
        ),
        (auth, r#"{"mode":"loud"}"#, 400, "invalid_body"),
        (
            auth,
            r#"{"mode":"open","last_n":1000000}"#,
            400,
            "invalid_body",
        ),
        (auth, "{", 400, "invalid_body"),
    ];
    for (headers, body, want, code) in cases {
        let (status, reply) =
            http_request(&server, "POST", "/api/meetings/1/policy", headers, body).await;
        assert_eq!(status, want, "{body}: {reply}");
        let reply: serde_json::Value = serde_json::from_str(&reply).expect("a JSON error");
        assert_eq!(reply["code"], code);
        assert!(reply["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let (status, reply) =
        http_request(&server, "POST", "/api/meetings/999/policy", auth, policy).await;
    assert_eq!(status, 404, "{reply}");
    assert!(reply.contains("unknown_meeting"), "{reply}");
    let (status, reply) =
        http_request(&server, "POST", "/api/meetings/1/policy", auth, policy).await;
    assert_eq!(status, 204, "{reply}");
    let (status, _) = http_get(&server, "/healthz").await;
    assert_eq!(status, 200, "still serving");
}
