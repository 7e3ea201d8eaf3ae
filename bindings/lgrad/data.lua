--- lgrad.data: datasets, batching and the dataset readers (lg.data).
--
--   local ds = lg.data.TensorDataset(x, y)
--   local loader = lg.data.DataLoader(ds, {batch_size = 64, shuffle = true,
--                                          seed = 1})
--   for epoch = 1, 10 do
--     for xb, yb in loader:iter() do ... end
--   end
--
-- A DataLoader visits every sample exactly once per epoch.  With shuffle,
-- epoch e uses the permutation drawn by lg.Generator(mix(seed, e)), so
-- the order depends only on the seed and the epoch number: a loader
-- restored with load_state_dict continues with the very batches the
-- interrupted run would have seen.

local lg = require "lgrad"

local M = {}

local io_ = lg._io

local is_tensor = lg.is_tensor

local function check_opts(fname, opts)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    error(fname .. ": options must be a table, got " .. type(opts), 3)
  end
  return opts
end

---------------------------------------------------------------------------
-- readers

--- Reads an IDX file (gzip or plain).  Integer types give int64 tensors,
-- float types float32/float64; opts: dtype, scale, shift (value * scale +
-- shift), limit (keep the first items along dim 1).
function M.read_idx(path, opts)
  return io_.read_idx(path, check_opts("read_idx", opts))
end

--- Reads a numeric CSV into a 2-d tensor; with {header = true} the column
-- names come back as a second result.  opts: header, dtype, delimiter.
function M.read_csv(path, opts)
  return io_.read_csv(path, check_opts("read_csv", opts))
end

local FMNIST_DIR = "/usr/share/datasets/fashion-mnist"

local function readable(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local function find_file(dir, name)
  for _, p in ipairs { dir .. "/" .. name .. ".gz", dir .. "/" .. name } do
    if readable(p) then return p end
  end
  error(string.format("fashion_mnist: cannot find %s/%s(.gz)%s", dir, name,
    dir == FMNIST_DIR and " (install Debian's dataset-fashion-mnist)" or ""),
    3)
end

--- Fashion-MNIST: images (N x 28 x 28 float32 in [0, 1]) and labels
-- (int64, 1..10).  split is "train" (60000) or "test" (10000); opts:
-- dir, n (read only the first n samples).
function M.fashion_mnist(split, opts)
  split = split or "train"
  opts = check_opts("fashion_mnist", opts)
  local prefix = ({ train = "train", test = "t10k" })[split]
  if not prefix then
    error("fashion_mnist: split must be \"train\" or \"test\", got "
      .. tostring(split), 2)
  end
  local dir = opts.dir or FMNIST_DIR
  local n = opts.n
  if n ~= nil and (math.type(n) ~= "integer" or n < 0) then
    error("fashion_mnist: n must be a non-negative integer", 2)
  end
  local images = io_.read_idx(find_file(dir, prefix .. "-images-idx3-ubyte"),
    { dtype = lg.float32, scale = 1 / 255, limit = n })
  local labels = io_.read_idx(find_file(dir, prefix .. "-labels-idx1-ubyte"),
    { dtype = lg.int64, shift = 1, limit = n })
  if images:dim() ~= 3 or labels:dim() ~= 1
      or images:size(1) ~= labels:size(1) then
    error("fashion_mnist: image and label files do not match", 2)
  end
  return images, labels
end

---------------------------------------------------------------------------
-- TensorDataset

local TensorDataset = {}

local function ds_get(self, i)
  local n = self.n
  if math.type(i) ~= "integer" then
    error("TensorDataset: index must be an integer, got " .. tostring(i), 3)
  end
  if i < 0 then i = n + i + 1 end
  if i < 1 or i > n then
    error(string.format("TensorDataset: index %d out of range 1..%d", i, n),
      3)
  end
  local out = {}
  for k, t in ipairs(self.tensors) do out[k] = t:select(1, i) end
  return out
end

TensorDataset.__index = function(self, k)
  if type(k) == "number" then return ds_get(self, k) end
  return TensorDataset[k]
end
TensorDataset.__len = function(self) return self.n end
TensorDataset.__name = "lgrad.data.TensorDataset"
TensorDataset.__tostring = function(self)
  local parts = {}
  for k, t in ipairs(self.tensors) do
    parts[k] = "[" .. table.concat(t:shape(), "x") .. "]"
  end
  return string.format("TensorDataset(%d samples: %s)", self.n,
    table.concat(parts, ", "))
end

--- The samples of index i, one per tensor, as separate values.
function TensorDataset:get(i)
  return table.unpack(ds_get(self, i))
end

--- A dataset over tensors that share their size along dim 1; ds[i] is the
-- list {x[i], y[i], ...}.
function M.TensorDataset(...)
  local tensors = table.pack(...)
  if tensors.n == 0 then
    error("TensorDataset: needs at least one tensor", 2)
  end
  local n
  for k = 1, tensors.n do
    local t = tensors[k]
    if not is_tensor(t) then
      error(string.format("TensorDataset: argument %d is not a tensor", k), 2)
    end
    if t:dim() == 0 then
      error(string.format("TensorDataset: tensor %d is 0-d", k), 2)
    end
    if n == nil then
      n = t:size(1)
    elseif t:size(1) ~= n then
      error(string.format("TensorDataset: tensor %d has %d samples, "
        .. "tensor 1 has %d", k, t:size(1), n), 2)
    end
  end
  tensors.n = nil
  return setmetatable({ tensors = tensors, n = n }, TensorDataset)
end

function M.is_TensorDataset(v)
  return getmetatable(v) == TensorDataset
end

---------------------------------------------------------------------------
-- DataLoader

local DataLoader = {}
DataLoader.__index = DataLoader
DataLoader.__name = "lgrad.data.DataLoader"

local function nbatches(n, bs, drop_last)
  if drop_last then return n // bs end
  return (n + bs - 1) // bs
end

-- samples per epoch: the whole dataset, or this rank's shard (distributed)
local function epoch_samples(self)
  local n, d = #self.dataset, self.distributed
  if not d then return n end
  if self.drop_last then return n // d.size end
  return (n + d.size - 1) // d.size
end

DataLoader.__len = function(self)
  if self.sample_rate then return self.steps end
  return nbatches(epoch_samples(self), self.batch_size, self.drop_last)
end

DataLoader.__tostring = function(self)
  return string.format("DataLoader(%d samples, batch_size %d, %d batches%s)",
    #self.dataset, self.batch_size, #self,
    self.shuffle and ", shuffled" or "")
end

-- the seed of epoch e's generator (53 bits, distinct per epoch)
local function epoch_seed(seed, epoch)
  local h = seed ~ (epoch * 0x9E3779B97F4A7C15)
  h = (h ~ (h >> 31)) * 0x5851F42D4C957F2D
  return (h ~ (h >> 29)) & 0x1FFFFFFFFFFFFF
end

-- the grow_batch option checked, with its defaults filled in
local function grow_options(g, n, bs)
  if g == nil then return nil end
  if type(g) ~= "table" then
    error("DataLoader: grow_batch must be a table {noise_scale = fn or "
      .. "true, model, loss, every, max}", 3)
  end
  local known = { noise_scale = true, model = true, loss = true,
    every = true, max = true, draws = true, small = true, big = true }
  for k in pairs(g) do
    if not known[k] then
      error("DataLoader: unknown grow_batch option '" .. tostring(k) .. "'",
        3)
    end
  end
  local ns = g.noise_scale
  if ns == nil then ns = true end
  if ns ~= true and type(ns) ~= "function" then
    error("DataLoader: grow_batch.noise_scale must be true or a "
      .. "function(loader) -> number", 3)
  end
  if ns == true and (g.model == nil or type(g.loss) ~= "function") then
    error("DataLoader: grow_batch needs model and loss to measure the "
      .. "noise scale (or a noise_scale function)", 3)
  end
  local function int(name, v, default)
    v = v == nil and default or v
    if math.type(v) ~= "integer" or v < 1 then
      error("DataLoader: grow_batch." .. name
        .. " must be a positive integer", 4)
    end
    return v
  end
  local small = int("small", g.small, bs)
  return { noise_scale = ns, model = g.model, loss = g.loss,
    every = int("every", g.every, 1), max = int("max", g.max,
      math.max(n, 1)), draws = int("draws", g.draws, 5), small = small,
    big = g.big and int("big", g.big) or math.min(n, 16 * small) }
end

--- A loader over a TensorDataset (batches are gathered with one
-- index_select per tensor), a tensor, or any table with __len and
-- __index giving samples (tensors, numbers, or lists of them), whose
-- batches are stacked.  opts: batch_size (1), shuffle (false), drop_last
-- (false), seed (drawn from lg's default generator when omitted),
-- grow_batch (below), distributed (false; true: each rank of lg.dist gets
-- a disjoint 1/N of every epoch's samples, with rank 1's seed, padded by
-- repeating samples unless drop_last, as torch's DistributedSampler).
--
-- grow_batch = {noise_scale = true, model = m, loss = fn, every = 1,
-- max = ...} raises batch_size during training as the gradient noise
-- scale grows (McCandlish et al. 2018: the useful batch size is about
-- B_simple, which rises as the loss falls), instead of decaying the
-- learning rate.  After every `every`-th epoch has handed out its last
-- batch, the loader measures B_simple with lg.exp.noise_scale(model,
-- loss, loader, {draws, small, big}) (defaults: 5 draws, small = the
-- initial batch size, big = 16 * small) and sets batch_size to
-- B_simple rounded, if that is larger, up to max (the dataset size).
-- noise_scale = function(loader) -> number measures it some other way.
-- loader.batch_history lists {epoch, batch_size, noise_scale} per
-- measurement.
function M.DataLoader(dataset, opts)
  opts = check_opts("DataLoader", opts)
  if is_tensor(dataset) then dataset = M.TensorDataset(dataset) end
  local ok = type(dataset) == "table" or type(dataset) == "userdata"
  local okl, len = false, nil
  if ok then okl, len = pcall(function() return #dataset end) end
  if not okl or math.type(len) ~= "integer" or len < 0 then
    error("DataLoader: dataset must have a length (#ds) and samples ds[i]",
      2)
  end
  local bs = opts.batch_size or 1
  if math.type(bs) ~= "integer" or bs < 1 then
    error("DataLoader: batch_size must be a positive integer, got "
      .. tostring(bs), 2)
  end
  local q, steps = opts.sample_rate, nil
  if q ~= nil then
    if type(q) ~= "number" or not (q > 0 and q <= 1) then
      error("DataLoader: sample_rate must be in (0, 1], got " .. tostring(q),
        2)
    end
    steps = opts.steps or math.floor(1 / q + 0.5)
    if math.type(steps) ~= "integer" or steps < 1 then
      error("DataLoader: steps must be a positive integer", 2)
    end
  end
  local seed = opts.seed
  if seed == nil then
    seed = lg.randint(0, 0x7FFFFFFF, { 1 }):item()
  elseif math.type(seed) ~= "integer" then
    error("DataLoader: seed must be an integer", 2)
  end
  local distributed
  if opts.distributed then
    -- DistributedSampler: every rank draws the permutation of rank 1's
    -- seed and takes every size-th sample from its rank on
    local dist = require "lgrad.dist"
    distributed = { rank = dist.rank(), size = dist.world_size() }
    local t = lg.tensor({ seed }, { dtype = lg.int64 })
    seed = dist.broadcast(t, 1):item()
  end
  return setmetatable({
    dataset = dataset,
    batch_size = bs,
    shuffle = not not opts.shuffle,
    drop_last = not not opts.drop_last,
    seed = seed,
    epoch = 0,      -- epochs started
    position = 0,   -- batches handed out in the current epoch
    _resume = false,
    grow_batch = grow_options(opts.grow_batch, len, bs),
    distributed = distributed,
    batch_history = opts.grow_batch and {} or nil,
    sample_rate = q,
    steps = steps,
  }, DataLoader)
end

-- grow_batch: measures the noise scale after an epoch and raises
-- batch_size to it (never lowers it)
function DataLoader:_grow(epoch)
  local g = self.grow_batch
  if epoch % g.every ~= 0 then return end
  local b
  if g.noise_scale == true then
    b = require("lgrad.exp").noise_scale(g.model, g.loss, self,
      { draws = g.draws, small = math.min(g.small, #self.dataset // 2),
        big = math.min(g.big, #self.dataset),
        seed = (self.seed + epoch) & 0x7FFFFFFF }).B_simple
  else
    b = g.noise_scale(self)
    if type(b) ~= "number" then
      error("DataLoader: grow_batch.noise_scale must return a number", 0)
    end
  end
  local new = self.batch_size
  if b == b and b > new then
    new = b == math.huge and g.max or math.floor(math.min(b, g.max) + 0.5)
  end
  self.batch_size = math.max(self.batch_size, math.min(new, g.max))
  local h = self.batch_history
  h[#h + 1] = { epoch = epoch, batch_size = self.batch_size,
    noise_scale = b }
end

-- the batch of the 1-based sample indices idx (an int64 tensor)
local function collate(self, idx)
  local ds = self.dataset
  if getmetatable(ds) == TensorDataset then
    local out = {}
    for k, t in ipairs(ds.tensors) do out[k] = t:index_select(1, idx) end
    return table.unpack(out)
  end
  local ids = idx:totable()
  local samples = {}
  for k, i in ipairs(ids) do samples[k] = ds[i] end
  local first = samples[1]
  local function stack(list, what)
    local v = list[1]
    if is_tensor(v) then return lg.stack(list, 1) end
    if type(v) == "number" then
      local all_int = true
      for _, x in ipairs(list) do
        if math.type(x) ~= "integer" then all_int = false end
      end
      return lg.tensor(list, all_int and { dtype = lg.int64 } or nil)
    end
    error("DataLoader: cannot batch a sample " .. what .. " of type "
      .. type(v), 4)
  end
  if type(first) == "table" and not is_tensor(first) then
    local out = {}
    for c = 1, #first do
      local list = {}
      for k, s in ipairs(samples) do list[k] = s[c] end
      out[c] = stack(list, "component " .. c)
    end
    return table.unpack(out)
  end
  return stack(samples, "")
end

--- The order of the current epoch: a permutation, or nil for 1..n.
function DataLoader:_order()
  local d = self.distributed
  if not self.shuffle and not d then return nil end
  local n = #self.dataset
  local order
  if self.shuffle then
    local g = lg.Generator(epoch_seed(self.seed, self.epoch))
    order = lg.randperm(n, { generator = g })
  else
    order = lg.range(1, n)
  end
  if not d then return order end
  -- pad by repeating the start (or drop the tail), then every size-th
  local per = epoch_samples(self)
  local total = per * d.size
  while order:size(1) < total do
    order = lg.cat({ order, order:narrow(1, 1,
      math.min(order:size(1), total - order:size(1))) }, 1)
  end
  order = order:narrow(1, 1, total)
  return order:view(per, d.size):select(2, d.rank):contiguous()
end

--- Iterates over one epoch's batches: for xb, yb in loader:iter() do.
-- Each call starts a new epoch, unless load_state_dict restored a loader
-- in the middle of one, which then goes on where it stopped.
function DataLoader:iter()
  if self.sample_rate then return self:_poisson_iter() end
  if self._resume then
    self._resume = false
  else
    self.epoch = self.epoch + 1
    self.position = 0
  end
  local n, bs = epoch_samples(self), self.batch_size
  local nb = nbatches(n, bs, self.drop_last)
  local order = self:_order()
  local epoch = self.epoch
  local b = self.position
  local grown = false
  return function()
    if b >= nb or self.epoch ~= epoch then
      if self.grow_batch and not grown and self.epoch == epoch then
        grown = true
        self:_grow(epoch)
      end
      return nil
    end
    b = b + 1
    local first = (b - 1) * bs + 1
    local len = math.min(bs, n - first + 1)
    local idx
    if order then
      idx = order:narrow(1, first, len)
    else
      idx = lg.range(first, first + len - 1)
    end
    self.position = b
    return collate(self, idx)
  end
end

-- Poisson sampling (sample_rate = q): each of an epoch's steps batches
-- every sample independently with probability q, so batch sizes vary
-- (an empty batch is possible) and a sample may appear in several
-- batches of an epoch or in none, as differentially private SGD's
-- analysis assumes (Opacus's DPDataLoader)
function DataLoader:_poisson_iter()
  self.epoch = self.epoch + 1
  self.position = 0
  local n, q, steps = #self.dataset, self.sample_rate, self.steps
  local g = lg.Generator(epoch_seed(self.seed, self.epoch))
  local epoch = self.epoch
  local b = 0
  return function()
    if b >= steps or self.epoch ~= epoch then return nil end
    b = b + 1
    local u = lg.rand({ n }, { generator = g, dtype = lg.float64 }):totable()
    local list, k = {}, 0
    for i = 1, n do
      if u[i] < q then
        k = k + 1
        list[k] = i
      end
    end
    self.position = b
    return collate(self, lg.tensor(list, { dtype = lg.int64 }))
  end
end

--- The loader's state for checkpoints: a table of integers.
function DataLoader:state_dict()
  return { seed = self.seed, epoch = self.epoch, position = self.position,
    batch_size = self.batch_size }
end

--- Restores state_dict(): the next iter() goes on with the same epoch at
-- the next batch (or starts the next epoch when that one was finished).
function DataLoader:load_state_dict(sd)
  if type(sd) ~= "table" then
    error("DataLoader:load_state_dict: expects a table", 2)
  end
  for _, k in ipairs { "seed", "epoch", "position" } do
    if math.type(sd[k]) ~= "integer" or (k ~= "seed" and sd[k] < 0) then
      error("DataLoader:load_state_dict: '" .. k
        .. "' must be a non-negative integer", 2)
    end
  end
  if sd.batch_size ~= nil and self.grow_batch then
    -- the batch size grew in the run that saved it
    if math.type(sd.batch_size) ~= "integer" or sd.batch_size < 1 then
      error("DataLoader:load_state_dict: 'batch_size' must be a positive "
        .. "integer", 2)
    end
    self.batch_size = sd.batch_size
  elseif sd.batch_size ~= nil and sd.batch_size ~= self.batch_size then
    error(string.format("DataLoader:load_state_dict: saved with batch_size "
      .. "%d, this loader has %d", sd.batch_size, self.batch_size), 2)
  end
  self.seed, self.epoch, self.position = sd.seed, sd.epoch, sd.position
  self._resume = self.epoch > 0 and self.position < #self
end

M.DataLoader_class = DataLoader
M.TensorDataset_class = TensorDataset

for k, v in pairs(require "lgrad.text") do M[k] = v end

return M
