-- Shared by every scenario script (loaded with dofile from the script's own folder).
--
-- Arguments come after the URL as key=value pairs: wrk ... URL -- tokens=/path path=/x
-- Every response is counted by status class and checked by the scenario (`check`);
-- done() prints one line, "BENCH_JSON {...}", that bench/run.py parses: requests,
-- errors, latency percentiles (microseconds) and the counts.

local M = {}

function M.args(args)
  local opts = {}
  for i = 0, #args do
    local a = args[i]
    if type(a) == "string" then
      local k, v = a:match("^([%w_]+)=(.*)$")
      if k then opts[k] = v end
    end
  end
  return opts
end

function M.read_lines(path)
  local lines = {}
  local f = assert(io.open(path, "r"), "cannot open " .. tostring(path))
  for line in f:lines() do
    if line ~= "" then lines[#lines + 1] = line end
  end
  f:close()
  assert(#lines > 0, "no lines in " .. path)
  return lines
end

function M.json_escape(s)
  s = s:gsub('[%c"\\]', function(c)
    if c == '"' then return '\\"' end
    if c == "\\" then return "\\\\" end
    return string.format("\\u%04x", c:byte())
  end)
  return s
end

-- A round-robin over a list, starting at a per-thread offset.
function M.cycle(list, start)
  local i = (start or 0) % #list
  return function()
    i = i % #list + 1
    return list[i]
  end
end

-- Per-thread counters (globals of the thread's Lua state; done() reads them).
n2xx, n3xx, n4xx, n5xx, rejected, sample = 0, 0, 0, 0, 0, ""
expect = 200
-- check(status, body) -> true when the response is what the scenario wants.
check = function(status, _body) return status == expect end

function response(status, _headers, body)
  if status >= 500 then n5xx = n5xx + 1
  elseif status >= 400 then n4xx = n4xx + 1
  elseif status >= 300 then n3xx = n3xx + 1
  else n2xx = n2xx + 1 end
  if not check(status, body or "") then
    rejected = rejected + 1
    if sample == "" then sample = tostring(status) .. " " .. (body or ""):sub(1, 300) end
  end
end

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  threads[#threads + 1] = thread
end

function done(summary, latency, _requests)
  local c = { n2xx = 0, n3xx = 0, n4xx = 0, n5xx = 0, rejected = 0, dry = 0 }
  local first = ""
  for _, t in ipairs(threads) do
    for k in pairs(c) do c[k] = c[k] + (tonumber(t:get(k)) or 0) end
    local s = t:get("sample")
    if first == "" and type(s) == "string" then first = s end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f},' ..
    '"status":{"2xx":%d,"3xx":%d,"4xx":%d,"5xx":%d},"rejected":%d,"dry":%d,"sample":"%s"}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean,
    c.n2xx, c.n3xx, c.n4xx, c.n5xx, c.rejected, c.dry, M.json_escape(first)))
end

return M
