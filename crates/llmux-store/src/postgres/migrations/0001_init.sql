-- The schema of SQLite's migrations 0001-0003 in one step. Integers are BIGINT, JSON
-- is TEXT as in SQLite, so both backends read back identical values. Text compares
-- bytewise (COLLATE "C"), as SQLite's BINARY does: lists and summaries sort the same.
CREATE TABLE keys (
    id TEXT COLLATE "C" PRIMARY KEY,
    name TEXT NOT NULL,
    key_hash TEXT COLLATE "C" NOT NULL UNIQUE,
    key_prefix TEXT NOT NULL,
    team TEXT COLLATE "C",
    models TEXT,
    region TEXT,
    budget_nanos BIGINT,
    budget_currency TEXT,
    budget_period TEXT,
    rpm_limit BIGINT,
    tpm_limit BIGINT,
    expires_at BIGINT,
    metadata TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX keys_updated_at ON keys (updated_at);

CREATE TABLE teams (
    name TEXT COLLATE "C" PRIMARY KEY,
    models TEXT,
    region TEXT,
    budget_nanos BIGINT,
    budget_currency TEXT,
    budget_period TEXT,
    rpm_limit BIGINT,
    tpm_limit BIGINT,
    metadata TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX teams_updated_at ON teams (updated_at);

CREATE TABLE usage (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id TEXT NOT NULL,
    key_id TEXT COLLATE "C",
    model TEXT COLLATE "C" NOT NULL,
    provider TEXT COLLATE "C",
    upstream_model TEXT,
    input_tokens BIGINT NOT NULL DEFAULT 0,
    output_tokens BIGINT NOT NULL DEFAULT 0,
    cached_tokens BIGINT NOT NULL DEFAULT 0,
    reasoning_tokens BIGINT NOT NULL DEFAULT 0,
    cost_nanos BIGINT,
    currency TEXT COLLATE "C",
    status BIGINT NOT NULL,
    error_code TEXT,
    attempts BIGINT NOT NULL DEFAULT 0,
    latency_ms BIGINT NOT NULL DEFAULT 0,
    ttft_ms BIGINT,
    created_at BIGINT NOT NULL,
    -- Per-attempt details (JSON) of requests that took more than one attempt or failed
    -- upstream; NULL for a plain success.
    attempt_log TEXT,
    -- The key's team when the request was made.
    team TEXT COLLATE "C"
);
-- The same indexes as SQLite's, and no more: each one costs every ledger insert. The
-- team index is partial, so requests of keys without a team cost no index insert.
CREATE INDEX usage_created_at ON usage (created_at);
CREATE INDEX usage_key_created ON usage (key_id, created_at);
CREATE INDEX usage_team_created ON usage (team, created_at) WHERE team IS NOT NULL;
