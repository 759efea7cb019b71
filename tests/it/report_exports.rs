//! Report files at scale, against the real `lens` binary over a seeded store: every file format
//! streams a 200,000-row report with the server's memory nearly flat (read from /proc), a client
//! that goes away stops the export, and exports beyond `reports.max_concurrent_exports` answer 429.
//! Also: `lens admin` and `lens dev` commands run while another process holds the media port.

use crate::common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;

const SESSIONS: u64 = 200_000;
/// How much the server's resident memory may grow while it writes a file.
const GROWTH_LIMIT_KB: u64 = 50 * 1024;
/// `reports.export_stall_seconds` of the server: long enough that the clients below that read
/// (or hold a file open for a moment) are not cut off on a busy machine.
const STALL_SECONDS: u64 = 10;

/// A kB figure of /proc/PID/status (`VmRSS`, `VmHWM`).
fn status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
}

/// Counts a pattern in a body read in pieces (a match may straddle two pieces).
struct Count {
    pattern: &'static [u8],
    tail: Vec<u8>,
    n: u64,
}

impl Count {
    fn new(pattern: &'static [u8]) -> Count {
        Count {
            pattern,
            tail: Vec::new(),
            n: 0,
        }
    }

    fn feed(&mut self, piece: &[u8]) {
        let mut window = std::mem::take(&mut self.tail);
        window.extend_from_slice(piece);
        self.n += window
            .windows(self.pattern.len())
            .filter(|w| *w == self.pattern)
            .count() as u64;
        let keep = (self.pattern.len() - 1).min(window.len());
        self.tail = window[window.len() - keep..].to_vec();
    }
}

fn port_free() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One sample of the spawned server's Prometheus text (0 when the series is not there yet).
async fn metric(addr: SocketAddr, name: &str) -> f64 {
    let response = reqwest::Client::new()
        .get(format!("http://{addr}/metrics"))
        .send()
        .await;
    let text = match response {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(e) => panic!("/metrics: {e}"),
    };
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Waits (polling /metrics) until `name` reads `want`.
async fn metric_becomes(addr: SocketAddr, name: &str, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = metric(addr, name).await;
        if v == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} stayed {v}, wanted {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The whole seeded year (and a day on each side), UTC.
fn year() -> String {
    let today = chrono::Utc::now().date_naive();
    let from = today - chrono::Duration::days(367);
    let to = today + chrono::Duration::days(1);
    format!("list=all&from={from}&to={to}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_of_a_seeded_store() {
    // reqwest is built without a crypto provider of its own.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let config = lens::config::Config {
        data_dir: dir.path().to_path_buf(),
        ..lens::config::Config::default()
    };
    let started = Instant::now();
    {
        let store = lens::store::Store::open(&config.database_url())
            .await
            .unwrap();
        lens::app::bootstrap_store(
            &store,
            &lens::config::BootstrapConfig {
                email: MASTER_EMAIL.into(),
                password: MASTER_PASSWORD.into(),
            },
        )
        .await
        .unwrap();
        let summary = lens::reports::seed::seed(
            &store,
            &lens::reports::seed::SeedOptions {
                sessions: SESSIONS,
                technicians: 200,
                groups: 10,
                days: 365,
                now: lens::store::now_ms(),
                password_hash: "not-a-login".into(),
            },
            &mut |_| {},
        )
        .await
        .unwrap();
        assert_eq!(summary.sessions, SESSIONS);
        store.pool().close().await;
    }
    eprintln!("seeded {SESSIONS} sessions in {:?}", started.elapsed());

    let addr: SocketAddr = format!("127.0.0.1:{}", port_free()).parse().unwrap();
    let server = spawn(
        dir.path(),
        addr,
        &[
            ("LENS_REPORTS_MAX_CONCURRENT_EXPORTS", "2"),
            (
                "LENS_REPORTS_EXPORT_STALL_SECONDS",
                &STALL_SECONDS.to_string(),
            ),
        ],
    )
    .await;
    let pid = server.child.id();
    let token = login(addr, MASTER_EMAIL, MASTER_PASSWORD).await;
    let http = reqwest::Client::new();
    let get = |url: String| {
        let sent = http.get(url).bearer_auth(&token).send();
        async move { sent.await.unwrap() }
    };
    let url = |format: &str| {
        format!(
            "http://{addr}/api/v1/reports/session?{}&format={format}",
            year()
        )
    };
    let total = get(url("json") + "&per_page=1")
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap()["total_rows"]
        .as_u64()
        .unwrap();
    assert_eq!(
        total, SESSIONS,
        "every seeded session is in the year's Session report"
    );

    // Each format: every row arrives; the server's peak resident memory (VmHWM, reset first
    // through clear_refs) stays within GROWTH_LIMIT_KB of its resident memory before.
    for (format, row_mark, extra_marks) in [
        ("tsv", &b"\r\n"[..], 1),
        ("html", &b"<tr>"[..], 1),
        ("xml", &b"<Row>"[..], 1),
        ("xlsx", &b""[..], 0),
    ] {
        let t = Instant::now();
        let before = status_kb(pid, "VmRSS");
        let peak_reset = std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok();
        let mut resp = get(url(format)).await;
        assert_eq!(resp.status(), 200, "{format}");
        let mut sampled = before;
        let mut rows = Count::new(if row_mark.is_empty() {
            b"<row "
        } else {
            row_mark
        });
        let mut file = Vec::new();
        while let Some(piece) = resp.chunk().await.unwrap() {
            sampled = sampled.max(status_kb(pid, "VmRSS"));
            if format == "xlsx" {
                // Compressed: kept and read back below (a few MB).
                file.extend_from_slice(&piece);
            } else {
                rows.feed(&piece);
            }
        }
        let peak = if peak_reset {
            status_kb(pid, "VmHWM").max(sampled)
        } else {
            sampled
        };
        if format == "xlsx" {
            let mut zip = zip::ZipArchive::new(std::io::Cursor::new(file)).unwrap();
            let mut sheet = zip.by_name("xl/worksheets/sheet1.xml").unwrap();
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let n = std::io::Read::read(&mut sheet, &mut buf).unwrap();
                if n == 0 {
                    break;
                }
                rows.feed(&buf[..n]);
            }
        }
        let data_rows = rows.n - if format == "xlsx" { 1 } else { extra_marks };
        eprintln!(
            "{format}: {data_rows} rows in {:?}; RSS {before} kB before, peak {peak} kB (peak reset: {peak_reset})",
            t.elapsed()
        );
        assert_eq!(data_rows, SESSIONS, "{format}: the header and every row");
        assert!(
            peak.saturating_sub(before) < GROWTH_LIMIT_KB,
            "{format}: the server grew from {before} kB to {peak} kB"
        );
    }
    metric_becomes(addr, "lens_report_exports_running", 0.0).await;

    // A client that goes away mid-file: the export stops (its slot is freed, it is counted as
    // cancelled, and no more rows are read), long before the file would have ended.
    let rows_before = metric(addr, "lens_report_export_rows_total").await;
    let mut resp = get(url("xml")).await;
    assert_eq!(resp.status(), 200);
    let mut got = 0;
    while got < 256 * 1024 {
        got += resp.chunk().await.unwrap().unwrap().len();
    }
    assert_eq!(metric(addr, "lens_report_exports_running").await, 1.0);
    drop(resp);
    metric_becomes(
        addr,
        "lens_report_exports_total{format=\"xml\",outcome=\"cancelled\"}",
        1.0,
    )
    .await;
    metric_becomes(addr, "lens_report_exports_running", 0.0).await;
    let stopped_at = metric(addr, "lens_report_export_rows_total").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        metric(addr, "lens_report_export_rows_total").await,
        stopped_at,
        "rows are still being read"
    );
    assert!(
        stopped_at - rows_before < SESSIONS as f64,
        "the cancelled export read {} rows",
        stopped_at - rows_before
    );

    // Two files at once (the limit set above); the third is refused with Retry-After, the
    // error body, and without reading the report.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut resp = get(url("xml")).await;
        assert_eq!(resp.status(), 200);
        resp.chunk().await.unwrap().unwrap();
        held.push(resp);
    }
    let rows_held = metric(addr, "lens_report_export_rows_total").await;
    let refused = get(url("tsv")).await;
    assert_eq!(refused.status(), 429);
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    let err: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(err["error"]["code"], "too_many_exports", "{err}");
    assert_eq!(
        metric(
            addr,
            "lens_report_exports_total{format=\"tsv\",outcome=\"refused\"}"
        )
        .await,
        1.0
    );
    // JSON pages are not files: still answered.
    let page = get(url("json") + "&per_page=5").await;
    assert_eq!(page.status(), 200);
    drop(held);
    metric_becomes(addr, "lens_report_exports_running", 0.0).await;
    assert!(metric(addr, "lens_report_export_rows_total").await - rows_held < SESSIONS as f64);
    let again = get(format!(
        "http://{addr}/api/v1/reports/session?list=summary&format=tsv"
    ))
    .await;
    assert_eq!(again.status(), 200, "a slot is free again");
    assert_eq!(again.text().await.unwrap().matches("\r\n").count(), 2);

    // A client that stops reading (it holds the download open, its TCP window full): after
    // `reports.export_stall_seconds` the export ends and frees its slot; reading again, the
    // client gets what was already sent, then an error, not a file that looks whole.
    let mut resp = get(url("xml")).await;
    assert_eq!(resp.status(), 200);
    resp.chunk().await.unwrap().unwrap();
    let held_since = Instant::now();
    metric_becomes(
        addr,
        "lens_report_exports_total{format=\"xml\",outcome=\"stalled\"}",
        1.0,
    )
    .await;
    assert_eq!(metric(addr, "lens_report_exports_running").await, 0.0);
    assert!(
        held_since.elapsed() >= Duration::from_secs(STALL_SECONDS - 1),
        "ended after {:?}, before the stall timeout",
        held_since.elapsed()
    );
    let broken = loop {
        match resp.chunk().await {
            Ok(Some(_)) => {}
            Ok(None) => break false,
            Err(_) => break true,
        }
    };
    assert!(broken, "a stalled export ends in an error");
    drop(server);
}

/// `lens admin create-master` and `lens dev seed` touch the store only: they run while another
/// process holds the media port (a server on the same machine), and the seed prints the
/// master administrator it creates, as a server's first start does.
#[test]
fn admin_and_dev_commands_leave_the_media_port_alone() {
    let dir = tempfile::tempdir().unwrap();
    let udp = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    let port = udp.local_addr().unwrap().port();
    // ICE-TCP's passive candidate uses the same number.
    let _tcp = std::net::TcpListener::bind(("0.0.0.0", port)).ok();
    let lens = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_lens"))
            .args(args)
            .env("LENS_DATA_DIR", dir.path())
            .env("LENS_MEDIA_UDP_PORT", port.to_string())
            .env("RUST_LOG", "warn")
            .env_remove("LENS_BOOTSTRAP_EMAIL")
            .env_remove("LENS_BOOTSTRAP_PASSWORD")
            .env_remove("LENS_DATABASE_URL")
            .env_remove("LENS_CONFIG")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "lens {args:?}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let seeded = lens(&[
        "dev",
        "seed",
        "--sessions",
        "40",
        "--technicians",
        "3",
        "--groups",
        "1",
    ]);
    assert!(
        seeded.contains("created master administrator")
            && seeded.contains("email:    admin@localhost")
            && seeded.contains("password: "),
        "{seeded}"
    );
    assert!(seeded.contains("40 sessions"), "{seeded}");
    let created = lens(&["admin", "create-master", "--email", "ops@example.com"]);
    assert!(
        created.contains("created master administrator ops@example.com"),
        "{created}"
    );
}
