-- _batch.lua: N calls of one script in one script call. _scripts.py wraps the script's text as
-- `local function one(KEYS, ARGV) ... end` (after the prelude) and appends this file, so each
-- call runs the unchanged script with its own KEYS and ARGV, one after another in arrival order:
-- exactly what N separate calls would decide, since nothing else runs between them either way.
-- The calls come run-length encoded: M runs, each of one call's KEYS and ARGV and how many
-- calls in a row are that same call (the cached command of one endpoint's plain calls).
-- KEYS: each run's keys, one run after another (nk each)
-- ARGV: each run's arguments, one run after another (the same count each), then the M run
-- lengths, then M, then nk. All calls share the first call's time override (ARGV[1]), hence
-- one NOW.
-- Returns one reply per call; a call whose script fails gets its error and the others go on
-- (a lone call would have failed alone too).
local all_keys, all_argv = KEYS, ARGV
local m, nk = tonumber(all_argv[#all_argv - 1]), tonumber(all_argv[#all_argv])
local run_args = #all_argv - 2 - m -- how many arguments the runs take; their lengths follow
local na = run_args / m
local out, n = {}, 0
for d = 0, m - 1 do
  for _ = 1, tonumber(all_argv[run_args + d + 1]) do
    local k, a = {}, {} -- fresh per call: a script may change its KEYS or ARGV
    for j = 1, nk do
      k[j] = all_keys[d * nk + j]
    end
    for j = 1, na do
      a[j] = all_argv[d * na + j]
    end
    local ok, r = pcall(one, k, a)
    if not ok then
      if type(r) == 'table' and r.err then
        r = redis.error_reply(r.err)
      else
        r = redis.error_reply(tostring(r))
      end
    elseif r == nil then
      r = false -- a nil would end the reply array early
    end
    n = n + 1
    out[n] = r
  end
end
return out
