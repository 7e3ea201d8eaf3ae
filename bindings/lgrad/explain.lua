--- lgrad.explain: gradient attributions (lg.explain), as Captum's.
--
--   model:eval()
--   local sal = lg.explain.saliency(model, x, labels)        -- |d f_t / dx|
--   local ig, err = lg.explain.integrated_gradients(model, x, labels,
--                                                   {steps = 64})
--   local sg = lg.explain.smoothgrad(model, x, 3, {samples = 25,
--                                     sigma = 0.15, generator = g})
--
-- x is a batch (B, ...); target is a 1-based class index, the same for
-- every sample (a number) or one per sample (an int64 tensor of B).  The
-- model's output is (B, C) scores; an attribution has x's shape.  The
-- model is run as it is: put it in eval mode first.  Parameters' .grad are
-- not touched (gradients come from lg.grad).

local lg = require "lgrad"

local M = {}

local options = require("lgrad.nn")._options
local fmt = string.format
local is_tensor = lg.is_tensor

-- target as a (B, 1) int64 index tensor
local function target_index(fname, target, B, C)
  if math.type(target) == "integer" then
    if target < 1 or target > C then
      error(fmt("%s: target %d is outside the classes 1..%d", fname, target,
        C), 3)
    end
    return lg.full({ B, 1 }, target, { dtype = lg.int64 })
  end
  if is_tensor(target) and target:dtype() == "int64" and target:dim() == 1
      and target:size(1) == B then
    local lo, hi = target:min():item(), target:max():item()
    if lo < 1 or hi > C then
      error(fmt("%s: targets must be classes 1..%d (got %d..%d)", fname, C,
        lo, hi), 3)
    end
    return target:view(B, 1)
  end
  error(fmt("%s: target must be an integer class or an int64 tensor of %d "
    .. "classes (got %s)", fname, B, is_tensor(target)
    and "a " .. target:dtype() .. " tensor [" .. table.concat(target:shape(),
      ",") .. "]" or type(target)), 3)
end

local function check_input(fname, x)
  if not is_tensor(x) or x:dim() < 1 or not (x:dtype() == "float32"
      or x:dtype() == "float64") then
    error(fname .. ": x must be a float tensor with a batch dimension", 3)
  end
end

-- the target scores f_t(x) (B) and their gradient with respect to x,
-- with target given per row of x (B rows, each a (1) index)
local function scores_and_grad(fname, model, x, target)
  return lg.enable_grad(function()
    local xi = x:detach():requires_grad_(true)
    local out = model(xi)
    if not is_tensor(out) or out:dim() ~= 2 or out:size(1) ~= x:size(1) then
      error(fmt("%s: the model must return (B, C) scores for a batch of %d",
        fname, x:size(1)), 0)
    end
    local idx = target_index(fname, target, x:size(1), out:size(2))
    local f = out:gather(2, idx):view(x:size(1))
    local g = lg.grad(f:sum(), xi)
    return f:detach(), g
  end)
end

--- The gradient of the target score with respect to the input; its
-- absolute value unless opts.abs == false (Captum's Saliency default).
function M.saliency(model, x, target, opts)
  opts = options("saliency", opts, { abs = true })
  check_input("saliency", x)
  local _, g = scores_and_grad("saliency", model, x, target)
  if opts.abs == false then return g end
  return g:abs()
end

--- The input times the gradient of the target score.
function M.input_x_gradient(model, x, target)
  check_input("input_x_gradient", x)
  local _, g = scores_and_grad("input_x_gradient", model, x, target)
  return x:detach() * g
end

-- Gauss-Legendre nodes and weights on [0, 1] (Newton on P_n)
local function gauss_legendre(n)
  local nodes, weights = {}, {}
  for i = 1, n do
    local z = math.cos(math.pi * (i - 0.25) / (n + 0.5))
    local dp
    for _ = 1, 100 do
      local p1, p2 = 1, 0
      for j = 1, n do
        p1, p2 = ((2 * j - 1) * z * p1 - (j - 1) * p2) / j, p1
      end
      dp = n * (z * p1 - p2) / (z * z - 1)
      local z1 = z
      z = z1 - p1 / dp
      if math.abs(z - z1) < 1e-15 then break end
    end
    local p1, p2 = 1, 0
    for j = 1, n do p1, p2 = ((2 * j - 1) * z * p1 - (j - 1) * p2) / j, p1 end
    dp = n * (z * p1 - p2) / (z * z - 1)
    nodes[n + 1 - i] = 0.5 * (1 + z)
    weights[n + 1 - i] = 1 / ((1 - z * z) * dp * dp)
  end
  return nodes, weights
end

--- The points alpha in [0, 1] and the weights of an integration rule of n
-- points, as Captum's approximation_methods: "riemann_trapezoid" (alphas
-- linspace(0, 1, n), weights 1/n with the end points halved, so they sum
-- to 1 - 1/n), "riemann_left", "riemann_right", "riemann_middle",
-- "gausslegendre".
function M.integration_rule(method, n)
  if math.type(n) ~= "integer" or n < 1 then
    error("integrated_gradients: steps must be a positive integer (got "
      .. tostring(n) .. ")", 3)
  end
  if method == "gausslegendre" then return gauss_legendre(n) end
  if n < 2 then
    error("integrated_gradients: a Riemann rule needs steps >= 2", 3)
  end
  local alphas, w = {}, {}
  for i = 1, n do
    w[i] = 1 / n
    local a
    if method == "riemann_trapezoid" then
      a = (i - 1) / (n - 1)
    elseif method == "riemann_left" then
      a = (i - 1) / n
    elseif method == "riemann_right" then
      a = i / n
    elseif method == "riemann_middle" then
      a = (i - 0.5) / n
    else
      error("integrated_gradients: method must be riemann_trapezoid, "
        .. "riemann_left, riemann_right, riemann_middle or gausslegendre "
        .. "(got " .. tostring(method) .. ")", 3)
    end
    alphas[i] = a
  end
  if method == "riemann_trapezoid" then
    w[1], w[n] = w[1] / 2, w[n] / 2
  end
  return alphas, w
end

local ig_opts = { baseline = true, steps = true, method = true,
  internal_batch_size = true }

--- Integrated gradients (Sundararajan et al. 2017): (x - baseline) times
-- the integral over alpha of the gradient at baseline + alpha (x -
-- baseline), by opts.method (default "riemann_trapezoid") with opts.steps
-- points (50).  The B * steps interpolated inputs go through the model as
-- one batch, or in batches of about internal_batch_size rows (whole steps
-- of all B samples each).  baseline: a tensor of x's shape (or one that
-- broadcasts to it, or a number), default zeros.
-- Returns the attributions and the completeness error per sample:
-- sum(attributions) - (f_t(x) - f_t(baseline)), a (B) tensor.
function M.integrated_gradients(model, x, target, opts)
  local fname = "integrated_gradients"
  opts = options(fname, opts, ig_opts)
  check_input(fname, x)
  local steps = opts.steps or 50
  local alphas, weights = M.integration_rule(opts.method
    or "riemann_trapezoid", steps)
  x = x:detach()
  local B = x:size(1)
  local shape = x:shape()
  local base = opts.baseline
  if base == nil then
    base = lg.zeros_like(x)
  elseif type(base) == "number" then
    base = lg.full(shape, base, { dtype = x:dtype() })
  elseif is_tensor(base) then
    local ok, b = pcall(function() return base:to(x:dtype()):expand(shape) end)
    if not ok then
      error(fmt("%s: baseline of shape [%s] does not fit x [%s]", fname,
        table.concat(base:shape(), ","), table.concat(shape, ",")), 2)
    end
    base = b:contiguous()
  else
    error(fname .. ": baseline must be a tensor or a number", 2)
  end
  local per_batch = opts.internal_batch_size or B * steps
  if math.type(per_batch) ~= "integer" or per_batch < 1 then
    error(fname .. ": internal_batch_size must be a positive integer", 2)
  end
  local tidx = target_index(fname, target, B, math.maxinteger)
  local diff = x - base
  -- rows ordered (step, sample): row (s - 1) * B + b
  local rest = {}
  for d = 2, #shape do rest[#rest + 1] = shape[d] end
  local total = lg.zeros_like(x)
  local chunk = math.max(1, per_batch // B)
  for s0 = 1, steps, chunk do
    local n = math.min(chunk, steps - s0 + 1)
    local a = lg.tensor({ table.unpack(alphas, s0, s0 + n - 1) },
      { dtype = x:dtype() })
    local w = lg.tensor({ table.unpack(weights, s0, s0 + n - 1) },
      { dtype = x:dtype() })
    local ashape = { n, 1 }
    for _ = 2, #shape do ashape[#ashape + 1] = 1 end
    local pts = base:unsqueeze(1) + a:view(ashape) * diff:unsqueeze(1)
    local flat = { n * B, table.unpack(rest) }
    local t = tidx:view(1, B):expand(n, B):reshape(n * B)
    local _, g = scores_and_grad(fname, model, pts:reshape(flat), t)
    total = total + (g:reshape(pts:shape()) * w:view(ashape)):sum(1)
  end
  local attr = total * diff
  local fx = scores_and_grad(fname, model, x, tidx:view(B))
  local fb = scores_and_grad(fname, model, base, tidx:view(B))
  local err = attr:reshape(B, -1):sum(2) - (fx - fb)
  return attr, err
end

local sg_opts = { samples = true, sigma = true, generator = true,
  method = true, abs = true }

--- SmoothGrad (Smilkov et al. 2017): the mean over opts.samples (25)
-- noisy copies x + N(0, sigma^2) (sigma 0.15 absolute, as Captum's
-- stdevs; generator an lg.Generator) of the saliency gradient; opts.method
-- "smoothgrad" (the default) averages gradients, "smoothgrad_sq" their
-- squares.  The raw gradient is averaged (Captum's NoiseTunnel over
-- Saliency averages |gradient|: pass abs = true for that).
function M.smoothgrad(model, x, target, opts)
  local fname = "smoothgrad"
  opts = options(fname, opts, sg_opts)
  check_input(fname, x)
  local n = opts.samples or 25
  if math.type(n) ~= "integer" or n < 1 then
    error(fname .. ": samples must be a positive integer", 2)
  end
  local sigma = opts.sigma or 0.15
  if type(sigma) ~= "number" or sigma < 0 then
    error(fname .. ": sigma must be a number >= 0", 2)
  end
  local method = opts.method or "smoothgrad"
  if method ~= "smoothgrad" and method ~= "smoothgrad_sq" then
    error(fname .. ": method must be \"smoothgrad\" or \"smoothgrad_sq\"", 2)
  end
  x = x:detach()
  local B = x:size(1)
  local tidx = target_index(fname, target, B, math.maxinteger):view(B)
  local total = lg.zeros_like(x)
  for _ = 1, n do
    local noise = lg.randn(x:shape(), { dtype = x:dtype(),
      generator = opts.generator })
    local _, g = scores_and_grad(fname, model, x + noise * sigma, tidx)
    if opts.abs then g = g:abs() end
    if method == "smoothgrad_sq" then g = g * g end
    total = total + g
  end
  return total / n
end

return M
