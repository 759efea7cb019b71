-- Reports at ten million sessions (issue 19): the Summaries' sums kept per time bucket, so that a
-- year's Summary adds up a few hundred thousand bucket rows instead of scanning ten million
-- session rows. One row per (span, bucket start, the session columns a report's unit selects
-- on, the stored flags) holds the count, the sums and the maxima of the ended sessions created
-- in that bucket (`session_timings`, which stays the one source). Spans: a UTC hour (for daily
-- time ranges: an hour lies wholly inside or outside a range in whole-hour zones) and a UTC day
-- (for windows without a daily range). A report takes the buckets wholly inside its window and
-- daily range and scans the rest (edges, half-hour zones, DST changes inside an hour) in
-- `session_timings` (src/reports/buckets.rs). Rows are added to in the transaction that writes
-- the timing row (src/store/reports.rs: `write_session_timings`).
-- The PostgreSQL twin differs only in `WITHOUT ROWID` (there the primary key is an index beside
-- the table).
CREATE TABLE session_buckets (
    span BIGINT NOT NULL,                 -- 3600000 (a UTC hour) or 86400000 (a UTC day)
    at BIGINT NOT NULL,                   -- the bucket's start, UTC ms, a multiple of span
    group_id BIGINT NOT NULL,
    technician_id BIGINT NOT NULL,        -- the sessions' technician_id; 0 when they have none
    created_by BIGINT NOT NULL,
    joined BIGINT NOT NULL,               -- the sessions' stored flags
    handled BIGINT NOT NULL,
    missed BIGINT NOT NULL,
    failed BIGINT NOT NULL,
    sessions BIGINT NOT NULL,             -- how many sessions, then sums of their durations (ms)
    connecting BIGINT NOT NULL,
    waiting BIGINT NOT NULL,
    active BIGINT NOT NULL,
    work BIGINT NOT NULL,
    hold BIGINT NOT NULL,
    transfer BIGINT NOT NULL,
    reconnecting BIGINT NOT NULL,
    total BIGINT NOT NULL,
    longest BIGINT NOT NULL,              -- MAX(total)
    missed_wait BIGINT NOT NULL,          -- SUM(end_at - waiting_start), 0 without a wait
    longest_missed_wait BIGINT NOT NULL,  -- MAX of the same, 0 without a wait (never negative)
    transfers BIGINT NOT NULL,
    PRIMARY KEY (span, at, group_id, technician_id, created_by, joined, handled, missed, failed)
) WITHOUT ROWID;

-- The ended sessions of existing stores.
INSERT INTO session_buckets
SELECT s.span, t.created_at - (((t.created_at % s.span) + s.span) % s.span), t.group_id,
    COALESCE(t.technician_id, 0), t.created_by, t.joined, t.handled, t.missed, t.failed,
    COUNT(*), SUM(t.connecting), SUM(t.waiting), SUM(t.active), SUM(t.work), SUM(t.hold),
    SUM(t.transfer), SUM(t.reconnecting), SUM(t.total), MAX(t.total),
    COALESCE(SUM(t.end_at - t.waiting_start), 0), COALESCE(MAX(t.end_at - t.waiting_start), 0),
    SUM(t.transfers)
FROM session_timings t CROSS JOIN (SELECT 3600000 AS span UNION ALL SELECT 86400000) s
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9;
