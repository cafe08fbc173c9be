-- wrk script for bench/load.sh: POST a small chat completion.
-- Environment: BENCH_PATH (default /v1/chat/completions), BENCH_MODEL (default bench),
-- BENCH_AUTH (bearer token, optional), BENCH_STREAM=1 for a streaming request.
-- done() prints one machine-readable `BENCH_RESULT` line (latencies in microseconds).

local path = os.getenv("BENCH_PATH") or "/v1/chat/completions"
local model = os.getenv("BENCH_MODEL") or "bench"
local auth = os.getenv("BENCH_AUTH") or ""
local stream = os.getenv("BENCH_STREAM") == "1"

local body = '{"model":"' .. model .. '","messages":[{"role":"user","content":"Say hello in one short sentence."}],"max_tokens":64'
if stream then
  body = body .. ',"stream":true,"stream_options":{"include_usage":true}'
end
body = body .. '}'

wrk.method = "POST"
wrk.path = path
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
if auth ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. auth
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d mean_us=%.1f max_us=%d non2xx=%d err_connect=%d err_read=%d err_write=%d err_timeout=%d\n",
    summary.requests, summary.duration,
    latency:percentile(50.0), latency:percentile(90.0), latency:percentile(99.0),
    latency.mean, latency.max,
    e.status, e.connect, e.read, e.write, e.timeout))
end
