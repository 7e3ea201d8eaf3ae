--- lgrad.functional: the functions of lg.F written over other ops (loaded
-- on first use of one of their names; each adds itself to lg.F).
--
--   F.conv1d(x, w [, b] [, {stride, padding, dilation, groups}])
--       x (N, C, L) or (C, L), w (O, C / groups, k): conv2d on a unit width
--   F.rms_norm(x, normalized_shape [, weight] [, {eps}])
--       x / sqrt(mean(x^2 over the last dims) + eps) * weight; eps defaults
--       to the dtype's machine epsilon, as torch's
--   F.group_norm(x, num_groups [, weight, bias] [, {eps = 1e-5}])
--   F.adaptive_avg_pool2d(x, output_size)    (h, w), {h, w} or n
--   F.elu(x [, alpha = 1]) F.selu(x) F.mish(x)
--   F.hardtanh(x [, min_val = -1, max_val = 1])
--
-- Each is differentiable through the ops it is made of (gradients and
-- double backward as theirs).

local lg = require "lgrad"

local F = lg.F
local is_tensor = lg.is_tensor
local fmt = string.format
local mtype = math.type

local M = {}

local function shape_str(t)
  return "[" .. table.concat(t:shape(), ",") .. "]"
end

local function check_tensor(fname, what, v)
  if not is_tensor(v) then
    error(fmt("%s: %s must be a tensor (got %s)", fname, what, type(v)), 3)
  end
  return v
end

-- the trailing options table of a call (or {}), with unknown keys rejected
local function opts_of(fname, v, allowed)
  if v == nil then return {} end
  if type(v) ~= "table" or is_tensor(v) then
    error(fmt("%s: options must be a table (got %s)", fname, type(v)), 3)
  end
  for k in pairs(v) do
    if not allowed[k] then
      error(fmt("%s: unknown option '%s'", fname, tostring(k)), 3)
    end
  end
  return v
end

local function int_opt(fname, what, v, default, min)
  if v == nil then return default end
  if mtype(v) ~= "integer" or v < min then
    error(fmt("%s: %s must be an integer >= %d (got %s)", fname, what, min,
      tostring(v)), 3)
  end
  return v
end

---------------------------------------------------------------------------
-- conv1d: conv2d over (N, C, L, 1) with a (O, C/g, k, 1) kernel

function M.conv1d(x, w, b, opts)
  local fn = "conv1d"
  if type(b) == "table" and not is_tensor(b) then b, opts = nil, b end
  check_tensor(fn, "input", x)
  check_tensor(fn, "weight", w)
  if b ~= nil then check_tensor(fn, "bias", b) end
  opts = opts_of(fn, opts, { stride = true, padding = true, dilation = true,
    groups = true })
  if x:dim() ~= 3 and x:dim() ~= 2 then
    error(fmt("conv1d: input must be (N, C, L) or (C, L) (got %s)",
      shape_str(x)), 2)
  end
  if w:dim() ~= 3 then
    error(fmt("conv1d: weight must be (out_channels, in_channels / groups, "
      .. "kernel) (got %s for the input %s)", shape_str(w), shape_str(x)), 2)
  end
  local stride = int_opt(fn, "stride", opts.stride, 1, 1)
  local dilation = int_opt(fn, "dilation", opts.dilation, 1, 1)
  local groups = int_opt(fn, "groups", opts.groups, 1, 1)
  local padding = opts.padding or 0
  local k = w:size(3)
  if padding == "valid" then
    padding = 0
  elseif padding == "same" then
    local total = dilation * (k - 1)
    if stride ~= 1 then error("conv1d: padding \"same\" needs stride 1", 2) end
    if total % 2 ~= 0 then
      -- torch pads the extra element on the right
      local xs = x:dim() == 2 and x:unsqueeze(1) or x
      local z = lg.zeros({ xs:size(1), xs:size(2), 1 }, { dtype = x:dtype() })
      xs = lg.cat({ xs, z }, 3)
      local y = M.conv1d(xs, w, b, { stride = 1, padding = total // 2,
        dilation = dilation, groups = groups })
      return x:dim() == 2 and y:squeeze(1) or y
    end
    padding = total // 2
  else
    padding = int_opt(fn, "padding", padding, 0, 0)
  end
  local C = x:size(-2)
  if C ~= w:size(2) * groups then
    error(fmt("conv1d: the input %s has %d channels but the weight %s with "
      .. "groups = %d expects %d", shape_str(x), C, shape_str(w), groups,
      w:size(2) * groups), 2)
  end
  local y = F.conv2d(x:unsqueeze(-1), w:unsqueeze(-1), b, {
    stride = { stride, 1 }, padding = { padding, 0 },
    dilation = { dilation, 1 }, groups = groups })
  return y:squeeze(-1)
end

---------------------------------------------------------------------------
-- normalization

-- the sizes of normalized_shape (an integer or a list) checked against the
-- last dims of x; returns the list
local function norm_shape(fname, x, shape)
  if mtype(shape) == "integer" then shape = { shape } end
  local n = type(shape) == "table" and not is_tensor(shape) and rawlen(shape)
  if not n or n == 0 or n > 8 then
    error(fname .. ": normalized_shape must be an integer or a list of "
      .. "sizes", 3)
  end
  local ok = x:dim() >= n
  for i = 1, n do
    if mtype(rawget(shape, i)) ~= "integer" then
      error(fname .. ": normalized_shape must be an integer or a list of "
        .. "sizes", 3)
    end
    ok = ok and x:size(x:dim() - n + i) == shape[i]
  end
  if not ok then
    error(fmt("%s: the input %s does not end with normalized_shape [%s]",
      fname, shape_str(x), table.concat(shape, ",")), 3)
  end
  return shape
end

local EPS = { float32 = 1.1920928955078125e-07, float64 = 2.220446049250313e-16 }
M._machine_eps = EPS

--- rms_norm(x, normalized_shape [, weight] [, {eps}])
function M.rms_norm(x, shape, weight, opts)
  local fn = "rms_norm"
  if type(weight) == "table" and not is_tensor(weight) then
    weight, opts = nil, weight
  end
  check_tensor(fn, "input", x)
  opts = opts_of(fn, opts, { eps = true })
  shape = norm_shape(fn, x, shape)
  if not EPS[x:dtype()] then
    error(fmt("rms_norm: input must be float32 or float64 (got %s)",
      x:dtype()), 2)
  end
  local eps = opts.eps or EPS[x:dtype()]
  if type(eps) ~= "number" then
    error("rms_norm: eps must be a number (or nil for the dtype's epsilon)", 2)
  end
  local n = #shape
  local flat = x:flatten(x:dim() - n + 1, -1)
  local ms = flat:pow(2):mean(-1, true)
  local y = (flat * (ms + eps):rsqrt()):view(x:shape())
  if weight ~= nil then
    check_tensor(fn, "weight", weight)
    if shape_str(weight) ~= "[" .. table.concat(shape, ",") .. "]" then
      error(fmt("rms_norm: weight must have shape [%s] (got %s)",
        table.concat(shape, ","), shape_str(weight)), 2)
    end
    y = y * weight
  end
  return y
end

--- group_norm(x, num_groups [, weight, bias] [, {eps = 1e-5}]): x (N, C,
-- ...), statistics over each group of C / num_groups channels and the rest
function M.group_norm(x, G, weight, bias, opts)
  local fn = "group_norm"
  if type(weight) == "table" and not is_tensor(weight) then
    weight, opts = nil, weight
  elseif type(bias) == "table" and not is_tensor(bias) then
    bias, opts = nil, bias
  end
  check_tensor(fn, "input", x)
  opts = opts_of(fn, opts, { eps = true })
  local eps = opts.eps or 1e-5
  if x:dim() < 2 then
    error(fmt("group_norm: input must be (N, C, ...) (got %s)", shape_str(x)),
      2)
  end
  local C = x:size(2)
  if mtype(G) ~= "integer" or G < 1 or C % G ~= 0 then
    error(fmt("group_norm: num_groups (%s) must divide the %d channels of the "
      .. "input %s", tostring(G), C, shape_str(x)), 2)
  end
  local N = x:size(1)
  local g = x:reshape(N, G, -1)
  local mean = g:mean(-1, true)
  local centered = g - mean
  local var = centered:pow(2):mean(-1, true)
  local y = (centered * (var + eps):rsqrt()):view(x:shape())
  local bshape = { 1, C }
  for _ = 3, x:dim() do bshape[#bshape + 1] = 1 end
  for _, p in ipairs({ { "weight", weight }, { "bias", bias } }) do
    local t = p[2]
    if t ~= nil then
      check_tensor(fn, p[1], t)
      if t:dim() ~= 1 or t:size(1) ~= C then
        error(fmt("group_norm: %s must have shape [%d] for the input %s (got "
          .. "%s)", p[1], C, shape_str(x), shape_str(t)), 2)
      end
    end
  end
  if weight ~= nil then y = y * weight:view(bshape) end
  if bias ~= nil then y = y + bias:view(bshape) end
  return y
end

---------------------------------------------------------------------------
-- adaptive average pooling: y = P_h x P_w^T with averaging matrices

-- (out, n): row i averages inputs floor(i n / out) .. ceil((i + 1) n / out)
local function pool_matrix(out, n, dtype)
  local rows = {}
  for i = 0, out - 1 do
    local s, e = (i * n) // out, -((-(i + 1) * n) // out)
    local row = {}
    for j = 0, n - 1 do
      row[j + 1] = (j >= s and j < e) and 1 / (e - s) or 0
    end
    rows[i + 1] = row
  end
  return lg.tensor(rows, { dtype = dtype })
end

local MAX_POOL_CELLS = 1 << 24

--- adaptive_avg_pool2d(x, output_size): x (N, C, H, W) or (C, H, W);
-- output_size n, {h, w} (nil keeps that input size)
function M.adaptive_avg_pool2d(x, size)
  local fn = "adaptive_avg_pool2d"
  check_tensor(fn, "input", x)
  if x:dim() ~= 3 and x:dim() ~= 4 then
    error(fmt("adaptive_avg_pool2d: input must be (N, C, H, W) or (C, H, W) "
      .. "(got %s)", shape_str(x)), 2)
  end
  local H, W = x:size(-2), x:size(-1)
  local oh, ow
  if mtype(size) == "integer" then
    oh, ow = size, size
  elseif type(size) == "table" and not is_tensor(size) then
    oh, ow = size[1] or H, size[2] or W
  end
  if mtype(oh) ~= "integer" or mtype(ow) ~= "integer" or oh < 1 or ow < 1 then
    error("adaptive_avg_pool2d: output_size must be a positive integer or a "
      .. "pair {h, w}", 2)
  end
  if H < 1 or W < 1 then
    error(fmt("adaptive_avg_pool2d: the input %s is empty", shape_str(x)), 2)
  end
  -- the pooling matrices are (oh, H) and (ow, W)
  if oh > MAX_POOL_CELLS // H or ow > MAX_POOL_CELLS // W then
    error(fmt("adaptive_avg_pool2d: output_size (%d, %d) is too large for "
      .. "the input %s", oh, ow, shape_str(x)), 2)
  end
  local ph = pool_matrix(oh, H, x:dtype())
  local pw = pool_matrix(ow, W, x:dtype())
  return lg.matmul(lg.matmul(ph, x), pw:t())
end

---------------------------------------------------------------------------
-- activations

local function number_arg(fname, what, v, default)
  if v == nil then return default end
  if type(v) ~= "number" then
    error(fmt("%s: %s must be a number (got %s)", fname, what, type(v)), 3)
  end
  return v
end

-- x for x > 0, alpha (exp(x) - 1) otherwise; the exponential sees only
-- min(x, 0), so a large x cannot make an infinity whose gradient is NaN
local function elu(x, alpha)
  return x:relu() + (-(-x):relu()):expm1() * alpha
end

--- elu(x [, alpha = 1])
function M.elu(x, alpha)
  if type(alpha) == "table" then alpha = alpha.alpha end
  check_tensor("elu", "input", x)
  return elu(x, number_arg("elu", "alpha", alpha, 1.0))
end

local SELU_ALPHA = 1.6732632423543772848170429916717
local SELU_SCALE = 1.0507009873554804934193349852946

--- selu(x) = scale * elu(x, alpha) with the self-normalizing constants
function M.selu(x)
  check_tensor("selu", "input", x)
  return elu(x, SELU_ALPHA) * SELU_SCALE
end

--- mish(x) = x tanh(softplus(x))
function M.mish(x)
  check_tensor("mish", "input", x)
  return x * x:softplus():tanh()
end

--- hardtanh(x [, min_val = -1, max_val = 1]) (or {min_val, max_val})
function M.hardtanh(x, lo, hi)
  if type(lo) == "table" then lo, hi = lo.min_val, lo.max_val end
  check_tensor("hardtanh", "input", x)
  lo = number_arg("hardtanh", "min_val", lo, -1.0)
  hi = number_arg("hardtanh", "max_val", hi, 1.0)
  if lo > hi then
    error(fmt("hardtanh: min_val (%g) must not exceed max_val (%g)", lo, hi),
      2)
  end
  return x:clamp(lo, hi)
end

for _, name in ipairs({ "conv1d", "rms_norm", "group_norm",
  "adaptive_avg_pool2d", "elu", "selu", "mish", "hardtanh" }) do
  rawset(F, name, M[name])
end

return M
