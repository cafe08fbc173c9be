-- One record per request: rows a crash wrote twice are removed (the first kept), and
-- the ledger refuses a second one from now on (inserts skip it).
DELETE FROM usage WHERE id NOT IN (SELECT MIN(id) FROM usage GROUP BY request_id);
CREATE UNIQUE INDEX usage_request_id ON usage (request_id);

-- The store's change counter on keys and teams: each write takes the next value, so
-- refreshes follow the store's order rather than writers' clocks, and updates compare
-- and set on it.
ALTER TABLE keys ADD COLUMN change_seq INTEGER NOT NULL DEFAULT 0;
UPDATE keys SET change_seq = rowid;
CREATE INDEX keys_change_seq ON keys (change_seq);
ALTER TABLE teams ADD COLUMN change_seq INTEGER NOT NULL DEFAULT 0;
UPDATE teams SET change_seq = rowid;
