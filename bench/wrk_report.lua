-- wrk script for bench/harness.py: counts replies by HTTP status and prints the whole run
-- as one line starting with "WRK_JSON ", after wrk's own --latency report. For each error
-- status, each thread also prints one reply's message (or body start) on a "WRK_SAMPLE" line.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
  samples = {}
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status >= 400 and samples[status] == nil then
    body = body or ""
    -- the host's error pages carry their message in <p class="detail">
    samples[status] = string.match(body, '<p class="detail">(.-)</p>') or string.sub(body, 1, 200)
  end
end

function done(summary, latency, requests)
  local counts = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      counts[status] = (counts[status] or 0) + n
    end
    for status, body in pairs(thread:get("samples")) do
      io.write(string.format("WRK_SAMPLE %d %s\n", status, (string.gsub(body, "%s+", " "))))
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
    '"latency_us":{"min":%d,"max":%d,"mean":%.1f,"stdev":%.1f,' ..
    '"p50":%d,"p90":%d,"p99":%d,"p999":%d},"statuses":{%s}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.timeout, e.status,
    latency.min, latency.max, latency.mean, latency.stdev,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), table.concat(parts, ",")))
end
