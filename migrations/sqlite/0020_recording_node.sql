-- The node whose recorder writes a recording (issue 15): a node starting closes only the
-- recordings its own earlier run left open, not those another live node is still writing.
-- NULL for recordings made before this migration (closed by whichever node starts first).
ALTER TABLE recordings ADD COLUMN node_id TEXT;
