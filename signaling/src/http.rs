//! HTTP routes: health, metrics, the small REST API, the WebSocket and the web client's files.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use axum::extract::{State, WebSocketUpgrade};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::services::{ServeDir, ServeFile};

use crate::AppState;
use crate::protocol::MAX_MESSAGE_BYTES;

/// Largest WebSocket message the transport reads at all; between [`MAX_MESSAGE_BYTES`] and this,
/// the client gets a clear `message_too_large` error; above it the connection is closed.
const MAX_WS_MESSAGE: usize = 1024 * 1024;
/// Largest HTTP request body.
const MAX_BODY: usize = 64 * 1024;

/// The application's routes.
pub fn router(state: AppState) -> Router {
    let web_root = state.web_root.clone();
    let index = ServeFile::new(web_root.join("index.html"));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/meetings", get(meetings))
        .route(
            "/api/meetings/{id}/policy",
            post(crate::moderation::set_policy),
        )
        .route("/ws", get(ws))
        .fallback_service(ServeDir::new(web_root).fallback(index))
        .layer(RequestBodyLimitLayer::new(MAX_BODY))
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn ws(upgrade: WebSocketUpgrade, State(state): State<AppState>) -> Response {
    upgrade
        .max_message_size(MAX_WS_MESSAGE)
        .max_frame_size(MAX_WS_MESSAGE)
        .on_upgrade(move |socket| crate::ws::session(socket, state))
}

/// An API error: a stable code and a human message, as JSON, with its HTTP status.
#[derive(Debug, serde::Serialize)]
pub struct ApiError {
    #[serde(skip)]
    status: StatusCode,
    /// Stable, machine-readable code.
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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self)).into_response()
    }
}

async fn meetings(State(state): State<AppState>) -> Result<Response, ApiError> {
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
    let series: [(&str, &str, &str, u64); 9] = [
        (
            "bridge_participants",
            "gauge",
            "Participants in a meeting (signaling)",
            hub.participants.load(Ordering::Relaxed),
        ),
        (
            "bridge_meetings_active",
            "gauge",
            "Meetings with at least one participant",
            hub.meetings.load(Ordering::Relaxed),
        ),
        (
            "bridge_sfu_endpoints",
            "gauge",
            "WebRTC endpoints in the SFU",
            sfu.endpoints,
        ),
        (
            "bridge_sfu_meetings",
            "gauge",
            "Meetings with media in the SFU",
            sfu.meetings,
        ),
        (
            "bridge_sfu_forwarded_packets_total",
            "counter",
            "RTP packets forwarded to receivers",
            sfu.forwarded_packets,
        ),
        (
            "bridge_sfu_forwarded_bytes_total",
            "counter",
            "RTP payload bytes forwarded to receivers",
            sfu.forwarded_bytes,
        ),
        (
            "bridge_sfu_datagrams_dropped_total",
            "counter",
            "Datagrams dropped: unknown source, unparseable or rejected",
            sfu.dropped_datagrams,
        ),
        (
            "bridge_sfu_keyframe_requests_total",
            "counter",
            "Keyframe requests sent to publishers",
            sfu.keyframe_requests_sent,
        ),
        (
            "bridge_sfu_keyframe_requests_coalesced_total",
            "counter",
            "Keyframe requests merged by the rate limit",
            sfu.keyframe_requests_coalesced,
        ),
    ];
    let mut body = String::new();
    for (name, kind, help, value) in series {
        let _ = writeln!(
            body,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

// The protocol's own limit must be reachable, or clients would never see the clear error.
const _: () = assert!(MAX_MESSAGE_BYTES < MAX_WS_MESSAGE);
