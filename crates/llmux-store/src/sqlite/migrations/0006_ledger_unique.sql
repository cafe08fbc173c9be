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

-- Writers that do not number their changes (an older llmux during a rolling upgrade, a
-- hand-written UPDATE) get a number all the same, and cannot clear a revocation.
CREATE TRIGGER keys_numbered_insert AFTER INSERT ON keys WHEN NEW.change_seq = 0
BEGIN
    UPDATE keys SET change_seq = (SELECT MAX(change_seq) + 1 FROM keys) WHERE id = NEW.id;
END;
CREATE TRIGGER keys_numbered_update AFTER UPDATE ON keys WHEN NEW.change_seq = OLD.change_seq
BEGIN
    UPDATE keys SET change_seq = (SELECT MAX(change_seq) + 1 FROM keys),
        revoked_at = COALESCE(OLD.revoked_at, NEW.revoked_at) WHERE id = NEW.id;
END;
CREATE TRIGGER keys_stay_revoked AFTER UPDATE OF revoked_at ON keys
    WHEN OLD.revoked_at IS NOT NULL AND NEW.revoked_at IS NOT OLD.revoked_at
BEGIN
    UPDATE keys SET revoked_at = OLD.revoked_at WHERE id = NEW.id;
END;
CREATE TRIGGER teams_numbered_insert AFTER INSERT ON teams WHEN NEW.change_seq = 0
BEGIN
    UPDATE teams SET change_seq = (SELECT MAX(change_seq) + 1 FROM teams) WHERE name = NEW.name;
END;
CREATE TRIGGER teams_numbered_update AFTER UPDATE ON teams WHEN NEW.change_seq = OLD.change_seq
BEGIN
    UPDATE teams SET change_seq = (SELECT MAX(change_seq) + 1 FROM teams) WHERE name = NEW.name;
END;
