-- bench/dashboard.py's load: POST one GraphQL body (read from a file) with a bearer token.
--
-- Arguments after `--`: BODY_FILE TOKEN STOP_AFTER
--   TOKEN "-" sends no Authorization header; STOP_AFTER > 0 stops each thread after that
--   many answers and prints BENCH_THREAD_DONE (the RSS run counts requests; the timed
--   rounds pass 0).
--
-- An answer with HTTP 200 can still be a failure: GraphQL reports errors in the body. Each
-- thread counts answers that carry `"errors"`; done() adds them up and prints the summary as
-- one JSON line (BENCH_JSON ...) that the bench parses, latencies in microseconds.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local file = assert(io.open(args[1], "rb"))
  wrk.body = file:read("*a")
  file:close()
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  if args[2] ~= nil and args[2] ~= "-" then
    wrk.headers["Authorization"] = "Bearer " .. args[2]
  end
  stop_after = tonumber(args[3] or "0") or 0
  answers = 0
  graphql_errors = 0
end

function response(status, headers, body)
  answers = answers + 1
  if status == 200 and string.find(body, '"errors"', 1, true) then
    graphql_errors = graphql_errors + 1
  end
  if stop_after > 0 and answers == stop_after then
    -- wrk's main thread sleeps for the whole -d even when every thread has stopped; the
    -- bench reads this line and interrupts it (SIGINT), after which wrk still reports.
    io.write("BENCH_THREAD_DONE\n")
    io.flush()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local errors = 0
  local answered = 0
  for _, thread in ipairs(threads) do
    errors = errors + (thread:get("graphql_errors") or 0)
    answered = answered + (thread:get("answers") or 0)
  end
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"mean_us":%.1f,"graphql_errors":%d,"answers":%d}\n',
    summary.requests, summary.duration, summary.bytes, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency:percentile(50.0), latency:percentile(90.0), latency:percentile(99.0),
    latency.max, latency.mean, errors, answered))
end
