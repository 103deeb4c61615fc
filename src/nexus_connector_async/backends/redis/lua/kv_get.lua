-- kv_get.lua: read a shared value unless its logical expiry has passed.
-- KEYS[1] value hash: v (the bytes), x (expiry in seconds; absent = never)
-- ARGV[1] time override ('' = TIME)
-- Returns the value, or nil.
local v, x = live_value(KEYS[1])
if not v then
  if x then  -- past its logical expiry: collected now rather than at its PEXPIRE
    redis.call('DEL', KEYS[1])
  end
  return false
end
return v
