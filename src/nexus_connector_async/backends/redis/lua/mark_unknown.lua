-- mark_unknown.lua: the owner's request may have reached the vendor and no answer was seen: keep
-- the key "unknown" for TTL seconds, so nothing sends it again (at most once).
-- KEYS[1] record hash   KEYS[2] notify list
-- ARGV[1] time override ('' = TIME)   ARGV[2] owner's token   ARGV[3] TTL seconds
-- Returns 1 if marked, 0 if the caller no longer owns the key (or it was already completed).
local rec, list = KEYS[1], KEYS[2]
local r = live_record(rec, list)
if not r or r[2] ~= ARGV[2] or r[4] then
  return 0
end
local ttl = tonumber(ARGV[3])
redis.call('HSET', rec, 'unknown', '1', 'expires', fmt(NOW + ttl))
redis.call('PEXPIRE', rec, math.ceil(ttl * 1000) + GC_MARGIN_MS)
notify(list)
return 1
