//! The schedule: meetings with a title, agenda, the official document of the invitation, a
//! chair, times, invited sites, an audio mode and last-N; their life (see [`lifecycle`]); the
//! iCalendar export; each site's upcoming meetings.
//!
//! [`lifecycle`]: crate::lifecycle

use std::collections::BTreeSet;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::{Any, AnyRow};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::AppState;
use crate::audit;
use crate::auth::{Caller, Role};
use crate::clock;
use crate::http::{ApiError, db_error, parse_json};
use crate::ical;
use crate::lifecycle::{self, Action, State as MeetingState, Times};
use crate::sites::{self, Level, Site};

/// Longest title, document reference, in bytes.
pub const MAX_TITLE: usize = 200;
/// Longest agenda, in bytes.
pub const MAX_AGENDA: usize = 20_000;
/// Longest meeting, in seconds.
pub const MAX_DURATION: i64 = 7 * 24 * 3600;
/// Most sites a list invitation names.
pub const MAX_LISTED: usize = 10_000;
/// Largest last-N.
pub const MAX_LAST_N: i64 = 512;

/// Which sites a meeting invites.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Invite {
    /// Every site.
    All,
    /// Every site of one level.
    Level {
        /// The level.
        level: Level,
    },
    /// A district's room and all its communes' rooms.
    District {
        /// The district's site id.
        site_id: i64,
    },
    /// The sites listed.
    Sites {
        /// Site ids, each once.
        site_ids: Vec<i64>,
    },
}

/// Why an invitation names no valid set of sites.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InviteError {
    /// An id that is no site.
    Unknown(i64),
    /// An id listed twice.
    Duplicate(i64),
    /// A `district` invitation of a site that is not a district.
    NotDistrict(i64),
    /// Too many listed.
    TooMany,
}

impl From<InviteError> for ApiError {
    fn from(e: InviteError) -> Self {
        let (code, message) = match e {
            InviteError::Unknown(id) => ("unknown_site", format!("there is no site {id}")),
            InviteError::Duplicate(id) => ("duplicate_site", format!("site {id} is listed twice")),
            InviteError::NotDistrict(id) => {
                ("invalid_invite", format!("site {id} is not a district"))
            }
            InviteError::TooMany => (
                "invalid_invite",
                format!("at most {MAX_LISTED} sites may be listed"),
            ),
        };
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }
}

/// The ids of the sites `invite` names, given the register.
pub fn invited(invite: &Invite, register: &[Site]) -> Result<BTreeSet<i64>, InviteError> {
    let ids = match invite {
        Invite::All => register.iter().map(|s| s.id).collect(),
        Invite::Level { level } => register
            .iter()
            .filter(|s| s.level == *level)
            .map(|s| s.id)
            .collect(),
        Invite::District { site_id } => {
            let district = register
                .iter()
                .find(|s| s.id == *site_id)
                .ok_or(InviteError::Unknown(*site_id))?;
            if district.level != Level::District {
                return Err(InviteError::NotDistrict(*site_id));
            }
            register
                .iter()
                .filter(|s| s.id == *site_id || s.parent_id == Some(*site_id))
                .map(|s| s.id)
                .collect()
        }
        Invite::Sites { site_ids } => {
            if site_ids.len() > MAX_LISTED {
                return Err(InviteError::TooMany);
            }
            let known: BTreeSet<i64> = register.iter().map(|s| s.id).collect();
            let mut ids = BTreeSet::new();
            for id in site_ids {
                if !known.contains(id) {
                    return Err(InviteError::Unknown(*id));
                }
                if !ids.insert(*id) {
                    return Err(InviteError::Duplicate(*id));
                }
            }
            ids
        }
    };
    Ok(ids)
}

/// The audio mode of a meeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Only the chair and the floor holder are heard.
    Floor,
    /// The loudest few are heard.
    Open,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Self::Floor => "floor",
            Self::Open => "open",
        }
    }
}

fn default_mode() -> Mode {
    Mode::Floor
}
fn default_last_n() -> i64 {
    9
}
fn default_roll_call() -> i64 {
    30
}

/// A meeting to schedule, or the new details of one (`PUT` replaces them all).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MeetingRequest {
    /// Title, 1 to 200 bytes.
    pub title: String,
    /// Agenda, free text.
    #[serde(default)]
    pub agenda: String,
    /// Official document reference of the invitation (e.g. `123/GM-UBND`).
    #[serde(default)]
    pub document_ref: String,
    /// The chair (a person with the role chair or administrator); default: the caller.
    #[serde(default)]
    pub chair_id: Option<i64>,
    /// Start, RFC 3339 (e.g. `2026-12-03T08:00:00+07:00`).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub starts_at: OffsetDateTime,
    /// End, RFC 3339; after the start, at most 7 days later.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub ends_at: OffsetDateTime,
    /// Which sites are invited. The chair's own site always is.
    pub invite: Invite,
    /// Audio mode; default `floor`.
    #[serde(default = "default_mode")]
    pub mode: Mode,
    /// Video of how many sites each receiver gets at most (0: all); default 9.
    #[serde(default = "default_last_n")]
    pub last_n: i64,
    /// Minutes before the start at which roll call opens; default 30.
    #[serde(default = "default_roll_call")]
    pub roll_call_minutes: i64,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", message.into())
}

impl MeetingRequest {
    fn check(&mut self) -> Result<(), ApiError> {
        self.title = self.title.trim().to_string();
        if self.title.is_empty() || self.title.len() > MAX_TITLE {
            return Err(invalid(format!("title: 1 to {MAX_TITLE} bytes of text")));
        }
        if self.agenda.len() > MAX_AGENDA {
            return Err(invalid(format!("agenda: at most {MAX_AGENDA} bytes")));
        }
        if self.document_ref.len() > MAX_TITLE {
            return Err(invalid(format!("document_ref: at most {MAX_TITLE} bytes")));
        }
        let (start, end) = (
            self.starts_at.unix_timestamp(),
            self.ends_at.unix_timestamp(),
        );
        if end <= start {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "end_before_start",
                "the meeting must end after it starts".into(),
            ));
        }
        if end - start > MAX_DURATION {
            return Err(invalid("a meeting lasts at most 7 days"));
        }
        if !(0..=MAX_LAST_N).contains(&self.last_n) {
            return Err(invalid(format!("last_n: 0 to {MAX_LAST_N}")));
        }
        if !(0..=24 * 60).contains(&self.roll_call_minutes) {
            return Err(invalid("roll_call_minutes: 0 to 1440"));
        }
        Ok(())
    }
}

/// A meeting as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Meeting {
    /// Id.
    pub id: i64,
    /// Title.
    pub title: String,
    /// Agenda.
    pub agenda: String,
    /// Official document reference of the invitation.
    pub document_ref: String,
    /// The chair.
    pub chair_id: Option<i64>,
    /// Start (absent: always open, like the demo meeting).
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub starts_at: Option<OffsetDateTime>,
    /// End.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ends_at: Option<OffsetDateTime>,
    /// Where it is in its life now.
    pub state: MeetingState,
    /// Audio mode.
    pub mode: Mode,
    /// Last-N video (0: all).
    pub last_n: i64,
    /// Minutes before the start at which roll call opens.
    pub roll_call_minutes: i64,
    /// Whether no further site may join.
    pub locked: bool,
    /// How the sites were invited.
    pub invite: Invite,
    /// The invited sites.
    pub site_ids: Vec<i64>,
    /// Edits so far.
    pub revision: i64,
}

fn time_of(t: Option<i64>) -> Option<OffsetDateTime> {
    t.and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
}

fn meeting_of(r: &AnyRow, site_ids: Vec<i64>, now: i64) -> Result<Meeting, sqlx::Error> {
    let stored: String = r.try_get("state")?;
    let starts_at: Option<i64> = r.try_get("starts_at")?;
    let ends_at: Option<i64> = r.try_get("ends_at")?;
    let roll_call_minutes: i64 = r.try_get("roll_call_minutes")?;
    let times = Times {
        starts_at,
        ends_at,
        roll_call: roll_call_minutes * 60,
    };
    let state = lifecycle::effective(
        MeetingState::parse(&stored).unwrap_or(MeetingState::Ended),
        times,
        now,
    );
    let mode: String = r.try_get("mode")?;
    let invite: String = r.try_get("invite")?;
    Ok(Meeting {
        id: r.try_get("id")?,
        title: r.try_get("title")?,
        agenda: r.try_get("agenda")?,
        document_ref: r.try_get("document_ref")?,
        chair_id: r.try_get("chair_id")?,
        starts_at: time_of(starts_at),
        ends_at: time_of(ends_at),
        state,
        mode: if mode == "floor" {
            Mode::Floor
        } else {
            Mode::Open
        },
        last_n: r.try_get("last_n")?,
        roll_call_minutes,
        locked: r.try_get::<i64, _>("locked")? != 0,
        invite: serde_json::from_str(&invite).unwrap_or(Invite::Sites {
            site_ids: Vec::new(),
        }),
        site_ids,
        revision: r.try_get("revision")?,
    })
}

async fn site_ids_of<'e, E>(executor: E, meeting: i64) -> Result<Vec<i64>, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    let rows =
        sqlx::query("SELECT site_id FROM meeting_sites WHERE meeting_id = $1 ORDER BY site_id")
            .bind(meeting)
            .fetch_all(executor)
            .await?;
    rows.iter().map(|r| r.try_get("site_id")).collect()
}

/// A meeting by id, in its state at `now`.
pub async fn load(state: &AppState, id: i64) -> Result<Option<Meeting>, ApiError> {
    let row = sqlx::query("SELECT * FROM meetings WHERE id = $1")
        .bind(id)
        .fetch_optional(state.db.pool())
        .await
        .map_err(|e| db_error(&e.into(), "reading a meeting"))?;
    let Some(row) = row else { return Ok(None) };
    let sites = site_ids_of(state.db.pool(), id)
        .await
        .map_err(|e| db_error(&e.into(), "reading a meeting"))?;
    meeting_of(&row, sites, clock::now())
        .map(Some)
        .map_err(|e| db_error(&e.into(), "reading a meeting"))
}

fn unknown(id: i64) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_meeting",
        format!("there is no meeting {id}"),
    )
}

/// The meeting, if the caller may see it: every person; a site's terminal only if invited.
async fn visible(state: &AppState, caller: &Caller, id: i64) -> Result<Meeting, ApiError> {
    let meeting = load(state, id).await?.ok_or_else(|| unknown(id))?;
    if let Caller::Site { site_id } = caller
        && !meeting.site_ids.contains(site_id)
    {
        // Not invited: as if it did not exist.
        return Err(unknown(id));
    }
    Ok(meeting)
}

/// The meeting, if the caller may change it: an administrator, or its chair.
async fn editable(state: &AppState, caller: &Caller, id: i64) -> Result<Meeting, ApiError> {
    let person = caller.require(&[Role::Administrator, Role::Chair])?;
    let meeting = load(state, id).await?.ok_or_else(|| unknown(id))?;
    if person.role != Role::Administrator && meeting.chair_id != Some(person.id) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only the meeting's chair or an administrator may do this".into(),
        ));
    }
    Ok(meeting)
}

/// Checks the request against the register and people; returns the chair and the sites.
async fn resolve(
    state: &AppState,
    caller: &Caller,
    request: &mut MeetingRequest,
) -> Result<(i64, BTreeSet<i64>), ApiError> {
    request.check()?;
    let person = caller.require(&[Role::Administrator, Role::Chair])?;
    let chair_id = request.chair_id.unwrap_or(person.id);
    let chair = sqlx::query("SELECT role, site_id FROM people WHERE id = $1 AND disabled = 0")
        .bind(chair_id)
        .fetch_optional(state.db.pool())
        .await
        .map_err(|e| db_error(&e.into(), "reading the chair"))?;
    let chair_site = match chair {
        Some(r) => {
            let role: String = r.try_get("role").unwrap_or_default();
            if role != "chair" && role != "administrator" {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_chair",
                    format!("person {chair_id} is not a chair"),
                ));
            }
            r.try_get::<Option<i64>, _>("site_id").unwrap_or(None)
        }
        None => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_chair",
                format!("there is no person {chair_id}"),
            ));
        }
    };
    let register = sites::all(&state.db)
        .await
        .map_err(|e| db_error(&e, "reading the register"))?;
    let mut site_ids = invited(&request.invite, &register)?;
    site_ids.extend(chair_site);
    Ok((chair_id, site_ids))
}

async fn write_sites(
    tx: &mut sqlx::Transaction<'_, Any>,
    meeting: i64,
    site_ids: &BTreeSet<i64>,
) -> Result<(), ApiError> {
    sqlx::query("DELETE FROM meeting_sites WHERE meeting_id = $1")
        .bind(meeting)
        .execute(&mut **tx)
        .await
        .map_err(|e| db_error(&e.into(), "storing invitations"))?;
    for site in site_ids {
        sqlx::query("INSERT INTO meeting_sites (meeting_id, site_id) VALUES ($1, $2)")
            .bind(meeting)
            .bind(site)
            .execute(&mut **tx)
            .await
            .map_err(|e| db_error(&e.into(), "storing invitations"))?;
    }
    Ok(())
}

fn invite_json(invite: &Invite) -> Result<String, ApiError> {
    serde_json::to_string(invite)
        .map_err(|_| ApiError::internal("the invitation could not be stored"))
}

/// Schedule a meeting (administrators and chairs).
#[utoipa::path(post, path = "/api/meetings", tag = "meetings", request_body = MeetingRequest,
    responses((status = 201, body = Meeting), (status = 400, body = ApiError),
        (status = 403, body = ApiError)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut request: MeetingRequest = parse_json(&body)?;
    let (chair_id, site_ids) = resolve(&state, &caller, &mut request).await?;
    let mut tx = state
        .db
        .pool()
        .begin()
        .await
        .map_err(|e| db_error(&e.into(), "scheduling a meeting"))?;
    let row = sqlx::query(
        "INSERT INTO meetings (title, agenda, document_ref, chair_id, starts_at, ends_at, mode, \
         last_n, state, invite, roll_call_minutes) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'scheduled', $9, $10) RETURNING id",
    )
    .bind(&request.title)
    .bind(&request.agenda)
    .bind(&request.document_ref)
    .bind(chair_id)
    .bind(request.starts_at.unix_timestamp())
    .bind(request.ends_at.unix_timestamp())
    .bind(request.mode.as_str())
    .bind(request.last_n)
    .bind(invite_json(&request.invite)?)
    .bind(request.roll_call_minutes)
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| db_error(&e.into(), "scheduling a meeting"))?;
    let id: i64 = row
        .try_get("id")
        .map_err(|e| db_error(&e.into(), "scheduling a meeting"))?;
    write_sites(&mut tx, id, &site_ids).await?;
    audit::record(
        &mut tx,
        &caller.audit_name(),
        "meeting.create",
        &format!("meeting:{id}"),
        &format!("{} ({} sites)", request.title, site_ids.len()),
    )
    .await?;
    tx.commit()
        .await
        .map_err(|e| db_error(&e.into(), "scheduling a meeting"))?;
    let meeting = load(&state, id).await?.ok_or_else(|| unknown(id))?;
    Ok((StatusCode::CREATED, Json(meeting)).into_response())
}

/// Change a scheduled meeting (its chair or an administrator): the body replaces all details.
#[utoipa::path(put, path = "/api/meetings/{id}", tag = "meetings", request_body = MeetingRequest,
    params(("id" = i64, Path, description = "Meeting id")),
    responses((status = 200, body = Meeting), (status = 400, body = ApiError),
        (status = 403, body = ApiError), (status = 404, body = ApiError),
        (status = 409, body = ApiError)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<Json<Meeting>, ApiError> {
    let mut request: MeetingRequest = parse_json(&body)?;
    let current = editable(&state, &caller, id).await?;
    lifecycle::apply(current.state, Action::Edit).map_err(not_allowed)?;
    let (chair_id, site_ids) = resolve(&state, &caller, &mut request).await?;
    let mut tx = state
        .db
        .pool()
        .begin()
        .await
        .map_err(|e| db_error(&e.into(), "changing a meeting"))?;
    sqlx::query(
        "UPDATE meetings SET title = $1, agenda = $2, document_ref = $3, chair_id = $4, \
         starts_at = $5, ends_at = $6, mode = $7, last_n = $8, invite = $9, \
         roll_call_minutes = $10, revision = revision + 1 WHERE id = $11",
    )
    .bind(&request.title)
    .bind(&request.agenda)
    .bind(&request.document_ref)
    .bind(chair_id)
    .bind(request.starts_at.unix_timestamp())
    .bind(request.ends_at.unix_timestamp())
    .bind(request.mode.as_str())
    .bind(request.last_n)
    .bind(invite_json(&request.invite)?)
    .bind(request.roll_call_minutes)
    .bind(id)
    .execute(&mut *tx)
    .await
    .map_err(|e| db_error(&e.into(), "changing a meeting"))?;
    write_sites(&mut tx, id, &site_ids).await?;
    audit::record(
        &mut tx,
        &caller.audit_name(),
        "meeting.edit",
        &format!("meeting:{id}"),
        &format!("{} ({} sites)", request.title, site_ids.len()),
    )
    .await?;
    tx.commit()
        .await
        .map_err(|e| db_error(&e.into(), "changing a meeting"))?;
    load(&state, id).await?.ok_or_else(|| unknown(id)).map(Json)
}

fn not_allowed(e: lifecycle::NotAllowed) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "invalid_state", e.to_string())
}

/// Moves a meeting along its life (its chair or an administrator).
async fn act(
    state: &AppState,
    caller: &Caller,
    id: i64,
    action: Action,
) -> Result<Meeting, ApiError> {
    let current = editable(state, caller, id).await?;
    let next = lifecycle::apply(current.state, action).map_err(not_allowed)?;
    let mut tx = state
        .db
        .pool()
        .begin()
        .await
        .map_err(|e| db_error(&e.into(), "changing a meeting"))?;
    sqlx::query("UPDATE meetings SET state = $1, revision = revision + 1 WHERE id = $2")
        .bind(next.as_str())
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(|e| db_error(&e.into(), "changing a meeting"))?;
    audit::record(
        &mut tx,
        &caller.audit_name(),
        &format!("meeting.{}", action.as_str()),
        &format!("meeting:{id}"),
        &format!("{} → {}", current.state.as_str(), next.as_str()),
    )
    .await?;
    tx.commit()
        .await
        .map_err(|e| db_error(&e.into(), "changing a meeting"))?;
    load(state, id).await?.ok_or_else(|| unknown(id))
}

/// An action on a meeting's life, as the URL names it.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum LifeAction {
    /// Open roll call now.
    RollCall,
    /// Start the meeting.
    Start,
    /// End it.
    End,
    /// Call it off.
    Cancel,
}

/// Open roll call, start, end or cancel a meeting (its chair or an administrator).
#[utoipa::path(post, path = "/api/meetings/{id}/{action}", tag = "meetings",
    params(("id" = i64, Path, description = "Meeting id"),
        ("action" = LifeAction, Path, description = "roll-call, start, end or cancel")),
    responses((status = 200, body = Meeting), (status = 403, body = ApiError),
        (status = 404, body = ApiError), (status = 409, body = ApiError)))]
pub async fn life(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, action)): Path<(i64, LifeAction)>,
) -> Result<Json<Meeting>, ApiError> {
    let action = match action {
        LifeAction::RollCall => Action::OpenRollCall,
        LifeAction::Start => Action::Start,
        LifeAction::End => Action::End,
        LifeAction::Cancel => Action::Cancel,
    };
    let meeting = act(&state, &caller, id, action).await?;
    if matches!(action, Action::End | Action::Cancel) {
        state.hub.meeting_over(id);
    }
    Ok(Json(meeting))
}

/// One meeting (any person; a room terminal only if its site is invited).
#[utoipa::path(get, path = "/api/meetings/{id}", tag = "meetings",
    params(("id" = i64, Path, description = "Meeting id")),
    responses((status = 200, body = Meeting), (status = 404, body = ApiError)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<Meeting>, ApiError> {
    visible(&state, &caller, id).await.map(Json)
}

/// The meeting as an iCalendar file.
#[utoipa::path(get, path = "/api/meetings/{id}/calendar.ics", tag = "meetings",
    params(("id" = i64, Path, description = "Meeting id")),
    responses((status = 200, content_type = "text/calendar", body = String),
        (status = 404, body = ApiError), (status = 409, body = ApiError)))]
pub async fn calendar(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let meeting = visible(&state, &caller, id).await?;
    let (Some(starts_at), Some(ends_at)) = (meeting.starts_at, meeting.ends_at) else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_times",
            "this meeting has no scheduled times".into(),
        ));
    };
    let text = ical::calendar(&ical::Event {
        id,
        host: "bridge",
        title: &meeting.title,
        agenda: &meeting.agenda,
        document_ref: &meeting.document_ref,
        starts_at: starts_at.unix_timestamp(),
        ends_at: ends_at.unix_timestamp(),
        cancelled: meeting.state == MeetingState::Cancelled,
        sequence: meeting.revision,
        now: clock::now(),
    });
    Ok((
        [
            (
                header::CONTENT_TYPE,
                "text/calendar; charset=utf-8".to_string(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"meeting-{id}.ics\""),
            ),
        ],
        text,
    )
        .into_response())
}

/// Scheduled meetings not yet over, soonest first, optionally only those inviting `site`.
async fn upcoming(state: &AppState, site: Option<i64>) -> Result<Vec<Meeting>, ApiError> {
    let now = clock::now();
    let rows =
        match site {
            Some(site) => {
                sqlx::query(
                    "SELECT m.* FROM meetings m JOIN meeting_sites ms ON ms.meeting_id = m.id \
                 WHERE ms.site_id = $1 AND m.state IN ('scheduled', 'roll_call', 'in_progress') \
                 AND m.starts_at IS NOT NULL ORDER BY m.starts_at, m.id",
                )
                .bind(site)
                .fetch_all(state.db.pool())
                .await
            }
            None => sqlx::query(
                "SELECT * FROM meetings WHERE state IN ('scheduled', 'roll_call', 'in_progress') \
                 AND starts_at IS NOT NULL ORDER BY starts_at, id",
            )
            .fetch_all(state.db.pool())
            .await,
        }
        .map_err(|e| db_error(&e.into(), "reading the schedule"))?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let id: i64 = r
            .try_get("id")
            .map_err(|e| db_error(&e.into(), "reading the schedule"))?;
        let sites = site_ids_of(state.db.pool(), id)
            .await
            .map_err(|e| db_error(&e.into(), "reading the schedule"))?;
        let meeting =
            meeting_of(r, sites, now).map_err(|e| db_error(&e.into(), "reading the schedule"))?;
        if !matches!(meeting.state, MeetingState::Ended | MeetingState::Cancelled) {
            out.push(meeting);
        }
    }
    Ok(out)
}

/// Upcoming and running meetings: all of them for a person, the site's own for a terminal.
#[utoipa::path(get, path = "/api/schedule", tag = "meetings",
    responses((status = 200, body = [Meeting]), (status = 401, body = ApiError)))]
pub async fn schedule(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<Meeting>>, ApiError> {
    let site = match &caller {
        Caller::Site { site_id } => Some(*site_id),
        Caller::Person(_) => None,
    };
    upcoming(&state, site).await.map(Json)
}

/// A site's upcoming meetings (any person; a terminal only its own site's).
#[utoipa::path(get, path = "/api/sites/{id}/meetings", tag = "sites",
    params(("id" = i64, Path, description = "Site id")),
    responses((status = 200, body = [Meeting]), (status = 404, body = ApiError)))]
pub async fn of_site(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<Vec<Meeting>>, ApiError> {
    if let Caller::Site { site_id } = caller
        && site_id != id
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "a terminal sees its own site's meetings only".into(),
        ));
    }
    sites::must_exist(state.db.pool(), id, StatusCode::NOT_FOUND).await?;
    upcoming(&state, Some(id)).await.map(Json)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(id: i64, level: Level, parent_id: Option<i64>) -> Site {
        Site {
            id,
            code: format!("S{id}"),
            name: format!("Site {id}"),
            level,
            parent_id,
            terminal_id: None,
            has_credential: false,
        }
    }

    fn register() -> Vec<Site> {
        vec![
            site(1, Level::Province, None),
            site(2, Level::District, Some(1)),
            site(3, Level::District, Some(1)),
            site(4, Level::Commune, Some(2)),
            site(5, Level::Commune, Some(2)),
            site(6, Level::Commune, Some(3)),
        ]
    }

    #[test]
    fn invitations_expand_to_sites() {
        let r = register();
        let ids = |invite| invited(&invite, &r).expect("valid");
        assert_eq!(ids(Invite::All).len(), 6);
        assert_eq!(
            ids(Invite::Level {
                level: Level::Commune
            }),
            BTreeSet::from([4, 5, 6])
        );
        assert_eq!(
            ids(Invite::District { site_id: 2 }),
            BTreeSet::from([2, 4, 5])
        );
        assert_eq!(
            ids(Invite::Sites {
                site_ids: vec![6, 1]
            }),
            BTreeSet::from([1, 6])
        );
    }

    #[test]
    fn bad_invitations_are_refused() {
        let r = register();
        let err = |invite| invited(&invite, &r).expect_err("refused");
        assert_eq!(
            err(Invite::Sites {
                site_ids: vec![1, 99]
            }),
            InviteError::Unknown(99)
        );
        assert_eq!(
            err(Invite::Sites {
                site_ids: vec![4, 5, 4]
            }),
            InviteError::Duplicate(4)
        );
        assert_eq!(
            err(Invite::District { site_id: 4 }),
            InviteError::NotDistrict(4)
        );
        assert_eq!(
            err(Invite::District { site_id: 40 }),
            InviteError::Unknown(40)
        );
    }

    #[test]
    fn requests_are_checked() {
        let body = |start: &str, end: &str| {
            format!(
                r#"{{"title":" Giao ban ","starts_at":"{start}","ends_at":"{end}","invite":{{"kind":"all"}}}}"#
            )
        };
        let mut ok: MeetingRequest = serde_json::from_str(&body(
            "2026-12-03T08:00:00+07:00",
            "2026-12-03T10:00:00+07:00",
        ))
        .expect("parses");
        ok.check().expect("valid");
        assert_eq!(ok.title, "Giao ban");
        assert_eq!(
            (ok.mode, ok.last_n, ok.roll_call_minutes),
            (Mode::Floor, 9, 30)
        );
        let mut backwards: MeetingRequest = serde_json::from_str(&body(
            "2026-12-03T10:00:00+07:00",
            "2026-12-03T08:00:00+07:00",
        ))
        .expect("parses");
        assert_eq!(
            backwards.check().expect_err("refused").code,
            "end_before_start"
        );
    }
}
