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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sessions_carry_media_every_way_and_the_report_is_written() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("server")).unwrap();
    let addr = server(&dir.path().join("server")).await;
    let out = dir.path().join("out");
    let bin = env!("CARGO_BIN_EXE_loadtest");
    let args = [
        "--server".to_owned(),
        format!("http://{addr}"),
        "--server-pid".to_owned(),
        std::process::id().to_string(),
        "--sessions".to_owned(),
        "2".to_owned(),
        "--duration".to_owned(),
        "3s".to_owned(),
        "--profile".to_owned(),
        "360p".to_owned(),
        "--audio".to_owned(),
        "--target".to_owned(),
        "udp,lens".to_owned(),
        "--admin-email".to_owned(),
        ADMIN.to_owned(),
        "--admin-password".to_owned(),
        ADMIN_PASSWORD.to_owned(),
        "--quiet".to_owned(),
        "--out".to_owned(),
        out.to_str().unwrap().to_owned(),
        "--media-dir".to_owned(),
        dir.path().join("media").to_str().unwrap().to_owned(),
    ];
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

    let report: Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert!(out.join("report.svg").exists());
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for run in runs {
        let target = run["setup"]["target"].as_str().unwrap();
        assert_eq!(run["sessions_failed"], 0, "{target}: {:?}", run["errors"]);
        assert_eq!(run["setup_ms"]["n"], 2, "{target}: both sessions set up");
        assert_eq!(run["setup"]["most_sessions_held"], 2, "{target}");
        for d in run["directions"].as_array().unwrap() {
            assert!(
                d["received_packets"].as_u64().unwrap() > 0,
                "{target}: nothing arrived for {}",
                d["direction"]
            );
        }
        assert!(run["latency_ms"]["n"].as_u64().unwrap() > 0, "{target}");
        assert!(!run["timeline"].as_array().unwrap().is_empty(), "{target}");
    }
    assert_eq!(report["comparison"][1]["target"], "lens");
}
