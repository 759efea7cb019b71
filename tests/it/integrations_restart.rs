//! Post-to-URL deliveries are written before they are sent: the real server is killed while its
//! receiver is down, and after the restart every delivery still arrives.

use crate::common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use common::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn deliveries_survive_a_server_kill() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let free = || {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let addr: SocketAddr = free();
    let hook = free();
    let env = [
        ("LENS_INTEGRATIONS_POST_FIRST_RETRY_SECONDS", "1"),
        ("LENS_INTEGRATIONS_POST_MAX_RETRY_SECONDS", "1"),
        // A delivery caught mid-attempt by the kill is leased for the time-out plus 5 s.
        ("LENS_INTEGRATIONS_POST_TIMEOUT_SECONDS", "1"),
    ];
    let server = spawn(dir.path(), addr, &env).await;
    let m = login(addr, MASTER_EMAIL, MASTER_PASSWORD).await;
    let g = call(
        addr,
        Method::POST,
        "/api/v1/technician-groups",
        Some(&m),
        json!({"name": "Posting"}),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    let path = format!("/api/v1/technician-groups/{g}/settings");
    let mut doc = call(addr, Method::GET, &path, Some(&m), json!(null)).await;
    doc["exporting_session_data"]["url"] = json!(format!("http://{hook}/hook"));
    doc["exporting_session_data"]["triggers"]["each_active"] = json!(true);
    doc["exporting_session_data"]["triggers"]["ended"] = json!(true);
    let saved = call(addr, Method::PUT, &path, Some(&m), doc).await;
    assert_eq!(
        saved["exporting_session_data"]["triggers"]["ended"], true,
        "{saved}"
    );
    call(addr, Method::POST, "/api/v1/technicians", Some(&m), json!({"name": "Pia", "email": "pia@example.com", "password": USER_PASSWORD, "group_id": g})).await;
    // The default policy makes an administrator-set password temporary: Pia sets her own.
    let first = login(addr, "pia@example.com", USER_PASSWORD).await;
    call(
        addr,
        Method::POST,
        "/api/v1/auth/password",
        Some(&first),
        json!({"old_password": USER_PASSWORD, "new_password": "Pia-Own-Pass7"}),
    )
    .await;
    let t = login(addr, "pia@example.com", "Pia-Own-Pass7").await;

    // A session picked up and ended while nobody listens at the hook.
    let mut con = Ws::connect_to(addr, "/ws/console").await;
    con.request(json!({"type": "hello", "v": 1, "token": t}))
        .await;
    let created = call(
        addr,
        Method::POST,
        "/api/v1/sessions",
        Some(&t),
        json!({"method": "pin"}),
    )
    .await;
    let id = created["id"].as_i64().unwrap();
    let mut cus = Ws::connect_to(addr, "/ws/customer").await;
    let ok = cus
        .request(json!({"type": "join", "v": 1, "code": created["pin"]}))
        .await;
    assert_eq!(ok["type"], "ok", "{ok}");
    cus.request(json!({"type": "ready"})).await;
    con.session_status(id, "Waiting").await;
    con.request(json!({"type": "pickup", "session_id": id}))
        .await;
    con.request(json!({"type": "end", "session_id": id})).await;
    cus.frame("ended", None).await;
    let deliveries = |addr| {
        let m = m.clone();
        async move {
            call(
                addr,
                Method::GET,
                &format!("/api/v1/post-deliveries?session_id={id}"),
                Some(&m),
                json!(null),
            )
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
        }
    };
    let mut pending = vec![];
    for _ in 0..300 {
        pending = deliveries(addr).await;
        if pending.len() == 2 && pending.iter().any(|d| d["attempts"].as_i64() >= Some(1)) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(pending.len(), 2, "{pending:?}");
    assert!(pending.iter().all(|d| d["status"] == "pending"));

    // Killed (SIGKILL): nothing gets to finish. Then the receiver comes up and the server restarts.
    drop(server);
    let keys: Arc<Mutex<Vec<String>>> = Arc::default();
    let got = keys.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap| {
            let got = got.clone();
            async move {
                let key = headers["idempotency-key"]
                    .to_str()
                    .unwrap_or("")
                    .to_string();
                got.lock().unwrap().push(key);
                "thanks"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(hook).await.unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let _server = spawn(dir.path(), addr, &env).await;
    let mut sent = vec![];
    for _ in 0..300 {
        sent = deliveries(addr).await;
        if sent.len() == 2 && sent.iter().all(|d| d["status"] == "sent") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(sent.iter().all(|d| d["status"] == "sent"), "{sent:?}");
    let mut expected: Vec<String> = sent
        .iter()
        .map(|d| d["idempotency_key"].as_str().unwrap().to_string())
        .collect();
    let mut arrived = keys.lock().unwrap().clone();
    expected.sort();
    arrived.sort();
    arrived.dedup();
    assert_eq!(
        arrived, expected,
        "every delivery arrived, under its own key"
    );
}
