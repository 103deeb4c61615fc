-- lock_release.lua: release a lock only if the caller's token still holds it.
-- KEYS[1] value hash: v (holder's token), x (lease end)
-- ARGV[1] time override ('' = TIME)   ARGV[2] token
-- Returns 1 if released, else 0.
local r = redis.call('HMGET', KEYS[1], 'v', 'x')
if r[1] ~= ARGV[2] or (r[2] and tonumber(r[2]) <= NOW) then
  return 0
end
redis.call('DEL', KEYS[1])
return 1
