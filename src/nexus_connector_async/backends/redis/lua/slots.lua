-- slots.lua: fleet-wide concurrency slots (api.md 26), one script for every slot operation.
-- KEYS[1] zset of held slots: token -> lease end
-- KEYS[2] zset of waiters: ticket -> arrival number (FIFO)
-- KEYS[3] meta hash: seq (arrival counter), limit, changed_at and gen (adaptive: the limit, its
--         last change and the number of changes), w:<ticket> (the waiter's give-up time, so a
--         dead waiter leaves the queue), l:<ticket> (its lease, for the hand-over)
-- ARGV[1] time override ('' = TIME)   ARGV[2] op: acquire | release | renew | adapt | usage
-- ARGV[3] token   ARGV[4] max_in_flight   ARGV[5] lease seconds
-- ARGV[6] acquire: seconds left to wait (0: fail fast); release, adapt: the AIMD window
-- ARGV[7] prefix of the waiters' wake lists (a waiter blocks on prefix .. ticket; a release
--         hands a freed slot to the head waiter there: 'g' .. generation, see slot_wake)
-- ARGV[8] release, adapt: the AIMD signal, '1' throttled (cut), '0' success (raise), '' none
-- ARGV[9] release, adapt: the generation the attempt was admitted under ('' = not known)
-- Returns: acquire {1, 0, generation} granted, {0, retry_after} refused, {2, retry_after}
-- queued (block, then ask again); release {removed 1/0, new limit or -1}; renew 1/0; adapt the
-- new limit or -1; usage {in use, limit}.
local held, queue, meta = KEYS[1], KEYS[2], KEYS[3]
local op, token = ARGV[2], ARGV[3]
local max_in_flight = tonumber(ARGV[4])

-- Hand freed slots to the waiters that may now take them (slot_wake).
local function wake()
  slot_wake(held, queue, meta, max_in_flight, ARGV[7])
end

local function retry_after()
  return fmt(slot_retry_after(held))
end

if op == 'acquire' then
  redis.call('DEL', ARGV[7] .. token)  -- a wake-up is consumed by the re-check it caused
  slot_reclaim(held)
  slot_clean_head(queue, meta)
  local lease = tonumber(ARGV[5])
  if redis.call('ZSCORE', held, token) then
    return {1, '0', slot_generation(meta)}  -- handed over by a release meanwhile
  end
  local rank = redis.call('ZRANK', queue, token)
  local ahead = rank or redis.call('ZCARD', queue)
  local free = slot_limit(meta, max_in_flight) - redis.call('ZCARD', held)
  local wait = tonumber(ARGV[6])
  if free > ahead or wait <= 0 then
    if free > ahead then
      slot_hold(held, token, lease)
    end
    if rank then
      redis.call('ZREM', queue, token)
      redis.call('HDEL', meta, 'w:' .. token, 'l:' .. token)
      wake()  -- the next in line may fit too (or may go in our place)
    end
    if free > ahead then
      return {1, '0', slot_generation(meta)}
    end
    return {0, retry_after()}
  end
  if not rank then
    local seq = redis.call('HINCRBY', meta, 'seq', 1)
    redis.call('ZADD', queue, seq, token)
  end
  redis.call('HSET', meta, 'w:' .. token, fmt(NOW + wait + 1), 'l:' .. token, ARGV[5])
  keep_for(queue, (wait + 1) * 1000 + GC_MARGIN_MS)
  keep_for(meta, 86400000)
  return {2, retry_after()}
elseif op == 'release' then
  return slot_release(held, queue, meta, token, max_in_flight, ARGV[7], ARGV[8], tonumber(ARGV[6]),
    ARGV[9])
elseif op == 'renew' then
  local ends = tonumber(redis.call('ZSCORE', held, token))
  if not ends or ends <= NOW then
    return 0
  end
  slot_hold(held, token, tonumber(ARGV[5]))
  return 1
elseif op == 'adapt' then
  local new = slot_adapt(meta, max_in_flight, ARGV[8], tonumber(ARGV[6]), ARGV[9])
  if new ~= -1 then
    wake()
  end
  return new
elseif op == 'usage' then
  slot_reclaim(held)
  return {redis.call('ZCARD', held), slot_limit(meta, max_in_flight)}
end
return redis.error_reply('slots.lua: unknown op')
