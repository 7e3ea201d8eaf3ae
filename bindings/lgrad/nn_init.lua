--- lgrad.nn_init: in-place initializations, as torch.nn.init (reached
-- as lg.nn.init).  Each function fills its tensor without recording a
-- graph, keeps requires_grad, and returns the tensor:
--
--   lg.nn.init.kaiming_normal_(w, {mode = "fan_out", nonlinearity = "relu"})
--   lg.nn.init.xavier_uniform_(w, lg.nn.init.calculate_gain("tanh"))
--
-- Random fills take {generator = g} in their trailing options table.

local lg = require "lgrad"

local is_tensor = lg.is_tensor
local sqrt = math.sqrt
local fmt = string.format

local init = {}

local function nograd(f, t, ...)
  local prev = lg.set_grad_enabled(false)
  local ok, err = pcall(f, t, ...)
  lg.set_grad_enabled(prev)
  if not ok then error(err, 0) end
  return t
end

local function check_float(fname, t)
  if not is_tensor(t) then
    error(fmt("init.%s: expected a tensor (got %s)", fname, type(t)), 3)
  end
  local d = t:dtype()
  if d ~= "float32" and d ~= "float64" then
    error(fmt("init.%s: needs a float tensor (got %s)", fname, d), 3)
  end
end

-- fan_in and fan_out of a weight: (out, in, k...) as PyTorch reads them
local function fans(fname, t)
  local nd = t:dim()
  if nd < 2 then
    error(fmt("init.%s: fan in and fan out need a tensor with at least 2 "
      .. "dimensions (got %d)", fname, nd), 3)
  end
  local receptive = 1
  for d = 3, nd do receptive = receptive * t:size(d) end
  return t:size(2) * receptive, t:size(1) * receptive
end
init._fans = fans
init._nograd = nograd

--- The recommended gain for a nonlinearity, as torch.nn.init.calculate_gain.
function init.calculate_gain(nonlinearity, param)
  local n = nonlinearity
  if n == "linear" or n == "sigmoid" or n == "identity" or n == "conv1d"
      or n == "conv2d" or n == "conv3d" or n == "conv_transpose1d"
      or n == "conv_transpose2d" or n == "conv_transpose3d" then
    return 1
  elseif n == "tanh" then
    return 5 / 3
  elseif n == "relu" then
    return sqrt(2)
  elseif n == "leaky_relu" then
    local slope = param == nil and 0.01 or param
    if type(slope) ~= "number" then
      error("init.calculate_gain: negative_slope must be a number", 2)
    end
    return sqrt(2 / (1 + slope * slope))
  elseif n == "selu" then
    return 3 / 4
  end
  error(fmt("init.calculate_gain: unsupported nonlinearity '%s'",
    tostring(n)), 2)
end

-- generator option passed through to uniform_/normal_
local function gen_opts(o)
  if o and o.generator then return { generator = o.generator } end
  return nil
end

-- (t, positional..., opts) or (t, opts): the trailing options table
local function trailing(...)
  local n = select("#", ...)
  local last = n > 0 and select(n, ...) or nil
  if type(last) == "table" and not is_tensor(last) then return last, n - 1 end
  return nil, n
end

-- an in-place random fill with two numbers that have defaults, given
-- positionally or by name in the options: (t [, a, b] [, {a, b, generator}])
local function random_fill(name, ka, kb, da, db)
  return function(t, a, b, o)
    check_float(name, t)
    if type(a) == "table" then o, a, b = a, a[ka], a[kb] end
    if type(b) == "table" then o, b = b, nil end
    return nograd(t[name], t, a or da, b or db, gen_opts(o))
  end
end

--- uniform_(t [, a = 0, b = 1] [, {generator}])
init.uniform_ = random_fill("uniform_", "a", "b", 0, 1)

--- normal_(t [, mean = 0, std = 1] [, {generator}])
init.normal_ = random_fill("normal_", "mean", "std", 0, 1)

--- constant_(t, value)
function init.constant_(t, v)
  check_float("constant_", t)
  if type(v) ~= "number" then
    error("init.constant_: value must be a number", 2)
  end
  return nograd(t.fill_, t, v)
end

function init.zeros_(t) return init.constant_(t, 0) end
function init.ones_(t) return init.constant_(t, 1) end

local function gain_of(o, g)
  if type(g) == "number" then return g end
  if o and o.gain ~= nil then return o.gain end
  return 1
end

--- xavier_uniform_(t [, gain = 1] [, {gain, generator}]):
-- U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out))
function init.xavier_uniform_(t, ...)
  check_float("xavier_uniform_", t)
  local o = trailing(...)
  local fin, fout = fans("xavier_uniform_", t)
  local a = gain_of(o, (...)) * sqrt(6 / (fin + fout))
  return nograd(t.uniform_, t, -a, a, gen_opts(o))
end

--- xavier_normal_(t [, gain = 1] [, {gain, generator}]):
-- N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out))
function init.xavier_normal_(t, ...)
  check_float("xavier_normal_", t)
  local o = trailing(...)
  local fin, fout = fans("xavier_normal_", t)
  local std = gain_of(o, (...)) * sqrt(2 / (fin + fout))
  return nograd(t.normal_, t, 0, std, gen_opts(o))
end

-- kaiming's arguments: (t, a, mode, nonlinearity) or (t, {a, mode,
-- nonlinearity, generator}); returns gain / sqrt(fan) and the options
local function kaiming_std(fname, t, ...)
  check_float(fname, t)
  local o, n = trailing(...)
  local a, mode, nl = ...
  if n < 1 then a = nil end
  if n < 2 then mode = nil end
  if n < 3 then nl = nil end
  o = o or {}
  a = a or o.a or 0
  mode = mode or o.mode or "fan_in"
  nl = nl or o.nonlinearity or "leaky_relu"
  if mode ~= "fan_in" and mode ~= "fan_out" then
    error(fmt("init.%s: mode must be \"fan_in\" or \"fan_out\" (got %s)",
      fname, tostring(mode)), 3)
  end
  local fin, fout = fans(fname, t)
  local fan = mode == "fan_in" and fin or fout
  if fan == 0 then
    error(fmt("init.%s: cannot initialize a tensor with no elements", fname),
      3)
  end
  return init.calculate_gain(nl, a) / sqrt(fan), o
end

--- kaiming_uniform_(t [, a = 0, mode = "fan_in", nonlinearity =
-- "leaky_relu"]) or (t, {a, mode, nonlinearity, generator}):
-- U(-b, b) with b = gain * sqrt(3 / fan)
function init.kaiming_uniform_(t, ...)
  local std, o = kaiming_std("kaiming_uniform_", t, ...)
  local b = sqrt(3) * std
  return nograd(t.uniform_, t, -b, b, gen_opts(o))
end

--- kaiming_normal_: N(0, std^2) with std = gain / sqrt(fan)
function init.kaiming_normal_(t, ...)
  local std, o = kaiming_std("kaiming_normal_", t, ...)
  return nograd(t.normal_, t, 0, std, gen_opts(o))
end

--- orthogonal_(t [, gain = 1] [, {gain, generator}]): a (semi-)orthogonal
-- matrix from the QR decomposition of a normal matrix, signs fixed by R's
-- diagonal, as PyTorch; dims past the first are flattened.
function init.orthogonal_(t, ...)
  check_float("orthogonal_", t)
  if t:dim() < 2 then
    error("init.orthogonal_: only tensors with 2 or more dimensions are "
      .. "supported", 2)
  end
  local o = trailing(...)
  local gain = gain_of(o, (...))
  local rows = t:size(1)
  local cols = t:numel() // rows
  local flat = lg.randn({ rows, cols }, { dtype = lg.float64,
    generator = o and o.generator })
  if rows < cols then flat = flat:t() end
  -- Householder QR of the m x n matrix a (m >= n), in Lua tables
  local m, n = flat:size(1), flat:size(2)
  local a = flat:contiguous():totable()
  local vs = {}
  local rdiag = {}
  for k = 1, n do
    local norm = 0
    for i = k, m do norm = norm + a[i][k] * a[i][k] end
    norm = sqrt(norm)
    local alpha = a[k][k] > 0 and -norm or norm
    local v = {}
    for i = k, m do v[i] = a[i][k] end
    v[k] = v[k] - alpha
    local vnorm = 0
    for i = k, m do vnorm = vnorm + v[i] * v[i] end
    if vnorm > 0 then
      for j = k, n do
        local s = 0
        for i = k, m do s = s + v[i] * a[i][j] end
        s = 2 * s / vnorm
        for i = k, m do a[i][j] = a[i][j] - s * v[i] end
      end
    end
    vs[k] = { v = v, vnorm = vnorm }
    rdiag[k] = a[k][k]
  end
  -- Q's first n columns: apply the reflections to the identity's columns
  local q = {}
  for i = 1, m do
    q[i] = {}
    for j = 1, n do q[i][j] = (i == j) and 1 or 0 end
  end
  for k = n, 1, -1 do
    local v, vnorm = vs[k].v, vs[k].vnorm
    if vnorm > 0 then
      for j = 1, n do
        local s = 0
        for i = k, m do s = s + v[i] * q[i][j] end
        s = 2 * s / vnorm
        for i = k, m do q[i][j] = q[i][j] - s * v[i] end
      end
    end
  end
  for j = 1, n do
    local sgn = rdiag[j] < 0 and -gain or gain
    for i = 1, m do q[i][j] = q[i][j] * sgn end
  end
  local qt = lg.tensor(q, { dtype = lg.float64 })
  if rows < cols then qt = qt:t() end
  return nograd(t.copy_, t, qt:contiguous():view(t:shape()))
end

return init
