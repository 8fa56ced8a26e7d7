-- Claims a cached call: the stored outcome if there is one, else the
-- flight (whoever sets the flight key runs the tool), else who runs it.
-- KEYS[1] stored outcome, KEYS[2] flight
-- ARGV[1] this claimant's flight id, ARGV[2] flight lease in ms
local stored = redis.call('GET', KEYS[1])
if stored then
  return {'hit', stored}
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {'leader', ARGV[1]}
end
return {'running', redis.call('GET', KEYS[2]) or ''}
