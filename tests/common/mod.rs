//! Test harness: real servers on 127.0.0.1 over a real SQLite file (or a real PostgreSQL database
//! when `LENS_TEST_POSTGRES_URL` is set and the test asks for it), driven over HTTP with reqwest.
#![allow(dead_code)]

use std::net::SocketAddr;

use lens::app::{self, AppState};
use lens::config::Config;
use lens::store::Store;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub const MASTER_EMAIL: &str = "master@example.com";
pub const MASTER_PASSWORD: &str = "Master-Pass1";

pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server the test script started. Under `CI=true` its absence is a failure, so a
/// missing tool never passes as a skipped test.
pub fn postgres_url() -> Option<String> {
    match std::env::var("LENS_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("LENS_TEST_POSTGRES_URL is not set but CI=true: run ./scripts/test");
            }
            eprintln!(
                "LENS_TEST_POSTGRES_URL not set: skipping the PostgreSQL variant (run ./scripts/test)"
            );
            None
        }
    }
}

/// A fresh, empty PostgreSQL database on the test server.
pub async fn fresh_postgres_database(base_url: &str) -> String {
    use sqlx::Connection;
    let name = format!("lens_t_{}", hex_id());
    let mut conn = sqlx::PgConnection::connect(base_url)
        .await
        .expect("connect to test PostgreSQL");
    // The name is ours (hex digits), not input.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let mut url = url::Url::parse(base_url).expect("postgres url");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

fn hex_id() -> String {
    let n: u64 = rand::random();
    format!("{n:016x}")
}

pub struct TestServer {
    pub base: String,
    pub addr: SocketAddr,
    pub state: AppState,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn test_config(dir: &std::path::Path) -> Config {
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_path_buf(),
        ..Config::default()
    };
    config.bootstrap.email = MASTER_EMAIL.into();
    config.bootstrap.password = MASTER_PASSWORD.into();
    // Tests act as clients from many addresses through X-Forwarded-For.
    config.http.trust_forwarded_for = true;
    config
}

pub async fn start() -> TestServer {
    start_on(Backend::Sqlite, |_| {}).await.unwrap()
}

/// Starts a server; `None` when the PostgreSQL variant is asked for but not available.
pub async fn start_on(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Option<TestServer> {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    if let Backend::Postgres = backend {
        let base = postgres_url()?;
        config.database_url = fresh_postgres_database(&base).await;
    }
    tweak(&mut config);
    let store = Store::open(&config.database_url())
        .await
        .expect("open store");
    let state = AppState::new(config, store).await.expect("state");
    app::bootstrap(&state).await.expect("bootstrap");
    // Users created by tests log in with the password they were given; the forced change that the
    // default policy asks for has tests of its own, which turn it back on.
    let mut global = lens::api::settings::load_global(&state.store)
        .await
        .unwrap();
    global.password_policy.admin_change_forces_password_change = false;
    let mut tx = state.store.begin().await.unwrap();
    lens::store::settings::put_global_settings(&mut tx, &global.to_storage_json().to_string())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    state.reload_global().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = app::router(state.clone());
    let task = tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    Some(TestServer {
        base: format!("http://{addr}"),
        addr,
        state,
        http: reqwest::Client::new(),
        dir,
        task,
    })
}

/// A reply: status and JSON body (Null when empty or not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Reply {
    pub fn error_code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected reply: {:?}",
            self.body
        );
        self.body
    }
}

impl TestServer {
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        self.call_from(method, path, token, body, None).await
    }

    /// As `call`, appearing to come from `from` (X-Forwarded-For).
    pub async fn call_from(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        from: Option<&str>,
    ) -> Reply {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        if let Some(ip) = from {
            req = req.header("x-forwarded-for", ip);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            body,
            headers,
        }
    }

    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: &str,
        content_type: &str,
    ) -> Reply {
        let mut req = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .header("content-type", content_type)
            .body(body.to_string());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        Reply {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            headers,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.call(Method::GET, path, Some(token), None).await
    }
    pub async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }
    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::PATCH, path, Some(token), Some(body))
            .await
    }
    pub async fn put(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::PUT, path, Some(token), Some(body)).await
    }
    pub async fn delete(&self, path: &str, token: &str) -> Reply {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    pub async fn login(&self, email: &str, password: &str) -> Reply {
        self.call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": email, "password": password})),
        )
        .await
    }

    /// Logs in and returns the token, failing the test otherwise.
    pub async fn token(&self, email: &str, password: &str) -> String {
        let body = self.login(email, password).await.expect(200);
        body["token"].as_str().unwrap().to_string()
    }

    pub async fn master(&self) -> String {
        self.token(MASTER_EMAIL, MASTER_PASSWORD).await
    }

    pub async fn create_group(&self, token: &str, name: &str, parent: Option<i64>) -> i64 {
        let body = self
            .post(
                "/api/v1/technician-groups",
                token,
                json!({"name": name, "parent_id": parent}),
            )
            .await
            .expect(201);
        body["id"].as_i64().unwrap()
    }

    /// Creates a user of the kind (`technicians`, `administrators`, `master-administrators`) and
    /// returns its id; its password is `Password-1` + a per-email suffix-free constant.
    pub async fn create_user(
        &self,
        token: &str,
        kind: &str,
        email: &str,
        group: Option<i64>,
    ) -> i64 {
        let body = self
            .post(
                &format!("/api/v1/{kind}"),
                token,
                json!({"name": email.split('@').next().unwrap(), "email": email, "password": USER_PASSWORD, "group_id": group}),
            )
            .await
            .expect(201);
        body["id"].as_i64().unwrap()
    }
}

pub const USER_PASSWORD: &str = "User-Pass9";
