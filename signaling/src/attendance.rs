//! What a running meeting leaves in the database: who attended when and for how long (with each
//! reconnect), and the moderation state; and what it reads back when it goes live again after a
//! restart. Also the attendance CSV and the roll-call snapshot of the REST API.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use sqlx::Row;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::AppState;
use crate::audit;
use crate::auth::{Caller, Role};
use crate::clock;
use crate::db::{Db, DbError};
use crate::http::{ApiError, db_error};
use crate::live::{Moderation, RollCallEntry, Setup};

/// How often the hub marks attendance still going (so a crash loses at most this much).
pub const HEARTBEAT_SECS: i64 = 10;

/// What the hub needs to run meeting `id` live.
pub async fn setup(db: &Db, id: i64) -> Result<Setup, DbError> {
    let row = sqlx::query("SELECT chair_id, mode, last_n, moderation FROM meetings WHERE id = $1")
        .bind(id)
        .fetch_one(db.pool())
        .await?;
    let moderation: String = row.try_get("moderation")?;
    let invited = sqlx::query(
        "SELECT s.id, s.name FROM meeting_sites ms JOIN sites s ON s.id = ms.site_id \
         WHERE ms.meeting_id = $1 ORDER BY CASE s.level WHEN 'province' THEN 0 \
         WHEN 'district' THEN 1 ELSE 2 END, s.code",
    )
    .bind(id)
    .fetch_all(db.pool())
    .await?
    .iter()
    .map(|r| Ok((r.try_get("id")?, r.try_get("name")?)))
    .collect::<Result<Vec<(i64, String)>, sqlx::Error>>()?;
    let attended = sqlx::query(
        "SELECT DISTINCT site_id FROM attendance WHERE meeting_id = $1 AND site_id IS NOT NULL",
    )
    .bind(id)
    .fetch_all(db.pool())
    .await?
    .iter()
    .map(|r| r.try_get("site_id"))
    .collect::<Result<BTreeSet<i64>, sqlx::Error>>()?;
    Ok(Setup {
        chair_id: row.try_get("chair_id")?,
        floor_mode: row.try_get::<String, _>("mode")? == "floor",
        last_n: usize::try_from(row.try_get::<i64, _>("last_n")?).unwrap_or(0),
        invited,
        moderation: serde_json::from_str(&moderation).unwrap_or_default(),
        attended,
    })
}

/// A site (or person) entered a meeting: a new attendance row; returns its id.
pub async fn arrived(
    db: &Db,
    meeting: i64,
    site: Option<i64>,
    person: Option<i64>,
) -> Result<i64, DbError> {
    let now = clock::now();
    let row = sqlx::query(
        "INSERT INTO attendance (meeting_id, site_id, person_id, joined_at, last_seen) \
         VALUES ($1, $2, $3, $4, $4) RETURNING id",
    )
    .bind(meeting)
    .bind(site)
    .bind(person)
    .bind(now)
    .fetch_one(db.pool())
    .await?;
    Ok(row.try_get("id")?)
}

/// It left.
pub async fn left(db: &Db, row: i64) -> Result<(), DbError> {
    let now = clock::now();
    sqlx::query("UPDATE attendance SET left_at = $1, last_seen = $1 WHERE id = $2")
        .bind(now)
        .bind(row)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Everyone in a meeting is still there.
pub async fn heartbeat(db: &Db) -> Result<(), DbError> {
    sqlx::query("UPDATE attendance SET last_seen = $1 WHERE left_at IS NULL")
        .bind(clock::now())
        .execute(db.pool())
        .await?;
    Ok(())
}

/// At start: stays the last run never closed (it was killed) end when they were last seen.
pub async fn close_dangling(db: &Db) -> Result<u64, DbError> {
    let done = sqlx::query(
        "UPDATE attendance SET left_at = COALESCE(last_seen, joined_at) WHERE left_at IS NULL",
    )
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected())
}

/// Stores a meeting's moderation state, with its audit entry, in one transaction.
pub async fn save_moderation(
    db: &Db,
    meeting: i64,
    moderation: &Moderation,
    actor: &str,
    action: &str,
) -> Result<(), ApiError> {
    let json = serde_json::to_string(moderation)
        .map_err(|_| ApiError::internal("the moderation state could not be stored"))?;
    let mut tx = db
        .pool()
        .begin()
        .await
        .map_err(|e| db_error(&e.into(), "storing moderation"))?;
    sqlx::query("UPDATE meetings SET moderation = $1, locked = $2 WHERE id = $3")
        .bind(json)
        .bind(i64::from(moderation.locked))
        .bind(meeting)
        .execute(&mut *tx)
        .await
        .map_err(|e| db_error(&e.into(), "storing moderation"))?;
    let detail = format!(
        "floor {:?}, muted {:?}, locked {}",
        moderation.floor, moderation.muted, moderation.locked
    );
    audit::record(
        &mut tx,
        actor,
        action,
        &format!("meeting:{meeting}"),
        &detail,
    )
    .await?;
    tx.commit()
        .await
        .map_err(|e| db_error(&e.into(), "storing moderation"))
}

fn rfc3339(t: Option<i64>) -> String {
    t.and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// Quotes a CSV field when it needs it (RFC 4180).
pub(crate) fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

pub(crate) fn unknown(id: i64) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_meeting",
        format!("there is no meeting {id}"),
    )
}

/// Attendance of a meeting as CSV: one row per stay (a reconnect starts a new one), UTC times
/// (administrators, chairs, technicians).
#[utoipa::path(get, path = "/api/meetings/{id}/attendance.csv", tag = "meetings",
    params(("id" = i64, Path, description = "Meeting id")),
    responses((status = 200, content_type = "text/csv", body = String),
        (status = 403, body = ApiError), (status = 404, body = ApiError)))]
pub async fn csv(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Administrator, Role::Chair, Role::Technician])?;
    if crate::meetings::load(&state, id).await?.is_none() {
        return Err(unknown(id));
    }
    let rows = sqlx::query(
        "SELECT a.site_id, s.code, s.name AS site_name, p.username, a.joined_at, a.left_at, \
         a.last_seen FROM attendance a LEFT JOIN sites s ON s.id = a.site_id \
         LEFT JOIN people p ON p.id = a.person_id WHERE a.meeting_id = $1 \
         ORDER BY a.joined_at, a.id",
    )
    .bind(id)
    .fetch_all(state.db.pool())
    .await
    .map_err(|e| db_error(&e.into(), "reading attendance"))?;
    let mut out = String::from("site_code,site_name,person,joined_at,left_at,seconds,stay\r\n");
    let mut stays: std::collections::HashMap<String, usize> = Default::default();
    let now = clock::now();
    for r in &rows {
        let get = |e: sqlx::Error| db_error(&e.into(), "reading attendance");
        let code: Option<String> = r.try_get("code").map_err(get)?;
        let name: Option<String> = r.try_get("site_name").map_err(get)?;
        let person: Option<String> = r.try_get("username").map_err(get)?;
        let joined: i64 = r.try_get("joined_at").map_err(get)?;
        let left: Option<i64> = r.try_get("left_at").map_err(get)?;
        let key = code.clone().or(person.clone()).unwrap_or_default();
        let stay = stays.entry(key).or_default();
        *stay += 1;
        let _ = write!(
            out,
            "{},{},{},{},{},{},{}\r\n",
            csv_field(code.as_deref().unwrap_or("")),
            csv_field(name.as_deref().unwrap_or("")),
            csv_field(person.as_deref().unwrap_or("")),
            rfc3339(Some(joined)),
            rfc3339(left),
            left.unwrap_or(now) - joined,
            stay
        );
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"attendance-{id}.csv\""),
            ),
        ],
        out,
    )
        .into_response())
}

/// Roll call now: every invited site offline, connected or in the meeting, and whether its
/// audio and video arrive (administrators, chairs, technicians).
#[utoipa::path(get, path = "/api/meetings/{id}/roll-call", tag = "meetings",
    params(("id" = i64, Path, description = "Meeting id")),
    responses((status = 200, body = [Object]), (status = 403, body = ApiError),
        (status = 404, body = ApiError)))]
pub async fn roll_call(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<Vec<RollCallEntry>>, ApiError> {
    caller.require(&[Role::Administrator, Role::Chair, Role::Technician])?;
    if crate::meetings::load(&state, id).await?.is_none() {
        return Err(unknown(id));
    }
    let setup = setup(&state.db, id)
        .await
        .map_err(|e| db_error(&e, "reading the meeting"))?;
    state
        .hub
        .roll_call(id, setup)
        .await
        .map(Json)
        .ok_or_else(|| ApiError::internal("the hub is not running"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_when_they_must_be() {
        assert_eq!(csv_field("Xã Tân Lợi"), "Xã Tân Lợi");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
