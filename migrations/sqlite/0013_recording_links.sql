-- The key that signs recording links (issue 17): POST /api/v1/recordings/{id}/link hands out a
-- URL carrying an HMAC of the recording id and an expiry made with it. One row; replacing the
-- secret (rotation) revokes every link handed out before.
CREATE TABLE recording_link_keys (
    id BIGINT PRIMARY KEY,                    -- always 1
    secret TEXT NOT NULL,                     -- 32 random bytes, hex
    created_at BIGINT NOT NULL
);
