//! The register of sites: every meeting room of the province in its administrative tree
//! (province, district, commune), with the identity of its room terminal.
//!
//! Sites come one by one or from a CSV file (`code,name,level,parent_code,terminal_id`). An
//! import is all or nothing: the first bad row is named by its line and nothing is stored.

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;
use utoipa::ToSchema;

use crate::AppState;
use crate::audit;
use crate::auth::{self, Caller, Role};
use crate::db::DbError;
use crate::http::{ApiError, conflict_or_db_error, db_error, parse_json};

/// Most sites one CSV import may hold.
pub const MAX_IMPORT_ROWS: usize = 10_000;
/// Largest CSV import, in bytes.
pub const MAX_IMPORT_BYTES: usize = 2 * 1024 * 1024;
/// Longest site name, in bytes.
pub const MAX_NAME: usize = 200;

/// A site's place in the administrative tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Tỉnh.
    Province,
    /// Huyện.
    District,
    /// Xã.
    Commune,
}

impl Level {
    /// The name stored and used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Province => "province",
            Self::District => "district",
            Self::Commune => "commune",
        }
    }

    /// The level of an English or Vietnamese name (`tỉnh`, `huyện`, `xã`).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_lowercase().as_str() {
            "province" | "tỉnh" | "tinh" => Some(Self::Province),
            "district" | "huyện" | "huyen" => Some(Self::District),
            "commune" | "xã" | "xa" => Some(Self::Commune),
            _ => None,
        }
    }

    /// The level a parent of this level must have (`None`: no parent).
    pub fn parent(self) -> Option<Self> {
        match self {
            Self::Province => None,
            Self::District => Some(Self::Province),
            Self::Commune => Some(Self::District),
        }
    }
}

/// A meeting room.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Site {
    /// Id.
    pub id: i64,
    /// Administrative code, unique.
    pub code: String,
    /// Name, in Vietnamese.
    pub name: String,
    /// Level in the tree.
    pub level: Level,
    /// The district of a commune, the province of a district.
    pub parent_id: Option<i64>,
    /// The identity of the room terminal.
    pub terminal_id: Option<String>,
    /// Whether a device credential has been issued.
    pub has_credential: bool,
}

impl Site {
    fn from_row(r: &AnyRow) -> Result<Self, sqlx::Error> {
        let level: String = r.try_get("level")?;
        Ok(Self {
            id: r.try_get("id")?,
            code: r.try_get("code")?,
            name: r.try_get("name")?,
            level: Level::parse(&level).unwrap_or(Level::Commune),
            parent_id: r.try_get("parent_id")?,
            terminal_id: r.try_get("terminal_id")?,
            has_credential: r.try_get::<Option<String>, _>("device_hash")?.is_some(),
        })
    }
}

/// A site to add: one row of an import, or the body of `POST /api/sites`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSite {
    /// Administrative code: 1 to 32 letters, digits, `.`, `_`, `-`.
    pub code: String,
    /// Name (any text, at most 200 bytes).
    pub name: String,
    /// Level.
    pub level: Level,
    /// Code of the parent site (empty or absent for a province site).
    #[serde(default)]
    pub parent_code: Option<String>,
    /// Identity of the room terminal.
    #[serde(default)]
    pub terminal_id: Option<String>,
}

/// Why a CSV import or a new site was refused; `line` is the CSV line (1 is the header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// The line of the CSV file where the row starts (0 for a single site).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

fn row_error(line: usize, message: impl Into<String>) -> RowError {
    RowError {
        line,
        message: message.into(),
    }
}

/// Splits CSV text (RFC 4180: commas, double quotes, `""` inside quotes, CRLF or LF, an
/// optional UTF-8 byte order mark) into records, each with the line it starts on.
pub fn parse_csv(text: &str) -> Result<Vec<(usize, Vec<String>)>, RowError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut records = Vec::new();
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut line = 1;
    let mut start = 1;
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    let mut at_field_start = true;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => {
                    quoted = false;
                    if !matches!(chars.peek(), None | Some(',' | '\r' | '\n')) {
                        return Err(row_error(line, "text after a closing quote"));
                    }
                }
                '\n' => {
                    line += 1;
                    field.push('\n');
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if at_field_start => {
                quoted = true;
                at_field_start = false;
            }
            '"' => return Err(row_error(line, "a quote inside an unquoted field")),
            ',' => {
                fields.push(std::mem::take(&mut field));
                at_field_start = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' | '\r' => {
                fields.push(std::mem::take(&mut field));
                let record = std::mem::take(&mut fields);
                if !(record.len() == 1 && record[0].is_empty()) {
                    records.push((start, record));
                }
                line += 1;
                start = line;
                at_field_start = true;
            }
            _ => {
                field.push(c);
                at_field_start = false;
            }
        }
    }
    if quoted {
        return Err(row_error(start, "a quoted field is never closed"));
    }
    if !field.is_empty() || !fields.is_empty() {
        fields.push(field);
        records.push((start, fields));
    }
    Ok(records)
}

/// The sites of a CSV import, each with its line, checked one by one (not yet against each
/// other or the register).
pub fn sites_of_csv(text: &str) -> Result<Vec<(usize, NewSite)>, RowError> {
    let records = parse_csv(text)?;
    let Some(((_, header), rows)) = records.split_first() else {
        return Err(row_error(1, "the file is empty"));
    };
    let expected = ["code", "name", "level", "parent_code", "terminal_id"];
    let names: Vec<String> = header.iter().map(|h| h.trim().to_lowercase()).collect();
    if names.len() < 4 || names.iter().zip(expected).any(|(n, e)| n != e) {
        return Err(row_error(
            1,
            format!(
                "the header must be {} (terminal_id may be left out)",
                expected.join(",")
            ),
        ));
    }
    if rows.len() > MAX_IMPORT_ROWS {
        return Err(row_error(
            rows[MAX_IMPORT_ROWS].0,
            format!("at most {MAX_IMPORT_ROWS} sites per import"),
        ));
    }
    rows.iter()
        .map(|(line, fields)| {
            if fields.len() != names.len() {
                return Err(row_error(
                    *line,
                    format!("{} fields, the header has {}", fields.len(), names.len()),
                ));
            }
            let optional = |i: usize| {
                fields
                    .get(i)
                    .map(|f| f.trim())
                    .filter(|f| !f.is_empty())
                    .map(str::to_string)
            };
            let level = Level::parse(&fields[2]).ok_or_else(|| {
                row_error(
                    *line,
                    format!(
                        "level {:?} is none of province, district, commune",
                        fields[2]
                    ),
                )
            })?;
            let site = NewSite {
                code: fields[0].trim().to_string(),
                name: fields[1].trim().to_string(),
                level,
                parent_code: optional(3),
                terminal_id: optional(4),
            };
            check_fields(&site).map_err(|m| row_error(*line, m))?;
            Ok((*line, site))
        })
        .collect()
}

fn check_fields(site: &NewSite) -> Result<(), String> {
    let code_ok = |c: &str| {
        !c.is_empty()
            && c.len() <= 32
            && c.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "._-".contains(ch))
    };
    if !code_ok(&site.code) {
        return Err(format!(
            "code {:?}: 1 to 32 letters, digits, '.', '_' or '-'",
            site.code
        ));
    }
    if site.name.trim().is_empty() || site.name.len() > MAX_NAME {
        return Err(format!("name: 1 to {MAX_NAME} bytes of text"));
    }
    if let Some(t) = &site.terminal_id
        && (t.is_empty() || t.len() > 128 || t.chars().any(char::is_control))
    {
        return Err("terminal_id: 1 to 128 bytes, no control characters".into());
    }
    Ok(())
}

/// What the register already holds, as far as an import needs to know.
#[derive(Debug, Default, Clone)]
pub struct Register {
    /// Code → (id, level).
    pub codes: BTreeMap<String, (i64, Level)>,
    /// Terminal ids in use.
    pub terminals: BTreeSet<String>,
}

/// Checks an import against itself and the register, and orders it so that every parent is
/// stored before its children (provinces, then districts, then communes).
pub fn plan_import(
    rows: Vec<(usize, NewSite)>,
    register: &Register,
) -> Result<Vec<NewSite>, RowError> {
    let mut levels: BTreeMap<&str, Level> = register
        .codes
        .iter()
        .map(|(code, (_, level))| (code.as_str(), *level))
        .collect();
    let mut codes_in_file = BTreeMap::new();
    let mut terminals_in_file = BTreeMap::new();
    for (line, site) in &rows {
        if register.codes.contains_key(&site.code) {
            return Err(row_error(
                *line,
                format!("a site with code {} already exists", site.code),
            ));
        }
        if let Some(first) = codes_in_file.insert(site.code.as_str(), *line) {
            return Err(row_error(
                *line,
                format!("code {} is also on line {first}", site.code),
            ));
        }
        if let Some(t) = &site.terminal_id {
            if register.terminals.contains(t) {
                return Err(row_error(
                    *line,
                    format!("terminal {t} already belongs to a site"),
                ));
            }
            if let Some(first) = terminals_in_file.insert(t.as_str(), *line) {
                return Err(row_error(
                    *line,
                    format!("terminal {t} is also on line {first}"),
                ));
            }
        }
        levels.insert(&site.code, site.level);
    }
    for (line, site) in &rows {
        match (site.level.parent(), site.parent_code.as_deref()) {
            (None, None) => {}
            (None, Some(_)) => {
                return Err(row_error(*line, "a province site has no parent"));
            }
            (Some(want), None) => {
                return Err(row_error(
                    *line,
                    format!(
                        "a {} site needs a parent_code (its {})",
                        site.level.as_str(),
                        want.as_str()
                    ),
                ));
            }
            (Some(want), Some(parent)) => match levels.get(parent) {
                None => {
                    return Err(row_error(
                        *line,
                        format!("parent {parent} is neither in the file nor registered"),
                    ));
                }
                Some(level) if *level != want => {
                    return Err(row_error(
                        *line,
                        format!(
                            "parent {parent} is a {}, a {} site's parent must be a {}",
                            level.as_str(),
                            site.level.as_str(),
                            want.as_str()
                        ),
                    ));
                }
                Some(_) => {}
            },
        }
    }
    let mut sites: Vec<NewSite> = rows.into_iter().map(|(_, s)| s).collect();
    sites.sort_by_key(|s| s.level);
    Ok(sites)
}

async fn register(db: &crate::db::Db) -> Result<Register, DbError> {
    let rows = sqlx::query("SELECT id, code, level, terminal_id FROM sites")
        .fetch_all(db.pool())
        .await?;
    let mut register = Register::default();
    for r in rows {
        let level: String = r.try_get("level")?;
        register.codes.insert(
            r.try_get("code")?,
            (
                r.try_get("id")?,
                Level::parse(&level).unwrap_or(Level::Commune),
            ),
        );
        if let Some(t) = r.try_get::<Option<String>, _>("terminal_id")? {
            register.terminals.insert(t);
        }
    }
    Ok(register)
}

/// Stores checked sites in one transaction, parents first; returns how many.
async fn store(
    state: &AppState,
    actor: &str,
    sites: Vec<NewSite>,
    register: &Register,
) -> Result<Vec<i64>, ApiError> {
    let mut ids: BTreeMap<String, i64> = register
        .codes
        .iter()
        .map(|(code, (id, _))| (code.clone(), *id))
        .collect();
    let mut tx = state
        .db
        .pool()
        .begin()
        .await
        .map_err(|e| db_error(&e.into(), "storing sites"))?;
    let mut new_ids = Vec::with_capacity(sites.len());
    for site in &sites {
        let parent = site.parent_code.as_ref().and_then(|c| ids.get(c)).copied();
        let row = sqlx::query(
            "INSERT INTO sites (code, name, level, parent_id, terminal_id) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(&site.code)
        .bind(&site.name)
        .bind(site.level.as_str())
        .bind(parent)
        .bind(&site.terminal_id)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| {
            conflict_or_db_error(
                e,
                "duplicate_site",
                || format!("site {} or its terminal already exists", site.code),
                "storing a site",
            )
        })?;
        let id: i64 = row
            .try_get("id")
            .map_err(|e| db_error(&e.into(), "storing a site"))?;
        ids.insert(site.code.clone(), id);
        new_ids.push(id);
    }
    let detail = match sites.as_slice() {
        [one] => format!("{} {}", one.code, one.name),
        many => format!("{} sites imported", many.len()),
    };
    audit::record(&mut tx, actor, "site.create", "sites", &detail).await?;
    tx.commit()
        .await
        .map_err(|e| db_error(&e.into(), "storing sites"))?;
    Ok(new_ids)
}

fn refused(e: RowError) -> ApiError {
    let message = if e.line == 0 {
        e.message
    } else {
        format!("line {}: {}", e.line, e.message)
    };
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_sites", message)
}

/// The result of an import.
#[derive(Debug, Serialize, ToSchema)]
pub struct Imported {
    /// How many sites were added.
    pub imported: usize,
}

/// Import sites from CSV (administrators). The body is the file, UTF-8, header
/// `code,name,level,parent_code,terminal_id`. All rows are stored, or none.
#[utoipa::path(post, path = "/api/sites/import", tag = "sites",
    request_body(content = String, content_type = "text/csv"),
    responses((status = 200, body = Imported), (status = 400, body = ApiError),
        (status = 403, body = ApiError), (status = 413)))]
pub async fn import(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<Json<Imported>, ApiError> {
    caller.require(&[Role::Administrator])?;
    let text = std::str::from_utf8(&body).map_err(|e| {
        refused(row_error(
            1 + body[..e.valid_up_to()]
                .iter()
                .filter(|b| **b == b'\n')
                .count(),
            "the file is not UTF-8 text",
        ))
    })?;
    let rows = sites_of_csv(text).map_err(refused)?;
    let register = register(&state.db)
        .await
        .map_err(|e| db_error(&e, "reading the register"))?;
    let sites = plan_import(rows, &register).map_err(refused)?;
    let ids = store(&state, &caller.audit_name(), sites, &register).await?;
    Ok(Json(Imported {
        imported: ids.len(),
    }))
}

/// Add one site (administrators).
#[utoipa::path(post, path = "/api/sites", tag = "sites", request_body = NewSite,
    responses((status = 201, body = Site), (status = 400, body = ApiError),
        (status = 403, body = ApiError)))]
pub async fn add(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Administrator])?;
    let site: NewSite = parse_json(&body)?;
    check_fields(&site).map_err(|m| refused(row_error(0, m)))?;
    let register = register(&state.db)
        .await
        .map_err(|e| db_error(&e, "reading the register"))?;
    let sites = plan_import(vec![(0, site)], &register).map_err(refused)?;
    let ids = store(&state, &caller.audit_name(), sites, &register).await?;
    let site = one(&state, ids[0])
        .await?
        .ok_or_else(|| ApiError::internal("the new site vanished"))?;
    Ok((StatusCode::CREATED, Json(site)).into_response())
}

/// `unknown_site`: 404 when the site is the resource, 400 when a body names it.
pub fn unknown_site(status: StatusCode, id: i64) -> ApiError {
    ApiError::new(status, "unknown_site", format!("there is no site {id}"))
}

/// Checks that site `id` exists, with `executor` (a pool or a transaction).
pub async fn must_exist<'e, E>(executor: E, id: i64, status: StatusCode) -> Result<(), ApiError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let found = sqlx::query("SELECT id FROM sites WHERE id = $1")
        .bind(id)
        .fetch_optional(executor)
        .await
        .map_err(|e| db_error(&e.into(), "reading a site"))?;
    found.map(|_| ()).ok_or_else(|| unknown_site(status, id))
}

async fn one(state: &AppState, id: i64) -> Result<Option<Site>, ApiError> {
    sqlx::query("SELECT * FROM sites WHERE id = $1")
        .bind(id)
        .fetch_optional(state.db.pool())
        .await
        .map_err(|e| db_error(&e.into(), "reading a site"))?
        .map(|r| Site::from_row(&r))
        .transpose()
        .map_err(|e| db_error(&e.into(), "reading a site"))
}

/// All sites, in tree order (by level, then code). Any logged-in person.
#[utoipa::path(get, path = "/api/sites", tag = "sites",
    responses((status = 200, body = [Site]), (status = 401, body = ApiError)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<Site>>, ApiError> {
    caller.require(&[
        Role::Administrator,
        Role::Chair,
        Role::Technician,
        Role::Participant,
    ])?;
    all(&state.db)
        .await
        .map(Json)
        .map_err(|e| db_error(&e, "listing sites"))
}

/// Every site, by level then code.
pub async fn all(db: &crate::db::Db) -> Result<Vec<Site>, DbError> {
    let rows = sqlx::query(
        "SELECT * FROM sites ORDER BY CASE level WHEN 'province' THEN 0 \
         WHEN 'district' THEN 1 ELSE 2 END, code",
    )
    .fetch_all(db.pool())
    .await?;
    Ok(rows.iter().map(Site::from_row).collect::<Result<_, _>>()?)
}

/// `PUT /api/sites/{id}` body: what to change (absent fields stay as they are).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SiteChange {
    /// New name (1 to 200 bytes of text).
    #[serde(default)]
    pub name: Option<String>,
    /// New identity of the room terminal: its credential is withdrawn (issue a new one) and its
    /// sessions end.
    #[serde(default)]
    pub terminal_id: Option<String>,
}

/// Rename a site or register its new room terminal (administrators).
#[utoipa::path(put, path = "/api/sites/{id}", tag = "sites", request_body = SiteChange,
    params(("id" = i64, Path, description = "Site id")),
    responses((status = 200, body = Site), (status = 400, body = ApiError),
        (status = 403, body = ApiError), (status = 404, body = ApiError),
        (status = 409, body = ApiError)))]
pub async fn change(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<Json<Site>, ApiError> {
    caller.require(&[Role::Administrator])?;
    let change: SiteChange = parse_json(&body)?;
    let mut site = one(&state, id)
        .await?
        .ok_or_else(|| unknown_site(StatusCode::NOT_FOUND, id))?;
    let mut checked = NewSite {
        code: site.code.clone(),
        name: change
            .name
            .clone()
            .unwrap_or_else(|| site.name.clone())
            .trim()
            .to_string(),
        level: site.level,
        parent_code: None,
        terminal_id: change
            .terminal_id
            .clone()
            .or_else(|| site.terminal_id.clone()),
    };
    check_fields(&checked).map_err(|m| refused(row_error(0, m)))?;
    let new_terminal = change.terminal_id.is_some() && change.terminal_id != site.terminal_id;
    let read = |e: sqlx::Error| db_error(&e.into(), "changing a site");
    let mut tx = state.db.pool().begin().await.map_err(read)?;
    sqlx::query("UPDATE sites SET name = $1, terminal_id = $2 WHERE id = $3")
        .bind(&checked.name)
        .bind(&checked.terminal_id)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            conflict_or_db_error(
                e,
                "duplicate_terminal",
                || "that terminal already belongs to another site".into(),
                "changing a site",
            )
        })?;
    if new_terminal {
        sqlx::query("UPDATE sites SET device_hash = NULL WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(read)?;
        sqlx::query("DELETE FROM sessions WHERE site_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(read)?;
        site.has_credential = false;
    }
    audit::record(
        &mut tx,
        &caller.audit_name(),
        "site.change",
        &format!("site:{id}"),
        &format!(
            "{} {}{}",
            site.code,
            checked.name,
            if new_terminal { ", new terminal" } else { "" }
        ),
    )
    .await?;
    tx.commit().await.map_err(read)?;
    site.name = std::mem::take(&mut checked.name);
    site.terminal_id = checked.terminal_id.take();
    Ok(Json(site))
}

/// A terminal's latest health report.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Seconds since it arrived.
    pub age_secs: f32,
    /// The report.
    pub report: crate::protocol::HealthReport,
}

/// The latest health report of a site's room terminal (administrators, technicians).
#[utoipa::path(get, path = "/api/sites/{id}/health", tag = "sites",
    params(("id" = i64, Path, description = "Site id")),
    responses((status = 200, body = Health), (status = 403, body = ApiError),
        (status = 404, body = ApiError)))]
pub async fn health(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<Health>, ApiError> {
    caller.require(&[Role::Administrator, Role::Technician])?;
    let (report, age) = state.hub.latest_health(id).await.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no_health",
            format!("site {id}'s terminal has not reported since the bridge started"),
        )
    })?;
    Ok(Json(Health {
        age_secs: age.as_secs_f32(),
        report,
    }))
}

/// Whether a command reached the terminal.
#[derive(Debug, Serialize, ToSchema)]
pub struct Delivered {
    /// It was handed to the terminal's connection.
    pub delivered: bool,
}

/// Send a command to a site's room terminal: camera preset, microphone mute, pipeline restart,
/// bitrate ceiling (administrators, technicians). 409 `terminal_offline` when it is not
/// connected.
#[utoipa::path(post, path = "/api/sites/{id}/command", tag = "sites",
    request_body = crate::protocol::TerminalCommand,
    params(("id" = i64, Path, description = "Site id")),
    responses((status = 202, body = Delivered), (status = 400, body = ApiError),
        (status = 403, body = ApiError), (status = 404, body = ApiError),
        (status = 409, body = ApiError)))]
pub async fn command(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Administrator, Role::Technician])?;
    let command: crate::protocol::TerminalCommand = parse_json(&body)?;
    if let crate::protocol::TerminalCommand::Preset { preset } = command
        && preset > 127
    {
        return Err(refused(row_error(0, "presets are 0 to 127")));
    }
    let site = one(&state, id)
        .await?
        .ok_or_else(|| unknown_site(StatusCode::NOT_FOUND, id))?;
    let delivered = state
        .hub
        .command_terminal(
            id,
            crate::protocol::ServerMsg::Command {
                command: command.clone(),
            },
        )
        .await;
    let read = |e: sqlx::Error| db_error(&e.into(), "recording a command");
    let mut tx = state.db.pool().begin().await.map_err(read)?;
    audit::record(
        &mut tx,
        &caller.audit_name(),
        "terminal.command",
        &format!("site:{id}"),
        &format!(
            "{} {command:?}{}",
            site.code,
            if delivered { "" } else { " (not connected)" }
        ),
    )
    .await?;
    tx.commit().await.map_err(read)?;
    if !delivered {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "terminal_offline",
            format!("the terminal of {} is not connected", site.code),
        ));
    }
    Ok((StatusCode::ACCEPTED, Json(Delivered { delivered })).into_response())
}

/// A newly issued device credential, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct Credential {
    /// The terminal's identity (to put in the room agent's configuration).
    pub terminal_id: String,
    /// The secret: shown this once, stored only as a hash.
    pub secret: String,
}

/// Issue (or replace) the device credential of a site's room terminal (administrators). The
/// previous credential stops working.
#[utoipa::path(post, path = "/api/sites/{id}/credential", tag = "sites",
    params(("id" = i64, Path, description = "Site id")),
    responses((status = 200, body = Credential), (status = 404, body = ApiError),
        (status = 409, body = ApiError)))]
pub async fn issue_credential(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<Credential>, ApiError> {
    caller.require(&[Role::Administrator])?;
    let site = one(&state, id)
        .await?
        .ok_or_else(|| unknown_site(StatusCode::NOT_FOUND, id))?;
    let Some(terminal_id) = site.terminal_id else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_terminal",
            format!("site {} has no terminal_id: set one first", site.code),
        ));
    };
    let secret = auth::random_secret()?;
    let to_hash = secret.clone();
    let hash = tokio::task::spawn_blocking(move || auth::hash_password(&to_hash))
        .await
        .map_err(|_| ApiError::internal("the credential could not be hashed"))??;
    let mut tx = state
        .db
        .pool()
        .begin()
        .await
        .map_err(|e| db_error(&e.into(), "issuing a credential"))?;
    sqlx::query("UPDATE sites SET device_hash = $1 WHERE id = $2")
        .bind(&hash)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(|e| db_error(&e.into(), "issuing a credential"))?;
    // Sessions opened with the old credential end with it.
    sqlx::query("DELETE FROM sessions WHERE site_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(|e| db_error(&e.into(), "issuing a credential"))?;
    audit::record(
        &mut tx,
        &caller.audit_name(),
        "site.credential",
        &format!("site:{id}"),
        &format!("device credential issued for {terminal_id}"),
    )
    .await?;
    tx.commit()
        .await
        .map_err(|e| db_error(&e.into(), "issuing a credential"))?;
    Ok(Json(Credential {
        terminal_id,
        secret,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_commas_newlines_and_a_byte_order_mark() {
        let text = "\u{feff}a,b\r\n\"x, \"\"y\"\"\",z\n\"two\nlines\",w\n\nlast,row";
        let records = parse_csv(text).expect("valid");
        assert_eq!(
            records,
            vec![
                (1, vec!["a".to_string(), "b".into()]),
                (2, vec!["x, \"y\"".to_string(), "z".into()]),
                (3, vec!["two\nlines".to_string(), "w".into()]),
                (6, vec!["last".to_string(), "row".into()]),
            ]
        );
        assert_eq!(parse_csv("a,\"b").expect_err("open quote").line, 1);
        assert_eq!(parse_csv("a\nb\"c\n").expect_err("stray quote").line, 2);
    }

    fn csv(rows: &[&str]) -> String {
        let mut text = "code,name,level,parent_code,terminal_id\n".to_string();
        for r in rows {
            text.push_str(r);
            text.push('\n');
        }
        text
    }

    #[test]
    fn an_import_names_the_line_of_its_first_bad_row() {
        let cases = [
            (
                csv(&["T01,Tỉnh,province,,", "H01,Huyện,county,T01,"]),
                3,
                "level",
            ),
            (
                csv(&["T01,Tỉnh,province,,", "X01,Xã,commune,T01,"]),
                3,
                "parent",
            ),
            (
                csv(&["T01,Tỉnh,province,,", "T01,Again,province,,"]),
                3,
                "also on line 2",
            ),
            (csv(&["X01,Xã,commune,H09,"]), 2, "neither in the file"),
            (
                csv(&["T01,Tỉnh,province,,", "H01,,district,T01,"]),
                3,
                "name",
            ),
            (csv(&["T01,Tỉnh,province,,,extra"]), 2, "fields"),
            (
                csv(&["T01,Tỉnh,province,,pc-1", "T02,Tỉnh 2,province,,pc-1"]),
                3,
                "terminal",
            ),
            ("name,code\n".to_string(), 1, "header"),
        ];
        for (text, line, words) in cases {
            let e = sites_of_csv(&text)
                .and_then(|rows| plan_import(rows, &Register::default()))
                .expect_err(&text);
            assert_eq!(e.line, line, "{text}: {e:?}");
            assert!(e.message.contains(words), "{text}: {e:?}");
        }
    }

    #[test]
    fn an_import_may_refer_to_registered_parents_and_is_stored_parents_first() {
        let mut register = Register::default();
        register.codes.insert("T01".into(), (1, Level::Province));
        let text = csv(&[
            "X01,\"Xã \"\"Hòa Bình\"\" 🌾\",xã,H01,",
            "H01,Huyện Đông,huyện,T01,pc-h01",
        ]);
        let sites = sites_of_csv(&text)
            .and_then(|rows| plan_import(rows, &register))
            .expect("valid");
        assert_eq!(sites[0].code, "H01");
        assert_eq!(sites[1].name, "Xã \"Hòa Bình\" 🌾");
        let again = plan_import(
            vec![(
                2,
                NewSite {
                    code: "T01".into(),
                    name: "x".into(),
                    level: Level::Province,
                    parent_code: None,
                    terminal_id: None,
                },
            )],
            &register,
        );
        assert!(
            again
                .expect_err("exists")
                .message
                .contains("already exists")
        );
    }

    #[test]
    fn the_sample_province_has_the_real_shape() {
        let text = include_str!("../../deploy/sample-province.csv");
        let sites = sites_of_csv(text)
            .and_then(|rows| plan_import(rows, &Register::default()))
            .expect("the sample imports");
        let count = |level| sites.iter().filter(|s| s.level == level).count();
        assert_eq!(
            (
                count(Level::Province),
                count(Level::District),
                count(Level::Commune)
            ),
            (2, 11, 200)
        );
        assert!(sites.iter().all(|s| s.terminal_id.is_some()));
    }
}
