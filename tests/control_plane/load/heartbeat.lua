-- wrk script: heartbeats from many devices, each with a random enrolled device's token,
-- READINGS fresh readings (default 5, a 10 s heartbeat of a 2 s sampler) and one plugin.
-- TOKENS names the file of device tokens, one a line (run.sh writes it).
local tokens = {}
for line in io.lines(os.getenv("TOKENS")) do tokens[#tokens + 1] = line end
local counter = 0
local base = os.time()
local thread_offset = 0
local n_readings = tonumber(os.getenv("READINGS") or "5")

function setup(thread)
  thread:set("thread_offset", math.random(1, 1000000))
end

request = function()
  counter = counter + 1
  local token = tokens[math.random(#tokens)]
  local t = base + (thread_offset * 1000 + counter) * 0.0001
  local readings = {}
  for i = 1, n_readings do
    readings[#readings + 1] = string.format(
      '{"source":"dht22:4","temperature_c":21.%d,"humidity_pct":45.%d,"taken_at":%.4f}',
      i, i, t + i * 0.00001)
  end
  local body = '{"host_version":"0.1.0","plugins":[{"name":"dashboard","version":"1.0.0",'
    .. '"sha256":"' .. string.rep("ab", 32) .. '","state":"running","trap_count":0,"last_error":null}],'
    .. '"readings":[' .. table.concat(readings, ",") .. '],"events":[]}'
  return wrk.format("POST", "/api/v1/heartbeat",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token}, body)
end

local statuses = {}
response = function(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

done = function(summary, latency, requests)
  io.write(string.format("requests/s: %.0f  p50 %.1f ms  p99 %.1f ms  errors: %d non2xx-or-socket\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
