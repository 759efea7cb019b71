//! Lens session set-ups per second, without media, over real WebSockets against an in-process
//! server (as tests/common/mod.rs starts it): console `create_session` (PIN) → customer `join` →
//! `ready` → console `pickup` (Active) → console `end` (`ended` on both sides).
//!
//! `cargo bench --bench session_setup`. Environment: LENS_BENCH_TECHNICIANS (64),
//! LENS_BENCH_SESSIONS (4000), LENS_BENCH_DB (sqlite | postgres, the latter on
//! LENS_TEST_POSTGRES_URL), LENS_BENCH_SERVER_THREADS (2), LENS_BENCH_CLIENT_THREADS (2).
//! Client and server share the process (and the machine's cores): server and client run on two
//! runtimes with named threads, so the CPU time can be split between them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use lens::app::{self, AppState};
use lens::config::Config;
use lens::store::Store;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// TCP_NODELAY on the client's sockets (browsers set it).
static CLIENT_NODELAY: AtomicBool = AtomicBool::new(true);
const PASSWORD: &str = "User-Pass9";
const WAIT: Duration = Duration::from_secs(10);
const STEPS: [&str; 5] = [
    "create",
    "join",
    "ready→Waiting",
    "pickup→Active",
    "end→ended",
];

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Server {
    addr: SocketAddr,
    base: String,
    state: AppState,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// Starts a server as tests/common/mod.rs `start_on` does.
async fn start(postgres: bool, nodelay: bool) -> Server {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    config.bootstrap.email = "master@example.com".into();
    config.bootstrap.password = "Master-Pass1".into();
    if postgres {
        use sqlx::Connection;
        let base = std::env::var("LENS_TEST_POSTGRES_URL").expect("LENS_TEST_POSTGRES_URL");
        let name = format!("lens_b_{:016x}", rand::random::<u64>());
        let mut conn = sqlx::PgConnection::connect(&base).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap();
        let mut url = url::Url::parse(&base).unwrap();
        url.set_path(&format!("/{name}"));
        config.database_url = url.to_string();
    }
    let store = Store::open(&config.database_url()).await.unwrap();
    let state = AppState::new(config, store).await.unwrap();
    app::bootstrap(&state).await.unwrap();
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
    app::start_background(&state).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = app::router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    if nodelay {
        // Not what src/app.rs does (it leaves Nagle on): only with LENS_BENCH_NODELAY=server|both.
        use axum::serve::ListenerExt;
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        tokio::spawn(async move { axum::serve(listener, service).await });
    } else {
        tokio::spawn(async move { axum::serve(listener, service).await });
    }
    Server {
        addr,
        base: format!("http://{addr}"),
        state,
        http: reqwest::Client::new(),
        _dir: dir,
    }
}

async fn post(http: &reqwest::Client, url: String, token: Option<&str>, body: Value) -> Value {
    let mut req = http.post(url).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{status}: {body}");
    body
}

async fn login(http: &reqwest::Client, base: &str, email: &str, password: &str) -> String {
    let url = format!("{base}/api/v1/auth/login");
    let b = post(
        http,
        url,
        None,
        json!({"email": email, "password": password}),
    )
    .await;
    b["token"].as_str().unwrap().to_string()
}

/// One group, `k` technicians in it; their bearer tokens.
async fn technicians(s: &Server, k: usize) -> Vec<String> {
    let master = login(&s.http, &s.base, "master@example.com", "Master-Pass1").await;
    let url = format!("{}/api/v1/technician-groups", s.base);
    let body = json!({"name": "bench", "parent_id": null});
    let group = post(&s.http, url, Some(&master), body).await["id"].clone();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..k {
        let (http, base, master, group) = (
            s.http.clone(),
            s.base.clone(),
            master.clone(),
            group.clone(),
        );
        tasks.spawn(async move {
            let email = format!("tech{i}@example.com");
            let body = json!({"name": format!("tech{i}"), "email": email, "password": PASSWORD, "group_id": group});
            post(&http, format!("{base}/api/v1/technicians"), Some(&master), body).await;
            login(&http, &base, &email, PASSWORD).await
        });
    }
    tasks.join_all().await
}

/// A WebSocket client of the JSON protocol; `Err` carries what went wrong.
struct Ws {
    stream: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next_id: u64,
}

impl Ws {
    async fn connect(addr: SocketAddr, path: &str) -> Result<Ws, String> {
        let url = format!("ws://{addr}{path}");
        let nodelay = CLIENT_NODELAY.load(Ordering::Relaxed);
        let (stream, _) = tokio_tungstenite::connect_async_with_config(url, None, nodelay)
            .await
            .map_err(|e| format!("connect {path}: {e}"))?;
        Ok(Ws { stream, next_id: 0 })
    }

    async fn send(&mut self, mut frame: Value) -> Result<String, String> {
        self.next_id += 1;
        let id = format!("r{}", self.next_id);
        frame["id"] = json!(id);
        let text = frame.to_string();
        self.stream
            .send(Message::Text(text.into()))
            .await
            .map_err(|e| format!("send: {e}"))?;
        Ok(id)
    }

    /// Reads until a frame matches, dropping the others (the server keeps one socket's frames in
    /// order, so what is awaited later is never dropped); an `error` or unexpected `ended` fails.
    async fn until(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Result<Value, String> {
        loop {
            let msg = tokio::time::timeout(WAIT, self.stream.next())
                .await
                .map_err(|_| format!("{what}: nothing within {WAIT:?}"))?
                .ok_or_else(|| format!("{what}: socket closed"))?
                .map_err(|e| format!("{what}: {e}"))?;
            let Message::Text(t) = msg else { continue };
            let v: Value = serde_json::from_str(&t).map_err(|e| format!("{what}: {e}"))?;
            if pred(&v) {
                return Ok(v);
            }
            if v["type"] == "error" || v["type"] == "ended" {
                return Err(format!("{what}: got {v}"));
            }
        }
    }

    /// Sends a request and waits for its `ok`.
    async fn request(&mut self, frame: Value) -> Result<Value, String> {
        let id = self.send(frame).await?;
        self.until(&format!("reply to {id}"), |v| {
            v["type"] == "ok" && v["id"] == id.as_str()
        })
        .await
    }
}

/// One set-up; the time of each step. `current` learns the session id once it exists.
async fn setup(
    addr: SocketAddr,
    con: &mut Ws,
    current: &mut Option<i64>,
) -> Result<[Duration; 5], String> {
    let mut steps = [Duration::ZERO; 5];
    let mut t = Instant::now();
    let mut lap = |i: usize| {
        steps[i] = t.elapsed();
        t = Instant::now();
    };
    let ok = con
        .request(json!({"type": "create_session", "method": "pin", "name": "Bench"}))
        .await?;
    let id = ok["session_id"].as_i64().ok_or("no session_id")?;
    *current = Some(id);
    let pin = ok["pin"].as_str().ok_or("no pin")?.to_string();
    lap(0);
    let mut cus = Ws::connect(addr, "/ws/customer").await?;
    let device = json!({"platform": "Android", "model": "Pixel 8", "app": "Lens web"});
    let ok = cus
        .request(json!({"type": "join", "v": 1, "code": pin, "device": device}))
        .await?;
    if ok["session_id"] != id || ok["status"] != "Connecting" {
        return Err(format!("join: {ok}"));
    }
    lap(1);
    let session_is = |status: &'static str| {
        move |v: &Value| {
            v["type"] == "session" && v["session"]["id"] == id && v["session"]["status"] == status
        }
    };
    let status_is =
        |status: &'static str| move |v: &Value| v["type"] == "status" && v["status"] == status;
    cus.request(json!({"type": "ready"})).await?;
    cus.until("customer Waiting", status_is("Waiting")).await?;
    con.until("console Waiting", session_is("Waiting")).await?;
    lap(2);
    con.request(json!({"type": "pickup", "session_id": id}))
        .await?;
    con.until("console Active", session_is("Active")).await?;
    cus.until("customer Active", status_is("Active")).await?;
    lap(3);
    con.request(json!({"type": "end", "session_id": id}))
        .await?;
    let ended = |v: &Value| v["type"] == "ended" && v["status"] == "Closed by technician";
    con.until("console ended", |v| ended(v) && v["session_id"] == id)
        .await?;
    cus.until("customer ended", ended).await?;
    *current = None;
    lap(4);
    drop(cus); // the server closes it (1000) after `ended`
    Ok(steps)
}

#[derive(Default)]
struct Outcome {
    latencies: Vec<Duration>,
    steps: [Duration; 5],
    failures: Vec<String>,
}

/// A technician's console running set-ups one after another until `total` are taken.
async fn technician(
    addr: SocketAddr,
    token: String,
    next: Arc<AtomicUsize>,
    total: usize,
) -> Outcome {
    let mut out = Outcome::default();
    let mut con = match Ws::connect(addr, "/ws/console").await {
        Ok(c) => c,
        Err(e) => {
            out.failures.push(e);
            return out;
        }
    };
    if let Err(e) = con
        .request(json!({"type": "hello", "v": 1, "token": token}))
        .await
    {
        out.failures.push(e);
        return out;
    }
    while next.fetch_add(1, Ordering::Relaxed) < total {
        let started = Instant::now();
        let mut current = None;
        match setup(addr, &mut con, &mut current).await {
            Ok(steps) => {
                out.latencies.push(started.elapsed());
                for (sum, d) in out.steps.iter_mut().zip(steps) {
                    *sum += d;
                }
            }
            Err(e) => {
                out.failures.push(e);
                // Best effort, so that this technician is free for the next one.
                if let Some(id) = current {
                    let _ = con.send(json!({"type": "end", "session_id": id})).await;
                }
            }
        }
    }
    out
}

/// CPU seconds (user + system) of the process and of its live threads by name.
fn cpu() -> (f64, HashMap<u64, (String, f64)>) {
    fn parse(stat: &str) -> Option<(String, f64)> {
        let (open, close) = (stat.find('(')?, stat.rfind(')')?);
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        // Fields 14 and 15 (utime, stime), in clock ticks (USER_HZ, 100 on Linux).
        let ticks: f64 = fields[11].parse::<f64>().ok()? + fields[12].parse::<f64>().ok()?;
        Some((stat[open + 1..close].to_string(), ticks / 100.0))
    }
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let total = read("/proc/self/stat")
        .and_then(|s| parse(&s))
        .map_or(0.0, |p| p.1);
    let mut threads = HashMap::new();
    for e in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let tid = e.file_name().to_string_lossy().parse().unwrap_or(0);
        let stat = read(&format!("/proc/self/task/{tid}/stat"));
        if let Some(p) = stat.and_then(|s| parse(&s)) {
            threads.insert(tid, p);
        }
    }
    (total, threads)
}

fn runtime(name: &str, threads: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(name)
        .enable_all()
        .build()
        .unwrap()
}

fn main() {
    let k: usize = env_or("LENS_BENCH_TECHNICIANS", 64);
    let n: usize = env_or("LENS_BENCH_SESSIONS", 4000);
    let db: String = env_or("LENS_BENCH_DB", "sqlite".to_string());
    let server_threads = env_or("LENS_BENCH_SERVER_THREADS", 2);
    let client_threads = env_or("LENS_BENCH_CLIENT_THREADS", 2);
    // TCP_NODELAY: `client` (default: like browsers; the server as src/app.rs serves), `server`,
    // `both` or `none`.
    let nodelay: String = env_or("LENS_BENCH_NODELAY", "client".to_string());
    CLIENT_NODELAY.store(
        matches!(nodelay.as_str(), "client" | "both"),
        Ordering::Relaxed,
    );
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .try_init();
    let server_rt = runtime("server", server_threads);
    let client_rt = runtime("client", client_threads);
    let s = server_rt.block_on(start(
        db == "postgres",
        matches!(nodelay.as_str(), "server" | "both"),
    ));
    let tokens = client_rt.block_on(technicians(&s, k));
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "session_setup: db={db} technicians={k} sessions={n} server/client worker threads={server_threads}/{client_threads} cores={cores} TCP_NODELAY={nodelay}"
    );

    let (cpu0, threads0) = cpu();
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let outcomes = client_rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for token in tokens {
            tasks.spawn(technician(s.addr, token, next.clone(), n));
        }
        tasks.join_all().await
    });
    let wall = started.elapsed();
    let (cpu1, threads1) = cpu();
    // The hub's writer appends events after the replies went out: wait until the store has all.
    let (flushed, stored, events, live) = server_rt.block_on(async {
        s.state.hub.flush().await;
        let flushed = started.elapsed();
        let pool = s.state.store.pool();
        let count = |sql: &'static str| async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(pool)
                .await
                .unwrap()
        };
        let stored = count(
            "SELECT COUNT(*) FROM sessions WHERE status = 'Closed by technician' AND ever_active = 1",
        )
        .await;
        let events = count("SELECT COUNT(*) FROM session_events").await;
        (flushed, stored, events, s.state.hub.live_count())
    });
    let (cpu2, _) = cpu();

    let mut lat: Vec<Duration> = Vec::new();
    let mut steps = [Duration::ZERO; 5];
    let mut failures: Vec<String> = Vec::new();
    for o in outcomes {
        lat.extend(o.latencies);
        failures.extend(o.failures);
        for (sum, d) in steps.iter_mut().zip(o.steps) {
            *sum += d;
        }
    }
    lat.sort();
    let ok = lat.len();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let pct = |p: f64| {
        lat.get(((ok as f64 * p) as usize).min(ok.saturating_sub(1)))
            .copied()
    };
    let pct = |p| pct(p).map_or(f64::NAN, ms);
    let cpu_run = cpu1 - cpu0;
    println!(
        "set-ups: {ok} ok, {} failed; wall {:.2} s; {:.0} set-ups/s",
        failures.len(),
        wall.as_secs_f64(),
        ok as f64 / wall.as_secs_f64()
    );
    println!(
        "latency of one set-up: p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        pct(0.50),
        pct(0.95),
        pct(0.99),
        lat.last().copied().map_or(f64::NAN, ms)
    );
    let mean = |d: Duration| if ok == 0 { f64::NAN } else { ms(d) / ok as f64 };
    let steps: Vec<String> = STEPS
        .iter()
        .zip(steps)
        .map(|(name, d)| format!("{name} {:.1}", mean(d)))
        .collect();
    println!("mean per step (ms): {}", steps.join(", "));
    let mut by_name: HashMap<&str, f64> = HashMap::new();
    for (tid, (name, secs)) in &threads1 {
        let before = threads0.get(tid).map_or(0.0, |t| t.1);
        let kind = ["server", "client", "sqlx-sqlite"]
            .into_iter()
            .find(|p| name.starts_with(p))
            .unwrap_or("other");
        *by_name.entry(kind).or_default() += secs - before;
    }
    let mut split: Vec<String> = by_name.iter().map(|(k, v)| format!("{k} {v:.2}")).collect();
    split.sort();
    println!(
        "process CPU (user+sys): {cpu_run:.2} s = {:.2} cores busy of {cores}; {:.0} set-ups per CPU-second (client and server together); live threads: {}",
        cpu_run / wall.as_secs_f64(),
        ok as f64 / cpu_run,
        split.join(", ")
    );
    println!(
        "store: writer caught up {:.2} s after the start ({:.0} set-ups/s durable, {:.2} CPU-s more); {stored} sessions Closed by technician after Active, {events} events (expected {}); {live} live sessions left",
        flushed.as_secs_f64(),
        ok as f64 / flushed.as_secs_f64(),
        cpu2 - cpu1,
        4 * ok
    );
    for f in failures.iter().take(10) {
        println!("failure: {f}");
    }
    let consistent = stored as usize == ok && events as usize == 4 * ok && live == 0;
    if !failures.is_empty() || !consistent {
        println!("session_setup: NOT CORRECT (failures or store mismatch)");
        std::process::exit(1);
    }
}
