//! Quality reports: each site's figures over a meeting ([`Totals`]), kept in the database while
//! the meeting runs, and served as JSON and CSV. A bridge that restarts mid-meeting adds what it
//! measures to what the previous run stored ([`merge`]).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sqlx::Row;

use crate::AppState;
use crate::auth::{Caller, Role};
use crate::db::{Db, DbError};
use crate::http::{ApiError, db_error};
use crate::monitor::{Alert, Sample, Totals};

/// `earlier` (stored by an earlier run) and `now` (this run's) as one: sums, the worst of the
/// worst, the lowest of the lowest.
pub fn merge(earlier: &Totals, now: &Totals) -> Totals {
    Totals {
        connected_seconds: earlier.connected_seconds + now.connected_seconds,
        expected: earlier.expected + now.expected,
        missing: earlier.missing + now.missing,
        lost: earlier.lost + now.lost,
        worst_loss: earlier.worst_loss.max(now.worst_loss),
        rtt_sum_ms: earlier.rtt_sum_ms + now.rtt_sum_ms,
        rtt_samples: earlier.rtt_samples + now.rtt_samples,
        worst_rtt_ms: earlier.worst_rtt_ms.max(now.worst_rtt_ms),
        kilobits_in: earlier.kilobits_in + now.kilobits_in,
        lowest_kbps_in: match (earlier.lowest_kbps_in, now.lowest_kbps_in) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        },
        freezes: earlier.freezes + now.freezes,
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// A site's stored totals for a meeting.
pub async fn load(db: &Db, meeting: i64, site: i64) -> Result<Option<Totals>, DbError> {
    let row = sqlx::query("SELECT * FROM quality_reports WHERE meeting_id = $1 AND site_id = $2")
        .bind(meeting)
        .bind(site)
        .fetch_optional(db.pool())
        .await?;
    row.map(|r| totals_of(&r)).transpose()
}

fn totals_of(r: &sqlx::any::AnyRow) -> Result<Totals, DbError> {
    let int = |name: &str| r.try_get::<i64, _>(name);
    Ok(Totals {
        connected_seconds: int("connected_ms")? as f64 / 1000.0,
        expected: to_u64(int("expected")?),
        missing: to_u64(int("missing")?),
        lost: to_u64(int("lost")?),
        worst_loss: int("worst_loss_ppm")? as f32 / 1e6,
        rtt_sum_ms: int("rtt_sum_ms")? as f64,
        rtt_samples: to_u64(int("rtt_samples")?),
        worst_rtt_ms: int("worst_rtt_ms")? as f32,
        kilobits_in: int("kilobits_in")? as f64,
        lowest_kbps_in: r
            .try_get::<Option<i64>, _>("lowest_kbps_in")?
            .map(|k| k as f32),
        freezes: to_u64(int("freezes")?),
    })
}

/// Stores a site's totals for a meeting (replacing what was stored).
pub async fn save(db: &Db, meeting: i64, site: i64, t: &Totals, at: i64) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO quality_reports (meeting_id, site_id, connected_ms, expected, missing, lost, \
         worst_loss_ppm, rtt_sum_ms, rtt_samples, worst_rtt_ms, kilobits_in, lowest_kbps_in, \
         freezes, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
         ON CONFLICT (meeting_id, site_id) DO UPDATE SET connected_ms = excluded.connected_ms, \
         expected = excluded.expected, missing = excluded.missing, lost = excluded.lost, \
         worst_loss_ppm = excluded.worst_loss_ppm, rtt_sum_ms = excluded.rtt_sum_ms, \
         rtt_samples = excluded.rtt_samples, worst_rtt_ms = excluded.worst_rtt_ms, \
         kilobits_in = excluded.kilobits_in, lowest_kbps_in = excluded.lowest_kbps_in, \
         freezes = excluded.freezes, updated_at = excluded.updated_at",
    )
    .bind(meeting)
    .bind(site)
    .bind((t.connected_seconds * 1000.0).round() as i64)
    .bind(to_i64(t.expected))
    .bind(to_i64(t.missing))
    .bind(to_i64(t.lost))
    .bind((f64::from(t.worst_loss) * 1e6).round() as i64)
    .bind(t.rtt_sum_ms.round() as i64)
    .bind(to_i64(t.rtt_samples))
    .bind(f64::from(t.worst_rtt_ms).round() as i64)
    .bind(t.kilobits_in.round() as i64)
    .bind(t.lowest_kbps_in.map(|k| f64::from(k).round() as i64))
    .bind(to_i64(t.freezes))
    .bind(at)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// One site's line of a meeting's quality report.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReportLine {
    /// The site.
    pub site: i64,
    /// Its code.
    pub code: String,
    /// Its name.
    pub name: String,
    /// Time measured in the meeting, seconds.
    pub connected_seconds: f64,
    /// Average loss before retransmission, 0 to 1.
    pub loss: Option<f64>,
    /// The worst sample's loss, 0 to 1.
    pub worst_loss: f32,
    /// Share lost after retransmission, 0 to 1.
    pub loss_after: Option<f64>,
    /// Average round trip, milliseconds.
    pub rtt_ms: Option<f64>,
    /// The longest round trip sampled, milliseconds.
    pub worst_rtt_ms: f32,
    /// Average incoming bitrate, kilobits per second.
    pub kbps_in: Option<f64>,
    /// The lowest incoming bitrate of a period, kilobits per second.
    pub lowest_kbps_in: Option<f32>,
    /// Video freezes.
    pub freezes: u64,
}

/// A meeting's stored report, by site code.
pub async fn of_meeting(db: &Db, meeting: i64) -> Result<Vec<ReportLine>, DbError> {
    let rows = sqlx::query(
        "SELECT q.*, s.code, s.name FROM quality_reports q JOIN sites s ON s.id = q.site_id \
         WHERE q.meeting_id = $1 ORDER BY s.code",
    )
    .bind(meeting)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            let t = totals_of(r)?;
            Ok(ReportLine {
                site: r.try_get("site_id")?,
                code: r.try_get("code")?,
                name: r.try_get("name")?,
                connected_seconds: t.connected_seconds,
                loss: t.loss(),
                worst_loss: t.worst_loss,
                loss_after: (t.expected > 0).then(|| t.lost as f64 / t.expected as f64),
                rtt_ms: t.rtt_ms(),
                worst_rtt_ms: t.worst_rtt_ms,
                kbps_in: t.kbps_in(),
                lowest_kbps_in: t.lowest_kbps_in,
                freezes: t.freezes,
            })
        })
        .collect()
}

/// The report as CSV: one line per site, times in seconds, shares in percent.
pub fn csv(lines: &[ReportLine]) -> String {
    let mut out = String::from(
        "site_code,site_name,connected_seconds,loss_percent,worst_loss_percent,\
         loss_after_retransmission_percent,rtt_ms,worst_rtt_ms,kbps_in,lowest_kbps_in,freezes\n",
    );
    let opt =
        |v: Option<f64>, scale: f64| v.map(|v| format!("{:.2}", v * scale)).unwrap_or_default();
    for l in lines {
        out.push_str(&format!(
            "{},{},{:.0},{},{:.2},{},{},{:.0},{},{},{}\n",
            crate::attendance::csv_field(&l.code),
            crate::attendance::csv_field(&l.name),
            l.connected_seconds,
            opt(l.loss, 100.0),
            f64::from(l.worst_loss) * 100.0,
            opt(l.loss_after, 100.0),
            opt(l.rtt_ms, 1.0),
            l.worst_rtt_ms,
            opt(l.kbps_in, 1.0),
            l.lowest_kbps_in
                .map(|k| format!("{k:.0}"))
                .unwrap_or_default(),
            l.freezes,
        ));
    }
    out
}

/// A meeting's quality now and over it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MeetingQuality {
    /// Each sampled site: its last minutes, oldest first.
    pub sites: Vec<SiteHistory>,
    /// Alerts firing now.
    pub alerts: Vec<Alert>,
    /// The stored report (per site, the meeting so far).
    pub report: Vec<ReportLine>,
}

/// A site's recent samples.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SiteHistory {
    /// The site.
    pub site: i64,
    /// Its samples, oldest first (the last one is now).
    pub samples: Vec<Sample>,
}

fn may_see(caller: &Caller) -> Result<(), ApiError> {
    caller.require(&[Role::Administrator, Role::Chair, Role::Technician])?;
    Ok(())
}

/// A meeting's quality: each site's last minutes, the alerts firing, the stored report
/// (administrators, chairs, technicians).
#[utoipa::path(get, path = "/api/meetings/{id}/quality", tag = "meetings",
    params(("id" = i64, Path, description = "Meeting id")),
    responses((status = 200, body = MeetingQuality), (status = 403, body = ApiError),
        (status = 404, body = ApiError)))]
pub async fn quality(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<MeetingQuality>, ApiError> {
    may_see(&caller)?;
    if crate::meetings::load(&state, id).await?.is_none() {
        return Err(crate::attendance::unknown(id));
    }
    let report = of_meeting(&state.db, id)
        .await
        .map_err(|e| db_error(&e, "reading the quality report"))?;
    let (sites, alerts) = {
        let monitor = state.monitor.lock().unwrap_or_else(|e| e.into_inner());
        let sites = monitor
            .latest(id)
            .into_iter()
            .map(|(site, _)| SiteHistory {
                site,
                samples: monitor.history(id, site),
            })
            .collect();
        (sites, monitor.firing(id))
    };
    Ok(Json(MeetingQuality {
        sites,
        alerts,
        report,
    }))
}

/// A meeting's quality report as CSV (administrators, chairs, technicians).
#[utoipa::path(get, path = "/api/meetings/{id}/quality.csv", tag = "meetings",
    params(("id" = i64, Path, description = "Meeting id")),
    responses((status = 200, content_type = "text/csv", body = String),
        (status = 403, body = ApiError), (status = 404, body = ApiError)))]
pub async fn quality_csv(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    may_see(&caller)?;
    if crate::meetings::load(&state, id).await?.is_none() {
        return Err(crate::attendance::unknown(id));
    }
    let lines = of_meeting(&state.db, id)
        .await
        .map_err(|e| db_error(&e, "reading the quality report"))?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"meeting-{id}-quality.csv\""),
            ),
        ],
        csv(&lines),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_earlier_run_and_this_one_add_up() {
        let earlier = Totals {
            connected_seconds: 100.0,
            expected: 1000,
            missing: 10,
            lost: 1,
            worst_loss: 0.04,
            rtt_sum_ms: 400.0,
            rtt_samples: 10,
            worst_rtt_ms: 80.0,
            kilobits_in: 50_000.0,
            lowest_kbps_in: Some(300.0),
            freezes: 2,
        };
        let now = Totals {
            connected_seconds: 50.0,
            expected: 500,
            missing: 40,
            lost: 0,
            worst_loss: 0.09,
            rtt_sum_ms: 300.0,
            rtt_samples: 5,
            worst_rtt_ms: 70.0,
            kilobits_in: 20_000.0,
            lowest_kbps_in: None,
            freezes: 1,
        };
        let t = merge(&earlier, &now);
        assert_eq!(t.connected_seconds, 150.0);
        assert_eq!((t.expected, t.missing, t.lost, t.freezes), (1500, 50, 1, 3));
        assert_eq!((t.worst_loss, t.worst_rtt_ms), (0.09, 80.0));
        assert_eq!(t.rtt_ms(), Some(700.0 / 15.0));
        assert_eq!(t.lowest_kbps_in, Some(300.0));
        assert_eq!(t.kbps_in(), Some(70_000.0 / 150.0));
    }

    #[test]
    fn the_csv_has_a_line_per_site_and_quotes_names() {
        let line = ReportLine {
            site: 3,
            code: "X001".into(),
            name: "Xã \"Một\", huyện A".into(),
            connected_seconds: 3600.4,
            loss: Some(0.0123),
            worst_loss: 0.05,
            loss_after: Some(0.001),
            rtt_ms: Some(42.346),
            worst_rtt_ms: 120.0,
            kbps_in: Some(812.5),
            lowest_kbps_in: Some(300.0),
            freezes: 4,
        };
        let text = csv(&[line]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[1],
            "X001,\"Xã \"\"Một\"\", huyện A\",3600,1.23,5.00,0.10,42.35,120,812.50,300,4"
        );
    }
}

/// `POST /api/test/loss` body.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossBody {
    /// The site whose incoming media is impaired.
    pub site: i64,
    /// Share of its RTP packets dropped, 0 (stop) to 100.
    pub percent: u8,
}

/// Test hook (only with `--test-hooks`, administrators): drops a share of what a site's
/// endpoints send, at the SFU, as a lossy link would. Not in the OpenAPI document.
pub async fn test_loss(
    State(state): State<AppState>,
    caller: Caller,
    body: axum::body::Bytes,
) -> Result<axum::http::StatusCode, ApiError> {
    if !state.test_hooks {
        return Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "not_found",
            "no such route".into(),
        ));
    }
    caller.require(&[Role::Administrator])?;
    let body: LossBody = crate::http::parse_json(&body)?;
    if body.percent > 100 {
        return Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "invalid_body",
            "percent: 0 to 100".into(),
        ));
    }
    let endpoints: Vec<u64> = state
        .hub
        .placed()
        .await
        .into_iter()
        .filter(|p| p.site == Some(body.site))
        .map(|p| p.endpoint)
        .collect();
    for e in &endpoints {
        state.sfu.impair(sfu::EndpointId(*e), body.percent).await;
    }
    tracing::warn!(
        site = body.site,
        percent = body.percent,
        endpoints = endpoints.len(),
        "test hook: impaired"
    );
    Ok(axum::http::StatusCode::NO_CONTENT)
}
