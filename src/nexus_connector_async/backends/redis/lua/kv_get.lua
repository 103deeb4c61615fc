-- kv_get.lua: read a shared value unless its logical expiry has passed.
-- KEYS[1] value hash: v (the bytes), x (expiry in seconds; absent = never)
-- ARGV[1] time override ('' = TIME)
-- Returns the value, or nil.
local r = redis.call('HMGET', KEYS[1], 'v', 'x')
if not r[1] then
  return false
end
if r[2] and tonumber(r[2]) <= NOW then
  redis.call('DEL', KEYS[1])
  return false
end
return r[1]
