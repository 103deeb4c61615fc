-- pause.lua: shared backpressure; admit nothing for the service until now + seconds (vendor 429).
-- KEYS[1] breaker hash (field paused_until)
-- ARGV[1] time override ('' = TIME)   ARGV[2] seconds
-- Returns nil.
local until_ = NOW + tonumber(ARGV[2])
local current = tonumber(redis.call('HGET', KEYS[1], 'paused_until')) or 0
if until_ > current then
  redis.call('HSET', KEYS[1], 'paused_until', fmt(until_))
  keep_idle(KEYS[1], tonumber(ARGV[2]))
end
return false
