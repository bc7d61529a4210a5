-- wrk script: one-reading appends to random streams s0 .. s<N-1>, where N is the first script argument; the
-- reading is a random value around the second (the series' level). Prints stats as JSON, as post.lua does.
-- wrk -t2 -c16 -d15s -s bench/streams.lua http://127.0.0.1:8000 -- 10000 8.0
local streams, level = 1, 0
init = function(args)
  streams = tonumber(args[1])
  level = tonumber(args[2] or "0")
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

request = function()
  local path = "/streams/s" .. math.random(0, streams - 1) .. "/points"
  local body = string.format('{"values":[%.3f]}', level + (math.random() - 0.5))
  return wrk.format(nil, path, nil, body)
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "mean_us": %.1f, ' ..
    '"socket_errors": %d, "non_2xx": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, e.connect + e.read + e.write + e.timeout, e.status))
end
