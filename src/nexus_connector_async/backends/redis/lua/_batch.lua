-- _batch.lua: N calls of one script in one script call. _scripts.py wraps the script's text as
-- `local function one(KEYS, ARGV) ... end` (after the prelude) and appends this file, so each
-- call runs the unchanged script with its own KEYS and ARGV, one after another in arrival order:
-- exactly what N separate calls would decide, since nothing else runs between them either way.
-- KEYS: the calls' keys, one call after another (nk each)
-- ARGV: the calls' arguments, one call after another (the same count each), then N, then nk.
-- All calls share the first call's time override (ARGV[1]), hence one NOW.
-- Returns one reply per call; a call whose script fails gets its error and the others go on
-- (a lone call would have failed alone too).
local all_keys, all_argv = KEYS, ARGV
local n, nk = tonumber(all_argv[#all_argv - 1]), tonumber(all_argv[#all_argv])
local na = (#all_argv - 2) / n
local out = {}
for i = 0, n - 1 do
  local k, a = {}, {}
  for j = 1, nk do
    k[j] = all_keys[i * nk + j]
  end
  for j = 1, na do
    a[j] = all_argv[i * na + j]
  end
  local ok, r = pcall(one, k, a)
  if not ok then
    if type(r) == 'table' and r.err then
      r = redis.error_reply(r.err)
    else
      r = redis.error_reply(tostring(r))
    end
  elseif r == nil then
    r = false  -- a nil would end the reply array early
  end
  out[i + 1] = r
end
return out
