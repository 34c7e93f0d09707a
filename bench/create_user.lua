-- POST /user with a fresh username every time (BENCH_TAG keeps runs apart): one bcrypt hash
-- at the configured cost, a uniqueness check and one durable insert.
local tag = os.getenv("BENCH_TAG")
local password = os.getenv("BENCH_PASSWORD")
local headers = { ["Content-Type"] = "application/json" }
local n = 0

function request()
  n = n + 1
  local name = string.format("new-%s-%d-%d@bench.test", tag, tid or 0, n)
  local body = string.format('{"username":"%s","email":"%s","password":"%s"}', name, name, password)
  return wrk.format("POST", "/user", headers, body)
end
