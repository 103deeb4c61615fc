-- _prelude.lua: shared helpers, prepended to every script by _scripts.py (one SHA per whole).
-- Convention: ARGV[1] of every script is a time override in seconds ('' = Redis TIME). Only a
-- test clock sets it; production always reads the server's clock, so workers never disagree.
redis.replicate_commands()  -- effects replication: scripts read TIME, then write (no-op on 5+)

local function clock_now()
  if ARGV[1] ~= '' then
    return tonumber(ARGV[1])
  end
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end

local NOW = clock_now()

-- Keys live this long past their logical expiry. The logical expiry (stored in the value) decides;
-- the Redis TTL only collects garbage. Under a test clock real time must not outrun fake time,
-- hence the generous margin there.
local GC_MARGIN_MS = 1000
if ARGV[1] ~= '' then
  GC_MARGIN_MS = 60000
end

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

-- Replace a shared value hash (KV, locks) with `value`, for `ttl_arg` seconds ('' = for good):
-- the logical expiry in field x, PEXPIRE a GC margin later.
local function put_value(key, value, ttl_arg)
  redis.call('DEL', key)
  if ttl_arg == '' then
    redis.call('HSET', key, 'v', value)
  else
    local ttl = tonumber(ttl_arg)
    redis.call('HSET', key, 'v', value, 'x', fmt(NOW + ttl))
    redis.call('PEXPIRE', key, math.ceil(ttl * 1000) + GC_MARGIN_MS)
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
    redis.call('HDEL', meta, 'w:' .. head)
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
