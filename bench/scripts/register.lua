-- POST /api/v1/users: a new account per request (argon2id hash, one write transaction).
-- Emails are unique per request: a prefix unique to the run, the thread id and a counter.
-- Args: prefix=UNIQUE password=PASSWORD
local common = dofile((debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "./") .. "common.lua")
local prefix, password
local counter = 0
local headers = { ["Content-Type"] = "application/json" }

function init(args)
  local opts = common.args(args)
  prefix = opts.prefix .. "-" .. tostring(tid)
  password = opts.password
  expect = 201
end

function request()
  counter = counter + 1
  local body = '{"email":"r' .. prefix .. "-" .. counter .. '@bench.example.com",' ..
    '"password":"' .. password .. '","name":"Bench Registrant ' .. counter .. '"}'
  return wrk.format("POST", "/api/v1/users", headers, body)
end
