-- Lens sessions. The PostgreSQL twin differs only in how an auto-increment key is spelled.

CREATE TABLE sessions (
    id BIGSERIAL PRIMARY KEY,
    created_by BIGINT NOT NULL REFERENCES users(id),  -- the technician who issued the code
    technician_id BIGINT,                     -- the current owner (NULL: queued for a group)
    group_id BIGINT NOT NULL REFERENCES org_groups(id),
    method TEXT NOT NULL,                     -- pin | link | sms | email
    pin TEXT,                                 -- 6 digits; cleared once used or dead
    link_token_hash TEXT,                     -- SHA-256 of the link token; the token is never stored
    code_expires_at BIGINT NOT NULL,
    resume_token_hash TEXT,
    name TEXT NOT NULL,
    cfield1 TEXT NOT NULL,
    cfield2 TEXT NOT NULL,
    cfield3 TEXT NOT NULL,
    cfield4 TEXT NOT NULL,
    cfield5 TEXT NOT NULL,
    tracking_id TEXT NOT NULL,
    phone TEXT NOT NULL,
    email TEXT NOT NULL,
    status TEXT NOT NULL,                     -- the guide's status names
    status_since BIGINT NOT NULL,
    before_reconnecting TEXT,
    last_activity BIGINT NOT NULL,
    ever_active BIGINT NOT NULL,
    policy TEXT NOT NULL,                     -- JSON: audio, auto-start, time-outs fixed at creation
    customer_ip TEXT NOT NULL,
    platform TEXT NOT NULL,
    device_model TEXT NOT NULL,
    app TEXT NOT NULL,
    browser TEXT NOT NULL,
    locale TEXT NOT NULL,
    device_id TEXT NOT NULL,
    transmitted_bytes BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    ended_at BIGINT
);
CREATE INDEX sessions_status ON sessions(status);
CREATE INDEX sessions_technician ON sessions(technician_id);
CREATE INDEX sessions_created ON sessions(created_at);
-- A PIN is unique among live codes, across nodes.
CREATE UNIQUE INDEX sessions_live_pin ON sessions(pin) WHERE pin IS NOT NULL;
CREATE UNIQUE INDEX sessions_link_token ON sessions(link_token_hash) WHERE link_token_hash IS NOT NULL;

-- Append-only: every status change. Reports compute every duration from these rows.
CREATE TABLE session_events (
    id BIGSERIAL PRIMARY KEY,
    session_id BIGINT NOT NULL REFERENCES sessions(id),
    seq BIGINT NOT NULL,                      -- order within the session
    at BIGINT NOT NULL,
    from_status TEXT NOT NULL,
    to_status TEXT NOT NULL,
    actor TEXT NOT NULL,                      -- customer | technician | system
    actor_id BIGINT,
    reason TEXT NOT NULL,
    technician_id BIGINT,
    group_id BIGINT NOT NULL,
    detail TEXT NOT NULL                      -- e.g. the transfer comment and target
);
CREATE INDEX session_events_session ON session_events(session_id, seq);
CREATE INDEX session_events_at ON session_events(at);

CREATE TABLE chat_messages (
    id BIGSERIAL PRIMARY KEY,
    session_id BIGINT NOT NULL REFERENCES sessions(id),
    at BIGINT NOT NULL,
    sender TEXT NOT NULL,                     -- technician | customer | system
    sender_id BIGINT,
    name TEXT NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX chat_messages_session ON chat_messages(session_id, id);

CREATE TABLE session_notes (
    id BIGSERIAL PRIMARY KEY,
    session_id BIGINT NOT NULL REFERENCES sessions(id),
    technician_id BIGINT NOT NULL,
    at BIGINT NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX session_notes_session ON session_notes(session_id, id);

-- Append-only: technician console status (available | busy | away | offline) for the Login report.
CREATE TABLE technician_status_events (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id),
    at BIGINT NOT NULL,
    status TEXT NOT NULL
);
CREATE INDEX technician_status_events_user ON technician_status_events(user_id, at);

-- Outbound messages that must not be lost (SMS, email): written first, delivered by a worker with
-- retries and back-off, marked sent only on success.
CREATE TABLE outbox (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL,                       -- sms | email
    session_id BIGINT,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    provider TEXT NOT NULL,
    status TEXT NOT NULL,                     -- pending | sent | failed
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    last_error TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    sent_at BIGINT
);
CREATE INDEX outbox_pending ON outbox(status, next_attempt_at);
