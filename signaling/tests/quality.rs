//! Meeting quality over the API, on SQLite and on PostgreSQL: the stored report (a restarted
//! bridge adds to what the previous run stored), its CSV, who may read it, and the live view's
//! shape. (The figures themselves come from real media: `tests/e2e/`.)

mod support;

use serde_json::json;
use signaling::monitor::Totals;
use signaling::reports;
use support::{admin, databases, get, import, person, post, rfc3339, site_id, start};

const SITES: &str = "code,name,level,parent_code,terminal_id\n\
                     T01,Tỉnh,province,,\n\
                     H01,Huyện Một,district,T01,\n\
                     X001,\"Xã \"\"Một\"\", A\",commune,H01,rt-x001\n\
                     X002,Xã Hai,commune,H01,rt-x002\n";

#[tokio::test]
async fn quality_reports_are_stored_added_to_and_exported() {
    for (backend, url) in databases("quality").await {
        let server = start(&format!("quality-{backend}"), url).await;
        let admin = admin(&server).await;
        let r = import(&server, &admin, SITES).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let sites = get(&server, "/api/sites", Some(&admin)).await.json();
        let (x1, x2) = (site_id(&sites, "X001"), site_id(&sites, "X002"));
        let now = signaling::clock::now();
        let meeting = post(
            &server,
            "/api/meetings",
            Some(&admin),
            &json!({"title": "Giao ban", "starts_at": rfc3339(now + 600), "ends_at": rfc3339(now + 4200),
                    "invite": {"kind": "all"}}),
        )
        .await;
        assert_eq!(meeting.status, 201, "{}", meeting.body);
        let id = meeting.json()["id"].as_i64().expect("id");

        // Nothing measured yet: an empty report, the live view empty.
        let q = get(
            &server,
            &format!("/api/meetings/{id}/quality"),
            Some(&admin),
        )
        .await;
        assert_eq!(q.status, 200, "{}", q.body);
        assert_eq!(q.json()["report"], json!([]));
        assert_eq!(q.json()["alerts"], json!([]));

        // One run stored X001's first half hour; a restarted bridge adds its own.
        let db = &server.state.db;
        let first = Totals {
            connected_seconds: 1800.0,
            expected: 100_000,
            missing: 1_000,
            lost: 50,
            worst_loss: 0.04,
            rtt_sum_ms: 4_000.0,
            rtt_samples: 100,
            worst_rtt_ms: 90.0,
            kilobits_in: 1_800_000.0,
            lowest_kbps_in: Some(400.0),
            freezes: 2,
        };
        reports::save(db, id, x1, &first, now).await.expect("save");
        let stored = reports::load(db, id, x1).await.expect("load").expect("row");
        assert_eq!(stored, first);
        let second = Totals {
            connected_seconds: 600.0,
            expected: 40_000,
            missing: 3_000,
            worst_loss: 0.12,
            lowest_kbps_in: Some(250.0),
            ..first
        };
        let merged = reports::merge(&stored, &second);
        reports::save(db, id, x1, &merged, now + 60)
            .await
            .expect("save again");
        reports::save(db, id, x2, &Totals::default(), now)
            .await
            .expect("save X002");

        let q = get(
            &server,
            &format!("/api/meetings/{id}/quality"),
            Some(&admin),
        )
        .await;
        let report = q.json()["report"].clone();
        assert_eq!(report.as_array().expect("lines").len(), 2);
        let x001 = &report[0];
        assert_eq!(x001["code"], "X001");
        assert_eq!(x001["connected_seconds"], 2400.0);
        assert_eq!(x001["loss"], 4_000.0 / 140_000.0);
        let worst = x001["worst_loss"].as_f64().expect("worst");
        assert!((worst - 0.12).abs() < 1e-6, "{worst}");
        assert_eq!(x001["lowest_kbps_in"], 250.0);
        assert_eq!(x001["freezes"], 4);
        assert_eq!(report[1]["loss"], json!(null), "nothing expected, no ratio");

        let csv = get(
            &server,
            &format!("/api/meetings/{id}/quality.csv"),
            Some(&admin),
        )
        .await;
        assert_eq!(csv.status, 200);
        assert!(
            csv.content_type.starts_with("text/csv"),
            "{}",
            csv.content_type
        );
        let lines: Vec<&str> = csv.body.lines().collect();
        assert_eq!(lines.len(), 3, "{}", csv.body);
        assert!(lines[0].starts_with("site_code,site_name,connected_seconds,loss_percent"));
        assert!(
            lines[1].starts_with("X001,\"Xã \"\"Một\"\", A\",2400,2.86,12.00,"),
            "{}",
            lines[1]
        );

        // Participants may not read it; unknown meetings are 404.
        let participant = person(
            &server,
            &admin,
            ("nguoi.du", "Người dự"),
            "participant",
            None,
        )
        .await;
        for path in [
            format!("/api/meetings/{id}/quality"),
            format!("/api/meetings/{id}/quality.csv"),
        ] {
            assert_eq!(get(&server, &path, Some(&participant)).await.status, 403);
            assert_eq!(get(&server, &path, None).await.status, 401);
        }
        let r = get(&server, "/api/meetings/999999/quality", Some(&admin)).await;
        assert_eq!(r.status, 404);
        assert_eq!(r.code(), "unknown_meeting");
    }
}

#[tokio::test]
async fn province_statistics_count_what_was_recorded() {
    for (backend, url) in databases("stats").await {
        let server = start(&format!("stats-{backend}"), url).await;
        let admin = admin(&server).await;
        let r = import(&server, &admin, SITES).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let sites = get(&server, "/api/sites", Some(&admin)).await.json();
        let t01 = site_id(&sites, "T01");
        let chair = person(
            &server,
            &admin,
            ("chu.tich", "Chủ tịch"),
            "chair",
            Some(t01),
        )
        .await;
        let now = signaling::clock::now();
        let mut ids = Vec::new();
        for title in ["Giao ban <tháng 11>", "Hủy", "Sắp tới"] {
            let r = post(
                &server,
                "/api/meetings",
                Some(&chair),
                &json!({"title": title, "starts_at": rfc3339(now + 86_400), "ends_at": rfc3339(now + 90_000),
                        "invite": {"kind": "all"}}),
            )
            .await;
            assert_eq!(r.status, 201, "{}", r.body);
            ids.push(r.json()["id"].as_i64().expect("id"));
        }
        // 10 November 2026, 09:00 to 10:30 in Vietnam (02:00 UTC): held; the second, the same
        // day, cancelled; the third stays in the future.
        let start = 1_794_276_000;
        let pool = server.state.db.pool();
        for (id, state, starts) in [
            (ids[0], "ended", start),
            (ids[1], "cancelled", start),
            (ids[2], "scheduled", now + 86_400),
        ] {
            sqlx::query(
                "UPDATE meetings SET state = $1, starts_at = $2, ends_at = $3 WHERE id = $4",
            )
            .bind(state)
            .bind(starts)
            .bind(starts + 5400)
            .bind(id)
            .execute(pool)
            .await
            .expect("update");
        }
        // The chair's site 90 minutes, X001 an hour in two stays, X002 half an hour; H01 not.
        for (site, from, to) in [
            ("T01", 0, 5400),
            ("X001", 0, 1800),
            ("X001", 2400, 4200),
            ("X002", 600, 2400),
        ] {
            sqlx::query(
                "INSERT INTO attendance (meeting_id, site_id, joined_at, left_at, last_seen) \
                 VALUES ($1, $2, $3, $4, $4)",
            )
            .bind(ids[0])
            .bind(site_id(&sites, site))
            .bind(start + from)
            .bind(start + to)
            .execute(pool)
            .await
            .expect("attendance");
        }

        let query = "from=2026-11-01&to=2026-11-30";
        let r = get(&server, &format!("/api/stats?{query}"), Some(&admin)).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let s = r.json();
        assert_eq!(s["meetings"], 1, "{s}");
        assert_eq!(s["hours"], 1.5);
        assert_eq!(s["site_hours"], 3.0);
        assert_eq!(s["invitations"], 4);
        assert_eq!(s["invitations_attended"], 3);
        assert_eq!(s["connected_share"], 0.75);
        assert_eq!(s["trips_saved"], 2, "the chair's own site travels nowhere");
        assert_eq!(s["travel_saved_vnd"], 1_000_000);
        assert_eq!(
            s["per_meeting"][0]["starts_at"],
            "2026-11-10T09:00:00+07:00"
        );
        // The day before and after: nothing.
        let r = get(
            &server,
            "/api/stats?from=2026-11-11&to=2026-11-30",
            Some(&admin),
        )
        .await;
        assert_eq!(r.json()["meetings"], 0);

        let csv = get(&server, &format!("/api/stats.csv?{query}"), Some(&chair)).await;
        assert_eq!(csv.status, 200);
        assert_eq!(csv.body.lines().count(), 3, "{}", csv.body);
        let page = get(&server, &format!("/api/stats.html?{query}"), Some(&chair)).await;
        assert_eq!(page.status, 200);
        assert!(page.content_type.starts_with("text/html"));
        assert!(page.body.contains("Giao ban &lt;tháng 11&gt;"));
        assert!(page.body.contains("1.000.000"));

        let bad = get(
            &server,
            "/api/stats?from=2026-11-30&to=2026-11-01",
            Some(&admin),
        )
        .await;
        assert_eq!((bad.status, bad.code().as_str()), (400, "invalid_period"));
        let missing = get(&server, "/api/stats", Some(&admin)).await;
        assert_eq!(
            (missing.status, missing.code().as_str()),
            (400, "invalid_period")
        );
        let participant = person(
            &server,
            &admin,
            ("nguoi.du", "Người dự"),
            "participant",
            None,
        )
        .await;
        let r = get(&server, &format!("/api/stats?{query}"), Some(&participant)).await;
        assert_eq!(r.status, 403);
    }
}
