--- lgrad.dist: many processes over Open MPI (lg.dist).
--
--   mpirun -np 2 lgrad train.lua      -- as root: --allow-run-as-root
--
--   local dist = lg.dist
--   dist.init{timeout = 60}
--   local model = dist.DDP(net, {bucket_mb = 25})   -- rank 1's weights
--   local opt = dist.ZeroOptimizer(lg.optim.Adam(model:parameters()))
--   for xb, yb in loader:iter() do                  -- {distributed = true}
--     opt:zero_grad()
--     loss_fn(model(xb), yb):backward()   -- buckets reduced during backward
--     opt:step()
--   end
--
-- Ranks are 1-based.  A script not started by mpirun is rank 1 of 1 and
-- the collectives are identities.  Every collective waits at most
-- `timeout` seconds (default 300); a rank that is missing is named in the
-- error each surviving rank raises.

local lg = require "lgrad"

local C = lg._dist
local M = {}
local fmt = string.format

local function ensure()
  if not C.info().initialized then C.init() end
end

local function check_tensor(fname, t, i)
  if not lg.is_tensor(t) then
    error(fmt("lg.dist.%s: argument %d must be a tensor, got %s", fname,
      i or 1, type(t)), 3)
  end
end

local OPS = { sum = true, mean = true, max = true, min = true }

local function op_of(fname, opts)
  if opts == nil then return "sum" end
  if type(opts) ~= "table" then
    error(fmt("lg.dist.%s: options must be a table {op = ...}, got %s",
      fname, type(opts)), 3)
  end
  local op = opts.op or "sum"
  if not OPS[op] then
    error(fmt("lg.dist.%s: op must be \"sum\", \"mean\", \"max\" or "
      .. "\"min\", got %s", fname, tostring(op)), 3)
  end
  return op
end

--- Joins the job (once; later calls only change the timeout).
-- opts: timeout (seconds, default 300).
function M.init(opts)
  local timeout
  if opts ~= nil then
    if type(opts) ~= "table" then
      error("lg.dist.init: options must be a table {timeout = seconds}", 2)
    end
    timeout = opts.timeout
    if timeout ~= nil and (type(timeout) ~= "number" or timeout <= 0) then
      error("lg.dist.init: timeout must be a positive number of seconds", 2)
    end
  end
  C.init(timeout)
end

function M.rank() ensure(); return C.info().rank end
function M.world_size() ensure(); return C.info().size end
function M.is_main() return M.rank() == 1 end
--- true when this process runs under mpirun with more than one rank
function M.active()
  local i = C.info()
  return i.initialized and i.size > 1
end
function M.barrier() ensure(); C.barrier() end

-- a collective over a tensor and an {op} table
local function reducing(fname, cfn)
  return function(t, opts)
    check_tensor(fname, t)
    local op = op_of(fname, opts)
    ensure()
    return cfn(t, op)
  end
end

--- all_reduce(t, {op}): in place; returns t.  op = "sum" | "mean" | "max"
-- | "min".
M.all_reduce = reducing("all_reduce", C.all_reduce)

--- all_reduce_async(t, {op}): starts an all-reduce and returns a handle
-- with :wait() (returns t) and :test() (true once done); t must not be
-- touched until the wait.
M.all_reduce_async = reducing("all_reduce_async", C.iall_reduce)

--- reduce_scatter(t, {op}): reduces t over the ranks and returns this
-- rank's 1/N slice along dim 1.
M.reduce_scatter = reducing("reduce_scatter", C.reduce_scatter)

--- Root's t into every rank's t (in place); returns t.
function M.broadcast(t, root)
  check_tensor("broadcast", t)
  root = root == nil and 1 or root
  if math.type(root) ~= "integer" then
    error("lg.dist.broadcast: root must be an integer rank", 2)
  end
  ensure()
  return C.broadcast(t, root)
end

--- Every rank's t, as a list indexed by rank.
function M.all_gather(t)
  check_tensor("all_gather", t)
  ensure()
  local g = C.all_gather(t)
  local list = {}
  for r = 1, g:size(1) do list[r] = g:select(1, r) end
  return list
end


---------------------------------------------------------------------------
-- strings between ranks (model signatures, optimizer state layouts)

local function bytes_tensor(s, len)
  local b = {}
  for i = 1, len do b[i] = s:byte(i) or 0 end
  if len == 0 then b[1] = 0 end
  return lg.tensor(b, { dtype = lg.int64 })
end

local function tensor_string(t, len)
  local b = t:totable()
  local parts = {}
  for i = 1, len do parts[i] = string.char(b[i]) end
  return table.concat(parts)
end

local function all_gather_strings(s)
  local lens = C.all_gather(lg.tensor({ #s }, { dtype = lg.int64 }))
    :reshape(-1):totable()
  local max = 0
  for r = 1, #lens do max = math.max(max, lens[r]) end
  local g = C.all_gather(bytes_tensor(s, max))
  local out = {}
  for r = 1, g:size(1) do
    out[r] = tensor_string(g:select(1, r), lens[r])
  end
  return out
end

local function broadcast_string(s, root)
  local len = lg.tensor({ s and #s or 0 }, { dtype = lg.int64 })
  C.broadcast(len, root)
  local n = len:item()
  local b = C.broadcast(bytes_tensor(s or "", n), root)
  return tensor_string(b, n)
end

local function split_lines(s)
  local out = {}
  for line in (s .. "\n"):gmatch("(.-)\n") do
    if line ~= "" then out[#out + 1] = line end
  end
  return out
end

---------------------------------------------------------------------------
-- DistributedDataParallel

local DDP = {}
DDP.__name = "lgrad.dist.DistributedDataParallel"

DDP.__index = function(self, k)
  local v = DDP[k]
  if v ~= nil then return v end
  local mv = rawget(self, "module")[k]
  if type(mv) == "function" then
    -- model methods called on the wrapper act on the model
    return function(s, ...)
      if s == self then s = self.module end
      return mv(s, ...)
    end
  end
  return mv
end

DDP.__call = function(self, ...) return self:forward(...) end
DDP.__tostring = function(self)
  return fmt("DistributedDataParallel(rank %d of %d, %d buckets)",
    M.rank(), M.world_size(), #self:buckets())
end

local function signature(model)
  local lines = {}
  for _, e in ipairs(model:named_parameters()) do
    lines[#lines + 1] = fmt("parameter %s %s [%s]", e[1], e[2]:dtype(),
      table.concat(e[2]:shape(), "x"))
  end
  for _, e in ipairs(model:named_buffers()) do
    lines[#lines + 1] = fmt("buffer %s %s [%s]", e[1], e[2]:dtype(),
      table.concat(e[2]:shape(), "x"))
  end
  return table.concat(lines, "\n")
end

-- the same message on every rank when the models differ
local function compare_models(sigs)
  local first = split_lines(sigs[1])
  for r = 2, #sigs do
    if sigs[r] ~= sigs[1] then
      local other = split_lines(sigs[r])
      for i = 1, math.max(#first, #other) do
        if first[i] ~= other[i] then
          return fmt("DistributedDataParallel: the ranks' models differ: "
            .. "rank 1 has %s where rank %d has %s (entry %d)",
            first[i] or "nothing", r, other[i] or "nothing", i)
        end
      end
    end
  end
end

local function broadcast_state(model)
  lg.no_grad(function()
    for _, p in ipairs(model:parameters()) do C.broadcast(p, 1) end
    for _, b in ipairs(model:buffers()) do C.broadcast(b, 1) end
  end)
end

--- Wraps model for data-parallel training.  opts: bucket_mb (25),
-- broadcast_buffers (true: rank 1's buffers, such as BatchNorm's running
-- statistics, are sent to every rank before each forward).
function M.DistributedDataParallel(model, opts)
  if type(model) ~= "table" or type(model.parameters) ~= "function" then
    error("lg.dist.DistributedDataParallel: model must be an lg.nn module",
      2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("lg.dist.DistributedDataParallel: options must be a table", 2)
  end
  opts = opts or {}
  local mb = opts.bucket_mb or 25
  if type(mb) ~= "number" or mb <= 0 then
    error("lg.dist.DistributedDataParallel: bucket_mb must be a positive "
      .. "number", 2)
  end
  ensure()
  local err = compare_models(all_gather_strings(signature(model)))
  if err then error(err, 2) end
  broadcast_state(model)
  local params = {}
  for _, p in ipairs(model:parameters()) do
    if p.requires_grad then params[#params + 1] = p end
  end
  local self = {
    module = model,
    bucket_mb = mb,
    broadcast_buffers = opts.broadcast_buffers ~= false,
    _params = params,
    _engine = C.buckets(params, mb * 1024 * 1024),
  }
  return setmetatable(self, DDP)
end
M.DDP = M.DistributedDataParallel

function DDP:forward(...)
  if self.broadcast_buffers and M.world_size() > 1 then
    local bufs = self.module:buffers()
    if #bufs > 0 then
      lg.no_grad(function()
        for _, b in ipairs(bufs) do C.broadcast(b, 1) end
      end)
    end
  end
  return self.module(...)
end

--- Runs fn(...) with gradient synchronisation off: gradients accumulate
-- locally and the next synchronised backward reduces the sum.
function DDP:no_sync(fn, ...)
  if type(fn) ~= "function" then
    error("DistributedDataParallel:no_sync: expects a function", 2)
  end
  self._engine:set_sync(false)
  local r = table.pack(pcall(fn, ...))
  self._engine:set_sync(true)
  if not r[1] then error(r[2], 0) end
  return table.unpack(r, 2, r.n)
end

--- Waits for every bucket now (backward does it by itself at its end).
function DDP:finish() self._engine:finish() end

--- The buckets, in launch order, as lists of the parameters' names.
function DDP:buckets()
  local pos = {}
  for i, p in ipairs(self._params) do pos[i] = p end
  local name_of = {}
  for _, e in ipairs(self.module:named_parameters()) do
    name_of[e[2]] = e[1]
  end
  local out = {}
  for b, idx in ipairs(self._engine:layout()) do
    out[b] = {}
    for k, i in ipairs(idx) do out[b][k] = name_of[pos[i]] end
  end
  return out
end

--- Counters: backwards, launched_early (buckets started while backward
-- ran), launched_late, wait_seconds (waiting at the end of backward).
function DDP:stats() return self._engine:stats() end

---------------------------------------------------------------------------
-- ZeroOptimizer: stage 1 of ZeRO (Rajbhandari et al. 2020)

local Zero = {}
Zero.__name = "lgrad.dist.ZeroOptimizer"
Zero.__index = function(self, k)
  local v = Zero[k]
  if v ~= nil then return v end
  return rawget(self, "optimizer")[k]
end

-- parameters in the optimizer's order (its state_dict's indices)
local function optim_params(opt)
  local list = {}
  for _, g in ipairs(opt.param_groups) do
    for _, p in ipairs(g.params) do list[#list + 1] = p end
  end
  return list
end

-- each parameter to the rank with the least elements so far: the same
-- split on every rank
local function partition(params, size)
  local owner, load = {}, {}
  for r = 1, size do load[r] = 0 end
  for i, p in ipairs(params) do
    local best = 1
    for r = 2, size do if load[r] < load[best] then best = r end end
    owner[i] = best
    load[best] = load[best] + p:numel()
  end
  return owner
end

--- Wraps an lg.optim optimizer so that each rank keeps and updates the
-- state of 1/N of the parameters, then sends its parameters to the others.
-- A scheduler takes the wrapped optimizer: lg.sched.Step(zopt.optimizer).
-- Every rank must call step, state_dict and load_state_dict together.
function M.ZeroOptimizer(opt)
  if opt == nil or type(opt.step) ~= "function"
      or type(opt.param_groups) ~= "table" then
    error("lg.dist.ZeroOptimizer: expects an lg.optim optimizer", 2)
  end
  ensure()
  local params = optim_params(opt)
  local self = setmetatable({ optimizer = opt, _params = params,
    _owner = partition(params, M.world_size()), _rank = M.rank(),
    _size = M.world_size() }, Zero)
  return self
end

-- every rank's updated parameters to everyone: one broadcast per owner
-- and dtype of the owned parameters, flattened
local function share_params(self)
  lg.no_grad(function()
    for r = 1, self._size do
      local by_dtype, order = {}, {}
      for i, p in ipairs(self._params) do
        if self._owner[i] == r then
          local d = p:dtype()
          if not by_dtype[d] then
            by_dtype[d] = {}
            order[#order + 1] = d
          end
          table.insert(by_dtype[d], p)
        end
      end
      for _, d in ipairs(order) do
        local list, n = by_dtype[d], 0
        for _, p in ipairs(list) do n = n + p:numel() end
        local flat
        if r == self._rank then
          local parts = {}
          for k, p in ipairs(list) do parts[k] = p:reshape(-1) end
          flat = lg.cat(parts, 1)
        else
          flat = lg.zeros({ n }, { dtype = d })
        end
        C.broadcast(flat, r)
        if r ~= self._rank then
          local off = 1
          for _, p in ipairs(list) do
            p:copy_(flat:narrow(1, off, p:numel()):view(p:shape()))
            off = off + p:numel()
          end
        end
      end
    end
  end)
end

function Zero:step(closure)
  local loss
  if closure ~= nil then
    if type(closure) ~= "function" then
      error("ZeroOptimizer:step: closure must be a function", 2)
    end
    loss = closure()
  end
  local saved = {}
  for i, p in ipairs(self._params) do
    if self._owner[i] ~= self._rank then
      saved[i] = p.grad
      p.grad = nil
    end
  end
  local ok, err = pcall(self.optimizer.step, self.optimizer)
  for i, g in pairs(saved) do self._params[i].grad = g end
  if not ok then error(err, 0) end
  share_params(self)
  return loss
end

function Zero:zero_grad(...) return self.optimizer:zero_grad(...) end

--- The number of optimizer state elements (tensor entries) this rank holds.
function Zero:local_numel()
  local n = 0
  for _, st in pairs(self.optimizer:state_dict().state) do
    for _, v in pairs(st) do
      if lg.is_tensor(v) then n = n + v:numel() end
    end
  end
  return n
end

-- "index key kind dtype shape-or-value" lines for the state this rank owns
local function describe_state(state, keys_of)
  local lines = {}
  for _, i in ipairs(keys_of) do
    local st = state[i]
    if st then
      local ks = {}
      for k in pairs(st) do ks[#ks + 1] = k end
      table.sort(ks)
      for _, k in ipairs(ks) do
        local v = st[k]
        if lg.is_tensor(v) then
          lines[#lines + 1] = fmt("%d %s tensor %s %s", i, k, v:dtype(),
            table.concat(v:shape(), "x"))
        else
          lines[#lines + 1] = fmt("%d %s number %.17g", i, k, v)
        end
      end
    end
  end
  return table.concat(lines, "\n"), lines
end

--- The whole state, collected from every rank (a collective: every rank
-- calls it; each gets the full table, which rank 1 saves).
function Zero:state_dict()
  local sd = self.optimizer:state_dict()
  local full = {}
  for r = 1, self._size do
    local mine = {}
    for i in ipairs(self._params) do
      if self._owner[i] == r then mine[#mine + 1] = i end
    end
    local text = r == self._rank and describe_state(sd.state, mine) or nil
    text = broadcast_string(text, r)
    for _, line in ipairs(split_lines(text)) do
      local i, k, kind, a, b = line:match("^(%d+) (%S+) (%S+) (%S+) ?(%S*)$")
      i = tonumber(i)
      full[i] = full[i] or {}
      if kind == "number" then
        full[i][k] = tonumber(a)
      else
        local t
        if r == self._rank then
          t = sd.state[i][k]:clone()
        else
          local shape = {}
          for d in b:gmatch("%d+") do shape[#shape + 1] = tonumber(d) end
          t = lg.zeros(shape, { dtype = a })
        end
        full[i][k] = C.broadcast(t, r)
      end
    end
  end
  sd.state = full
  return sd
end

--- Loads a full state dict (from any number of ranks): each rank keeps
-- the part it owns.
function Zero:load_state_dict(sd)
  if type(sd) ~= "table" or type(sd.state) ~= "table" then
    error("ZeroOptimizer:load_state_dict: expects a state dict table", 2)
  end
  local mine = {}
  for i, st in pairs(sd.state) do
    if self._owner[i] == self._rank then mine[i] = st end
  end
  self.optimizer:load_state_dict({ param_groups = sd.param_groups,
    state = mine })
end

return M
