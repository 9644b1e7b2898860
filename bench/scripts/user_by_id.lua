-- GET /api/v1/users/{id}: a superuser reads seeded users, round-robin over a sample.
-- Args: token=ACCESS_TOKEN ids=FILE (user ids, one a line)
local common = dofile((debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "./") .. "common.lua")
local next_id, headers

function init(args)
  local opts = common.args(args)
  headers = { ["Authorization"] = "Bearer " .. opts.token }
  next_id = common.cycle(common.read_lines(opts.ids), tid)
end

function request()
  return wrk.format("GET", "/api/v1/users/" .. next_id(), headers)
end
