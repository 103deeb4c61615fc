-- idem_mark_unknown.lua: the owner's request may have reached the vendor and no answer was seen: keep
-- the key "unknown" for TTL seconds, so nothing sends it again (at most once).
-- KEYS[1] record hash   KEYS[2] notify list
-- ARGV[1] time override ('' = TIME)   ARGV[2] owner's token   ARGV[3] TTL seconds
-- Returns 1 if marked, 0 if the caller no longer owns the key (or it was already completed).
local rec, list = KEYS[1], KEYS[2]
if not owned_record(rec, list, ARGV[2]) then
  return 0
end
expire_after(rec, 'expires', tonumber(ARGV[3]), nil, 'unknown', '1')
notify(list)
return 1
