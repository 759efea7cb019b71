-- Routed signaling between nodes (issue 15, DESIGN.md §8). A message is a row addressed to one
-- node, written in the same transaction as the state it reports; NOTIFY on `lens_bus` (payload: the
-- addressee's id) only wakes the addressee, which deletes and handles its rows in id order, so a
-- missed notification loses nothing. `conn` names a client socket on the node that holds it.
CREATE TABLE node_messages (
    id BIGSERIAL PRIMARY KEY,
    to_node TEXT NOT NULL,
    from_node TEXT NOT NULL,
    conn BIGINT NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX node_messages_to ON node_messages(to_node, id);
-- The one-Active-session rule across nodes: a technician's Active session, claimed by the node
-- that owns it before the pickup or resume and released in the transaction that stores the
-- session leaving Active. A claim of a dead node does not count.
CREATE TABLE technician_active (
    technician_id BIGINT PRIMARY KEY,
    session_id BIGINT NOT NULL,
    node_id TEXT NOT NULL
);
