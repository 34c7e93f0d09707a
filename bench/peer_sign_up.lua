-- One fresh account per request, POSTed to the URL's path. PEER_BODY is the JSON body with
-- {email} where the new address goes; PEER_TAG keeps runs apart; PEER_LUA_DIR is bench/.
dofile(os.getenv("PEER_LUA_DIR") .. "/peer_report.lua")

local tag = os.getenv("PEER_TAG")
local template = os.getenv("PEER_BODY")
local headers = { ["Content-Type"] = "application/json", ["Accept"] = "application/json" }
local n = 0

function request()
  n = n + 1
  local email = string.format("new-%s-%d-%d@bench.test", tag, tid or 0, n)
  return wrk.format("POST", nil, headers, (template:gsub("{email}", email)))
end
