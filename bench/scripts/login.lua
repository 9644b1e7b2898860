-- POST /api/v1/auth/login as seeded users, round-robin (each login verifies argon2id).
-- Args: emails=FILE password=PASSWORD
local common = dofile((debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "./") .. "common.lua")
local next_email, password
local headers = { ["Content-Type"] = "application/json" }

function init(args)
  local opts = common.args(args)
  next_email = common.cycle(common.read_lines(opts.emails), tid * 7919)
  password = opts.password
  check = function(status, body)
    return status == 200 and body:find('"access_token"', 1, true) ~= nil
  end
end

function request()
  local body = '{"email":"' .. next_email() .. '","password":"' .. password .. '"}'
  return wrk.format("POST", "/api/v1/auth/login", headers, body)
end
