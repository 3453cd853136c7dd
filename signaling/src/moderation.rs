//! The moderation API: what a meeting's media plane enforces (floor mode, the chair, the floor
//! holder, muted sites, loudest-N audio, last-N video).
//!
//! Interim form: one administrator bearer token (`--admin-token`) guards it. Accounts and
//! roles (the meeting lifecycle) will replace the token with a chair's session.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sfu::{AudioMode, EndpointId, MediaPolicy, MeetingId};

use crate::AppState;
use crate::http::ApiError;

/// The most ids a policy may list as muted (a province meeting has 213 sites).
pub const MAX_MUTED: usize = 512;
/// The largest loudest-N and last-N accepted.
pub const MAX_N: usize = 512;

/// The body of `POST /api/meetings/{id}/policy`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyRequest {
    /// `"open"` or `"floor"`.
    pub mode: Mode,
    /// The chair's participant id.
    #[serde(default)]
    pub chair: Option<u64>,
    /// The floor holder's participant id.
    #[serde(default)]
    pub floor_holder: Option<u64>,
    /// Participants whose audio is never forwarded.
    #[serde(default)]
    pub muted: Vec<u64>,
    /// Open mode: how many of the loudest are heard (0: all). Default 3.
    #[serde(default = "default_loudest_n")]
    pub loudest_n: usize,
    /// Video of how many sources reaches each receiver (0: all). Default 0.
    #[serde(default)]
    pub last_n: usize,
}

/// A meeting's audio mode as the API spells it.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Everyone may speak.
    Open,
    /// Only the chair and the floor holder are heard.
    Floor,
}

fn default_loudest_n() -> usize {
    3
}

impl PolicyRequest {
    /// Parses and checks a request body.
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let request: Self = serde_json::from_slice(body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                format!("invalid policy: {e}"),
            )
        })?;
        if request.muted.len() > MAX_MUTED {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                format!("at most {MAX_MUTED} muted participants"),
            ));
        }
        if request.loudest_n > MAX_N || request.last_n > MAX_N {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                format!("loudest_n and last_n are at most {MAX_N}"),
            ));
        }
        Ok(request)
    }

    /// The policy the SFU enforces.
    pub fn into_policy(self) -> MediaPolicy {
        MediaPolicy {
            mode: match self.mode {
                Mode::Open => AudioMode::Open,
                Mode::Floor => AudioMode::Floor,
            },
            chair: self.chair.map(EndpointId),
            floor_holder: self.floor_holder.map(EndpointId),
            muted: self.muted.into_iter().map(EndpointId).collect(),
            loudest_n: self.loudest_n,
            last_n: self.last_n,
            ..MediaPolicy::default()
        }
    }
}

/// Whether `headers` carry the configured bearer token. Compares in constant time.
fn authorized(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(token) = state.admin_token.as_deref() else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "moderation_disabled",
            "the moderation API is off: start the bridge with --admin-token".into(),
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let equal = given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if equal {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid bearer token is required".into(),
        ))
    }
}

/// Set what a meeting's media plane enforces (bearer `--admin-token`; interim).
#[utoipa::path(post, path = "/api/meetings/{id}/policy", tag = "moderation",
    request_body = PolicyRequest,
    params(("id" = i64, Path, description = "Meeting id")),
    responses((status = 204), (status = 400, body = ApiError), (status = 401, body = ApiError),
        (status = 403, body = ApiError), (status = 404, body = ApiError)))]
pub async fn set_policy(
    State(state): State<AppState>,
    Path(meeting): Path<i64>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    authorized(&state, &headers)?;
    let request = PolicyRequest::parse(&body)?;
    match state.db.meeting(meeting).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_meeting",
                format!("there is no meeting {meeting}"),
            ));
        }
        Err(e) => {
            tracing::error!(error = %e, "reading a meeting failed");
            return Err(ApiError::internal("the meeting could not be read"));
        }
    }
    let policy = request.into_policy();
    tracing::info!(meeting, ?policy, "media policy set");
    let recorded = async {
        let mut tx = state.db.pool().begin().await.ok()?;
        crate::audit::record(
            &mut tx,
            "admin-token",
            "moderation.policy",
            &format!("meeting:{meeting}"),
            &format!("{policy:?}"),
        )
        .await
        .ok()?;
        tx.commit().await.ok()
    };
    if recorded.await.is_none() {
        return Err(ApiError::internal("the audit log could not be written"));
    }
    state
        .sfu
        .set_media_policy(MeetingId(meeting), policy)
        .await
        .map_err(|_| ApiError::internal("the media plane is unavailable"))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_policy_parses() {
        let p = PolicyRequest::parse(
            br#"{"mode":"floor","chair":1,"floor_holder":7,"muted":[3],"loudest_n":2,"last_n":9}"#,
        )
        .map(PolicyRequest::into_policy)
        .expect("valid");
        assert_eq!(p.mode, AudioMode::Floor);
        assert_eq!(p.chair, Some(EndpointId(1)));
        assert_eq!(p.floor_holder, Some(EndpointId(7)));
        assert_eq!(p.muted, vec![EndpointId(3)]);
        assert_eq!((p.loudest_n, p.last_n), (2, 9));
    }

    #[test]
    fn defaults_apply_and_bad_bodies_are_refused() {
        let p = PolicyRequest::parse(br#"{"mode":"open"}"#).expect("valid");
        assert_eq!((p.loudest_n, p.last_n), (3, 0));
        for bad in [
            &br#"{"mode":"loud"}"#[..],
            br#"{"mode":"open","extra":1}"#,
            br#"{"mode":"open","last_n":100000}"#,
            br#"not json"#,
        ] {
            let e = PolicyRequest::parse(bad).expect_err("refused");
            assert_eq!(e.code, "invalid_body");
        }
    }
}
