//! Storage: SQLite by default (zero set-up, a file in the data folder), PostgreSQL as an
//! option, through sqlx's `Any` driver, with each dialect's migrations embedded in the binary.
//!
//! Queries are written once, in the SQL both dialects share, with `$1`-style parameters (SQLite
//! reads them as numbered parameters). Times are whole seconds since the Unix epoch (UTC), flags
//! are 0/1 integers and ids are 64-bit: types both dialects store and return the same way.

use std::borrow::Cow;
use std::path::Path;

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{Row, SqlSafeStr};

use crate::lifecycle::{State, Times, effective};
use crate::protocol::MeetingInfo;

/// The title of the meeting created in an empty database so that there is something to enter.
pub const DEMO_MEETING_TITLE: &str = "Họp thử nghiệm (demo)";

/// SQLite's schema migrations, in order. Each is applied once and recorded by sqlx.
const SQLITE: &[(i64, &str, &str)] = &[
    (
        1,
        "meetings",
        include_str!("../migrations/sqlite/0001_meetings.sql"),
    ),
    (
        2,
        "lifecycle",
        include_str!("../migrations/sqlite/0002_lifecycle.sql"),
    ),
    (
        3,
        "live",
        include_str!("../migrations/sqlite/0003_live.sql"),
    ),
    (
        4,
        "quality",
        include_str!("../migrations/sqlite/0004_quality.sql"),
    ),
];

/// PostgreSQL's schema migrations: the same versions, tables and columns as [`SQLITE`].
const POSTGRES: &[(i64, &str, &str)] = &[
    (
        1,
        "meetings",
        include_str!("../migrations/postgres/0001_meetings.sql"),
    ),
    (
        2,
        "lifecycle",
        include_str!("../migrations/postgres/0002_lifecycle.sql"),
    ),
    (
        3,
        "live",
        include_str!("../migrations/postgres/0003_live.sql"),
    ),
    (
        4,
        "quality",
        include_str!("../migrations/postgres/0004_quality.sql"),
    ),
];

/// Which database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A file in the data folder.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database could not be opened or queried.
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    /// A migration failed: the database is from a newer version, or damaged.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database URL names a database this build does not speak.
    #[error("unsupported database URL (use sqlite:PATH or postgres://...): {0}")]
    Url(String),
}

impl DbError {
    /// Whether this is a violated UNIQUE constraint (a duplicate name or code).
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, Self::Sqlx(sqlx::Error::Database(e)) if e.is_unique_violation())
    }
}

/// The database handle. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
}

/// The URL of the default database: `bridge.sqlite3` in `data_dir`, created if missing.
pub fn sqlite_url(data_dir: &Path) -> String {
    format!(
        "sqlite:{}?mode=rwc",
        data_dir.join("bridge.sqlite3").display()
    )
}

impl Db {
    /// Connects to `url` (`sqlite:PATH?mode=rwc` or `postgres://...`) and applies migrations.
    pub async fn open(url: &str) -> Result<Self, DbError> {
        sqlx::any::install_default_drivers();
        let (backend, max_connections) = if url.starts_with("sqlite:") {
            // One writer at a time in SQLite anyway; a few readers beside it.
            (Backend::Sqlite, 4)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, 16)
        } else {
            let scheme = url.split(':').next().unwrap_or_default();
            return Err(DbError::Url(format!("{scheme}:...")));
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .connect(url)
            .await?;
        if backend == Backend::Sqlite {
            // Readers never wait for the writer; the mode is kept in the file.
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
        }
        let source = match backend {
            Backend::Sqlite => SQLITE,
            Backend::Postgres => POSTGRES,
        };
        let migrations = source
            .iter()
            .map(|(version, name, sql)| {
                Migration::new(
                    *version,
                    Cow::Borrowed(*name),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect();
        Migrator::with_migrations(migrations).run(&pool).await?;
        Ok(Self { pool, backend })
    }

    /// The connection pool, for the modules that own their tables.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Creates the demo meeting if there is no meeting at all. It has no times: always open.
    pub async fn ensure_demo_meeting(&self) -> Result<(), DbError> {
        let count: i64 = sqlx::query("SELECT COUNT(*) FROM meetings")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        if count == 0 {
            sqlx::query("INSERT INTO meetings (title, state) VALUES ($1, 'in_progress')")
                .bind(DEMO_MEETING_TITLE)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// The meetings a client can enter now (roll call open or in progress), oldest first.
    pub async fn meetings(&self) -> Result<Vec<MeetingInfo>, DbError> {
        Ok(self
            .open_meetings()
            .await?
            .into_iter()
            .map(|(m, _)| m)
            .collect())
    }

    /// The meetings open now and their state as of now (`RollCall` or `InProgress`), oldest
    /// first.
    pub async fn open_meetings(&self) -> Result<Vec<(MeetingInfo, State)>, DbError> {
        let now = crate::clock::now();
        let rows = sqlx::query(
            "SELECT id, title, state, starts_at, ends_at, roll_call_minutes FROM meetings \
             WHERE state IN ('scheduled', 'roll_call', 'in_progress') ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut open = Vec::new();
        for r in rows {
            let stored: String = r.try_get("state")?;
            let times = Times {
                starts_at: r.try_get("starts_at")?,
                ends_at: r.try_get("ends_at")?,
                roll_call: r.try_get::<i64, _>("roll_call_minutes")? * 60,
            };
            let state = effective(State::parse(&stored).unwrap_or(State::Ended), times, now);
            if state.is_open() {
                let info = MeetingInfo {
                    id: r.try_get("id")?,
                    title: r.try_get("title")?,
                };
                open.push((info, state));
            }
        }
        Ok(open)
    }

    /// One meeting, if it exists.
    pub async fn meeting(&self, id: i64) -> Result<Option<MeetingInfo>, DbError> {
        let row = sqlx::query("SELECT id, title FROM meetings WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(MeetingInfo {
                id: r.try_get("id")?,
                title: r.try_get("title")?,
            })
        })
        .transpose()
    }
}
