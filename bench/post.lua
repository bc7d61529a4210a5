-- wrk script: POST the body in the file named by the first script argument; print stats as JSON.
-- Optional second argument: a JSON header length, sent as Inference-Header-Content-Length (Triton's binary
-- tensor extension), with Content-Type application/octet-stream.
-- wrk -t2 -c16 -d10s -s bench/post.lua http://127.0.0.1:8000/forecast -- body.json
init = function(args)
  local f = assert(io.open(args[1], "rb"))
  wrk.method = "POST"
  wrk.body = f:read("*a")
  f:close()
  if args[2] then
    wrk.headers["Content-Type"] = "application/octet-stream"
    wrk.headers["Inference-Header-Content-Length"] = args[2]
  else
    wrk.headers["Content-Type"] = "application/json"
  end
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "mean_us": %.1f, ' ..
    '"socket_errors": %d, "non_2xx": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, e.connect + e.read + e.write + e.timeout, e.status))
end
