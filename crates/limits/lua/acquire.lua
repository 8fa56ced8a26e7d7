-- Takes every limit a task is under in one atomic step: all or nothing.
--
-- KEYS[1..n]       GCRA state of each rate limit (a theoretical arrival time, µs)
-- KEYS[n+1..n+m]   lease sorted set of each concurrency cap (member -> expiry, ms)
-- KEYS[n+m+1..2n+m] adaptive state of each rate limit (optional; see after.lua):
--                  with them, a rate cut after a backend's "too many" applies
-- ARGV[1] n, ARGV[2] m, ARGV[3] cost, ARGV[4] lease member, ARGV[5] lease ttl (ms)
-- ARGV[5+2i-1], ARGV[5+2i]   configured emission interval (µs per unit) and burst (units) of rate key i
-- ARGV[5+2n+j]               cap of lease key j
--
-- Returns {1} when admitted (tokens taken, leases held), or {0, wait_us, k}
-- when denied, k being the 1-based index among KEYS of the limit that
-- denied for longest; nothing is written on a denial. Time is Redis server
-- time, so workers' clocks do not matter.

local n = tonumber(ARGV[1])
local m = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local member = ARGV[4]
local lease_ttl_ms = tonumber(ARGV[5])

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now_ms = math.floor(now / 1000)

local wait, denied_by = 0, 0
local new_tats = {}
local adapted = #KEYS >= 2 * n + m

-- The interval in force: the configured one, or the one cut after a
-- backend's "too many" plus what it recovered since (never faster).
local function effective(key, interval)
  local s = redis.call('HMGET', key, 'interval', 'at', 'recover')
  local cut, at, recover = tonumber(s[1]), tonumber(s[2]), tonumber(s[3])
  if not (cut and at and recover) or cut <= 0 or recover <= 0 then return interval end
  local rate = 1 / cut + math.max(0, now - at) / (recover * interval)
  if rate * interval >= 1 then return interval end
  return 1 / rate
end

-- GCRA: each unit advances the theoretical arrival time (TAT) by the
-- emission interval; a call passes if its new TAT is at most `burst`
-- intervals ahead of now.
for i = 1, n do
  local interval = tonumber(ARGV[5 + 2 * i - 1])
  if adapted then interval = effective(KEYS[n + m + i], interval) end
  local burst = tonumber(ARGV[5 + 2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i])) or now
  if tat < now then tat = now end
  local new_tat = tat + cost * interval
  local allow_at = new_tat - burst * interval
  if allow_at > now then
    if allow_at - now > wait then wait, denied_by = allow_at - now, i end
  end
  new_tats[i] = new_tat
end

-- Leases: drop the expired ones (a dead worker's), then count.
for j = 1, m do
  local key = KEYS[n + j]
  local cap = tonumber(ARGV[5 + 2 * n + j])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now_ms)
  if redis.call('ZCARD', key) >= cap then
    -- Leases are usually given back long before they expire: poll soon.
    local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    local until_expiry = (tonumber(first[2]) - now_ms) * 1000
    local poll = math.min(until_expiry, 25000)
    if poll > wait or denied_by == 0 then wait, denied_by = poll, n + j end
  end
end

if denied_by > 0 then
  return {0, math.ceil(wait), denied_by}
end

for i = 1, n do
  local ttl_ms = math.ceil((new_tats[i] - now) / 1000) + 1
  redis.call('SET', KEYS[i], string.format('%.0f', new_tats[i]), 'PX', ttl_ms)
end
for j = 1, m do
  redis.call('ZADD', KEYS[n + j], now_ms + lease_ttl_ms, member)
  redis.call('PEXPIRE', KEYS[n + j], lease_ttl_ms * 2)
end
return {1}
