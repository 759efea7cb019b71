//! Lens sessions over real WebSockets against a running server: codes, queue, pickup, hold,
//! transfer, end, chat, time-outs, reconnect and restart.

use crate::common;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};

async fn create(s: &TestServer, token: &str, body: Value) -> Value {
    s.post("/api/v1/sessions", token, body).await.expect(201)
}

#[tokio::test]
async fn a_pin_session_from_code_to_end() {
    let s = start().await;
    let (_, tech, token) = technician_with(&s, "ada@example.com", |_| {}).await;
    let (mut con, hello) = console(&s, &token).await;
    assert_eq!(hello["technician"]["id"], tech);
    assert_eq!(hello["sessions"], json!([]));
    let created = create(
        &s,
        &token,
        json!({"method": "pin", "name": "Grace", "tracking_id": "CRM-1"}),
    )
    .await;
    let id = created["id"].as_i64().unwrap();
    let pin = created["pin"].as_str().unwrap().to_string();
    assert_eq!(pin.len(), 6);
    assert!(pin.chars().all(|c| c.is_ascii_digit()));
    assert!(created["expires_at"].is_string());
    let pending = con.session_status(id, "Pending").await;
    assert_eq!(pending["session"]["pin"], pin.as_str());
    assert_eq!(pending["session"]["name"], "Grace");

    let (mut cus, ok) = customer(&s, &pin).await;
    assert_eq!(ok["type"], "ok", "{ok}");
    assert_eq!(ok["session_id"], id);
    assert_eq!(ok["status"], "Connecting");
    assert_eq!(ok["audio"], true);
    assert!(ok["resume_token"].as_str().unwrap().len() >= 40);
    assert!(ok["ice_servers"].is_array());
    let seen = con.session_status(id, "Connecting").await;
    assert_eq!(seen["session"]["device"]["platform"], "Android");
    assert_eq!(seen["session"]["customer_ip"], "127.0.0.1");
    assert!(
        seen["session"].get("pin").is_none(),
        "the used code is not shown any more"
    );

    assert_eq!(cus.request(json!({"type": "ready"})).await["type"], "ok");
    cus.status("Waiting").await;
    let waiting = con.session_status(id, "Waiting").await;
    assert_eq!(waiting["session"]["waiting_seconds"], 0);

    assert_eq!(
        con.request(json!({"type": "pickup", "session_id": id}))
            .await["type"],
        "ok"
    );
    let active = cus.status("Active").await;
    assert_eq!(active["technician"]["nickname"], "ada");
    con.session_status(id, "Active").await;

    // Chat both ways, with timestamps; both sides see every line.
    cus.request(json!({"type": "chat", "text": "My router blinks red"}))
        .await;
    let line = con.frame("chat", Some(id)).await;
    assert_eq!(
        (line["from"].as_str(), line["text"].as_str()),
        (Some("customer"), Some("My router blinks red"))
    );
    assert!(line["at"].as_str().unwrap().ends_with('Z'));
    con.request(json!({"type": "chat", "session_id": id, "text": "Show me the back"}))
        .await;
    let line = cus
        .until("technician chat", |v| {
            v["type"] == "chat" && v["from"] == "technician"
        })
        .await;
    assert_eq!(line["name"], "ada");
    assert_eq!(
        con.request(json!({"type": "note", "session_id": id, "text": "Router model X"}))
            .await["type"],
        "ok"
    );

    // Hold and resume.
    con.request(json!({"type": "hold", "session_id": id})).await;
    cus.status("On Hold").await;
    con.request(json!({"type": "resume", "session_id": id}))
        .await;
    cus.status("Active").await;

    con.request(json!({"type": "end", "session_id": id})).await;
    let ended = cus.frame("ended", None).await;
    assert_eq!(ended["status"], "Closed by technician");
    let ended = con.frame("ended", Some(id)).await;
    assert_eq!(ended["status"], "Closed by technician");
    con.frame("session_removed", Some(id)).await;

    let detail = s
        .get(&format!("/api/v1/sessions/{id}"), &token)
        .await
        .expect(200);
    assert_eq!(detail["status"], "Closed by technician");
    assert_eq!(detail["tracking_id"], "CRM-1");
    assert_eq!(detail["platform"], "Android");
    assert!(detail["ended_at"].is_string());
    let path: Vec<&str> = detail["events"]
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
            "On Hold",
            "Active",
            "Closed by technician"
        ]
    );
    let chat: Vec<&str> = detail["chat"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["text"].as_str().unwrap())
        .collect();
    assert_eq!(chat, vec!["My router blinks red", "Show me the back"]);
    assert_eq!(detail["notes"][0]["text"], "Router model X");
    // The PIN cannot be used again.
    let (_, again) = customer(&s, &pin).await;
    assert_eq!(again["code"], "code_invalid");
}

#[tokio::test]
async fn link_sms_and_email_sessions() {
    let s = start().await;
    let (_, _, token) = technician_with(&s, "links@example.com", |d| {
        d["connection_methods"]["email_via_servers"] = json!(true);
    })
    .await;
    let created = create(&s, &token, json!({"method": "link"})).await;
    let link = created["link"].as_str().unwrap().to_string();
    assert!(created["pin"].is_null());
    let token_part = link.rsplit('/').next().unwrap();
    assert!(token_part.len() >= 32, "at least 128 bits: {link}");
    let (_, ok) = customer(&s, token_part).await;
    assert_eq!(ok["session_id"], created["id"]);

    let sms = create(
        &s,
        &token,
        json!({"method": "sms", "phone": "+44 20 7946-0000"}),
    )
    .await;
    assert!(sms["outbox_id"].is_i64());
    let master = s.master().await;
    s.state.hub.flush().await;
    let outbox = s.get("/api/v1/outbox?kind=sms", &master).await.expect(200);
    let msg = &outbox[0];
    assert_eq!(msg["recipient"], "+442079460000");
    assert!(
        msg["body"]
            .as_str()
            .unwrap()
            .contains(sms["link"].as_str().unwrap())
    );

    let mail = create(
        &s,
        &token,
        json!({"method": "email", "email": "grace@example.com", "email_via": "default_client"}),
    )
    .await;
    let mailto = mail["mailto"].as_str().unwrap();
    assert!(mailto.starts_with("mailto:grace@example.com?"), "{mailto}");
    let r = s
        .post("/api/v1/sessions", &token, json!({"method": "sms"}))
        .await;
    assert_eq!(r.status, 422, "sms needs a phone: {:?}", r.body);
}

#[tokio::test]
async fn only_the_groups_connection_methods_and_custom_field_rules() {
    let s = start().await;
    let (_, _, token) = technician_with(&s, "rules@example.com", |d| {
        d["connection_methods"]["sms"] = json!(false);
        d["custom_fields"][0] = json!({"enabled": true, "mandatory": true, "kind": "open_text", "choices": []});
        d["custom_fields"][1] = json!({"enabled": true, "mandatory": false, "kind": "drop_down", "choices": ["Router", "Modem"]});
    })
    .await;
    let r = s
        .post(
            "/api/v1/sessions",
            &token,
            json!({"method": "sms", "phone": "+4420794600", "custom_fields": ["x"]}),
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), r.error_code()),
        (403, "method_not_allowed")
    );
    let r = s
        .post("/api/v1/sessions", &token, json!({"method": "pin"}))
        .await;
    assert_eq!(r.status, 422, "custom field 1 is mandatory");
    let r = s
        .post(
            "/api/v1/sessions",
            &token,
            json!({"method": "pin", "custom_fields": ["a", "Fridge"]}),
        )
        .await;
    assert_eq!(r.status, 422, "not a choice");
    let r = s
        .post(
            "/api/v1/sessions",
            &token,
            json!({"method": "pin", "custom_fields": ["a", "b", "c"]}),
        )
        .await;
    assert_eq!(r.status, 422, "custom field 3 is not enabled");
    let r = s
        .post(
            "/api/v1/sessions",
            &token,
            json!({"method": "pin", "custom_fields": ["x".repeat(65)]}),
        )
        .await;
    assert_eq!(r.status, 422, "open text is at most 64");
    let r = s
        .post(
            "/api/v1/sessions",
            &token,
            json!({"method": "pin", "tracking_id": "t".repeat(257), "custom_fields": ["a"]}),
        )
        .await;
    assert_eq!(r.status, 422);
    let ok = create(
        &s,
        &token,
        json!({"method": "pin", "custom_fields": ["Acme", "Modem"]}),
    )
    .await;
    let d = s
        .get(&format!("/api/v1/sessions/{}", ok["id"]), &token)
        .await
        .expect(200);
    assert_eq!(d["custom_fields"], json!(["Acme", "Modem", "", "", ""]));
    // Administrators do not create sessions.
    let master = s.master().await;
    assert_eq!(
        s.post("/api/v1/sessions", &master, json!({"method": "pin"}))
            .await
            .status,
        403
    );
}

#[tokio::test]
async fn code_guessing_is_throttled_after_ten_failures_a_minute() {
    let s = start().await;
    let (_, _, token) = technician_with(&s, "guess@example.com", |_| {}).await;
    let created = create(&s, &token, json!({"method": "pin"})).await;
    let pin = created["pin"].as_str().unwrap().to_string();
    let wrong = if pin == "000000" { "000001" } else { "000000" };
    for i in 0..10 {
        let (_, r) = customer(&s, wrong).await;
        assert_eq!(r["code"], "code_invalid", "attempt {i}");
    }
    let (_, r) = customer(&s, &pin).await;
    assert_eq!(
        r["code"], "too_many_attempts",
        "the 11th attempt is refused even with the right code"
    );
    assert!(r["retry_after"].as_u64().unwrap() >= 1);
    let metrics = s.metrics().await;
    assert!(
        metrics.contains(r#"lens_code_attempts_total{outcome="invalid"} 10"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"lens_code_attempts_total{outcome="throttled"} 1"#));
}

#[tokio::test]
async fn one_active_session_per_technician() {
    let s = start().await;
    let (_, _, token) = technician_with(&s, "one@example.com", |_| {}).await;
    let (mut con, _) = console(&s, &token).await;
    let mut ids = Vec::new();
    let mut customers = Vec::new();
    for _ in 0..2 {
        let c = create(&s, &token, json!({"method": "pin"})).await;
        let (mut cus, _) = customer(&s, c["pin"].as_str().unwrap()).await;
        cus.request(json!({"type": "ready"})).await;
        ids.push(c["id"].as_i64().unwrap());
        customers.push(cus);
    }
    assert_eq!(
        con.request(json!({"type": "pickup", "session_id": ids[0]}))
            .await["type"],
        "ok"
    );
    let r = con
        .request(json!({"type": "pickup", "session_id": ids[1]}))
        .await;
    assert_eq!(r["code"], "one_active_session", "{r}");
    con.request(json!({"type": "hold", "session_id": ids[0]}))
        .await;
    assert_eq!(
        con.request(json!({"type": "pickup", "session_id": ids[1]}))
            .await["type"],
        "ok"
    );
    let r = con
        .request(json!({"type": "resume", "session_id": ids[0]}))
        .await;
    assert_eq!(r["code"], "one_active_session");
}

#[tokio::test]
async fn transfer_to_a_technician_and_to_a_group() {
    let s = start().await;
    let m = s.master().await;
    let (g, _, t1) = technician_with(&s, "t1@example.com", |_| {}).await;
    let t2_id = s
        .create_user(&m, "technicians", "t2@example.com", Some(g))
        .await;
    let t2 = s.token("t2@example.com", USER_PASSWORD).await;
    let other_group = s.create_group(&m, "Second line", None).await;
    s.create_user(&m, "technicians", "t3@example.com", Some(other_group))
        .await;
    let t3 = s.token("t3@example.com", USER_PASSWORD).await;
    let (mut c1, _) = console(&s, &t1).await;
    let (mut c2, _) = console(&s, &t2).await;
    let (mut c3, _) = console(&s, &t3).await;
    let created = create(&s, &t1, json!({"method": "pin"})).await;
    let id = created["id"].as_i64().unwrap();
    let (mut cus, _) = customer(&s, created["pin"].as_str().unwrap()).await;
    cus.request(json!({"type": "ready"})).await;
    c1.request(json!({"type": "pickup", "session_id": id}))
        .await;
    let r = c1.request(json!({"type": "transfer", "session_id": id, "to_technician_id": t2_id, "comment": "needs second opinion"})).await;
    assert_eq!(r["type"], "ok", "{r}");
    c1.frame("session_removed", Some(id)).await;
    let arrived = c2.session_status(id, "Waiting").await;
    assert_eq!(
        arrived["session"]["transfer_comment"],
        "needs second opinion"
    );
    cus.status("Transferring").await;
    cus.status("Waiting").await;
    assert_eq!(
        c1.request(json!({"type": "pickup", "session_id": id}))
            .await["code"],
        "session_not_found"
    );
    c2.request(json!({"type": "pickup", "session_id": id}))
        .await;
    cus.status("Active").await;
    // To a group: every technician of the group sees it, any of them picks it up.
    let r = c2
        .request(json!({"type": "transfer", "session_id": id, "to_group_id": other_group}))
        .await;
    assert_eq!(r["type"], "ok", "{r}");
    c3.session_status(id, "Waiting").await;
    c3.request(json!({"type": "pickup", "session_id": id}))
        .await;
    c3.session_status(id, "Active").await;
    // Bad targets.
    let r = c3
        .request(json!({"type": "transfer", "session_id": id, "to_technician_id": 999999}))
        .await;
    assert_eq!(r["code"], "validation_failed");
    let r = c3
        .request(json!({"type": "transfer", "session_id": id}))
        .await;
    assert!(r["type"] == "error", "{r}");
    c3.request(json!({"type": "end", "session_id": id})).await;
    let d = s
        .get(&format!("/api/v1/sessions/{id}"), &m)
        .await
        .expect(200);
    let transfer = d["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["to"] == "Transferring")
        .unwrap();
    assert_eq!(transfer["detail"]["comment"], "needs second opinion");
    assert_eq!(transfer["detail"]["to_technician_id"], t2_id);
}

#[tokio::test]
async fn the_customer_ends_or_declines() {
    let s = start().await;
    let (_, _, token) = technician_with(&s, "decl@example.com", |_| {}).await;
    let (mut con, _) = console(&s, &token).await;
    let a = create(&s, &token, json!({"method": "pin"})).await;
    let (mut cus, _) = customer(&s, a["pin"].as_str().unwrap()).await;
    cus.request(json!({"type": "decline"})).await;
    assert_eq!(
        cus.frame("ended", None).await["status"],
        "Declined by customer"
    );
    let b = create(&s, &token, json!({"method": "pin"})).await;
    let (mut cus, _) = customer(&s, b["pin"].as_str().unwrap()).await;
    cus.request(json!({"type": "ready"})).await;
    cus.request(json!({"type": "end"})).await;
    assert_eq!(
        cus.frame("ended", None).await["status"],
        "Closed by waiting customer"
    );
    let c = create(&s, &token, json!({"method": "pin"})).await;
    let cid = c["id"].as_i64().unwrap();
    let (mut cus, _) = customer(&s, c["pin"].as_str().unwrap()).await;
    cus.request(json!({"type": "ready"})).await;
    con.request(json!({"type": "pickup", "session_id": cid}))
        .await;
    cus.request(json!({"type": "end"})).await;
    assert_eq!(
        con.frame("ended", Some(cid)).await["status"],
        "Closed by customer"
    );
}

#[tokio::test]
async fn auto_start_goes_straight_to_active() {
    let s = start().await;
    let (_, _, token) = technician_with(&s, "auto@example.com", |d| {
        d["auto_start_private_sessions"] = json!(true)
    })
    .await;
    let (mut con, _) = console(&s, &token).await;
    let c = create(&s, &token, json!({"method": "pin"})).await;
    let (mut cus, _) = customer(&s, c["pin"].as_str().unwrap()).await;
    cus.request(json!({"type": "ready"})).await;
    cus.status("Active").await;
    con.session_status(c["id"].as_i64().unwrap(), "Active")
        .await;
}

#[tokio::test]
async fn protocol_errors_get_error_frames_and_the_socket_stays() {
    let s = start().await;
    let mut cus = Ws::connect(&s, "/ws/customer").await;
    cus.send_raw("{not json").await;
    assert_eq!(cus.next().await["code"], "malformed_json");
    cus.send_raw(r#"{"type": "fly", "id": "x1"}"#).await;
    let e = cus.next().await;
    assert_eq!(
        (e["code"].as_str(), e["id"].as_str()),
        (Some("unknown_type"), Some("x1"))
    );
    cus.send_raw(r#"{"type": "ready", "id": "x2"}"#).await;
    assert_eq!(cus.next().await["code"], "not_authenticated");
    cus.send_raw(r#"{"type": "join", "id": "x3", "v": 1}"#)
        .await;
    assert_eq!(cus.next().await["code"], "invalid_message");
    cus.send_raw(&format!(
        r#"{{"type": "chat", "id": "x4", "text": "{}"}}"#,
        "a".repeat(70_000)
    ))
    .await;
    assert_eq!(cus.next().await["code"], "frame_too_large");
    cus.send_raw(r#"{"type": "ping", "id": "x6"}"#).await;
    assert_eq!(cus.next().await["type"], "pong");
    // A version this server does not speak is fatal: error, then close 1008.
    cus.send_raw(r#"{"type": "join", "id": "x5", "v": 2, "code": "123456"}"#)
        .await;
    assert_eq!(cus.next().await["code"], "unsupported_version");
    assert_eq!(cus.close_code().await, Some(1008));

    let mut con = Ws::connect(&s, "/ws/console").await;
    con.send_raw(r#"{"type": "pickup", "id": "c1", "session_id": 1}"#)
        .await;
    assert_eq!(con.next().await["code"], "not_authenticated");
    con.send_raw(r#"{"type": "hello", "id": "c2", "v": 1, "token": "nope"}"#)
        .await;
    assert_eq!(con.next().await["code"], "invalid_token");
    assert_eq!(con.close_code().await, Some(1008));
    // Administrators have no console.
    let master = s.master().await;
    let mut con = Ws::connect(&s, "/ws/console").await;
    let r = con
        .request(json!({"type": "hello", "v": 1, "token": master}))
        .await;
    assert_eq!(r["code"], "invalid_token");
    // Commands out of order.
    let (_, _, token) = technician_with(&s, "order@example.com", |_| {}).await;
    let (mut con, _) = console(&s, &token).await;
    let c = create(&s, &token, json!({"method": "pin"})).await;
    let id = c["id"].as_i64().unwrap();
    assert_eq!(
        con.request(json!({"type": "pickup", "session_id": id}))
            .await["code"],
        "not_allowed"
    );
    assert_eq!(
        con.request(json!({"type": "hold", "session_id": id})).await["code"],
        "not_allowed"
    );
    assert_eq!(
        con.request(json!({"type": "pickup", "session_id": 987654}))
            .await["code"],
        "session_not_found"
    );
    let (mut cus, _) = customer(&s, c["pin"].as_str().unwrap()).await;
    assert_eq!(cus.request(json!({"type": "end"})).await["type"], "ok");
    let _ = Method::GET;
}

#[tokio::test]
async fn mute_changes_reach_both_sides_after_the_reply() {
    let s = start().await;
    let (_, _, token) = technician_with(&s, "mute@example.com", |_| {}).await;
    let (mut con, _) = console(&s, &token).await;
    let c = create(&s, &token, json!({"method": "pin"})).await;
    let id = c["id"].as_i64().unwrap();
    let (mut cus, _) = customer(&s, c["pin"].as_str().unwrap()).await;
    assert_eq!(cus.frame("mute_state", None).await["customer_audio"], true);
    cus.request(json!({"type": "ready"})).await;
    con.request(json!({"type": "pickup", "session_id": id}))
        .await;
    // The customer pauses its video: both sides are told.
    let rid = cus
        .send(json!({"type": "mute", "kind": "video", "muted": true}))
        .await;
    let first = cus
        .until("reply or mute_state", |v| {
            v["id"] == rid.as_str() || v["type"] == "mute_state"
        })
        .await;
    assert_eq!(first["type"], "ok", "the reply comes first: {first}");
    assert_eq!(cus.frame("mute_state", None).await["customer_video"], false);
    // The console got the state at pickup, then the change.
    con.until("video paused", |v| {
        v["type"] == "mute_state" && v["session_id"] == id && v["customer_video"] == false
    })
    .await;
    // The technician mutes the customer's microphone, and its own.
    con.request(json!({"type": "mute", "session_id": id, "target": "customer", "kind": "audio", "muted": true})).await;
    let m = cus
        .until("customer muted", |v| {
            v["type"] == "mute_state" && v["customer_audio"] == false
        })
        .await;
    assert_eq!(m["technician_audio"], true);
    con.request(
        json!({"type": "mute", "session_id": id, "target": "self", "kind": "audio", "muted": true}),
    )
    .await;
    cus.until("technician muted", |v| {
        v["type"] == "mute_state" && v["technician_audio"] == false
    })
    .await;
    // Only the customer pauses its video.
    let r = con.request(json!({"type": "mute", "session_id": id, "target": "customer", "kind": "video", "muted": false})).await;
    assert_eq!(r["code"], "not_allowed");
}

/// "Email via servers": the link goes through the outbox to a real SMTP server on 127.0.0.1
/// (aiosmtpd, started by scripts/test).
#[tokio::test]
async fn an_email_session_link_is_delivered_over_smtp() {
    let (Ok(addr), Ok(maildir)) = (
        std::env::var("LENS_TEST_SMTP_ADDR"),
        std::env::var("LENS_TEST_SMTP_DIR"),
    ) else {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "CI=true needs LENS_TEST_SMTP_ADDR: run ./scripts/test"
        );
        eprintln!("LENS_TEST_SMTP_ADDR not set: skipping (run ./scripts/test)");
        return;
    };
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    let s = start_on(Backend::Sqlite, |c| {
        c.smtp.host = addr.ip().to_string();
        c.smtp.port = addr.port();
        c.smtp.security = lens::notify::SmtpSecurity::None;
        c.smtp.from = "Support <support@example.com>".into();
    })
    .await
    .unwrap();
    let (_, _, token) = technician_with(&s, "mailer@example.com", |d| {
        d["connection_methods"]["email_via_servers"] = json!(true);
        d["connection_methods"]["connection_email_subject"] = json!("Your video session");
    })
    .await;
    let recipient = format!("customer-{}@example.com", std::process::id());
    let created = create(
        &s,
        &token,
        json!({"method": "email", "email": recipient, "email_via": "servers"}),
    )
    .await;
    let link = created["link"].as_str().unwrap().to_string();
    let master = s.master().await;
    let mut sent = Value::Null;
    for _ in 0..100 {
        let outbox = s
            .get(
                &format!("/api/v1/outbox?kind=email&session_id={}", created["id"]),
                &master,
            )
            .await
            .expect(200);
        if outbox[0]["status"] == "sent" {
            sent = outbox[0].clone();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(sent["recipient"], recipient.as_str(), "delivered: {sent}");
    let new = std::path::Path::new(&maildir).join("new");
    let found = std::fs::read_dir(&new)
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok())
        .find(|m| m.contains(&recipient))
        .expect("the message is in the SMTP server's maildir");
    assert!(found.contains("Subject: Your video session"), "{found}");
    assert!(found.contains(&link), "the link is in the body: {found}");
}

#[tokio::test]
async fn sessions_are_listed_to_those_who_may_see_them() {
    let s = start().await;
    let (g1, _, t1) = technician_with(&s, "list1@example.com", |_| {}).await;
    let (_, _, t2) = technician_with(&s, "list2@example.com", |_| {}).await;
    let a = create(&s, &t1, json!({"method": "pin"})).await;
    let b = create(&s, &t2, json!({"method": "pin"})).await;
    let ids = |v: Value| -> Vec<i64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x["id"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(
        ids(s.get("/api/v1/sessions", &t1).await.expect(200)),
        vec![a["id"].as_i64().unwrap()]
    );
    assert_eq!(
        s.get(&format!("/api/v1/sessions/{}", b["id"]), &t1)
            .await
            .status,
        404
    );
    let m = s.master().await;
    assert_eq!(
        ids(s.get("/api/v1/sessions", &m).await.expect(200)).len(),
        2
    );
    let admin = s
        .create_user(&m, "administrators", "list-admin@example.com", None)
        .await;
    s.call(
        reqwest::Method::PUT,
        &format!("/api/v1/administrators/{admin}/technician-groups/{g1}"),
        Some(&m),
        None,
    )
    .await
    .expect(204);
    let at = s.token("list-admin@example.com", USER_PASSWORD).await;
    assert_eq!(
        ids(s.get("/api/v1/sessions", &at).await.expect(200)),
        vec![a["id"].as_i64().unwrap()]
    );
    assert_eq!(
        ids(s
            .get("/api/v1/sessions?status=Pending", &m)
            .await
            .expect(200))
        .len(),
        2
    );
    assert_eq!(
        s.get("/api/v1/sessions?status=Sleeping", &m).await.status,
        400
    );
    assert_eq!(
        s.get("/api/v1/sessions?from=yesterday", &m).await.status,
        400
    );
    let none = s
        .get("/api/v1/sessions?from=2999-01-01T00:00:00Z", &m)
        .await
        .expect(200);
    assert!(none.as_array().unwrap().is_empty());
}
