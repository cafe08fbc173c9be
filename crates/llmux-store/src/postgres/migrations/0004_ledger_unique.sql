-- One record per request: rows a crash wrote twice are removed (the first kept), and
-- the ledger refuses a second one from now on (inserts skip it).
DELETE FROM usage AS later USING usage AS earlier
    WHERE later.request_id = earlier.request_id AND later.id > earlier.id;
CREATE UNIQUE INDEX usage_request_id ON usage (request_id);

-- The store's change counter on keys and teams: each write takes the next value under
-- a transaction-level advisory lock, so values commit in order and refreshes follow
-- the store's order rather than writers' clocks; updates compare and set on it.
CREATE SEQUENCE llmux_changes;
ALTER TABLE keys ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;
UPDATE keys SET change_seq = nextval('llmux_changes');
CREATE INDEX keys_change_seq ON keys (change_seq);
ALTER TABLE teams ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;
UPDATE teams SET change_seq = nextval('llmux_changes');
