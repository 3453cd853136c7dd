//! A scheduled meeting while it runs, over the real WebSocket protocol, on SQLite and on
//! PostgreSQL: who may enter, roll call, floor control and mutes reaching the SFU (which
//! enforces them: `sfu/tests/audio_policy.rs`), the lock, a second terminal of a site, and what
//! is recorded (attendance, audit).

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sfu::{AudioMode, EndpointId, MeetingId};
use support::{Server, admin, databases, get, person, post, request, rfc3339, site_id, start};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

const SAMPLE: &str = include_str!("../../deploy/sample-province.csv");

async fn connect(server: &Server, token: Option<&str>) -> Ws {
    let mut req = format!("ws://{}/ws", server.http)
        .into_client_request()
        .expect("request");
    if let Some(t) = token {
        req.headers_mut().insert(
            "Authorization",
            format!("Bearer {t}").parse().expect("header"),
        );
    }
    let (ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("WebSocket connects");
    ws
}

async fn send(ws: &mut Ws, msg: Value) {
    let mut msg = msg;
    msg["v"] = json!(1);
    ws.send(Message::Text(msg.to_string().into()))
        .await
        .expect("send");
}

/// The next message of `kind` within 5 s, skipping others.
async fn next_of(ws: &mut Ws, kind: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .unwrap_or_else(|_| panic!("no {kind} message within 5 s"))
            .expect("open")
            .expect("frame");
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(t.as_str()).expect("JSON");
            if v["type"] == kind {
                return v;
            }
            if v["type"] == "error" && kind != "error" {
                panic!("expected {kind}, got {v}");
            }
        }
    }
}

/// The first `floor` message for which `pred` holds (earlier ones are stale).
async fn floor_where(ws: &mut Ws, pred: impl Fn(&Value) -> bool) -> Value {
    loop {
        let floor = next_of(ws, "floor").await;
        if pred(&floor) {
            return floor;
        }
    }
}

async fn join(ws: &mut Ws, meeting: i64, name: &str) -> u64 {
    welcome(ws, meeting, name).await["participant_id"]
        .as_u64()
        .expect("id")
}

/// Joins; the `welcome` message.
async fn welcome(ws: &mut Ws, meeting: i64, name: &str) -> Value {
    send(
        ws,
        json!({"type": "join", "meeting": meeting, "name": name}),
    )
    .await;
    next_of(ws, "welcome").await
}

async fn refused(ws: &mut Ws, msg: Value) -> String {
    send(ws, msg).await;
    next_of(ws, "error").await["code"]
        .as_str()
        .expect("code")
        .to_string()
}

/// A room terminal's session token for site `code`.
async fn terminal(server: &Server, admin: &str, sites: &Value, code: &str) -> String {
    let id = site_id(sites, code);
    let issued = post(
        server,
        &format!("/api/sites/{id}/credential"),
        Some(admin),
        &json!({}),
    )
    .await
    .json();
    device_login(server, &issued).await
}

async fn device_login(server: &Server, issued: &Value) -> String {
    let r = post(
        server,
        "/api/device/login",
        None,
        &json!({"terminal_id": issued["terminal_id"], "secret": issued["secret"]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["token"].as_str().expect("token").to_string()
}

async fn roll_call(server: &Server, token: &str, meeting: i64) -> Vec<(i64, String)> {
    let r = get(
        server,
        &format!("/api/meetings/{meeting}/roll-call"),
        Some(token),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["site"].as_i64().expect("site"),
                e["presence"].as_str().expect("presence").to_string(),
            )
        })
        .collect()
}

/// Polls roll call until `site` shows `presence` (within 5 s).
async fn wait_presence(server: &Server, token: &str, meeting: i64, site: i64, presence: &str) {
    for _ in 0..50 {
        if roll_call(server, token, meeting)
            .await
            .iter()
            .any(|(s, p)| *s == site && p == presence)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("site {site} never showed {presence}");
}

async fn policy(server: &Server, meeting: i64) -> sfu::MediaPolicy {
    server
        .state
        .sfu
        .media_policy(MeetingId(meeting))
        .await
        .expect("the meeting has a policy at the SFU")
}

#[tokio::test]
async fn the_chair_runs_the_floor_and_the_sfu_is_told() {
    for (backend, url) in databases("live").await {
        let server = start(&format!("live-{backend}"), url).await;
        let admin = admin(&server).await;
        assert_eq!(
            request(
                &server,
                "POST",
                "/api/sites/import",
                Some(&admin),
                "text/csv",
                SAMPLE.as_bytes()
            )
            .await
            .status,
            200
        );
        let sites = get(&server, "/api/sites", Some(&admin)).await.json();
        let (t02, h01) = (site_id(&sites, "T02"), site_id(&sites, "H01"));
        let (x001, x002, x003) = (
            site_id(&sites, "X001"),
            site_id(&sites, "X002"),
            site_id(&sites, "X003"),
        );
        let chair_token = person(
            &server,
            &admin,
            ("chu.tich", "Chủ tịch"),
            "chair",
            Some(t02),
        )
        .await;
        let now = signaling::clock::now();
        // Starts in 10 minutes: roll call is open.
        let meeting = post(
            &server,
            "/api/meetings",
            Some(&chair_token),
            &json!({"title": "Giao ban huyện", "starts_at": rfc3339(now + 600),
                    "ends_at": rfc3339(now + 4200), "invite": {"kind": "district", "site_id": h01}}),
        )
        .await
        .json();
        let id = meeting["id"].as_i64().expect("id");
        assert_eq!(meeting["state"], "roll_call");

        // A guest, and a site that is not invited, stay out.
        let mut guest = connect(&server, None).await;
        let code = refused(
            &mut guest,
            json!({"type": "join", "meeting": id, "name": "Khách"}),
        )
        .await;
        assert_eq!(code, "login_required");
        let outsider = terminal(&server, &admin, &sites, "X100").await;
        let mut outsider = connect(&server, Some(&outsider)).await;
        let code = refused(
            &mut outsider,
            json!({"type": "join", "meeting": id, "name": "X100"}),
        )
        .await;
        assert_eq!(code, "not_invited");

        // The chair enters and sees the floor and roll call.
        let mut chair = connect(&server, Some(&chair_token)).await;
        let chair_id = join(&mut chair, id, "Chủ tọa").await;
        let floor = next_of(&mut chair, "floor").await;
        assert_eq!(floor["holder"], Value::Null);
        let rc = next_of(&mut chair, "roll_call").await;
        assert_eq!(rc["sites"].as_array().expect("sites").len(), 1 + 1 + 19);

        // Roll call: connected (terminal online), then in the meeting.
        let t1 = terminal(&server, &admin, &sites, "X001").await;
        let t2 = terminal(&server, &admin, &sites, "X002").await;
        let t3 = terminal(&server, &admin, &sites, "X003").await;
        wait_presence(&server, &admin, id, x001, "offline").await;
        let mut s1 = connect(&server, Some(&t1)).await;
        wait_presence(&server, &admin, id, x001, "connected").await;
        let welcomed = welcome(&mut s1, id, "Xã 1").await;
        let p1 = welcomed["participant_id"].as_u64().expect("id");
        // Those already in are listed, the chair marked as such (room screens show it large).
        assert_eq!(
            welcomed["participants"],
            json!([{"id": chair_id, "name": "Chủ tọa", "site": t02, "chair": true}])
        );
        let mut s2 = connect(&server, Some(&t2)).await;
        let p2 = join(&mut s2, id, "Xã 2").await;
        wait_presence(&server, &admin, id, x001, "joined").await;
        wait_presence(&server, &admin, id, x002, "joined").await;
        wait_presence(&server, &admin, id, t02, "joined").await;
        wait_presence(&server, &admin, id, x003, "offline").await;
        let p = policy(&server, id).await;
        assert_eq!(p.mode, AudioMode::Floor);
        assert_eq!(p.chair, Some(EndpointId(chair_id)));
        assert_eq!(p.last_n, 9);

        // Floor: X002 asks; only the chair may grant; granted, the SFU hears X002.
        send(&mut s2, json!({"type": "floor", "action": "request"})).await;
        let floor = next_of(&mut chair, "floor").await;
        assert_eq!(floor["queue"], json!([x002]));
        let code = refused(
            &mut s2,
            json!({"type": "floor", "action": "grant", "site": x002}),
        )
        .await;
        assert_eq!(code, "not_chair");
        send(
            &mut chair,
            json!({"type": "floor", "action": "grant", "site": x002}),
        )
        .await;
        let floor = floor_where(&mut s1, |f| !f["holder"].is_null()).await;
        assert_eq!(floor["holder"], json!(x002));
        assert_eq!(floor["queue"], json!([]));
        assert_eq!(policy(&server, id).await.floor_holder, Some(EndpointId(p2)));

        // Mutes: one site, then all but the chair; the SFU gets the endpoints.
        send(
            &mut chair,
            json!({"type": "mute", "site": x001, "muted": true}),
        )
        .await;
        floor_where(&mut chair, |f| f["muted"] == json!([x001])).await;
        assert_eq!(policy(&server, id).await.muted, vec![EndpointId(p1)]);
        send(&mut chair, json!({"type": "mute_all", "muted": true})).await;
        floor_where(&mut chair, |f| {
            f["muted"].as_array().is_some_and(|m| m.len() > 1)
        })
        .await;
        let muted = policy(&server, id).await.muted;
        assert!(
            muted.contains(&EndpointId(p1)) && muted.contains(&EndpointId(p2)),
            "{muted:?}"
        );
        assert!(!muted.contains(&EndpointId(chair_id)), "never the chair");
        send(&mut chair, json!({"type": "floor", "action": "revoke"})).await;
        floor_where(&mut chair, |f| f["holder"].is_null()).await;
        assert_eq!(policy(&server, id).await.floor_holder, None);
        let code = refused(&mut s1, json!({"type": "lock", "locked": true})).await;
        assert_eq!(code, "not_chair");

        // Locked: X003, not in yet, stays out; X001 may come back.
        send(&mut chair, json!({"type": "lock", "locked": true})).await;
        floor_where(&mut chair, |f| f["locked"] == true).await;
        let mut s3 = connect(&server, Some(&t3)).await;
        let code = refused(
            &mut s3,
            json!({"type": "join", "meeting": id, "name": "Xã 3"}),
        )
        .await;
        assert_eq!(code, "meeting_locked");
        // Leaving ends the session: the site is offline.
        send(&mut s1, json!({"type": "leave"})).await;
        wait_presence(&server, &admin, id, x001, "offline").await;
        drop(s1);
        let mut s1 = connect(&server, Some(&t1)).await;
        let p1_again = join(&mut s1, id, "Xã 1").await;

        // A second device with X001's credential replaces the first.
        let mut s1b = connect(&server, Some(&t1)).await;
        join(&mut s1b, id, "Xã 1 (máy 2)").await;
        let code = next_of(&mut s1, "error").await["code"].clone();
        assert_eq!(code, "replaced");
        // The muted site stays muted on its new device.
        let muted = policy(&server, id).await.muted;
        assert!(!muted.contains(&EndpointId(p1_again)), "{muted:?}");
        assert_eq!(
            muted.iter().filter(|e| e.0 > p1_again).count(),
            1,
            "{muted:?}"
        );

        // Recorded: attendance with X001's three stays, and the chair's decisions.
        let csv = get(
            &server,
            &format!("/api/meetings/{id}/attendance.csv"),
            Some(&admin),
        )
        .await;
        assert_eq!(csv.status, 200);
        let x001_rows: Vec<&str> = csv
            .body
            .lines()
            .filter(|l| l.starts_with("X001,"))
            .collect();
        assert_eq!(x001_rows.len(), 3, "{}", csv.body);
        assert!(x001_rows[2].ends_with(",3"), "{}", csv.body);
        assert!(csv.body.lines().any(|l| l.starts_with("X002,")));
        assert!(csv.body.contains(",chu.tich,"), "{}", csv.body);
        let audit = get(&server, "/api/audit?limit=100", Some(&admin))
            .await
            .json();
        let actions: Vec<String> = audit
            .as_array()
            .expect("entries")
            .iter()
            .filter(|e| e["actor"] == "person:chu.tich")
            .map(|e| e["action"].as_str().unwrap_or_default().to_string())
            .collect();
        for a in [
            "floor.grant",
            "moderation.mute",
            "moderation.mute_all",
            "floor.revoke",
            "moderation.lock",
        ] {
            assert!(
                actions.iter().any(|x| x == a),
                "{backend}: {a} in {actions:?}"
            );
        }
        // The stored meeting shows the lock.
        let stored = get(&server, &format!("/api/meetings/{id}"), Some(&admin))
            .await
            .json();
        assert_eq!(stored["locked"], true);
        // Bad floor messages get clear errors.
        let code = refused(&mut chair, json!({"type": "floor", "action": "grant"})).await;
        assert_eq!(code, "invalid_message");
        let code = refused(
            &mut chair,
            json!({"type": "floor", "action": "grant", "site": 999_999}),
        )
        .await;
        assert_eq!(code, "not_invited");

        // Spotlight: the chair shows X001 (its latest device) to everyone first.
        send(&mut chair, json!({"type": "spotlight", "site": x001})).await;
        floor_where(&mut chair, |f| f["spotlight"] == json!(x001)).await;
        let spotlit = policy(&server, id).await.spotlight.expect("spotlight");
        assert!(spotlit.0 > p1_again, "the second device: {spotlit:?}");
        let code = refused(&mut s2, json!({"type": "spotlight", "site": null})).await;
        assert_eq!(code, "not_chair");

        // Presenting: X002 shares a document; X001 may not take it over; the SFU is told.
        send(&mut s2, json!({"type": "share", "on": true})).await;
        floor_where(&mut chair, |f| f["presenter"] == json!(p2)).await;
        assert_eq!(policy(&server, id).await.presenter, Some(EndpointId(p2)));
        let code = refused(&mut s1b, json!({"type": "share", "on": true})).await;
        assert_eq!(code, "someone_presents");

        // The chair ends the meeting: everyone in it is told and let go.
        let r = post(
            &server,
            &format!("/api/meetings/{id}/end"),
            Some(&chair_token),
            &json!({}),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        for ws in [&mut chair, &mut s2, &mut s1b] {
            assert_eq!(next_of(ws, "error").await["code"], "meeting_ended");
        }
        // Then the server closes the session.
        let after = tokio::time::timeout(Duration::from_secs(5), s2.next())
            .await
            .expect("closed within 5 s");
        assert!(
            matches!(after, None | Some(Err(_)) | Some(Ok(Message::Close(_)))),
            "{after:?}"
        );
        let _ = (s2, s3, s1b, guest, outsider);
    }
}

#[tokio::test]
async fn a_dashboard_watches_a_meeting_without_taking_part() {
    let server = start("watch", None).await;
    let admin = admin(&server).await;
    let r = request(
        &server,
        "POST",
        "/api/sites/import",
        Some(&admin),
        "text/csv",
        SAMPLE.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200);
    let now = signaling::clock::now();
    let meeting = post(
        &server,
        "/api/meetings",
        Some(&admin),
        &json!({"title": "Giao ban", "starts_at": rfc3339(now + 600), "ends_at": rfc3339(now + 4200),
                "invite": {"kind": "level", "level": "district"}}),
    )
    .await;
    assert_eq!(meeting.status, 201, "{}", meeting.body);
    let id = meeting.json()["id"].as_i64().expect("id");

    // An administrator's dashboard: roll call and quality at once, and no participant made.
    let mut dash = connect(&server, Some(&admin)).await;
    send(&mut dash, json!({"type": "watch", "meeting": id})).await;
    let rc = next_of(&mut dash, "roll_call").await;
    assert_eq!(rc["sites"].as_array().expect("sites").len(), 11);
    let q = next_of(&mut dash, "quality").await;
    assert_eq!(
        (q["sites"].clone(), q["alerts"].clone()),
        (json!([]), json!([]))
    );
    assert_eq!(server.state.hub.placed().await, vec![]);

    // Nobody is in the meeting yet; a district's terminal comes online: the dashboard's roll
    // call follows (the watch task pushes it every few seconds).
    let sites = get(&server, "/api/sites", Some(&admin)).await.json();
    let h01 = site_id(&sites, "H01");
    let token = terminal(&server, &admin, &sites, "H01").await;
    let _h01 = connect(&server, Some(&token)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let msg = tokio::time::timeout_at(deadline, dash.next())
            .await
            .expect("H01 connected in a roll call within 15 s")
            .expect("open")
            .expect("frame");
        let Message::Text(t) = msg else { continue };
        let v: Value = serde_json::from_str(t.as_str()).expect("JSON");
        let connected = v["type"] == "roll_call"
            && v["sites"]
                .as_array()
                .expect("sites")
                .iter()
                .any(|e| e["site"] == h01 && e["presence"] == "connected");
        if connected {
            break;
        }
    }

    // A participant may not; an unknown meeting is named.
    let participant = person(
        &server,
        &admin,
        ("nguoi.du", "Người dự"),
        "participant",
        None,
    )
    .await;
    let mut other = connect(&server, Some(&participant)).await;
    let code = refused(&mut other, json!({"type": "watch", "meeting": id})).await;
    assert_eq!(code, "forbidden");
    let code = refused(&mut dash, json!({"type": "watch", "meeting": 999_999})).await;
    assert_eq!(code, "unknown_meeting");
    let mut guest = connect(&server, None).await;
    let code = refused(&mut guest, json!({"type": "watch", "meeting": id})).await;
    assert_eq!(code, "forbidden");
}
