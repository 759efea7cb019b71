//! The organization tree, its members and the permission matrix, over real HTTP on a real store.

use crate::common;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn the_readme_tour_works() {
    let s = start().await;
    let token = s.master().await;
    let group = s
        .post(
            "/api/v1/technician-groups",
            &token,
            json!({"name": "Field Support", "description": "Phones"}),
        )
        .await
        .expect(201);
    let gid = group["id"].as_i64().unwrap();
    let mut settings = s
        .get(&format!("/api/v1/technician-groups/{gid}/settings"), &token)
        .await
        .expect(200);
    settings["audio"]["enabled"] = json!(true);
    s.put(
        &format!("/api/v1/technician-groups/{gid}/settings"),
        &token,
        settings,
    )
    .await
    .expect(200);
    let tech = s
        .post(
            "/api/v1/technicians",
            &token,
            json!({"name": "Ada Lovelace", "nickname": "Ada", "email": "ada@example.com", "password": "Sample1%", "group_id": gid}),
        )
        .await
        .expect(201);
    assert_eq!(tech["nickname"], "Ada");
    let tree = s.get("/api/v1/org", &token).await.expect(200);
    let roots = tree["roots"].as_array().unwrap();
    assert_eq!(roots.len(), 3);
    assert_eq!(roots[0]["name"], "Master Administrators");
    assert_eq!(roots[0]["children"][0]["email"], MASTER_EMAIL);
    let techs = &roots[2];
    assert_eq!(techs["children"][0]["name"], "Field Support");
    assert_eq!(techs["children"][0]["children"][0]["name"], "Ada Lovelace");
    assert_eq!(techs["children"][0]["children"][0]["kind"], "technician");
}

#[tokio::test]
async fn groups_nest_and_move_and_the_tree_follows() {
    let s = start().await;
    let t = s.master().await;
    let a = s.create_group(&t, "A", None).await;
    let b = s.create_group(&t, "B", Some(a)).await;
    let c = s.create_group(&t, "C", None).await;
    // Move B under C.
    s.patch(
        &format!("/api/v1/technician-groups/{b}"),
        &t,
        json!({"parent_id": c}),
    )
    .await
    .expect(200);
    // A group cannot move under its own subgroup: a conflict with the tree as it is.
    let r = s
        .patch(
            &format!("/api/v1/technician-groups/{c}"),
            &t,
            json!({"parent_id": b}),
        )
        .await;
    assert_eq!(r.status, 409, "{:?}", r.body);
    // To the top level.
    let moved = s
        .patch(
            &format!("/api/v1/technician-groups/{b}"),
            &t,
            json!({"parent_id": null}),
        )
        .await
        .expect(200);
    assert_eq!(moved["parent_id"], Value::Null);
    // Technician moves between groups.
    let tech = s
        .create_user(&t, "technicians", "t@example.com", Some(a))
        .await;
    let moved = s
        .patch(
            &format!("/api/v1/technicians/{tech}"),
            &t,
            json!({"group_id": c}),
        )
        .await
        .expect(200);
    assert_eq!(moved["group_id"], c);
    // A technician cannot leave every group.
    let r = s
        .patch(
            &format!("/api/v1/technicians/{tech}"),
            &t,
            json!({"group_id": null}),
        )
        .await;
    assert_eq!(r.status, 422);
    // Administrator groups nest too, and administrators move into them.
    let ag = s
        .post(
            "/api/v1/administrator-groups",
            &t,
            json!({"name": "Supervisors"}),
        )
        .await
        .expect(201);
    let ag = ag["id"].as_i64().unwrap();
    let ag2 = s
        .post(
            "/api/v1/administrator-groups",
            &t,
            json!({"name": "Night", "parent_id": ag}),
        )
        .await
        .expect(201);
    let admin = s
        .create_user(&t, "administrators", "boss@example.com", None)
        .await;
    s.patch(
        &format!("/api/v1/administrators/{admin}"),
        &t,
        json!({"group_id": ag2["id"]}),
    )
    .await
    .expect(200);
    // An administrator cannot go into a technician group, a technician not into an administrator
    // group: for each, the other kind's id names no group at all.
    assert_eq!(
        s.patch(
            &format!("/api/v1/administrators/{admin}"),
            &t,
            json!({"group_id": a})
        )
        .await
        .status,
        404
    );
    assert_eq!(
        s.patch(
            &format!("/api/v1/technicians/{tech}"),
            &t,
            json!({"group_id": ag})
        )
        .await
        .status,
        404
    );
    let tree = s.get("/api/v1/org", &t).await.expect(200);
    let admins = &tree["roots"][1]["children"][0];
    assert_eq!(admins["name"], "Supervisors");
    assert_eq!(admins["children"][0]["name"], "Night");
    assert_eq!(
        admins["children"][0]["children"][0]["email"],
        "boss@example.com"
    );
}

#[tokio::test]
async fn search_finds_by_name_or_email_with_ancestors() {
    let s = start().await;
    let t = s.master().await;
    let a = s.create_group(&t, "Alpha", None).await;
    let b = s.create_group(&t, "Beta", Some(a)).await;
    s.create_user(&t, "technicians", "zelda@example.com", Some(b))
        .await;
    s.create_user(&t, "technicians", "link@example.com", Some(a))
        .await;
    let tree = s.get("/api/v1/org?q=ZELDA", &t).await.expect(200);
    let techs = &tree["roots"][2]["children"];
    assert_eq!(techs.as_array().unwrap().len(), 1);
    assert_eq!(techs[0]["name"], "Alpha");
    let alpha_kids = techs[0]["children"].as_array().unwrap();
    assert_eq!(
        alpha_kids.len(),
        1,
        "only the path to the match: {alpha_kids:?}"
    );
    assert_eq!(alpha_kids[0]["name"], "Beta");
    assert_eq!(alpha_kids[0]["children"][0]["email"], "zelda@example.com");
    assert!(tree["roots"][0]["children"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn emails_are_unique_case_insensitively_and_freed_by_delete() {
    let s = start().await;
    let t = s.master().await;
    let g = s.create_group(&t, "G", None).await;
    let id = s
        .create_user(&t, "technicians", "Same@Example.com", Some(g))
        .await;
    let r = s
        .post("/api/v1/technicians", &t, json!({"name": "x", "email": "same@example.COM", "password": USER_PASSWORD, "group_id": g}))
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(r.error_code(), "email_taken");
    // Login is case-insensitive too.
    s.token("SAME@example.com", USER_PASSWORD).await;
    s.delete(&format!("/api/v1/technicians/{id}"), &t)
        .await
        .expect(204);
    assert_eq!(
        s.get(&format!("/api/v1/technicians/{id}"), &t).await.status,
        404
    );
    assert_eq!(s.login("same@example.com", USER_PASSWORD).await.status, 401);
    s.create_user(&t, "technicians", "same@example.com", Some(g))
        .await;
}

#[tokio::test]
async fn deleting_a_group_with_members_is_refused_and_loses_nothing() {
    let s = start().await;
    let t = s.master().await;
    let g = s.create_group(&t, "G", None).await;
    let sub = s.create_group(&t, "Sub", Some(g)).await;
    let tech = s
        .create_user(&t, "technicians", "m@example.com", Some(sub))
        .await;
    let r = s
        .delete(&format!("/api/v1/technician-groups/{g}"), &t)
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(r.error_code(), "group_not_empty");
    let r = s
        .delete(&format!("/api/v1/technician-groups/{sub}"), &t)
        .await;
    assert_eq!(r.error_code(), "group_not_empty");
    s.get(&format!("/api/v1/technicians/{tech}"), &t)
        .await
        .expect(200);
    s.delete(&format!("/api/v1/technicians/{tech}"), &t)
        .await
        .expect(204);
    s.delete(&format!("/api/v1/technician-groups/{sub}"), &t)
        .await
        .expect(204);
    s.delete(&format!("/api/v1/technician-groups/{g}"), &t)
        .await
        .expect(204);
}

#[tokio::test]
async fn the_last_master_administrator_stays() {
    let s = start().await;
    let t = s.master().await;
    let me = s.get("/api/v1/auth/me", &t).await.expect(200);
    let id = me["id"].as_i64().unwrap();
    assert_eq!(
        s.delete(&format!("/api/v1/master-administrators/{id}"), &t)
            .await
            .status,
        409
    );
    assert_eq!(
        s.patch(
            &format!("/api/v1/master-administrators/{id}"),
            &t,
            json!({"enabled": false})
        )
        .await
        .status,
        409
    );
    let other = s
        .create_user(&t, "master-administrators", "m2@example.com", None)
        .await;
    s.delete(&format!("/api/v1/master-administrators/{other}"), &t)
        .await
        .expect(204);
}

#[tokio::test]
async fn disabled_users_and_groups_cannot_log_in_and_lose_their_tokens() {
    let s = start().await;
    let t = s.master().await;
    let g = s.create_group(&t, "G", None).await;
    let tech = s
        .create_user(&t, "technicians", "d@example.com", Some(g))
        .await;
    let tt = s.token("d@example.com", USER_PASSWORD).await;
    s.get("/api/v1/auth/me", &tt).await.expect(200);
    s.patch(
        &format!("/api/v1/technicians/{tech}"),
        &t,
        json!({"enabled": false}),
    )
    .await
    .expect(200);
    assert_eq!(s.get("/api/v1/auth/me", &tt).await.status, 401);
    let r = s.login("d@example.com", USER_PASSWORD).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.error_code(), "account_disabled");
    s.patch(
        &format!("/api/v1/technicians/{tech}"),
        &t,
        json!({"enabled": true}),
    )
    .await
    .expect(200);
    s.token("d@example.com", USER_PASSWORD).await;
    s.patch(
        &format!("/api/v1/technician-groups/{g}"),
        &t,
        json!({"enabled": false}),
    )
    .await
    .expect(200);
    assert_eq!(
        s.login("d@example.com", USER_PASSWORD).await.error_code(),
        "account_disabled"
    );
}

/// Every admin route × every role: master administrators everywhere; administrators only on their
/// assigned groups, their subgroups and their technicians; technicians nowhere.
#[tokio::test]
async fn permission_matrix() {
    let s = start().await;
    let m = s.master().await;
    let mine = s.create_group(&m, "Mine", None).await;
    let mine_sub = s.create_group(&m, "Mine/Sub", Some(mine)).await;
    let other = s.create_group(&m, "Other", None).await;
    let my_tech = s
        .create_user(&m, "technicians", "mytech@example.com", Some(mine_sub))
        .await;
    let other_tech = s
        .create_user(&m, "technicians", "othertech@example.com", Some(other))
        .await;
    let admin = s
        .create_user(&m, "administrators", "admin@example.com", None)
        .await;
    let other_admin = s
        .create_user(&m, "administrators", "admin2@example.com", None)
        .await;
    let ag = s
        .post("/api/v1/administrator-groups", &m, json!({"name": "AG"}))
        .await
        .expect(201)["id"]
        .as_i64()
        .unwrap();
    s.call(
        Method::PUT,
        &format!("/api/v1/administrators/{admin}/technician-groups/{mine}"),
        Some(&m),
        None,
    )
    .await
    .expect(204);
    let a = s.token("admin@example.com", USER_PASSWORD).await;
    let tech = s.token("mytech@example.com", USER_PASSWORD).await;

    struct Case {
        method: Method,
        path: String,
        body: Option<Value>,
        master: u16,
        admin: u16,
    }
    let case = |method: Method, path: String, body: Option<Value>, master: u16, admin: u16| Case {
        method,
        path,
        body,
        master,
        admin,
    };
    let new_tech = |email: &str, group: i64| {
        Some(json!({"name": "n", "email": email, "password": USER_PASSWORD, "group_id": group}))
    };
    let cases = vec![
        case(Method::GET, "/api/v1/org".into(), None, 200, 200),
        case(
            Method::GET,
            "/api/v1/technician-groups".into(),
            None,
            200,
            200,
        ),
        case(
            Method::GET,
            format!("/api/v1/technician-groups/{mine_sub}"),
            None,
            200,
            200,
        ),
        case(
            Method::GET,
            format!("/api/v1/technician-groups/{other}"),
            None,
            200,
            404,
        ),
        case(
            Method::POST,
            "/api/v1/technician-groups".into(),
            Some(json!({"name": "x", "parent_id": mine})),
            201,
            201,
        ),
        case(
            Method::POST,
            "/api/v1/technician-groups".into(),
            Some(json!({"name": "x", "parent_id": other})),
            201,
            403,
        ),
        case(
            Method::POST,
            "/api/v1/technician-groups".into(),
            Some(json!({"name": "top"})),
            201,
            403,
        ),
        case(
            Method::PATCH,
            format!("/api/v1/technician-groups/{mine_sub}"),
            Some(json!({"description": "d"})),
            200,
            200,
        ),
        case(
            Method::PATCH,
            format!("/api/v1/technician-groups/{other}"),
            Some(json!({"description": "d"})),
            200,
            404,
        ),
        case(
            Method::GET,
            format!("/api/v1/technician-groups/{mine}/settings"),
            None,
            200,
            200,
        ),
        case(
            Method::GET,
            format!("/api/v1/technician-groups/{other}/settings"),
            None,
            200,
            404,
        ),
        case(Method::GET, "/api/v1/technicians".into(), None, 200, 200),
        case(
            Method::GET,
            format!("/api/v1/technicians/{my_tech}"),
            None,
            200,
            200,
        ),
        case(
            Method::GET,
            format!("/api/v1/technicians/{other_tech}"),
            None,
            200,
            404,
        ),
        case(
            Method::POST,
            "/api/v1/technicians".into(),
            new_tech("n1@example.com", mine_sub),
            201,
            201,
        ),
        case(
            Method::POST,
            "/api/v1/technicians".into(),
            new_tech("n2@example.com", other),
            201,
            403,
        ),
        case(
            Method::PATCH,
            format!("/api/v1/technicians/{my_tech}"),
            Some(json!({"description": "d"})),
            200,
            200,
        ),
        case(
            Method::PATCH,
            format!("/api/v1/technicians/{my_tech}"),
            Some(json!({"group_id": other})),
            200,
            403,
        ),
        case(
            Method::PATCH,
            format!("/api/v1/technicians/{other_tech}"),
            Some(json!({"description": "d"})),
            200,
            404,
        ),
        case(Method::GET, "/api/v1/administrators".into(), None, 200, 403),
        case(
            Method::GET,
            format!("/api/v1/administrators/{other_admin}"),
            None,
            200,
            403,
        ),
        case(
            Method::POST,
            "/api/v1/administrators".into(),
            Some(json!({"name": "a", "email": "a3@example.com", "password": USER_PASSWORD})),
            201,
            403,
        ),
        case(
            Method::PATCH,
            format!("/api/v1/administrators/{other_admin}"),
            Some(json!({"description": "d"})),
            200,
            403,
        ),
        case(
            Method::PUT,
            format!("/api/v1/administrators/{other_admin}/technician-groups/{mine}"),
            None,
            204,
            403,
        ),
        case(
            Method::DELETE,
            format!("/api/v1/administrators/{other_admin}/technician-groups/{mine}"),
            None,
            204,
            403,
        ),
        case(
            Method::GET,
            "/api/v1/administrator-groups".into(),
            None,
            200,
            403,
        ),
        case(
            Method::GET,
            format!("/api/v1/administrator-groups/{ag}"),
            None,
            200,
            403,
        ),
        case(
            Method::POST,
            "/api/v1/administrator-groups".into(),
            Some(json!({"name": "x"})),
            201,
            403,
        ),
        case(
            Method::PATCH,
            format!("/api/v1/administrator-groups/{ag}"),
            Some(json!({"description": "d"})),
            200,
            403,
        ),
        case(
            Method::GET,
            "/api/v1/master-administrators".into(),
            None,
            200,
            403,
        ),
        case(
            Method::POST,
            "/api/v1/master-administrators".into(),
            Some(json!({"name": "m", "email": "m9@example.com", "password": USER_PASSWORD})),
            201,
            403,
        ),
        case(
            Method::GET,
            "/api/v1/global-settings".into(),
            None,
            200,
            403,
        ),
        case(Method::GET, "/api/v1/audit".into(), None, 200, 403),
    ];
    for c in &cases {
        // Technicians have no admin API at all.
        let r = s
            .call(c.method.clone(), &c.path, Some(&tech), c.body.clone())
            .await;
        assert_eq!(
            r.status, 403,
            "technician {} {}: {:?}",
            c.method, c.path, r.body
        );
        let r = s
            .call(c.method.clone(), &c.path, Some(&a), c.body.clone())
            .await;
        assert_eq!(
            r.status, c.admin,
            "administrator {} {}: {:?}",
            c.method, c.path, r.body
        );
        // No token at all.
        let r = s
            .call(c.method.clone(), &c.path, None, c.body.clone())
            .await;
        assert_eq!(r.status, 401, "anonymous {} {}", c.method, c.path);
    }
    // Deletes: an administrator deletes its own technician, not another's; a technician none.
    let doomed = s
        .create_user(&m, "technicians", "doomed@example.com", Some(mine_sub))
        .await;
    assert_eq!(
        s.delete(&format!("/api/v1/technicians/{doomed}"), &tech)
            .await
            .status,
        403
    );
    assert_eq!(
        s.delete(&format!("/api/v1/technicians/{other_tech}"), &a)
            .await
            .status,
        404
    );
    s.delete(&format!("/api/v1/technicians/{doomed}"), &a)
        .await
        .expect(204);
    // Masters last, so that the administrator's cases ran against the original state.
    for c in &cases {
        let body = c.body.clone().map(|mut b| {
            if let Some(e) = b.get_mut("email") {
                *e = json!(format!("m-{}", e.as_str().unwrap()));
            }
            b
        });
        let r = s.call(c.method.clone(), &c.path, Some(&m), body).await;
        assert_eq!(
            r.status, c.master,
            "master {} {}: {:?}",
            c.method, c.path, r.body
        );
    }
    // Administrators see only their part of the tree.
    let tree = s.get("/api/v1/org", &a).await.expect(200);
    let roots = tree["roots"].as_array().unwrap();
    assert_eq!(roots.len(), 1);
    let names: Vec<&str> = roots[0]["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["Mine"]);
}

#[tokio::test]
async fn bad_input_gets_a_json_error_and_changes_nothing() {
    let s = start().await;
    let t = s.master().await;
    let g = s.create_group(&t, "G", None).await;
    let before = s.get("/api/v1/org", &t).await.expect(200);
    let long = "x".repeat(5000);
    let cases: Vec<(Method, String, &str, u16)> = vec![
        (
            Method::POST,
            "/api/v1/technician-groups".into(),
            "{not json",
            400,
        ),
        (
            Method::POST,
            "/api/v1/technician-groups".into(),
            r#"{"name": 5}"#,
            422,
        ),
        (
            Method::POST,
            "/api/v1/technician-groups".into(),
            r#"{"name": "x", "colour": "red"}"#,
            422,
        ),
        (
            Method::POST,
            "/api/v1/technician-groups".into(),
            r#"{"name": ""}"#,
            422,
        ),
        (
            Method::POST,
            "/api/v1/technician-groups".into(),
            r#"{"name": "x", "parent_id": 999999}"#,
            404,
        ),
        (
            Method::POST,
            "/api/v1/technicians".into(),
            r#"{"name": "x", "email": "nope", "password": "Sample1%", "group_id": 1}"#,
            422,
        ),
        (
            Method::POST,
            "/api/v1/technicians".into(),
            r#"{"name": "x", "email": "w@example.com", "password": "weak", "group_id": 1}"#,
            422,
        ),
        (Method::GET, "/api/v1/technicians/abc".into(), "", 400),
        (Method::GET, "/api/v1/technicians/999999".into(), "", 404),
        (
            Method::PATCH,
            format!("/api/v1/technician-groups/{g}"),
            r#"{"enabled": "yes"}"#,
            422,
        ),
        (
            Method::PATCH,
            "/api/v1/technician-groups/999999".into(),
            r#"{"name": "x"}"#,
            404,
        ),
        (
            Method::DELETE,
            "/api/v1/technician-groups/999999".into(),
            "",
            404,
        ),
        (
            Method::PUT,
            format!("/api/v1/technician-groups/{g}/settings"),
            r#"{"audio": 1}"#,
            422,
        ),
        (Method::GET, "/api/v1/nothing-here".into(), "", 404),
    ];
    for (method, path, body, status) in cases {
        let r = s
            .raw(method.clone(), &path, Some(&t), body, "application/json")
            .await;
        assert_eq!(
            r.status.as_u16(),
            status,
            "{method} {path} {body}: {:?}",
            r.body
        );
        assert!(
            r.body["error"]["code"].is_string(),
            "{method} {path}: no JSON error: {:?}",
            r.body
        );
        assert!(r.body["error"]["message"].is_string());
    }
    let r = s
        .raw(
            Method::POST,
            "/api/v1/technician-groups",
            Some(&t),
            &format!(r#"{{"name": "{long}"}}"#),
            "application/json",
        )
        .await;
    assert_eq!(r.status, 422);
    let r = s
        .raw(
            Method::POST,
            "/api/v1/technician-groups",
            Some(&t),
            r#"{"name": "x"}"#,
            "text/plain",
        )
        .await;
    assert_eq!(r.status, 415);
    // A body over the limit.
    let huge = format!(r#"{{"name": "{}"}}"#, "x".repeat(2 * 1024 * 1024));
    let r = s
        .raw(
            Method::POST,
            "/api/v1/technician-groups",
            Some(&t),
            &huge,
            "application/json",
        )
        .await;
    assert_eq!(r.status, 413);
    let after = s.get("/api/v1/org", &t).await.expect(200);
    assert_eq!(before, after, "nothing changed");
}
