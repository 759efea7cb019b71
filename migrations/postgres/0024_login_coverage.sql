-- Reports at ten million sessions (issue 19): each login keeps its end and its covered time, so
-- the Login report reads logins and one number each instead of every live span of its window.
-- The Idle Time of a login is its time in which the technician had no session at all in a live
-- status in the console (the guide: "no sessions … Idle Time ends as soon as any session enters
-- any status"), whatever the report's filters: a property of the login alone.
-- `end_at`: on login rows, the user's next login or logout in (at, id) order (NULL while none).
-- `covered`: ms of [at, end_at) inside the stored live spans (`session_spans`) of any of the
-- user's ended sessions. Both are kept when a login or logout is recorded (src/store/logins.rs)
-- and when a session's spans are written (src/store/reports.rs: `write_session_timings`); the
-- report adds live sessions' spans itself (src/reports/mod.rs: `console_times`).
-- The SQLite twin carries the `ANALYZE` of the scratch table commented out (postgres only).
ALTER TABLE logins ADD COLUMN end_at BIGINT;
ALTER TABLE logins ADD COLUMN covered BIGINT NOT NULL DEFAULT 0;

-- A login's covered time is read from the user's spans ending after it starts; the
-- report-filter columns of the old index are no longer read.
DROP INDEX session_spans_technician;
CREATE INDEX session_spans_live ON session_spans(live_technician_id, end_at, start_at);

-- Existing stores: each login's end (as the report found it until now) ...
UPDATE logins SET end_at = (SELECT n.at FROM logins n WHERE n.user_id = logins.user_id
    AND n.at >= logins.at AND (n.at > logins.at OR n.id > logins.id) ORDER BY n.at, n.id LIMIT 1)
WHERE event = 'login';

-- ... and its covered time: each technician's spans merged into disjoint islands (a span starts
-- a new island when it starts after every earlier one ended), each login summing the islands'
-- parts inside it. Islands are disjoint, so those overlapping a login start no earlier than its
-- start less the longest island: that bounds the index range read.
CREATE TEMPORARY TABLE login_islands AS
WITH s AS (
    SELECT live_technician_id AS t, start_at, end_at,
        MAX(end_at) OVER (PARTITION BY live_technician_id ORDER BY start_at, end_at
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before_end
    FROM session_spans
), g AS (
    SELECT t, start_at, end_at,
        SUM(CASE WHEN before_end IS NULL OR start_at > before_end THEN 1 ELSE 0 END)
            OVER (PARTITION BY t ORDER BY start_at, end_at ROWS UNBOUNDED PRECEDING) AS island
    FROM s
)
SELECT t, MIN(start_at) AS a, MAX(end_at) AS b FROM g GROUP BY t, island;
CREATE INDEX login_islands_t ON login_islands(t, a);
ANALYZE login_islands;
UPDATE logins SET covered = COALESCE((SELECT SUM(
        CASE WHEN i.b < logins.end_at THEN i.b ELSE logins.end_at END
        - CASE WHEN i.a > logins.at THEN i.a ELSE logins.at END)
    FROM login_islands i WHERE i.t = logins.user_id AND i.a < logins.end_at
        AND i.a >= logins.at - (SELECT MAX(m.b - m.a) FROM login_islands m) AND i.b > logins.at), 0)
WHERE end_at IS NOT NULL;
DROP TABLE login_islands;
