-- POST /api/v1/auth/refresh: every request spends a refresh token never used before.
--
-- Refresh tokens are single use, so the script keeps a FIFO queue: it starts with a
-- pool of pre-issued tokens (one login each, at least one per connection) and every
-- successful response appends the new refresh token it carries. Each request takes
-- the oldest unused token, so no token is ever sent twice. (wrk calls response()
-- before that connection's next request(), so the queue never runs dry while the
-- server answers 200; should it, the request goes out with a dummy token, gets 401
-- and is counted in "dry".)
-- Args: tokens=FILE (pre-issued refresh tokens)
local common = dofile((debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "./") .. "common.lua")
local queue, head, tail = {}, 1, 0
local headers = { ["Content-Type"] = "application/json" }
dry = 0

function init(args)
  local opts = common.args(args)
  queue = common.read_lines(opts.tokens)
  tail = #queue
  check = function(status, body)
    if status ~= 200 then return false end
    local token = body:match('"refresh_token"%s*:%s*"([^"]+)"')
    if not token then return false end
    tail = tail + 1
    queue[tail] = token
    return true
  end
end

function request()
  local token = queue[head]
  if token == nil then
    dry = dry + 1
    token = "spent-pool-dummy"
  else
    queue[head] = nil
    head = head + 1
  end
  return wrk.format("POST", "/api/v1/auth/refresh", headers, '{"refresh_token":"' .. token .. '"}')
end
