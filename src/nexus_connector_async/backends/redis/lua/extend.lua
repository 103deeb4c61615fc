-- extend.lua: push the owner's lease end to now + lease while a long call is still running.
-- KEYS[1] record hash   KEYS[2] notify list
-- ARGV[1] time override ('' = TIME)   ARGV[2] owner's token   ARGV[3] lease seconds
-- Returns 1 if extended, 0 if the caller no longer owns the key.
local rec, list = KEYS[1], KEYS[2]
local r = live_record(rec, list)
if not r or r[2] ~= ARGV[2] or r[4] or r[6] then
  return 0  -- gone, lease ended, fenced off by a newer owner, completed or unknown
end
local lease = tonumber(ARGV[3])
redis.call('HSET', rec, 'expires', fmt(NOW + lease))
local keep = lease
if r[5] then
  keep = lease + tonumber(r[5])  -- an at-most-once record outlives its lease by its unknown ttl
end
redis.call('PEXPIRE', rec, math.ceil(keep * 1000) + GC_MARGIN_MS)
return 1
