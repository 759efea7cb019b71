-- Screen recordings (issue 6). The PostgreSQL twin differs only in how an auto-increment key is spelled.

CREATE TABLE recordings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id BIGINT NOT NULL REFERENCES sessions(id),
    group_id BIGINT NOT NULL,                 -- the technician group whose forced recording applied
    location TEXT NOT NULL,                   -- redacted: a password is stored as ********
    file_name TEXT NOT NULL,                  -- relative to the location
    deferred BIGINT NOT NULL,                 -- 1: spooled and uploaded after the session
    size_bytes BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    codecs TEXT NOT NULL,                     -- e.g. "vp8,opus"
    status TEXT NOT NULL,                     -- recording | spooled | uploading | uploaded | failed
    last_error TEXT,
    attempts BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    ended_at BIGINT,
    updated_at BIGINT NOT NULL
);
CREATE INDEX recordings_session ON recordings(session_id);
