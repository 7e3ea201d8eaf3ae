-- errpos: errors raised inside lgrad's Lua modules (nn, data, train) are
-- reported at the user's line, not at bindings/lgrad/nn.lua:837.
--
-- wrap(fn) returns a function that calls fn; when fn raises a string whose
-- position is inside one of these files (an error() of the library, or a
-- C op called by it) or that has no position, the position is replaced by the one of the first
-- stack frame outside the library and outside C, which is the line of the
-- user's code that called into lgrad.  Other errors pass unchanged.
local M = {}

local getinfo = debug.getinfo

-- "...lgrad/nn.lua:837: msg" -> "msg", and a message without a position
-- as it is (error(msg, 2) from a wrapped function has none: its caller is
-- xpcall); nil when positioned elsewhere (the user's code)
local function strip(msg)
  local rest = msg:match("^[^\n]-lgrad[/\\][%w_]+%.lua:%d+: (.*)$")
  if rest then return rest end
  if not msg:find("^[^\n]-:%d+: ") then return msg end
  return nil
end

local function in_library(source)
  return source:find("lgrad[/\\][%w_]+%.lua$") ~= nil
end

local function relocate(msg)
  if type(msg) ~= "string" then return msg end
  local rest = strip(msg)
  if not rest then return msg end
  for level = 2, 200 do
    local info = getinfo(level, "Sl")
    if not info then break end
    if info.what ~= "C" and info.currentline and info.currentline > 0 and
       not in_library(info.source) then
      return info.short_src .. ":" .. info.currentline .. ": " .. rest
    end
  end
  return rest
end
M.relocate = relocate

local function pass(ok, ...)
  if ok then return ... end
  error((...), 0)
end

function M.wrap(fn)
  return function(...) return pass(xpcall(fn, relocate, ...)) end
end

return M
