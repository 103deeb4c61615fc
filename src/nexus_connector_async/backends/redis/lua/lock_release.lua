-- lock_release.lua: release a lock only if the caller's token still holds it.
-- KEYS[1] value hash: v (holder's token), x (lease end)
-- ARGV[1] time override ('' = TIME)   ARGV[2] token
-- Returns 1 if released, else 0.
if live_value(KEYS[1]) ~= ARGV[2] then
  return 0
end
redis.call('DEL', KEYS[1])
return 1
