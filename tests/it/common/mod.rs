//! Test harness: real servers on 127.0.0.1 over a real SQLite file (or a real PostgreSQL database
//! when `LENS_TEST_POSTGRES_URL` is set and the test asks for it), driven over HTTP with reqwest.
#![allow(dead_code)]

pub mod pg;

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
    // Many servers run at once: each takes a free media port.
    config.media.udp_port = 0;
    // Tests act as clients from many addresses through X-Forwarded-For.
    config.http.trust_forwarded_for = true;
    config
}

pub async fn start() -> TestServer {
    start_on(Backend::Sqlite, |_| {}).await.unwrap()
}

/// Starts a server; `None` when the PostgreSQL variant is asked for but not available.
pub async fn start_on(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Option<TestServer> {
    // reqwest is built without a crypto provider of its own; the server uses ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
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
    app::start_background(&state)
        .await
        .expect("background tasks");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // TCP_NODELAY as `lens serve` sets it: a reply and the event after it wait for no delayed ACK.
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
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

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
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

    /// Global Settings as read, changed by `f` and written back ([`to_update`]); the PUT's answer.
    pub async fn change_global_settings(&self, token: &str, f: impl FnOnce(&mut Value)) -> Value {
        let mut g = self.get("/api/v1/global-settings", token).await.expect(200);
        f(&mut g);
        self.put("/api/v1/global-settings", token, to_update(g))
            .await
            .expect(200)
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

/// A WebSocket client speaking the JSON protocol.
pub struct Ws {
    stream: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next_id: u64,
    /// Frames read while waiting for something else.
    pub backlog: std::collections::VecDeque<Value>,
}

impl Ws {
    pub async fn connect(s: &TestServer, path: &str) -> Ws {
        Ws::connect_to(s.addr, path).await
    }

    pub async fn connect_to(addr: SocketAddr, path: &str) -> Ws {
        let url = format!("ws://{addr}{path}");
        // Without Nagle: a request waits for no delayed ACK (as the server's own sockets).
        let (stream, _) = tokio_tungstenite::connect_async_with_config(url, None, true)
            .await
            .expect("websocket connect");
        Ws {
            stream,
            next_id: 0,
            backlog: Default::default(),
        }
    }

    pub async fn send_raw(&mut self, text: &str) {
        use futures_util::SinkExt;
        self.stream
            .send(tokio_tungstenite::tungstenite::Message::Text(text.into()))
            .await
            .expect("websocket send");
    }

    /// Sends a request with a fresh `id` and returns the id.
    pub async fn send(&mut self, mut frame: Value) -> String {
        self.next_id += 1;
        let id = format!("r{}", self.next_id);
        if frame.get("id").is_none() {
            frame["id"] = json!(id.clone());
        }
        let id = frame["id"].as_str().unwrap_or_default().to_string();
        self.send_raw(&frame.to_string()).await;
        id
    }

    /// The next frame (5 s at most).
    pub async fn next(&mut self) -> Value {
        use futures_util::StreamExt;
        if let Some(v) = self.backlog.pop_front() {
            return v;
        }
        loop {
            let msg = tokio::time::timeout(std::time::Duration::from_secs(5), self.stream.next())
                .await
                .expect("no frame within 5 s")
                .expect("socket closed")
                .expect("socket error");
            if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
                return serde_json::from_str(&t).expect("JSON frame");
            }
        }
    }

    /// Reads until a frame matches, keeping the others for later.
    pub async fn until(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        for (i, v) in self.backlog.iter().enumerate() {
            if pred(v) {
                return self.backlog.remove(i).unwrap_or_default();
            }
        }
        let mut skipped = Vec::new();
        let found = loop {
            use futures_util::StreamExt;
            let msg = tokio::time::timeout(std::time::Duration::from_secs(5), self.stream.next())
                .await
                .unwrap_or_else(|_| {
                    panic!("waiting for {what}: nothing matched within 5 s; saw {skipped:?}")
                })
                .expect("socket closed")
                .expect("socket error");
            if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
                let v: Value = serde_json::from_str(&t).expect("JSON frame");
                if pred(&v) {
                    break v;
                }
                skipped.push(v);
            }
        };
        self.backlog.extend(skipped);
        found
    }

    /// As [`Ws::until`], for a frame that may take longer than 5 s (e.g. after a node died).
    pub async fn until_within(
        &mut self,
        what: &str,
        within: std::time::Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(i) = self.backlog.iter().position(&pred) {
                return self.backlog.remove(i).unwrap_or_default();
            }
            use futures_util::StreamExt;
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let msg = tokio::time::timeout(left, self.stream.next())
                .await
                .unwrap_or_else(|_| panic!("waiting for {what}: nothing matched within {within:?}"))
                .expect("socket closed")
                .expect("socket error");
            if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
                self.backlog
                    .push_back(serde_json::from_str(&t).expect("JSON frame"));
            }
        }
    }

    /// Sends a request and returns its reply (`ok` or `error`).
    pub async fn request(&mut self, frame: Value) -> Value {
        let id = self.send(frame).await;
        self.until(&format!("reply to {id}"), |v| {
            v["id"] == id.as_str() && (v["type"] == "ok" || v["type"] == "error")
        })
        .await
    }

    /// A protocol ping; returns the `pong`.
    pub async fn ping(&mut self) -> Value {
        let id = self.send(json!({"type": "ping"})).await;
        self.until("pong", |v| v["type"] == "pong" && v["id"] == id.as_str())
            .await
    }

    /// Waits for a frame of this type (and session, when given).
    pub async fn frame(&mut self, kind: &str, session: Option<i64>) -> Value {
        self.until(kind, |v| {
            v["type"] == kind
                && session.is_none_or(|s| v["session_id"] == s || v["session"]["id"] == s)
        })
        .await
    }

    /// Waits for a `session` frame showing this status.
    pub async fn session_status(&mut self, session: i64, status: &str) -> Value {
        self.until(&format!("session {session} {status}"), |v| {
            v["type"] == "session"
                && v["session"]["id"] == session
                && v["session"]["status"] == status
        })
        .await
    }

    /// Waits for a customer `status` frame.
    pub async fn status(&mut self, status: &str) -> Value {
        self.until(&format!("status {status}"), |v| {
            v["type"] == "status" && v["status"] == status
        })
        .await
    }

    /// Reads until the server closes the socket; returns its close code.
    pub async fn close_code(&mut self) -> Option<u16> {
        use futures_util::StreamExt;
        loop {
            match tokio::time::timeout(std::time::Duration::from_secs(5), self.stream.next()).await
            {
                Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Close(frame)))) => {
                    return frame.map(|f| u16::from(f.code));
                }
                Ok(Some(Ok(_))) => continue,
                _ => return None,
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }
}

/// A technician console, logged in.
pub async fn console(s: &TestServer, token: &str) -> (Ws, Value) {
    let mut ws = Ws::connect(s, "/ws/console").await;
    let ok = ws
        .request(json!({"type": "hello", "v": 1, "token": token}))
        .await;
    assert_eq!(ok["type"], "ok", "{ok}");
    (ws, ok)
}

/// A customer that joined with `code`; returns the socket and the `ok` reply.
pub async fn customer(s: &TestServer, code: &str) -> (Ws, Value) {
    let mut ws = Ws::connect(s, "/ws/customer").await;
    let ok = ws
        .request(json!({"type": "join", "v": 1, "code": code, "device": {"platform": "Android", "model": "Pixel 8", "app": "Lens web", "browser": "Chrome"}}))
        .await;
    (ws, ok)
}

/// A technician group, a technician in it with its token; `settings` edits the group's settings.
pub async fn technician_with(
    s: &TestServer,
    email: &str,
    settings: impl FnOnce(&mut Value),
) -> (i64, i64, String) {
    let m = s.master().await;
    let g = s.create_group(&m, &format!("group of {email}"), None).await;
    let mut doc = s
        .get(&format!("/api/v1/technician-groups/{g}/settings"), &m)
        .await
        .expect(200);
    settings(&mut doc);
    s.put(&format!("/api/v1/technician-groups/{g}/settings"), &m, doc)
        .await
        .expect(200);
    let id = s.create_user(&m, "technicians", email, Some(g)).await;
    let token = s.token(email, USER_PASSWORD).await;
    (g, id, token)
}

/// Global Settings as read → a body for PUT (the read-only "set" flag is not part of an update).
pub fn to_update(mut g: Value) -> Value {
    if let Some(sso) = g.get_mut("single_sign_on").and_then(Value::as_object_mut) {
        sso.remove("master_sso_password_set");
    }
    g
}

/// The real `lens` binary, serving on `addr` over the data in `dir`; killed when dropped.
pub struct Server {
    pub child: std::process::Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn spawn(dir: &std::path::Path, addr: SocketAddr, env: &[(&str, &str)]) -> Server {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_lens"))
        .arg("serve")
        .env("LENS_LISTEN", addr.to_string())
        .env("LENS_DATA_DIR", dir)
        .env("LENS_BOOTSTRAP_EMAIL", MASTER_EMAIL)
        .env("LENS_BOOTSTRAP_PASSWORD", MASTER_PASSWORD)
        .env("RUST_LOG", "warn")
        .env("LENS_MEDIA_UDP_PORT", "0")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start lens serve");
    let server = Server { child };
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if let Ok(r) = http.get(format!("http://{addr}/healthz")).send().await
            && r.status() == 200
        {
            return server;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("lens serve did not come up on {addr}");
}

/// One JSON call to a spawned server.
pub async fn call(
    addr: SocketAddr,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> Value {
    let mut req = reqwest::Client::new()
        .request(method, format!("http://{addr}{path}"))
        .json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("request");
    let text = resp.text().await.unwrap_or_default();
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

pub async fn login(addr: SocketAddr, email: &str, password: &str) -> String {
    let r = call(
        addr,
        reqwest::Method::POST,
        "/api/v1/auth/login",
        None,
        json!({"email": email, "password": password}),
    )
    .await;
    r["token"]
        .as_str()
        .unwrap_or_else(|| panic!("login failed: {r}"))
        .to_string()
}
