//! Lua scripts run atomically on the server (EVALSHA, reloaded automatically on NOSCRIPT).
//!
//! Lua numbers are doubles: counter values are exact up to 2^53 (about 9.007e15), which is
//! 9 million currency units in nano-units. `add_many` passes deltas to INCRBY as strings, so
//! the stored value stays exact beyond that; only the total it returns would round.

use std::sync::LazyLock;

use redis::Script;

/// KEYS[1] counter; ARGV initial, limit, want (> 0), ttl_ms (0 = no expiry).
/// When the counter is absent it starts at `initial`; grants min(want, limit - used), at
/// least 0, and stores used + grant. A counter created here gets the expiry; one that would
/// be created at 0 is not created at all.
pub(crate) static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local current = redis.call('GET', KEYS[1])
local initial = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local used = initial
if current then used = tonumber(current) end
local grant = limit - used
if grant > want then grant = want end
if grant < 0 then grant = 0 end
if current then
  if grant > 0 then redis.call('INCRBY', KEYS[1], grant) end
else
  local value = used + grant
  if value ~= 0 then
    if ttl > 0 then
      redis.call('SET', KEYS[1], string.format('%d', value), 'PX', ttl)
    else
      redis.call('SET', KEYS[1], string.format('%d', value))
    end
  end
end
return grant
",
    )
});

/// KEYS[1] counter; ARGV units (> 0). Subtracts min(units, current), keeping the expiry; an
/// absent counter (expired window) stays absent. Returns the new value.
pub(crate) static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
current = tonumber(current)
local units = tonumber(ARGV[1])
if units > current then units = current end
if units <= 0 then return current end
return redis.call('DECRBY', KEYS[1], units)
",
    )
});

/// KEYS counters; ARGV triples (delta, ttl_ms, initial) per key. A counter this call creates
/// starts at `initial` and gets the expiry; then INCRBY delta each. Returns the new totals in
/// order.
pub(crate) static ADD_MANY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local totals = {}
for i, key in ipairs(KEYS) do
  local existed = redis.call('EXISTS', key)
  if existed == 0 and ARGV[3 * i] ~= '0' then redis.call('INCRBY', key, ARGV[3 * i]) end
  local total = redis.call('INCRBY', key, ARGV[3 * i - 2])
  local ttl = tonumber(ARGV[3 * i - 1])
  if existed == 0 and ttl > 0 then redis.call('PEXPIRE', key, ttl) end
  totals[i] = total
end
return totals
",
    )
});
