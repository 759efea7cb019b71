//! The generator against a real Lens server: the server runs in this test process (real SQLite
//! file, HTTP and WebSocket on 127.0.0.1, the SFU on its UDP port) and the `loadtest` binary
//! drives two sessions with audio through it, then the bare UDP forwarder with the same traffic.
//! Asserts that media arrived every way and that the report was written; no timing assertions.

use std::net::SocketAddr;
use std::process::Command;

use lens::app::{self, AppState};
use lens::config::Config;
use lens::store::Store;
use serde_json::Value;

const ADMIN: &str = "admin@example.com";
const ADMIN_PASSWORD: &str = "Admin-Pass-91x";

async fn server(dir: &std::path::Path) -> SocketAddr {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_path_buf(),
        ..Config::default()
    };
    config.bootstrap.email = ADMIN.into();
    config.bootstrap.password = ADMIN_PASSWORD.into();
    config.media.udp_port = 0;
    let store = Store::open(&config.database_url()).await.unwrap();
    let state = AppState::new(config, store).await.unwrap();
    app::bootstrap(&state).await.unwrap();
    app::start_background(&state).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = app::router(state);
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    addr
}

/// Runs the `loadtest` binary with `extra` after the common arguments (2 sessions with audio for
/// 3 s at 360p, report into `out`); asserts it succeeded and printed the table, and returns the
/// JSON report.
async fn run_loadtest(dir: &std::path::Path, extra: Vec<String>) -> Value {
    let out = dir.join("out");
    let bin = env!("CARGO_BIN_EXE_loadtest");
    let mut args: Vec<String> = [
        "--sessions",
        "2",
        "--duration",
        "3s",
        "--profile",
        "360p",
        "--audio",
        "--quiet",
    ]
    .map(str::to_owned)
    .to_vec();
    args.extend([
        "--out".to_owned(),
        out.to_str().unwrap().to_owned(),
        "--media-dir".to_owned(),
        dir.join("media").to_str().unwrap().to_owned(),
    ]);
    args.extend(extra);
    let output = tokio::task::spawn_blocking(move || Command::new(bin).args(args).output())
        .await
        .unwrap()
        .expect("run loadtest (needs ffmpeg)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "loadtest failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("| measure | value |"),
        "no table:\n{stdout}"
    );
    assert!(out.join("report.svg").exists());
    serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap()
}

/// The arguments that point the tool at the server hosted in this test process, then `extra`.
fn against(addr: SocketAddr, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "--server".to_owned(),
        format!("http://{addr}"),
        "--server-pid".to_owned(),
        std::process::id().to_string(),
        "--admin-email".to_owned(),
        ADMIN.to_owned(),
        "--admin-password".to_owned(),
        ADMIN_PASSWORD.to_owned(),
    ];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    args
}

/// Every session of `run` was set up and held, and media arrived in each direction it names.
fn assert_carried(run: &Value, directions: &[&str]) {
    let target = run["setup"]["target"].as_str().unwrap();
    assert_eq!(run["sessions_failed"], 0, "{target}: {:?}", run["errors"]);
    assert_eq!(run["setup_ms"]["n"], 2, "{target}: both sessions set up");
    assert_eq!(run["setup"]["most_sessions_held"], 2, "{target}");
    for d in run["directions"].as_array().unwrap() {
        let name = d["direction"].as_str().unwrap();
        if directions.iter().any(|x| name.starts_with(x)) {
            assert!(
                d["received_packets"].as_u64().unwrap() > 0,
                "{target}: nothing arrived for {name}"
            );
        }
    }
    assert!(run["latency_ms"]["n"].as_u64().unwrap() > 0, "{target}");
    assert!(!run["timeline"].as_array().unwrap().is_empty(), "{target}");
}

const EVERY_WAY: &[&str] = &["phone video", "phone audio", "technician audio"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sessions_carry_media_every_way_and_the_report_is_written() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("server")).unwrap();
    let addr = server(&dir.path().join("server")).await;
    let report = run_loadtest(dir.path(), against(addr, &["--target", "udp,lens"])).await;
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for run in runs {
        assert_carried(run, EVERY_WAY);
    }
    assert_eq!(report["comparison"][1]["target"], "lens");
    assert!(
        report["comparison"][1]
            .get("packets_per_cpu_second_ratio_to_udp_forwarder")
            .is_some()
    );
}

/// The phones' camera sends H.264 (libx264 constrained baseline, FU-A) instead of VP8.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_phones_reach_the_technician_through_lens() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("server")).unwrap();
    let addr = server(&dir.path().join("server")).await;
    let args = against(addr, &["--target", "lens", "--codec", "h264"]);
    let report = run_loadtest(dir.path(), args).await;
    let run = &report["runs"][0];
    assert_eq!(run["setup"]["codec"], "H.264");
    assert_carried(run, EVERY_WAY);
}

/// Janus (Debian's `janus`) started by the tool: the phone publishes to a VideoRoom, the
/// technician subscribes. The VideoRoom has no way back, so the technician's audio is not sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn janus_videoroom_carries_the_phones_media_to_the_technician() {
    let have_janus = Command::new("janus").arg("--help").output().is_ok();
    if !have_janus {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "janus is not installed but CI=true: run ./scripts/test (apt-get install janus)"
        );
        eprintln!("skipped: janus is not installed (apt-get install janus)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let report = run_loadtest(dir.path(), vec!["--target".into(), "janus".into()]).await;
    let run = &report["runs"][0];
    assert_eq!(run["setup"]["target"], "janus");
    assert_carried(run, &["phone video", "phone audio"]);
    assert!(
        run["server_rss_max_mb"].as_f64().unwrap() > 0.0,
        "Janus' memory is read from /proc"
    );
}
