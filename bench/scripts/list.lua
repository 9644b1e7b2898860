-- GET /api/v1/users?...: the first page, or a deep page by cursor or by skip.
-- Args: token=ACCESS_TOKEN path=/api/v1/users?limit=20[&cursor=C|&skip=N]
local common = dofile((debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "./") .. "common.lua")
local path, headers

function init(args)
  local opts = common.args(args)
  path = opts.path
  headers = { ["Authorization"] = "Bearer " .. opts.token }
  check = function(status, body)
    return status == 200 and body:find('"items"', 1, true) ~= nil
  end
end

function request()
  return wrk.format("GET", path, headers)
end
