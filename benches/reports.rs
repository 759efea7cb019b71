//! Report timings over a seeded year: every Summary over the whole organization, and the first
//! page (100 rows) of every List All, as the API asks for them.
//!
//! `cargo bench --bench reports`. Environment: LENS_BENCH_DB (a store URL already seeded with
//! `lens dev seed`; without it a temporary SQLite store is seeded here), LENS_BENCH_SESSIONS
//! (100000, for the temporary store), LENS_BENCH_RUNS (3: the best of them is printed),
//! LENS_BENCH_TZ and LENS_BENCH_DAILY (e.g. `America/New_York` and `09:00-17:00`: the zone and
//! daily time range of every report; UTC and none by default), RUST_LOG (e.g.
//! `sqlx::query=debug`: every statement and its time, on stderr). Prints wall and CPU time (this
//! process, all threads, from /proc: 10 ms ticks) and the load average. On PostgreSQL (a
//! `postgres://` LENS_BENCH_DB on this machine) the CPU time of the database server's processes
//! (the postmaster's children, found through `data_directory`) is printed beside ours.

use std::time::Instant;

use lens::reports::seed::{SeedOptions, seed};
use lens::reports::{Area, Daily, ListType, Page, Request, Scope, build};
use lens::store::{Store, now_ms};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU seconds of this process so far (user + system, every thread).
fn cpu_seconds() -> f64 {
    cpu_seconds_of("self")
}

fn cpu_seconds_of(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime and stime are 14th and 15th.
    let rest = stat.rsplit_once(')').map_or("", |r| r.1);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU seconds of the PostgreSQL server whose postmaster is `postmaster`: it and its children
/// (the backends serving our connections, which live as long as the pool).
fn server_cpu_seconds(postmaster: Option<u32>) -> f64 {
    let Some(pm) = postmaster else {
        return 0.0;
    };
    let mut total = cpu_seconds_of(&pm.to_string());
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let stat = std::fs::read_to_string(format!("/proc/{name}/stat")).unwrap_or_default();
        let rest = stat.rsplit_once(')').map_or("", |r| r.1);
        // The 4th field (2nd after the name) is the parent's pid.
        if rest.split_whitespace().nth(1) == Some(&pm.to_string()) {
            total += cpu_seconds_of(&name);
        }
    }
    total
}

/// The postmaster's pid of a PostgreSQL store on this machine (None for SQLite, or a server
/// whose files this process cannot read).
async fn postmaster_pid(store: &Store) -> Option<u32> {
    if store.backend() != lens::store::Backend::Postgres {
        return None;
    }
    let (dir,): (String,) = sqlx::query_as("SELECT current_setting('data_directory')")
        .fetch_one(store.pool())
        .await
        .ok()?;
    let pid = std::fs::read_to_string(format!("{dir}/postmaster.pid")).ok()?;
    pid.lines().next()?.trim().parse().ok()
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() {
    // RUST_LOG=sqlx::query=debug prints each statement with its time (where a report spends).
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(run());
}

async fn run() {
    let _dir = tempfile::tempdir().expect("temp dir");
    let url = match std::env::var("LENS_BENCH_DB") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            let url = format!("sqlite://{}/bench.db?mode=rwc", _dir.path().display());
            let store = Store::open(&url).await.expect("open store");
            let sessions = env_or("LENS_BENCH_SESSIONS", 100_000u64);
            let started = Instant::now();
            let summary = seed(
                &store,
                &SeedOptions {
                    sessions,
                    technicians: 200,
                    groups: 10,
                    days: 365,
                    now: now_ms(),
                    password_hash: "not-a-login".into(),
                },
                &mut |_| {},
            )
            .await
            .expect("seed");
            println!(
                "seeded {} sessions, {} events, {} chat lines in {:.1} s",
                summary.sessions,
                summary.events,
                summary.chat,
                started.elapsed().as_secs_f64()
            );
            url
        }
    };
    let store = Store::open(&url).await.expect("open store");
    let postmaster = postmaster_pid(&store).await;
    let runs = env_or("LENS_BENCH_RUNS", 3usize);
    let now = now_ms();
    let mut names: [String; 6] = std::array::from_fn(|i| format!("Custom Field {i}"));
    names[0] = "Name".into();
    let tz: chrono_tz::Tz = std::env::var("LENS_BENCH_TZ")
        .ok()
        .and_then(|z| z.parse().ok())
        .unwrap_or(chrono_tz::Tz::UTC);
    let daily = std::env::var("LENS_BENCH_DAILY").ok().and_then(|d| {
        let (a, b) = d.split_once('-')?;
        Daily::parse(Some(a), Some(b)).ok().flatten()
    });
    println!(
        "zone {}, daily range {:?}, load average {}",
        tz.name(),
        daily,
        load_average()
    );
    if let Some(pm) = postmaster {
        println!("PostgreSQL server: postmaster pid {pm}; db cpu ms = its processes' CPU time");
    }
    println!(
        "{:<31} {:<8} {:>9} {:>9} {:>8} {:>9} {:>7}",
        "report", "list", "rows", "wall ms", "cpu ms", "db cpu ms", "load"
    );
    for area in Area::ALL {
        for list in [ListType::Summary, ListType::All] {
            if list == ListType::Summary && !area.has_summary() {
                continue;
            }
            let req = Request {
                area,
                list,
                from: now - 366 * 86_400_000,
                to: now + 1,
                tz,
                daily,
                now,
                scope: Scope {
                    all: true,
                    ..Scope::default()
                },
                field_names: names.clone(),
                page: Some(Page {
                    offset: 0,
                    limit: 100,
                    after: None,
                }),
                survey_questions: None,
            };
            let (mut best, mut best_cpu, mut best_db) = (f64::MAX, f64::MAX, f64::MAX);
            let mut rows = 0;
            for _ in 0..runs {
                let (started, cpu, db) = (
                    Instant::now(),
                    cpu_seconds(),
                    server_cpu_seconds(postmaster),
                );
                let table = build(&store, &req).await.expect("report");
                std::hint::black_box(&table);
                best = best.min(started.elapsed().as_secs_f64() * 1000.0);
                best_cpu = best_cpu.min((cpu_seconds() - cpu) * 1000.0);
                best_db = best_db.min((server_cpu_seconds(postmaster) - db) * 1000.0);
                rows = table.total_rows;
            }
            println!(
                "{:<31} {:<8} {:>9} {:>9.0} {:>8.0} {:>9.0} {:>7}",
                area.as_str(),
                if list == ListType::All {
                    "all"
                } else {
                    "summary"
                },
                rows,
                best,
                best_cpu,
                best_db,
                load_average().split(' ').next().unwrap_or("")
            );
        }
    }
}
