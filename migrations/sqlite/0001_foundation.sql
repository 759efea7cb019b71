-- Foundation schema. The PostgreSQL twin lives in migrations/postgres/0001_foundation.sql and differs only
-- in how an auto-increment key is spelled; a test compares the two column by column.
-- Times are UTC milliseconds since the Unix epoch (BIGINT): one portable, sortable type on both stores.
-- Flags are BIGINT 0/1: the sqlx Any driver cannot decode SQLite's BOOLEAN.


CREATE TABLE org_groups (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,                       -- technician_group | administrator_group
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    parent_id BIGINT REFERENCES org_groups(id),
    enabled BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    deleted_at BIGINT
);
CREATE INDEX org_groups_parent ON org_groups(parent_id);

CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    role TEXT NOT NULL,                       -- master_administrator | administrator | technician
    name TEXT NOT NULL,
    nickname TEXT NOT NULL,
    email TEXT NOT NULL,
    email_lower TEXT NOT NULL,
    sso_id TEXT NOT NULL,
    description TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    password_changed_at BIGINT NOT NULL,
    must_change_password BIGINT NOT NULL,
    enabled BIGINT NOT NULL,
    group_id BIGINT REFERENCES org_groups(id),
    language TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    deleted_at BIGINT
);
-- The login is unique case-insensitively among users that exist; deleted users keep their row for reports.
CREATE UNIQUE INDEX users_email_live ON users(email_lower) WHERE deleted_at IS NULL;
CREATE INDEX users_group ON users(group_id);

CREATE TABLE administrator_assignments (
    administrator_id BIGINT NOT NULL REFERENCES users(id),
    technician_group_id BIGINT NOT NULL REFERENCES org_groups(id),
    PRIMARY KEY (administrator_id, technician_group_id)
);

CREATE TABLE technician_group_settings (
    group_id BIGINT PRIMARY KEY REFERENCES org_groups(id),
    settings TEXT NOT NULL,                   -- JSON, validated by the server
    updated_at BIGINT NOT NULL
);

CREATE TABLE global_settings (
    id BIGINT PRIMARY KEY,                    -- always 1
    settings TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE auth_tokens (
    token_hash TEXT PRIMARY KEY,              -- SHA-256 of the bearer token; the token itself is never stored
    user_id BIGINT NOT NULL REFERENCES users(id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT,
    address TEXT NOT NULL
);
CREATE INDEX auth_tokens_user ON auth_tokens(user_id);

-- Append-only: every login and logout, for the Login report.
CREATE TABLE logins (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL REFERENCES users(id),
    event TEXT NOT NULL,                      -- login | logout
    method TEXT NOT NULL,                     -- password | sso
    address TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX logins_user_at ON logins(user_id, at);

-- Append-only: the guide's Audit report, one row per changed field.
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at BIGINT NOT NULL,
    requested_by_id BIGINT NOT NULL,
    requested_by_name TEXT NOT NULL,
    entity_type TEXT NOT NULL,
    entity_id BIGINT NOT NULL,
    entity_name TEXT NOT NULL,
    change_type TEXT NOT NULL,                -- Add | Delete | Move | Copy | Assign | Unassign | Change
    section TEXT NOT NULL,
    field TEXT NOT NULL,
    old_value TEXT,
    old_action TEXT,
    new_value TEXT,
    new_action TEXT
);
CREATE INDEX audit_log_at ON audit_log(at);
CREATE INDEX audit_log_entity ON audit_log(entity_type, entity_id);
CREATE INDEX audit_log_requested_by ON audit_log(requested_by_id, at);
