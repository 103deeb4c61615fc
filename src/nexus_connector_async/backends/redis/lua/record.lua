-- record.lua: feed one attempt's outcome to the breaker (MemoryBackend.record semantics).
-- KEYS[1] breaker hash (also keeps 'recovery' for operators' status views)   KEYS[2] probe zset
-- ARGV[1] time override ('' = TIME)   ARGV[2] '1' success / '0' failure   ARGV[3] probe permit
-- ARGV[4] failure_threshold   ARGV[5] success_threshold   ARGV[6] recovery_timeout
-- Returns the new state ('open' or 'closed') when it changed, else nil.
local cb, probes = KEYS[1], KEYS[2]
local success = ARGV[2] == '1'
local idle_ms = (3600 + tonumber(ARGV[6])) * 1000
local state = redis.call('HGET', cb, 'state') or 'closed'

if state == 'closed' then
  if success then
    local failures = redis.call('HGET', cb, 'failures')
    if failures and failures ~= '0' then
      redis.call('HSET', cb, 'failures', 0)
    end
    return false
  end
  local failures = redis.call('HINCRBY', cb, 'failures', 1)
  keep_for(cb, idle_ms)
  if failures >= tonumber(ARGV[4]) then
    redis.call('HSET', cb, 'state', 'open', 'opened_at', fmt(NOW), 'recovery', ARGV[6])
    return 'open'
  end
  return false
end

if state == 'half_open' and ARGV[3] ~= '' and redis.call('ZREM', probes, ARGV[3]) == 1 then
  keep_for(cb, idle_ms)
  if not success then
    -- A failed probe re-opens for a full recovery_timeout from now.
    redis.call('HSET', cb, 'state', 'open', 'opened_at', fmt(NOW), 'recovery', ARGV[6])
    redis.call('DEL', probes)
    return 'open'
  end
  if redis.call('HINCRBY', cb, 'successes', 1) >= tonumber(ARGV[5]) then
    redis.call('HSET', cb, 'state', 'closed', 'failures', 0, 'successes', 0)
    redis.call('DEL', probes)
    return 'closed'
  end
end
return false
