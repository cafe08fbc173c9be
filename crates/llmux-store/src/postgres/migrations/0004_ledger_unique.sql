-- One record per record id: the ledger gives every record a unique id, so a record
-- written again (replayed after a crash) is skipped. The client may choose the request
-- id (`x-request-id`), so it is not unique. Rows a crash wrote twice before this
-- version (identical in every column but the row id) are removed, the first kept.
DELETE FROM usage AS later USING usage AS earlier
    WHERE later.id > earlier.id AND later.request_id = earlier.request_id
    AND later.key_id IS NOT DISTINCT FROM earlier.key_id AND later.model = earlier.model
    AND later.provider IS NOT DISTINCT FROM earlier.provider AND later.status = earlier.status
    AND later.input_tokens = earlier.input_tokens AND later.output_tokens = earlier.output_tokens
    AND later.cost_nanos IS NOT DISTINCT FROM earlier.cost_nanos AND later.latency_ms = earlier.latency_ms
    AND later.created_at = earlier.created_at;
ALTER TABLE usage ADD COLUMN record_id TEXT COLLATE "C";
-- Rows from before have none (NULLs never conflict).
CREATE UNIQUE INDEX usage_record_id ON usage (record_id);

-- The store's change counter on keys and teams: each write takes the next value under
-- a transaction-level advisory lock, so values commit in order and refreshes follow
-- the store's order rather than writers' clocks; updates compare and set on it.
CREATE SEQUENCE llmux_changes;
ALTER TABLE keys ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;
UPDATE keys SET change_seq = nextval('llmux_changes');
CREATE INDEX keys_change_seq ON keys (change_seq);
ALTER TABLE teams ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;
UPDATE teams SET change_seq = nextval('llmux_changes');

-- Writers that do not number their changes (an older llmux during a rolling upgrade, a
-- hand-written UPDATE) get a number all the same, in commit order, and cannot clear a
-- revocation. (llmux's own writes number themselves; this only fills in.)
CREATE FUNCTION llmux_number_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.change_seq = 0 THEN
            PERFORM pg_advisory_xact_lock(119212948682754);
            NEW.change_seq := nextval('llmux_changes');
        END IF;
    ELSE
        IF NEW.change_seq = OLD.change_seq THEN
            PERFORM pg_advisory_xact_lock(119212948682754);
            NEW.change_seq := nextval('llmux_changes');
        END IF;
        IF TG_TABLE_NAME = 'keys' THEN
            IF OLD.revoked_at IS NOT NULL THEN
                NEW.revoked_at := OLD.revoked_at;
            END IF;
        END IF;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER keys_numbered BEFORE INSERT OR UPDATE ON keys
    FOR EACH ROW EXECUTE FUNCTION llmux_number_change();
CREATE TRIGGER teams_numbered BEFORE INSERT OR UPDATE ON teams
    FOR EACH ROW EXECUTE FUNCTION llmux_number_change();
