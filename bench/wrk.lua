-- wrk script: each request uses a random tenant's token. MODE (env) picks the endpoint:
-- list: GET /v1/tasks?limit=50 · get: GET /v1/tasks/{id} · create: POST /v1/tasks
local mode = os.getenv("MODE") or "list"
local dir = os.getenv("BENCH_OUT") or "bench/out"
local tokens, pairs = {}, {}

for line in io.lines(dir .. "/tokens.txt") do tokens[#tokens + 1] = line end
if mode == "get" then
  for line in io.lines(dir .. "/pairs.txt") do
    local t, id = line:match("(%d+) (%S+)")
    pairs[#pairs + 1] = { tokens[tonumber(t)], id }
  end
end

math.randomseed(os.time())

request = function()
  if mode == "get" then
    local p = pairs[math.random(#pairs)]
    return wrk.format("GET", "/v1/tasks/" .. p[2], { Authorization = "Bearer " .. p[1] })
  elseif mode == "create" then
    return wrk.format("POST", "/v1/tasks", {
      Authorization = "Bearer " .. tokens[math.random(#tokens)],
      ["Content-Type"] = "application/json",
    }, '{"title":"created under load"}')
  else
    return wrk.format("GET", "/v1/tasks?limit=50",
      { Authorization = "Bearer " .. tokens[math.random(#tokens)] })
  end
end

local failures = 0
response = function(status)
  if status >= 400 then failures = failures + 1 end
end

done = function(summary)
  io.write(string.format("non-2xx/3xx: %d\n", summary.errors.status))
end
