-- After a call, what it learned about the rate limits it was admitted
-- under, in one atomic step: a backend's "too many" (cut the effective
-- rate, hold the fleet for its Retry-After) and the call's real cost
-- (move the arrival time by actual − estimate). Workers call it only when
-- there is something to say; a plain success costs nothing.
--
-- KEYS[1..n]       GCRA state of each rate limit (a theoretical arrival time, µs)
-- KEYS[n+1..2n]    adaptive state of each (hash: interval, at, recover, quiet_until)
-- ARGV[1] n
-- ARGV[2] hold (µs): the backend's Retry-After, 0 for none
-- ARGV[3] factor: a cut multiplies the effective rate by it (0.5)
-- ARGV[4] quiet (µs): least time between two cuts of a key (1 s)
-- ARGV[5] recover (µs): time to climb from zero to the configured rate (10 s)
-- ARGV[6] bursts: how many bursts ahead of now a charge may push the arrival time (10)
-- ARGV[6+5i-4 .. 6+5i], for rate key i:
--   configured interval (µs per unit), burst (units), floor interval
--   (µs per unit: one unit per period), too_many (1 or 0), charge (units,
--   signed: actual − estimate, 0 for none)
--
-- Returns {c_1, ..., c_n}: c_i = 1 where key i's effective rate was cut.
-- Time is Redis server time.

local n = tonumber(ARGV[1])
local hold = tonumber(ARGV[2])
local factor = tonumber(ARGV[3])
local quiet = tonumber(ARGV[4])
local recover = tonumber(ARGV[5])
local bursts = tonumber(ARGV[6])

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

-- As in acquire.lua.
local function effective(key, interval)
  local s = redis.call('HMGET', key, 'interval', 'at', 'recover')
  local cut, at, rec = tonumber(s[1]), tonumber(s[2]), tonumber(s[3])
  if not (cut and at and rec) or cut <= 0 or rec <= 0 then return interval end
  local rate = 1 / cut + math.max(0, now - at) / (rec * interval)
  if rate * interval >= 1 then return interval end
  return 1 / rate
end

local cuts = {}
for i = 1, n do
  local base = 6 + 5 * (i - 1)
  local interval = tonumber(ARGV[base + 1])
  local burst = tonumber(ARGV[base + 2])
  local floor = math.max(tonumber(ARGV[base + 3]), interval)
  local too_many = ARGV[base + 4] == '1'
  local charge = tonumber(ARGV[base + 5])
  local adapt = KEYS[n + i]
  cuts[i] = 0
  if too_many then
    local quiet_until = tonumber(redis.call('HGET', adapt, 'quiet_until')) or 0
    if now >= quiet_until then
      local cut = math.min(effective(adapt, interval) / factor, floor)
      redis.call('HSET', adapt, 'interval', string.format('%.3f', cut), 'at', string.format('%.0f', now),
        'recover', string.format('%.0f', recover), 'quiet_until', string.format('%.0f', now + math.max(quiet, hold)))
      -- Gone once recovered: (1 - interval / cut) of the recovery time.
      local ttl_ms = math.ceil((1 - interval / cut) * recover / 1000 + math.max(quiet, hold) / 1000) + 1
      redis.call('PEXPIRE', adapt, ttl_ms)
      cuts[i] = 1
    end
  end
  local tat = tonumber(redis.call('GET', KEYS[i]))
  local new_tat = tat
  if cuts[i] == 1 then
    -- The backend is full: no burst right after a cut (a slower interval
    -- would otherwise leave room for one at once); the next unit passes
    -- one new interval from now.
    new_tat = math.max(tat or now, now + burst * effective(adapt, interval))
  end
  if charge ~= 0 then
    local eff = effective(adapt, interval)
    local moved = math.max(new_tat or now, now) + charge * eff
    new_tat = math.min(math.max(moved, now), now + bursts * burst * eff)
  end
  if too_many and hold > 0 then
    -- The whole fleet pauses on the key until the Retry-After is over.
    new_tat = math.max(new_tat or now, now + hold + burst * effective(adapt, interval))
  end
  if new_tat and new_tat ~= tat then
    if new_tat > now then
      local ttl_ms = math.ceil((new_tat - now) / 1000) + 1
      redis.call('SET', KEYS[i], string.format('%.0f', new_tat), 'PX', ttl_ms)
    else
      redis.call('DEL', KEYS[i])
    end
  end
end
return cuts
