-- wrk script: each request uses a random tenant's token. MODE (env) picks the endpoint:
-- list: GET /v1/tasks?limit=50 · get: GET /v1/tasks/{id} · create: POST /v1/tasks
-- Requests are formatted once per thread in init(), so the load generator spends its CPU on
-- sending, not on Lua string building (it shares the machine's cores with the API and
-- PostgreSQL, while pgbench's client is light C).
local mode = os.getenv("MODE") or "list"
local dir = os.getenv("BENCH_OUT") or "bench/out"
local requests = {}
local threads = 0

setup = function(thread)
  threads = threads + 1
  thread:set("id", threads)
end

init = function()
  local tokens = {}
  for line in io.lines(dir .. "/tokens.txt") do tokens[#tokens + 1] = line end
  if mode == "get" then
    for line in io.lines(dir .. "/pairs.txt") do
      local t, id = line:match("(%d+) (%S+)")
      requests[#requests + 1] = wrk.format("GET", "/v1/tasks/" .. id,
        { Authorization = "Bearer " .. tokens[tonumber(t)] })
    end
  else
    for _, token in ipairs(tokens) do
      if mode == "create" then
        requests[#requests + 1] = wrk.format("POST", "/v1/tasks", {
          Authorization = "Bearer " .. token,
          ["Content-Type"] = "application/json",
        }, '{"title":"created under load"}')
      else
        requests[#requests + 1] = wrk.format("GET", "/v1/tasks?limit=50",
          { Authorization = "Bearer " .. token })
      end
    end
  end
  math.randomseed(os.time() * 100 + (id or 0))
end

request = function()
  return requests[math.random(#requests)]
end

done = function(summary)
  io.write(string.format("non-2xx/3xx: %d\n", summary.errors.status))
end
