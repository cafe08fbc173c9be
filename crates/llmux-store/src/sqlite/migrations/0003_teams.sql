-- Teams own keys (keys.team holds the team's name) and limit them together.
CREATE TABLE teams (
    name TEXT PRIMARY KEY,
    models TEXT,
    region TEXT,
    budget_nanos INTEGER,
    budget_currency TEXT,
    budget_period TEXT,
    rpm_limit INTEGER,
    tpm_limit INTEGER,
    metadata TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX teams_updated_at ON teams (updated_at);

-- The key's team when the request was made: team spend and usage by team. The index
-- is partial, so requests of keys without a team cost no index insert.
ALTER TABLE usage ADD COLUMN team TEXT;
CREATE INDEX usage_team_created ON usage (team, created_at) WHERE team IS NOT NULL;
