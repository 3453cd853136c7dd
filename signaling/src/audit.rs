//! The audit log of administration and moderation actions: who, what, when. Append-only: the
//! database itself refuses to change or delete an entry (triggers in the migrations), and each
//! entry is written in the same transaction as the change it records.

use axum::Json;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::Any;
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::{Caller, Role};
use crate::clock;
use crate::http::{ApiError, db_error};

/// Most entries one request returns.
pub const MAX_PAGE: i64 = 1000;

/// Appends an entry inside the transaction of the change it records.
pub async fn record(
    tx: &mut sqlx::Transaction<'_, Any>,
    actor: &str,
    action: &str,
    target: &str,
    detail: &str,
) -> Result<(), ApiError> {
    sqlx::query(
        "INSERT INTO audit_log (at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(clock::now())
    .bind(actor)
    .bind(action)
    .bind(target)
    .bind(detail)
    .execute(&mut **tx)
    .await
    .map_err(|e| db_error(&e.into(), "writing the audit log"))?;
    Ok(())
}

/// One entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct Entry {
    /// Position in the log.
    pub id: i64,
    /// When, Unix seconds.
    pub at: i64,
    /// Who: `person:<username>`, `site:<id>` or `system`.
    pub actor: String,
    /// What, e.g. `meeting.create`.
    pub action: String,
    /// On what, e.g. `meeting:12`.
    pub target: String,
    /// Details in words.
    pub detail: String,
}

/// Paging of the audit log.
#[derive(Debug, Deserialize, IntoParams)]
pub struct Page {
    /// Entries before this id (newest first); absent: the newest.
    pub before: Option<i64>,
    /// How many, at most 1000 (default 100).
    pub limit: Option<i64>,
}

/// The audit log, newest first (administrators).
#[utoipa::path(get, path = "/api/audit", tag = "audit", params(Page),
    responses((status = 200, body = [Entry]), (status = 403, body = ApiError)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(page): Query<Page>,
) -> Result<Json<Vec<Entry>>, ApiError> {
    caller.require(&[Role::Administrator])?;
    let limit = page.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let rows = sqlx::query(
        "SELECT id, at, actor, action, target, detail FROM audit_log \
         WHERE id < $1 ORDER BY id DESC LIMIT $2",
    )
    .bind(page.before.unwrap_or(i64::MAX))
    .bind(limit)
    .fetch_all(state.db.pool())
    .await
    .map_err(|e| db_error(&e.into(), "reading the audit log"))?;
    rows.iter()
        .map(|r| {
            Ok(Entry {
                id: r.try_get("id")?,
                at: r.try_get("at")?,
                actor: r.try_get("actor")?,
                action: r.try_get("action")?,
                target: r.try_get("target")?,
                detail: r.try_get("detail")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map(Json)
        .map_err(|e| db_error(&e.into(), "reading the audit log"))
}
