-- lock_acquire.lua: take a lock (SET NX with a lease) unless a live value holds the key.
-- KEYS[1] value hash: v (holder's token), x (lease end)
-- ARGV[1] time override ('' = TIME)   ARGV[2] token   ARGV[3] lease seconds
-- Returns 1 if we now hold the lock, else 0.
local r = redis.call('HMGET', KEYS[1], 'v', 'x')
if r[1] and not (r[2] and tonumber(r[2]) <= NOW) then
  return 0
end
local lease = tonumber(ARGV[3])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'x', fmt(NOW + lease))
redis.call('PEXPIRE', KEYS[1], math.ceil(lease * 1000) + GC_MARGIN_MS)
return 1
