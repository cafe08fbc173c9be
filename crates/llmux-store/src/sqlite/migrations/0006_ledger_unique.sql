-- One record per record id: the ledger gives every record a unique id, so a record
-- written again (replayed after a crash) is skipped. The client may choose the request
-- id (`x-request-id`), so it is not unique. Rows a crash wrote twice before this
-- version (identical in every column but the row id) are removed, the first kept.
DELETE FROM usage WHERE id NOT IN (
    SELECT MIN(id) FROM usage GROUP BY request_id, key_id, model, provider, status, input_tokens, output_tokens,
        cost_nanos, latency_ms, created_at
);
ALTER TABLE usage ADD COLUMN record_id TEXT;
-- Rows from before have none (NULLs never conflict).
CREATE UNIQUE INDEX usage_record_id ON usage (record_id);

-- The store's change counter on keys and teams: each write takes the next value, so
-- refreshes follow the store's order rather than writers' clocks, and updates compare
-- and set on it.
ALTER TABLE keys ADD COLUMN change_seq INTEGER NOT NULL DEFAULT 0;
UPDATE keys SET change_seq = rowid;
CREATE INDEX keys_change_seq ON keys (change_seq);
ALTER TABLE teams ADD COLUMN change_seq INTEGER NOT NULL DEFAULT 0;
UPDATE teams SET change_seq = rowid;
