-- Wrong customer codes per client address across nodes (issue 15). SQLite is one node, which
-- counts them in memory: this table keeps the schema the same on both stores and stays empty here.
-- See the PostgreSQL file.
CREATE TABLE code_failures (
    address TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX code_failures_address ON code_failures(address, at);
CREATE INDEX code_failures_at ON code_failures(at);
