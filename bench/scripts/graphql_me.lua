-- POST /graphql { me { ... } } with a bearer token; a response with "errors" is a failure.
-- Args: tokens=FILE (access tokens, round-robin)
local common = dofile((debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "./") .. "common.lua")
local next_token
local headers = { ["Content-Type"] = "application/json" }
local body = '{"query":"{ me { id email name isActive emailVerified createdAt updatedAt } }"}'

function init(args)
  local opts = common.args(args)
  next_token = common.cycle(common.read_lines(opts.tokens), tid)
  check = function(status, response_body)
    return status == 200 and response_body:find('"errors"', 1, true) == nil
      and response_body:find('"me"', 1, true) ~= nil
  end
end

function request()
  headers["Authorization"] = "Bearer " .. next_token()
  return wrk.format("POST", "/graphql", headers, body)
end
