-- errpos: errors raised inside lgrad's Lua modules (nn, data, train) are
-- reported at the user's line, not at bindings/lgrad/nn.lua:837.
--
-- Those modules call error through this module's error(msg [, level]):
-- the message gets the position of the first stack frame that is not in
-- one of lgrad's Lua files (level 0 keeps the message as it is).  The C
-- half does the same for every luaL_error of the binding (l_where.c), so
-- an op called by a layer's forward names the line that called the
-- layer.  Only the error path pays; nothing wraps the calls.
local lg = require "lgrad"

local M = {}
local where, raise = lg._where, error

function M.error(msg, level)
  if level == 0 or type(msg) ~= "string" then raise(msg, 0) end
  raise(where(1) .. msg, 0)
end

return M
