--- lgrad.nn: modules (lg.nn).
--
--   local model = lg.nn.Sequential(
--     lg.nn.Linear(784, 256), lg.nn.ReLU(), lg.nn.Linear(256, 10))
--   local logits = model(x)                 -- m(x) runs m:forward(x)
--   local opt = lg.optim.Adam(model:parameters(), {lr = 1e-3})
--   print(model)                            -- structure and parameter count
--
-- Modules written in Lua subclass lg.nn.Module with extend, set their
-- sub-modules and parameters up in init by plain assignment, and define
-- forward:
--
--   local MLP = lg.nn.Module:extend("MLP")
--   function MLP:init(nin, nhidden, nout)
--     self.fc1 = lg.nn.Linear(nin, nhidden)   -- a sub-module
--     self.fc2 = lg.nn.Linear(nhidden, nout)
--     self.scale = lg.nn.Parameter(lg.ones(nout))   -- a parameter
--     self:register_buffer("calls", lg.zeros{})     -- state, not trained
--   end
--   function MLP:forward(x)
--     return self.fc2(self.fc1(x):relu()) * self.scale
--   end
--   local m = MLP(784, 128, 10)
--
-- Registration: assigning a module, or a tensor that requires grad
-- (lg.nn.Parameter(t) is t made a leaf that requires grad), to a new field
-- of a module registers it under the field's name, in assignment order.
-- Later assignments to the same field replace the value and keep the
-- registration.  Tensors that do not require grad are plain fields unless
-- registered with register_buffer (saved in state_dict, not trained).
-- register_parameter and add_module register explicitly.  Field names used
-- by the methods below (train, forward, parameters, ...) and names starting
-- with "_" are reserved.
--
-- Names: named_parameters and state_dict use PyTorch's dotted names, so
-- state dicts interchange with PyTorch's: a Sequential's children are
-- named "0", "1", ... (m[1] is the child named "0"), as torch.nn.Sequential
-- names them.  A module's own parameters come first, then its buffers
-- (state_dict only), then each child's, in registration order.

local lg = require "lgrad"
-- errors name the user's line, not this file's (lgrad/errpos.lua)
local error = require("lgrad.errpos").error

local F = lg.F
local opts_of = require "lgrad.options"
local is_tensor = lg.is_tensor
local mtype = math.type
local sqrt = math.sqrt
local fmt = string.format

local M = {}

local init = require "lgrad.nn_init"
M.init = init
local nograd, fans = init._nograd, init._fans

---------------------------------------------------------------------------
-- helpers

local function is_module(v)
  if type(v) ~= "table" then return false end
  local mt = getmetatable(v)
  return type(mt) == "table" and mt._is_module == true
end
M.is_module = is_module

local function shape_str(shape)
  return "[" .. table.concat(shape, ",") .. "]"
end

-- a child's name in dotted paths: integer keys (a Sequential's) are
-- PyTorch's 0-based names
local function key_name(k)
  if mtype(k) == "integer" then return tostring(k - 1) end
  return k
end

-- a registered name: a string or an integer (a float with an integer's
-- value, such as 2.0, is that integer: Lua's tables treat them alike);
-- anything else is fname's error
local function reg_name(fname, k, level)
  if type(k) == "string" or mtype(k) == "integer" then return k end
  local i = mtype(k) == "float" and math.tointeger(k)
  if i then return i end
  error(fmt("%s: a name must be a string or an integer (got %s %s)", fname,
    type(k), tostring(k)), level + 1)
end

local function join(prefix, k)
  local name = key_name(k)
  if prefix == "" then return name end
  return prefix .. "." .. name
end

local function check_int(fname, what, v, min)
  if mtype(v) ~= "integer" or v < (min or 1) then
    error(fmt("%s: %s must be an integer >= %d (got %s)", fname, what,
      min or 1, tostring(v)), 3)
  end
  return v
end

-- the options table (or {}), with unknown keys rejected
local options, set_of = opts_of.check, opts_of.set_of
M._options = options -- shared with lg.explain and lg.privacy

-- integer or {h, w} pair
local function pair(fname, what, v)
  if mtype(v) == "integer" and v >= 0 then return { v, v } end
  if type(v) == "table" and not is_tensor(v) and #v == 2
      and mtype(v[1]) == "integer" and mtype(v[2]) == "integer" then
    return { v[1], v[2] }
  end
  error(fmt("%s: %s must be an integer or a pair {h, w} (got %s)", fname,
    what, tostring(v)), 3)
end

local function pair_str(p)
  if p[1] == p[2] then return tostring(p[1]) end
  return "(" .. p[1] .. ", " .. p[2] .. ")"
end

---------------------------------------------------------------------------
-- Module: the base class

local Module = {}
Module._is_module = true
Module.__index = Module
Module.__name = "Module"
M.Module = Module

-- registers k when first given a module or a tensor requiring grad
local function module_newindex(self, k, v)
  if v ~= nil then
    local kind = self._kind
    if kind[k] == nil then
      local what
      if is_module(v) then
        what = "module"
      elseif is_tensor(v) and v.requires_grad then
        what = "param"
      end
      if what then
        k = reg_name("Module", k, 2)
        local order = self._order
        order[#order + 1] = k
        kind[k] = what
      end
    end
  end
  rawset(self, k, v)
end
Module.__newindex = module_newindex

-- forward hooks (register_forward_hook) run after forward, when any
function Module.__call(self, ...)
  local hooks = rawget(self, "_forward_hooks")
  if hooks == nil then return self:forward(...) end
  local res = table.pack(self:forward(...))
  local args = table.pack(...)
  for i = 1, #hooks do hooks[i](self, args, table.unpack(res, 1, res.n)) end
  return table.unpack(res, 1, res.n)
end

--- Registers fn(module, inputs, output...) to be called after each call
-- of this module (inputs: the list of its arguments, with inputs.n), as
-- torch's register_forward_hook.  Returns a handle whose remove() takes
-- the hook off again.
function Module:register_forward_hook(fn)
  if type(fn) ~= "function" then
    error("register_forward_hook: expected a function (got " .. type(fn)
      .. ")", 2)
  end
  local old = rawget(self, "_forward_hooks") or {}
  local hooks = table.move(old, 1, #old, 1, {})
  hooks[#hooks + 1] = fn
  rawset(self, "_forward_hooks", hooks)
  local handle = {}
  function handle.remove()
    local cur = rawget(self, "_forward_hooks")
    if not cur then return end
    local kept = {}
    for _, h in ipairs(cur) do
      if h ~= fn then kept[#kept + 1] = h end
    end
    rawset(self, "_forward_hooks", #kept > 0 and kept or nil)
  end
  return handle
end

-- a new instance of class cls: internal fields first, then cls.init
local function construct(cls, ...)
  local self = setmetatable({ _order = {}, _kind = {}, training = true }, cls)
  local initf = cls.init
  if initf then initf(self, ...) end
  return self
end

local class_mt_cache = setmetatable({}, { __mode = "k" })

local function class_meta(parent)
  local mt = class_mt_cache[parent]
  if not mt then
    mt = {
      __index = parent,
      __call = construct,
      __tostring = function(c) return "lgrad.nn class " .. c.__name end,
    }
    class_mt_cache[parent] = mt
  end
  return mt
end

--- A subclass: local C = Base:extend("Name"); define C:init(...) and
-- C:forward(...); instantiate with C(...).  C.super is Base.
function Module.extend(parent, name)
  if type(name) ~= "string" then
    error("Module.extend: the class needs a name (a string)", 2)
  end
  local cls = {}
  for k, v in pairs(parent) do
    if type(k) == "string" and k:sub(1, 2) == "__" then cls[k] = v end
  end
  cls.__index = cls
  cls.__name = name
  cls.super = parent
  return setmetatable(cls, class_meta(parent))
end
setmetatable(Module, class_meta({}))

function Module.init() end

function Module:forward()
  error(fmt("%s: forward is not implemented", self.__name), 2)
end

-- stores t under name as a member of the given kind ("param", "buffer"),
-- in registration order
local function register(self, name, t, kind)
  if self._kind[name] == nil then
    self._order[#self._order + 1] = name
    self._kind[name] = kind
  end
  rawset(self, name, t)
  return t
end

--- Registers a parameter (the tensor is made a leaf requiring grad unless
-- it already is one); t may be nil to declare an absent one.
function Module:register_parameter(name, t)
  if type(name) ~= "string" then
    error("register_parameter: name must be a string", 2)
  end
  if t ~= nil then
    if not is_tensor(t) then
      error(fmt("register_parameter: '%s' must be a tensor (got %s)", name,
        type(t)), 2)
    end
    if not t.requires_grad then t = M.Parameter(t) end
  end
  return register(self, name, t, "param")
end

--- Registers a buffer: a tensor saved in state_dict but not trained.
function Module:register_buffer(name, t)
  if type(name) ~= "string" then
    error("register_buffer: name must be a string", 2)
  end
  if t ~= nil and not is_tensor(t) then
    error(fmt("register_buffer: '%s' must be a tensor (got %s)", name,
      type(t)), 2)
  end
  return register(self, name, t, "buffer")
end

--- Registers a sub-module under name (a string or an integer).
function Module:add_module(name, m)
  name = reg_name("add_module", name, 2)
  if not is_module(m) then
    error(fmt("add_module: '%s' must be a module (got %s)", tostring(name),
      type(m)), 2)
  end
  if self._kind[name] == nil then
    self._order[#self._order + 1] = name
    self._kind[name] = "module"
  end
  rawset(self, name, m)
  return m
end

-- calls fn(key, value) for each registered entry of kind, in order
local function each_own(mod, what, fn)
  local order, kind = mod._order, mod._kind
  for i = 1, #order do
    local k = order[i]
    if kind[k] == what then
      local v = rawget(mod, k)
      if v ~= nil then fn(k, v) end
    end
  end
end

-- pre-order walk: fn(prefix, module); modules seen once
local function walk(mod, prefix, fn, seen)
  if seen then
    if seen[mod] then return end
    seen[mod] = true
  end
  fn(prefix, mod)
  local order, kind = mod._order, mod._kind
  for i = 1, #order do
    local k = order[i]
    if kind[k] == "module" then
      local child = rawget(mod, k)
      if is_module(child) then walk(child, join(prefix, k), fn, seen) end
    end
  end
end

-- most module paths a walk of every path visits: sharing a module in
-- both children at each of many levels doubles them each level
local MAX_PATHS = 100000

-- a walk of every path, pre(prefix, module) before the module's children
-- and post(prefix, module) after them (either may be nil): a module shared
-- by two parents is visited under both names, as PyTorch's state_dict,
-- apply and repr do; a module that contains itself (a cycle, which
-- PyTorch meets with a RecursionError) is an error of fname, not an
-- endless walk
local function walk_paths(root, fname, pre, post)
  local on_path, count = {}, 0
  local function visit(mod, prefix)
    if on_path[mod] then
      error(fmt("%s: the module contains itself as '%s' (sub-modules form "
        .. "a cycle)", fname, prefix), 0)
    end
    count = count + 1
    if count > MAX_PATHS then
      error(fmt("%s: more than %d module paths (a module shared too many "
        .. "times)", fname, MAX_PATHS), 0)
    end
    on_path[mod] = true
    if pre then pre(prefix, mod) end
    local order, kind = mod._order, mod._kind
    for i = 1, #order do
      local k = order[i]
      if kind[k] == "module" then
        local child = rawget(mod, k)
        if is_module(child) then visit(child, join(prefix, k)) end
      end
    end
    if post then post(prefix, mod) end
    on_path[mod] = nil
  end
  visit(root, "")
end

-- an ordered table: r[i] = {name, value}, r[name] = value; pairs(r) and
-- calling r as an iterator (for name, v in r do) go in order
local Ordered = {}
-- each ordered table's name -> position, made on the first step past the
-- first entry; kept out of the table, so that any name is a key of it
local positions = setmetatable({}, { __mode = "k" })
local function ordered_next(r, prev)
  local i = 1
  if prev ~= nil then
    local pos = positions[r]
    if not pos then
      pos = {}
      for j = 1, rawlen(r) do
        local e = rawget(r, j)
        if type(e) == "table" and e[1] ~= nil then pos[e[1]] = j end
      end
      positions[r] = pos
    end
    if not pos[prev] then
      error("ordered table: no entry named " .. tostring(prev), 2)
    end
    i = pos[prev] + 1
  end
  local e = rawget(r, i)
  if type(e) == "table" then return e[1], e[2] end
end
Ordered.__pairs = function(r) return ordered_next, r, nil end
Ordered.__call = function(r, _, prev) return ordered_next(r, prev) end

local function ordered(list)
  local r = {}
  for i, e in ipairs(list) do
    r[i] = e
    r[e[1]] = e[2]
  end
  return setmetatable(r, Ordered)
end

-- the (dotted name, tensor) pairs of every module's own entries of a kind
-- ("param" or "buffer"), each tensor once when `once`
local function named_entries(self, kind, once)
  local list, seen = {}, {}
  walk(self, "", function(prefix, m)
    each_own(m, kind, function(k, t)
      if not (once and seen[t]) then
        seen[t] = true
        list[#list + 1] = { join(prefix, k), t }
      end
    end)
  end, {})
  return ordered(list)
end

local function values(named)
  local list = {}
  for i, e in ipairs(named) do list[i] = e[2] end
  return list
end

--- Parameters as a list, each once, in named_parameters' order.
function Module:parameters() return values(self:named_parameters()) end

--- Parameters with dotted names: an ordered table (r[i] = {name, p},
-- r[name] = p); `for name, p in m:named_parameters() do` visits them in
-- order, as pairs(r) does.
function Module:named_parameters() return named_entries(self, "param", true) end

--- Buffers with dotted names, as named_parameters.
function Module:named_buffers() return named_entries(self, "buffer", false) end

function Module:buffers() return values(self:named_buffers()) end

--- Every module (self first, pre-order) with its dotted name ("" for self).
function Module:named_modules()
  local list = {}
  walk(self, "", function(prefix, m) list[#list + 1] = { prefix, m } end, {})
  return ordered(list)
end

function Module:modules()
  local list = {}
  walk(self, "", function(_, m) list[#list + 1] = m end, {})
  return list
end

--- The direct sub-modules, in order.
function Module:children()
  local list = {}
  each_own(self, "module", function(_, c) list[#list + 1] = c end)
  return list
end

function Module:named_children()
  local list = {}
  each_own(self, "module", function(k, c)
    list[#list + 1] = { key_name(k), c }
  end)
  return ordered(list)
end

--- Total number of parameter elements (shared parameters counted once).
function Module:num_parameters(trainable_only)
  local n = 0
  for _, p in ipairs(self:parameters()) do
    if not trainable_only or p.requires_grad then n = n + p:numel() end
  end
  return n
end

--- Training mode (the default) for self and every sub-module: Dropout
-- drops, BatchNorm uses batch statistics and updates its running ones.
function Module:train(mode)
  if mode == nil then mode = true end
  mode = not not mode
  walk(self, "", function(_, m) rawset(m, "training", mode) end, {})
  return self
end

--- Evaluation mode: Dropout passes through, BatchNorm uses running stats.
function Module:eval()
  return self:train(false)
end

--- Calls fn(m) on every sub-module, then self (PyTorch's order).
function Module:apply(fn)
  walk_paths(self, "apply", nil, function(_, m) fn(m) end)
  return self
end

--- Drops every parameter's gradient (sets .grad to nil, as PyTorch's
-- default set_to_none).
function Module:zero_grad()
  for _, p in ipairs(self:parameters()) do p.grad = nil end
end

--- Sets requires_grad on every parameter (false freezes the module).
function Module:requires_grad_(on)
  if on == nil then on = true end
  for _, p in ipairs(self:parameters()) do p:requires_grad_(on) end
  return self
end

--- Converts every parameter and buffer to dtype (a float dtype) in place
-- of the old tensors; make optimizers afterwards.
function Module:to(dtype)
  if dtype ~= "float32" and dtype ~= "float64" then
    error(fmt("Module:to: dtype must be lg.float32 or lg.float64 (got %s)",
      tostring(dtype)), 2)
  end
  walk(self, "", function(_, m)
    each_own(m, "param", function(k, p)
      if p:dtype() ~= dtype then
        local q = p:detach():to(dtype)
        q:requires_grad_(p.requires_grad)
        rawset(m, k, q)
      end
    end)
    each_own(m, "buffer", function(k, b)
      local d = b:dtype()
      if d ~= dtype and (d == "float32" or d == "float64") then
        rawset(m, k, b:to(dtype))
      end
    end)
  end, {})
  return self
end
function Module:double() return self:to("float64") end
function Module:float() return self:to("float32") end

-- pairs over a state dict: its keys in order, then any added since
local function state_dict_mt(keys)
  local listed = {}
  for _, k in ipairs(keys) do listed[k] = true end
  return {
    __pairs = function(t)
      local i, rest = 0, nil
      return function()
        while i < #keys do
          i = i + 1
          local k = keys[i]
          local v = rawget(t, k)
          if v ~= nil then return k, v end
        end
        local v
        repeat
          rest, v = next(t, rest)
        until rest == nil or not listed[rest]
        return rest, v
      end, t, nil
    end,
  }
end

--- Parameters and buffers by dotted name (flat, PyTorch's keys and order,
-- pairs visits them in order).  The tensors share storage with the
-- module's (detached views, as PyTorch's): they follow later training;
-- clone them to keep a snapshot.  lg.save(path, m:state_dict()) writes a
-- checkpoint.
function Module:state_dict()
  local list = {}
  walk_paths(self, "state_dict", function(prefix, m)
    each_own(m, "param", function(k, p)
      list[#list + 1] = { join(prefix, k), p:detach() }
    end)
    each_own(m, "buffer", function(k, b)
      list[#list + 1] = { join(prefix, k), b:detach() }
    end)
  end)
  local sd, keys = {}, {}
  for i, e in ipairs(list) do
    sd[e[1]] = e[2]
    keys[i] = e[1]
  end
  return setmetatable(sd, state_dict_mt(keys))
end

-- a nested table of tensors flattened to dotted keys; a table that
-- contains itself, or nesting deeper than lg.save writes, is an error
local MAX_SD_DEPTH = 100
local function flatten_sd(sd, prefix, out, on_path, depth)
  on_path = on_path or {}
  depth = depth or 1
  if on_path[sd] then
    error(fmt("load_state_dict: the state dict contains itself at '%s'",
      prefix), 0)
  end
  if depth > MAX_SD_DEPTH then
    error(fmt("load_state_dict: tables nested more than %d deep at '%s'",
      MAX_SD_DEPTH, prefix), 0)
  end
  on_path[sd] = true
  for k, v in next, sd do
    local name = prefix == "" and tostring(k) or prefix .. "." .. tostring(k)
    if type(v) == "table" and not is_tensor(v) then
      flatten_sd(v, name, out, on_path, depth + 1)
    else
      out[name] = v
    end
  end
  on_path[sd] = nil
  return out
end

-- load_state_dict's options; a table of strings is the metadata that
-- lg.load returns second (m:load_state_dict(lg.load(path))): ignored
local function load_opts(opts)
  if type(opts) == "table" and not is_tensor(opts) then
    local strings = next(opts) ~= nil
    for _, v in next, opts do
      if type(v) ~= "string" then strings = false end
    end
    if strings then return {} end
  end
  return options("load_state_dict", opts, { strict = true })
end

--- Copies a state dict's tensors into the module's parameters and buffers
-- (values are copied; dtypes convert).  sd may be flat (dotted keys) or
-- nested, as lg.load returns either.  Strict by default: any missing or
-- unexpected key and any shape mismatch is an error naming the keys, and
-- nothing is copied then.  With {strict = false}, missing and unexpected
-- keys are skipped and returned as two lists.
function Module:load_state_dict(sd, opts)
  if type(sd) ~= "table" or is_tensor(sd) then
    error("load_state_dict: expected a table of tensors (got " .. type(sd)
      .. ")", 2)
  end
  opts = load_opts(opts)
  local strict = opts.strict ~= false
  local flat = flatten_sd(sd, "", {})
  -- targets: {name, owner, key, tensor}
  local targets = {}
  walk_paths(self, "load_state_dict", function(prefix, m)
    each_own(m, "param", function(k, p)
      targets[#targets + 1] = { join(prefix, k), m, k, p }
    end)
    each_own(m, "buffer", function(k, b)
      targets[#targets + 1] = { join(prefix, k), m, k, b }
    end)
  end)
  local missing, unexpected, bad = {}, {}, {}
  local expected = {}
  for _, e in ipairs(targets) do
    local name, cur = e[1], e[4]
    expected[name] = true
    local v = flat[name]
    if v == nil then
      missing[#missing + 1] = name
    elseif not is_tensor(v) then
      bad[#bad + 1] = fmt("'%s' is a %s, not a tensor", name, type(v))
    elseif shape_str(v:shape()) ~= shape_str(cur:shape()) then
      bad[#bad + 1] = fmt("size mismatch for '%s': the module has %s, the "
        .. "state dict %s", name, shape_str(cur:shape()),
        shape_str(v:shape()))
    end
  end
  for k in pairs(flat) do
    if not expected[k] then unexpected[#unexpected + 1] = k end
  end
  table.sort(unexpected)
  local problems = {}
  if #bad > 0 then problems[#problems + 1] = table.concat(bad, "; ") end
  if strict then
    if #missing > 0 then
      problems[#problems + 1] = "missing keys: " .. table.concat(missing, ", ")
    end
    if #unexpected > 0 then
      problems[#problems + 1] = "unexpected keys: "
        .. table.concat(unexpected, ", ")
    end
  end
  if #problems > 0 then
    error("load_state_dict: " .. table.concat(problems, "; "), 2)
  end
  local prev = lg.set_grad_enabled(false)
  local ok, err = pcall(function()
    for _, e in ipairs(targets) do
      local v = flat[e[1]]
      if v ~= nil then e[4]:copy_(v) end
    end
  end)
  lg.set_grad_enabled(prev)
  if not ok then error("load_state_dict: " .. tostring(err), 2) end
  return missing, unexpected
end

--- The text inside a module's parentheses in its repr.
function Module.extra_repr() return "" end

-- st: {on_path = {}, count = 0}; a module inside itself is written as
-- "[cycle: Name]" instead of recursing for ever
local function repr(m, indent, st)
  st.count = st.count + 1
  if st.count > MAX_PATHS then
    error(fmt("tostring: more than %d module paths (a module shared too "
      .. "many times)", MAX_PATHS), 0)
  end
  st.on_path[m] = true
  local extra = m:extra_repr()
  local lines = {}
  if extra ~= "" then
    for line in (extra .. "\n"):gmatch("(.-)\n") do lines[#lines + 1] = line end
  end
  local nchild = 0
  local inner = indent .. "  "
  each_own(m, "module", function(k, c)
    nchild = nchild + 1
    local text
    if st.on_path[c] then
      text = "[cycle: " .. tostring(c.__name) .. "]"
    else
      text = repr(c, inner, st)
    end
    lines[#lines + 1] = "(" .. key_name(k) .. "): " .. text
  end)
  st.on_path[m] = nil
  if nchild == 0 then return m.__name .. "(" .. extra .. ")" end
  local parts = { m.__name .. "(" }
  for _, line in ipairs(lines) do parts[#parts + 1] = inner .. line end
  parts[#parts + 1] = indent .. ")"
  return table.concat(parts, "\n")
end

local function thousands(n)
  local s = tostring(n)
  local out = s:reverse():gsub("(%d%d%d)", "%1,"):reverse()
  return (out:gsub("^,", ""))
end
M._thousands = thousands

--- PyTorch's repr, then the parameter count on its own line.
function Module.__tostring(m)
  local n = m:num_parameters()
  local t = m:num_parameters(true)
  local count = "Parameters: " .. thousands(n)
  if t ~= n then count = count .. " (trainable " .. thousands(t) .. ")" end
  return repr(m, "", { on_path = {}, count = 0 }) .. "\n" .. count
end

--- t made a parameter: a leaf that requires grad, sharing t's storage.
function M.Parameter(t, requires_grad)
  if not is_tensor(t) then
    error("Parameter: expected a tensor (got " .. type(t) .. ")", 2)
  end
  if not t.is_leaf then t = t:detach() end
  if requires_grad == nil then requires_grad = true end
  t:requires_grad_(requires_grad)
  return t
end

---------------------------------------------------------------------------
-- containers

local Sequential = Module:extend("Sequential")
M.Sequential = Sequential

--- Sequential(m1, m2, ...) or Sequential{m1, m2, ...}: children m[1],
-- m[2], ... (named "0", "1", ... in state dicts).
function Sequential:init(...)
  local n = select("#", ...)
  local mods = { ... }
  if n == 1 and type(mods[1]) == "table" and not is_module(mods[1]) then
    mods = mods[1]
    n = #mods
  end
  rawset(self, "_n", 0)
  for i = 1, n do
    local m = mods[i]
    if not is_module(m) then
      error(fmt("Sequential: argument %d is not a module (got %s)", i,
        type(m)), 3)
    end
    self:add(m)
  end
end

--- Appends a module; returns the Sequential.
function Sequential:add(m)
  if not is_module(m) then
    error("Sequential:add: expected a module (got " .. type(m) .. ")", 2)
  end
  local n = self._n + 1
  self:add_module(n, m)
  rawset(self, "_n", n)
  return self
end
Sequential.append = Sequential.add

function Sequential:forward(x)
  for i = 1, self._n do x = self[i](x) end
  return x
end

function Sequential.__len(self) return self._n end

--- ModuleList: a list of modules registered as children (m[i]), with no
-- forward of its own.
local ModuleList = Sequential:extend("ModuleList")
M.ModuleList = ModuleList
function ModuleList.forward()
  error("ModuleList: has no forward; call its modules", 2)
end

---------------------------------------------------------------------------
-- layers

local linear = F.linear

-- a layer's uninitialised weight of the given shape and, unless
-- opts.bias is false, its bias (one per output, shape[1]), in opts.dtype
local function weight_and_bias(self, shape, opts)
  local dt = opts.dtype and { dtype = opts.dtype } or nil
  self.weight = M.Parameter(lg.empty(shape, dt))
  if opts.bias ~= false then
    self.bias = M.Parameter(lg.empty({ shape[1] }, dt))
  else
    self:register_parameter("bias", nil)
  end
end

local Linear = Module:extend("Linear")
M.Linear = Linear

-- PyTorch's default for Linear and Conv: kaiming_uniform_(a = sqrt(5)) for
-- the weight, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for the bias
local function default_init(w, b)
  init.kaiming_uniform_(w, sqrt(5))
  if b then
    local fan_in = fans("kaiming_uniform_", w)
    local bound = fan_in > 0 and 1 / sqrt(fan_in) or 0
    init.uniform_(b, -bound, bound)
  end
end

local linear_opts = set_of { "bias", "dtype" }

--- Linear(in, out [, {bias = true, dtype}]): y = x W^T + b, W (out, in).
function Linear:init(nin, nout, opts)
  check_int("Linear", "in_features", nin, 0)
  check_int("Linear", "out_features", nout, 0)
  opts = options("Linear", opts, linear_opts)
  self.in_features, self.out_features = nin, nout
  weight_and_bias(self, { nout, nin }, opts)
  self:reset_parameters()
end

function Linear:reset_parameters()
  default_init(self.weight, self.bias)
end

function Linear:forward(x)
  return linear(x, self.weight, self.bias)
end

function Linear:extra_repr()
  return fmt("in_features=%d, out_features=%d, bias=%s", self.in_features,
    self.out_features, tostring(self.bias ~= nil))
end

local conv2d = F.conv2d

local Conv2d = Module:extend("Conv2d")
M.Conv2d = Conv2d

local conv_opts = set_of { "stride", "padding", "dilation", "groups", "bias",
  "dtype" }

--- Conv2d(in, out, kernel [, {stride = 1, padding = 0, dilation = 1,
-- groups = 1, bias = true, dtype}]); kernel, stride, padding and dilation
-- are integers or pairs {h, w}; padding may be "valid" or "same" (stride
-- 1, an even total padding per side).
function Conv2d:init(nin, nout, k, opts)
  local fn = "Conv2d"
  check_int(fn, "in_channels", nin)
  check_int(fn, "out_channels", nout)
  opts = options(fn, opts, conv_opts)
  local kernel = pair(fn, "kernel_size", k)
  if kernel[1] < 1 or kernel[2] < 1 then
    error("Conv2d: kernel_size must be positive", 2)
  end
  local stride = pair(fn, "stride", opts.stride or 1)
  local dilation = pair(fn, "dilation", opts.dilation or 1)
  local groups = check_int(fn, "groups", opts.groups or 1)
  local padding = opts.padding or 0
  local pad_name
  if padding == "valid" then
    pad_name, padding = "valid", { 0, 0 }
  elseif padding == "same" then
    pad_name = "same"
    if stride[1] ~= 1 or stride[2] ~= 1 then
      error("Conv2d: padding \"same\" needs stride 1", 2)
    end
    padding = {}
    for d = 1, 2 do
      local total = dilation[d] * (kernel[d] - 1)
      if total % 2 ~= 0 then
        error("Conv2d: padding \"same\" with this kernel and dilation needs "
          .. "uneven padding, which is not supported", 2)
      end
      padding[d] = total // 2
    end
  else
    padding = pair(fn, "padding", padding)
  end
  if nin % groups ~= 0 or nout % groups ~= 0 then
    error(fmt("Conv2d: in_channels (%d) and out_channels (%d) must be "
      .. "divisible by groups (%d)", nin, nout, groups), 2)
  end
  self.in_channels, self.out_channels = nin, nout
  self.kernel_size, self.stride, self.padding = kernel, stride, padding
  self.dilation, self.groups, self._pad_name = dilation, groups, pad_name
  self._opts = { stride = stride, padding = padding, dilation = dilation,
    groups = groups }
  weight_and_bias(self, { nout, nin // groups, kernel[1], kernel[2] }, opts)
  self:reset_parameters()
end

Conv2d.reset_parameters = Linear.reset_parameters

function Conv2d:forward(x)
  return conv2d(x, self.weight, self.bias, self._opts)
end

function Conv2d:extra_repr()
  local s = fmt("%d, %d, kernel_size=%s, stride=%s", self.in_channels,
    self.out_channels, pair_str(self.kernel_size), pair_str(self.stride))
  if self._pad_name then
    s = s .. ", padding=" .. self._pad_name
  elseif self.padding[1] ~= 0 or self.padding[2] ~= 0 then
    s = s .. ", padding=" .. pair_str(self.padding)
  end
  if self.dilation[1] ~= 1 or self.dilation[2] ~= 1 then
    s = s .. ", dilation=" .. pair_str(self.dilation)
  end
  if self.groups ~= 1 then s = s .. ", groups=" .. self.groups end
  if self.bias == nil then s = s .. ", bias=false" end
  return s
end

-- pooling

local max_pool2d, avg_pool2d = F.max_pool2d, F.avg_pool2d

local MaxPool2d = Module:extend("MaxPool2d")
M.MaxPool2d = MaxPool2d
local maxpool_opts = set_of { "stride", "padding", "dilation", "ceil_mode" }

--- MaxPool2d(kernel [, {stride = kernel, padding = 0, dilation = 1,
-- ceil_mode = false}])
function MaxPool2d:init(k, opts)
  local fn = "MaxPool2d"
  if type(opts) == "number" then opts = { stride = opts } end
  opts = options(fn, opts, maxpool_opts)
  self.kernel_size = pair(fn, "kernel_size", k)
  self.stride = pair(fn, "stride", opts.stride or k)
  self.padding = pair(fn, "padding", opts.padding or 0)
  self.dilation = pair(fn, "dilation", opts.dilation or 1)
  self.ceil_mode = opts.ceil_mode == true
  self._opts = { stride = self.stride, padding = self.padding,
    dilation = self.dilation, ceil_mode = self.ceil_mode }
end

function MaxPool2d:forward(x)
  return max_pool2d(x, self.kernel_size, self._opts)
end

function MaxPool2d:extra_repr()
  return fmt("kernel_size=%s, stride=%s, padding=%s, dilation=%s, "
    .. "ceil_mode=%s", pair_str(self.kernel_size), pair_str(self.stride),
    pair_str(self.padding), pair_str(self.dilation), tostring(self.ceil_mode))
end

local AvgPool2d = Module:extend("AvgPool2d")
M.AvgPool2d = AvgPool2d
local avgpool_opts = set_of { "stride", "padding", "ceil_mode",
  "count_include_pad", "divisor_override" }

--- AvgPool2d(kernel [, {stride = kernel, padding = 0, ceil_mode = false,
-- count_include_pad = true, divisor_override}])
function AvgPool2d:init(k, opts)
  local fn = "AvgPool2d"
  if type(opts) == "number" then opts = { stride = opts } end
  opts = options(fn, opts, avgpool_opts)
  self.kernel_size = pair(fn, "kernel_size", k)
  self.stride = pair(fn, "stride", opts.stride or k)
  self.padding = pair(fn, "padding", opts.padding or 0)
  self.ceil_mode = opts.ceil_mode == true
  self.count_include_pad = opts.count_include_pad ~= false
  self.divisor_override = opts.divisor_override
  self._opts = { stride = self.stride, padding = self.padding,
    ceil_mode = self.ceil_mode, count_include_pad = self.count_include_pad,
    divisor_override = self.divisor_override }
end

function AvgPool2d:forward(x)
  return avg_pool2d(x, self.kernel_size, self._opts)
end

function AvgPool2d:extra_repr()
  return fmt("kernel_size=%s, stride=%s, padding=%s", pair_str(
    self.kernel_size), pair_str(self.stride), pair_str(self.padding))
end

local Flatten = Module:extend("Flatten")
M.Flatten = Flatten

--- Flatten([start_dim = 2 [, end_dim = -1]]) or Flatten{start_dim, end_dim}:
-- keeps the batch dimension, as torch.nn.Flatten.
function Flatten:init(s, e)
  if type(s) == "table" then
    local o = options("Flatten", s, set_of { "start_dim", "end_dim" })
    s, e = o.start_dim, o.end_dim
  end
  self.start_dim = s or 2
  self.end_dim = e or -1
  if mtype(self.start_dim) ~= "integer" or mtype(self.end_dim) ~= "integer"
  then
    error("Flatten: start_dim and end_dim must be integers", 3)
  end
end

function Flatten:forward(x)
  return x:flatten(self.start_dim, self.end_dim)
end

function Flatten:extra_repr()
  return fmt("start_dim=%d, end_dim=%d", self.start_dim, self.end_dim)
end

local embedding = F.embedding

local Embedding = Module:extend("Embedding")
M.Embedding = Embedding

-- the shared constructor of Embedding and EmbeddingBag: checks sizes and
-- padding_idx (negative counts from the end), makes the weight
local function embedding_init(self, name, num, dim, opts, keys)
  check_int(name, "num_embeddings", num)
  check_int(name, "embedding_dim", dim)
  opts = options(name, opts, set_of(keys))
  local pad = opts.padding_idx
  if pad ~= nil then
    if mtype(pad) ~= "integer" or pad == 0 or pad > num or pad < -num then
      error(fmt("%s: padding_idx must be an index in 1..%d (got %s)", name,
        num, tostring(pad)), 4)
    end
    if pad < 0 then pad = num + pad + 1 end
  end
  if opts.sparse ~= nil and type(opts.sparse) ~= "boolean" then
    error(fmt("%s: sparse must be a boolean (got %s)", name,
      type(opts.sparse)), 4)
  end
  self.num_embeddings, self.embedding_dim = num, dim
  self.padding_idx = pad
  self.sparse = opts.sparse or false
  local dt = opts.dtype and { dtype = opts.dtype } or nil
  self.weight = M.Parameter(lg.empty({ num, dim }, dt))
  self:reset_parameters()
  return opts
end

--- Embedding(num_embeddings, embedding_dim [, {padding_idx, sparse,
-- dtype}]): weight ~ N(0, 1), the padding_idx row (1-based) zero and never
-- updated; sparse = true gives the weight a row-sparse gradient (the rows
-- a batch used), for SGD, Adagrad and SparseAdam.
function Embedding:init(num, dim, opts)
  embedding_init(self, "Embedding", num, dim, opts,
    { "padding_idx", "sparse", "dtype" })
  if self.padding_idx or self.sparse then
    self._opts = { padding_idx = self.padding_idx, sparse = self.sparse }
  end
end

function Embedding:reset_parameters()
  init.normal_(self.weight)
  if self.padding_idx then
    nograd(function(w) w:select(1, self.padding_idx):zero_() end, self.weight)
  end
end

function Embedding:forward(idx)
  return embedding(idx, self.weight, self._opts)
end

function Embedding:extra_repr()
  local s = fmt("%d, %d", self.num_embeddings, self.embedding_dim)
  if self.padding_idx then s = s .. ", padding_idx=" .. self.padding_idx end
  if self.sparse then s = s .. ", sparse=true" end
  return s
end

local embedding_bag = F.embedding_bag

local EmbeddingBag = Module:extend("EmbeddingBag")
M.EmbeddingBag = EmbeddingBag

--- EmbeddingBag(num_embeddings, embedding_dim [, {mode = "mean", sparse,
-- padding_idx, dtype}]): bag(indices, offsets [, per_sample_weights]) with
-- offsets the 1-based position of each bag's first index, or bag(indices)
-- for (B, L) indices; the sum, mean or max of each bag's rows, (B, D).
function EmbeddingBag:init(num, dim, opts)
  opts = embedding_init(self, "EmbeddingBag", num, dim, opts,
    { "mode", "padding_idx", "sparse", "dtype" })
  local mode = opts.mode or "mean"
  if mode ~= "sum" and mode ~= "mean" and mode ~= "max" then
    error(fmt('EmbeddingBag: mode must be "sum", "mean" or "max" (got %s)',
      tostring(mode)), 3)
  end
  self.mode = mode
  self._opts = { mode = mode, padding_idx = self.padding_idx,
                 sparse = self.sparse }
end

EmbeddingBag.reset_parameters = Embedding.reset_parameters

function EmbeddingBag:forward(indices, offsets, per_sample_weights)
  local o = self._opts
  if per_sample_weights ~= nil then
    o = { mode = o.mode, padding_idx = o.padding_idx, sparse = o.sparse,
          per_sample_weights = per_sample_weights }
  end
  if offsets == nil then return embedding_bag(indices, self.weight, o) end
  return embedding_bag(indices, self.weight, offsets, o)
end

function EmbeddingBag:extra_repr()
  return Embedding.extra_repr(self) .. ", mode=" .. self.mode
end

local dropout = F.dropout

local Dropout = Module:extend("Dropout")
M.Dropout = Dropout

--- Dropout(p = 0.5): in training, zeroes each element with probability p
-- and scales the rest by 1 / (1 - p); identity in eval mode.
function Dropout:init(p)
  p = p == nil and 0.5 or p
  if type(p) ~= "number" or p < 0 or p > 1 then
    error("Dropout: p must be a probability in [0, 1] (got " .. tostring(p)
      .. ")", 3)
  end
  self.p = p
end

function Dropout:forward(x)
  if not self.training or self.p == 0 then return x end
  return dropout(x, self.p, true)
end

function Dropout:extra_repr()
  return "p=" .. self.p
end

-- normalization

local batch_norm = F.batch_norm

local bn_opts = set_of { "eps", "momentum", "affine", "track_running_stats",
  "dtype" }

local function bn_init(self, fname, n, opts)
  check_int(fname, "num_features", n)
  opts = options(fname, opts, bn_opts)
  self.num_features = n
  self.eps = opts.eps or 1e-5
  -- momentum false: a cumulative average (PyTorch's momentum=None)
  if opts.momentum == false then
    self.momentum = false
  else
    self.momentum = opts.momentum or 0.1
  end
  self.affine = opts.affine ~= false
  self.track_running_stats = opts.track_running_stats ~= false
  local dt = opts.dtype and { dtype = opts.dtype } or nil
  if self.affine then
    self.weight = M.Parameter(lg.ones({ n }, dt))
    self.bias = M.Parameter(lg.zeros({ n }, dt))
  else
    self:register_parameter("weight", nil)
    self:register_parameter("bias", nil)
  end
  if self.track_running_stats then
    self:register_buffer("running_mean", lg.zeros({ n }, dt))
    self:register_buffer("running_var", lg.ones({ n }, dt))
    self:register_buffer("num_batches_tracked",
      lg.zeros({}, { dtype = lg.int64 }))
  end
  self._train_opts = { training = true, momentum = self.momentum or 0,
    eps = self.eps }
  self._eval_opts = { training = false, eps = self.eps }
end

local function bn_forward(self, x)
  local opts
  if self.training then
    opts = self._train_opts
    local nbt = self.num_batches_tracked
    if nbt then
      nbt:add_(1)
      if not self.momentum then
        opts.momentum = 1 / nbt:item()
      end
    end
  elseif self.track_running_stats then
    opts = self._eval_opts
  else
    opts = self._train_opts -- no running stats: batch statistics always
  end
  return batch_norm(x, self.running_mean, self.running_var, self.weight,
    self.bias, opts)
end

local function bn_repr(self)
  return fmt("%d, eps=%s, momentum=%s, affine=%s, track_running_stats=%s",
    self.num_features, tostring(self.eps), tostring(self.momentum or "nil"),
    tostring(self.affine), tostring(self.track_running_stats))
end

local function bn_reset_running_stats(self)
  if self.track_running_stats then
    nograd(function()
      self.running_mean:zero_()
      self.running_var:fill_(1)
      self.num_batches_tracked:zero_()
    end)
  end
end

-- a BatchNorm class over inputs of the given dims, described as `what`
local function batchnorm_class(name, dims, what)
  local cls = Module:extend(name)
  function cls:init(n, opts)
    bn_init(self, name, n, opts)
  end
  function cls:forward(x)
    if not dims[x:dim()] then
      error(fmt("%s: expected %s, got %s", name, what, shape_str(x:shape())), 2)
    end
    return bn_forward(self, x)
  end
  cls.extra_repr = bn_repr
  cls.reset_running_stats = bn_reset_running_stats
  return cls
end

--- BatchNorm1d(num_features [, {eps = 1e-5, momentum = 0.1 (false: a
-- cumulative average), affine = true, track_running_stats = true}]) over
-- (N, C) or (N, C, L) inputs.
M.BatchNorm1d = batchnorm_class("BatchNorm1d", { [2] = true, [3] = true },
  "a 2-d or 3-d input (N, C[, L])")

--- BatchNorm2d(num_features [, opts as BatchNorm1d]) over (N, C, H, W).
M.BatchNorm2d = batchnorm_class("BatchNorm2d", { [4] = true },
  "a 4-d input (N, C, H, W)")

local layer_norm = F.layer_norm

local LayerNorm = Module:extend("LayerNorm")
M.LayerNorm = LayerNorm

--- LayerNorm(normalized_shape [, {eps = 1e-5, elementwise_affine = true,
-- bias = true}]): normalizes over the last dims given by normalized_shape
-- (an integer or a table of sizes).
function LayerNorm:init(shape, opts)
  opts = options("LayerNorm", opts, set_of { "eps", "elementwise_affine",
    "bias", "dtype" })
  if mtype(shape) == "integer" then shape = { shape } end
  if type(shape) ~= "table" or #shape == 0 then
    error("LayerNorm: normalized_shape must be an integer or a table of "
      .. "sizes", 3)
  end
  for _, s in ipairs(shape) do check_int("LayerNorm", "each size", s) end
  self.normalized_shape = shape
  self.eps = opts.eps or 1e-5
  self.elementwise_affine = opts.elementwise_affine ~= false
  local dt = opts.dtype and { dtype = opts.dtype } or nil
  if self.elementwise_affine then
    self.weight = M.Parameter(lg.ones(shape, dt))
    if opts.bias ~= false then
      self.bias = M.Parameter(lg.zeros(shape, dt))
    end
  end
  self._opts = { eps = self.eps }
end

function LayerNorm:forward(x)
  return layer_norm(x, self.normalized_shape, self.weight, self.bias,
    self._opts)
end

function LayerNorm:extra_repr()
  local s = self.normalized_shape
  local ss = #s == 1 and "(" .. s[1] .. ",)" or "(" .. table.concat(s, ", ")
    .. ")"
  return fmt("%s, eps=%s, elementwise_affine=%s", ss, tostring(self.eps),
    tostring(self.elementwise_affine))
end

---------------------------------------------------------------------------
-- activations

local function activation(name, f, init_fn, repr_fn)
  local cls = Module:extend(name)
  if init_fn then
    cls.init = init_fn
  end
  cls.forward = f
  if repr_fn then cls.extra_repr = repr_fn end
  M[name] = cls
  return cls
end

local gelu, leaky_relu, softmax, log_softmax = F.gelu, F.leaky_relu,
  F.softmax, F.log_softmax

-- one class per activation of the op registry (runtime/ops/ops.def)
for _, op in ipairs(lg.ops) do
  if op.module then
    local f = F[op.name]
    activation(op.module, function(_, x) return f(x) end)
  end
end
activation("Identity", function(_, x) return x end)

--- GELU([{approximate = "none" | "tanh"}]) (or GELU("tanh"))
activation("GELU", function(self, x) return gelu(x, self.approximate) end,
  function(self, o)
    if type(o) == "table" then
      o = options("GELU", o, set_of { "approximate" }).approximate
    end
    o = o or "none"
    if o ~= "none" and o ~= "tanh" then
      error("GELU: approximate must be \"none\" or \"tanh\" (got "
        .. tostring(o) .. ")", 3)
    end
    self.approximate = o
  end,
  function(self)
    return self.approximate == "none" and "" or "approximate='tanh'"
  end)

--- LeakyReLU([negative_slope = 0.01])
activation("LeakyReLU",
  function(self, x) return leaky_relu(x, self.negative_slope) end,
  function(self, s)
    if type(s) == "table" then
      s = options("LeakyReLU", s, set_of { "negative_slope" }).negative_slope
    end
    s = s == nil and 0.01 or s
    if type(s) ~= "number" then
      error("LeakyReLU: negative_slope must be a number", 3)
    end
    self.negative_slope = s
  end,
  function(self) return "negative_slope=" .. self.negative_slope end)

local function dim_init(name)
  return function(self, d)
    if type(d) == "table" then d = options(name, d, set_of { "dim" }).dim end
    d = d or -1
    if mtype(d) ~= "integer" then
      error(name .. ": dim must be an integer", 3)
    end
    self.dim = d
  end
end

--- Softmax([dim = -1]) and LogSoftmax([dim = -1])
activation("Softmax", function(self, x) return softmax(x, self.dim) end,
  dim_init("Softmax"), function(self) return "dim=" .. self.dim end)
activation("LogSoftmax",
  function(self, x) return log_softmax(x, self.dim) end,
  dim_init("LogSoftmax"), function(self) return "dim=" .. self.dim end)

M._util = { options = options, set_of = set_of, check_int = check_int,
  weight_and_bias = weight_and_bias }
-- RNN, LSTM, GRU and their cells; Conv1d, RMSNorm, GroupNorm, ..., the
-- loss modules: loaded at the first lookup of a name M does not hold
setmetatable(M, { __index = function(t, k)
  if rawget(t, "_extras") then return nil end
  rawset(t, "_extras", true)
  require("lgrad.nn_rnn")(t)
  require("lgrad.nn_layers")(t)
  return rawget(t, k)
end })
M._check_int, M._options = check_int, options -- for nn_transformer
require("lgrad.nn_transformer")(M) -- attention and transformers

return M
