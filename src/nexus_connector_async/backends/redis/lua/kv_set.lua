-- kv_set.lua: store a shared value, optionally for TTL seconds.
-- KEYS[1] value hash: v, x
-- ARGV[1] time override ('' = TIME)   ARGV[2] value   ARGV[3] TTL seconds ('' = no expiry)
-- Returns nil.
redis.call('DEL', KEYS[1])
if ARGV[3] == '' then
  redis.call('HSET', KEYS[1], 'v', ARGV[2])
else
  local ttl = tonumber(ARGV[3])
  redis.call('HSET', KEYS[1], 'v', ARGV[2], 'x', fmt(NOW + ttl))
  redis.call('PEXPIRE', KEYS[1], math.ceil(ttl * 1000) + GC_MARGIN_MS)
end
return false
