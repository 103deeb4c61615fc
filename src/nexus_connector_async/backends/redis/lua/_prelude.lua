-- _prelude.lua: shared helpers, prepended to every script by _scripts.py (one SHA per whole).
-- Convention: ARGV[1] of every script is a time override in seconds ('' = Redis TIME). Only a
-- test clock sets it; production always reads the server's clock, so workers never disagree.
redis.replicate_commands()  -- effects replication: scripts read TIME, then write (no-op on 5+)

local SERVER_TIME = nil -- TIME's reply, when NOW is Redis's time

local function clock_now()
  if ARGV[1] ~= '' then
    return tonumber(ARGV[1])
  end
  SERVER_TIME = redis.call('TIME')
  return tonumber(SERVER_TIME[1]) + tonumber(SERVER_TIME[2]) / 1000000
end

local NOW = clock_now()

-- Keys live this long past their logical expiry. The logical expiry (stored in the value) decides;
-- the Redis TTL only collects garbage. Under a test clock real time must not outrun fake time,
-- hence the generous margin there.
local GC_MARGIN_MS = 1000
if ARGV[1] ~= '' then
  GC_MARGIN_MS = 60000
end

-- Breakers (and what rides on their hash) are kept this long, in seconds, after their last use.
local IDLE_TTL = 3600

-- Numbers as exact strings: Lua's tostring (and numbers returned to Redis) lose precision.
local function fmt(x)
  return string.format('%.17g', x)
end

-- Set a key's TTL to at least `ms` milliseconds (never shortens it).
local function keep_for(key, ms)
  ms = math.ceil(ms)
  local ttl = redis.call('PTTL', key)
  if ttl >= 0 and ttl < ms then
    redis.call('PEXPIRE', key, ms)
  elseif ttl == -1 then
    redis.call('PEXPIRE', key, ms)
  end
end

-- Keep an idle key IDLE_TTL seconds past `extra` seconds from now (never shortens its TTL).
local function keep_idle(key, extra)
  keep_for(key, (IDLE_TTL + extra) * 1000)
end

-- Logical expiry: hash field `field` of `key` says when it ends (now + `ttl` seconds) and decides;
-- the Redis TTL, a GC margin past `keep` seconds (default `ttl`), only collects garbage. Further
-- field/value pairs are written in the same HSET (one command, not one per write).
local function expire_after(key, field, ttl, keep, ...)
  redis.call('HSET', key, field, fmt(NOW + ttl), ...)
  redis.call('PEXPIRE', key, math.ceil((keep or ttl) * 1000) + GC_MARGIN_MS)
end

-- Wake everyone blocked on an idempotency key's notify list (waiters rotate it with BLMOVE, so
-- one element wakes them all); it only needs to outlive the waiters' re-check window.
local function notify(list)
  if redis.call('LLEN', list) == 0 then
    redis.call('RPUSH', list, '1')
  end
  redis.call('PEXPIRE', list, 10000)
end

-- An idempotency record still in force, as {fp, token, expires, result, amo, unknown}; nil when
-- there is none or its lease (or stored result's TTL) has ended, in which case it is deleted and
-- its waiters are woken. claim, complete, extend, mark_unknown and forget all start here.
-- At most once: a record claimed with `amo` (unknown ttl) whose lease ends without a result
-- becomes `unknown` until lease end + amo, since its dead owner may have sent the request.
local function live_record(rec, list)
  local r = redis.call('HMGET', rec, 'fp', 'token', 'expires', 'result', 'amo', 'unknown')
  if not r[1] then
    return nil
  end
  if tonumber(r[3]) <= NOW then
    if r[5] and not r[4] and not r[6] then
      local unknown_until = tonumber(r[3]) + tonumber(r[5])
      if unknown_until > NOW then
        r[3], r[6] = fmt(unknown_until), '1'
        redis.call('HSET', rec, 'unknown', '1', 'expires', r[3])
        notify(list)
        return r
      end
    end
    redis.call('DEL', rec)
    notify(list)
    return nil
  end
  return r
end

-- The record if `token` owns it and it holds no result yet, else nil (complete, extend and
-- mark_unknown: only the current owner may write, and never over a stored result).
local function owned_record(rec, list, token)
  local r = live_record(rec, list)
  if not r or r[2] ~= token or r[4] then
    return nil
  end
  return r
end

-- A shared value hash (KV, locks: v the value, x its logical expiry): the value while it is in
-- force (else nil), and the expiry (nil: none, or no value).
local function live_value(key)
  local r = redis.call('HMGET', key, 'v', 'x')
  local x = tonumber(r[2])
  if not r[1] or (x and x <= NOW) then
    return nil, x
  end
  return r[1], x
end

-- Replace a shared value hash (KV, locks) with `value`, for `ttl_arg` seconds ('' = for good).
local function put_value(key, value, ttl_arg)
  redis.call('DEL', key)
  if ttl_arg ~= '' then
    expire_after(key, 'x', tonumber(ttl_arg), nil, 'v', value)
  else
    redis.call('HSET', key, 'v', value)
  end
end

-- Concurrency slots (api.md 26), shared by slots.lua and admit.lua. A scope's keys: `held`, a
-- zset of slot tokens by lease end; `queue`, a zset of waiters by arrival; `meta`, a hash (the
-- header of slots.lua says what it holds). The limit is max_in_flight, or the adaptive one
-- stored in meta if lower.
local function slot_limit(meta, max_in_flight)
  local l = tonumber(redis.call('HGET', meta, 'limit')) or max_in_flight
  return math.min(l, max_in_flight)
end

local function slot_reclaim(held)
  redis.call('ZREMRANGEBYSCORE', held, '-inf', fmt(NOW))
end

-- Drop waiters at the head whose give-up time passed (their worker died or left).
local function slot_clean_head(queue, meta)
  for _ = 1, 16 do
    local head = redis.call('ZRANGE', queue, 0, 0)[1]
    if not head then
      return
    end
    local gone = tonumber(redis.call('HGET', meta, 'w:' .. head))
    if gone and gone > NOW then
      return
    end
    redis.call('ZREM', queue, head)
    redis.call('HDEL', meta, 'w:' .. head, 'l:' .. head)
  end
end

-- Seconds until the earliest lease ends (0 if no slot is held).
local function slot_retry_after(held)
  local first = redis.call('ZRANGE', held, 0, 0, 'WITHSCORES')
  if not first[2] then
    return 0
  end
  return math.max(0, tonumber(first[2]) - NOW)
end

local function slot_generation(meta)
  return tonumber(redis.call('HGET', meta, 'gen')) or 0
end

-- Hold slot `token` until now + lease.
local function slot_hold(held, token, lease)
  redis.call('ZADD', held, fmt(NOW + lease), token)
  keep_for(held, lease * 1000 + GC_MARGIN_MS)
end

-- Grant a slot to each of the first waiters that may now take one (the first `free` of the
-- queue): each is moved from the queue to the held slots under its own lease, and its wake list
-- gets 'g' .. generation, so the waiter returns with its slot without asking again. A waiter
-- whose lease is not on record (queued by an older release of this script) is woken with '1'
-- instead, and asks.
local function slot_wake(held, queue, meta, max_in_flight, wake_prefix)
  slot_clean_head(queue, meta)
  local free = slot_limit(meta, max_in_flight) - redis.call('ZCARD', held)
  if free <= 0 then
    return
  end
  for _, t in ipairs(redis.call('ZRANGE', queue, 0, free - 1)) do
    local list = wake_prefix .. t
    local lease = tonumber(redis.call('HGET', meta, 'l:' .. t))
    if lease then
      slot_hold(held, t, lease)
      redis.call('ZREM', queue, t)
      redis.call('HDEL', meta, 'w:' .. t, 'l:' .. t)
      redis.call('DEL', list)
      redis.call('RPUSH', list, 'g' .. slot_generation(meta))
    elseif redis.call('LLEN', list) == 0 then
      redis.call('RPUSH', list, '1')
    end
    redis.call('PEXPIRE', list, 60000)
  end
end

-- One AIMD step (the same rules as _slots.adapted): a raise needs `window` seconds since the
-- last change; a cut (`signal` '1') needs a throttle from an attempt admitted under the current
-- generation (unknown generation '': at most one cut per window). Returns the new limit or -1.
local function slot_adapt(meta, max_in_flight, signal, window, generation)
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

-- Give back slot (or queue place) `token`, after the AIMD step of `signal` ('' = none), and
-- hand the freed slots on. Returns {removed 1/0, new limit or -1}.
local function slot_release(held, queue, meta, token, max_in_flight, wake_prefix, signal, window,
                            generation)
  local removed = redis.call('ZREM', held, token)
  if removed == 0 then  -- a waiter leaving the queue (a holder left it when it got its slot)
    removed = redis.call('ZREM', queue, token)
    redis.call('HDEL', meta, 'w:' .. token, 'l:' .. token)
    redis.call('DEL', wake_prefix .. token)
  end
  local new = -1
  if signal ~= '' and removed > 0 then  -- before the hand-over: it goes on under the new limit
    new = slot_adapt(meta, max_in_flight, signal, window, generation)
  end
  slot_reclaim(held)
  slot_wake(held, queue, meta, max_in_flight, wake_prefix)
  return {removed, new}
end
