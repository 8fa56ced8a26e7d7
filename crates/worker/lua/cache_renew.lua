-- Extends a flight's lease while its leader runs; 0 if it is no longer ours.
-- KEYS[1] flight; ARGV[1] flight id, ARGV[2] lease ms
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
