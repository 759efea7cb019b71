-- Reports at ten million sessions (issue 19): `session_buckets` (0019) summed over the unit
-- columns, for the reports of the whole organization. A bucket there has a row per group,
-- technician and creator with sessions in it (about a million day rows for a year of ten
-- million sessions, 0.3 s to add up for a year's Session Summary or a List All's total); here a
-- few per bucket, one per combination of the stored flags. Kept like session_buckets, in the
-- transaction that writes the timing row (src/store/reports.rs: `add_to_buckets`), and read by
-- `stored_sums` for one sum without a unit.
-- The SQLite twin differs only in `WITHOUT ROWID`.
CREATE TABLE session_totals (
    span BIGINT NOT NULL,
    at BIGINT NOT NULL,
    joined BIGINT NOT NULL,
    handled BIGINT NOT NULL,
    missed BIGINT NOT NULL,
    failed BIGINT NOT NULL,
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
    PRIMARY KEY (span, at, joined, handled, missed, failed)
);

-- Existing stores: from their buckets.
INSERT INTO session_totals
SELECT span, at, joined, handled, missed, failed, SUM(sessions), SUM(connecting), SUM(waiting),
    SUM(active), SUM(work), SUM(hold), SUM(transfer), SUM(reconnecting), SUM(total), MAX(longest),
    SUM(missed_wait), MAX(longest_missed_wait), SUM(transfers)
FROM session_buckets GROUP BY span, at, joined, handled, missed, failed;
