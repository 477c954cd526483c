-- wrk script: heartbeats from many enrolled devices, as a device host sends them.
-- Each request carries a random device's token, the plugins every device runs (the JSON
-- array in $PLUGINS, with their real versions and digests) and $READINGS fresh readings
-- (5 is a 10 s heartbeat of a 2 s sampler). $TOKENS names the file of device tokens, one a
-- line. Readings get distinct times, so the control plane really stores every one. With
-- $SEQUENCES (a file of each device's desired-state sequence, line by line with the tokens)
-- each heartbeat reports its device's sequence, so unchanged answers leave the envelope out;
-- without it, every answer carries the envelope (as for a host too old to report one).
-- At the end it prints one line "WRK_JSON {...}": counts by status, errors, latency (µs).

local tokens = {}
for line in io.lines(os.getenv("TOKENS")) do tokens[#tokens + 1] = line end
local sequences = {}
if os.getenv("SEQUENCES") then
  for line in io.lines(os.getenv("SEQUENCES")) do sequences[#sequences + 1] = line end
end
local plugins = io.open(os.getenv("PLUGINS")):read("*a"):gsub("%s+$", "")
local n_readings = tonumber(os.getenv("READINGS") or "5")
local threads = {}
local next_id = 0
-- One wrk runs per app server at once: $WRK_INSTANCE keeps their reading times (10 minutes
-- apart) and device choices apart; alike, they sent the same heartbeats twice.
local instance = tonumber(os.getenv("WRK_INSTANCE") or "0")

function setup(thread)
  next_id = next_id + 1
  thread:set("id", next_id)
  table.insert(threads, thread)
end

function init(args)
  counter = 0
  statuses = {}
  base = os.time() - 3600 - instance * 600 + id * 0.001
  math.randomseed(os.time() + id + instance * 1000)
end

function request()
  counter = counter + 1
  local t = base + counter * 0.01
  local readings = {}
  for i = 1, n_readings do
    readings[i] = string.format(
      '{"source":"dht22:4","temperature_c":21.%d,"humidity_pct":45.%d,"taken_at":%.5f}',
      i % 10, (i * 7) % 10, t + i * 0.00001)
  end
  local device = math.random(#tokens)
  local sequence = ""
  if sequences[device] then sequence = ',"desired_sequence":' .. sequences[device] end
  local body = '{"host_version":"0.1.0","plugins":' .. plugins
    .. ',"readings":[' .. table.concat(readings, ",") .. '],"events":[]' .. sequence .. '}'
  return wrk.format("POST", "/api/v1/heartbeat",
    {["Content-Type"] = "application/json",
     ["Authorization"] = "Bearer " .. tokens[device]}, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local counts = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      counts[status] = (counts[status] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(counts) do
    table.insert(parts, string.format('"%d":%d', status, n))
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d,"status":%d},' ..
    '"latency_us":{"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"max":%d},"statuses":{%s}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.timeout, e.status,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, table.concat(parts, ",")))
end
