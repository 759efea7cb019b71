-- Reports: survey answers, chatlog deletion, and the indexes the reports' queries use.
-- The PostgreSQL twin differs only in how an auto-increment key is spelled.

-- One submitted survey: a customer's (issued by a technician at session end) or a technician's
-- session evaluation. The questions are copied with the answers so a later edit of the group's
-- survey does not change what was answered.
CREATE TABLE survey_answers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id BIGINT NOT NULL REFERENCES sessions(id),
    kind TEXT NOT NULL,                       -- customer | technician
    technician_id BIGINT NOT NULL,            -- the issuing (customer) or submitting (technician) technician
    group_id BIGINT NOT NULL,                 -- the Source: the technician group whose survey this is
    issued_by_closing BIGINT NOT NULL,        -- customer surveys: 1 = issued by the closing technician
    submitted_at BIGINT NOT NULL,
    answers TEXT NOT NULL                     -- JSON: [{"question": "...", "answer": "..."}], in order
);
CREATE INDEX survey_answers_kind_at ON survey_answers(kind, submitted_at);
CREATE INDEX survey_answers_session ON survey_answers(session_id);

-- The guide's chatlog deletion: queued by a master administrator, revocable until purge_at (24 h),
-- then the session's chat is purged and purged_at set. Revoking deletes the row (the audit log
-- keeps both actions).
CREATE TABLE chatlog_deletions (
    session_id BIGINT PRIMARY KEY REFERENCES sessions(id),
    queued_at BIGINT NOT NULL,
    queued_by BIGINT NOT NULL,
    purge_at BIGINT NOT NULL,
    purged_at BIGINT
);
CREATE INDEX chatlog_deletions_due ON chatlog_deletions(purged_at, purge_at);

-- Reports select sessions by creation time within a scope, and logins by time.
CREATE INDEX sessions_created_group ON sessions(created_at, group_id);
CREATE INDEX logins_at ON logins(at);
CREATE INDEX technician_status_events_at ON technician_status_events(at);
