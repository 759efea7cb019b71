-- Reports at ten million sessions (issue 19): the Login report's Idle Time is login time in
-- which the technician had none of the report's sessions live (`session_spans`). Kept per
-- technician and UTC hour: how much of the hour the union of the technician's stored spans
-- covers, and the creation times of the sessions those spans belong to (first, last) and where
-- the earliest of them starts. A report takes an hour's coverage as is when the hour lies
-- wholly within one of the technician's logins, every session with a span in it is one the
-- report selects (both creation times within one stretch its window and daily range keep
-- wholly), and no live session of the technician touches it; other login time is computed
-- from the spans themselves, starting at the earliest span's start (src/reports/mod.rs:
-- `console_times`). Rows are rewritten in the transaction that writes the spans
-- (src/store/reports.rs: `write_session_timings`).
-- The PostgreSQL twin differs only in `WITHOUT ROWID`.
CREATE TABLE idle_buckets (
    technician_id BIGINT NOT NULL,        -- session_spans.live_technician_id
    at BIGINT NOT NULL,                   -- the hour's start, UTC ms
    covered BIGINT NOT NULL,              -- ms of the hour inside the union of the spans
    first_created BIGINT NOT NULL,        -- MIN and MAX of the spans' sessions' created_at
    last_created BIGINT NOT NULL,
    earliest_start BIGINT NOT NULL,       -- MIN of the spans' start_at (before the hour, for long ones)
    PRIMARY KEY (technician_id, at)
) WITHOUT ROWID;

-- The spans overlapping a time, by technician: those starting from the earliest start on.
CREATE INDEX session_spans_start ON session_spans(live_technician_id, start_at, end_at, created_at,
    group_id, technician_id, created_by);

-- The ended sessions of existing stores: each span cut into its hours, and per technician and
-- hour the union's length (each piece, in order of start, adds what lies after the ends of the
-- pieces before it).
INSERT INTO idle_buckets
WITH RECURSIVE pieces(t, h, a, e, c) AS (
    SELECT live_technician_id, start_at - (((start_at % 3600000) + 3600000) % 3600000), start_at,
        end_at, created_at
    FROM session_spans WHERE end_at > start_at
    UNION ALL
    SELECT t, h + 3600000, a, e, c FROM pieces WHERE h + 3600000 < e
), cut AS (
    SELECT t, h, a, CASE WHEN a > h THEN a ELSE h END AS x,
        CASE WHEN e < h + 3600000 THEN e ELSE h + 3600000 END AS y, c
    FROM pieces
), ordered AS (
    SELECT t, h, a, x, y, c,
        MAX(y) OVER (PARTITION BY t, h ORDER BY x, y ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before
    FROM cut
)
SELECT t, h,
    SUM(CASE WHEN before IS NULL THEN y - x WHEN y > before AND before > x THEN y - before
        WHEN before <= x THEN y - x ELSE 0 END),
    MIN(c), MAX(c), MIN(a)
FROM ordered GROUP BY t, h;
