-- wrk script for a paced load: like post.lua, and each connection waits args[2] ms between requests.
-- wrk -t2 -c16 -d60s -s bench/paced.lua http://127.0.0.1:8000/forecast -- body.json 2.5
local pause = 0
init = function(args)
  local f = assert(io.open(args[1], "r"))
  wrk.method = "POST"
  wrk.body = f:read("*a")
  wrk.headers["Content-Type"] = "application/json"
  f:close()
  pause = tonumber(args[2] or "0")
end

delay = function()
  return pause
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "mean_us": %.1f, ' ..
    '"socket_errors": %d, "non_2xx": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, e.connect + e.read + e.write + e.timeout, e.status))
end
