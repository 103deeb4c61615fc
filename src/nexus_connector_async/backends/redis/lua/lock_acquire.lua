-- lock_acquire.lua: take a lock (SET NX with a lease) unless a live value holds the key.
-- KEYS[1] value hash: v (holder's token), x (lease end)
-- ARGV[1] time override ('' = TIME)   ARGV[2] token   ARGV[3] lease seconds
-- Returns 1 if we now hold the lock, else 0.
if live_value(KEYS[1]) then
  return 0
end
put_value(KEYS[1], ARGV[2], ARGV[3])
return 1
