-- kv_add.lua: add to a shared integer counter unless the total would pass a limit (spend guards).
-- KEYS[1] value hash: v (integer as a string), x (logical expiry)
-- ARGV[1] time override ('' = TIME)   ARGV[2] amount (integer, may be negative)
-- ARGV[3] limit ('' = none)   ARGV[4] TTL seconds, set when the counter is created ('' = none)
-- Returns {applied 1/0, total after (or unchanged total when refused), as a string}.
-- The total never goes below 0 (a refund cannot make room that was never spent).
local v, x = live_value(KEYS[1])
local total = tonumber(v) or 0
local expires = v and x  -- an expired counter starts afresh, with a new TTL
local new = math.max(0, total + tonumber(ARGV[2]))
if ARGV[3] ~= '' and tonumber(ARGV[2]) > 0 and new > tonumber(ARGV[3]) then
  return {0, string.format('%d', total)}
end
redis.call('HSET', KEYS[1], 'v', string.format('%d', new))
if not expires and ARGV[4] ~= '' then
  expire_after(KEYS[1], 'x', tonumber(ARGV[4]))
end
return {1, string.format('%d', new)}
