-- kv_cas.lua: store a shared value only if the live value is still the one the caller read.
-- KEYS[1] value hash: v, x
-- ARGV[1] time override ('' = TIME)   ARGV[2] expected value ('' = none)   ARGV[3] new value
-- ARGV[4] TTL seconds ('' = no expiry)
-- Returns 1 if stored, 0 if the value changed meanwhile (nothing written).
if (live_value(KEYS[1]) or '') ~= ARGV[2] then
  return 0
end
put_value(KEYS[1], ARGV[3], ARGV[4])
return 1
