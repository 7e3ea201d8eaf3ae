-- Regularizers and gradient clipping (lg.reg), against hand computations
-- in plain Lua.
--
-- Convention: R(theta) = l1 * sum |theta| + l2 / 2 * sum theta^2, so
-- L1(lambda) = lambda * sum |theta|, L2(lambda) = lambda / 2 * sum theta^2
-- (gradient lambda * theta, PyTorch's weight_decay = lambda), and
-- ElasticNet(l1, l2) is their sum.  sign(0) = 0 for L1's subgradient.
local lg = require "lgrad"

local f64 = lg.float64

local function flat(t)
  local out = {}
  local function walk(v)
    if type(v) == "table" then
      for _, x in ipairs(v) do walk(x) end
    else
      out[#out + 1] = v
    end
  end
  walk(t:totable())
  return out
end

local function sign(x)
  if x > 0 then return 1 elseif x < 0 then return -1 end
  return 0
end

local function near(got, want, tol, what)
  tol = tol or 1e-12
  if math.abs(got - want) > tol * (1 + math.abs(want)) or got ~= got then
    error(string.format("%s: got %.17g, want %.17g", what or "value", got,
                        want), 2)
  end
end

local function near_list(got, want, tol, what)
  assert.are.equal(#want, #got)
  for i = 1, #want do near(got[i], want[i], tol, (what or "") .. "[" .. i .. "]") end
end

local function param(data, dtype)
  return lg.tensor(data, {dtype = dtype or f64, requires_grad = true})
end

local function sample_params(dtype)
  return {param({{0.5, -1.5, 0.0}, {2.0, -0.25, 3.0}}, dtype),
          param({-0.75, 1.25}, dtype)}
end

describe("lg.reg penalties", function()
  it("L1 is lambda * sum |theta|", function()
    local ps = sample_params()
    local pen = lg.reg.L1(0.1):penalty(ps)
    assert.are.equal(0, pen:dim())
    local want = 0
    for _, p in ipairs(ps) do
      for _, x in ipairs(flat(p)) do want = want + math.abs(x) end
    end
    near(pen:item(), 0.1 * want, 1e-12, "L1")
  end)

  it("L2 is lambda / 2 * sum theta^2", function()
    local ps = sample_params()
    local want = 0
    for _, p in ipairs(ps) do
      for _, x in ipairs(flat(p)) do want = want + x * x end
    end
    near(lg.reg.L2(0.3):penalty(ps):item(), 0.3 / 2 * want, 1e-12, "L2")
  end)

  it("ElasticNet is the sum of both", function()
    local ps = sample_params()
    local a = lg.reg.L1(0.2):penalty(ps):item()
    local b = lg.reg.L2(0.4):penalty(ps):item()
    near(lg.reg.ElasticNet(0.2, 0.4):penalty(ps):item(), a + b, 1e-12, "EN")
  end)

  it("is 0 for no parameters and a single tensor works as a list", function()
    assert.are.equal(0, lg.reg.L1(1):penalty({}):item())
    local p = param({-2, 3})
    assert.are.equal(5, lg.reg.L1(1):penalty(p):item())
  end)

  it("takes a module's parameters()", function()
    local ps = sample_params()
    local module = {parameters = function() return ps end}
    near(lg.reg.L1(0.1):penalty(module):item(),
         lg.reg.L1(0.1):penalty(ps):item(), 0, "module")
  end)

  it("is differentiable: backward of the penalty added to a loss",
     function()
    local w = param({1.0, -2.0, 0.5})
    local x = lg.tensor({0.2, 0.4, -1.0}, {dtype = f64})
    local loss = (w * x):sum() + lg.reg.L2(0.5):penalty({w})
    loss:backward()
    -- d/dw = x + 0.5 * w
    near_list(flat(w.grad), {0.2 + 0.5, 0.4 - 1.0, -1.0 + 0.25}, 1e-12, "grad")
  end)
end)

describe("lg.reg apply", function()
  for _, dt in ipairs({lg.float64, lg.float32}) do
    local tol = dt == lg.float32 and 1e-6 or 1e-12
    for _, make in ipairs({
      {"L1", function() return lg.reg.L1(0.1) end},
      {"L2", function() return lg.reg.L2(0.3) end},
      {"ElasticNet", function() return lg.reg.ElasticNet(0.1, 0.3) end},
    }) do
      it(make[1] .. "'s gradient via backward equals what apply adds (" ..
         tostring(dt) .. ")", function()
        -- no zeros: |x| is not differentiable there
        local p = param({{0.5, -1.5, 0.7}, {2.0, -0.25, 3.0}}, dt)
        make[2]():penalty({p}):backward()
        local by_backward = flat(p.grad)
        p.grad = nil
        make[2]():apply({p})
        near_list(flat(p.grad), by_backward, tol, make[1])
      end)
    end
  end

  it("adds to an existing gradient: l1 * sign + l2 * theta", function()
    local p = param({0.5, -1.5, 0.0, 2.0})
    p.grad = lg.tensor({1, 1, 1, 1}, {dtype = f64})
    lg.reg.ElasticNet(0.1, 0.2):apply({p})
    local want = {}
    for i, x in ipairs({0.5, -1.5, 0.0, 2.0}) do
      want[i] = 1 + 0.1 * sign(x) + 0.2 * x
    end
    near_list(flat(p.grad), want, 1e-15, "apply")
    -- sign(0) = 0: the third element only got l2 * 0
    assert.are.equal(1, flat(p.grad)[3])
  end)

  it("works on a non-contiguous parameter", function()
    local base = lg.tensor({{1, -2, 3}, {-4, 5, -6}}, {dtype = f64})
    local p = base:t():detach():requires_grad_(true)
    assert.is_false(p:is_contiguous())
    p.grad = lg.zeros({3, 2}, {dtype = f64})
    lg.reg.L1(0.5):apply({p})
    assert.are.same({{0.5, -0.5}, {-0.5, 0.5}, {0.5, -0.5}},
                    p.grad:totable())
  end)

  it("skips tensors that do not require grad", function()
    local t = lg.tensor({1, 2}, {dtype = f64})
    lg.reg.L2(1):apply({t})
    assert.is_nil(t.grad)
  end)
end)

describe("lg.reg prox", function()
  it("soft-thresholds L1 to exact zeros", function()
    local p = param({0.5, -0.05, 0.08, -1.0, 0.0})
    lg.reg.L1(0.1):prox({p}, 1.0)
    near_list(flat(p), {0.4, 0, 0, -0.9, 0}, 1e-15, "prox")
    assert.are.equal(0, flat(p)[2])
    assert.are.equal(0, flat(p)[3])
  end)

  it("shrinks for L2 and does both for ElasticNet", function()
    local p = param({1.0, -2.0})
    lg.reg.L2(0.5):prox({p}, 0.2) -- divide by 1 + 0.1
    near_list(flat(p), {1 / 1.1, -2 / 1.1}, 1e-15, "L2 prox")
    local q = param({1.0, -0.01})
    lg.reg.ElasticNet(0.1, 0.5):prox({q}, 0.2)
    near_list(flat(q), {(1 - 0.02) / 1.1, 0}, 1e-15, "EN prox")
  end)
end)

describe("lg.reg.MaxNorm", function()
  it("projects each row onto norm <= c and leaves short rows alone",
     function()
    local w = param({{3, 4}, {0.3, 0.4}, {0, -10}})
    lg.reg.MaxNorm(2):apply({w})
    local rows = w:totable()
    near(math.sqrt(rows[1][1] ^ 2 + rows[1][2] ^ 2), 2, 1e-6, "row 1")
    near_list(rows[1], {3 * 2 / (5 + 1e-7), 4 * 2 / (5 + 1e-7)}, 1e-15)
    assert.are.same({0.3, 0.4}, rows[2])
    near_list(rows[3], {0, -2 * 10 / (10 + 1e-7)}, 1e-15)
  end)

  it("takes a whole 1-d tensor, and columns with dim = 2", function()
    local b = param({6, 8})
    local w = param({{3, 0.1}, {4, 0.1}})
    local m = lg.reg.MaxNorm(1, 2)
    assert.are.equal(2, m.dim)
    m:apply({b, w})
    near_list(flat(b), {0.6, 0.8}, 1e-6, "1-d")
    local cols = w:totable()
    near(cols[1][1], 0.6, 1e-6, "col 1")
    near(cols[2][1], 0.8, 1e-6, "col 1")
    assert.are.same({0.1, 0.1}, {cols[1][2], cols[2][2]})
  end)

  it("has no penalty", function()
    assert.has_error(function() lg.reg.MaxNorm(1):penalty({}) end,
      "reg.MaxNorm:penalty: MaxNorm is a constraint without a penalty; " ..
      "call apply after the optimizer's step")
  end)
end)

describe("lg.reg.clip_grad_norm", function()
  local function with_grads(dtype)
    local a = param({{1, 2}, {3, 4}}, dtype)
    local b = param({-5, 0.5}, dtype)
    local c = param({7}, dtype) -- no grad: skipped
    a.grad = lg.tensor({{0.3, -1.2}, {2.5, 0.1}}, {dtype = dtype or f64})
    b.grad = lg.tensor({-4.0, 0.7}, {dtype = dtype or f64})
    return {a, b, c}
  end

  local function lua_norm(ps, p)
    local acc = 0
    for _, t in ipairs(ps) do
      if t.grad then
        for _, g in ipairs(flat(t.grad)) do
          if p == math.huge then acc = math.max(acc, math.abs(g))
          else acc = acc + math.abs(g) ^ p end
        end
      end
    end
    if p == math.huge then return acc end
    return acc ^ (1 / p)
  end

  for _, p in ipairs({2, 1, 3, math.huge}) do
    it("returns the total " .. tostring(p) .. "-norm computed in plain Lua",
       function()
      local ps = with_grads()
      local want = lua_norm(ps, p)
      local total = lg.reg.clip_grad_norm(ps, 1.0, p)
      near(total, want, 1e-12, "total")
      -- the gradients now have norm max_norm (within the 1e-6 guard)
      near(lua_norm(ps, p), 1.0 * want / (want + 1e-6), 1e-12, "clipped")
    end)
  end

  it("leaves gradients alone under max_norm", function()
    local ps = with_grads()
    local before = flat(ps[1].grad)
    local total = lg.reg.clip_grad_norm(ps, 100)
    assert.are.same(before, flat(ps[1].grad))
    near(total, lua_norm(ps, 2), 1e-12)
  end)

  it("scales every gradient by max_norm / (total + 1e-6)", function()
    local ps = with_grads()
    local g = flat(ps[2].grad)
    local total = lg.reg.clip_grad_norm(ps, 2.0)
    local coef = 2.0 / (total + 1e-6)
    near_list(flat(ps[2].grad), {g[1] * coef, g[2] * coef}, 1e-15)
  end)

  it("accepts \"inf\" and float32 gradients", function()
    local ps = with_grads(lg.float32)
    near(lg.reg.clip_grad_norm(ps, 10, "inf"), 4.0, 1e-7, "inf")
  end)

  it("raises on a non-finite norm when asked to", function()
    local p = param({1, 2})
    p.grad = lg.tensor({0 / 0, 1}, {dtype = f64})
    assert.has_error(function()
      lg.reg.clip_grad_norm({p}, 1, 2, {error_if_nonfinite = true})
    end, "reg.clip_grad_norm: the total norm of order 2 " ..
      "is nan; set error_if_nonfinite = false to clip anyway")
  end)
end)

describe("lg.reg.clip_grad_value", function()
  it("clamps every gradient element to [-v, v]", function()
    local p = param({1, 2, 3, 4})
    p.grad = lg.tensor({-3, 0.5, 2, -0.1}, {dtype = f64})
    lg.reg.clip_grad_value({p}, 1)
    assert.are.same({-1, 0.5, 1, -0.1}, flat(p.grad))
  end)
end)

describe("lg.reg errors", function()
  it("rejects bad coefficients", function()
    assert.has_error(function() lg.reg.L1(-1) end,
      "reg.L1: lambda must be a finite number >= 0, got -1.0")
    assert.has_error(function() lg.reg.L2("x") end)
    assert.has_error(function() lg.reg.ElasticNet(0.1) end)
    assert.has_error(function() lg.reg.MaxNorm(1, 0) end,
      "reg.MaxNorm: dim must be 1..8 or negative, got 0")
  end)

  it("rejects params that are not tensors", function()
    assert.has_error(function() lg.reg.L1(1):penalty({1, 2}) end,
      "reg.L1:penalty: params[1] is number, not a tensor")
    assert.has_error(function() lg.reg.L1(1):apply(3) end,
      "reg.L1:apply: params must be a tensor, a list of tensors or a " ..
      "module, got number")
  end)

  it("rejects integer parameters", function()
    local t = lg.tensor({1, 2}, {dtype = lg.int64})
    assert.has_error(function() lg.reg.L1(1):penalty({t}) end,
      "reg.L1:penalty: the dtype of parameter 1 is int64, not " ..
      "floating point")
    assert.has_error(function() lg.reg.MaxNorm(1):apply({t}) end,
      "reg.MaxNorm:apply: the dtype of parameter 1 is int64, not " ..
      "floating point")
  end)

  it("rejects a bad p or bound in clipping", function()
    local p = param({1})
    p.grad = lg.tensor({1}, {dtype = f64})
    assert.has_error(function() lg.reg.clip_grad_norm({p}, 1, 0) end,
      "reg.clip_grad_norm: p must be > 0 (or math.huge), " ..
      "got 0")
    assert.has_error(function() lg.reg.clip_grad_norm({p}, 1, "two") end)
    assert.has_error(function() lg.reg.clip_grad_value({p}, -1) end,
      "reg.clip_grad_value: the bound must be >= 0, got -1")
  end)

  it("describes itself", function()
    assert.are.equal("lgrad.reg.L1(0.5)", tostring(lg.reg.L1(0.5)))
    assert.are.equal(0.5, lg.reg.L1(0.5).lambda)
    assert.are.equal(0.25, lg.reg.ElasticNet(0.5, 0.25).l2)
    assert.are.equal("MaxNorm", lg.reg.MaxNorm(3).kind)
  end)
end)
