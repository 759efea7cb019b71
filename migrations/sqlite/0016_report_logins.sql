-- Reports at scale (issue 19): each login's end is the user's next login or logout, looked up per
-- login in order of (time, id) with LIMIT 1. An index on (user_id, at) gives that order only in
-- SQLite (whose indexes end with the rowid); PostgreSQL sorted every later login of the user for
-- each login (6 s for a year's Login and Performance Summaries at a million sessions). With the
-- id in the index both walk it to the first row. The PostgreSQL twin is the same statement (in
-- SQLite the index is the old one under a new name), so both stores keep the same indexes.
DROP INDEX logins_user_at;
CREATE INDEX logins_user_at_id ON logins(user_id, at, id);
