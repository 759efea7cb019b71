//! The finishing pass over the OpenAPI document utoipa derives from the handlers' annotations.
//!
//! Some truths hold for every route and are stated once here rather than in ~70 annotations that
//! would drift: which errors the shared extractors can answer (a parameter that does not parse, a
//! body that is not JSON or breaks the schema, a missing or dead token, IP restrictions, a password
//! change owed, a store failure), the ranges of the integer types, who may call each operation (the
//! authorization matrix, as `x-roles` and in words), an example for every request body, and the
//! links from creating operations to the ones that take the new id (what stateful clients and
//! Schemathesis follow from groups to technicians to sessions to reports).

use serde_json::{Map, Value, json};

use crate::settings::global::GlobalSettings;
use crate::settings::group::TechnicianGroupSettings;

/// Who may call an operation. Roles are the API's role names; an empty list means no login.
pub struct Access {
    pub operation_id: &'static str,
    pub roles: &'static [&'static str],
    /// How far the permission reaches, when the role alone does not say it.
    pub scope: &'static str,
}

const M: &str = "master_administrator";
const A: &str = "administrator";
const T: &str = "technician";
const ANYONE: &[&str] = &[M, A, T];
const ADMINS: &[&str] = &[M, A];
const MASTERS: &[&str] = &[M];
const TECHNICIANS: &[&str] = &[T];
const PUBLIC: &[&str] = &[];

const IN_SCOPE: &str = "administrators: only the technician groups assigned to them, their subgroups \
                        and those groups' technicians (others answer 404)";

const fn access(
    operation_id: &'static str,
    roles: &'static [&'static str],
    scope: &'static str,
) -> Access {
    Access {
        operation_id,
        roles,
        scope,
    }
}

/// The authorization matrix: every operation of the document, by operationId. `tests/it/openapi.rs`
/// checks it against the server's answers, role by role.
pub const ACCESS: &[Access] = &[
    access("healthz", PUBLIC, ""),
    access("list_nodes", MASTERS, ""),
    access("drain_node", MASTERS, ""),
    access("login", PUBLIC, ""),
    access("logout", ANYONE, "also with a password change pending"),
    access(
        "change_password",
        ANYONE,
        "also with a password change pending",
    ),
    access("me", ANYONE, "also with a password change pending"),
    access("tree", ADMINS, IN_SCOPE),
    access("list_technician_groups", ADMINS, IN_SCOPE),
    access(
        "create_technician_group",
        ADMINS,
        "administrators: only under technician groups they manage",
    ),
    access("get_technician_group", ADMINS, IN_SCOPE),
    access("update_technician_group", ADMINS, IN_SCOPE),
    access("delete_technician_group", ADMINS, IN_SCOPE),
    access("list_administrator_groups", MASTERS, ""),
    access("create_administrator_group", MASTERS, ""),
    access("get_administrator_group", MASTERS, ""),
    access("update_administrator_group", MASTERS, ""),
    access("delete_administrator_group", MASTERS, ""),
    access("list_masters", MASTERS, ""),
    access("create_master", MASTERS, ""),
    access("get_master", MASTERS, ""),
    access("update_master", MASTERS, ""),
    access("delete_master", MASTERS, ""),
    access("list_administrators", MASTERS, ""),
    access("create_administrator", MASTERS, ""),
    access("get_administrator", MASTERS, ""),
    access("update_administrator", MASTERS, ""),
    access("delete_administrator", MASTERS, ""),
    access("assign_group", MASTERS, ""),
    access("unassign_group", MASTERS, ""),
    access("list_technicians", ADMINS, IN_SCOPE),
    access("create_technician", ADMINS, IN_SCOPE),
    access("get_technician", ADMINS, IN_SCOPE),
    access("update_technician", ADMINS, IN_SCOPE),
    access("delete_technician", ADMINS, IN_SCOPE),
    access("get_group_settings", ADMINS, IN_SCOPE),
    access("put_group_settings", ADMINS, IN_SCOPE),
    access("get_global_settings", MASTERS, ""),
    access("put_global_settings", MASTERS, ""),
    access("list", MASTERS, ""),
    access("create_session", TECHNICIANS, ""),
    access(
        "get_session",
        ANYONE,
        "administrators: sessions of the groups they manage; technicians: their own sessions",
    ),
    access(
        "list_sessions",
        ANYONE,
        "administrators: sessions of the groups they manage; technicians: their own sessions",
    ),
    access("list_outbox", MASTERS, ""),
    access("session_form", TECHNICIANS, ""),
    access("transfer_targets", TECHNICIANS, ""),
    access("list_deliveries", ADMINS, IN_SCOPE),
    access("get_secret", ADMINS, IN_SCOPE),
    access("rotate_secret", ADMINS, IN_SCOPE),
    access("delete_secret", ADMINS, IN_SCOPE),
    access("list_keys", MASTERS, ""),
    access("get_key", MASTERS, ""),
    access("create_key", MASTERS, ""),
    access("update_key", MASTERS, ""),
    access(
        "list_tokens",
        ANYONE,
        "one's own tokens; master administrators also anyone's (`user_id`)",
    ),
    access("create_token", ANYONE, "a token for oneself"),
    access(
        "revoke_token",
        ANYONE,
        "one's own tokens; master administrators anyone's",
    ),
    access("report", ADMINS, IN_SCOPE),
    access("queue_chatlog_deletion", MASTERS, ""),
    access("revoke_chatlog_deletion", MASTERS, ""),
    access("list_session_recordings", ADMINS, IN_SCOPE),
    access("retry_recording", ADMINS, IN_SCOPE),
    access("recording_file", ADMINS, IN_SCOPE),
    access("list_recordings", ADMINS, IN_SCOPE),
    access("recording_link", ADMINS, IN_SCOPE),
    access(
        "play_recording",
        PUBLIC,
        "anyone holding a link from `POST /api/v1/recordings/{id}/link` (its signature authorizes)",
    ),
    access("rotate_recording_link_key", MASTERS, ""),
    access(
        "login_ticket_get",
        PUBLIC,
        "authenticated by the master SSO password",
    ),
    access(
        "login_ticket_post",
        PUBLIC,
        "authenticated by the master SSO password",
    ),
    access(
        "login_with_ticket",
        PUBLIC,
        "authenticated by the login ticket",
    ),
    access(
        "customer_survey",
        PUBLIC,
        "authenticated by the customer's resume token",
    ),
    access(
        "technician_survey",
        TECHNICIANS,
        "only the session's own technician",
    ),
];

fn role_words(role: &str) -> &'static str {
    match role {
        M => "master administrators",
        A => "administrators",
        _ => "technicians",
    }
}

/// Error responses shared by many operations, by status: (component name, description).
const SHARED: &[(&str, &str, &str)] = &[
    (
        "400",
        "InvalidParameter",
        "A path or query parameter does not parse or is out of its range (`invalid_parameter`), or \
         the body is not JSON (`invalid_json`).",
    ),
    (
        "401",
        "Unauthorized",
        "No bearer token, or the token is unknown, expired or revoked, or the account is disabled \
         (`unauthorized`).",
    ),
    (
        "403",
        "Forbidden",
        "The caller's role may not call this operation (`forbidden`; see the roles above), the \
         object is outside what the caller manages (`not_in_scope`), IP restrictions deny the \
         address (`ip_restricted`), or a password change is owed first \
         (`password_change_required`).",
    ),
    (
        "404",
        "NotFound",
        "No such object, or one outside the caller's technician groups (`not_found`).",
    ),
    (
        "413",
        "PayloadTooLarge",
        "The body is larger than `http.max_body_bytes` (`payload_too_large`).",
    ),
    (
        "415",
        "UnsupportedMediaType",
        "The body is not sent as `Content-Type: application/json` (`unsupported_media_type`).",
    ),
    (
        "422",
        "ValidationFailed",
        "The body breaks the schema (a wrong type, a missing or unknown field) or a rule the \
         message names (`validation_failed`).",
    ),
    (
        "500",
        "Internal",
        "The store failed; the detail is in the server log only (`internal`).",
    ),
];

/// Links from the responses of creating operations to the operations that take the new id:
/// (source operationId, status, link name, target operationId, parameters, request body).
type LinkSpec = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
    Option<fn() -> Value>,
);

const ID: &[(&str, &str)] = &[("id", "$response.body#/id")];
const SESSION_ID: &[(&str, &str)] = &[("session_id", "$response.body#/id")];

const LINKS: &[LinkSpec] = &[
    (
        "create_technician_group",
        "201",
        "GetTechnicianGroup",
        "get_technician_group",
        ID,
        None,
    ),
    (
        "create_technician_group",
        "201",
        "UpdateTechnicianGroup",
        "update_technician_group",
        ID,
        None,
    ),
    (
        "create_technician_group",
        "201",
        "DeleteTechnicianGroup",
        "delete_technician_group",
        ID,
        None,
    ),
    (
        "create_technician_group",
        "201",
        "GetGroupSettings",
        "get_group_settings",
        ID,
        None,
    ),
    (
        "create_technician_group",
        "201",
        "PutGroupSettings",
        "put_group_settings",
        ID,
        None,
    ),
    (
        "create_technician_group",
        "201",
        "GetPostSecret",
        "get_secret",
        ID,
        None,
    ),
    (
        "create_technician_group",
        "201",
        "RotatePostSecret",
        "rotate_secret",
        ID,
        None,
    ),
    (
        "create_technician_group",
        "201",
        "CreateTechnicianInGroup",
        "create_technician",
        &[],
        Some(|| json!({"group_id": "$response.body#/id"})),
    ),
    (
        "create_technician_group",
        "201",
        "CreateSubgroup",
        "create_technician_group",
        &[],
        Some(|| json!({"parent_id": "$response.body#/id"})),
    ),
    (
        "create_technician_group",
        "201",
        "AssignToAdministrator",
        "assign_group",
        &[("group_id", "$response.body#/id")],
        None,
    ),
    (
        "create_administrator_group",
        "201",
        "GetAdministratorGroup",
        "get_administrator_group",
        ID,
        None,
    ),
    (
        "create_administrator_group",
        "201",
        "UpdateAdministratorGroup",
        "update_administrator_group",
        ID,
        None,
    ),
    (
        "create_administrator_group",
        "201",
        "DeleteAdministratorGroup",
        "delete_administrator_group",
        ID,
        None,
    ),
    (
        "create_administrator_group",
        "201",
        "CreateAdministratorInGroup",
        "create_administrator",
        &[],
        Some(|| json!({"group_id": "$response.body#/id"})),
    ),
    (
        "create_technician",
        "201",
        "GetTechnician",
        "get_technician",
        ID,
        None,
    ),
    (
        "create_technician",
        "201",
        "UpdateTechnician",
        "update_technician",
        ID,
        None,
    ),
    (
        "create_technician",
        "201",
        "DeleteTechnician",
        "delete_technician",
        ID,
        None,
    ),
    (
        "create_administrator",
        "201",
        "GetAdministrator",
        "get_administrator",
        ID,
        None,
    ),
    (
        "create_administrator",
        "201",
        "UpdateAdministrator",
        "update_administrator",
        ID,
        None,
    ),
    (
        "create_administrator",
        "201",
        "DeleteAdministrator",
        "delete_administrator",
        ID,
        None,
    ),
    (
        "create_administrator",
        "201",
        "AssignTechnicianGroup",
        "assign_group",
        ID,
        None,
    ),
    (
        "create_administrator",
        "201",
        "UnassignTechnicianGroup",
        "unassign_group",
        ID,
        None,
    ),
    ("create_master", "201", "GetMaster", "get_master", ID, None),
    (
        "create_master",
        "201",
        "UpdateMaster",
        "update_master",
        ID,
        None,
    ),
    (
        "create_master",
        "201",
        "DeleteMaster",
        "delete_master",
        ID,
        None,
    ),
    (
        "create_session",
        "201",
        "GetSession",
        "get_session",
        ID,
        None,
    ),
    (
        "create_session",
        "201",
        "ListRecordings",
        "list_session_recordings",
        ID,
        None,
    ),
    (
        "create_session",
        "201",
        "EvaluateSession",
        "technician_survey",
        ID,
        None,
    ),
    (
        "create_session",
        "201",
        "QueueChatlogDeletion",
        "queue_chatlog_deletion",
        SESSION_ID,
        None,
    ),
    (
        "create_session",
        "201",
        "RevokeChatlogDeletion",
        "revoke_chatlog_deletion",
        SESSION_ID,
        None,
    ),
    (
        "queue_chatlog_deletion",
        "201",
        "RevokeQueuedDeletion",
        "revoke_chatlog_deletion",
        &[("session_id", "$response.body#/session_id")],
        None,
    ),
    (
        "create_key",
        "201",
        "GetKey",
        "get_key",
        &[("id", "$response.body#/id")],
        None,
    ),
    (
        "create_key",
        "201",
        "UpdateKey",
        "update_key",
        &[("id", "$response.body#/id")],
        None,
    ),
    (
        "create_token",
        "201",
        "RevokeToken",
        "revoke_token",
        &[("id", "$response.body#/id")],
        None,
    ),
    (
        "retry_recording",
        "200",
        "DownloadRecording",
        "recording_file",
        ID,
        None,
    ),
];

/// An example body for every request body schema (what a client sends; each one is accepted by a
/// fresh server whose organization has technician group 1).
fn request_example(schema: &str) -> Option<Value> {
    Some(match schema {
        "LoginRequest" => json!({"email": "admin@example.com", "password": "Sample1%"}),
        "PasswordChange" => json!({"old_password": "Sample1%", "new_password": "Sampla2&x"}),
        "MasterCreate" | "AdministratorCreate" => json!({"name": "Ann Example",
            "email": "ann@example.com", "password": "Sample1%", "description": "first line"}),
        "TechnicianCreate" => json!({"name": "Tom Example", "nickname": "Tom",
            "email": "tom@example.com", "password": "Sample1%", "group_id": 1}),
        "MasterUpdate" | "AdministratorUpdate" | "TechnicianUpdate" => {
            json!({"description": "second line", "enabled": true})
        }
        "GroupCreate" => json!({"name": "Support", "description": "first line", "enabled": true}),
        "GroupUpdate" => json!({"description": "second line"}),
        "TechnicianGroupSettings" => {
            serde_json::to_value(TechnicianGroupSettings::default()).ok()?
        }
        "GlobalSettingsUpdate" => {
            let mut v = serde_json::to_value(GlobalSettings::default().view()).ok()?;
            // The read-only parts of the view are not sent back.
            if let Some(o) = v.as_object_mut() {
                o.remove("api");
            }
            if let Some(sso) = v.get_mut("single_sign_on").and_then(Value::as_object_mut) {
                sso.remove("master_sso_password_set");
            }
            v
        }
        "SessionCreate" => json!({"method": "pin", "name": "Customer", "custom_fields": []}),
        "SurveySubmission" => json!({"answers": [{"index": 0, "answer": "Yes"}]}),
        "CustomerSurveySubmission" => {
            json!({"resume_token": "r-2b7x6Lk5Hs4Td3Fa", "answers": [{"index": 0, "answer": "Yes"}]})
        }
        "ApiKeyCreate" => json!({"app_id": "crm-plugin", "description": "CRM plug-in"}),
        "ApiKeyUpdate" => json!({"description": "CRM plug-in, second instance"}),
        "ApiTokenCreate" => json!({"name": "report pull", "expires_at": "2099-01-01T00:00:00Z"}),
        _ => return None,
    })
}

/// Text with no control characters but tab and newline (`check_text` in `api/mod.rs`).
const TEXT: &str = r"^[^\u0000-\u0008\u000B-\u001F\u007F-\u009F]*$";
/// The same, and not only whitespace (a required name).
const REQUIRED_TEXT: &str = r"^[^\u0000-\u0008\u000B-\u001F\u007F-\u009F]*[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\u0000-\u0008\u000B-\u001F\u007F-\u009F]*$";
/// `users::check_email`: one `@`, something on both sides, no whitespace or control characters.
const EMAIL: &str = r"^[^@\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]+@[^@\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]+$";
/// The default minimum password strength (Good): 8 characters or more, of at least three types
/// (lowercase, uppercase, digits, special), in ASCII terms. The server counts any Unicode letter
/// by its case and any numeric character as a digit, so every password this pattern admits is
/// accepted under the default policy; a stricter minimum in Global Settings refuses more (422).
const PASSWORD: &str = r"^(?:(?=[\s\S]*[a-z])(?=[\s\S]*[A-Z])(?=[\s\S]*[0-9])|(?=[\s\S]*[a-z])(?=[\s\S]*[A-Z])(?=[\s\S]*[ -/:-@\[-`{-~])|(?=[\s\S]*[a-z])(?=[\s\S]*[0-9])(?=[\s\S]*[ -/:-@\[-`{-~])|(?=[\s\S]*[A-Z])(?=[\s\S]*[0-9])(?=[\s\S]*[ -/:-@\[-`{-~]))[\s\S]{8,256}$";

/// What validation enforces on each request body field, as JSON Schema keywords:
/// (schema, property, pattern, minLength, maxLength).
const FIELDS: &[(&str, &str, &str, u32, u32)] = &[
    ("MasterCreate", "name", REQUIRED_TEXT, 1, 128),
    ("MasterCreate", "email", EMAIL, 3, 128),
    ("MasterCreate", "password", PASSWORD, 8, 256),
    ("MasterCreate", "sso_id", TEXT, 0, 128),
    ("MasterCreate", "description", TEXT, 0, 1024),
    ("AdministratorCreate", "name", REQUIRED_TEXT, 1, 128),
    ("AdministratorCreate", "email", EMAIL, 3, 128),
    ("AdministratorCreate", "password", PASSWORD, 8, 256),
    ("AdministratorCreate", "sso_id", TEXT, 0, 128),
    ("AdministratorCreate", "description", TEXT, 0, 1024),
    ("TechnicianCreate", "name", REQUIRED_TEXT, 1, 128),
    ("TechnicianCreate", "nickname", TEXT, 0, 128),
    ("TechnicianCreate", "email", EMAIL, 3, 128),
    ("TechnicianCreate", "password", PASSWORD, 8, 256),
    ("TechnicianCreate", "sso_id", TEXT, 0, 128),
    ("TechnicianCreate", "description", TEXT, 0, 1024),
    ("MasterUpdate", "name", REQUIRED_TEXT, 1, 128),
    ("MasterUpdate", "email", EMAIL, 3, 128),
    ("MasterUpdate", "password", PASSWORD, 8, 256),
    ("MasterUpdate", "sso_id", TEXT, 0, 128),
    ("MasterUpdate", "description", TEXT, 0, 1024),
    ("AdministratorUpdate", "name", REQUIRED_TEXT, 1, 128),
    ("AdministratorUpdate", "email", EMAIL, 3, 128),
    ("AdministratorUpdate", "password", PASSWORD, 8, 256),
    ("AdministratorUpdate", "sso_id", TEXT, 0, 128),
    ("AdministratorUpdate", "description", TEXT, 0, 1024),
    ("TechnicianUpdate", "name", REQUIRED_TEXT, 1, 128),
    ("TechnicianUpdate", "nickname", TEXT, 0, 128),
    ("TechnicianUpdate", "email", EMAIL, 3, 128),
    ("TechnicianUpdate", "password", PASSWORD, 8, 256),
    ("TechnicianUpdate", "sso_id", TEXT, 0, 128),
    ("TechnicianUpdate", "description", TEXT, 0, 1024),
    ("GroupCreate", "name", REQUIRED_TEXT, 1, 128),
    ("GroupCreate", "description", TEXT, 0, 1024),
    ("GroupUpdate", "name", REQUIRED_TEXT, 1, 128),
    ("GroupUpdate", "description", TEXT, 0, 1024),
    ("PasswordChange", "new_password", PASSWORD, 8, 256),
    ("ApiKeyCreate", "app_id", r"^[A-Za-z0-9._-]{1,128}$", 1, 128),
    ("ApiKeyCreate", "description", TEXT, 0, 256),
    ("ApiKeyUpdate", "app_id", r"^[A-Za-z0-9._-]{1,128}$", 1, 128),
    ("ApiKeyUpdate", "description", TEXT, 0, 256),
    ("ApiTokenCreate", "name", REQUIRED_TEXT, 1, 128),
];

/// Applies every pass; the result is what `/api/v1/openapi.json` serves.
pub fn finish(doc: &utoipa::openapi::OpenApi) -> Value {
    let mut doc = serde_json::to_value(doc).unwrap_or(Value::Null);
    add_shared_responses(&mut doc);
    let paths: Vec<String> = doc["paths"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    for path in paths {
        for method in ["get", "put", "post", "delete", "patch"] {
            let Some(op) = doc["paths"][&path].get_mut(method) else {
                continue;
            };
            document_errors(op);
            document_access(op);
            add_examples(op);
        }
    }
    add_links(&mut doc);
    constrain_fields(&mut doc);
    constrain_parameters(&mut doc);
    bound_integers(&mut doc);
    doc
}

fn constrain_fields(doc: &mut Value) {
    if let Some(p) = doc.pointer_mut("/components/schemas/MasterCreate/properties/group_id") {
        *p = json!({"type": "null", "description": "Master administrators are in no group."});
    }
    // The report's file formats (`format=html|xml|tsv|xlsx`) are answers of their own type.
    if let Some(ok) = doc.pointer_mut("/paths/~1api~1v1~1reports~1{area}/get/responses/200/content")
        && let Some(content) = ok.as_object_mut()
    {
        for (media, format) in [
            ("text/html", "binary"),
            ("application/vnd.ms-excel", "binary"),
            ("text/tab-separated-values", "binary"),
            (
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                "binary",
            ),
        ] {
            content.insert(
                media.into(),
                json!({"schema": {"type": "string", "format": format}}),
            );
        }
    }
    // A report cell is a number (ids, counts) or text (everything else).
    if let Some(cell) =
        doc.pointer_mut("/components/schemas/ReportBody/properties/rows/items/items")
    {
        *cell = json!({"type": ["integer", "string"]});
    }
    if let Some(p) = doc.pointer_mut("/components/schemas/ApiTokenCreate/properties/expires_at") {
        p["format"] = json!("date-time");
    }
    // `value_type = i64` (never null) made utoipa call it required; in a PATCH nothing is.
    if let Some(required) = doc
        .pointer_mut("/components/schemas/TechnicianUpdate/required")
        .and_then(Value::as_array_mut)
    {
        required.retain(|r| r != "group_id");
    }
    for (schema, property, pattern, min, max) in FIELDS {
        let at = format!("/components/schemas/{schema}/properties/{property}");
        let Some(p) = doc.pointer_mut(&at).and_then(Value::as_object_mut) else {
            continue;
        };
        p.insert("pattern".into(), Value::String((*pattern).to_string()));
        if *min > 0 {
            p.insert("minLength".into(), (*min).into());
        }
        p.insert("maxLength".into(), (*max).into());
    }
}

fn add_shared_responses(doc: &mut Value) {
    let Some(components) = doc.get_mut("components").and_then(Value::as_object_mut) else {
        return;
    };
    let responses = components
        .entry("responses")
        .or_insert_with(|| Value::Object(Map::new()));
    for (_, name, description) in SHARED {
        responses[*name] = json!({
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
        });
    }
}

/// The statuses the shared extractors and the store can answer on this operation.
fn document_errors(op: &mut Value) {
    let params = op["parameters"].as_array().cloned().unwrap_or_default();
    let has = |place: &str| params.iter().any(|p| p["in"] == place);
    let json_body = op["requestBody"]["content"]
        .get("application/json")
        .is_some();
    let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
    let mut add = Vec::new();
    if has("path") || has("query") || json_body {
        add.push("400");
    }
    if secured {
        add.extend(["401", "403"]);
    }
    if has("path") {
        add.push("404");
    }
    if json_body {
        add.extend(["413", "415", "422"]);
    }
    add.push("500");
    let responses = op
        .as_object_mut()
        .map(|o| o.entry("responses").or_insert_with(|| json!({})));
    let Some(responses) = responses.and_then(Value::as_object_mut) else {
        return;
    };
    for status in add {
        let (_, name, shared) = SHARED
            .iter()
            .find(|(s, _, _)| *s == status)
            .expect("every added status is shared");
        match responses.get_mut(status) {
            // The operation's own words come first; the shared causes follow.
            Some(own) => {
                let text = own["description"].as_str().unwrap_or_default().to_string();
                own["description"] = Value::String(format!("{text}. Also: {shared}"));
                if own.get("content").is_none() {
                    own["content"] = json!({"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}});
                }
            }
            None => {
                responses.insert(
                    status.to_string(),
                    json!({"$ref": format!("#/components/responses/{name}")}),
                );
            }
        }
    }
}

/// Rules no JSON Schema can state (they join parameters, or depend on stored configuration), told
/// in the operation's description.
const BEYOND_THE_SCHEMA: &[(&str, &str)] = &[
    (
        "report",
        "Rules across parameters (400 `invalid_parameter`): `range` or `from`+`to`, not both; \
         `to` not before `from`; `daily_from` and `daily_to` together and not equal; \
         `list=summary` only for areas with a Summary.",
    ),
    (
        "create_session",
        "Rules of the technician's group (422 `validation_failed` or 403 \
         `method_not_allowed`): the methods it allows, which custom fields are enabled and \
         mandatory, a phone number for `sms`, an address for `email`.",
    ),
    (
        "put_group_settings",
        "Rules across fields (422 `validation_failed`): distinct drop-down choices and survey \
         answers, recording locations that parse as URLs, IP exceptions whose masks fit their \
         networks.",
    ),
    (
        "put_global_settings",
        "Rules across fields (422 `validation_failed`): a name field that is not blank, IP \
         exceptions whose masks fit their networks, a master SSO password of 8 to 128 \
         characters; 409 `would_lock_out` when the caller's own address would be denied.",
    ),
    (
        "login_ticket_get",
        "The parameters are those of the guide's SSO API: a missing one is answered 200 \
         `ERROR: INVALIDPARAMETERS`, as that API does, so none is required here.",
    ),
    (
        "login_ticket_post",
        "The form is that of the guide's SSO API: a missing field is answered 200 \
         `ERROR: INVALIDPARAMETERS`, as that API does, so the body is optional here.",
    ),
];

fn document_access(op: &mut Value) {
    let id = op["operationId"].as_str().unwrap_or_default().to_string();
    let Some(a) = ACCESS.iter().find(|a| a.operation_id == id) else {
        return;
    };
    let who = if a.roles.is_empty() {
        "anyone, without a login".to_string()
    } else {
        a.roles
            .iter()
            .map(|r| role_words(r))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let scope = if a.scope.is_empty() {
        String::new()
    } else {
        format!(" ({})", a.scope)
    };
    let mut text = op["description"].as_str().unwrap_or_default().to_string();
    if let Some((_, rules)) = BEYOND_THE_SCHEMA.iter().find(|(o, _)| *o == id) {
        if !text.is_empty() {
            text.push_str("\n\n");
        }
        text.push_str(rules);
        // The SSO API's own convention: nothing is required, the answer says what is missing.
        if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
            for p in params
                .iter_mut()
                .filter(|p| id == "login_ticket_get" && p["in"] == "query")
            {
                p["required"] = Value::Bool(false);
            }
        }
        if id == "login_ticket_post"
            && let Some(body) = op.get_mut("requestBody").and_then(Value::as_object_mut)
        {
            body.insert("required".into(), Value::Bool(false));
        }
    }
    let sep = if text.is_empty() { "" } else { "\n\n" };
    op["description"] = Value::String(format!("{text}{sep}**Who may call:** {who}{scope}."));
    op["x-roles"] = json!(a.roles);
}

fn add_examples(op: &mut Value) {
    let Some(content) = op
        .pointer_mut("/requestBody/content/application~1json")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let name = content
        .get("schema")
        .and_then(|s| s.get("$ref"))
        .and_then(Value::as_str)
        .and_then(|r| r.rsplit('/').next())
        .unwrap_or_default()
        .to_string();
    if let Some(example) = request_example(&name) {
        content.insert("example".into(), example);
    }
}

fn add_links(doc: &mut Value) {
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    let mut ops: Vec<&mut Value> = paths
        .values_mut()
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut())
        .collect();
    for (source, status, name, target, params, body) in LINKS {
        let Some(op) = ops.iter_mut().find(|op| op["operationId"] == *source) else {
            continue;
        };
        let Some(response) = op["responses"].get_mut(*status) else {
            continue;
        };
        let mut link = json!({"operationId": target});
        if !params.is_empty() {
            link["parameters"] = params
                .iter()
                .map(|(k, v)| ((*k).to_string(), Value::String((*v).to_string())))
                .collect::<Map<_, _>>()
                .into();
        }
        if let Some(body) = body {
            link["requestBody"] = body();
        }
        response["links"][*name] = link;
    }
}

/// utoipa writes `format: int64` but no range; the server's integers are bounded by their Rust
/// types, so the document says so (a client generating 2^70 gets 400/422, not a surprise).
fn bound_integers(v: &mut Value) {
    match v {
        Value::Object(o) => {
            let is_integer = match o.get("type") {
                Some(Value::String(t)) => t == "integer",
                Some(Value::Array(ts)) => ts.iter().any(|t| t == "integer"),
                _ => false,
            };
            if is_integer {
                let (min, max): (Value, Value) = match o.get("format").and_then(Value::as_str) {
                    Some("int32") => (i32::MIN.into(), i32::MAX.into()),
                    Some("uint32") => (0.into(), u32::MAX.into()),
                    Some("uint64") => (0.into(), i64::MAX.into()),
                    _ => (i64::MIN.into(), i64::MAX.into()),
                };
                o.entry("minimum").or_insert(min);
                o.entry("maximum").or_insert(max);
            }
            for child in o.values_mut() {
                bound_integers(child);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(bound_integers),
        _ => {}
    }
}

/// Path and query parameters whose values come from a fixed list or a format the handler parses:
/// the lists are taken from the code that parses them, so they cannot drift.
fn constrain_parameters(doc: &mut Value) {
    let statuses: Vec<&str> = signaling::status::Status::ALL
        .iter()
        .map(|s| s.as_str())
        .collect();
    let areas: Vec<&str> = crate::reports::params::Area::ALL
        .iter()
        .map(|a| a.as_str())
        .collect();
    let mut zones: Vec<&str> = vec!["UTC"];
    zones.extend(chrono_tz::TZ_VARIANTS.iter().map(|z| z.name()));
    zones.dedup();
    let date =
        json!({"type": "string", "format": "date", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"});
    let minute = json!({"type": "string", "pattern": "^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"});
    let unit = json!({"type": "string", "pattern":
        "^((technician_group|technician|administrator|master_administrator|administrator_group):[0-9]{1,18}|master_administrators|administrators|technicians|)$"});
    let patches: Vec<(&str, &str, Value)> = vec![
        (
            "list_sessions",
            "status",
            json!({"type": "string", "enum": statuses}),
        ),
        (
            "list_sessions",
            "from",
            json!({"type": "string", "format": "date-time"}),
        ),
        (
            "list_sessions",
            "to",
            json!({"type": "string", "format": "date-time"}),
        ),
        (
            "list_deliveries",
            "status",
            json!({"type": "string", "enum": ["pending", "sent", "failed"]}),
        ),
        (
            "list_outbox",
            "kind",
            json!({"type": "string", "enum": ["sms", "email"]}),
        ),
        ("report", "area", json!({"type": "string", "enum": areas})),
        (
            "report",
            "list",
            json!({"type": "string", "enum": ["all", "summary"]}),
        ),
        (
            "report",
            "range",
            json!({"type": "string",
            "enum": ["today", "yesterday", "last_7_days", "this_month", "last_month"]}),
        ),
        (
            "report",
            "format",
            json!({"type": "string", "enum": ["json", "html", "xml", "tsv", "xlsx"]}),
        ),
        ("report", "tz", json!({"type": "string", "enum": zones})),
        ("report", "from", date.clone()),
        ("report", "to", date),
        ("report", "daily_from", minute.clone()),
        ("report", "daily_to", minute),
        ("report", "unit", unit),
        (
            "report",
            "per_page",
            json!({"type": "integer", "format": "int32", "minimum": 1, "maximum": 1000}),
        ),
        (
            "report",
            "page",
            json!({"type": "integer", "format": "int32", "minimum": 0, "maximum": u32::MAX}),
        ),
    ];
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for item in paths.values_mut().filter_map(Value::as_object_mut) {
        for op in item.values_mut() {
            let id = op["operationId"].as_str().unwrap_or_default().to_string();
            let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) else {
                continue;
            };
            for param in params.iter_mut() {
                let name = param["name"].as_str().unwrap_or_default().to_string();
                if let Some((_, _, schema)) =
                    patches.iter().find(|(o, n, _)| *o == id && *n == name)
                {
                    param["schema"] = schema.clone();
                }
            }
        }
    }
}
