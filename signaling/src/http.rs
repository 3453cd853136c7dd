//! HTTP routes: health, metrics, the small REST API, the WebSocket and the web client's files.

use std::sync::atomic::Ordering;

use axum::extract::{State, WebSocketUpgrade};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::services::{ServeDir, ServeFile};

use crate::AppState;
use crate::db::DbError;
use crate::protocol::{MAX_MESSAGE_BYTES, MeetingInfo};
use crate::{attendance, audit, auth, meetings, sites};

/// Largest WebSocket message the transport reads at all; between [`MAX_MESSAGE_BYTES`] and this,
/// the client gets a clear `message_too_large` error; above it the connection is closed.
const MAX_WS_MESSAGE: usize = 1024 * 1024;
/// Largest HTTP request body.
const MAX_BODY: usize = 64 * 1024;

/// The application's routes.
pub fn router(state: AppState) -> Router {
    let web_root = state.web_root.clone();
    let index = ServeFile::new(web_root.join("index.html"));
    // A province's CSV is bigger than any other body.
    let import = Router::new()
        .route("/api/sites/import", post(sites::import))
        .layer(RequestBodyLimitLayer::new(sites::MAX_IMPORT_BYTES));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/openapi.json", get(crate::openapi::document))
        .route("/api/login", post(auth::login))
        .route("/api/logout", post(auth::logout))
        .route("/api/device/login", post(auth::device_login))
        .route("/api/me", get(auth::me))
        .route("/api/people", get(auth::people).post(auth::add_person))
        .route("/api/people/{id}", axum::routing::put(auth::change_person))
        .route("/api/sites", get(sites::list).post(sites::add))
        .route("/api/sites/{id}", axum::routing::put(sites::change))
        .route("/api/sites/{id}/credential", post(sites::issue_credential))
        .route("/api/sites/{id}/command", post(sites::command))
        .route("/api/sites/{id}/health", get(sites::health))
        .route("/api/sites/{id}/meetings", get(meetings::of_site))
        .route("/api/schedule", get(meetings::schedule))
        .route("/api/meetings", get(open_meetings).post(meetings::create))
        .route(
            "/api/meetings/{id}",
            get(meetings::get).put(meetings::update),
        )
        .route("/api/meetings/{id}/calendar.ics", get(meetings::calendar))
        .route("/api/meetings/{id}/attendance.csv", get(attendance::csv))
        .route("/api/meetings/{id}/roll-call", get(attendance::roll_call))
        .route("/api/meetings/{id}/quality", get(crate::reports::quality))
        .route(
            "/api/meetings/{id}/quality.csv",
            get(crate::reports::quality_csv),
        )
        .route("/api/test/loss", post(crate::reports::test_loss))
        .route("/api/stats", get(crate::stats::stats))
        .route("/api/stats.csv", get(crate::stats::stats_csv))
        .route("/api/stats.html", get(crate::stats::stats_page))
        .route(
            "/api/meetings/{id}/policy",
            post(crate::moderation::set_policy),
        )
        .route("/api/meetings/{id}/{action}", post(meetings::life))
        .route("/api/audit", get(audit::list))
        .route("/ws", get(ws))
        .layer(RequestBodyLimitLayer::new(MAX_BODY))
        .merge(import)
        .fallback_service(ServeDir::new(web_root).fallback(index))
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn ws(
    upgrade: WebSocketUpgrade,
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Response {
    // A session cookie (browsers) or bearer token (room terminals) makes the session someone;
    // without one it is a guest.
    let caller = match auth::token_of(&headers) {
        Some(token) if token.len() <= 128 => match auth::caller_of(&state.db, token).await {
            Ok(caller) => caller,
            Err(e) => return db_error(&e, "reading a session").into_response(),
        },
        _ => None,
    };
    upgrade
        .max_message_size(MAX_WS_MESSAGE)
        .max_frame_size(MAX_WS_MESSAGE)
        .on_upgrade(move |socket| crate::ws::session(socket, state, caller))
}

/// An API error: a stable code and a human message, as JSON, with its HTTP status.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ApiError {
    #[serde(skip)]
    status: StatusCode,
    /// Stable, machine-readable code.
    #[schema(value_type = String)]
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: String) -> Self {
        Self {
            status,
            code,
            message,
        }
    }

    /// A server-side failure; the details go to the log, not to the client.
    pub fn internal(message: &str) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            message.into(),
        )
    }
}

/// A storage failure as the client sees it: details go to the log only.
pub fn db_error(e: &DbError, doing: &str) -> ApiError {
    tracing::error!(error = %e, "{doing} failed");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "storage_unavailable",
        format!("{doing} failed: the database is unavailable, try again"),
    )
}

/// A storage failure where a violated UNIQUE constraint means the client asked for a duplicate:
/// that is a 409 with `code` and `message`; anything else is [`db_error`].
pub fn conflict_or_db_error(
    e: sqlx::Error,
    code: &'static str,
    message: impl FnOnce() -> String,
    doing: &str,
) -> ApiError {
    let e = DbError::from(e);
    if e.is_unique_violation() {
        ApiError::new(StatusCode::CONFLICT, code, message())
    } else {
        db_error(&e, doing)
    }
}

/// A JSON body, or a 400 `invalid_body` naming what is wrong.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!("invalid request body: {e}"),
        )
    })
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self)).into_response()
    }
}

/// The meetings open for joining now (roll call or in progress): the join page's list. The one
/// API read that needs no session (see the README: the join flow gets accounts with the web
/// client's login).
#[utoipa::path(get, path = "/api/meetings", tag = "meetings",
    responses((status = 200, body = [MeetingInfo])))]
pub async fn open_meetings(State(state): State<AppState>) -> Result<Response, ApiError> {
    match state.db.meetings().await {
        Ok(list) => Ok(Json(list).into_response()),
        Err(e) => {
            tracing::error!(error = %e, "listing meetings failed");
            Err(ApiError::internal("the meetings could not be read"))
        }
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let sfu = state.sfu.stats().load();
    let hub = state.hub.gauges();
    let mut body = String::new();
    crate::quality::render_totals(
        &mut body,
        hub.participants.load(Ordering::Relaxed),
        hub.meetings.load(Ordering::Relaxed),
        &sfu,
    );
    // Per site: what the SFU measures of each endpoint of each live meeting.
    let placed = state.hub.placed().await;
    let meetings: std::collections::BTreeSet<i64> = placed.iter().map(|p| p.meeting).collect();
    let mut measured = Vec::new();
    for meeting in meetings {
        measured.extend(state.sfu.quality(sfu::MeetingId(meeting)).await);
    }
    crate::quality::render(&mut body, &placed, &measured);
    // Roll call of the open meetings, and the room terminals' health.
    let mut open = Vec::new();
    for (meeting, state_now) in state.db.open_meetings().await.unwrap_or_default() {
        let Ok(setup) = crate::attendance::setup(&state.db, meeting.id).await else {
            continue;
        };
        if setup.invited.is_empty() {
            continue;
        }
        if let Some(roll_call) = state.hub.roll_call(meeting.id, setup).await {
            open.push(crate::quality::OpenMeeting {
                meeting: meeting.id,
                in_progress: state_now == crate::lifecycle::State::InProgress,
                roll_call,
            });
        }
    }
    crate::quality::render_roll_call(&mut body, &open);
    crate::quality::render_terminals(&mut body, &state.hub.healths().await);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

// The protocol's own limit must be reachable, or clients would never see the clear error.
const _: () = assert!(MAX_MESSAGE_BYTES < MAX_WS_MESSAGE);
