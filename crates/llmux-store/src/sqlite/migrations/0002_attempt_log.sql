-- Per-attempt details of requests that took more than one attempt or failed upstream:
-- a JSON array of {provider, model, outcome, latency_ms}. NULL for a plain success.
ALTER TABLE usage ADD COLUMN attempt_log TEXT;
