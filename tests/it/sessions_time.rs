//! Time-outs, reconnects, no technician available and restart recovery. The hub's clock is moved
//! forward instead of waiting (the state machine never reads a clock).

use crate::common;

use common::*;
use serde_json::{Value, json};

const MIN: i64 = 60_000;

async fn create(s: &TestServer, token: &str) -> (i64, String) {
    let c = s
        .post("/api/v1/sessions", token, json!({"method": "pin"}))
        .await
        .expect(201);
    (
        c["id"].as_i64().unwrap(),
        c["pin"].as_str().unwrap().to_string(),
    )
}

async fn final_status(s: &TestServer, id: i64) -> String {
    let m = s.master().await;
    s.get(&format!("/api/v1/sessions/{id}"), &m)
        .await
        .expect(200)["status"]
        .as_str()
        .unwrap()
        .to_string()
}

fn timeouts(d: &mut Value) {
    d["timeouts"]["private_code_validity_minutes"] = json!(20);
    d["timeouts"]["connecting_seconds"] = json!(60);
    d["timeouts"]["waiting_minutes"] = json!(5);
    d["timeouts"]["active_idle_minutes"] = json!(10);
}

#[tokio::test]
async fn an_unused_code_expires() {
    let s = start().await;
    let (_, _, token) = technician_with(&s, "exp@example.com", timeouts).await;
    let (mut con, _) = console(&s, &token).await;
    let (id, pin) = create(&s, &token).await;
    s.state.hub.advance_clock(20 * MIN + 1000);
    con.frame("session_removed", Some(id)).await;
    let (_, r) = customer(&s, &pin).await;
    assert_eq!(r["code"], "code_expired", "{r}");
    assert_eq!(final_status(&s, id).await, "Expired");
}

#[tokio::test]
async fn connecting_waiting_and_idle_time_outs() {
    let s = start().await;
    let (_, _, token) = technician_with(&s, "to@example.com", timeouts).await;
    let (mut con, _) = console(&s, &token).await;
    // Connecting: the customer never gets ready → a failed session.
    let (a, pin) = create(&s, &token).await;
    let (mut cus, _) = customer(&s, &pin).await;
    s.state.hub.advance_clock(61_000);
    assert_eq!(cus.frame("ended", None).await["status"], "Timed out");
    // Waiting: never picked up → a missed session.
    let (b, pin) = create(&s, &token).await;
    let (mut cus, _) = customer(&s, &pin).await;
    let r = cus.request(json!({"type": "ready"})).await;
    assert_eq!(r["type"], "ok", "{r}");
    s.state.hub.advance_clock(5 * MIN - 10_000);
    cus.ping().await;
    s.state.hub.advance_clock(11_000);
    assert_eq!(cus.frame("ended", None).await["status"], "Timed out");
    // Active idle: chat is activity and moves the deadline.
    let (c, pin) = create(&s, &token).await;
    let (mut cus, _) = customer(&s, &pin).await;
    cus.request(json!({"type": "ready"})).await;
    con.request(json!({"type": "pickup", "session_id": c}))
        .await;
    cus.status("Active").await;
    s.state.hub.advance_clock(9 * MIN);
    cus.request(json!({"type": "chat", "text": "still here"}))
        .await;
    s.state.hub.advance_clock(9 * MIN);
    cus.ping().await;
    assert!(cus.backlog.iter().all(|f| f["type"] != "ended"));
    s.state.hub.advance_clock(2 * MIN);
    assert_eq!(
        cus.frame("ended", None).await["status"],
        "Timed out: closed by technician"
    );
    // On Hold never times out.
    let (d, pin) = create(&s, &token).await;
    let (mut cus, _) = customer(&s, &pin).await;
    cus.request(json!({"type": "ready"})).await;
    con.request(json!({"type": "pickup", "session_id": d}))
        .await;
    con.request(json!({"type": "hold", "session_id": d})).await;
    cus.status("On Hold").await;
    s.state.hub.advance_clock(24 * 60 * MIN);
    assert_eq!(cus.ping().await["type"], "pong");
    assert_eq!(s.state.hub.view(d).unwrap().status, "On Hold");
    for (id, want) in [
        (a, "Timed out"),
        (b, "Timed out"),
        (c, "Timed out: closed by technician"),
    ] {
        assert_eq!(final_status(&s, id).await, want);
    }
}

#[tokio::test]
async fn a_customer_resumes_inside_the_grace_period_and_not_after() {
    let s = start().await;
    let (_, _, token) = technician_with(&s, "rc@example.com", |_| {}).await;
    let (mut con, _) = console(&s, &token).await;
    let (id, pin) = create(&s, &token).await;
    let (mut cus, ok) = customer(&s, &pin).await;
    let resume = ok["resume_token"].as_str().unwrap().to_string();
    cus.request(json!({"type": "ready"})).await;
    con.request(json!({"type": "pickup", "session_id": id}))
        .await;
    cus.request(json!({"type": "mute", "kind": "audio", "muted": true}))
        .await;
    cus.close().await;
    con.session_status(id, "Reconnecting").await;
    s.state.hub.advance_clock(20_000);
    let mut cus = Ws::connect(&s, "/ws/customer").await;
    let ok = cus
        .request(json!({"type": "resume", "resume_token": resume}))
        .await;
    assert_eq!(ok["type"], "ok", "{ok}");
    assert_eq!(ok["session_id"], id);
    cus.status("Active").await;
    // The mute state survived the reconnect.
    let mute = cus.frame("mute_state", None).await;
    assert_eq!(mute["customer_audio"], false);
    con.session_status(id, "Active").await;
    // Drop again and stay away past the grace period.
    cus.close().await;
    con.session_status(id, "Reconnecting").await;
    s.state.hub.advance_clock(31_000);
    assert_eq!(con.frame("ended", Some(id)).await["status"], "Disconnected");
    let mut late = Ws::connect(&s, "/ws/customer").await;
    let r = late
        .request(json!({"type": "resume", "resume_token": resume}))
        .await;
    assert_eq!(r["code"], "session_ended");
    let r = late
        .request(json!({"type": "resume", "resume_token": "not-a-token"}))
        .await;
    assert_eq!(r["code"], "resume_invalid");
    let m = s.master().await;
    let d = s
        .get(&format!("/api/v1/sessions/{id}"), &m)
        .await
        .expect(200);
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
            "Reconnecting",
            "Disconnected"
        ]
    );
}

#[tokio::test]
async fn the_technicians_console_drop_and_return() {
    let s = start().await;
    let (_, _, token) = technician_with(&s, "tc@example.com", |_| {}).await;
    let (mut con, _) = console(&s, &token).await;
    let (id, pin) = create(&s, &token).await;
    let (mut cus, _) = customer(&s, &pin).await;
    cus.request(json!({"type": "ready"})).await;
    con.request(json!({"type": "pickup", "session_id": id}))
        .await;
    cus.status("Active").await;
    con.close().await;
    cus.status("Reconnecting").await;
    let (_, hello) = console(&s, &token).await;
    assert_eq!(hello["sessions"][0]["id"], id);
    cus.status("Active").await;
}

#[tokio::test]
async fn no_technician_available_keep_alive_notify_or_abort() {
    let s = start().await;
    // Keep alive: nobody online, the session waits.
    let (_, _, keep) = technician_with(&s, "keep@example.com", |_| {}).await;
    let (id, pin) = create(&s, &keep).await;
    let (mut cus, _) = customer(&s, &pin).await;
    cus.request(json!({"type": "ready"})).await;
    cus.status("Waiting").await;
    assert_eq!(s.state.hub.view(id).unwrap().status, "Waiting");
    // Notify by email: the technicians who could take it get an email through the outbox.
    let (_, _, notify) = technician_with(&s, "notify@example.com", |d| {
        d["no_technician_available"] = json!({"behavior": "notify_by_email", "url": null});
    })
    .await;
    let (id, pin) = create(&s, &notify).await;
    let (mut cus, _) = customer(&s, &pin).await;
    cus.request(json!({"type": "ready"})).await;
    cus.status("Waiting").await;
    let m = s.master().await;
    let mut found = false;
    for _ in 0..50 {
        let outbox = s
            .get(&format!("/api/v1/outbox?kind=email&session_id={id}"), &m)
            .await
            .expect(200);
        if let Some(mail) = outbox.as_array().unwrap().first() {
            assert_eq!(mail["recipient"], "notify@example.com");
            found = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(found, "a notification email was queued");
    // Abort and show a page.
    let (_, _, abort) = technician_with(&s, "abort@example.com", |d| {
        d["no_technician_available"] =
            json!({"behavior": "abort_and_show_url", "url": "https://example.com/closed"});
    })
    .await;
    let (id, pin) = create(&s, &abort).await;
    let (mut cus, _) = customer(&s, &pin).await;
    cus.request(json!({"type": "ready"})).await;
    let ended = cus.frame("ended", None).await;
    assert_eq!(ended["status"], "Aborted: no technician available");
    assert_eq!(ended["redirect_url"], "https://example.com/closed");
    let _ = id;
}

#[tokio::test]
async fn disabling_a_technician_aborts_its_sessions() {
    let s = start().await;
    let (_, tech, token) = technician_with(&s, "gone@example.com", |_| {}).await;
    let (id, pin) = create(&s, &token).await;
    let (mut cus, _) = customer(&s, &pin).await;
    let m = s.master().await;
    s.patch(
        &format!("/api/v1/technicians/{tech}"),
        &m,
        json!({"enabled": false}),
    )
    .await
    .expect(200);
    assert_eq!(
        cus.frame("ended", None).await["status"],
        "Aborted: technician was deleted or disabled"
    );
    assert_eq!(
        final_status(&s, id).await,
        "Aborted: technician was deleted or disabled"
    );
}

#[tokio::test]
async fn waiting_alarms_colour_the_queue_as_time_passes() {
    let s = start().await;
    let (_, _, token) = technician_with(&s, "alarm@example.com", |d| {
        d["timeouts"]["alarms"] = json!([
            {"kind": "waiting", "after_seconds": 60, "color": "#ffa500"},
            {"kind": "waiting", "after_seconds": 180, "color": "#ff0000"}
        ]);
    })
    .await;
    let (mut con, _) = console(&s, &token).await;
    let (id, pin) = create(&s, &token).await;
    let (mut cus, _) = customer(&s, &pin).await;
    cus.request(json!({"type": "ready"})).await;
    let first = con.session_status(id, "Waiting").await;
    assert!(first["session"].get("alarm_color").is_none());
    s.state.hub.advance_clock(61_000);
    let orange = con
        .until("orange alarm", |v| {
            v["type"] == "session" && v["session"]["alarm_color"] == "#ffa500"
        })
        .await;
    assert!(orange["session"]["waiting_seconds"].as_u64().unwrap() >= 60);
    s.state.hub.advance_clock(120_000);
    con.until("red alarm", |v| {
        v["type"] == "session" && v["session"]["alarm_color"] == "#ff0000"
    })
    .await;
}

#[tokio::test]
async fn the_customer_ip_is_not_stored_when_global_settings_say_so() {
    let s = start().await;
    let m = s.master().await;
    s.change_global_settings(&m, |g| g["do_not_store_customer_ip"] = json!(true))
        .await;
    let (_, _, token) = technician_with(&s, "noip@example.com", |_| {}).await;
    let (id, pin) = create(&s, &token).await;
    let (_cus, _) = customer(&s, &pin).await;
    let d = s
        .get(&format!("/api/v1/sessions/{id}"), &m)
        .await
        .expect(200);
    assert_eq!(d["customer_ip"], "");
    assert_eq!(d["platform"], "Android", "the device is still recorded");
}
