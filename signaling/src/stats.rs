//! Province statistics, like the 2020 report's own ("64 online meetings in five months ...
//! saving about 1.5 billion VND of travel"): meetings held in a period, the sites that attended,
//! hours, the share of invited sites that connected, and the travel saved (every attending
//! site but the chair's would otherwise have travelled to the meeting). From what the system
//! recorded, not typed in. As JSON, CSV, and a printable page in Vietnamese with charts.

use std::collections::BTreeSet;
use std::fmt::Write;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use time::{Date, OffsetDateTime, UtcOffset};

use crate::AppState;
use crate::auth::{Caller, Role};
use crate::db::{Db, DbError};
use crate::http::{ApiError, db_error};

/// Vietnam's time (UTC+7, no daylight saving): the days of a period are its days.
pub const LOCAL_OFFSET_HOURS: i8 = 7;
/// The longest period asked for at once, days.
const MAX_DAYS: i64 = 3660;

/// A meeting held in the period, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Held {
    /// Its id.
    pub id: i64,
    /// Its title.
    pub title: String,
    /// Planned start and end, Unix seconds.
    pub starts_at: i64,
    /// See `starts_at`.
    pub ends_at: i64,
    /// Invited sites.
    pub invited: BTreeSet<i64>,
    /// Sites that were in it at some time.
    pub attended: BTreeSet<i64>,
    /// The chair's own site (the host: it travels nowhere either way).
    pub chair_site: Option<i64>,
    /// Time sites spent in it, added up, seconds.
    pub site_seconds: i64,
}

/// One meeting's line.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct MeetingLine {
    /// Its id.
    pub id: i64,
    /// Its title.
    pub title: String,
    /// Planned start, RFC 3339 in Vietnam's time.
    pub starts_at: String,
    /// Planned length, hours.
    pub hours: f64,
    /// Sites invited.
    pub invited: usize,
    /// Invited sites that attended.
    pub attended: usize,
    /// Travel it saved: attending sites other than the chair's.
    pub trips_saved: usize,
}

/// The statistics of a period.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Stats {
    /// First day, `YYYY-MM-DD` (Vietnam's time).
    pub from: String,
    /// Last day, included.
    pub to: String,
    /// Meetings held (begun, not cancelled).
    pub meetings: usize,
    /// Their planned hours, added up.
    pub hours: f64,
    /// Hours sites spent in them, added up.
    pub site_hours: f64,
    /// Sites that attended at least one.
    pub sites_attending: usize,
    /// Invitations (a site invited to a meeting), added up over the meetings.
    pub invitations: usize,
    /// Of those, the ones the site attended.
    pub invitations_attended: usize,
    /// `invitations_attended / invitations`, 0 to 1.
    pub connected_share: Option<f64>,
    /// Site-trips saved: every attending site but the chair's, per meeting.
    pub trips_saved: usize,
    /// What a site-trip costs, VND (`--trip-cost`).
    pub trip_cost_vnd: u64,
    /// `trips_saved × trip_cost_vnd`.
    pub travel_saved_vnd: u64,
    /// Per meeting, oldest first.
    pub per_meeting: Vec<MeetingLine>,
}

fn local() -> UtcOffset {
    UtcOffset::from_hms(LOCAL_OFFSET_HOURS, 0, 0).expect("a valid offset")
}

/// A period of whole days in Vietnam's time, `to` included: its Unix start and end.
pub fn period(from: &str, to: &str) -> Result<(i64, i64), String> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let day = |s: &str, name: &str| {
        Date::parse(s, format).map_err(|_| format!("{name}: a date like 2026-11-30, not {s:?}"))
    };
    let (from, to) = (day(from, "from")?, day(to, "to")?);
    if to < from {
        return Err("to: on or after from".into());
    }
    if (to - from).whole_days() > MAX_DAYS {
        return Err(format!("a period of at most {MAX_DAYS} days"));
    }
    let start = from.midnight().assume_offset(local()).unix_timestamp();
    let end = to.midnight().assume_offset(local()).unix_timestamp() + 86_400;
    Ok((start, end))
}

/// The statistics of the meetings `held` (`from`, `to`: the period's days as asked).
pub fn compute(from: &str, to: &str, held: &[Held], trip_cost_vnd: u64) -> Stats {
    let mut sites = BTreeSet::new();
    let (mut invitations, mut invitations_attended, mut trips, mut hours, mut site_seconds) =
        (0, 0, 0, 0.0, 0);
    let mut per_meeting = Vec::new();
    for m in held {
        sites.extend(m.attended.iter().copied());
        let attended = m.invited.intersection(&m.attended).count();
        invitations += m.invited.len();
        invitations_attended += attended;
        let saved = m
            .attended
            .iter()
            .filter(|s| Some(**s) != m.chair_site)
            .count();
        trips += saved;
        let length = m.ends_at.saturating_sub(m.starts_at).max(0) as f64 / 3600.0;
        hours += length;
        site_seconds += m.site_seconds.max(0);
        per_meeting.push(MeetingLine {
            id: m.id,
            title: m.title.clone(),
            starts_at: local_time(m.starts_at),
            hours: length,
            invited: m.invited.len(),
            attended,
            trips_saved: saved,
        });
    }
    Stats {
        from: from.into(),
        to: to.into(),
        meetings: held.len(),
        hours,
        site_hours: site_seconds as f64 / 3600.0,
        sites_attending: sites.len(),
        invitations,
        invitations_attended,
        connected_share: (invitations > 0)
            .then(|| invitations_attended as f64 / invitations as f64),
        trips_saved: trips,
        trip_cost_vnd,
        travel_saved_vnd: trips as u64 * trip_cost_vnd,
        per_meeting,
    }
}

fn local_time(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .map(|t| t.to_offset(local()))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// The meetings begun in `[start, end)` and before `now`, not cancelled, as recorded.
pub async fn gather(db: &Db, start: i64, end: i64, now: i64) -> Result<Vec<Held>, DbError> {
    let rows = sqlx::query(
        "SELECT m.id, m.title, m.starts_at, m.ends_at, p.site_id AS chair_site FROM meetings m \
         LEFT JOIN people p ON p.id = m.chair_id \
         WHERE m.starts_at >= $1 AND m.starts_at < $2 AND m.starts_at <= $3 \
         AND m.state <> 'cancelled' ORDER BY m.starts_at, m.id",
    )
    .bind(start)
    .bind(end)
    .bind(now)
    .fetch_all(db.pool())
    .await?;
    let mut held = Vec::new();
    for r in rows {
        let id: i64 = r.try_get("id")?;
        let invited = sqlx::query("SELECT site_id FROM meeting_sites WHERE meeting_id = $1")
            .bind(id)
            .fetch_all(db.pool())
            .await?
            .iter()
            .map(|r| r.try_get::<i64, _>("site_id"))
            .collect::<Result<BTreeSet<i64>, _>>()?;
        let stays = sqlx::query(
            "SELECT site_id, joined_at, COALESCE(left_at, last_seen, joined_at) AS until \
             FROM attendance WHERE meeting_id = $1 AND site_id IS NOT NULL",
        )
        .bind(id)
        .fetch_all(db.pool())
        .await?;
        let mut attended = BTreeSet::new();
        let mut site_seconds = 0;
        for s in &stays {
            attended.insert(s.try_get::<i64, _>("site_id")?);
            site_seconds += s
                .try_get::<i64, _>("until")?
                .saturating_sub(s.try_get::<i64, _>("joined_at")?);
        }
        held.push(Held {
            id,
            title: r.try_get("title")?,
            starts_at: r.try_get("starts_at")?,
            ends_at: r.try_get("ends_at")?,
            invited,
            attended,
            chair_site: r.try_get("chair_site")?,
            site_seconds,
        });
    }
    Ok(held)
}

/// Per meeting, then the totals.
pub fn csv(s: &Stats) -> String {
    let mut out = String::from("meeting_id,title,starts_at,hours,invited,attended,trips_saved\n");
    for m in &s.per_meeting {
        let _ = writeln!(
            out,
            "{},{},{},{:.2},{},{},{}",
            m.id,
            crate::attendance::csv_field(&m.title),
            m.starts_at,
            m.hours,
            m.invited,
            m.attended,
            m.trips_saved
        );
    }
    let _ = writeln!(
        out,
        "total,{} meetings,{} to {},{:.2},{},{},{}",
        s.meetings, s.from, s.to, s.hours, s.invitations, s.invitations_attended, s.trips_saved
    );
    out
}

/// Text safe inside HTML.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A number with thin groups of three, Vietnamese style (`1.500.000`).
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('.');
        }
        out.push(c);
    }
    out
}

/// The printable page: the totals, then a bar per meeting (sites attending of those invited).
pub fn html(s: &Stats) -> String {
    let mut out = String::new();
    let share = s
        .connected_share
        .map_or("—".to_string(), |v| format!("{:.0} %", v * 100.0));
    let _ = write!(
        out,
        "<!doctype html><html lang=\"vi\"><head><meta charset=\"utf-8\">\
         <title>Thống kê hội nghị trực tuyến {from} – {to}</title><style>\
         body{{font-family:sans-serif;margin:2em;color:#111}}h1{{font-size:1.4em}}\
         table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #999;padding:4px 8px;text-align:left}}\
         td.n{{text-align:right}}svg text{{font-size:12px}}@media print{{body{{margin:0}}}}</style></head><body>\
         <h1>Thống kê hội nghị trực tuyến</h1><p>Từ ngày {from} đến ngày {to}</p><table>\
         <tr><th>Số cuộc họp</th><td class=\"n\">{meetings}</td></tr>\
         <tr><th>Tổng số giờ họp</th><td class=\"n\">{hours:.1}</td></tr>\
         <tr><th>Số điểm cầu đã tham dự</th><td class=\"n\">{sites}</td></tr>\
         <tr><th>Tỷ lệ điểm cầu được mời đã kết nối</th><td class=\"n\">{share}</td></tr>\
         <tr><th>Tổng số giờ tham dự của các điểm cầu</th><td class=\"n\">{site_hours:.1}</td></tr>\
         <tr><th>Số lượt đi lại tiết kiệm được</th><td class=\"n\">{trips}</td></tr>\
         <tr><th>Chi phí đi lại ước tính tiết kiệm (đồng)</th><td class=\"n\">{saved}</td></tr>\
         </table><p>Chi phí một lượt đi lại: {cost} đồng.</p>",
        from = escape(&s.from),
        to = escape(&s.to),
        meetings = s.meetings,
        hours = s.hours,
        sites = s.sites_attending,
        site_hours = s.site_hours,
        trips = s.trips_saved,
        saved = grouped(s.travel_saved_vnd),
        cost = grouped(s.trip_cost_vnd),
    );
    // A bar per meeting: its length is the share of invited sites that attended.
    let row = 22;
    let width = 700;
    let label = 260;
    let height = row * s.per_meeting.len().max(1) + 10;
    let _ = write!(
        out,
        "<h2>Tỷ lệ điểm cầu tham dự từng cuộc họp</h2>\
         <svg role=\"img\" aria-label=\"Tỷ lệ điểm cầu tham dự từng cuộc họp\" width=\"{width}\" \
         height=\"{height}\" xmlns=\"http://www.w3.org/2000/svg\">"
    );
    for (i, m) in s.per_meeting.iter().enumerate() {
        let y = i * row + 4;
        let share = if m.invited == 0 {
            0.0
        } else {
            m.attended as f64 / m.invited as f64
        };
        let bar = ((width - label - 60) as f64 * share).round();
        let date = m.starts_at.get(..10).unwrap_or_default();
        let _ = write!(
            out,
            "<text x=\"0\" y=\"{ty}\">{date} {title}</text>\
             <rect x=\"{label}\" y=\"{y}\" width=\"{bar}\" height=\"{h}\" fill=\"#2b6cb0\"/>\
             <text x=\"{tx}\" y=\"{ty}\">{attended}/{invited}</text>",
            ty = y + 14,
            date = escape(date),
            title = escape(&m.title.chars().take(32).collect::<String>()),
            h = row - 6,
            tx = label as f64 + bar + 6.0,
            attended = m.attended,
            invited = m.invited,
        );
    }
    out.push_str(
        "</svg><h2>Các cuộc họp</h2><table><tr><th>Bắt đầu</th><th>Tiêu đề</th>\
                  <th>Số giờ</th><th>Được mời</th><th>Tham dự</th></tr>",
    );
    for m in &s.per_meeting {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{:.1}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td></tr>",
            escape(&m.starts_at),
            escape(&m.title),
            m.hours,
            m.invited,
            m.attended
        );
    }
    out.push_str("</table></body></html>\n");
    out
}

/// `?from=YYYY-MM-DD&to=YYYY-MM-DD` (Vietnam's days, `to` included). Missing ones are empty,
/// so that they get the same JSON error as a bad date rather than a plain-text rejection.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct PeriodQuery {
    /// First day.
    #[serde(default)]
    pub from: String,
    /// Last day, included.
    #[serde(default)]
    pub to: String,
}

async fn stats_of(state: &AppState, caller: &Caller, q: &PeriodQuery) -> Result<Stats, ApiError> {
    caller.require(&[Role::Administrator, Role::Chair, Role::Technician])?;
    let (start, end) = period(&q.from, &q.to)
        .map_err(|m| ApiError::new(axum::http::StatusCode::BAD_REQUEST, "invalid_period", m))?;
    let held = gather(&state.db, start, end, crate::clock::now())
        .await
        .map_err(|e| db_error(&e, "reading the meetings"))?;
    Ok(compute(&q.from, &q.to, &held, state.trip_cost_vnd))
}

/// Statistics of a period: meetings held, sites attending, hours, the share of invited sites
/// that connected, travel saved (administrators, chairs, technicians).
#[utoipa::path(get, path = "/api/stats", tag = "meetings", params(PeriodQuery),
    responses((status = 200, body = Stats), (status = 400, body = ApiError),
        (status = 403, body = ApiError)))]
pub async fn stats(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<PeriodQuery>,
) -> Result<Json<Stats>, ApiError> {
    Ok(Json(stats_of(&state, &caller, &q).await?))
}

/// The same as CSV: a line per meeting, then the totals.
#[utoipa::path(get, path = "/api/stats.csv", tag = "meetings", params(PeriodQuery),
    responses((status = 200, content_type = "text/csv", body = String),
        (status = 400, body = ApiError), (status = 403, body = ApiError)))]
pub async fn stats_csv(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<PeriodQuery>,
) -> Result<Response, ApiError> {
    let s = stats_of(&state, &caller, &q).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"stats-{}-{}.csv\"", s.from, s.to),
            ),
        ],
        csv(&s),
    )
        .into_response())
}

/// The same as a printable page in Vietnamese, with a chart.
#[utoipa::path(get, path = "/api/stats.html", tag = "meetings", params(PeriodQuery),
    responses((status = 200, content_type = "text/html", body = String),
        (status = 400, body = ApiError), (status = 403, body = ApiError)))]
pub async fn stats_page(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<PeriodQuery>,
) -> Result<Response, ApiError> {
    let s = stats_of(&state, &caller, &q).await?;
    Ok((
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html(&s),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(id: i64, invited: &[i64], attended: &[i64], chair_site: Option<i64>) -> Held {
        Held {
            id,
            title: format!("Họp {id}"),
            starts_at: 1_796_000_000 + id * 86_400,
            ends_at: 1_796_000_000 + id * 86_400 + 5400,
            invited: invited.iter().copied().collect(),
            attended: attended.iter().copied().collect(),
            chair_site,
            site_seconds: 3600 * attended.len() as i64,
        }
    }

    #[test]
    fn periods_are_whole_days_in_vietnam() {
        let (start, end) = period("2026-11-01", "2026-11-30").expect("valid");
        // 1 November 00:00 at UTC+7 is 31 October 17:00 UTC.
        assert_eq!(start, 1_793_466_000);
        assert_eq!(end - start, 30 * 86_400);
        assert!(period("2026-11-30", "2026-11-01").is_err());
        let e = period("30/11/2026", "2026-12-01").expect_err("not a date");
        assert!(e.contains("from"), "{e}");
        assert!(period("2000-01-01", "2026-01-01").is_err(), "too long");
    }

    #[test]
    fn the_figures_add_up_like_the_report_does() {
        // Two meetings: the province (site 1) chairs both. The first invites 1–4, sites 1, 2
        // and 3 attend; the second invites 1–3, all attend, and site 9 (not invited) too.
        let held = [
            held(1, &[1, 2, 3, 4], &[1, 2, 3], Some(1)),
            held(2, &[1, 2, 3], &[1, 2, 3, 9], Some(1)),
        ];
        let s = compute("2026-11-01", "2026-11-30", &held, 500_000);
        assert_eq!(s.meetings, 2);
        assert_eq!(s.hours, 3.0);
        assert_eq!(s.site_hours, 7.0);
        assert_eq!(s.sites_attending, 4);
        assert_eq!((s.invitations, s.invitations_attended), (7, 6));
        assert_eq!(s.connected_share, Some(6.0 / 7.0));
        // The chair's site travels nowhere: 2 + 3 trips.
        assert_eq!(s.trips_saved, 5);
        assert_eq!(s.travel_saved_vnd, 2_500_000);
        assert_eq!(
            s.per_meeting[1].attended, 3,
            "only invited sites count as attending"
        );
        assert_eq!(s.per_meeting[0].starts_at.get(19..), Some("+07:00"));
        let empty = compute("2026-11-01", "2026-11-30", &[], 500_000);
        assert_eq!((empty.meetings, empty.connected_share), (0, None));
    }

    #[test]
    fn the_page_and_the_csv_show_titles_as_text() {
        let mut m = held(1, &[1, 2], &[1, 2], None);
        m.title = "<script>alert(1)</script> \"Họp\", 'A' & B".into();
        let s = compute("2026-11-01", "2026-11-30", &[m], 1_500_000);
        let page = html(&s);
        assert!(!page.contains("<script>"));
        assert!(page.contains(
            "&lt;script&gt;alert(1)&lt;/script&gt; &quot;Họp&quot;, &#39;A&#39; &amp; B"
        ));
        assert!(page.contains("Chi phí đi lại ước tính tiết kiệm"));
        assert!(page.contains("3.000.000"), "2 trips × 1.500.000 đồng");
        assert!(page.contains("<svg"));
        let text = csv(&s);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[1].contains("\"<script>alert(1)</script> \"\"Họp\"\", 'A' & B\""));
        assert!(lines[2].starts_with("total,1 meetings,2026-11-01 to 2026-11-30,1.50,2,2,2"));
    }

    #[test]
    fn numbers_are_grouped_in_threes() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_000), "1.000");
        assert_eq!(grouped(1_500_000_000), "1.500.000.000");
    }
}
