-- Several nodes on one PostgreSQL (issue 15): the node registry, and which node holds each live
-- session. A node writes its heartbeat every 2 s (the database's clock, so nodes' clocks need not
-- agree); a row whose heartbeat is older than 10 s is a dead node. `epoch` grows by one at every
-- start of a node id, so that a later takeover can fence an old incarnation.
CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    epoch BIGINT NOT NULL,
    internal_url TEXT NOT NULL,               -- where other nodes reach its HTTP API
    media_address TEXT NOT NULL,              -- the IP its ICE candidates carry
    udp_port BIGINT NOT NULL,
    tcp_port BIGINT,                          -- ICE-TCP; NULL when off
    state TEXT NOT NULL,                      -- serving | draining
    load BIGINT NOT NULL,                     -- live sessions it holds
    started_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);
-- The node that holds a live session (NULL: written before nodes existed, or on SQLite's one node).
ALTER TABLE sessions ADD COLUMN node_id TEXT;
CREATE INDEX sessions_live_node ON sessions(node_id) WHERE ended_at IS NULL;
