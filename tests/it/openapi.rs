//! The OpenAPI document against the server: the authorization matrix it states (`security`,
//! `x-roles`, the "Who may call" line) is the one the server enforces, operation by operation and
//! role by role; and the shared error answers are the documented ones.

use crate::common;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};

/// Fills a path template with ids no object has, so that an allowed role reaches the handler's
/// lookup (404) and a refused one is stopped by the role check (403) before it.
fn concrete(path: &str) -> String {
    path.replace("{id}", "999999")
        .replace("{group_id}", "999999")
        .replace("{session_id}", "999999")
        .replace("{area}", "session")
}

#[tokio::test]
async fn every_operation_states_who_may_call_it_and_the_server_agrees() {
    let s = start().await;
    let m = s.master().await;
    let g = s.create_group(&m, "Support", None).await;
    let admin = s
        .create_user(&m, "administrators", "ada@example.com", None)
        .await;
    s.call(
        Method::PUT,
        &format!("/api/v1/administrators/{admin}/technician-groups/{g}"),
        Some(&m),
        None,
    )
    .await
    .expect(204);
    s.create_user(&m, "technicians", "tom@example.com", Some(g))
        .await;
    let doc = s
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await
        .expect(200);
    let roles_of = [
        ("master_administrator", MASTER_EMAIL, MASTER_PASSWORD),
        ("administrator", "ada@example.com", USER_PASSWORD),
        ("technician", "tom@example.com", USER_PASSWORD),
    ];
    let mut tokens = Vec::new();
    for (role, email, password) in roles_of {
        tokens.push((role, s.token(email, password).await));
    }
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let what = format!("{method} {path}");
            let roles: Vec<&str> = op["x-roles"]
                .as_array()
                .unwrap_or_else(|| panic!("{what}: no x-roles"))
                .iter()
                .map(|r| r.as_str().unwrap())
                .collect();
            let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
            assert_eq!(
                secured,
                !roles.is_empty(),
                "{what}: security and roles disagree"
            );
            assert!(
                op["description"]
                    .as_str()
                    .is_some_and(|d| d.contains("**Who may call:**")),
                "{what}: the description does not say who may call it"
            );
            if !secured {
                continue;
            }
            for status in ["401", "403", "500"] {
                assert!(
                    op["responses"].get(status).is_some(),
                    "{what}: {status} undocumented"
                );
            }
            let method: Method = method.to_uppercase().parse().unwrap();
            let url = concrete(path);
            let body = op
                .pointer("/requestBody/content/application~1json/example")
                .cloned();
            let anonymous = s.call(method.clone(), &url, None, body.clone()).await;
            assert_eq!(anonymous.status.as_u16(), 401, "anonymous {what}");
            for (role, token) in &tokens {
                // Logging out ends the login: each role logs out with a login of its own.
                let token = if op["operationId"] == "logout" {
                    let (_, email, password) = roles_of.iter().find(|(r, _, _)| r == role).unwrap();
                    s.token(email, password).await
                } else {
                    token.clone()
                };
                let r = s
                    .call(method.clone(), &url, Some(&token), body.clone())
                    .await;
                let refused = r.status.as_u16() == 403 && r.error_code() == "forbidden";
                if roles.contains(role) {
                    assert!(
                        !refused && r.status.as_u16() != 401,
                        "{role} may call {what} by the document, the server said {} {:?}",
                        r.status,
                        r.body
                    );
                } else {
                    assert!(
                        refused,
                        "{role} may not call {what} by the document, the server said {} {:?}",
                        r.status, r.body
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(
        checked > 150,
        "only {checked} role × operation pairs checked"
    );
}

/// The shared extractors answer the documented statuses and codes on every route: a parameter
/// that does not parse is 400 `invalid_parameter`, a body that is not JSON 400 `invalid_json`,
/// one that breaks the schema 422 `validation_failed`; a whole float is an integer.
#[tokio::test]
async fn parameter_and_body_failures_answer_one_status_and_code_everywhere() {
    let s = start().await;
    let m = s.master().await;
    for path in [
        "/api/v1/technicians/0.059",
        "/api/v1/technician-groups/x",
        "/api/v1/sessions/1e3",
        "/api/v1/api-keys/-",
        "/api/v1/sessions?limit=ten",
        "/api/v1/audit?entity_id=1.5",
    ] {
        let r = s.get(path, &m).await;
        assert_eq!(r.status.as_u16(), 400, "{path}: {:?}", r.body);
        assert_eq!(r.error_code(), "invalid_parameter", "{path}");
    }
    let r = s
        .raw(
            Method::POST,
            "/api/v1/technician-groups",
            Some(&m),
            "{not json",
            "application/json",
        )
        .await;
    assert_eq!((r.status.as_u16(), r.error_code()), (400, "invalid_json"));
    let r = s
        .raw(
            Method::POST,
            "/api/v1/technician-groups",
            Some(&m),
            r#"{"name": "x", "colour": "red"}"#,
            "application/json",
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), r.error_code()),
        (422, "validation_failed")
    );
    let g = s.create_group(&m, "Support", None).await;
    let r = s
        .post(
            "/api/v1/technicians",
            &m,
            json!({"name": "Tom", "email": "tom@example.com", "password": USER_PASSWORD,
                "group_id": g as f64}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 201, "{:?}", r.body);
    let r = s
        .post(
            "/api/v1/technicians",
            &m,
            json!({"name": "Tim", "email": "tim@example.com", "password": USER_PASSWORD,
                "group_id": g as f64 + 0.5}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 422, "{:?}", r.body);
}

/// Creating operations link to the operations that take the new id, groups to technicians to
/// sessions to reports.
#[tokio::test]
async fn creating_operations_link_to_the_operations_on_what_they_created() {
    let s = start().await;
    let doc: Value = s
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await
        .expect(200);
    let links = |path: &str| doc["paths"][path]["post"]["responses"]["201"]["links"].clone();
    let groups = links("/api/v1/technician-groups");
    assert_eq!(
        groups["CreateTechnicianInGroup"]["requestBody"]["group_id"],
        "$response.body#/id"
    );
    assert_eq!(
        links("/api/v1/technicians")["GetTechnician"]["operationId"],
        "get_technician"
    );
    let sessions = links("/api/v1/sessions");
    assert_eq!(
        sessions["GetSession"]["parameters"]["id"],
        "$response.body#/id"
    );
    assert_eq!(
        sessions["QueueChatlogDeletion"]["operationId"],
        "queue_chatlog_deletion"
    );
    // Every link names an operation of the document.
    let ids: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter_map(|op| op["operationId"].as_str())
        .collect();
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            for response in op["responses"].as_object().unwrap().values() {
                for link in response["links"]
                    .as_object()
                    .into_iter()
                    .flat_map(|l| l.values())
                {
                    let target = link["operationId"].as_str().unwrap();
                    assert!(ids.contains(&target), "link to unknown {target}");
                }
            }
        }
    }
}
