-- PostgreSQL parity (issue 19): the PostgreSQL twin of this migration adds a covering index on
-- session_buckets (span, at) so that its Summaries read a window's buckets in key order. Here
-- the table is stored in its primary key's order (WITHOUT ROWID), which already gives that:
-- nothing to create. One numbering for both stores.
SELECT 1;
