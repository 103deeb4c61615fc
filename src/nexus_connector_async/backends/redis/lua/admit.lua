-- admit.lua: may one attempt go now? Breaker check, half-open probe permit, retry budget, shared
-- pause, token bucket and a free concurrency slot, in one atomic step (the same decisions as
-- MemoryBackend._decide).
-- KEYS[1] breaker hash: state, failures, successes, opened_at, paused_until, budget, budget_at, seq
-- KEYS[2] probe zset: permit -> lease expiry (the half-open permits held right now)
-- KEYS[3] bucket hash: tokens, updated, cap, rate (not touched when ARGV[8] is '')
-- ARGV[1] time override ('' = TIME)   ARGV[2] recovery_timeout   ARGV[3] half_open_max_calls
-- ARGV[4] probe lease seconds   ARGV[5] budget ratio ('' = no budget)   ARGV[6] budget floor/s
-- ARGV[7] '1' if this attempt is a retry   ARGV[8] bucket capacity ('' = no rate limit)
-- ARGV[9] refill tokens/s   ARGV[10] max_wait seconds   ARGV[11] '1' for shadow mode
-- KEYS[4..6], only with ARGV[12] ~= '': the concurrency slots' held zset, waiter queue and meta
-- hash (slots.lua)   ARGV[12] max_in_flight ('' = no slot in this admission)
-- ARGV[13] slot lease seconds   ARGV[14] '1' to refuse when no slot is free (else admit
-- without one: the caller then waits in slots.lua's queue)
-- Returns {reason, wait (string seconds), probe permit ('' = none), clean 0/1, would_block,
-- half_opened 0/1 (this call moved the breaker from open to half-open), slot token ('' = none
-- taken: none asked for, none free, or a wait for the token first), slot generation}:
-- reason 0 admitted (wait = sleep first), 1 circuit open, 2 rate limited, 3 budget exhausted,
-- 4 no concurrency slot free (wait = until the earliest lease ends).
local cb, probes, bucket = KEYS[1], KEYS[2], KEYS[3]
local f = redis.call('HMGET', cb, 'state', 'failures', 'opened_at', 'paused_until', 'budget',
  'budget_at')
local state = f[1] or 'closed'
local failures = tonumber(f[2]) or 0
local recovery = tonumber(ARGV[2])
local touched = false
local half_opened = 0

local function decide()
  local probe = false
  if state == 'open' then
    local reopen_at = (tonumber(f[3]) or 0) + recovery
    if NOW < reopen_at then
      return {1, reopen_at - NOW}
    end
    state = 'half_open'
    half_opened = 1
    redis.call('HSET', cb, 'state', 'half_open', 'successes', 0)
    redis.call('DEL', probes)
    touched = true
  end
  if state == 'half_open' then
    redis.call('ZREMRANGEBYSCORE', probes, '-inf', fmt(NOW))
    if redis.call('ZCARD', probes) >= tonumber(ARGV[3]) then
      local first = redis.call('ZRANGE', probes, 0, 0, 'WITHSCORES')
      return {1, math.max(0.001, tonumber(first[2]) - NOW)}
    end
    probe = true
  end
  -- A slot, if one is free for a newcomer (FIFO: more free than waiters queued). Refused here,
  -- before the budget or a token is spent; taken at the end, once the attempt may go at once.
  local slot_free = false
  if ARGV[12] ~= '' and ARGV[11] ~= '1' then
    slot_reclaim(KEYS[4])
    slot_clean_head(KEYS[5], KEYS[6])
    local free = slot_limit(KEYS[6], tonumber(ARGV[12])) - redis.call('ZCARD', KEYS[4])
    slot_free = free > redis.call('ZCARD', KEYS[5])
    if not slot_free and ARGV[14] == '1' then
      return {4, slot_retry_after(KEYS[4])}
    end
  end
  if ARGV[5] ~= '' then
    local ratio, floor = tonumber(ARGV[5]), tonumber(ARGV[6])
    local cap = math.max(1.0, floor * 10.0)
    local budget, budget_at = tonumber(f[5]) or -1, tonumber(f[6]) or 0
    if budget < 0 then
      budget, budget_at = floor, NOW
    end
    budget = math.min(cap, budget + (NOW - budget_at) * floor)
    local refused = false
    if ARGV[7] == '1' then
      if budget < 1.0 then
        refused = true
      else
        budget = budget - 1.0
      end
    else
      budget = math.min(cap, budget + ratio)
    end
    redis.call('HSET', cb, 'budget', fmt(budget), 'budget_at', fmt(NOW))
    touched = true
    if refused then
      if floor ~= 0 then
        return {3, 1.0 / floor}
      end
      return {3, 1.0}
    end
  end
  local wait = math.max(0.0, (tonumber(f[4]) or 0) - NOW)
  if ARGV[8] ~= '' then
    local cap, rate, max_wait = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
    local b = redis.call('HMGET', bucket, 'tokens', 'updated')
    local tokens, updated = tonumber(b[1]), tonumber(b[2])
    if tokens == nil or updated == nil then
      tokens, updated = cap, NOW  -- a missing bucket is a full one: idle keys simply expire
    end
    tokens = math.min(cap, tokens + (NOW - updated) * rate)
    local start = NOW + wait
    local at_start = math.min(cap, tokens + wait * rate)
    local need = 0.0
    if at_start < 1.0 then
      need = (1.0 - at_start) / rate
    end
    local total = wait + need
    if total > max_wait then
      return {2, total}
    end
    local left = at_start - 1.0
    -- cap and rate ride along so operators' status views can compute the tokens left.
    redis.call('HSET', bucket, 'tokens', fmt(left), 'updated', fmt(start), 'cap', ARGV[8], 'rate', ARGV[9])
    -- Expire once it would be full again: then "missing" and "full" are the same state.
    redis.call('PEXPIRE', bucket, math.ceil(((cap - left) / rate + wait) * 1000) + GC_MARGIN_MS)
    wait = total
  elseif wait > 0 then
    return {2, wait}
  end
  local permit = ''
  if probe then
    permit = 'r' .. redis.call('HINCRBY', cb, 'seq', 1)  -- opaque: the client types it RedisPermit
    local lease = tonumber(ARGV[4])
    redis.call('ZADD', probes, fmt(NOW + lease), permit)
    keep_for(probes, lease * 1000 + GC_MARGIN_MS)
    touched = true
  end
  local clean = 0
  if state == 'closed' and failures == 0 then
    clean = 1
  end
  if slot_free and wait == 0 then
    local slot = 's' .. redis.call('HINCRBY', KEYS[6], 'seq', 1)  -- 's': taken by admit.lua
    slot_hold(KEYS[4], slot, tonumber(ARGV[13]))
    keep_for(KEYS[6], 86400000)
    return {0, wait, permit, clean, slot, slot_generation(KEYS[6])}
  end
  return {0, wait, permit, clean}
end

local r = decide()
if touched then
  local paused = math.max(0, (tonumber(f[4]) or 0) - NOW)
  keep_idle(cb, recovery + paused)
end
if r[1] ~= 0 and ARGV[11] == '1' then
  -- Shadow mode: report what would have happened, block nothing, take nothing.
  return {0, '0', '', 0, r[1], half_opened, '', 0}
end
return {r[1], fmt(r[2]), r[3] or '', r[4] or 0, 0, half_opened, r[5] or '', r[6] or 0}
