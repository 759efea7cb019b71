-- Reports at scale: one row of computed times per ended session, so Summary reports aggregate in
-- SQL and List All pages in SQL instead of reading every event. The row is written in the same
-- transaction as the session's final event, by `Timings::of` (src/reports/timings.rs) over the
-- session's events: the events stay the one source, this row is their computed summary and is
-- never edited by hand. Sessions ended before this migration are filled in by a startup job.
-- The SQLite twin differs only in how an auto-increment key is spelled.
CREATE TABLE session_timings (
    session_id BIGINT PRIMARY KEY REFERENCES sessions(id),
    created_at BIGINT NOT NULL,               -- the session's, for the report window and daily range
    created_by BIGINT NOT NULL,
    technician_id BIGINT,                     -- the last owner (the row's Technician, else created_by)
    group_id BIGINT NOT NULL,                 -- the last group
    connecting_start BIGINT,
    waiting_start BIGINT,
    start_at BIGINT,                          -- first Active (the guide's Start Time)
    end_at BIGINT,                            -- the final event (End Time)
    last_action BIGINT,
    final_status TEXT NOT NULL,
    connecting BIGINT NOT NULL,               -- durations, ms
    waiting BIGINT NOT NULL,
    active BIGINT NOT NULL,
    hold BIGINT NOT NULL,
    transfer BIGINT NOT NULL,
    reconnecting BIGINT NOT NULL,
    total BIGINT NOT NULL,
    work BIGINT NOT NULL,
    joined BIGINT NOT NULL,                   -- flags 0/1: entered Connecting or Active
    handled BIGINT NOT NULL,
    missed BIGINT NOT NULL,
    failed BIGINT NOT NULL,
    transfers BIGINT NOT NULL                 -- number of Transferring events
);
-- List All pages walk this in order and stop at the page's end; counts read only the index.
CREATE INDEX session_timings_report ON session_timings(created_at, session_id, group_id, technician_id,
    created_by, joined, handled, missed, failed);
-- The Performance report's sums by technician walk this in technician order (no sort, no table).
CREATE INDEX session_timings_technician ON session_timings((COALESCE(technician_id, created_by)), created_at,
    handled, waiting, active, work, total, group_id, technician_id, created_by);

-- When each technician had an ended session in the console in a live status (`Timings::live_spans`,
-- written with the timing row): the Login report's Idle Time is login time outside these. The
-- session's columns that select it for a report (as in session_timings) are repeated here so the
-- Login report reads this table alone.
CREATE TABLE session_spans (
    session_id BIGINT NOT NULL REFERENCES sessions(id),
    created_at BIGINT NOT NULL,
    created_by BIGINT NOT NULL,
    technician_id BIGINT,                     -- the session's last owner
    group_id BIGINT NOT NULL,
    live_technician_id BIGINT NOT NULL,       -- the technician who had it live
    start_at BIGINT NOT NULL,
    end_at BIGINT NOT NULL
);
CREATE INDEX session_spans_session ON session_spans(session_id);
-- The Login report reads every technician's spans in order from this index alone.
CREATE INDEX session_spans_technician ON session_spans(live_technician_id, created_at, start_at, end_at,
    group_id, technician_id, created_by);

-- Live sessions (no timing row yet) are found without scanning every ended one.
CREATE INDEX sessions_live ON sessions(id) WHERE ended_at IS NULL;
-- The Transferred Sessions reports page over transfer events only.
CREATE INDEX session_events_transfers ON session_events(session_id, seq) WHERE to_status = 'Transferring';
