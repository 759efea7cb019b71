-- Reports at ten million sessions (issue 19): the Login report's and Performance's reads of logins
-- and console statuses answered from indexes alone. The year's logins (and their count) in time
-- order, or per user for Performance's page, with the end and covered time migration 0024 keeps
-- (and `event`, which SQLite reads to know a row is in a partial index's range);
-- a user's console statuses with the status. Without them each row is a lookup into the table
-- (a million sessions, SQLite, sqlite3 shell: a year's 52,190 logins 114 ms and their count 64 ms;
-- with them 57 and 1 ms). Partial: logout rows are never read there.
CREATE INDEX logins_report ON logins(at, id, user_id, end_at, covered, address, event)
    WHERE event = 'login';
CREATE INDEX logins_user_report ON logins(user_id, at, id, end_at, covered, address, event)
    WHERE event = 'login';
DROP INDEX technician_status_events_user;
CREATE INDEX technician_status_events_user ON technician_status_events(user_id, at, id, status);
