//! The CRM API with per-user API tokens: request a PIN code, read a session with its custom fields,
//! chat and timings, list sessions by time range and status; tokens are listed and revoked.

use crate::common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn crm_api_on_sqlite() {
    crm_api(start().await).await;
}

#[tokio::test]
async fn crm_api_on_postgres() {
    if let Some(s) = start_on(Backend::Postgres, |_| {}).await {
        crm_api(s).await;
    }
}

async fn crm_api(s: TestServer) {
    let (g, tech, login) = technician_with(&s, "cal@example.com", |doc| {
        doc["custom_fields"][0]["enabled"] = json!(true);
    })
    .await;
    let m = s.master().await;

    // A token for the CRM, shown once.
    let bad = s
        .post(
            "/api/v1/api-tokens",
            &login,
            json!({"name": "old", "expires_at": "2001-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(bad.status.as_u16(), 409);
    let created = s
        .post("/api/v1/api-tokens", &login, json!({"name": "CRM sync"}))
        .await
        .expect(201);
    let crm = created["token"].as_str().unwrap().to_string();
    let token_id = created["id"].as_i64().unwrap();
    assert!(crm.starts_with("lt_"), "{crm}");
    assert_eq!(created["user_id"], tech);

    // requestPINCode.
    let session = s
        .post(
            "/api/v1/sessions",
            &crm,
            json!({"method": "pin", "name": "Grace", "custom_fields": ["Router X2"], "tracking_id": "CRM-4711"}),
        )
        .await
        .expect(201);
    let id = session["id"].as_i64().unwrap();
    let pin = session["pin"].as_str().unwrap();

    // The session runs on the sockets.
    let (mut con, _) = console(&s, &login).await;
    let (mut cus, ok) = customer(&s, pin).await;
    assert_eq!(ok["type"], "ok", "{ok}");
    cus.request(json!({"type": "ready"})).await;
    con.session_status(id, "Waiting").await;
    con.request(json!({"type": "pickup", "session_id": id}))
        .await;
    cus.status("Active").await;
    cus.request(json!({"type": "chat", "text": "It blinks"}))
        .await;
    con.frame("chat", Some(id)).await;
    con.request(json!({"type": "end", "session_id": id})).await;
    cus.frame("ended", None).await;

    // Read it back with custom fields, chat and timings.
    let d = s
        .get(&format!("/api/v1/sessions/{id}"), &crm)
        .await
        .expect(200);
    assert_eq!(d["name"], "Grace");
    assert_eq!(d["custom_fields"][0], "Router X2");
    assert_eq!(d["tracking_id"], "CRM-4711");
    assert_eq!(d["status"], "Closed by technician");
    assert_eq!(d["chat"][0]["text"], "It blinks");
    let t = &d["timings"];
    assert!(t["waiting_seconds"].is_i64(), "{t}");
    assert!(
        t["pickup_time"].is_string() && t["closing_time"].is_string(),
        "{t}"
    );
    assert!(t["work_seconds"].is_i64() && t["hold_seconds"] == 0, "{t}");

    // List by time range and status.
    let now = chrono::Utc::now();
    let from = (now - chrono::Duration::hours(1)).to_rfc3339();
    let to = (now + chrono::Duration::hours(1)).to_rfc3339();
    let q = |from: &str, to: &str, status: &str| {
        format!(
            "/api/v1/sessions?from={}&to={}&status={}",
            urlencode(from),
            urlencode(to),
            urlencode(status)
        )
    };
    let listed = s
        .get(&q(&from, &to, "Closed by technician"), &crm)
        .await
        .expect(200);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["id"], id);
    let none = s.get(&q(&from, &to, "Waiting"), &crm).await.expect(200);
    assert_eq!(none, json!([]));
    let earlier = (now - chrono::Duration::hours(2)).to_rfc3339();
    let none = s
        .get(&q(&earlier, &from, "Closed by technician"), &crm)
        .await
        .expect(200);
    assert_eq!(none, json!([]));

    // The token is listed (without its value) with its last use; others cannot revoke it.
    let tokens = s.get("/api/v1/api-tokens", &crm).await.expect(200);
    assert_eq!(tokens.as_array().unwrap().len(), 1);
    assert!(tokens[0].get("token").is_none());
    assert!(tokens[0]["last_used_at"].is_string());
    s.create_user(&m, "technicians", "dan@example.com", Some(g))
        .await;
    let dan = s.token("dan@example.com", USER_PASSWORD).await;
    assert_eq!(
        s.delete(&format!("/api/v1/api-tokens/{token_id}"), &dan)
            .await
            .status
            .as_u16(),
        404
    );
    let r = s
        .get(&format!("/api/v1/api-tokens?user_id={tech}"), &dan)
        .await;
    assert_eq!(r.status.as_u16(), 403);
    let by_master = s
        .get(&format!("/api/v1/api-tokens?user_id={tech}"), &m)
        .await
        .expect(200);
    assert_eq!(by_master.as_array().unwrap().len(), 1);

    // Revoked: refused from then on; the login token is unaffected.
    s.delete(&format!("/api/v1/api-tokens/{token_id}"), &login)
        .await
        .expect(204);
    let r = s.get(&format!("/api/v1/sessions/{id}"), &crm).await;
    assert_eq!(r.status.as_u16(), 401);
    assert_eq!(r.error_code(), "unauthorized");
    s.get(&format!("/api/v1/sessions/{id}"), &login)
        .await
        .expect(200);
    let audit = s
        .get(
            &format!("/api/v1/audit?entity_type=API%20Token&entity_id={token_id}"),
            &m,
        )
        .await
        .expect(200);
    assert_eq!(audit.as_array().unwrap().len(), 2, "{audit}");

    // A disabled user's token stops working too.
    let second = s
        .post("/api/v1/api-tokens", &login, json!({"name": "second"}))
        .await
        .expect(201)["token"]
        .as_str()
        .unwrap()
        .to_string();
    s.get("/api/v1/sessions", &second).await.expect(200);
    s.patch(
        &format!("/api/v1/technicians/{tech}"),
        &m,
        json!({"enabled": false}),
    )
    .await
    .expect(200);
    assert_eq!(
        s.get("/api/v1/sessions", &second).await.status.as_u16(),
        401
    );

    // The OpenAPI document carries the integration routes with examples.
    let doc: serde_json::Value = s
        .http
        .get(format!("{}/api/v1/openapi.json", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/api/v1/api-tokens",
        "/api/v1/api-keys",
        "/api/v1/post-deliveries",
        "/api/v1/sessions",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    assert!(doc["components"]["schemas"]["SessionCreate"]["example"].is_object());
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
