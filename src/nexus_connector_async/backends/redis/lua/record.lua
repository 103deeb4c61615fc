-- record.lua: feed one attempt's outcome to the breaker (MemoryBackend.record semantics).
-- KEYS[1] breaker hash (also keeps 'recovery' for operators' status views)   KEYS[2] probe zset
-- ARGV[1] time override ('' = TIME)   ARGV[2] '1' success / '0' failure   ARGV[3] probe permit
-- ARGV[4] failure_threshold   ARGV[5] success_threshold   ARGV[6] recovery_timeout
-- With a concurrency slot given back in the same step (the attempt's release, folded in):
-- KEYS[3..5] the slots' held zset, queue and meta hash   ARGV[7..13] slots.lua's ARGV[3..9]
-- for its release: token, max_in_flight, (lease, unused), AIMD window, wake list prefix,
-- AIMD signal ('' = none), generation
-- Returns the new state ('open' or 'closed') when it changed, else nil; with a slot,
-- {removed 1/0, new limit or -1, new state or ''} (slots.lua release's reply, then the state).
local cb, probes = KEYS[1], KEYS[2]
local success = ARGV[2] == '1'
local state = redis.call('HGET', cb, 'state') or 'closed'

local function keep()
  keep_idle(cb, tonumber(ARGV[6]))
end

local released
if KEYS[3] then  -- the slot first: its release was sent before this outcome
  released = slot_release(KEYS[3], KEYS[4], KEYS[5], ARGV[7], tonumber(ARGV[8]), ARGV[11],
    ARGV[12], tonumber(ARGV[10]), ARGV[13])
end

local function breaker()
  if state == 'closed' then
    if success then
      local failures = redis.call('HGET', cb, 'failures')
      if failures and failures ~= '0' then
        redis.call('HSET', cb, 'failures', 0)
      end
      return false
    end
    local failures = redis.call('HINCRBY', cb, 'failures', 1)
    keep()
    if failures >= tonumber(ARGV[4]) then
      redis.call('HSET', cb, 'state', 'open', 'opened_at', fmt(NOW), 'recovery', ARGV[6])
      return 'open'
    end
    return false
  end

  if state == 'half_open' and ARGV[3] ~= '' and redis.call('ZREM', probes, ARGV[3]) == 1 then
    keep()
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
end

local changed = breaker()
if released then
  return {released[1], released[2], changed or ''}
end
return changed
