-- idem_extend.lua: push the owner's lease end to now + lease while a long call is still running.
-- KEYS[1] record hash   KEYS[2] notify list
-- ARGV[1] time override ('' = TIME)   ARGV[2] owner's token   ARGV[3] lease seconds
-- Returns 1 if extended, 0 if the caller no longer owns the key.
local rec, list = KEYS[1], KEYS[2]
local r = owned_record(rec, list, ARGV[2])
if not r or r[6] then
  return 0  -- gone, lease ended, fenced off by a newer owner, completed or unknown
end
local lease = tonumber(ARGV[3])
-- An at-most-once record outlives its lease by its unknown ttl.
expire_after(rec, 'expires', lease, lease + (tonumber(r[5]) or 0))
return 1
