-- Routed signaling between nodes (issue 15). SQLite is one node: these tables keep the schema the
-- same on both stores and stay empty here (everything is in-process). See the PostgreSQL file.
CREATE TABLE node_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    to_node TEXT NOT NULL,
    from_node TEXT NOT NULL,
    conn BIGINT NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX node_messages_to ON node_messages(to_node, id);
CREATE TABLE technician_active (
    technician_id BIGINT PRIMARY KEY,
    session_id BIGINT NOT NULL,
    node_id TEXT NOT NULL
);
