//! The meeting lifecycle through the REST API, on SQLite and on PostgreSQL: the register of sites
//! from the sample province's CSV, people and roles, scheduling with each kind of invitation,
//! the meeting's life, the iCalendar export, room terminals, the audit log, and bad input.

mod support;

use serde_json::{Value, json};
use support::{
    Server, admin, databases, get, import, login, post, put, request, rfc3339, site_id, start,
};

const SAMPLE: &str = include_str!("../../deploy/sample-province.csv");

fn ids(v: &Value) -> Vec<i64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_i64().expect("id"))
        .collect()
}

async fn add_person(server: &Server, token: &str, username: &str, role: &str) -> i64 {
    let r = post(
        server,
        "/api/people",
        Some(token),
        &json!({"username": username, "display_name": format!("Ông {username}"),
                "role": role, "password": "mật-khẩu-dài"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()["id"].as_i64().expect("id")
}

/// A meeting body starting `from_now` seconds from now, lasting two hours.
fn meeting(title: &str, from_now: i64, invite: Value) -> Value {
    let now = signaling::clock::now();
    json!({"title": title, "agenda": "1. Khai mạc\n2. Thảo luận", "document_ref": "123/GM-UBND",
           "starts_at": rfc3339(now + from_now), "ends_at": rfc3339(now + from_now + 7200),
           "invite": invite})
}

#[tokio::test]
async fn a_province_is_registered_and_its_meetings_scheduled_run_and_recorded() {
    for (backend, url) in databases("schedule").await {
        let server = start(&format!("schedule-{backend}"), url).await;
        let admin = admin(&server).await;

        // The register: the sample province, 2 + 11 + 200 sites.
        let r = import(&server, &admin, SAMPLE).await;
        assert_eq!(r.status, 200, "{backend}: {}", r.body);
        assert_eq!(r.json()["imported"], 213);
        let sites = get(&server, "/api/sites", Some(&admin)).await.json();
        let count = |level: &str| {
            sites
                .as_array()
                .expect("sites")
                .iter()
                .filter(|s| s["level"] == level)
                .count()
        };
        assert_eq!(
            (count("province"), count("district"), count("commune")),
            (2, 11, 200)
        );
        let h01 = site_id(&sites, "H01");
        let x001 = site_id(&sites, "X001");
        assert_eq!(
            sites[2]["parent_id"].as_i64(),
            Some(site_id(&sites, "T02")),
            "districts hang under the people's committee"
        );

        // People: a chair, a participant.
        let chair = add_person(&server, &admin, "chu.tich", "chair").await;
        add_person(&server, &admin, "can.bo", "participant").await;
        let chair_token = login(&server, "chu.tich", "mật-khẩu-dài").await;
        let me = get(&server, "/api/me", Some(&chair_token)).await.json();
        assert_eq!(me["person"]["role"], "chair");

        // Each kind of invitation.
        let invites = [
            (json!({"kind": "all"}), 213),
            (json!({"kind": "level", "level": "commune"}), 200),
            (json!({"kind": "district", "site_id": h01}), 1 + 19),
            (json!({"kind": "sites", "site_ids": [x001, h01]}), 2),
        ];
        let mut scheduled = Vec::new();
        for (i, (invite, sites_invited)) in invites.into_iter().enumerate() {
            let r = post(
                &server,
                "/api/meetings",
                Some(&chair_token),
                &meeting(&format!("Họp {i}"), 86_400 * (i as i64 + 1), invite),
            )
            .await;
            assert_eq!(r.status, 201, "{backend}: {}", r.body);
            let m = r.json();
            assert_eq!(ids(&m["site_ids"]).len(), sites_invited, "{backend}: {m}");
            assert_eq!(m["state"], "scheduled");
            assert_eq!(m["chair_id"], chair);
            assert_eq!(
                (m["mode"].as_str(), m["last_n"].as_i64()),
                (Some("floor"), Some(9))
            );
            scheduled.push(m["id"].as_i64().expect("id"));
        }

        // A commune of H01 sees the three meetings that invite it, soonest first.
        let upcoming = get(
            &server,
            &format!("/api/sites/{x001}/meetings"),
            Some(&admin),
        )
        .await
        .json();
        let titles: Vec<&str> = upcoming
            .as_array()
            .expect("meetings")
            .iter()
            .map(|m| m["title"].as_str().expect("title"))
            .collect();
        assert_eq!(titles, ["Họp 0", "Họp 1", "Họp 2", "Họp 3"], "{backend}");

        // Edit one: the invitation changes, the revision counts.
        let edited = put(
            &server,
            &format!("/api/meetings/{}", scheduled[3]),
            Some(&chair_token),
            &meeting(
                "Họp 3 (sửa)",
                4 * 86_400,
                json!({"kind": "sites", "site_ids": [h01]}),
            ),
        )
        .await;
        assert_eq!(edited.status, 200, "{}", edited.body);
        assert_eq!(ids(&edited.json()["site_ids"]), vec![h01]);
        assert_eq!(edited.json()["revision"], 1);

        // The calendar file.
        let ics = get(
            &server,
            &format!("/api/meetings/{}/calendar.ics", scheduled[0]),
            Some(&admin),
        )
        .await;
        assert_eq!(ics.status, 200);
        assert!(
            ics.content_type.starts_with("text/calendar"),
            "{}",
            ics.content_type
        );
        assert!(ics.body.contains("SUMMARY:Họp 0\r\n"), "{}", ics.body);
        assert!(ics.body.contains("Văn bản: 123/GM-UBND"), "{}", ics.body);

        // Life: roll call opens by itself 30 minutes before; the chair starts and ends it.
        let soon = post(
            &server,
            "/api/meetings",
            Some(&chair_token),
            &meeting(
                "Giao ban",
                600,
                json!({"kind": "level", "level": "district"}),
            ),
        )
        .await
        .json();
        let soon_id = soon["id"].as_i64().expect("id");
        assert_eq!(soon["state"], "roll_call");
        let open = get(&server, "/api/meetings", None).await.json();
        assert!(
            open.as_array()
                .expect("list")
                .iter()
                .any(|m| m["id"] == soon_id),
            "a meeting in roll call is open for joining: {open}"
        );
        let path = |action: &str| format!("/api/meetings/{soon_id}/{action}");
        let started = post(&server, &path("start"), Some(&chair_token), &json!({})).await;
        assert_eq!(started.json()["state"], "in_progress", "{}", started.body);
        let cancel = post(&server, &path("cancel"), Some(&chair_token), &json!({})).await;
        assert_eq!(
            (cancel.status, cancel.code().as_str()),
            (409, "invalid_state")
        );
        let ended = post(&server, &path("end"), Some(&chair_token), &json!({})).await;
        assert_eq!(ended.json()["state"], "ended");
        let again = post(&server, &path("start"), Some(&chair_token), &json!({})).await;
        assert_eq!(
            (again.status, again.code().as_str()),
            (409, "invalid_state")
        );
        let cancelled = post(
            &server,
            &format!("/api/meetings/{}/cancel", scheduled[1]),
            Some(&admin),
            &json!({}),
        )
        .await;
        assert_eq!(cancelled.json()["state"], "cancelled");

        // The audit log has every change, newest first, with who did it.
        let audit = get(&server, "/api/audit?limit=1000", Some(&admin))
            .await
            .json();
        let actions: Vec<(String, String)> = audit
            .as_array()
            .expect("entries")
            .iter()
            .map(|e| {
                (
                    e["actor"].as_str().unwrap_or_default().into(),
                    e["action"].as_str().unwrap_or_default().into(),
                )
            })
            .collect();
        for expected in [
            ("person:admin", "site.create"),
            ("person:admin", "person.create"),
            ("person:chu.tich", "meeting.create"),
            ("person:chu.tich", "meeting.edit"),
            ("person:chu.tich", "meeting.start"),
            ("person:chu.tich", "meeting.end"),
            ("person:admin", "meeting.cancel"),
        ] {
            assert!(
                actions
                    .iter()
                    .any(|(a, b)| (a.as_str(), b.as_str()) == expected),
                "{backend}: {expected:?} in {actions:?}"
            );
        }
        assert_eq!(actions[0].1, "meeting.cancel");

        // Append-only: the database itself refuses to change or delete an entry.
        let pool = server.state.db.pool();
        let before = audit.as_array().expect("entries").len();
        for sql in [
            "UPDATE audit_log SET actor = 'someone else'",
            "DELETE FROM audit_log",
        ] {
            let refused = sqlx::query(sql).execute(pool).await;
            assert!(refused.is_err(), "{backend}: {sql} must fail");
        }
        let after = get(&server, "/api/audit?limit=1000", Some(&admin))
            .await
            .json();
        assert_eq!(after.as_array().expect("entries").len(), before);
        assert_eq!(after[0]["actor"], "person:admin");
    }
}

#[tokio::test]
async fn room_terminals_log_in_with_their_credential_and_see_their_own_meetings() {
    for (backend, url) in databases("terminals").await {
        let server = start(&format!("terminals-{backend}"), url).await;
        let admin = admin(&server).await;
        assert_eq!(import(&server, &admin, SAMPLE).await.status, 200);
        let sites = get(&server, "/api/sites", Some(&admin)).await.json();
        let (x001, x050) = (site_id(&sites, "X001"), site_id(&sites, "X050"));
        let issued = post(
            &server,
            &format!("/api/sites/{x001}/credential"),
            Some(&admin),
            &json!({}),
        )
        .await;
        assert_eq!(issued.status, 200, "{backend}: {}", issued.body);
        let (terminal, secret) = (
            issued.json()["terminal_id"]
                .as_str()
                .expect("terminal")
                .to_string(),
            issued.json()["secret"]
                .as_str()
                .expect("secret")
                .to_string(),
        );
        assert_eq!(terminal, "rt-x001");
        let wrong = post(
            &server,
            "/api/device/login",
            None,
            &json!({"terminal_id": terminal, "secret": "guess"}),
        )
        .await;
        assert_eq!((wrong.status, wrong.code().as_str()), (401, "unauthorized"));
        let session = post(
            &server,
            "/api/device/login",
            None,
            &json!({"terminal_id": terminal, "secret": secret}),
        )
        .await;
        assert_eq!(session.status, 200, "{}", session.body);
        let device = session.json()["token"].as_str().expect("token").to_string();
        assert_eq!(session.json()["site_id"], x001);

        let invited = post(
            &server,
            "/api/meetings",
            Some(&admin),
            &meeting(
                "Mời X001",
                3600,
                json!({"kind": "sites", "site_ids": [x001]}),
            ),
        )
        .await
        .json();
        let other = post(
            &server,
            "/api/meetings",
            Some(&admin),
            &meeting(
                "Mời X050",
                3600,
                json!({"kind": "sites", "site_ids": [x050]}),
            ),
        )
        .await
        .json();
        let schedule = get(&server, "/api/schedule", Some(&device)).await.json();
        let seen: Vec<&Value> = schedule
            .as_array()
            .expect("list")
            .iter()
            .map(|m| &m["id"])
            .collect();
        assert_eq!(seen, vec![&invited["id"]], "{backend}");
        let hidden = get(
            &server,
            &format!("/api/meetings/{}", other["id"]),
            Some(&device),
        )
        .await;
        assert_eq!(hidden.status, 404);
        let foreign = get(
            &server,
            &format!("/api/sites/{x050}/meetings"),
            Some(&device),
        )
        .await;
        assert_eq!(foreign.status, 403);
        // A terminal is not a person: no administration.
        let r = post(
            &server,
            "/api/meetings",
            Some(&device),
            &meeting("x", 60, json!({"kind": "all"})),
        )
        .await;
        assert_eq!((r.status, r.code().as_str()), (403, "forbidden"));

        // A new credential ends the old one's sessions.
        post(
            &server,
            &format!("/api/sites/{x001}/credential"),
            Some(&admin),
            &json!({}),
        )
        .await;
        assert_eq!(
            get(&server, "/api/schedule", Some(&device)).await.status,
            401
        );

        // A site renamed, and given a new terminal: the old credential and sessions end.
        let fresh = post(
            &server,
            &format!("/api/sites/{x001}/credential"),
            Some(&admin),
            &json!({}),
        )
        .await
        .json();
        let device = post(
            &server,
            "/api/device/login",
            None,
            &json!({"terminal_id": fresh["terminal_id"], "secret": fresh["secret"]}),
        )
        .await
        .json()["token"]
            .as_str()
            .expect("token")
            .to_string();
        let r = put(
            &server,
            &format!("/api/sites/{x001}"),
            Some(&admin),
            &json!({"name": "Xã Một 🏡", "terminal_id": "rt-x001-moi"}),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(
            (
                r.json()["name"].as_str(),
                r.json()["has_credential"].as_bool()
            ),
            (Some("Xã Một 🏡"), Some(false))
        );
        assert_eq!(
            get(&server, "/api/schedule", Some(&device)).await.status,
            401
        );
        let r = put(
            &server,
            &format!("/api/sites/{x001}"),
            Some(&admin),
            &json!({"terminal_id": "rt-x050"}),
        )
        .await;
        assert_eq!((r.status, r.code().as_str()), (409, "duplicate_terminal"));
        let r = put(
            &server,
            &format!("/api/sites/{x001}"),
            Some(&admin),
            &json!({"name": ""}),
        )
        .await;
        assert_eq!((r.status, r.code().as_str()), (400, "invalid_sites"));

        // An administrator changes a person: a new password ends their sessions, a disabled
        // account cannot log in, and the last administrator stays one.
        let planner = support::post(
            &server,
            "/api/people",
            Some(&admin),
            &json!({"username": "ke.hoach", "display_name": "Kế hoạch", "role": "participant",
                    "password": "mật-khẩu-dài"}),
        )
        .await
        .json();
        let pid = planner["id"].as_i64().expect("id");
        let planner_token = login(&server, "ke.hoach", "mật-khẩu-dài").await;
        let r = put(
            &server,
            &format!("/api/people/{pid}"),
            Some(&admin),
            &json!({"role": "chair", "password": "mật-khẩu-mới", "site_id": x001}),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(
            (r.json()["role"].as_str(), r.json()["site_id"].as_i64()),
            (Some("chair"), Some(x001))
        );
        assert_eq!(
            get(&server, "/api/me", Some(&planner_token)).await.status,
            401
        );
        login(&server, "ke.hoach", "mật-khẩu-mới").await;
        put(
            &server,
            &format!("/api/people/{pid}"),
            Some(&admin),
            &json!({"disabled": true}),
        )
        .await;
        let r = post(
            &server,
            "/api/login",
            None,
            &json!({"username": "ke.hoach", "password": "mật-khẩu-mới"}),
        )
        .await;
        assert_eq!(r.status, 401);
        let me = get(&server, "/api/me", Some(&admin)).await.json();
        let admin_id = me["person"]["id"].as_i64().expect("admin id");
        let r = put(
            &server,
            &format!("/api/people/{admin_id}"),
            Some(&admin),
            &json!({"role": "participant"}),
        )
        .await;
        assert_eq!((r.status, r.code().as_str()), (409, "last_administrator"));
        let r = put(
            &server,
            "/api/people/999999",
            Some(&admin),
            &json!({"disabled": true}),
        )
        .await;
        assert_eq!((r.status, r.code().as_str()), (404, "unknown_person"));

        // Logging out ends a person's session.
        let token = login(&server, "admin", signaling::config::TEST_ADMIN_PASSWORD).await;
        assert_eq!(
            post(&server, "/api/logout", Some(&token), &json!({}))
                .await
                .status,
            204
        );
        assert_eq!(get(&server, "/api/me", Some(&token)).await.status, 401);
    }
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_and_changes_nothing() {
    for (backend, url) in databases("bad").await {
        let server = start(&format!("bad-{backend}"), url).await;
        let admin = admin(&server).await;

        // A CSV with a bad row: the error names the line, and nothing is imported.
        let mut bad = SAMPLE.lines().take(6).collect::<Vec<_>>().join("\n");
        bad.push_str("\nX999,Xã Lỗi,commune,H77,\n");
        let r = import(&server, &admin, &bad).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (400, "invalid_sites"),
            "{}",
            r.body
        );
        assert!(
            r.json()["message"]
                .as_str()
                .expect("message")
                .starts_with("line 7:"),
            "{}",
            r.body
        );
        let sites = get(&server, "/api/sites", Some(&admin)).await.json();
        assert_eq!(
            sites.as_array().expect("sites").len(),
            0,
            "{backend}: nothing imported"
        );
        let short_row = import(&server, &admin, "code,name,level,parent_code\nT01,T\n").await;
        assert_eq!(short_row.status, 400);
        assert!(short_row.body.contains("line 2"), "{}", short_row.body);
        let not_utf8 = request(
            &server,
            "POST",
            "/api/sites/import",
            Some(&admin),
            "text/csv",
            b"code,name\n\xff\xfe",
        )
        .await;
        assert_eq!(
            (not_utf8.status, not_utf8.code().as_str()),
            (400, "invalid_sites")
        );

        // Names with quotes, SQL and emoji are stored and shown as text.
        let odd = "Xã \"Đồng Tâm\"'); DROP TABLE sites;-- 🎉";
        let r = post(
            &server,
            "/api/sites",
            Some(&admin),
            &json!({"code": "T01", "name": odd, "level": "province"}),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.body);
        let t01 = r.json()["id"].as_i64().expect("id");
        let sites = get(&server, "/api/sites", Some(&admin)).await.json();
        assert_eq!(sites[0]["name"], odd);
        let dup = post(
            &server,
            "/api/sites",
            Some(&admin),
            &json!({"code": "T01", "name": "x", "level": "province"}),
        )
        .await;
        assert_eq!((dup.status, dup.code().as_str()), (400, "invalid_sites"));
        let r = post(
            &server,
            "/api/meetings",
            Some(&admin),
            &meeting(odd, 3600, json!({"kind": "all"})),
        )
        .await;
        assert_eq!(r.json()["title"], odd, "{}", r.body);
        let ics = get(
            &server,
            &format!("/api/meetings/{}/calendar.ics", r.json()["id"]),
            Some(&admin),
        )
        .await;
        assert!(
            ics.body
                .contains("SUMMARY:Xã \"Đồng Tâm\"')\\; DROP TABLE sites\\;-- 🎉"),
            "{}",
            ics.body
        );

        // Scheduling: end before start, unknown and duplicate sites.
        let mut backwards = meeting("Ngược", 3600, json!({"kind": "all"}));
        let start = backwards["starts_at"].clone();
        backwards["starts_at"] = backwards["ends_at"].clone();
        backwards["ends_at"] = start;
        let r = post(&server, "/api/meetings", Some(&admin), &backwards).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (400, "end_before_start"),
            "{}",
            r.body
        );
        let r = post(
            &server,
            "/api/meetings",
            Some(&admin),
            &meeting(
                "x",
                60,
                json!({"kind": "sites", "site_ids": [t01, 999_999]}),
            ),
        )
        .await;
        assert_eq!((r.status, r.code().as_str()), (400, "unknown_site"));
        let r = post(
            &server,
            "/api/meetings",
            Some(&admin),
            &meeting("x", 60, json!({"kind": "sites", "site_ids": [t01, t01]})),
        )
        .await;
        assert_eq!((r.status, r.code().as_str()), (400, "duplicate_site"));
        let r = post(
            &server,
            "/api/meetings",
            Some(&admin),
            &meeting("x", 60, json!({"kind": "district", "site_id": t01})),
        )
        .await;
        assert_eq!((r.status, r.code().as_str()), (400, "invalid_invite"));
        let r = post(
            &server,
            "/api/meetings",
            Some(&admin),
            &json!({"title": "x"}),
        )
        .await;
        assert_eq!((r.status, r.code().as_str()), (400, "invalid_body"));

        // Roles: a participant may not schedule (403); nobody without a session (401).
        add_person(&server, &admin, "can.bo", "participant").await;
        let participant = login(&server, "can.bo", "mật-khẩu-dài").await;
        let r = post(
            &server,
            "/api/meetings",
            Some(&participant),
            &meeting("x", 60, json!({"kind": "all"})),
        )
        .await;
        assert_eq!((r.status, r.code().as_str()), (403, "forbidden"));
        let r = post(&server, "/api/sites/import", Some(&participant), &json!({})).await;
        assert_eq!(r.status, 403);
        assert_eq!(
            get(&server, "/api/audit", Some(&participant)).await.status,
            403
        );
        let r = get(&server, "/api/sites", None).await;
        assert_eq!((r.status, r.code().as_str()), (401, "unauthorized"));
        let r = get(&server, "/api/sites", Some("forged-token")).await;
        assert_eq!(r.status, 401);
        let r = post(
            &server,
            "/api/login",
            None,
            &json!({"username": "admin", "password": "wrong"}),
        )
        .await;
        assert_eq!((r.status, r.code().as_str()), (401, "unauthorized"));
        let r = post(&server, "/api/people", Some(&admin), &json!({"username": "can.bo", "display_name": "x", "role": "chair", "password": "12345678"})).await;
        assert_eq!((r.status, r.code().as_str()), (409, "duplicate_username"));

        // Oversized bodies are refused before they are read.
        let big = vec![b'x'; 3 * 1024 * 1024];
        let r = request(
            &server,
            "POST",
            "/api/sites/import",
            Some(&admin),
            "text/csv",
            &big,
        )
        .await;
        assert_eq!(r.status, 413);
        let r = request(
            &server,
            "POST",
            "/api/meetings",
            Some(&admin),
            "application/json",
            &big[..100_000],
        )
        .await;
        assert_eq!(r.status, 413);

        // And the server still serves.
        assert_eq!(get(&server, "/api/sites", Some(&admin)).await.status, 200);
    }
}

#[tokio::test]
async fn the_openapi_document_describes_every_route_it_lists() {
    let server = start("openapi", None).await;
    let doc = get(&server, "/api/openapi.json", None).await;
    assert_eq!(doc.status, 200);
    let doc = doc.json();
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 15, "{}", paths.len());
    let admin = admin(&server).await;
    for (path, item) in paths {
        for method in item.as_object().expect("methods").keys() {
            let concrete = path.replace("{id}", "1").replace("{action}", "start");
            let r = request(
                &server,
                &method.to_uppercase(),
                &concrete,
                Some(&admin),
                "application/json",
                b"{}",
            )
            .await;
            // Routed: whatever the answer, it is the handler's, not the router's.
            assert!(
                r.status != 405 && !r.body.contains("<title>test</title>"),
                "{method} {path} is documented but not routed: {} {}",
                r.status,
                r.body
            );
        }
    }
    for documented in [
        "/api/meetings",
        "/api/sites/import",
        "/api/login",
        "/api/audit",
    ] {
        assert!(paths.contains_key(documented), "{documented}");
    }
}
