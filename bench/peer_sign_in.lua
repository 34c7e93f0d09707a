-- Sign-in as a random one of the PEER_USERS seeded accounts (seed00000@bench.test …), POSTed
-- to the URL's path. PEER_BODY is the JSON body with {email} where the address goes.
dofile(os.getenv("PEER_LUA_DIR") .. "/peer_report.lua")

local users = tonumber(os.getenv("PEER_USERS"))
local template = os.getenv("PEER_BODY")
local headers = { ["Content-Type"] = "application/json", ["Accept"] = "application/json" }

function init(args)
  math.randomseed((tid or 0) * 7919 + os.time())
end

function request()
  local email = string.format("seed%05d@bench.test", math.random(0, users - 1))
  return wrk.format("POST", nil, headers, (template:gsub("{email}", email)))
end
