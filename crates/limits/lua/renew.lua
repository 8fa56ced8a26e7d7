-- Extends a task's leases by the lease TTL from now (server time), but only
-- where the lease is still held: an expired lease is not brought back.
--
-- KEYS: the lease sorted sets; ARGV[1] member, ARGV[2] ttl (ms).
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], 'XX', now_ms + ttl, ARGV[1])
  redis.call('PEXPIRE', KEYS[i], ttl * 2)
end
return 1
