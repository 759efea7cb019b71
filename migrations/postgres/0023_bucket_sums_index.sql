-- PostgreSQL parity at a million sessions (issue 19): the Summaries read a window's buckets
-- (`span` and `at IN (…)`) as an index-only scan of this index. The table keeps rows in the
-- order they were added (each slice of time's hour and day rows interleaved, every row
-- rewritten by each session that ends in it), so a year's day rows lay spread over most of its
-- pages: the Session Summary read 31,800 pages for 132,620 rows (130 ms at 1 M sessions); from
-- this index 6,300 (56 ms). It holds every column of the table, so a column added to
-- session_buckets later belongs in its INCLUDE list too (else the scan reads the table again).
-- SQLite's twin creates nothing: there the table is stored in its primary key's order already
-- (WITHOUT ROWID). One numbering for both stores.
CREATE INDEX session_buckets_sums ON session_buckets (span, at) INCLUDE (group_id, technician_id,
    created_by, joined, handled, missed, failed, sessions, connecting, waiting, active, work, hold,
    transfer, reconnecting, total, longest, missed_wait, longest_missed_wait, transfers);
