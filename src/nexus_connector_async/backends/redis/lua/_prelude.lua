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
