-- idem_claim_admit.lua: an idempotency claim and, if it took the key, the first attempt's
-- admission, in one step: idem_claim.lua, then admit.lua, decided as the two calls in a row
-- would be (_scripts.py defines both as functions above this glue).
-- KEYS[1..2] idem_claim.lua's KEYS   KEYS[3..] admit.lua's KEYS
-- ARGV[1..4] idem_claim.lua's ARGV   ARGV[5..] admit.lua's ARGV[2..] (ARGV[1], the time, is shared)
-- Returns {claim reply} when the key was not taken, else {claim reply, admission reply}.
local claimed = idem_claim({KEYS[1], KEYS[2]}, {ARGV[1], ARGV[2], ARGV[3], ARGV[4]})
if claimed[1] ~= 0 then
  return {claimed}
end
local keys, argv = {}, {ARGV[1]}
for i = 3, #KEYS do
  keys[#keys + 1] = KEYS[i]
end
for i = 5, #ARGV do
  argv[#argv + 1] = ARGV[i]
end
return {claimed, admit(keys, argv)}
