-- lock_extend.lua: push a held lock's lease end to now + lease, if `token` still holds it.
-- KEYS[1] value hash: v (holder's token), x (lease end)
-- ARGV[1] time override ('' = TIME)   ARGV[2] token   ARGV[3] lease seconds
-- Returns 1 if extended, 0 if the lock is free or held by someone else.
if live_value(KEYS[1]) ~= ARGV[2] then
  return 0
end
expire_after(KEYS[1], 'x', tonumber(ARGV[3]))
return 1
