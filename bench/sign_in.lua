-- POST /user/auth as a random one of the BENCH_USERS seeded users, with the right password:
-- each request is one bcrypt verify at the stored cost plus a lookup by username.
local users = tonumber(os.getenv("BENCH_USERS"))
local password = os.getenv("BENCH_PASSWORD")
local headers = { ["Content-Type"] = "application/json" }

function init(args)
  math.randomseed((tid or 0) * 7919 + os.time())
end

function request()
  local i = math.random(0, users - 1)
  local body = string.format('{"username":"user%06d@bench.test","password":"%s"}', i, password)
  return wrk.format("POST", "/user/auth", headers, body)
end
