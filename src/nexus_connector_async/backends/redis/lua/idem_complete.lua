-- idem_complete.lua: store the final result for TTL seconds; only the current owner may.
-- KEYS[1] record hash   KEYS[2] notify list
-- ARGV[1] time override ('' = TIME)   ARGV[2] owner's token   ARGV[3] result bytes
-- ARGV[4] TTL seconds
-- Returns 1 if stored, 0 if the caller no longer owns the key (lease lost, fenced off).
local rec, list = KEYS[1], KEYS[2]
if not owned_record(rec, list, ARGV[2]) then
  return 0  -- gone, lease ended, fenced off by a newer owner, or already completed
end
expire_after(rec, 'expires', tonumber(ARGV[4]), nil, 'result', ARGV[3])
notify(list)
return 1
