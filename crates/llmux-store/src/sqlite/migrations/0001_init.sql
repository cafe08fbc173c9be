CREATE TABLE keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    key_prefix TEXT NOT NULL,
    team TEXT,
    models TEXT,
    region TEXT,
    budget_nanos INTEGER,
    budget_currency TEXT,
    budget_period TEXT,
    rpm_limit INTEGER,
    tpm_limit INTEGER,
    expires_at INTEGER,
    metadata TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX keys_updated_at ON keys (updated_at);

CREATE TABLE usage (
    -- No AUTOINCREMENT: it costs a sqlite_sequence update per insert, and the
    -- ledger never deletes rows, so ids are never reused anyway.
    id INTEGER PRIMARY KEY,
    request_id TEXT NOT NULL,
    key_id TEXT,
    model TEXT NOT NULL,
    provider TEXT,
    upstream_model TEXT,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cached_tokens INTEGER NOT NULL DEFAULT 0,
    reasoning_tokens INTEGER NOT NULL DEFAULT 0,
    cost_nanos INTEGER,
    currency TEXT,
    status INTEGER NOT NULL,
    error_code TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    latency_ms INTEGER NOT NULL DEFAULT 0,
    ttft_ms INTEGER,
    created_at INTEGER NOT NULL
);
CREATE INDEX usage_created_at ON usage (created_at);
CREATE INDEX usage_key_created ON usage (key_id, created_at);
-- Two indexes only: each one costs every ledger insert. Model and provider filters
-- use the time index (their queries are time-bounded in practice).
