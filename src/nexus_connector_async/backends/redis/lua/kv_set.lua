-- kv_set.lua: store a shared value, optionally for TTL seconds.
-- KEYS[1] value hash: v, x
-- ARGV[1] time override ('' = TIME)   ARGV[2] value   ARGV[3] TTL seconds ('' = no expiry)
-- Returns nil.
put_value(KEYS[1], ARGV[2], ARGV[3])
return false
