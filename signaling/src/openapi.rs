//! The REST API's OpenAPI document, generated from the handlers' annotations and served at
//! `/api/openapi.json`.

use axum::Json;
use utoipa::OpenApi;

use crate::{attendance, audit, auth, http, meetings, moderation, reports, sites, stats};

/// The API's description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Meeting-room bridge",
        description = "Sites, people, the meeting schedule and moderation. Every endpoint but \
            login, the open meetings list and this document needs a session: \
            `Authorization: Bearer <token>` or the `bridge_session` cookie. Errors are JSON: \
            `{\"code\": \"stable_code\", \"message\": \"human text\"}`."
    ),
    paths(
        auth::login,
        auth::device_login,
        auth::logout,
        auth::me,
        auth::people,
        auth::add_person,
        auth::change_person,
        sites::list,
        sites::add,
        sites::import,
        sites::change,
        sites::issue_credential,
        sites::command,
        sites::health,
        meetings::of_site,
        meetings::schedule,
        http::open_meetings,
        meetings::create,
        meetings::get,
        meetings::update,
        meetings::life,
        meetings::calendar,
        attendance::csv,
        attendance::roll_call,
        reports::quality,
        reports::quality_csv,
        stats::stats,
        stats::stats_csv,
        stats::stats_page,
        moderation::set_policy,
        audit::list,
    ),
    tags(
        (name = "sessions", description = "Logging in and out"),
        (name = "people", description = "Accounts and roles"),
        (name = "sites", description = "The register of meeting rooms"),
        (name = "meetings", description = "The schedule and each meeting's life"),
        (name = "moderation", description = "What the media plane enforces"),
        (name = "audit", description = "Who did what, when"),
    )
)]
pub struct ApiDoc;

/// `GET /api/openapi.json`.
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
