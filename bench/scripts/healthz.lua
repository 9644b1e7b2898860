-- GET /healthz: the event loop's responsiveness (run beside the login storm).
local common = dofile((debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "./") .. "common.lua")

function init(args)
  common.args(args)
end

function request()
  return wrk.format("GET", "/healthz")
end
