-- Reports at ten million sessions (issue 19): the Transferred Sessions reports' count kept per
-- time bucket, as `session_buckets` keeps the Summaries' sums. A transfer is counted when its
-- session is (created in the window, the unit, the daily range) and its event is too (of the
-- unit, at a time the daily range keeps), so a row is keyed by both: the session's creation
-- bucket and columns a unit selects on, and the event's hour and columns. Day buckets (for
-- windows without a daily range, where the event's time does not matter) leave the event's
-- hour 0. A report counts the buckets whose creation hour and event hour lie wholly inside its
-- window and daily range and counts the rest of the transfers themselves
-- (src/reports/mod.rs: `transfer_count`). Rows are added to in the transaction that writes the
-- session's timing row (src/store/reports.rs: `write_session_timings`), from its events.
-- The SQLite twin differs only in `WITHOUT ROWID`.
CREATE TABLE transfer_buckets (
    span BIGINT NOT NULL,                 -- 3600000 (a UTC hour) or 86400000 (a UTC day)
    at BIGINT NOT NULL,                   -- the session's creation bucket, UTC ms
    event_at BIGINT NOT NULL,             -- hour buckets: the transfer event's UTC hour; day buckets: 0
    group_id BIGINT NOT NULL,             -- the session's (as in session_timings)
    technician_id BIGINT NOT NULL,        -- 0 when none
    created_by BIGINT NOT NULL,
    event_group_id BIGINT NOT NULL,       -- the transfer event's
    event_technician_id BIGINT NOT NULL,  -- 0 when none
    event_actor_id BIGINT NOT NULL,       -- 0 when none
    transfers BIGINT NOT NULL,
    PRIMARY KEY (span, at, event_at, group_id, technician_id, created_by, event_group_id,
        event_technician_id, event_actor_id)
);

-- The ended sessions of existing stores.
INSERT INTO transfer_buckets
SELECT p.span, t.created_at - (((t.created_at % p.span) + p.span) % p.span),
    CASE WHEN p.span = 3600000 THEN e.at - (((e.at % 3600000) + 3600000) % 3600000) ELSE 0 END,
    t.group_id, COALESCE(t.technician_id, 0), t.created_by, e.group_id,
    COALESCE(e.technician_id, 0), COALESCE(e.actor_id, 0), COUNT(*)
FROM session_timings t
    JOIN session_events e ON e.session_id = t.session_id AND e.to_status = 'Transferring'
    CROSS JOIN (SELECT 3600000 AS span UNION ALL SELECT 86400000) p
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9;
