//! The server process is killed and started again inside the test: live sessions come back with
//! their codes and time-outs, and their clients resume.

use crate::common;

use std::net::SocketAddr;

use common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn live_sessions_survive_a_server_restart() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let addr: SocketAddr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut server = spawn(dir.path(), addr, &[]).await;
    let m = login(addr, MASTER_EMAIL, MASTER_PASSWORD).await;
    let g = call(
        addr,
        reqwest::Method::POST,
        "/api/v1/technician-groups",
        Some(&m),
        json!({"name": "Restart"}),
    )
    .await;
    let g = g["id"].as_i64().unwrap();
    call(addr, reqwest::Method::POST, "/api/v1/technicians", Some(&m), json!({"name": "Rita", "email": "rita@example.com", "password": USER_PASSWORD, "group_id": g})).await;
    // The default policy makes an administrator-set password temporary: Rita sets her own.
    let first = login(addr, "rita@example.com", USER_PASSWORD).await;
    call(
        addr,
        reqwest::Method::POST,
        "/api/v1/auth/password",
        Some(&first),
        json!({"old_password": USER_PASSWORD, "new_password": "Rita-Own-Pass7"}),
    )
    .await;
    let t = login(addr, "rita@example.com", "Rita-Own-Pass7").await;

    let mut con = Ws::connect_to(addr, "/ws/console").await;
    assert_eq!(
        con.request(json!({"type": "hello", "v": 1, "token": t}))
            .await["type"],
        "ok"
    );
    let active = con
        .request(json!({"type": "create_session", "method": "pin", "name": "Active one"}))
        .await;
    let active_id = active["session_id"].as_i64().unwrap();
    let pending = con
        .request(json!({"type": "create_session", "method": "pin", "name": "Pending one"}))
        .await;
    let pending_pin = pending["pin"].as_str().unwrap().to_string();
    let mut cus = Ws::connect_to(addr, "/ws/customer").await;
    let joined = cus
        .request(json!({"type": "join", "v": 1, "code": active["pin"]}))
        .await;
    let resume = joined["resume_token"].as_str().unwrap().to_string();
    cus.request(json!({"type": "ready"})).await;
    con.request(json!({"type": "pickup", "session_id": active_id}))
        .await;
    cus.status("Active").await;
    cus.request(json!({"type": "chat", "text": "before the restart"}))
        .await;
    // Reading the session waits until what the hub decided is in the store.
    call(
        addr,
        reqwest::Method::GET,
        &format!("/api/v1/sessions/{active_id}"),
        Some(&m),
        Value::Null,
    )
    .await;

    // Kill the process (no graceful shutdown) and start it again on the same store.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    drop(server);
    let _server = spawn(dir.path(), addr, &[]).await;

    // The customer resumes within the grace period; the console says hello again.
    let mut cus = Ws::connect_to(addr, "/ws/customer").await;
    let ok = cus
        .request(json!({"type": "resume", "resume_token": resume}))
        .await;
    assert_eq!(ok["type"], "ok", "{ok}");
    assert_eq!(ok["session_id"], active_id);
    assert_eq!(
        ok["status"], "Reconnecting",
        "the technician is not back yet"
    );
    let mut con = Ws::connect_to(addr, "/ws/console").await;
    let hello = con
        .request(json!({"type": "hello", "v": 1, "token": t}))
        .await;
    let ids: Vec<i64> = hello["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_i64().unwrap())
        .collect();
    assert!(ids.contains(&active_id), "{hello}");
    assert_eq!(ids.len(), 2, "the pending session came back too: {hello}");
    cus.status("Active").await;
    // The unused PIN still works after the restart.
    let mut late = Ws::connect_to(addr, "/ws/customer").await;
    let ok = late
        .request(json!({"type": "join", "v": 1, "code": pending_pin}))
        .await;
    assert_eq!(ok["type"], "ok", "{ok}");
    con.request(json!({"type": "end", "session_id": active_id}))
        .await;
    assert_eq!(
        cus.frame("ended", None).await["status"],
        "Closed by technician"
    );

    let d = call(
        addr,
        reqwest::Method::GET,
        &format!("/api/v1/sessions/{active_id}"),
        Some(&m),
        Value::Null,
    )
    .await;
    let path: Vec<&str> = d["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["to"].as_str().unwrap())
        .collect();
    assert_eq!(
        path,
        vec![
            "Connecting",
            "Waiting",
            "Active",
            "Reconnecting",
            "Active",
            "Closed by technician"
        ]
    );
    assert_eq!(d["chat"][0]["text"], "before the restart");
}
