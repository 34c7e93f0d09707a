-- Loaded by every bench/peer_*.lua script (benches/support/peers.rs runs them against
-- appmixer-auth, the Firebase Auth Emulator and json-server-auth): numbers the threads and
-- prints one line the harness parses. wrk counts answers of 400 and above in `status`; the
-- harness checks that each loaded request answers 2xx (not 1xx or 3xx) before the load, so
-- requests - status is the count of successful answers. Timeouts and socket errors are not
-- in `requests`.
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "PEER requests=%d duration_us=%d status=%d timeout=%d connect=%d read=%d write=%d\n",
    summary.requests, summary.duration, e.status, e.timeout, e.connect, e.read, e.write))
end
