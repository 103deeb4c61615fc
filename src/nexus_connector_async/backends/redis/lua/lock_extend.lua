-- lock_extend.lua: push a held lock's lease end to now + lease, if `token` still holds it.
-- KEYS[1] value hash: v (holder's token), x (lease end)
-- ARGV[1] time override ('' = TIME)   ARGV[2] token   ARGV[3] lease seconds
-- Returns 1 if extended, 0 if the lock is free or held by someone else.
local r = redis.call('HMGET', KEYS[1], 'v', 'x')
if r[1] ~= ARGV[2] or (r[2] and tonumber(r[2]) <= NOW) then
  return 0
end
local lease = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], 'x', fmt(NOW + lease))
redis.call('PEXPIRE', KEYS[1], math.ceil(lease * 1000) + GC_MARGIN_MS)
return 1
