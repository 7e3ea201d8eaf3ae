-- Shared helpers for the specs: element lists, shapes, a tolerant
-- comparison of tensors, nested tables and numbers, and a deterministic
-- source of test data that does not depend on lgrad's own generator.
--
--   local h = require "helpers"
--   assert.allclose(got, want [, rtol [, atol [, what]]]) -- tensors, tables,
--                                                          -- numbers
--   assert.shape(t, {2, 3})                         -- exact shape
--   h.flat(t)            -- elements in row-major order (a Lua list)
--   h.data({2, 3}, seed) -- nested table of values in [-1, 1), reproducible
--   h.layouts(data, dtype) -- the same values as contiguous, transposed,
--                          -- narrowed and strided tensors
--   h.quote(s)           -- s as one shell word
--   h.tmpdir()           -- a fresh empty directory
--   h.asan               -- true under make sanitize
--   h.rss_source         -- Lua source of rss() (VmRSS in kB) for children
local M = {}

function M.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

function M.tmpdir()
  local d = os.tmpname()
  os.remove(d)
  assert(os.execute("mkdir -p " .. M.quote(d)))
  return d
end

-- AddressSanitizer preloaded, or the sanitizer build's binary: freed
-- memory sits in quarantine (resident sizes grow whatever the program
-- does) and terabytes of shadow are mapped (no ulimit -v)
M.asan = ((os.getenv("LD_PRELOAD") or ""):find("asan") or
          (os.getenv("LGRAD_BIN") or ""):find("san/lgrad$")) ~= nil

M.rss_source = [[
  local function rss()
    for line in io.lines("/proc/self/status") do
      local kb = line:match("^VmRSS:%s+(%d+)")
      if kb then return tonumber(kb) end
    end
  end
]]

local say = require "say"
local luassert = require "luassert"

local function is_tensor(x)
  return type(x) == "userdata" and type(x.totable) == "function"
end
M.is_tensor = is_tensor

-- the shape of a tensor, or of a (rectangular) nested table, as a list
function M.shape_of(x)
  if is_tensor(x) then return x:shape() end
  local s = {}
  while type(x) == "table" do
    s[#s + 1] = #x
    if #x == 0 then break end
    x = x[1]
  end
  return s
end

function M.shape_str(s)
  return "[" .. table.concat(s, ",") .. "]"
end

local function flatten_into(x, out)
  if type(x) == "table" then
    for i = 1, #x do flatten_into(x[i], out) end
  else
    out[#out + 1] = x
  end
  return out
end

-- elements of a tensor, nested table or number in row-major order
function M.flat(x)
  if is_tensor(x) then x = x:totable() end
  return flatten_into(x, {})
end

-- nested table of the given shape from a flat list (row-major)
function M.nest(list, shape)
  local pos = 0
  local function build(d)
    if d > #shape then
      pos = pos + 1
      return list[pos]
    end
    local r = {}
    for i = 1, shape[d] do r[i] = build(d + 1) end
    return r
  end
  if #shape == 0 then return list[1] end
  return build(1)
end

-- a reproducible stream of numbers in [-1, 1) (a 64-bit LCG)
function M.stream(seed)
  local state = (seed or 1) * 2654435761 + 12345
  return function()
    state = state * 6364136223846793005 + 1442695040888963407
    return ((state >> 11) / 9007199254740992.0) * 2 - 1
  end
end

-- a nested table of the given shape with values from stream(seed); with
-- `ints`, integers in -9..9 instead
function M.data(shape, seed, ints)
  local next_value = M.stream(seed)
  local n = 1
  for i = 1, #shape do n = n * shape[i] end
  local list = {}
  for i = 1, n do
    local v = next_value()
    list[i] = ints and math.floor(v * 10) or v
  end
  return M.nest(list, shape)
end

local function reversed(n)
  local r = {}
  for i = 1, n do r[i] = n - i + 1 end
  return r
end

-- {name, tensor} pairs that all hold the values of the nested table
-- `data` in different memory layouts: contiguous, transposed (dims
-- reversed), narrowed out of a larger tensor, and strided (every third
-- element of a larger tensor)
function M.layouts(data, dtype)
  local lg = require "lgrad"
  local x = lg.tensor(data, {dtype = dtype})
  local shape, n = x:shape(), x:dim()
  local out = {{"contiguous", x}}
  if n >= 2 then
    local p = reversed(n)
    out[#out + 1] = {"transposed", x:permute(p):contiguous():permute(p)}
  end
  if n >= 1 then
    local big = {}
    for d = 1, n do big[d] = shape[d] + 2 end
    local v = lg.zeros(big, {dtype = dtype})
    for d = 1, n do v = v:narrow(d, 2, shape[d]) end
    v:copy_(x)
    out[#out + 1] = {"narrowed", v}
    local wide = {table.unpack(shape)}
    wide[n + 1] = 3
    local s = lg.zeros(wide, {dtype = dtype}):select(n + 1, 2)
    s:copy_(x)
    out[#out + 1] = {"strided", s}
  end
  return out
end

local function same_list(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end

-- nil when got and want agree, else a message saying where they differ.
-- |got - want| <= atol + rtol * |want| elementwise; NaN matches NaN,
-- infinities must match exactly; booleans compare exactly.
function M.compare(got, want, rtol, atol)
  rtol = rtol or 1e-5
  atol = atol or 1e-6
  if is_tensor(got) or is_tensor(want) or type(got) == "table" or
     type(want) == "table" then
    local gs, ws = M.shape_of(got), M.shape_of(want)
    -- a number compares with a 0-d tensor
    if not same_list(gs, ws) then
      return string.format("shape %s, expected %s", M.shape_str(gs),
                           M.shape_str(ws))
    end
  end
  local g, w = M.flat(got), M.flat(want)
  if #g ~= #w then
    return string.format("%d elements, expected %d", #g, #w)
  end
  for i = 1, #w do
    local a, b = g[i], w[i]
    local bad
    if type(b) == "boolean" or type(a) == "boolean" then
      bad = a ~= b
    elseif type(a) ~= "number" then
      bad = true
    elseif b ~= b then
      bad = a == a
    elseif b == math.huge or b == -math.huge then
      bad = a ~= b
    else
      -- written so that a NaN in got fails
      -- luacheck: push ignore 581
      bad = not (math.abs(a - b) <= atol + rtol * math.abs(b))
      -- luacheck: pop
    end
    if bad then
      return string.format("element %d is %s, expected %s", i,
                           string.format(type(a) == "number" and "%.9g" or
                                         "%s", a),
                           string.format(type(b) == "number" and "%.9g" or
                                         "%s", b))
    end
  end
  return nil
end

function M.allclose(got, want, rtol, atol)
  return M.compare(got, want, rtol, atol) == nil
end

local function allclose(state, arguments)
  local msg = M.compare(arguments[1], arguments[2], arguments[3],
                        arguments[4])
  if msg and arguments[5] then msg = tostring(arguments[5]) .. ": " .. msg end
  if msg then state.failure_message = msg end
  return msg == nil
end

local function has_shape(state, arguments)
  local got = M.shape_of(arguments[1])
  local ok = same_list(got, arguments[2])
  if not ok then
    state.failure_message = string.format("shape %s, expected %s",
                                          M.shape_str(got),
                                          M.shape_str(arguments[2]))
  end
  return ok
end

--- The message of the error fn(...) raises (asserting that it raises).
function M.err_of(fn, ...)
  local ok, e = pcall(fn, ...)
  luassert.is_false(ok, "expected an error")
  return tostring(e)
end

--- Asserts that string s contains sub (plain text).
function M.has(s, sub)
  luassert.is_truthy(s:find(sub, 1, true),
    string.format("%q does not contain %q", s, sub))
end

say:set("assertion.allclose.positive", "Expected values to be close")
say:set("assertion.allclose.negative", "Expected values to differ")
say:set("assertion.shape.positive", "Expected the shape to match")
say:set("assertion.shape.negative", "Expected the shape to differ")
luassert:register("assertion", "allclose", allclose,
                  "assertion.allclose.positive",
                  "assertion.allclose.negative")
luassert:register("assertion", "shape", has_shape, "assertion.shape.positive",
                  "assertion.shape.negative")

return M
