-- The signed-in account's own record, the same request every time: PEER_METHOD to the URL's
-- path, with PEER_TOKEN as a bearer token when set and PEER_BODY as a JSON body when set.
dofile(os.getenv("PEER_LUA_DIR") .. "/peer_report.lua")

wrk.method = os.getenv("PEER_METHOD")
wrk.headers["Accept"] = "application/json"
local token = os.getenv("PEER_TOKEN") or ""
if token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end
local body = os.getenv("PEER_BODY") or ""
if body ~= "" then
  wrk.headers["Content-Type"] = "application/json"
  wrk.body = body
end
