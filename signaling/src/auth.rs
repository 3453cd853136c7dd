//! People, roles and sessions: password login (argon2id), room-terminal login with a per-device
//! credential, and the role check every API handler makes through [`Caller`].
//!
//! A session is a random 256-bit token handed to the client once; the database keeps only its
//! SHA-256, so a copy of the database opens no session. Browsers get it as an HttpOnly cookie
//! as well as in the response body; programs send it as `Authorization: Bearer`.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::any::AnyRow;
use utoipa::ToSchema;

use crate::AppState;
use crate::audit;
use crate::clock;
use crate::db::{Db, DbError};
use crate::http::{ApiError, conflict_or_db_error, db_error, parse_json};
use crate::sites;

/// How long a person's session lasts, in seconds.
pub const PERSON_SESSION: i64 = 12 * 3600;
/// How long a room terminal's session lasts, in seconds (it logs in again by itself).
pub const DEVICE_SESSION: i64 = 7 * 24 * 3600;
/// The session cookie's name.
pub const COOKIE: &str = "bridge_session";
/// Longest user name, display name or password accepted, in bytes.
pub const MAX_FIELD: usize = 256;

/// What a person may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Manages sites, people and the schedule.
    Administrator,
    /// Chairs meetings: schedules them, runs roll call and the floor.
    Chair,
    /// Keeps the rooms working: sees every site's state.
    Technician,
    /// Takes part.
    Participant,
}

impl Role {
    /// The name stored and used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Administrator => "administrator",
            Self::Chair => "chair",
            Self::Technician => "technician",
            Self::Participant => "participant",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [
            Self::Administrator,
            Self::Chair,
            Self::Technician,
            Self::Participant,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// A person with an account.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Person {
    /// Id.
    pub id: i64,
    /// Login name.
    pub username: String,
    /// Name shown to others.
    pub display_name: String,
    /// What the person may do.
    pub role: Role,
    /// The site the person belongs to, if any.
    pub site_id: Option<i64>,
}

impl Person {
    pub(crate) fn from_row(r: &AnyRow) -> Result<Self, sqlx::Error> {
        let role: String = r.try_get("role")?;
        Ok(Self {
            id: r.try_get("id")?,
            username: r.try_get("username")?,
            display_name: r.try_get("display_name")?,
            role: Role::parse(&role).unwrap_or(Role::Participant),
            site_id: r.try_get("site_id")?,
        })
    }
}

/// Who is calling: a person, or a site's room terminal.
#[derive(Debug, Clone)]
pub enum Caller {
    /// A person logged in with a password.
    Person(Person),
    /// A room terminal logged in with its site's device credential.
    Site {
        /// The site.
        site_id: i64,
    },
}

impl Caller {
    /// The person calling if they have one of `roles`; 403 otherwise.
    pub fn require(&self, roles: &[Role]) -> Result<&Person, ApiError> {
        match self {
            Self::Person(p) if roles.contains(&p.role) => Ok(p),
            _ => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "this needs the role {}",
                    roles
                        .iter()
                        .map(|r| r.as_str())
                        .collect::<Vec<_>>()
                        .join(" or ")
                ),
            )),
        }
    }

    /// How the audit log names the caller.
    pub fn audit_name(&self) -> String {
        match self {
            Self::Person(p) => format!("person:{}", p.username),
            Self::Site { site_id } => format!("site:{site_id}"),
        }
    }
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message.into())
}

/// The session token a request carries: bearer header first, then the cookie.
pub fn token_of(headers: &HeaderMap) -> Option<&str> {
    if let Some(bearer) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some(bearer.trim());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

fn hash_token(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new random secret: 32 bytes as 64 hex digits.
pub fn random_secret() -> Result<String, ApiError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| {
        tracing::error!(error = %e, "the system's random source failed");
        ApiError::internal("no randomness available")
    })?;
    Ok(hex(&bytes))
}

/// The argon2id hash of a password or device secret, in PHC string form.
pub fn hash_password(password: &str) -> Result<String, ApiError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|_| ApiError::internal("no randomness available"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|_| ApiError::internal("salt"))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| ApiError::internal("the password could not be hashed"))
}

/// Whether `password` matches the stored `hash`. A damaged hash never matches.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = token_of(&parts.headers)
            .ok_or_else(|| unauthorized("log in first (no session token)"))?;
        if token.len() > 128 {
            return Err(unauthorized("the session token is not valid"));
        }
        caller_of(&state.db, token)
            .await
            .map_err(|e| db_error(&e, "reading a session"))?
            .ok_or_else(|| unauthorized("the session has expired or is not valid: log in again"))
    }
}

/// The caller a session token belongs to, if it is valid now.
pub async fn caller_of(db: &Db, token: &str) -> Result<Option<Caller>, DbError> {
    let row = sqlx::query(
        "SELECT s.site_id AS session_site, p.id, p.username, p.display_name, p.role, p.site_id \
         FROM sessions s LEFT JOIN people p ON p.id = s.person_id \
         WHERE s.token_hash = $1 AND s.expires_at > $2 AND COALESCE(p.disabled, 0) = 0",
    )
    .bind(hash_token(token))
    .bind(clock::now())
    .fetch_optional(db.pool())
    .await?;
    let Some(row) = row else { return Ok(None) };
    if let Some(site_id) = row.try_get::<Option<i64>, _>("session_site")? {
        return Ok(Some(Caller::Site { site_id }));
    }
    Ok(Some(Caller::Person(Person::from_row(&row)?)))
}

async fn new_session(
    db: &Db,
    person_id: Option<i64>,
    site_id: Option<i64>,
    lifetime: i64,
) -> Result<(String, i64), ApiError> {
    let token = random_secret()?;
    let now = clock::now();
    let expires_at = now + lifetime;
    sqlx::query(
        "INSERT INTO sessions (token_hash, person_id, site_id, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(hash_token(&token))
    .bind(person_id)
    .bind(site_id)
    .bind(now)
    .bind(expires_at)
    .execute(db.pool())
    .await
    .map_err(|e| db_error(&e.into(), "creating a session"))?;
    // Expired sessions are of no use to anyone.
    let _ = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
        .bind(now)
        .execute(db.pool())
        .await;
    Ok((token, expires_at))
}

/// `POST /api/login` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Login name.
    pub username: String,
    /// Password.
    pub password: String,
}

/// A new session.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionResponse {
    /// The session token: `Authorization: Bearer <token>` (browsers also get it as a cookie).
    pub token: String,
    /// When it expires, Unix seconds.
    pub expires_at: i64,
    /// Who logged in (absent for a room terminal).
    pub person: Option<Person>,
    /// The site of a room terminal's session.
    pub site_id: Option<i64>,
}

fn with_cookie(token: &str, lifetime: i64, body: SessionResponse) -> Response {
    let mut response = (StatusCode::OK, Json(body)).into_response();
    let cookie =
        format!("{COOKIE}={token}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age={lifetime}");
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// A password hash that matches nothing, verified against when the user does not exist so that
/// a wrong name takes as long as a wrong password.
const NO_SUCH_USER: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2mM0yQnIuvYB6dD6v1CXqWvJw2C2mV0p1GqvRZ3b2n8";

/// Log in with a user name and password.
#[utoipa::path(post, path = "/api/login", tag = "sessions",
    request_body = LoginRequest,
    responses((status = 200, body = SessionResponse), (status = 401, body = ApiError)))]
pub async fn login(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let request: LoginRequest = parse_json(&body)?;
    if request.username.len() > MAX_FIELD || request.password.len() > MAX_FIELD {
        return Err(unauthorized("wrong user name or password"));
    }
    let row = sqlx::query(
        "SELECT id, username, display_name, role, site_id, password_hash FROM people \
         WHERE username = $1 AND disabled = 0",
    )
    .bind(&request.username)
    .fetch_optional(state.db.pool())
    .await
    .map_err(|e| db_error(&e.into(), "reading a person"))?;
    let hash = match &row {
        Some(r) => r
            .try_get::<String, _>("password_hash")
            .map_err(|e| db_error(&e.into(), "reading a person"))?,
        None => NO_SUCH_USER.to_string(),
    };
    let password = request.password.clone();
    let matches = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .unwrap_or(false);
    let (Some(row), true) = (row, matches) else {
        tracing::info!(username = %request.username, "failed login");
        return Err(unauthorized("wrong user name or password"));
    };
    let person = Person::from_row(&row).map_err(|e| db_error(&e.into(), "reading a person"))?;
    let (token, expires_at) = new_session(&state.db, Some(person.id), None, PERSON_SESSION).await?;
    Ok(with_cookie(
        &token.clone(),
        PERSON_SESSION,
        SessionResponse {
            token,
            expires_at,
            person: Some(person),
            site_id: None,
        },
    ))
}

/// `POST /api/device/login` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceLoginRequest {
    /// The terminal's identity, as registered on its site.
    pub terminal_id: String,
    /// The device credential an administrator issued for the site.
    pub secret: String,
}

/// Log a room terminal in with its site's device credential.
#[utoipa::path(post, path = "/api/device/login", tag = "sessions",
    request_body = DeviceLoginRequest,
    responses((status = 200, body = SessionResponse), (status = 401, body = ApiError)))]
pub async fn device_login(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let request: DeviceLoginRequest = parse_json(&body)?;
    if request.terminal_id.len() > MAX_FIELD || request.secret.len() > MAX_FIELD {
        return Err(unauthorized("unknown terminal or wrong credential"));
    }
    let row = sqlx::query("SELECT id, device_hash FROM sites WHERE terminal_id = $1")
        .bind(&request.terminal_id)
        .fetch_optional(state.db.pool())
        .await
        .map_err(|e| db_error(&e.into(), "reading a site"))?;
    let (site_id, hash) = match &row {
        Some(r) => (
            r.try_get::<i64, _>("id").ok(),
            r.try_get::<Option<String>, _>("device_hash")
                .ok()
                .flatten()
                .unwrap_or_else(|| NO_SUCH_USER.into()),
        ),
        None => (None, NO_SUCH_USER.into()),
    };
    let secret = request.secret.clone();
    let matches = tokio::task::spawn_blocking(move || verify_password(&secret, &hash))
        .await
        .unwrap_or(false);
    let (Some(site_id), true) = (site_id, matches) else {
        tracing::info!(terminal = %request.terminal_id, "failed terminal login");
        return Err(unauthorized("unknown terminal or wrong credential"));
    };
    let (token, expires_at) = new_session(&state.db, None, Some(site_id), DEVICE_SESSION).await?;
    Ok(with_cookie(
        &token.clone(),
        DEVICE_SESSION,
        SessionResponse {
            token,
            expires_at,
            person: None,
            site_id: Some(site_id),
        },
    ))
}

/// End the caller's session.
#[utoipa::path(post, path = "/api/logout", tag = "sessions",
    responses((status = 204), (status = 401, body = ApiError)))]
pub async fn logout(
    State(state): State<AppState>,
    _caller: Caller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(token) = token_of(&headers) {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(hash_token(token))
            .execute(state.db.pool())
            .await
            .map_err(|e| db_error(&e.into(), "ending a session"))?;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    let expired = format!("{COOKIE}=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0");
    if let Ok(value) = HeaderValue::from_str(&expired) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

/// Who the caller is.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// The person, for a person's session.
    pub person: Option<Person>,
    /// The site, for a room terminal's session.
    pub site_id: Option<i64>,
}

/// The caller's identity.
#[utoipa::path(get, path = "/api/me", tag = "sessions",
    responses((status = 200, body = Me), (status = 401, body = ApiError)))]
pub async fn me(caller: Caller) -> Json<Me> {
    Json(match caller {
        Caller::Person(p) => Me {
            person: Some(p),
            site_id: None,
        },
        Caller::Site { site_id } => Me {
            person: None,
            site_id: Some(site_id),
        },
    })
}

/// `POST /api/people` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPerson {
    /// Login name: letters, digits, `.`, `_`, `-`; at most 64 characters.
    pub username: String,
    /// Name shown to others.
    pub display_name: String,
    /// What the person may do.
    pub role: Role,
    /// The person's site.
    #[serde(default)]
    pub site_id: Option<i64>,
    /// Initial password, at least 8 characters.
    pub password: String,
}

fn invalid(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", message)
}

impl NewPerson {
    fn check(&self) -> Result<(), ApiError> {
        let name_ok = !self.username.is_empty()
            && self.username.chars().count() <= 64
            && self
                .username
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !name_ok {
            return Err(invalid(
                "username: 1 to 64 letters, digits, '.', '_' or '-'".into(),
            ));
        }
        let display = self.display_name.trim();
        if display.is_empty() || display.len() > MAX_FIELD {
            return Err(invalid(format!(
                "display_name: 1 to {MAX_FIELD} bytes of text"
            )));
        }
        if self.password.chars().count() < 8 || self.password.len() > MAX_FIELD {
            return Err(invalid(format!(
                "password: at least 8 characters, at most {MAX_FIELD} bytes"
            )));
        }
        Ok(())
    }
}

/// Creates a person (no role check: callers check). Used by the API and the first start.
pub async fn create_person(db: &Db, actor: &str, new: NewPerson) -> Result<Person, ApiError> {
    new.check()?;
    let password = new.password.clone();
    let hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|_| ApiError::internal("the password could not be hashed"))??;
    let mut tx = db
        .pool()
        .begin()
        .await
        .map_err(|e| db_error(&e.into(), "creating a person"))?;
    if let Some(site) = new.site_id {
        sites::must_exist(&mut *tx, site, StatusCode::BAD_REQUEST).await?;
    }
    let row = sqlx::query(
        "INSERT INTO people (username, display_name, role, site_id, password_hash) \
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(&new.username)
    .bind(new.display_name.trim())
    .bind(new.role.as_str())
    .bind(new.site_id)
    .bind(&hash)
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| {
        conflict_or_db_error(
            e,
            "duplicate_username",
            || format!("the user name {} is taken", new.username),
            "creating a person",
        )
    })?;
    let id: i64 = row
        .try_get("id")
        .map_err(|e| db_error(&e.into(), "creating a person"))?;
    audit::record(
        &mut tx,
        actor,
        "person.create",
        &format!("person:{id}"),
        &format!("{} ({})", new.username, new.role.as_str()),
    )
    .await?;
    tx.commit()
        .await
        .map_err(|e| db_error(&e.into(), "creating a person"))?;
    Ok(Person {
        id,
        username: new.username,
        display_name: new.display_name.trim().to_string(),
        role: new.role,
        site_id: new.site_id,
    })
}

/// Create a person (administrators).
#[utoipa::path(post, path = "/api/people", tag = "people",
    request_body = NewPerson,
    responses((status = 201, body = Person), (status = 400, body = ApiError),
        (status = 403, body = ApiError), (status = 409, body = ApiError)))]
pub async fn add_person(
    State(state): State<AppState>,
    caller: Caller,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Administrator])?;
    let new: NewPerson = parse_json(&body)?;
    let person = create_person(&state.db, &caller.audit_name(), new).await?;
    Ok((StatusCode::CREATED, Json(person)).into_response())
}

/// `PUT /api/people/{id}` body: what to change (absent fields stay as they are).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonChange {
    /// Name shown to others.
    #[serde(default)]
    pub display_name: Option<String>,
    /// What the person may do.
    #[serde(default)]
    pub role: Option<Role>,
    /// The person's site (`null` leaves it; use `clear_site` to remove it).
    #[serde(default)]
    pub site_id: Option<i64>,
    /// Remove the person's site.
    #[serde(default)]
    pub clear_site: bool,
    /// A new password (at least 8 characters): the person's sessions end.
    #[serde(default)]
    pub password: Option<String>,
    /// Disable (`true`) or enable the account: a disabled person's sessions end.
    #[serde(default)]
    pub disabled: Option<bool>,
}

/// Change a person: name, role, site, password, disabled (administrators). The last enabled
/// administrator can be neither demoted nor disabled.
#[utoipa::path(put, path = "/api/people/{id}", tag = "people", request_body = PersonChange,
    params(("id" = i64, Path, description = "Person id")),
    responses((status = 200, body = Person), (status = 400, body = ApiError),
        (status = 403, body = ApiError), (status = 404, body = ApiError),
        (status = 409, body = ApiError)))]
pub async fn change_person(
    State(state): State<AppState>,
    caller: Caller,
    axum::extract::Path(id): axum::extract::Path<i64>,
    body: axum::body::Bytes,
) -> Result<Json<Person>, ApiError> {
    caller.require(&[Role::Administrator])?;
    let change: PersonChange = parse_json(&body)?;
    let read = |e: sqlx::Error| db_error(&e.into(), "changing a person");
    let mut tx = state.db.pool().begin().await.map_err(read)?;
    let row = sqlx::query(
        "SELECT id, username, display_name, role, site_id, disabled FROM people WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await
    .map_err(read)?
    .ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_person",
            format!("there is no person {id}"),
        )
    })?;
    let mut person = Person::from_row(&row).map_err(read)?;
    let was_disabled = row.try_get::<i64, _>("disabled").map_err(read)? != 0;
    if let Some(name) = &change.display_name {
        let name = name.trim();
        if name.is_empty() || name.len() > MAX_FIELD {
            return Err(invalid(format!(
                "display_name: 1 to {MAX_FIELD} bytes of text"
            )));
        }
        person.display_name = name.to_string();
    }
    if let Some(site) = change.site_id {
        sites::must_exist(&mut *tx, site, StatusCode::BAD_REQUEST).await?;
        person.site_id = Some(site);
    }
    if change.clear_site {
        person.site_id = None;
    }
    let disabled = change.disabled.unwrap_or(was_disabled);
    let demoted = change.role.is_some_and(|r| r != Role::Administrator);
    if person.role == Role::Administrator && (demoted || disabled) {
        let admins: i64 = sqlx::query(
            "SELECT COUNT(*) FROM people WHERE role = 'administrator' AND disabled = 0 AND id <> $1",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .and_then(|r| r.try_get(0))
        .map_err(read)?;
        if admins == 0 {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "last_administrator",
                "the last administrator can be neither demoted nor disabled".into(),
            ));
        }
    }
    if let Some(role) = change.role {
        person.role = role;
    }
    let hash = match &change.password {
        Some(p) if p.chars().count() < 8 || p.len() > MAX_FIELD => {
            return Err(invalid(format!(
                "password: at least 8 characters, at most {MAX_FIELD} bytes"
            )));
        }
        Some(p) => {
            let p = p.clone();
            Some(
                tokio::task::spawn_blocking(move || hash_password(&p))
                    .await
                    .map_err(|_| ApiError::internal("the password could not be hashed"))??,
            )
        }
        None => None,
    };
    sqlx::query(
        "UPDATE people SET display_name = $1, role = $2, site_id = $3, disabled = $4, \
         password_hash = COALESCE($5, password_hash) WHERE id = $6",
    )
    .bind(&person.display_name)
    .bind(person.role.as_str())
    .bind(person.site_id)
    .bind(i64::from(disabled))
    .bind(hash.as_deref())
    .bind(id)
    .execute(&mut *tx)
    .await
    .map_err(read)?;
    if disabled || hash.is_some() {
        sqlx::query("DELETE FROM sessions WHERE person_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(read)?;
    }
    let mut what = Vec::new();
    if change.display_name.is_some() {
        what.push("name".to_string());
    }
    if let Some(r) = change.role {
        what.push(format!("role {}", r.as_str()));
    }
    if change.site_id.is_some() || change.clear_site {
        what.push(format!("site {:?}", person.site_id));
    }
    if hash.is_some() {
        what.push("password".into());
    }
    if disabled != was_disabled {
        what.push(if disabled { "disabled" } else { "enabled" }.into());
    }
    audit::record(
        &mut tx,
        &caller.audit_name(),
        "person.change",
        &format!("person:{id}"),
        &format!("{}: {}", person.username, what.join(", ")),
    )
    .await?;
    tx.commit().await.map_err(read)?;
    Ok(Json(person))
}

/// Everyone with an account (administrators, chairs and technicians).
#[utoipa::path(get, path = "/api/people", tag = "people",
    responses((status = 200, body = [Person]), (status = 403, body = ApiError)))]
pub async fn people(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<Person>>, ApiError> {
    caller.require(&[Role::Administrator, Role::Chair, Role::Technician])?;
    let rows = sqlx::query(
        "SELECT id, username, display_name, role, site_id FROM people \
         WHERE disabled = 0 ORDER BY id",
    )
    .fetch_all(state.db.pool())
    .await
    .map_err(|e| db_error(&e.into(), "listing people"))?;
    rows.iter()
        .map(Person::from_row)
        .collect::<Result<_, _>>()
        .map(Json)
        .map_err(|e| db_error(&e.into(), "listing people"))
}

/// On first start, the administrator account `admin`, with the given password or a random one
/// written to `password_file` (readable by the owner only). Returns where the password is.
pub async fn ensure_admin(
    db: &Db,
    password: Option<&str>,
    password_file: &std::path::Path,
) -> Result<Option<String>, ApiError> {
    let count: i64 = sqlx::query("SELECT COUNT(*) FROM people")
        .fetch_one(db.pool())
        .await
        .and_then(|r| r.try_get(0))
        .map_err(|e| db_error(&e.into(), "counting people"))?;
    if count > 0 {
        return Ok(None);
    }
    let (password, told) = match password {
        Some(p) => (p.to_string(), "the configured --admin-password".to_string()),
        None => {
            let p = random_secret()?[..20].to_string();
            write_private(password_file, &format!("{p}\n")).map_err(|e| {
                tracing::error!(error = %e, file = %password_file.display(), "cannot write the first password");
                ApiError::internal("the first administrator password could not be saved")
            })?;
            (p, format!("in {}", password_file.display()))
        }
    };
    create_person(
        db,
        "system",
        NewPerson {
            username: "admin".into(),
            display_name: "Quản trị viên".into(),
            role: Role::Administrator,
            site_id: None,
            password,
        },
    )
    .await?;
    Ok(Some(told))
}

fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    options.open(path)?.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_and_damaged_hashes_never_match() {
        let hash = hash_password("mật khẩu đúng").expect("hash");
        assert!(verify_password("mật khẩu đúng", &hash));
        assert!(!verify_password("mật khẩu sai", &hash));
        assert!(!verify_password("mật khẩu đúng", "not a hash"));
        assert!(!verify_password("anything", NO_SUCH_USER));
    }

    #[test]
    fn the_token_comes_from_the_bearer_header_or_the_cookie() {
        let mut h = HeaderMap::new();
        assert_eq!(token_of(&h), None);
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; bridge_session=abc; b=2"),
        );
        assert_eq!(token_of(&h), Some("abc"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer xyz"),
        );
        assert_eq!(token_of(&h), Some("xyz"));
    }

    #[test]
    fn new_people_are_checked() {
        let person = |username: &str, password: &str| NewPerson {
            username: username.into(),
            display_name: "Nguyễn Văn A".into(),
            role: Role::Participant,
            site_id: None,
            password: password.into(),
        };
        assert!(person("nva", "12345678").check().is_ok());
        assert!(person("", "12345678").check().is_err());
        assert!(
            person("x'; DROP TABLE people;--", "12345678")
                .check()
                .is_err()
        );
        assert!(person("nva", "short").check().is_err());
    }
}
