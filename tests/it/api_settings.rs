//! Technician group settings (save to group / subgroups / all groups), Global Settings, secrets,
//! the audit log, OpenAPI and metrics.

use crate::common;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};

/// A change to a settings document that makes it invalid.
type Mutation = Box<dyn Fn(&mut Value)>;

async fn settings(s: &TestServer, t: &str, g: i64) -> Value {
    s.get(&format!("/api/v1/technician-groups/{g}/settings"), t)
        .await
        .expect(200)
}

#[tokio::test]
async fn a_new_group_starts_from_its_parents_settings() {
    let s = start().await;
    let t = s.master().await;
    let parent = s.create_group(&t, "Parent", None).await;
    let mut doc = settings(&s, &t, parent).await;
    doc["audio"]["enabled"] = json!(false);
    doc["timeouts"]["waiting_minutes"] = json!(15);
    s.put(
        &format!("/api/v1/technician-groups/{parent}/settings"),
        &t,
        doc.clone(),
    )
    .await
    .expect(200);
    let child = s.create_group(&t, "Child", Some(parent)).await;
    assert_eq!(settings(&s, &t, child).await, doc);
    let top = s.create_group(&t, "Top", None).await;
    assert_eq!(
        settings(&s, &t, top).await["audio"]["enabled"],
        true,
        "a top-level group starts from the defaults"
    );
}

#[tokio::test]
async fn save_to_group_subgroups_and_all_groups() {
    let s = start().await;
    let t = s.master().await;
    let a = s.create_group(&t, "A", None).await;
    let a1 = s.create_group(&t, "A1", Some(a)).await;
    let a11 = s.create_group(&t, "A11", Some(a1)).await;
    let b = s.create_group(&t, "B", None).await;
    let mut doc = settings(&s, &t, a).await;
    doc["auto_start_private_sessions"] = json!(true);
    // Save changes: this group only.
    s.put(
        &format!("/api/v1/technician-groups/{a}/settings"),
        &t,
        doc.clone(),
    )
    .await
    .expect(200);
    assert_eq!(
        settings(&s, &t, a).await["auto_start_private_sessions"],
        true
    );
    assert_eq!(
        settings(&s, &t, a1).await["auto_start_private_sessions"],
        false
    );
    // Save changes to subgroups: the group and everything below it, not its siblings.
    doc["timeouts"]["active_idle_minutes"] = json!(30);
    s.put(
        &format!("/api/v1/technician-groups/{a}/settings?apply=subgroups"),
        &t,
        doc.clone(),
    )
    .await
    .expect(200);
    for g in [a, a1, a11] {
        let got = settings(&s, &t, g).await;
        assert_eq!(got["timeouts"]["active_idle_minutes"], 30, "group {g}");
        assert_eq!(got["auto_start_private_sessions"], true, "group {g}");
    }
    assert_eq!(
        settings(&s, &t, b).await["timeouts"]["active_idle_minutes"],
        0
    );
    // Save settings to all groups.
    doc["audio"]["enabled"] = json!(false);
    s.put(
        &format!("/api/v1/technician-groups/{a1}/settings?apply=all"),
        &t,
        doc.clone(),
    )
    .await
    .expect(200);
    for g in [a, a1, a11, b] {
        assert_eq!(settings(&s, &t, g).await, doc, "group {g}");
    }
    // An administrator's "all groups" means the groups it manages.
    let admin = s
        .create_user(&t, "administrators", "adm@example.com", None)
        .await;
    s.call(
        Method::PUT,
        &format!("/api/v1/administrators/{admin}/technician-groups/{b}"),
        Some(&t),
        None,
    )
    .await
    .expect(204);
    let at = s.token("adm@example.com", USER_PASSWORD).await;
    doc["audio"]["enabled"] = json!(true);
    s.put(
        &format!("/api/v1/technician-groups/{b}/settings?apply=all"),
        &at,
        doc.clone(),
    )
    .await
    .expect(200);
    assert_eq!(settings(&s, &t, b).await["audio"]["enabled"], true);
    assert_eq!(
        settings(&s, &t, a).await["audio"]["enabled"],
        false,
        "not managed: untouched"
    );
    // A bad apply value is refused.
    assert_eq!(
        s.put(
            &format!("/api/v1/technician-groups/{b}/settings?apply=everything"),
            &t,
            doc
        )
        .await
        .status,
        400
    );
}

#[tokio::test]
async fn invalid_settings_name_the_field_and_change_nothing() {
    let s = start().await;
    let t = s.master().await;
    let g = s.create_group(&t, "G", None).await;
    let before = settings(&s, &t, g).await;
    let cases: Vec<(&str, Mutation)> = vec![
        (
            "timeouts.waiting_minutes",
            Box::new(|d| d["timeouts"]["waiting_minutes"] = json!(1000)),
        ),
        (
            "timeouts.active_idle_minutes",
            Box::new(|d| d["timeouts"]["active_idle_minutes"] = json!(5000)),
        ),
        (
            "custom_fields[1]",
            Box::new(|d| {
                d["custom_fields"][1]["kind"] = json!("drop_down");
                d["custom_fields"][1]["choices"] = json!([]);
            }),
        ),
        (
            "screen_recording",
            Box::new(|d| d["screen_recording"]["forced"] = json!(true)),
        ),
        (
            "customer_survey",
            Box::new(|d| d["customer_survey"]["mode"] = json!("self_hosted")),
        ),
        (
            "no_technician_available",
            Box::new(|d| d["no_technician_available"]["behavior"] = json!("abort_and_show_url")),
        ),
    ];
    for (field, mutate) in cases {
        let mut doc = before.clone();
        mutate(&mut doc);
        let r = s
            .put(&format!("/api/v1/technician-groups/{g}/settings"), &t, doc)
            .await;
        assert_eq!(r.status, 422, "{field}: {:?}", r.body);
        let msg = r.body["error"]["message"].as_str().unwrap();
        assert!(msg.starts_with(field), "{field}: {msg}");
    }
    // Over-long text and unknown fields.
    let mut doc = before.clone();
    doc["connection_methods"]["connection_email_subject"] = json!("s".repeat(300));
    assert_eq!(
        s.put(&format!("/api/v1/technician-groups/{g}/settings"), &t, doc)
            .await
            .status,
        422
    );
    let mut doc = before.clone();
    doc["audio"]["volume"] = json!(11);
    assert_eq!(
        s.put(&format!("/api/v1/technician-groups/{g}/settings"), &t, doc)
            .await
            .status,
        422
    );
    assert_eq!(settings(&s, &t, g).await, before);
}

#[tokio::test]
async fn recording_credentials_are_never_returned_nor_audited_in_clear() {
    let s = start().await;
    let t = s.master().await;
    let g = s.create_group(&t, "Rec", None).await;
    let mut doc = settings(&s, &t, g).await;
    doc["screen_recording"] = json!({"forced": true, "location": "ftp://rec:TopSecret-42@127.0.0.1:2121/lens", "deferred_upload": false});
    let saved = s
        .put(&format!("/api/v1/technician-groups/{g}/settings"), &t, doc)
        .await
        .expect(200);
    let shown = saved["screen_recording"]["location"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!shown.contains("TopSecret-42"), "{shown}");
    assert!(
        shown.contains("rec:") && shown.contains("127.0.0.1:2121/lens"),
        "{shown}"
    );
    let read = settings(&s, &t, g).await;
    assert!(!read.to_string().contains("TopSecret-42"));
    // Sending the masked form back keeps the stored secret.
    let mut again = read.clone();
    again["audio"]["enabled"] = json!(false);
    s.put(
        &format!("/api/v1/technician-groups/{g}/settings"),
        &t,
        again,
    )
    .await
    .expect(200);
    let stored = s.state.store.group_settings_json(g).await.unwrap().unwrap();
    assert!(
        stored.contains("TopSecret-42"),
        "the secret is kept in the store"
    );
    let audit = s.get("/api/v1/audit?limit=1000", &t).await.expect(200);
    assert!(
        !audit.to_string().contains("TopSecret-42"),
        "no secret in the audit log"
    );
    let location_rows: Vec<&Value> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["section"] == "Screen Recording")
        .collect();
    assert!(!location_rows.is_empty());
}

#[tokio::test]
async fn global_settings_are_for_master_administrators_and_hide_the_sso_password() {
    let s = start().await;
    let t = s.master().await;
    let mut g = s.get("/api/v1/global-settings", &t).await.expect(200);
    assert_eq!(g["custom_field_names"]["name_field"], "Name");
    assert_eq!(g["single_sign_on"]["master_sso_password_set"], false);
    g["custom_field_names"]["name_field"] = json!("Employee ID");
    g["do_not_store_customer_ip"] = json!(true);
    let sso = g["single_sign_on"].as_object_mut().unwrap();
    sso.remove("master_sso_password_set");
    sso.insert("master_sso_password".into(), json!("Sso-Secret-77"));
    // The read-only `api` part is an object (or absent); serde alone would take an array of
    // its fields for a struct, which the document does not allow.
    let mut as_array = g.clone();
    as_array["api"] = json!([null, null]);
    let refused = s.put("/api/v1/global-settings", &t, as_array).await;
    assert_eq!(refused.status.as_u16(), 422, "{}", refused.body);
    let saved = s.put("/api/v1/global-settings", &t, g).await.expect(200);
    assert_eq!(saved["single_sign_on"]["master_sso_password_set"], true);
    assert!(!saved.to_string().contains("Sso-Secret-77"));
    let stored = s.state.store.global_settings_json().await.unwrap().unwrap();
    assert!(!stored.contains("Sso-Secret-77"), "only a hash is stored");
    assert!(stored.contains("$argon2id$"));
    let audit = s.get("/api/v1/audit?limit=1000", &t).await.expect(200);
    assert!(!audit.to_string().contains("Sso-Secret-77"));
    let sso_row = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["section"] == "Single Sign-On")
        .expect("an SSO audit row");
    assert_eq!(sso_row["new_action"], "Set");
    let names = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["new_value"] == "Employee ID")
        .expect("custom field name row");
    assert_eq!(names["old_value"], "Name");
    assert_eq!(names["change_type"], "Change");
}

#[tokio::test]
async fn the_audit_log_records_add_move_change_assign_unassign_delete() {
    let s = start().await;
    let t = s.master().await;
    let a = s.create_group(&t, "A", None).await;
    let b = s.create_group(&t, "B", None).await;
    let tech = s
        .create_user(&t, "technicians", "aud@example.com", Some(a))
        .await;
    s.patch(
        &format!("/api/v1/technicians/{tech}"),
        &t,
        json!({"group_id": b}),
    )
    .await
    .expect(200);
    s.patch(
        &format!("/api/v1/technicians/{tech}"),
        &t,
        json!({"name": "Renamed", "enabled": false, "password": "Sample1%"}),
    )
    .await
    .expect(200);
    let admin = s
        .create_user(&t, "administrators", "aud-admin@example.com", None)
        .await;
    s.call(
        Method::PUT,
        &format!("/api/v1/administrators/{admin}/technician-groups/{a}"),
        Some(&t),
        None,
    )
    .await
    .expect(204);
    s.call(
        Method::DELETE,
        &format!("/api/v1/administrators/{admin}/technician-groups/{a}"),
        Some(&t),
        None,
    )
    .await
    .expect(204);
    let mut doc = settings(&s, &t, a).await;
    doc["audio"]["enabled"] = json!(false);
    s.put(&format!("/api/v1/technician-groups/{a}/settings"), &t, doc)
        .await
        .expect(200);
    s.delete(&format!("/api/v1/technicians/{tech}"), &t)
        .await
        .expect(204);

    let rows = s
        .get(
            &format!("/api/v1/audit?entity_type=Technician&entity_id={tech}"),
            &t,
        )
        .await
        .expect(200);
    let rows = rows.as_array().unwrap();
    let find = |change: &str, field: &str| {
        rows.iter()
            .find(|r| r["change_type"] == change && r["field"] == field)
            .cloned()
    };
    let add = find("Add", "Name").expect("Add");
    assert_eq!(add["requested_by"], MASTER_EMAIL.split('@').next().unwrap());
    assert_eq!(add["entity_name"], "aud");
    let mv = find("Move", "Group").expect("Move");
    assert_eq!(
        (mv["old_value"].as_str(), mv["new_value"].as_str()),
        (Some("A"), Some("B"))
    );
    let name = find("Change", "Name").expect("Change name");
    assert_eq!(
        (name["old_value"].as_str(), name["new_value"].as_str()),
        (Some("aud"), Some("Renamed"))
    );
    let status = find("Change", "Status").expect("Change status");
    assert_eq!(
        (status["old_action"].as_str(), status["new_action"].as_str()),
        (Some("Enabled"), Some("Disabled"))
    );
    let pw = find("Change", "Password").expect("password row");
    assert_eq!(pw["new_action"], "Set");
    assert!(pw["new_value"].is_null());
    find("Delete", "Name").expect("Delete");
    let links = s
        .get(
            &format!("/api/v1/audit?entity_type=Administrator%20link&entity_id={admin}"),
            &t,
        )
        .await
        .expect(200);
    let kinds: Vec<&str> = links
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["change_type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["Unassign", "Assign"]);
    let group_rows = s
        .get(
            &format!("/api/v1/audit?entity_type=Technician%20Group&entity_id={a}"),
            &t,
        )
        .await
        .expect(200);
    let audio = group_rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["section"] == "Rescue Lens")
        .expect("settings change row");
    assert_eq!(audio["field"], "Enable audio");
    assert!(audio["at"].as_i64().unwrap() > 0);
    // A bad request changes nothing and writes no audit row.
    let count = s
        .get("/api/v1/audit?limit=1000", &t)
        .await
        .expect(200)
        .as_array()
        .unwrap()
        .len();
    s.patch(
        &format!("/api/v1/technician-groups/{a}"),
        &t,
        json!({"name": ""}),
    )
    .await;
    assert_eq!(
        s.get("/api/v1/audit?limit=1000", &t)
            .await
            .expect(200)
            .as_array()
            .unwrap()
            .len(),
        count
    );
}

/// The OpenAPI document is generated from the code and lists every route of the API.
#[tokio::test]
async fn openapi_lists_every_route() {
    let s = start().await;
    let doc = s
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await
        .expect(200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let expected: &[(&str, &[&str])] = &[
        ("/healthz", &["get"]),
        ("/api/v1/auth/login", &["post"]),
        ("/api/v1/auth/logout", &["post"]),
        ("/api/v1/auth/password", &["post"]),
        ("/api/v1/auth/me", &["get"]),
        ("/api/v1/org", &["get"]),
        ("/api/v1/audit", &["get"]),
        ("/api/v1/global-settings", &["get", "put"]),
        ("/api/v1/technician-groups/{id}/settings", &["get", "put"]),
        (
            "/api/v1/administrators/{id}/technician-groups/{group_id}",
            &["put", "delete"],
        ),
        ("/api/v1/reports/{area}", &["get"]),
        (
            "/api/v1/chatlog-deletions/{session_id}",
            &["post", "delete"],
        ),
    ];
    for (path, methods) in expected {
        for m in *methods {
            assert!(
                paths.get(*path).and_then(|p| p.get(*m)).is_some(),
                "{m} {path} missing"
            );
        }
    }
    for family in [
        "master-administrators",
        "administrators",
        "administrator-groups",
        "technician-groups",
        "technicians",
    ] {
        let list = &paths[&format!("/api/v1/{family}")];
        assert!(
            list.get("get").is_some() && list.get("post").is_some(),
            "{family}"
        );
        let one = &paths[&format!("/api/v1/{family}/{{id}}")];
        for m in ["get", "patch", "delete"] {
            assert!(one.get(m).is_some(), "{m} {family}/{{id}}");
        }
    }
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status() {
    let s = start().await;
    let t = s.master().await;
    s.get("/api/v1/technicians/424242", &t).await;
    let text = s.metrics().await;
    assert!(text.contains(r#"lens_http_requests_total{method="GET",route="/api/v1/technicians/{id}",status="404"} 1"#), "{text}");
    assert!(text.contains("lens_http_request_duration_seconds_bucket"));
    assert!(text.contains(r#"lens_login_attempts_total{outcome="ok"}"#));
}

/// A screen recording location the recorder cannot read is refused when the settings are saved
/// (422, `validation_failed`, naming the field), and nothing stored changes — for the group and,
/// with `apply=all`, for every group.
#[tokio::test]
async fn a_recording_location_that_does_not_parse_is_refused_when_saved() {
    let mounts = tempfile::tempdir().unwrap();
    let s = start().await;
    let t = s.master().await;
    let g = s.create_group(&t, "Rec", None).await;
    let other = s.create_group(&t, "Other", None).await;
    let path = format!("/api/v1/technician-groups/{g}/settings");
    let mut doc = settings(&s, &t, g).await;
    doc["screen_recording"] =
        json!({"forced": true, "location": "/srv/recordings", "deferred_upload": false});
    s.put(&path, &t, doc).await.expect(200);
    let before = settings(&s, &t, g).await;
    let other_before = settings(&s, &t, other).await;
    for bad in [
        "recordings",
        "./rec",
        "/srv/../etc",
        "C:\\recordings",
        "sftp://host/rec",
        "file:///srv/rec",
        "ftp://",
        "http//host/rec",
        "https://exa mple.com/rec",
        "ftp://u:********@host/rec",
        "\\\\host",
        // This server has no recording.network_mount_root: a network path cannot be written.
        "\\\\fileserver\\recordings",
    ] {
        for apply in ["", "?apply=all"] {
            let mut d = before.clone();
            d["screen_recording"]["location"] = json!(bad);
            let r = s.put(&format!("{path}{apply}"), &t, d).await;
            assert_eq!(r.status, 422, "{bad}: {:?}", r.body);
            assert_eq!(r.error_code(), "validation_failed", "{bad}");
            let message = r.body["error"]["message"].as_str().unwrap();
            assert!(
                message.starts_with("screen_recording.location: "),
                "{bad}: {message}"
            );
            assert_eq!(settings(&s, &t, g).await, before, "{bad}");
            assert_eq!(settings(&s, &t, other).await, other_before, "{bad}");
        }
    }

    // With the folder where shares are mounted configured, the network path is fine.
    let s = start_on(Backend::Sqlite, |c| {
        c.recording.network_mount_root = mounts.path().to_str().unwrap().into();
    })
    .await
    .unwrap();
    let t = s.master().await;
    let g = s.create_group(&t, "Rec", None).await;
    let mut doc = settings(&s, &t, g).await;
    doc["screen_recording"] =
        json!({"forced": true, "location": "\\\\fileserver\\recordings", "deferred_upload": false});
    let saved = s
        .put(&format!("/api/v1/technician-groups/{g}/settings"), &t, doc)
        .await
        .expect(200);
    assert_eq!(
        saved["screen_recording"]["location"],
        "\\\\fileserver\\recordings"
    );
}
