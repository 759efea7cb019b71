//! Post-to-URL against a real HTTP receiver on 127.0.0.1: every trigger, both formats, the guide's
//! variable names and values for a scripted session, omit-chat, basic auth, the signature, and
//! deliveries that survive a receiver that is down or never answers.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use common::*;
use serde_json::{Value, json};

/// What the receiver got: headers (lower-case names) and body.
#[derive(Debug, Clone)]
struct Received {
    headers: Vec<(String, String)>,
    body: String,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    fn form(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(self.body.as_bytes())
            .into_owned()
            .collect()
    }
    fn field(&self, name: &str) -> String {
        self.form()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("no {name} in {}", self.body))
    }
}

/// How the receiver answers.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Ok,
    /// 503 for this many more requests, then 200.
    FailNext(u32),
    /// Accepts the request and never answers.
    Hang,
}

#[derive(Clone)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    mode: Arc<Mutex<Mode>>,
}

impl Receiver {
    fn new(mode: Mode) -> Receiver {
        Receiver {
            got: Arc::default(),
            mode: Arc::new(Mutex::new(mode)),
        }
    }

    /// Serves on `listener` until the test ends.
    fn serve(&self, listener: tokio::net::TcpListener) {
        let me = self.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
                let me = me.clone();
                async move {
                    me.got.lock().unwrap().push(Received {
                        headers: headers
                            .iter()
                            .map(|(k, v)| {
                                (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())
                            })
                            .collect(),
                        body,
                    });
                    let mode = *me.mode.lock().unwrap();
                    match mode {
                        Mode::Ok => axum::http::StatusCode::OK,
                        Mode::FailNext(n) => {
                            *me.mode.lock().unwrap() = if n <= 1 {
                                Mode::Ok
                            } else {
                                Mode::FailNext(n - 1)
                            };
                            axum::http::StatusCode::SERVICE_UNAVAILABLE
                        }
                        Mode::Hang => {
                            std::future::pending::<()>().await;
                            axum::http::StatusCode::OK
                        }
                    }
                }
            }),
        );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

async fn listener() -> (tokio::net::TcpListener, u16) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

/// A server whose failed deliveries are retried after a second (doubling up to two).
async fn server() -> TestServer {
    server_on(Backend::Sqlite).await.unwrap()
}

async fn server_on(backend: Backend) -> Option<TestServer> {
    start_on(backend, |c| {
        c.integrations.post_first_retry_seconds = 1;
        c.integrations.post_max_retry_seconds = 2;
        c.integrations.post_timeout_seconds = 2;
    })
    .await
}

fn export(doc: &mut Value, url: &str, format: &str, triggers: &[&str], omit_chat: bool) {
    let ex = &mut doc["exporting_session_data"];
    ex["url"] = json!(url);
    ex["format"] = json!(format);
    ex["omit_chat_text_from_post"] = json!(omit_chat);
    for t in [
        "each_active",
        "first_active",
        "ended",
        "suspended",
        "console_refreshed_or_closed",
    ] {
        ex["triggers"][t] = json!(triggers.contains(&t));
    }
    doc["custom_fields"][0]["enabled"] = json!(true);
}

/// Deliveries of a session, oldest first, once `done` holds for them (at most 30 s).
async fn deliveries_until(
    s: &TestServer,
    session: i64,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let m = s.master().await;
    for _ in 0..300 {
        let mut list = s
            .get(&format!("/api/v1/post-deliveries?session_id={session}"), &m)
            .await
            .expect(200)
            .as_array()
            .unwrap()
            .clone();
        list.reverse();
        if done(&list) {
            return list;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("deliveries of session {session}: never {what}");
}

fn all_sent(n: usize) -> impl Fn(&[Value]) -> bool {
    move |l: &[Value]| l.len() == n && l.iter().all(|d| d["status"] == "sent")
}

fn triggers(l: &[Value]) -> Vec<&str> {
    l.iter().map(|d| d["trigger"].as_str().unwrap()).collect()
}

/// The guide's HTML form variables, in its order (plus TechName, TechEmail and Platform).
const FORM_FIELDS: [&str; 32] = [
    "SessionID",
    "TechID",
    "TechSSOID",
    "TechName",
    "TechEmail",
    "TechDescr",
    "CField0",
    "CField1",
    "CField2",
    "CField3",
    "CField4",
    "CField5",
    "Tracking0",
    "ChatLog",
    "Notes",
    "WaitingTime",
    "PickupTime",
    "ClosingTime",
    "WorkTime",
    "LastActionTime",
    "Transmitted",
    "Platform",
    "TSurvey0",
    "TSurvey1",
    "TSurvey2",
    "TSurvey3",
    "TSurvey4",
    "TSurvey5",
    "TSurvey6",
    "TSurvey7",
    "TSurvey8",
    "TSurvey9",
];

/// A technician whose group posts to `url`; returns (group, technician id, token).
async fn technician_posting_to(
    s: &TestServer,
    email: &str,
    url: &str,
    format: &str,
    triggers: &[&str],
    omit_chat: bool,
) -> (i64, i64, String) {
    let (g, id, token) = technician_with(s, email, |doc| {
        export(doc, url, format, triggers, omit_chat)
    })
    .await;
    let m = s.master().await;
    s.patch(
        &format!("/api/v1/technicians/{id}"),
        &m,
        json!({"sso_id": "T-77", "description": "Tier 2"}),
    )
    .await
    .expect(200);
    (g, id, token)
}

/// Creates a session and brings it to Active; returns (session id, console, customer).
async fn active_session(s: &TestServer, token: &str) -> (i64, Ws, Ws) {
    let (mut con, _) = console(s, token).await;
    let created = s
        .post(
            "/api/v1/sessions",
            token,
            json!({"method": "pin", "name": "Grace", "custom_fields": ["Router X2"], "tracking_id": "CRM-7"}),
        )
        .await
        .expect(201);
    let id = created["id"].as_i64().unwrap();
    let (mut cus, ok) = customer(s, created["pin"].as_str().unwrap()).await;
    assert_eq!(ok["type"], "ok", "{ok}");
    cus.request(json!({"type": "ready"})).await;
    con.session_status(id, "Waiting").await;
    let r = con
        .request(json!({"type": "pickup", "session_id": id}))
        .await;
    assert_eq!(r["type"], "ok", "{r}");
    cus.status("Active").await;
    (id, con, cus)
}

#[tokio::test]
async fn every_trigger_posts_the_guides_form_variables_signed_with_basic_auth() {
    every_trigger(server().await).await;
}

#[tokio::test]
async fn every_trigger_posts_on_postgres() {
    if let Some(s) = server_on(Backend::Postgres).await {
        every_trigger(s).await;
    }
}

async fn every_trigger(s: TestServer) {
    let (l, port) = listener().await;
    let receiver = Receiver::new(Mode::Ok);
    receiver.serve(l);
    let url = format!("http://hook-user:hook%20pass@127.0.0.1:{port}/hook");
    let all = [
        "each_active",
        "first_active",
        "ended",
        "suspended",
        "console_refreshed_or_closed",
    ];
    let (g, tech, token) =
        technician_posting_to(&s, "ada@example.com", &url, "html_form", &all, false).await;
    let m = s.master().await;
    let secret = s
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/technician-groups/{g}/post-to-url/secret"),
            Some(&m),
            None,
        )
        .await
        .expect(201)["secret"]
        .as_str()
        .unwrap()
        .to_string();

    let (id, mut con, mut cus) = active_session(&s, &token).await;
    cus.request(json!({"type": "chat", "text": "My router blinks red"}))
        .await;
    con.frame("chat", Some(id)).await;
    con.request(json!({"type": "chat", "session_id": id, "text": "Show me the back"}))
        .await;
    con.request(json!({"type": "note", "session_id": id, "text": "Router model X2"}))
        .await;
    con.request(json!({"type": "hold", "session_id": id})).await;
    cus.status("On Hold").await;
    con.request(json!({"type": "resume", "session_id": id}))
        .await;
    cus.status("Active").await;
    // The console is refreshed: closed, then back.
    con.close().await;
    cus.status("Reconnecting").await;
    let (mut con, _) = console(&s, &token).await;
    cus.status("Active").await;
    con.request(json!({"type": "end", "session_id": id})).await;
    cus.frame("ended", None).await;

    let list = deliveries_until(&s, id, "all six sent", all_sent(6)).await;
    assert_eq!(
        triggers(&list),
        [
            "each_active",
            "first_active",
            "suspended",
            "each_active",
            "console_refreshed_or_closed",
            "ended"
        ]
    );
    assert!(list.iter().all(|d| d["url"]
        == format!("http://hook-user:********@127.0.0.1:{port}/hook")
        && d["signed"] == true
        && d["attempts"] == 1
        && d["last_status_code"] == 200));
    let got = receiver.got();
    assert_eq!(got.len(), 6, "each delivery once");
    let mut keys: Vec<&str> = got
        .iter()
        .map(|r| r.header("idempotency-key").unwrap())
        .collect();
    for (r, d) in got.iter().zip(&list) {
        assert_eq!(r.header("idempotency-key"), d["idempotency_key"].as_str());
        assert_eq!(r.header("x-lens-trigger"), d["trigger"].as_str());
        assert_eq!(
            r.header("content-type"),
            Some("application/x-www-form-urlencoded")
        );
        // Credentials from the URL arrive as basic auth.
        let basic = base64::engine::general_purpose::STANDARD.encode("hook-user:hook pass");
        assert_eq!(
            r.header("authorization"),
            Some(format!("Basic {basic}").as_str())
        );
        // The signature is HMAC-SHA256 of the exact body with the group's secret.
        assert_eq!(
            r.header("x-lens-signature"),
            Some(lens::integrations::post_to_url::sign(&secret, &r.body).as_str())
        );
        assert!(
            lens::integrations::post_to_url::sign("another secret", &r.body)
                != r.header("x-lens-signature").unwrap()
        );
        let names: Vec<String> = r.form().into_iter().map(|(k, _)| k).collect();
        assert_eq!(names, FORM_FIELDS, "the guide's variables, in order");
    }
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), 6, "one idempotency key per delivery");

    // The values of the scripted session.
    let end = &got[5];
    assert_eq!(end.field("SessionID"), id.to_string());
    assert_eq!(end.field("TechID"), tech.to_string());
    assert_eq!(end.field("TechSSOID"), "T-77");
    assert_eq!(end.field("TechName"), "ada");
    assert_eq!(end.field("TechEmail"), "ada@example.com");
    assert_eq!(end.field("TechDescr"), "Tier 2");
    assert_eq!(end.field("CField0"), "Grace");
    assert_eq!(end.field("CField1"), "Router X2");
    assert_eq!(end.field("CField2"), "");
    assert_eq!(end.field("Tracking0"), "CRM-7");
    assert_eq!(end.field("Notes"), "Router model X2");
    assert_eq!(end.field("Platform"), "Android");
    assert!(end.field("WaitingTime").parse::<u64>().is_ok());
    assert!(end.field("WorkTime").parse::<u64>().is_ok());
    assert!(end.field("Transmitted").parse::<u64>().is_ok());
    for f in ["PickupTime", "ClosingTime", "LastActionTime"] {
        let v = end.field(f);
        assert!(
            chrono::DateTime::parse_from_rfc3339(&v).is_ok(),
            "{f}: {v:?}"
        );
    }
    assert_eq!(got[0].field("ClosingTime"), "", "not closed at pickup");
    assert_eq!(got[0].field("PickupTime"), end.field("PickupTime"));
    // ChatLog: the chat since the previous post.
    assert_eq!(got[0].field("ChatLog"), "");
    assert_eq!(got[1].field("ChatLog"), "");
    let chat = got[2].field("ChatLog");
    let lines: Vec<&str> = chat.lines().collect();
    assert_eq!(lines.len(), 2, "{chat}");
    assert!(
        lines[0].ends_with("] Grace: My router blinks red"),
        "{chat}"
    );
    assert!(lines[1].ends_with("] ada: Show me the back"), "{chat}");
    assert!(got[3..].iter().all(|r| r.field("ChatLog").is_empty()));

    // The secret: set (never shown again), removed, each change audited.
    let path = format!("/api/v1/technician-groups/{g}/post-to-url/secret");
    let state = s.get(&path, &m).await.expect(200);
    assert_eq!(state["set"], true);
    assert!(state.get("secret").is_none());
    s.delete(&path, &m).await.expect(204);
    assert_eq!(s.get(&path, &m).await.expect(200)["set"], false);
    let audit = s
        .get(
            &format!("/api/v1/audit?entity_type=Technician%20Group&entity_id={g}"),
            &m,
        )
        .await
        .expect(200);
    let secret_rows: Vec<(&str, &str)> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["field"] == "Post to URL signing secret")
        .map(|r| {
            (
                r["old_action"].as_str().unwrap(),
                r["new_action"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(secret_rows, [("Set", "Not set"), ("Not set", "Set")]);
}

#[tokio::test]
async fn xml_with_the_guides_elements_and_omit_chat_keeps_system_lines() {
    let s = server().await;
    let (l, port) = listener().await;
    let receiver = Receiver::new(Mode::Ok);
    receiver.serve(l);
    let url = format!("http://127.0.0.1:{port}/hook");
    let (g, _, token) = technician_posting_to(
        &s,
        "bob@example.com",
        &url,
        "xml",
        &["suspended", "ended"],
        true,
    )
    .await;
    let (id, mut con, mut cus) = active_session(&s, &token).await;
    cus.request(json!({"type": "chat", "text": "secret customer words"}))
        .await;
    con.frame("chat", Some(id)).await;
    let r = con
        .request(json!({"type": "transfer", "session_id": id, "to_group_id": g, "comment": "needs a specialist"}))
        .await;
    assert_eq!(r["type"], "ok", "{r}");
    con.session_status(id, "Waiting").await;
    con.request(json!({"type": "pickup", "session_id": id}))
        .await;
    con.session_status(id, "Active").await;
    con.request(json!({"type": "end", "session_id": id})).await;
    con.frame("ended", Some(id)).await;

    let list = deliveries_until(&s, id, "both sent", all_sent(2)).await;
    assert_eq!(triggers(&list), ["suspended", "ended"]);
    assert!(
        list.iter()
            .all(|d| d["signed"] == false && d["format"] == "xml")
    );
    let got = receiver.got();
    assert_eq!(got.len(), 2);
    let xml = &got[0].body;
    assert_eq!(
        got[0].header("content-type"),
        Some("text/xml; charset=utf-8")
    );
    assert!(
        got[0].header("x-lens-signature").is_none(),
        "no secret, no signature"
    );
    assert!(got[0].header("authorization").is_none());
    assert!(xml.starts_with("<?xml"), "{xml}");
    for element in [
        "sessionid",
        "techid",
        "techssoid",
        "techname",
        "techemail",
        "techdescr",
        "cfiield0",
        "cfiield1",
        "cfiield2",
        "cfiield3",
        "cfiield4",
        "cfiield5",
        "tracking0",
        "chatlog",
        "notes",
        "waitingtime",
        "pickuptime",
        "closingtime",
        "worktime",
        "lastactiontime",
        "transmitted",
        "platform",
        "tsurvey0",
        "tsurvey9",
    ] {
        assert!(
            xml.contains(&format!("<{element}>")) && xml.contains(&format!("</{element}>")),
            "<{element}> missing in {xml}"
        );
    }
    assert!(xml.contains(&format!("<sessionid>{id}</sessionid>")));
    assert!(xml.contains("<cfiield0>Grace</cfiield0>"));
    assert!(xml.contains("<cfiield1>Router X2</cfiield1>"));
    assert!(xml.contains("<tracking0>CRM-7</tracking0>"));
    // Omit chat text: the system line of the transfer stays, the conversation does not.
    assert!(
        xml.contains("Transferred by bob: needs a specialist"),
        "{xml}"
    );
    assert!(!xml.contains("secret customer words"), "{xml}");
    assert!(!got[1].body.contains("secret customer words"));
}

#[tokio::test]
async fn a_receiver_that_is_down_gets_every_delivery_once_it_is_back() {
    receiver_down(server().await).await;
}

#[tokio::test]
async fn a_receiver_that_is_down_gets_every_delivery_on_postgres() {
    if let Some(s) = server_on(Backend::Postgres).await {
        receiver_down(s).await;
    }
}

async fn receiver_down(s: TestServer) {
    // A port with nobody listening: connections are refused.
    let (l, port) = listener().await;
    drop(l);
    let url = format!("http://127.0.0.1:{port}/hook");
    let (_, _, token) = technician_posting_to(
        &s,
        "cy@example.com",
        &url,
        "html_form",
        &["each_active", "suspended", "ended"],
        false,
    )
    .await;
    let (id, mut con, mut cus) = active_session(&s, &token).await;
    con.request(json!({"type": "hold", "session_id": id})).await;
    cus.status("On Hold").await;
    con.request(json!({"type": "end", "session_id": id})).await;
    cus.frame("ended", None).await;
    // The first delivery failed (at least once) and holds the others back, in order.
    let before = deliveries_until(&s, id, "failing", |l| {
        l.len() == 3 && l[0]["attempts"].as_i64().unwrap_or(0) >= 1
    })
    .await;
    assert!(
        before.iter().all(|d| d["status"] == "pending"),
        "{before:?}"
    );
    assert!(!before[0]["last_error"].as_str().unwrap().is_empty());
    assert!(before[0]["last_status_code"].is_null());

    // The receiver comes back on that port, failing its first answer (a 503 is retried too).
    let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let receiver = Receiver::new(Mode::FailNext(1));
    receiver.serve(l);
    let list = deliveries_until(&s, id, "all sent", all_sent(3)).await;
    assert_eq!(triggers(&list), ["each_active", "suspended", "ended"]);
    let got = receiver.got();
    assert_eq!(got.len(), 4, "three deliveries, the first one twice");
    // The repeat carries the same idempotency key; none is lost.
    let keys: Vec<&str> = got
        .iter()
        .map(|r| r.header("idempotency-key").unwrap())
        .collect();
    assert_eq!(keys[0], keys[1]);
    assert_eq!(got[0].body, got[1].body);
    let expected: Vec<&str> = list
        .iter()
        .map(|d| d["idempotency_key"].as_str().unwrap())
        .collect();
    assert_eq!(keys[1..], expected[..]);
    assert!(list[0]["attempts"].as_i64().unwrap() >= 2);
}

#[tokio::test]
async fn a_receiver_that_never_answers_does_not_delay_the_session() {
    let s = server().await;
    let (l, port) = listener().await;
    let receiver = Receiver::new(Mode::Hang);
    receiver.serve(l);
    let url = format!("http://127.0.0.1:{port}/hook");
    let (_, _, token) = technician_posting_to(
        &s,
        "dee@example.com",
        &url,
        "xml",
        &["each_active", "suspended", "ended"],
        false,
    )
    .await;
    let (id, mut con, mut cus) = active_session(&s, &token).await;
    // Every transition goes through while the first delivery hangs at the receiver.
    for _ in 0..3 {
        con.request(json!({"type": "hold", "session_id": id})).await;
        cus.status("On Hold").await;
        con.request(json!({"type": "resume", "session_id": id}))
            .await;
        cus.status("Active").await;
    }
    con.request(json!({"type": "end", "session_id": id})).await;
    let ended = cus.frame("ended", None).await;
    assert_eq!(ended["status"], "Closed by technician");
    let m = s.master().await;
    let detail = s
        .get(&format!("/api/v1/sessions/{id}"), &m)
        .await
        .expect(200);
    assert_eq!(detail["status"], "Closed by technician");
    // The deliveries wait (written, not lost) behind the hanging one, which times out and retries.
    let list = deliveries_until(&s, id, "timed out once", |l| {
        l.len() == 8 && l[0]["attempts"].as_i64().unwrap_or(0) >= 1
    })
    .await;
    assert!(list.iter().all(|d| d["status"] == "pending"));
    assert!(
        list[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("timed out"),
        "{:?}",
        list[0]
    );
    assert!(!receiver.got().is_empty());
}
