//! The store: sqlx over SQLite (embedded default) or PostgreSQL (several nodes), one schema.
//!
//! Queries are written once in the SQL both dialects share and run through sqlx's `Any` driver; `$1`
//! placeholders work on both. Times are UTC milliseconds (`i64`), flags are `BIGINT` 0/1 (the Any driver decodes no SQLite boolean).

pub mod attempts;
pub mod audit;
pub mod bus;
pub mod groups;
pub mod integrations;
pub mod logins;
pub mod nodes;
pub mod recordings;
pub mod reports;
pub mod sessions;
pub mod settings;
pub mod tokens;
pub mod users;

pub use audit::{AuditEntry, AuditRow, ChangeType};
pub use groups::{Group, GroupKind, NewGroup};
pub use logins::LoginEvent;
pub use tokens::TokenRow;
pub use users::{NewUser, Role, User};

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Transaction};

pub type Tx = Transaction<'static, sqlx::Any>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(&'static str),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    /// The store could not be reached or is restarting (connection lost or refused, pool timed
    /// out, PostgreSQL shutting down or starting): the same write may succeed later, so it is
    /// retried rather than lost. Any other error (a constraint, bad SQL) would fail again.
    pub fn is_unavailable(&self) -> bool {
        let StoreError::Db(e) = self else {
            return false;
        };
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => true,
            // SQLSTATE classes 08 (connection exception), 28 (the login refused: a role locked
            // out, a password being changed) and 53 (too many connections, out of memory or
            // disk); 57P01-57P03 (admin shutdown, crash shutdown, cannot connect now).
            sqlx::Error::Database(db) => db.code().is_some_and(|c| {
                ["08", "28", "53"].iter().any(|class| c.starts_with(class))
                    || matches!(&*c, "57P01" | "57P02" | "57P03")
            }),
            _ => false,
        }
    }
}

impl Store {
    /// Connects and applies the migrations of the backend the URL names.
    pub async fn open(url: &str) -> Result<Store> {
        let store = Store::connect(url).await?;
        store.migrate().await?;
        Ok(store)
    }

    pub async fn connect(url: &str) -> Result<Store> {
        install_default_drivers();
        let backend = if url.starts_with("postgres") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        };
        if backend == Backend::Sqlite {
            ensure_sqlite_parent_dir(url);
        }
        let max = if backend == Backend::Sqlite { 8 } else { 16 };
        let sqlite = backend == Backend::Sqlite;
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            // While PostgreSQL is down a call fails after this rather than sqlx's 30 s: requests
            // get a prompt `store_unavailable`, and the writers retry on their own.
            .acquire_timeout(std::time::Duration::from_secs(if sqlite { 30 } else { 5 }))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if sqlite {
                        // In WAL mode, NORMAL syncs at checkpoints, not at every commit: safe
                        // against a crash of the server, and a power loss can lose only the last
                        // commits (never corrupt the file). Per connection, hence here.
                        sqlx::Executor::execute(conn, "PRAGMA synchronous=NORMAL").await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        if backend == Backend::Sqlite {
            // WAL lets readers (reports) run while a writer commits; it is persistent in the file.
            sqlx::query("PRAGMA journal_mode=WAL")
                .execute(&pool)
                .await?;
        }
        Ok(Store { pool, backend })
    }

    pub async fn migrate(&self) -> Result<()> {
        match self.backend {
            Backend::Sqlite => sqlx::migrate!("migrations/sqlite").run(&self.pool).await?,
            Backend::Postgres => {
                sqlx::migrate!("migrations/postgres")
                    .run(&self.pool)
                    .await?
            }
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub async fn begin(&self) -> Result<Tx> {
        Ok(self.pool.begin().await?)
    }

    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

fn ensure_sqlite_parent_dir(url: &str) {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return;
    }
    if let Some(parent) = std::path::Path::new(path).parent()
        && !parent.as_os_str().is_empty()
    {
        let _ = std::fs::create_dir_all(parent);
    }
}

/// Milliseconds since the Unix epoch, the store's time type.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Maps a unique-constraint violation to a conflict with a stable reason.
pub(crate) fn unique_violation(e: sqlx::Error, what: &'static str) -> StoreError {
    if let sqlx::Error::Database(db) = &e
        && db.is_unique_violation()
    {
        return StoreError::Conflict(what);
    }
    StoreError::Db(e)
}
