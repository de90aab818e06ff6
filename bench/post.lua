-- wrk script: POST one JSON-RPC body. BODY and AUTH (an Authorization value) come from the environment.
wrk.method = "POST"
wrk.body = os.getenv("BODY") or '{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}'
wrk.headers["Content-Type"] = "application/json"
local auth = os.getenv("AUTH")
if auth and auth ~= "" then
  wrk.headers["Authorization"] = auth
end
