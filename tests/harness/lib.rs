//! Test harness: starts the real App on an ephemeral port against a fresh database, with a
//! Clerk stand-in (JWKS and Backend API) on loopback and helpers that mint real RS256 tokens.
//!
//! Database: a new SQLite file per test, or, when `TEST_DATABASE_URL` points at a PostgreSQL
//! server (an administrative connection), a freshly created database per test, dropped when the
//! test ends. On PostgreSQL the migrations run as that administrator and the App connects as the
//! `resonance_app` role, so row-level security applies exactly as in production.

pub mod clerk;
pub mod database;
pub mod fixtures;
pub mod polar;
pub mod proxy;
pub mod webhooks;

use std::{net::TcpListener, path::PathBuf};

use resonance_api::{
    config::{Config, ConfigArgs, Environment},
    server,
};
use serde_json::Value;

pub use clerk::{ClerkStandIn, TokenSpec};
pub use database::TestDatabase;

/// A running App with its database, its Clerk stand-in and an HTTP client.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub clerk: ClerkStandIn,
    pub db: TestDatabase,
    pub state: resonance_api::state::AppState,
    pub data_dir: tempfile::TempDir,
}

/// Settings applied on top of the test defaults before the App starts.
pub type Customize = Box<dyn FnOnce(&mut ConfigArgs) + Send>;

impl TestApp {
    /// Starts an App with the test defaults.
    pub async fn spawn() -> TestApp {
        TestApp::spawn_with(|_| {}).await
    }

    /// Starts an App after `customize` has adjusted its settings.
    pub async fn spawn_with(customize: impl FnOnce(&mut ConfigArgs)) -> TestApp {
        let clerk = ClerkStandIn::start().await;
        let db = TestDatabase::create().await;
        TestApp::spawn_on(clerk, db, customize).await
    }

    /// Starts an App on an existing database and Clerk stand-in.
    pub async fn spawn_on(
        clerk: ClerkStandIn,
        db: TestDatabase,
        customize: impl FnOnce(&mut ConfigArgs),
    ) -> TestApp {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let mut args = ConfigArgs {
            database_url: Some(db.app_url.clone()),
            migration_database_url: Some(db.owner_url.clone()),
            environment: Environment::Development,
            data_dir: data_dir.path().to_owned(),
            workers: Some(2),
            shutdown_timeout_secs: 1,
            db_max_connections: 8,
            db_acquire_timeout_secs: 2,
            db_connect_timeout_secs: 2,
            ..ConfigArgs::default()
        };
        clerk.configure(&mut args);
        customize(&mut args);
        let config = Config::from_args(&args).expect("test configuration is valid");
        let state = server::prepare(config).await.expect("the App starts");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
        let address = format!("http://{}", listener.local_addr().unwrap());
        let running = server::start(listener, state.clone()).expect("the server starts");
        tokio::spawn(running);
        TestApp {
            address,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            clerk,
            db,
            state,
            data_dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// A request with `token` as its bearer.
    pub fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
    ) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(token)
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        Reply::send(self.request(reqwest::Method::GET, path, token)).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        Reply::send(self.request(reqwest::Method::POST, path, token).json(&body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Reply {
        Reply::send(
            self.request(reqwest::Method::PATCH, path, token)
                .json(&body),
        )
        .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Reply {
        Reply::send(self.request(reqwest::Method::DELETE, path, token)).await
    }

    /// A session token for `spec`, signed by the stand-in's current key.
    pub fn token(&self, spec: TokenSpec) -> String {
        self.clerk.session_token(&spec)
    }

    pub fn data_path(&self) -> PathBuf {
        self.data_dir.path().to_path_buf()
    }
}

/// Serves `routes` with actix-web on an ephemeral loopback port, for stand-ins of the services
/// the App calls; returns the base URL.
pub fn serve_on_loopback<F>(workers: usize, routes: F) -> String
where
    F: Fn(&mut actix_web::web::ServiceConfig) + Clone + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    let server =
        actix_web::HttpServer::new(move || actix_web::App::new().configure(routes.clone()))
            .workers(workers)
            .disable_signals()
            .listen(listener)
            .unwrap()
            .run();
    tokio::spawn(server);
    base_url
}

/// A response read in full: status, headers and body (JSON when it parses).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub bytes: Vec<u8>,
    pub json: Value,
}

impl Reply {
    /// Sends `request` and reads the response in full.
    pub async fn send(request: reqwest::RequestBuilder) -> Reply {
        Reply::from(request.send().await.unwrap()).await
    }

    pub async fn from(response: reqwest::Response) -> Reply {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap().to_vec();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            bytes,
            json,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts an RFC 9457 problem with this status and code, and returns it.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, code: &str) -> &Value {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.json
        );
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "problem content type; body: {}",
            self.json
        );
        assert_eq!(self.json["code"], code, "problem code; body: {}", self.json);
        assert_eq!(self.json["status"], status);
        assert!(self.json["title"].is_string());
        assert!(self.json["detail"].is_string());
        assert_eq!(
            self.json["request_id"].as_str(),
            self.header("x-request-id"),
            "problem carries the request id"
        );
        &self.json
    }
}
