-- complete.lua: store the final result for TTL seconds; only the current owner may.
-- KEYS[1] record hash   KEYS[2] notify list
-- ARGV[1] time override ('' = TIME)   ARGV[2] owner's token   ARGV[3] result bytes
-- ARGV[4] TTL seconds
-- Returns 1 if stored, 0 if the caller no longer owns the key (lease lost, fenced off).
local rec, list = KEYS[1], KEYS[2]
local r = live_record(rec, list)
if not r or r[2] ~= ARGV[2] or r[4] then
  return 0  -- gone, lease ended, fenced off by a newer owner, or already completed
end
local ttl = tonumber(ARGV[4])
redis.call('HSET', rec, 'result', ARGV[3], 'expires', fmt(NOW + ttl))
redis.call('PEXPIRE', rec, math.ceil(ttl * 1000) + GC_MARGIN_MS)
notify(list)
return 1
