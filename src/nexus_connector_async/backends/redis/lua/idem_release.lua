-- idem_release.lua: free a key after a transient failure so that a retry may claim it.
-- KEYS[1] record hash   KEYS[2] notify list
-- ARGV[1] time override (unused; kept for the common convention)   ARGV[2] owner's token
-- Returns 1 if released, 0 if the caller did not own it (or it was already completed).
local rec, list = KEYS[1], KEYS[2]
local r = redis.call('HMGET', rec, 'token', 'result')
if r[1] ~= ARGV[2] or r[2] then
  return 0
end
redis.call('DEL', rec)
notify(list)
return 1
