//! The console's form routes: the create-session form follows the technician's group settings and
//! Global Settings' field names; transfer targets are the enabled technicians and groups.

use crate::common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn the_session_form_follows_the_groups_settings_and_the_field_names() {
    let s = start().await;
    let (group, _, token) = technician_with(&s, "form@example.com", |d| {
        d["audio"]["enabled"] = json!(true);
        d["connection_methods"]["sms"] = json!(false);
        d["connection_methods"]["link"] = json!(true);
        d["connection_methods"]["email_via_servers"] = json!(false);
        d["connection_methods"]["email_via_default_client"] = json!(true);
        d["custom_fields"][0] =
            json!({"enabled": true, "mandatory": true, "kind": "open_text", "choices": []});
        d["custom_fields"][2] = json!({"enabled": true, "mandatory": false, "kind": "drop_down", "choices": ["Router", "Modem"]});
    })
    .await;
    let master = s.master().await;
    s.change_global_settings(&master, |g| {
        g["custom_field_names"]["name_field"] = json!("Customer");
        g["custom_field_names"]["custom_fields"][2] = json!("Device");
    })
    .await;

    let form = s
        .get("/api/v1/console/session-form", &token)
        .await
        .expect(200);
    assert_eq!(form["group_id"], group);
    assert_eq!(form["audio"], true);
    assert_eq!(form["methods"], json!(["pin", "link", "email"]), "{form}");
    assert_eq!(form["email_via"], json!(["default_client"]), "{form}");
    assert_eq!(form["name_label"], "Customer");
    let fields = form["custom_fields"].as_array().unwrap();
    assert_eq!(fields.len(), 2, "{form}");
    assert_eq!(fields[0]["index"], 1);
    assert_eq!(fields[0]["mandatory"], true);
    assert_eq!(fields[1]["index"], 3);
    assert_eq!(fields[1]["label"], "Device");
    assert_eq!(fields[1]["kind"], "drop_down");
    assert_eq!(fields[1]["choices"], json!(["Router", "Modem"]));

    // Administrators have no console.
    let r = s.get("/api/v1/console/session-form", &master).await;
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn transfer_targets_are_the_enabled_technicians_and_groups() {
    let s = start().await;
    let (group, me, token) = technician_with(&s, "me@example.com", |_| {}).await;
    let master = s.master().await;
    let other = s
        .create_user(&master, "technicians", "other@example.com", Some(group))
        .await;
    let gone = s
        .create_user(&master, "technicians", "gone@example.com", Some(group))
        .await;
    s.patch(
        &format!("/api/v1/technicians/{gone}"),
        &master,
        json!({"enabled": false}),
    )
    .await
    .expect(200);
    let off = s.create_group(&master, "Closed desk", None).await;
    s.patch(
        &format!("/api/v1/technician-groups/{off}"),
        &master,
        json!({"enabled": false}),
    )
    .await
    .expect(200);

    let targets = s
        .get("/api/v1/console/transfer-targets", &token)
        .await
        .expect(200);
    let ids = |list: &str| -> Vec<i64> {
        targets[list]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(ids("technicians"), vec![other], "{targets}");
    assert!(!ids("technicians").contains(&me));
    assert_eq!(ids("groups"), vec![group], "{targets}");
}
