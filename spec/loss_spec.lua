-- lg.F losses: values and gradients against PyTorch fixtures
-- (spec/fixtures/gen_functional.py) for every reduction and option, to
-- 1e-6 relative in float64 and 1e-4 in float32; float64 finite
-- differences; stability for large logits; error messages.
local lg = require "lgrad"
local F = lg.F
local cases = dofile("spec/fixtures/functional.lua")

-- ---- helpers ----

local function T(f, dtype)
  local d = f.dtype == "int64" and lg.int64 or dtype or lg.float64
  return lg.tensor(f.data, {dtype = d}):reshape(f.shape)
end

local function flat(t)
  local n, out = t:numel(), {}
  for i = 1, n do out[i] = t:get_flat(i) end
  return out
end

local function same_shape(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end

local function shape_str(s) return "[" .. table.concat(s, ",") .. "]" end

-- |got - want| <= tol * max(|want|, 0.1 * max|want|, 1e-12), elementwise
local function check_close(got, want, tol, what)
  assert(got, what .. ": missing")
  local gs = got:shape()
  if not same_shape(gs, want.shape) then
    error(string.format("%s: shape %s, expected %s", what, shape_str(gs),
                        shape_str(want.shape)), 2)
  end
  local g, w = flat(got), want.data
  local big = 0
  for i = 1, #w do big = math.max(big, math.abs(w[i])) end
  for i = 1, #w do
    local scale = math.max(math.abs(w[i]), 0.1 * big, 1e-12)
    local err = math.abs(g[i] - w[i])
    if err ~= err or err > tol * scale then
      error(string.format("%s: element %d is %.12g, expected %.12g", what, i,
                          g[i], w[i]), 2)
    end
  end
end

local function contains(list, x)
  for _, v in ipairs(list) do if v == x then return true end end
  return false
end

local function run_case(c, dtype, tol)
  local ts = {}
  for k, f in pairs(c.tensors) do
    ts[k] = T(f, dtype)
    if contains(c.grad_names, k) then ts[k]:requires_grad_(true) end
  end
  local args, n = {}, #c.args
  for i, a in ipairs(c.args) do
    if type(a) == "string" then args[i] = ts[a] else args[i] = a.value end
  end
  if c.opts then
    local o = {}
    for k, v in pairs(c.opts) do
      if k == "weight" or k == "pos_weight" then o[k] = ts[v] else o[k] = v end
    end
    n = n + 1
    args[n] = o
  end
  local out = F[c.op](table.unpack(args, 1, n))
  check_close(out, c.out, tol, c.name .. " output")
  out:backward(T(c.upstream, dtype))
  for k, g in pairs(c.grads) do
    check_close(ts[k].grad, g, tol, c.name .. " grad " .. k)
  end
end

local gradcheck = lg.autograd.gradcheck

local function randn(...)
  return lg.randn({...}, {dtype = lg.float64, requires_grad = true})
end

local function check(fn, inputs)
  local ok, msg = gradcheck(fn, inputs)
  assert(ok, msg)
end

local function labels(t) return lg.tensor(t):long() end

-- ---- fixtures ----

describe("losses against PyTorch", function()
  for _, c in ipairs(cases) do
    if c.group == "loss" then
      it(c.name .. " (float64)", function() run_case(c, lg.float64, 1e-6) end)
      it(c.name .. " (float32)", function() run_case(c, lg.float32, 1e-4) end)
    end
  end
end)

-- ---- finite differences ----

describe("losses gradcheck (float64)", function()
  before_each(function() lg.manual_seed(11) end)
  local reds = {"none", "mean", "sum"}

  it("regression losses in input and target", function()
    for _, r in ipairs(reds) do
      local o = {reduction = r}
      check(function(a, b) return F.mse_loss(a, b, o) end,
            {randn(3, 4), randn(3, 4)})
      check(function(a, b) return F.l1_loss(a, b, o) end,
            {randn(3, 4), randn(3, 4)})
      check(function(a, b)
        return F.smooth_l1_loss(a, b, {beta = 0.7, reduction = r})
      end, {randn(3, 4), randn(3, 4)})
      check(function(a, b)
        return F.huber_loss(a, b, {delta = 0.8, reduction = r})
      end, {randn(3, 4), randn(3, 4)})
    end
  end)

  it("cross_entropy with labels and every option", function()
    local y = labels({1, 3, 2, 3, 1})
    local w = lg.tensor({0.5, 1.5, 2.0}, {dtype = lg.float64})
    for _, r in ipairs(reds) do
      check(function(x)
        return F.cross_entropy(x, y, {reduction = r, weight = w,
                                      label_smoothing = 0.2,
                                      ignore_index = 2})
      end, {randn(5, 3)})
    end
    local ys = labels({{{1, 2}, {3, 3}}, {{2, 2}, {1, 3}}})
    check(function(x) return F.cross_entropy(x, ys) end, {randn(2, 3, 2, 2)})
  end)

  it("cross_entropy with probabilities, in logits and targets", function()
    local w = lg.tensor({0.5, 1.5, 2.0}, {dtype = lg.float64})
    for _, r in ipairs(reds) do
      check(function(x, p)
        return F.cross_entropy(x, p, {reduction = r, weight = w,
                                      label_smoothing = 0.1})
      end, {randn(4, 3), randn(4, 3)})
    end
  end)

  it("nll_loss", function()
    local y = labels({1, 3, 2, 2})
    check(function(x)
      return F.nll_loss(x, y, {weight = lg.tensor({1, 2, 3},
                                                 {dtype = lg.float64})})
    end, {randn(4, 3)})
  end)

  it("binary_cross_entropy in input and target", function()
    local p = lg.rand({3, 4}, {dtype = lg.float64}) * 0.8 + 0.1
    p:requires_grad_(true)
    for _, r in ipairs(reds) do
      check(function(a, b)
        return F.binary_cross_entropy(a, b, {reduction = r})
      end, {p, lg.rand({3, 4}, {dtype = lg.float64}):requires_grad_(true)})
    end
  end)

  it("bce_with_logits with weight and pos_weight", function()
    local w = lg.rand({4}, {dtype = lg.float64}) + 0.5
    local pw = lg.rand({4}, {dtype = lg.float64}) * 2 + 0.2
    for _, r in ipairs(reds) do
      check(function(a, b)
        return F.bce_with_logits(a, b, {reduction = r, weight = w,
                                        pos_weight = pw})
      end, {randn(3, 4),
            lg.rand({3, 4}, {dtype = lg.float64}):requires_grad_(true)})
    end
  end)

  it("kl_div with every reduction and log_target", function()
    for _, r in ipairs({"none", "mean", "sum", "batchmean"}) do
      check(function(q, p) return F.kl_div(q, p, {reduction = r}) end,
            {randn(3, 4),
             (lg.rand({3, 4}, {dtype = lg.float64}) + 0.1)
               :requires_grad_(true)})
      check(function(q, p)
        return F.kl_div(q, p, {reduction = r, log_target = true})
      end, {randn(3, 4), randn(3, 4)})
    end
  end)
end)

-- ---- behaviour ----

describe("loss behaviour", function()
  it("cross_entropy is stable for huge logits", function()
    local x = lg.tensor({{1000, 0, -1000}, {-5000, 5000, 0}},
                        {dtype = lg.float32, requires_grad = true})
    local l = F.cross_entropy(x, labels({1, 1}), {reduction = "none"})
    local v = flat(l)
    assert.is_true(math.abs(v[1]) < 1e-6)
    assert.is_true(math.abs(v[2] - 10000) < 1e-2)
    l:sum():backward()
    for _, g in ipairs(flat(x.grad)) do assert.is_true(g == g) end
  end)

  it("cross_entropy equals nll_loss of log_softmax", function()
    local x = lg.randn({5, 4}, {dtype = lg.float64})
    local y = labels({4, 1, 2, 2, 3})
    local a = F.cross_entropy(x, y):item()
    local b = F.nll_loss(F.log_softmax(x, 2), y):item()
    assert.is_true(math.abs(a - b) < 1e-12)
  end)

  it("cross_entropy gradient is softmax minus the one-hot target", function()
    local x = lg.randn({3, 4}, {dtype = lg.float64, requires_grad = true})
    local y = labels({2, 4, 1})
    F.cross_entropy(x, y, {reduction = "sum"}):backward()
    local want = F.softmax(x:detach(), 2) - F.one_hot(y, 4):double()
    local g, w = flat(x.grad), flat(want)
    for i = 1, #w do assert.is_true(math.abs(g[i] - w[i]) < 1e-12) end
  end)

  it("mean reductions are 0-d and none keeps the shape", function()
    local a, b = lg.randn(2, 3), lg.randn(2, 3)
    assert.same({}, F.mse_loss(a, b):shape())
    assert.same({2, 3}, F.mse_loss(a, b, {reduction = "none"}):shape())
    assert.same({2}, F.cross_entropy(a, labels({1, 3}),
                                     {reduction = "none"}):shape())
  end)

  it("a target of another dtype is converted", function()
    local a = lg.tensor({1.5, 2.5}, {dtype = lg.float32})
    local b = lg.tensor({1, 2}, {dtype = lg.float64})
    assert.is_true(math.abs(F.mse_loss(a, b):item() - 0.25) < 1e-7)
    assert.is_true(math.abs(F.l1_loss(a, labels({1, 2})):item() - 0.5) < 1e-7)
  end)

  it("binary_cross_entropy clamps its logs at -100", function()
    local p = lg.tensor({0, 1}, {dtype = lg.float64})
    local y = lg.tensor({1, 0}, {dtype = lg.float64})
    assert.equal(100, F.binary_cross_entropy(p, y):item())
  end)

  it("bce_with_logits is stable for large logits", function()
    local x = lg.tensor({200, -200}, {dtype = lg.float64})
    local y = lg.tensor({0, 1}, {dtype = lg.float64})
    local v = flat(F.bce_with_logits(x, y, {reduction = "none"}))
    assert.equal(200, v[1])
    assert.equal(200, v[2])
  end)

  it("kl_div is zero for equal distributions", function()
    local p = F.softmax(lg.randn({3, 5}, {dtype = lg.float64}), 2)
    assert.is_true(math.abs(F.kl_div(p:log(), p,
                                     {reduction = "batchmean"}):item())
                   < 1e-12)
  end)

  it("ignore_index rows get no gradient", function()
    local x = lg.randn({3, 4}, {dtype = lg.float64, requires_grad = true})
    F.cross_entropy(x, labels({1, -100, 2})):backward()
    local g = flat(x.grad)
    for i = 5, 8 do assert.equal(0, g[i]) end
  end)

  it("regression losses are differentiable twice (Hessian-vector)", function()
    local X = lg.randn({5, 3}, {dtype = lg.float64})
    local y = lg.randn({5}, {dtype = lg.float64})
    local v = lg.randn({3}, {dtype = lg.float64})
    -- mean over 5 residuals: H = 2 X^T X / 5; huber inside delta: X^T X / 5
    local XtXv = lg.matmul(X:t(), lg.matmul(X, v))
    for name, scale in pairs({mse_loss = 2 / 5, huber_loss = 1 / 5}) do
      local w = lg.randn({3}, {dtype = lg.float64, requires_grad = true})
      local opts = name == "huber_loss" and {delta = 1e6} or nil
      local loss = F[name](lg.matmul(X, w), y, opts)
      local g = lg.grad(loss, {w}, {create_graph = true})[1]
      local hv = lg.grad((g * v):sum(), {w})[1]
      local got, want = flat(hv), flat(XtXv)
      for i = 1, 3 do
        assert.is_true(math.abs(got[i] - scale * want[i]) < 1e-10, name)
      end
    end
  end)

  it("cross_entropy and nll_loss are differentiable twice", function()
    lg.manual_seed(4)
    local X = lg.randn({5, 3}, {dtype = lg.float64})
    local V = lg.randn({3, 4}, {dtype = lg.float64})
    local y = labels({1, 4, 2, 2, 3})
    local probs = F.softmax(lg.randn({5, 4}, {dtype = lg.float64}), 2)
    local cw = lg.tensor({0.5, 1, 2, 1.5}, {dtype = lg.float64})
    local rw = lg.randn({5}, {dtype = lg.float64})
    local losses = {
      function(W) return F.cross_entropy(lg.matmul(X, W), y) end,
      function(W)
        return F.cross_entropy(lg.matmul(X, W), y, {weight = cw,
          label_smoothing = 0.2, ignore_index = 2, reduction = "sum"})
      end,
      function(W)
        return (F.cross_entropy(lg.matmul(X, W), y, {reduction = "none",
          label_smoothing = 0.1}) * rw):sum()
      end,
      function(W)
        return F.cross_entropy(lg.matmul(X, W), probs, {weight = cw,
          label_smoothing = 0.3})
      end,
      function(W)
        return F.nll_loss(F.log_softmax(lg.matmul(X, W), 2), y,
                          {weight = cw})
      end,
    }
    local function grad_at(f, W)
      local Wr = W:detach():requires_grad_(true)
      return lg.grad(f(Wr), {Wr})[1]
    end
    for k, f in ipairs(losses) do
      local W = lg.randn({3, 4}, {dtype = lg.float64, requires_grad = true})
      local g = lg.grad(f(W), {W}, {create_graph = true})[1]
      local hv = flat(lg.grad((g * V):sum(), {W})[1])
      local h = 1e-5
      local gp = flat(grad_at(f, W:detach() + V * h))
      local gm = flat(grad_at(f, W:detach() - V * h))
      for i = 1, #hv do
        local num = (gp[i] - gm[i]) / (2 * h)
        assert.is_true(math.abs(hv[i] - num) < 1e-6 * (1 + math.abs(num)),
                       string.format("loss %d element %d: %g vs %g", k, i,
                                     hv[i], num))
      end
    end
  end)

  it("the probability target's gradient is differentiable too", function()
    local x = lg.randn({3, 4}, {dtype = lg.float64, requires_grad = true})
    local t = lg.rand({3, 4}, {dtype = lg.float64, requires_grad = true})
    local gt = lg.grad(F.cross_entropy(x, t), {t}, {create_graph = true})[1]
    -- dt = -log_softmax(x) / 3, so d(sum dt)/dx = -(1 - 4 softmax(x)) / 3
    local gx = flat(lg.grad(gt:sum(), {x})[1])
    local sm = flat(F.softmax(x:detach(), 2))
    for i = 1, 12 do
      assert.is_true(math.abs(gx[i] + (1 - 4 * sm[i]) / 3) < 1e-12)
    end
  end)

  it("double backward through binary_cross_entropy raises", function()
    local p = lg.tensor({0.3, 0.6}, {dtype = lg.float64, requires_grad = true})
    local loss = F.binary_cross_entropy(p, lg.tensor({0.0, 1.0},
                                                     {dtype = lg.float64}))
    local g = lg.grad(loss, {p}, {create_graph = true})[1]
    local ok, err = pcall(function() g:sum():backward() end)
    assert.is_false(ok)
    assert.matches("binary_cross_entropy_backward: differentiating a gradient of " ..
                   "this op again %(double backward%) is not supported", err)
  end)

  it("smooth_l1_loss and huber_loss take a positional parameter", function()
    local a = lg.tensor({0, 3}, {dtype = lg.float64})
    local b = lg.tensor({0.5, 0}, {dtype = lg.float64})
    -- beta 2: 0.5^2 * 0.5 / 2 and 3 - 1
    assert.is_true(math.abs(F.smooth_l1_loss(a, b, 2, {reduction = "sum"})
                            :item() - (0.0625 + 2)) < 1e-12)
    -- delta 2: 0.5 * 0.25 and 2 * (3 - 1)
    assert.is_true(math.abs(F.huber_loss(a, b, 2, {reduction = "sum"})
                            :item() - (0.125 + 4)) < 1e-12)
  end)
end)

-- ---- errors ----

describe("loss errors", function()
  it("shape mismatches name both shapes", function()
    assert.has_error(function() F.mse_loss(lg.randn(4, 1), lg.randn(4)) end,
      "mse_loss: input [4,1] and target [4] have different shapes")
    assert.has_error(function()
      F.cross_entropy(lg.randn(4, 3), labels({1, 2, 3}))
    end, "cross_entropy: input [4,3] and target [3] do not match (class " ..
         "labels need the input's shape without its class dim)")
    assert.has_error(function()
      F.cross_entropy(lg.randn(4, 3), lg.randn(4, 2))
    end, "cross_entropy: input [4,3] and target [4,2] do not match " ..
         "(probabilities need the input's shape; labels must be int64)")
    assert.has_error(function()
      F.bce_with_logits(lg.randn(2, 3), lg.rand(2, 3), {weight = lg.rand(2)})
    end, "bce_with_logits: weight [2] does not broadcast to the input [2,3]")
  end)

  it("labels out of range", function()
    assert.has_error(function()
      F.cross_entropy(lg.randn(2, 3), labels({0, 1}))
    end, "cross_entropy: label 0 out of range 1..3")
    assert.has_error(function()
      F.nll_loss(lg.randn(2, 3), labels({1, 4}))
    end, "nll_loss: label 4 out of range 1..3")
  end)

  it("bad options", function()
    local a, b = lg.randn(3), lg.randn(3)
    assert.has_error(function() F.mse_loss(a, b, {reduction = "avg"}) end,
      "mse_loss: unknown reduction 'avg' (expected \"none\", \"mean\" or " ..
      "\"sum\")")
    assert.has_error(function() F.l1_loss(a, b, {reduce = "sum"}) end,
      "l1_loss: unknown option 'reduce' (valid options: reduction)")
    assert.has_error(function()
      F.cross_entropy(lg.randn(2, 3), labels({1, 2}), {label_smoothing = 2})
    end, "cross_entropy: label_smoothing must be between 0 and 1 (got 2)")
    assert.has_error(function()
      F.cross_entropy(lg.randn(2, 3), labels({1, 2}), {weight = lg.ones(2)})
    end, "cross_entropy: weight must have shape [3] (one per class), got [2]")
    assert.has_error(function()
      F.cross_entropy(lg.randn(2, 3), labels({1, 2}), {weight = 2})
    end, "cross_entropy: option 'weight' must be a tensor (got number)")
    assert.has_error(function() F.huber_loss(a, b, {delta = -1}) end,
      "huber_loss: delta must be positive (got -1)")
    assert.has_error(function() F.kl_div(a, b, {reduction = "avg"}) end,
      "kl_div: unknown reduction 'avg' (expected \"none\", \"mean\", " ..
      "\"sum\" or \"batchmean\")")
    assert.has_error(function()
      F.mse_loss(a, b, {reduction = "batchmean"})
    end, "mse_loss: unknown reduction 'batchmean' (expected \"none\", " ..
         "\"mean\" or \"sum\")")
  end)

  it("binary_cross_entropy checks its input range", function()
    assert.has_error(function()
      F.binary_cross_entropy(lg.tensor({0.5, 1.5}), lg.tensor({0.0, 1.0}))
    end, "binary_cross_entropy: every input must be between 0 and 1 " ..
         "(found 1.5)")
  end)
end)
