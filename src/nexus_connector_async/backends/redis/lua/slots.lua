-- slots.lua: fleet-wide concurrency slots (api.md 26), one script for every slot operation.
-- KEYS[1] zset of held slots: token -> lease end
-- KEYS[2] zset of waiters: ticket -> arrival number (FIFO)
-- KEYS[3] meta hash: seq (arrival counter), limit, changed_at and gen (adaptive: the limit, its
--         last change and the number of changes), w:<ticket> (the waiter's give-up time, so a
--         dead waiter leaves the queue)
-- ARGV[1] time override ('' = TIME)   ARGV[2] op: acquire | release | renew | adapt | usage
-- ARGV[3] token   ARGV[4] max_in_flight   ARGV[5] lease seconds
-- ARGV[6] acquire: seconds left to wait (0: fail fast); release, adapt: the AIMD window
-- ARGV[7] prefix of the waiters' wake lists (a waiter blocks on prefix .. ticket)
-- ARGV[8] release, adapt: the AIMD signal, '1' throttled (cut), '0' success (raise), '' none
-- ARGV[9] release, adapt: the generation the attempt was admitted under ('' = not known)
-- Returns: acquire {1, 0, generation} granted, {0, retry_after} refused, {2, retry_after}
-- queued (block, then ask again); release {removed 1/0, new limit or -1}; renew 1/0; adapt the
-- new limit or -1; usage {in use, limit}.
local held, queue, meta = KEYS[1], KEYS[2], KEYS[3]
local op, token = ARGV[2], ARGV[3]
local max_in_flight = tonumber(ARGV[4])

local function limit()
  return slot_limit(meta, max_in_flight)
end

local function reclaim()
  slot_reclaim(held)
end

local function clean_head()
  slot_clean_head(queue, meta)
end

-- Wake exactly the waiters that may now take a slot (the first `free` of the queue).
local function wake()
  clean_head()
  local free = limit() - redis.call('ZCARD', held)
  if free <= 0 then
    return
  end
  for _, t in ipairs(redis.call('ZRANGE', queue, 0, free - 1)) do
    local list = ARGV[7] .. t
    if redis.call('LLEN', list) == 0 then
      redis.call('RPUSH', list, '1')
    end
    redis.call('PEXPIRE', list, 60000)
  end
end

-- One AIMD step (the same rules as _slots.adapted): a raise needs `window` seconds since the
-- last change; a cut needs a throttle from an attempt admitted under the current generation
-- (unknown generation: at most one cut per window). Returns the new limit or -1.
local function adapt(signal, window, generation)
  local m = redis.call('HMGET', meta, 'limit', 'changed_at', 'gen')
  local current = math.min(tonumber(m[1]) or max_in_flight, max_in_flight)
  local changed_at = tonumber(m[2])
  local gen = tonumber(m[3]) or 0
  local recent = changed_at ~= nil and NOW - changed_at < window
  local new
  if signal == '1' then
    if (generation ~= '' and tonumber(generation) ~= gen) or (generation == '' and recent) then
      return -1
    end
    new = math.max(1, math.floor(current * 0.7))
  else
    if recent then
      return -1
    end
    new = math.min(max_in_flight, current + 1)
  end
  if new == current then
    return -1
  end
  redis.call('HSET', meta, 'limit', new, 'changed_at', fmt(NOW), 'gen', gen + 1)
  keep_for(meta, 86400000)
  return new
end

local function generation()
  return slot_generation(meta)
end

local function retry_after()
  return fmt(slot_retry_after(held))
end

if op == 'acquire' then
  redis.call('DEL', ARGV[7] .. token)  -- a wake-up is consumed by the re-check it caused
  reclaim()
  clean_head()
  local lease = tonumber(ARGV[5])
  if redis.call('ZSCORE', held, token) then
    return {1, '0', generation()}
  end
  local rank = redis.call('ZRANK', queue, token)
  local ahead = rank or redis.call('ZCARD', queue)
  local free = limit() - redis.call('ZCARD', held)
  if free > ahead then
    slot_hold(held, token, lease)
    if rank then
      redis.call('ZREM', queue, token)
      redis.call('HDEL', meta, 'w:' .. token)
      wake()  -- the next in line may fit too
    end
    return {1, '0', generation()}
  end
  local wait = tonumber(ARGV[6])
  if wait <= 0 then
    if rank then
      redis.call('ZREM', queue, token)
      redis.call('HDEL', meta, 'w:' .. token)
      wake()
    end
    return {0, retry_after()}
  end
  if not rank then
    local seq = redis.call('HINCRBY', meta, 'seq', 1)
    redis.call('ZADD', queue, seq, token)
  end
  redis.call('HSET', meta, 'w:' .. token, fmt(NOW + wait + 1))
  keep_for(queue, (wait + 1) * 1000 + GC_MARGIN_MS)
  keep_for(meta, 86400000)
  return {2, retry_after()}
elseif op == 'release' then
  local removed = redis.call('ZREM', held, token)
  if removed == 0 then  -- a waiter leaving the queue (a holder left it when it got its slot)
    removed = redis.call('ZREM', queue, token)
    redis.call('HDEL', meta, 'w:' .. token)
    redis.call('DEL', ARGV[7] .. token)
  end
  local new = -1
  if ARGV[8] ~= '' and removed > 0 then  -- before the wake: the freed slot goes on under it
    new = adapt(ARGV[8], tonumber(ARGV[6]), ARGV[9])
  end
  reclaim()
  wake()
  return {removed, new}
elseif op == 'renew' then
  local ends = tonumber(redis.call('ZSCORE', held, token))
  if not ends or ends <= NOW then
    return 0
  end
  slot_hold(held, token, tonumber(ARGV[5]))
  return 1
elseif op == 'adapt' then
  local new = adapt(ARGV[8], tonumber(ARGV[6]), ARGV[9])
  if new ~= -1 then
    wake()
  end
  return new
elseif op == 'usage' then
  reclaim()
  return {redis.call('ZCARD', held), limit()}
end
return redis.error_reply('slots.lua: unknown op')
