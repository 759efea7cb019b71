//! API keys for apps that embed the customer side: master administrators create, edit and disable
//! them (audited); a customer join presenting a key needs an enabled key for its app identifier.

use crate::common;

use common::*;
use serde_json::{Value, json};

async fn pin(s: &TestServer, token: &str) -> String {
    let created = s
        .post("/api/v1/sessions", token, json!({"method": "pin"}))
        .await
        .expect(201);
    created["pin"].as_str().unwrap().to_string()
}

async fn join(s: &TestServer, code: &str, key: Option<&str>, app: Option<&str>) -> Value {
    let mut ws = Ws::connect(s, "/ws/customer").await;
    let mut frame = json!({"type": "join", "v": 1, "code": code});
    if let Some(k) = key {
        frame["api_key"] = json!(k);
    }
    if let Some(a) = app {
        frame["app_id"] = json!(a);
    }
    ws.request(frame).await
}

#[tokio::test]
async fn api_keys_on_sqlite() {
    api_keys(start().await).await;
}

#[tokio::test]
async fn api_keys_on_postgres() {
    if let Some(s) = start_on(Backend::Postgres, |_| {}).await {
        api_keys(s).await;
    }
}

async fn api_keys(s: TestServer) {
    let m = s.master().await;
    let (g, _, tech) = technician_with(&s, "tia@example.com", |_| {}).await;
    let admin = s
        .create_user(&m, "administrators", "al@example.com", None)
        .await;
    let al = s.token("al@example.com", USER_PASSWORD).await;
    let _ = (g, admin);

    // Only master administrators manage keys.
    let r = s
        .post(
            "/api/v1/api-keys",
            &al,
            json!({"app_id": "com.example.lens"}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 403);
    assert_eq!(s.get("/api/v1/api-keys", &tech).await.status.as_u16(), 403);
    let bad = s
        .post("/api/v1/api-keys", &m, json!({"app_id": "not an id!"}))
        .await;
    assert_eq!(bad.status.as_u16(), 422);
    assert!(
        bad.body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("app_id")
    );

    // Create.
    let created = s
        .post(
            "/api/v1/api-keys",
            &m,
            json!({"app_id": "com.example.lens", "description": "Android app"}),
        )
        .await
        .expect(201);
    let key = created["key"].as_str().unwrap().to_string();
    let id = created["id"].as_i64().unwrap();
    assert!(key.starts_with("lk_") && key.len() > 40, "{key}");
    assert_eq!(created["key_prefix"], key[..10]);
    assert_eq!(created["enabled"], true);
    assert_eq!(created["use_count"], 0);
    let listed = s.get("/api/v1/api-keys", &m).await.expect(200);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(listed[0].get("key").is_none(), "the key is shown only once");

    // A join with the right key and app identifier is accepted and counted.
    let ok = join(
        &s,
        &pin(&s, &tech).await,
        Some(&key),
        Some("com.example.lens"),
    )
    .await;
    assert_eq!(ok["type"], "ok", "{ok}");
    let k = s
        .get(&format!("/api/v1/api-keys/{id}"), &m)
        .await
        .expect(200);
    assert_eq!(k["use_count"], 1);
    assert!(k["last_used_at"].is_string());
    // A join without a key is a web page's join.
    assert_eq!(
        join(&s, &pin(&s, &tech).await, None, None).await["type"],
        "ok"
    );

    // The wrong app identifier, a missing one, an unknown key: refused, the code still usable.
    let code = pin(&s, &tech).await;
    for (k, app, why) in [
        (
            key.as_str(),
            Some("com.example.other"),
            "another app identifier",
        ),
        (key.as_str(), None, "app identifier"),
        ("lk_not-a-key", Some("com.example.lens"), "unknown API key"),
    ] {
        let r = join(&s, &code, Some(k), app).await;
        assert_eq!(r["type"], "error", "{r}");
        assert_eq!(r["code"], "api_key_invalid");
        assert!(r["message"].as_str().unwrap().contains(why), "{r}");
    }

    // Edit the app identifier: the old one no longer matches.
    let edited = s
        .patch(
            &format!("/api/v1/api-keys/{id}"),
            &m,
            json!({"app_id": "com.example.lens2", "description": "Android app v2"}),
        )
        .await
        .expect(200);
    assert_eq!(edited["app_id"], "com.example.lens2");
    let r = join(&s, &code, Some(&key), Some("com.example.lens")).await;
    assert_eq!(r["code"], "api_key_invalid");

    // Disable: refused even with the right identifier.
    s.patch(
        &format!("/api/v1/api-keys/{id}"),
        &m,
        json!({"enabled": false}),
    )
    .await
    .expect(200);
    let r = join(&s, &code, Some(&key), Some("com.example.lens2")).await;
    assert_eq!(r["code"], "api_key_invalid");
    assert!(r["message"].as_str().unwrap().contains("disabled"), "{r}");
    // Enabled again, it works, and the code refused so far is still good.
    s.patch(
        &format!("/api/v1/api-keys/{id}"),
        &m,
        json!({"enabled": true}),
    )
    .await
    .expect(200);
    let ok = join(&s, &code, Some(&key), Some("com.example.lens2")).await;
    assert_eq!(ok["type"], "ok", "{ok}");
    let k = s
        .get(&format!("/api/v1/api-keys/{id}"), &m)
        .await
        .expect(200);
    assert_eq!(k["use_count"], 2);

    // Every change is audited.
    let audit = s
        .get(
            &format!("/api/v1/audit?entity_type=API%20Key&entity_id={id}"),
            &m,
        )
        .await
        .expect(200);
    let rows: Vec<(String, String)> = audit
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|r| {
            (
                r["change_type"].as_str().unwrap().to_string(),
                r["field"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let rows: Vec<(&str, &str)> = rows.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    assert_eq!(
        rows,
        [
            ("Add", "App identifier"),
            ("Add", "Description"),
            ("Change", "App identifier"),
            ("Change", "Description"),
            ("Change", "Enabled"),
            ("Change", "Enabled"),
        ]
    );
    let last = &audit[0];
    assert_eq!(last["old_action"], "Disabled");
    assert_eq!(last["new_action"], "Enabled");
    assert_eq!(last["entity_name"], "com.example.lens2");
}
