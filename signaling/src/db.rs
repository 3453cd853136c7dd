//! Storage: SQLite through sqlx, with migrations embedded in the binary.

use std::borrow::Cow;
use std::path::Path;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::{Row, SqlSafeStr};

use crate::protocol::MeetingInfo;

/// The title of the meeting created in an empty database so that there is something to enter.
pub const DEMO_MEETING_TITLE: &str = "Họp thử nghiệm (demo)";

/// Schema migrations, in order. Each file is applied once and recorded by sqlx.
const MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "meetings",
    include_str!("../migrations/0001_meetings.sql"),
)];

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database could not be opened or queried.
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    /// A migration failed: the database is from a newer version, or damaged.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// The database handle. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    pool: SqlitePool,
}

impl Db {
    /// Opens (creating if needed) `bridge.sqlite3` in `data_dir` and applies migrations.
    pub async fn open(data_dir: &Path) -> Result<Self, DbError> {
        let options = SqliteConnectOptions::new()
            .filename(data_dir.join("bridge.sqlite3"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        let migrations = MIGRATIONS
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
        Ok(Self { pool })
    }

    /// Creates the demo meeting if there is no meeting at all.
    pub async fn ensure_demo_meeting(&self) -> Result<(), DbError> {
        let count: i64 = sqlx::query("SELECT COUNT(*) FROM meetings")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        if count == 0 {
            sqlx::query("INSERT INTO meetings (title) VALUES (?)")
                .bind(DEMO_MEETING_TITLE)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// All meetings, oldest first.
    pub async fn meetings(&self) -> Result<Vec<MeetingInfo>, DbError> {
        let rows = sqlx::query("SELECT id, title FROM meetings ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .map(|r| {
                Ok(MeetingInfo {
                    id: r.try_get("id")?,
                    title: r.try_get("title")?,
                })
            })
            .collect()
    }

    /// One meeting, if it exists.
    pub async fn meeting(&self, id: i64) -> Result<Option<MeetingInfo>, DbError> {
        let row = sqlx::query("SELECT id, title FROM meetings WHERE id = ?")
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
