-- Wrong customer codes per client address, counted across nodes (issue 15): each wrong code is a
-- row timed by the database's clock; a node refuses an address that has the limit of rows in the
-- last minute. Rows older than the window are deleted as new ones come.
CREATE TABLE code_failures (
    address TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX code_failures_address ON code_failures(address, at);
CREATE INDEX code_failures_at ON code_failures(at);
