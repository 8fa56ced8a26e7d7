-- Ends a flight: stores the outcome (when it is to be cached), leaves it
-- for the calls that joined the flight, and frees the flight if still ours.
-- KEYS[1] stored outcome, KEYS[2] flight, KEYS[3] the flight's outcome
-- ARGV[1] flight id, ARGV[2] outcome JSON ('' when there is none to share),
-- ARGV[3] '1' to cache it, ARGV[4] cache TTL ms, ARGV[5] shared outcome TTL ms
if ARGV[2] ~= '' then
  if ARGV[3] == '1' then
    redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[4])
  end
  redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[5])
end
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('DEL', KEYS[2])
end
return 1
