-- Responses API responses kept for `previous_response_id`, retrieval and input items
-- (`store: true`). `response` is the response object, `input_items` the JSON array of
-- every item the response was made from (earlier turns included); both as sent.
CREATE TABLE responses (
    id TEXT PRIMARY KEY,
    key_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    response TEXT NOT NULL,
    input_items TEXT NOT NULL
);
CREATE INDEX responses_expires_at ON responses (expires_at);
