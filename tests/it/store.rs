//! The store on both backends: SQLite (a real file) and PostgreSQL (the server the test script
//! starts). Every test body runs on each.

use crate::common;

use common::*;
use lens::store::{
    self, AuditEntry, ChangeType, GroupKind, LoginEvent, NewGroup, NewUser, Role, Store,
    StoreError, now_ms,
};

async fn each_backend<F, Fut>(test: F)
where
    F: Fn(Store) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}?mode=rwc", dir.path().join("lens.db").display());
    test(Store::open(&sqlite).await.unwrap()).await;
    if let Some(base) = postgres_url() {
        let url = fresh_postgres_database(&base).await;
        test(Store::open(&url).await.unwrap()).await;
    }
}

fn new_user(role: Role, email: &str, group: Option<i64>) -> NewUser {
    NewUser {
        role,
        name: email.into(),
        nickname: String::new(),
        email: email.into(),
        sso_id: String::new(),
        description: String::new(),
        password_hash: "$argon2id$x".into(),
        must_change_password: false,
        enabled: true,
        group_id: group,
    }
}

#[tokio::test]
async fn migrations_are_idempotent() {
    each_backend(|s| async move {
        s.migrate().await.unwrap();
        s.migrate().await.unwrap();
        s.ping().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn users_round_trip_with_case_insensitive_unique_emails() {
    each_backend(|s| async move {
        let mut tx = s.begin().await.unwrap();
        let g = store::groups::insert_group(
            &mut tx,
            &NewGroup {
                kind: GroupKind::TechnicianGroup,
                name: "G".into(),
                description: "d".into(),
                parent_id: None,
                enabled: true,
            },
        )
        .await
        .unwrap();
        let id = store::users::insert_user(
            &mut tx,
            &new_user(Role::Technician, "Ann@Example.com", Some(g)),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let u = s.user_by_email("ann@example.COM").await.unwrap();
        assert_eq!(u.id, id);
        assert_eq!(u.email, "Ann@Example.com");
        assert_eq!(u.group_id, Some(g));
        assert!(u.enabled);
        assert!(!u.must_change_password);
        let mut tx = s.begin().await.unwrap();
        let dup = store::users::insert_user(
            &mut tx,
            &new_user(Role::Technician, "ANN@example.com", Some(g)),
        )
        .await;
        assert!(
            matches!(dup, Err(StoreError::Conflict("email_taken"))),
            "{dup:?}"
        );
        drop(tx);
        // Update every field.
        let mut changed = u.clone();
        changed.name = "Ann B".into();
        changed.enabled = false;
        changed.must_change_password = true;
        changed.group_id = None;
        let mut tx = s.begin().await.unwrap();
        store::users::update_user(&mut tx, &changed).await.unwrap();
        tx.commit().await.unwrap();
        let back = s.user(id).await.unwrap();
        assert_eq!(back.name, "Ann B");
        assert!(!back.enabled && back.must_change_password && back.group_id.is_none());
        // Delete keeps the row for reports and frees the email.
        let mut tx = s.begin().await.unwrap();
        store::users::delete_user(&mut tx, id).await.unwrap();
        store::users::insert_user(
            &mut tx,
            &new_user(Role::Technician, "ann@example.com", Some(g)),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        assert!(matches!(s.user(id).await, Err(StoreError::NotFound)));
        assert_eq!(s.user_any(id).await.unwrap().name, "Ann B");
        assert!(s.user_any(id).await.unwrap().deleted_at.is_some());
    })
    .await;
}

#[tokio::test]
async fn a_rolled_back_transaction_leaves_nothing() {
    each_backend(|s| async move {
        let before = s.count_users().await.unwrap();
        let mut tx = s.begin().await.unwrap();
        store::users::insert_user(
            &mut tx,
            &new_user(Role::MasterAdministrator, "gone@example.com", None),
        )
        .await
        .unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(s.count_users().await.unwrap(), before);
    })
    .await;
}

#[tokio::test]
async fn groups_assignments_and_settings() {
    each_backend(|s| async move {
        let mut tx = s.begin().await.unwrap();
        let top = store::groups::insert_group(
            &mut tx,
            &NewGroup {
                kind: GroupKind::TechnicianGroup,
                name: "Top".into(),
                description: String::new(),
                parent_id: None,
                enabled: true,
            },
        )
        .await
        .unwrap();
        let sub = store::groups::insert_group(
            &mut tx,
            &NewGroup {
                kind: GroupKind::TechnicianGroup,
                name: "Sub".into(),
                description: String::new(),
                parent_id: Some(top),
                enabled: false,
            },
        )
        .await
        .unwrap();
        let admin = store::users::insert_user(
            &mut tx,
            &new_user(Role::Administrator, "a@example.com", None),
        )
        .await
        .unwrap();
        assert!(store::groups::assign(&mut tx, admin, top).await.unwrap());
        assert!(
            !store::groups::assign(&mut tx, admin, top).await.unwrap(),
            "assigning twice is a no-op"
        );
        store::settings::put_group_settings(&mut tx, top, r#"{"a":1}"#)
            .await
            .unwrap();
        store::settings::put_group_settings(&mut tx, top, r#"{"a":2}"#)
            .await
            .unwrap();
        store::settings::put_global_settings(&mut tx, r#"{"g":1}"#)
            .await
            .unwrap();
        store::settings::put_global_settings(&mut tx, r#"{"g":2}"#)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let groups = s.groups().await.unwrap();
        assert_eq!(groups.len(), 2);
        let sub_row = groups.iter().find(|g| g.id == sub).unwrap();
        assert_eq!(sub_row.parent_id, Some(top));
        assert!(!sub_row.enabled);
        assert_eq!(s.assignments().await.unwrap(), vec![(admin, top)]);
        assert_eq!(s.assigned_groups(admin).await.unwrap(), vec![top]);
        assert_eq!(
            s.group_settings_json(top).await.unwrap().as_deref(),
            Some(r#"{"a":2}"#)
        );
        assert_eq!(s.group_settings_json(sub).await.unwrap(), None);
        assert_eq!(
            s.global_settings_json().await.unwrap().as_deref(),
            Some(r#"{"g":2}"#)
        );
        assert!(s.group_has_members(top).await.unwrap());
        assert!(!s.group_has_members(sub).await.unwrap());
        let mut tx = s.begin().await.unwrap();
        store::groups::delete_group(&mut tx, sub).await.unwrap();
        assert!(store::groups::unassign(&mut tx, admin, top).await.unwrap());
        assert!(!store::groups::unassign(&mut tx, admin, top).await.unwrap());
        tx.commit().await.unwrap();
        assert!(!s.group_has_members(top).await.unwrap());
        assert!(matches!(s.group(sub).await, Err(StoreError::NotFound)));
    })
    .await;
}

#[tokio::test]
async fn tokens_logins_and_audit_are_kept() {
    each_backend(|s| async move {
        let mut tx = s.begin().await.unwrap();
        let id = store::users::insert_user(
            &mut tx,
            &new_user(Role::MasterAdministrator, "m@example.com", None),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let now = now_ms();
        s.insert_token("h1", id, now, now + 1000, "127.0.0.1", "password")
            .await
            .unwrap();
        s.insert_token("h2", id, now, now + 1000, "127.0.0.1", "sso")
            .await
            .unwrap();
        let t = s.token("h1").await.unwrap();
        assert_eq!(
            (t.user_id, t.expires_at, t.revoked_at),
            (id, now + 1000, None)
        );
        assert_eq!(s.token("h2").await.unwrap().method, "sso");
        assert!(s.revoke_token("h1", now).await.unwrap());
        assert!(!s.revoke_token("h1", now).await.unwrap());
        s.revoke_user_tokens(id, Some("h3"), now).await.unwrap();
        assert!(s.token("h2").await.unwrap().revoked_at.is_some());
        s.record_login(id, LoginEvent::Login, "password", "::1", now)
            .await
            .unwrap();
        s.record_login(id, LoginEvent::Logout, "password", "::1", now + 5)
            .await
            .unwrap();
        let logins = s.logins_of(id).await.unwrap();
        assert_eq!(logins.len(), 2);
        assert_eq!(
            logins[1],
            (
                "logout".to_string(),
                "password".to_string(),
                "::1".to_string(),
                now + 5
            )
        );
        let mut tx = s.begin().await.unwrap();
        for (i, field) in ["Name", "Status"].iter().enumerate() {
            store::audit::append(
                &mut tx,
                &AuditEntry {
                    at: now + i as i64,
                    requested_by_id: id,
                    requested_by_name: "m".into(),
                    entity_type: "Technician",
                    entity_id: 7,
                    entity_name: "T".into(),
                    change_type: ChangeType::Change,
                    section: "Organization".into(),
                    field: field.to_string(),
                    old_value: None,
                    old_action: Some("Enabled".into()),
                    new_value: None,
                    new_action: Some("Disabled".into()),
                },
            )
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
        let rows = s.audit(Some(("Technician", 7)), None, 10).await.unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].field, "Status", "newest first");
        assert_eq!(rows[0].new_action.as_deref(), Some("Disabled"));
        assert!(
            s.audit(Some(("Technician", 8)), None, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(s.audit(None, Some(id), 1).await.unwrap().len(), 1);
    })
    .await;
}

/// One schema: the two dialects' migrations differ only in how an auto-increment key is spelled
/// and in SQLite's `WITHOUT ROWID` (a table stored in its primary key's order, which PostgreSQL
/// does not have: there the key is an index beside the table), and in PostgreSQL-only statements,
/// which the SQLite twin carries commented out after `-- postgres only: ` (0023's covering index,
/// which SQLite's key order makes needless).
#[test]
fn the_sqlite_and_postgres_migrations_are_the_same_schema() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut sqlite: Vec<_> = std::fs::read_dir(root.join("sqlite"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let mut pg: Vec<_> = std::fs::read_dir(root.join("postgres"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    sqlite.sort();
    pg.sort();
    assert_eq!(sqlite, pg, "the same migration files on both");
    for name in sqlite {
        let normalize = |dialect: &str| -> String {
            std::fs::read_to_string(root.join(dialect).join(&name))
                .unwrap()
                .lines()
                .map(|l| l.strip_prefix("-- postgres only: ").unwrap_or(l))
                .filter(|l| !l.starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n")
                .replace("INTEGER PRIMARY KEY AUTOINCREMENT", "<ID>")
                .replace("BIGSERIAL PRIMARY KEY", "<ID>")
                .replace(") WITHOUT ROWID;", ");")
        };
        assert_eq!(
            normalize("sqlite"),
            normalize("postgres"),
            "{name:?} differs beyond the id spelling"
        );
    }
}

/// The API on PostgreSQL: the same server, a few real calls.
#[tokio::test]
async fn the_api_runs_on_postgres() {
    let Some(s) = start_on(Backend::Postgres, |_| {}).await else {
        return;
    };
    let t = s.master().await;
    let g = s.create_group(&t, "PG group", None).await;
    s.create_user(&t, "technicians", "pg@example.com", Some(g))
        .await;
    let tree = s.get("/api/v1/org", &t).await.expect(200);
    assert_eq!(
        tree["roots"][2]["children"][0]["children"][0]["email"],
        "pg@example.com"
    );
    let health = s
        .call(reqwest::Method::GET, "/healthz", None, None)
        .await
        .expect(200);
    assert_eq!(health["store"], "postgres");
}

/// A whole Lens session on PostgreSQL: events, chat and the session row.
#[tokio::test]
async fn a_session_runs_on_postgres() {
    let Some(s) = start_on(Backend::Postgres, |_| {}).await else {
        return;
    };
    let (_, _, token) = technician_with(&s, "pg-tech@example.com", |_| {}).await;
    let (mut con, _) = console(&s, &token).await;
    let c = s
        .post(
            "/api/v1/sessions",
            &token,
            serde_json::json!({"method": "pin", "name": "PG"}),
        )
        .await
        .expect(201);
    let id = c["id"].as_i64().unwrap();
    let (mut cus, ok) = customer(&s, c["pin"].as_str().unwrap()).await;
    assert_eq!(ok["type"], "ok", "{ok}");
    cus.request(serde_json::json!({"type": "ready"})).await;
    con.request(serde_json::json!({"type": "pickup", "session_id": id}))
        .await;
    cus.request(serde_json::json!({"type": "chat", "text": "hello from postgres"}))
        .await;
    con.request(serde_json::json!({"type": "end", "session_id": id}))
        .await;
    cus.frame("ended", None).await;
    let d = s
        .get(&format!("/api/v1/sessions/{id}"), &token)
        .await
        .expect(200);
    assert_eq!(d["status"], "Closed by technician");
    assert_eq!(d["events"].as_array().unwrap().len(), 4);
    assert_eq!(d["chat"][0]["text"], "hello from postgres");
    let list = s
        .get("/api/v1/sessions?status=Closed%20by%20technician", &token)
        .await
        .expect(200);
    assert_eq!(list[0]["id"], id);
}
