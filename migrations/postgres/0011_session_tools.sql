-- The technician's tools on the live picture (issue 20), counted per session: strokes drawn,
-- drawings cleared, frames frozen, links sent. Strokes themselves are relayed, never stored.
ALTER TABLE sessions ADD COLUMN annotation_strokes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN annotation_clears BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN freezes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN urls_sent BIGINT NOT NULL DEFAULT 0;
