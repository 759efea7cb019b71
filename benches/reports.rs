//! Report timings over a seeded year: every Summary over the whole organization, and the first
//! page of every List All (the API builds the whole list, then pages it).
//!
//! `cargo bench --bench reports`. Environment: LENS_BENCH_DB (a store URL already seeded with
//! `lens dev seed`; without it a temporary SQLite store is seeded here), LENS_BENCH_SESSIONS
//! (100000, for the temporary store), LENS_BENCH_RUNS (3: the best of them is printed).

use std::time::Instant;

use lens::reports::seed::{SeedOptions, seed};
use lens::reports::{Area, ListType, Request, Scope, build};
use lens::store::{Store, now_ms};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
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
    let runs = env_or("LENS_BENCH_RUNS", 3usize);
    let now = now_ms();
    let mut names: [String; 6] = std::array::from_fn(|i| format!("Custom Field {i}"));
    names[0] = "Name".into();
    println!(
        "{:<34} {:<9} {:>9} {:>10}",
        "report", "list", "rows", "best ms"
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
                tz: chrono_tz::Tz::UTC,
                daily: None,
                now,
                scope: Scope {
                    all: true,
                    ..Scope::default()
                },
                field_names: names.clone(),
            };
            let mut best = f64::MAX;
            let mut rows = 0;
            for _ in 0..runs {
                let started = Instant::now();
                let table = build(&store, &req).await.expect("report");
                // The first page, as the API would send it.
                let page: Vec<_> = table.rows.iter().take(100).collect();
                std::hint::black_box(&page);
                best = best.min(started.elapsed().as_secs_f64() * 1000.0);
                rows = table.rows.len();
            }
            println!(
                "{:<34} {:<9} {:>9} {:>10.0}",
                area.as_str(),
                if list == ListType::All {
                    "all"
                } else {
                    "summary"
                },
                rows,
                best
            );
        }
    }
}
