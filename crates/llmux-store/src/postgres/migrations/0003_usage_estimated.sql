-- TRUE when some of a record's tokens are llmux's estimate, not the upstream's figures
-- (the request ended before the upstream reported usage, or its answer had none).
ALTER TABLE usage ADD COLUMN usage_estimated BOOLEAN NOT NULL DEFAULT FALSE;
