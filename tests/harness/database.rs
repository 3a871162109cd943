//! A fresh database per test: a SQLite file, or a new PostgreSQL database when
//! `TEST_DATABASE_URL` is set (dropped again when the test ends).

use sea_orm::{ConnectionTrait, Database, DatabaseConnection, QueryResult, Statement};
use uuid::Uuid;

/// Where a test's data lives.
pub struct TestDatabase {
    /// Connection for migrations and for tests that inspect stored rows (schema owner).
    pub owner_url: String,
    /// Connection the App uses (on PostgreSQL the `resonance_app` role, subject to RLS).
    pub app_url: String,
    postgres: Option<PostgresDatabase>,
    _dir: Option<tempfile::TempDir>,
}

struct PostgresDatabase {
    admin_url: String,
    name: String,
}

/// The PostgreSQL server tests run against, if any.
pub fn postgres_admin_url() -> Option<String> {
    std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
}

/// Replaces the user and database of a `postgres://user@host:port/db?…` URL.
fn with_user_and_database(url: &str, user: &str, database: &str) -> String {
    let rest = url
        .split_once("://")
        .map(|(_, rest)| rest)
        .expect("TEST_DATABASE_URL is a postgres:// URL");
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = authority
        .rsplit_once('@')
        .map(|(_, h)| h)
        .unwrap_or(authority);
    let query = path
        .split_once('?')
        .map(|(_, q)| format!("?{q}"))
        .unwrap_or_default();
    format!("postgres://{user}@{host}/{database}{query}")
}

fn admin_user(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = rest.split('/').next().unwrap_or("");
    authority
        .rsplit_once('@')
        .map(|(user, _)| user.to_owned())
        .unwrap_or_else(|| "postgres".into())
}

impl TestDatabase {
    pub async fn create() -> TestDatabase {
        match postgres_admin_url() {
            Some(admin_url) => TestDatabase::postgres(admin_url).await,
            None => TestDatabase::sqlite(),
        }
    }

    /// The same database for a second App (two replicas on one database). The original
    /// keeps owning it: it must outlive this copy, which drops nothing.
    pub fn shared(&self) -> TestDatabase {
        TestDatabase {
            owner_url: self.owner_url.clone(),
            app_url: self.app_url.clone(),
            postgres: None,
            _dir: None,
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.postgres.is_some()
    }

    fn sqlite() -> TestDatabase {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
        TestDatabase {
            owner_url: url.clone(),
            app_url: url,
            postgres: None,
            _dir: Some(dir),
        }
    }

    async fn postgres(admin_url: String) -> TestDatabase {
        let name = format!("resonance_test_{}", Uuid::new_v4().simple());
        let admin = Database::connect(&admin_url).await.unwrap_or_else(|e| {
            panic!("TEST_DATABASE_URL is set but PostgreSQL is unreachable: {e}")
        });
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create the test database");
        admin.close().await.ok();
        let user = admin_user(&admin_url);
        TestDatabase {
            owner_url: with_user_and_database(&admin_url, &user, &name),
            app_url: with_user_and_database(&admin_url, migration::rls::APP_ROLE, &name),
            postgres: Some(PostgresDatabase { admin_url, name }),
            _dir: None,
        }
    }

    /// The `host:port` of the PostgreSQL server.
    pub fn postgres_host(&self) -> Option<String> {
        self.postgres.as_ref()?;
        let authority = self.app_url.split_once("://")?.1.split('/').next()?;
        Some(
            authority
                .rsplit_once('@')
                .map(|(_, h)| h)
                .unwrap_or(authority)
                .to_owned(),
        )
    }

    /// The App's URL with its server address replaced (e.g. by a proxy's).
    pub fn app_url_via(&self, address: &str) -> String {
        let host = self.postgres_host().expect("a PostgreSQL database");
        self.app_url.replacen(&host, address, 1)
    }

    /// A connection as the schema owner, for looking at what is stored.
    pub async fn owner(&self) -> DatabaseConnection {
        Database::connect(&self.owner_url)
            .await
            .expect("owner connection")
    }

    /// Counts the rows of `table` (as the owner, so row-level security does not hide any).
    pub async fn count(&self, table: &str) -> i64 {
        let row = self
            .query_one(&format!("SELECT COUNT(*) FROM {table}"))
            .await;
        row.expect("a count").try_get_by_index(0).unwrap()
    }

    /// The first row `sql` selects, if any, read as the owner (row-level security hides nothing).
    pub async fn query_one(&self, sql: &str) -> Option<QueryResult> {
        let db = self.owner().await;
        let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                sql.to_owned(),
            ))
            .await
            .unwrap();
        db.close().await.ok();
        row
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(pg) = self.postgres.take() else {
            return;
        };
        // Drop runs outside async; a short-lived runtime on its own thread does the cleanup.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok(admin) = Database::connect(&pg.admin_url).await {
                    let _ = admin
                        .execute_unprepared(&format!(
                            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                            pg.name
                        ))
                        .await;
                    admin.close().await.ok();
                }
            });
        })
        .join();
    }
}
