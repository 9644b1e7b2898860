-- GET /api/v1/users/me (the authenticated hot path), or the floor app's GET /me.
-- Args: tokens=FILE (access tokens, one a line, used round-robin) [path=/api/v1/users/me]
local common = dofile((debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "./") .. "common.lua")
local path, next_token, headers

function init(args)
  local opts = common.args(args)
  path = opts.path or "/api/v1/users/me"
  next_token = common.cycle(common.read_lines(opts.tokens), tid)
  headers = {}
end

function request()
  headers["Authorization"] = "Bearer " .. next_token()
  return wrk.format("GET", path, headers)
end
