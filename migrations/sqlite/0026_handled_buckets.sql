-- Reports at ten million sessions (issue 19): Performance's per-technician sums of the handled
-- sessions, kept per bucket with one row per technician. `session_buckets` (0019) has a row per
-- group, technician, creator and flags: a year's Performance read 186,707 of its day rows at
-- ten million sessions (0.4 s), and all the hour rows of its hours with a daily time range. Here:
-- the handled sessions only, keyed by the technician a session's rows name
-- (COALESCE(technician_id, created_by)), at four spans:
--   3600000     a UTC hour                  86400000   a UTC day
--   1382400000  16 UTC days (a block; blocks counted from the Unix epoch)
--   1386000000  a code: one UTC hour of the day over the 16 days of a block; `at` is the
--               block's start plus the hour of the day
-- so that a year's window reads about 23 blocks and the days at its edges, and a daily time
-- range in a whole-hour zone reads its hours of the day per block (src/reports/buckets.rs:
-- `blocked`). Kept like session_buckets, in the transaction that writes the timing row
-- (src/store/reports.rs: `add_to_handled_buckets`, `rebuild_buckets`).
-- The PostgreSQL twin differs only in `WITHOUT ROWID`.
CREATE TABLE handled_buckets (
    span BIGINT NOT NULL,
    at BIGINT NOT NULL,
    technician_id BIGINT NOT NULL,
    sessions BIGINT NOT NULL,
    connecting BIGINT NOT NULL,
    waiting BIGINT NOT NULL,
    active BIGINT NOT NULL,
    work BIGINT NOT NULL,
    hold BIGINT NOT NULL,
    transfer BIGINT NOT NULL,
    reconnecting BIGINT NOT NULL,
    total BIGINT NOT NULL,
    longest BIGINT NOT NULL,
    missed_wait BIGINT NOT NULL,
    longest_missed_wait BIGINT NOT NULL,
    transfers BIGINT NOT NULL,
    PRIMARY KEY (span, at, technician_id)
) WITHOUT ROWID;

-- As 0023 for session_buckets: PostgreSQL gets a covering index, so that a report reads the
-- buckets in key order without the table; here the table is stored in its key's order and it is
-- left out (commented with the marker tests/store.rs reads, so both files keep one schema).
-- postgres only: CREATE INDEX handled_buckets_sums ON handled_buckets (span, at, technician_id) INCLUDE (sessions,
-- postgres only:     connecting, waiting, active, work, hold, transfer, reconnecting, total, longest, missed_wait,
-- postgres only:     longest_missed_wait, transfers);

-- Existing stores: hours and days from their session buckets, then blocks from those days and
-- blocks' hours of the day from those hours.
INSERT INTO handled_buckets
SELECT span, at, CASE WHEN technician_id = 0 THEN created_by ELSE technician_id END,
    SUM(sessions), SUM(connecting), SUM(waiting), SUM(active), SUM(work), SUM(hold), SUM(transfer),
    SUM(reconnecting), SUM(total), MAX(longest), SUM(missed_wait), MAX(longest_missed_wait),
    SUM(transfers)
FROM session_buckets WHERE handled = 1 GROUP BY 1, 2, 3;

INSERT INTO handled_buckets
SELECT CASE WHEN span = 86400000 THEN 1382400000 ELSE 1386000000 END,
    at - (((at % 1382400000) + 1382400000) % 1382400000)
        + CASE WHEN span = 86400000 THEN 0 ELSE (((at % 86400000) + 86400000) % 86400000) END,
    technician_id, SUM(sessions), SUM(connecting), SUM(waiting), SUM(active), SUM(work), SUM(hold),
    SUM(transfer), SUM(reconnecting), SUM(total), MAX(longest), SUM(missed_wait),
    MAX(longest_missed_wait), SUM(transfers)
FROM handled_buckets WHERE span IN (3600000, 86400000) GROUP BY 1, 2, 3;
