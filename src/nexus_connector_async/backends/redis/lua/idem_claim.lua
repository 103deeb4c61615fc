-- idem_claim.lua: take an idempotency key if it is free (SET NX with a lease), else report its state.
-- KEYS[1] record hash: fp, token, expires (lease end, or TTL end once completed), result
-- KEYS[2] notify list (waiters block on it; emptied when a new owner takes the key)
-- ARGV[1] time override ('' = TIME)   ARGV[2] request fingerprint   ARGV[3] lease seconds
-- ARGV[4] unknown ttl seconds ('' = none): at most once, a lease that ends turns the key unknown
-- Returns {0, token} acquired | {1, '', result} completed | {2, '', '', lease left} in progress
-- | {3} conflict (the key belongs to a different fingerprint) | {4} unknown (outcome unknown).
local rec, list = KEYS[1], KEYS[2]
local r = live_record(rec, list)
if not r then
  -- The fencing token: server time to the microsecond, never reused for this key (NOW's own
  -- reading when NOW is Redis's time: a second claim of the key in this script call finds it
  -- taken).
  local t = SERVER_TIME or redis.call('TIME')
  local token = t[1] .. string.format('%06d', tonumber(t[2]))
  local lease = tonumber(ARGV[3])
  if ARGV[4] ~= '' then
    -- The record must outlive its unknown period.
    expire_after(rec, 'expires', lease, lease + tonumber(ARGV[4]), 'fp', ARGV[2], 'token', token,
      'amo', ARGV[4])
  else
    expire_after(rec, 'expires', lease, lease, 'fp', ARGV[2], 'token', token)
  end
  redis.call('DEL', list)
  return {0, token}
end
if r[1] ~= ARGV[2] then
  return {3}
end
if r[4] then
  return {1, '', r[4]}
end
if r[6] then
  return {4}
end
return {2, '', '', fmt(tonumber(r[3]) - NOW)}
