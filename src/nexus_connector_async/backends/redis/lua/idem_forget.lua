-- idem_forget.lua: free an "unknown" key once the application has reconciled it with the vendor.
-- KEYS[1] record hash   KEYS[2] notify list
-- ARGV[1] time override ('' = TIME)
-- Returns 1 if an unknown key was freed, 0 otherwise (free, in progress or completed: untouched).
local rec, list = KEYS[1], KEYS[2]
local r = live_record(rec, list)
if not r or not r[6] or r[4] then
  return 0
end
redis.call('DEL', rec)
notify(list)
return 1
