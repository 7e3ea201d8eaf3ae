-- lgrad.options: the trailing options table of lgrad's Lua functions,
-- checked in one place (lgrad.nn, lgrad.exp).
--
--   local opts_of = require("lgrad.options")
--   local linear_opts = opts_of.set_of { "bias", "dtype" }
--   opts = opts_of.check("Linear", opts, linear_opts)

local lg = require "lgrad"

local fmt = string.format
local is_tensor = lg.is_tensor

local M = {}

-- a set (name -> true) of the names in list
function M.set_of(list)
  local s = {}
  for _, k in ipairs(list) do s[k] = true end
  return s
end

-- the options table (or {} for nil), with unknown keys rejected; the
-- error is raised at the level of the function's caller
function M.check(fname, opts, allowed)
  if opts == nil then return {} end
  if type(opts) ~= "table" or is_tensor(opts) then
    error(fmt("%s: options must be a table (got %s)", fname, type(opts)), 3)
  end
  for k in pairs(opts) do
    if not allowed[k] then
      error(fmt("%s: unknown option '%s'", fname, tostring(k)), 3)
    end
  end
  return opts
end

return M
