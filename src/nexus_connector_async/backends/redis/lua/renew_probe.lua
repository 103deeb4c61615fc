-- renew_probe.lua: push a half-open probe permit's lease end to now + lease, just before its
-- request is sent (api.md rule 25), so a slow credential fetch or token wait cannot let a second
-- probe in while the first is still on its way to the vendor.
-- KEYS[1] breaker hash   KEYS[2] probe zset
-- ARGV[1] time override ('' = TIME)   ARGV[2] probe permit   ARGV[3] lease seconds
-- Returns 1 if the attempt may go (permit renewed, or the breaker closed meanwhile), 0 if not
-- (the permit was pruned after its lease and the slot may be another's, or the breaker re-opened).
-- A permit still in the zset was not pruned: no admission granted its slot to anyone else.
local cb, probes = KEYS[1], KEYS[2]
local state = redis.call('HGET', cb, 'state') or 'closed'
if state == 'closed' then
  return 1
end
if state ~= 'half_open' or not redis.call('ZSCORE', probes, ARGV[2]) then
  return 0
end
local lease = tonumber(ARGV[3])
redis.call('ZADD', probes, 'XX', fmt(NOW + lease), ARGV[2])
keep_for(probes, lease * 1000 + GC_MARGIN_MS)
return 1
