-- lg.privacy: per-sample gradients against single-sample backward passes
-- (float64), DP-SGD against plain SGD and against clipping by hand, the
-- Poisson loader, the RDP accountant against spec/fixtures/privacy.lua
-- (spec/fixtures/gen_privacy.py), and bad input named before any step.
local lg = require "lgrad"
local P = lg.privacy
local nn = lg.nn

local fixture = dofile("spec/fixtures/privacy.lua")

local helpers = require "helpers"
local err_of, has = helpers.err_of, helpers.has

local function maxdiff(a, b)
  return (a - b):abs():max():item()
end

local prev_dtype
local function f64()
  prev_dtype = lg.get_default_dtype()
  lg.set_default_dtype(lg.float64)
end
local function restore() lg.set_default_dtype(prev_dtype) end

-- per_sample_grads(model, loss_fn, x, y) against B backward passes of
-- loss_fn(model(x_i), y_i); returns the largest difference
local function check_per_sample(model, loss_fn, x, y, opts)
  local gs = P.per_sample_grads(model, loss_fn, x, y, opts)
  local params = model:parameters()
  assert.are.equal(#params, #gs)
  local worst = 0
  for i = 1, x:size(1) do
    model:zero_grad()
    local xi, yi = x:narrow(1, i, 1), y:narrow(1, i, 1)
    loss_fn(model(xi), yi):backward()
    for k, p in ipairs(params) do
      local shape = p:shape()
      table.insert(shape, 1, x:size(1))
      assert.are.same(shape, gs[k]:shape())
      local g = p.grad or lg.zeros_like(p)
      worst = math.max(worst, maxdiff(g, gs[k]:select(1, i)))
    end
  end
  model:zero_grad()
  return worst, gs
end

local ce = lg.F.cross_entropy
local function ce_sum(o, y) return ce(o, y, { reduction = "sum" }) end
local function mse_rows(o, y) return lg.F.mse_loss(o, y) end

describe("per_sample_grads", function()
  before_each(function()
    f64()
    lg.manual_seed(11)
  end)
  after_each(restore)

  it("Linear and activations, mean and sum losses", function()
    local m = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 4))
    local x, y = lg.randn(6, 5), lg.randint(1, 4, { 6 })
    assert.is_true(check_per_sample(m, ce, x, y) < 1e-12)
    assert.is_true(check_per_sample(m, ce_sum, x, y) < 1e-12)
  end)

  it("Linear over a sequence (B, T, in) and a mean over all elements", function()
    local m = nn.Sequential(nn.Linear(3, 4), nn.GELU(), nn.Linear(4, 2,
      { bias = false }))
    local x, y = lg.randn(5, 6, 3), lg.randn(5, 6, 2)
    assert.is_true(check_per_sample(m, mse_rows, x, y) < 1e-12)
  end)

  it("Conv2d with padding, stride, dilation, groups and no bias", function()
    local x, y = lg.randn(4, 4, 7, 7), lg.randint(1, 3, { 4 })
    -- the second conv sees 4x4: (4 - 2*1 - 1) + 1 = 2 rows, 4 - 2 = 2 cols
    local m = nn.Sequential(
      nn.Conv2d(4, 6, 3, { padding = 1, stride = 2, groups = 2 }), nn.ReLU(),
      nn.Conv2d(6, 3, { 2, 3 }, { dilation = { 2, 1 }, bias = false }),
      nn.Flatten(), nn.Linear(3 * 2 * 2, 3))
    assert.is_true(check_per_sample(m, ce, x, y) < 1e-12)
  end)

  it("Embedding with padding_idx and LayerNorm over two dims", function()
    local Model = nn.Module:extend("EmbLN")
    function Model:init()
      self.emb = nn.Embedding(9, 4, { padding_idx = 2 })
      self.ln = nn.LayerNorm({ 3, 4 })
      self.out = nn.Linear(12, 3)
    end
    function Model:forward(idx)
      local h = self.ln(self.emb(idx))          -- (B, 3, 4)
      return self.out(h:reshape(idx:size(1), 12))
    end
    local m = Model()
    -- LayerNorm's affine parameters start at 1 and 0: move them
    lg.no_grad(function()
      m.ln.weight:copy_(lg.randn(3, 4))
      m.ln.bias:copy_(lg.randn(3, 4))
    end)
    local idx = lg.randint(1, 9, { 5, 3 })
    idx[1] = lg.tensor({ 2, 2, 5 }, { dtype = lg.int64 })   -- padding rows
    local y = lg.randint(1, 3, { 5 })
    local worst, gs = check_per_sample(m, ce, idx, y)
    assert.is_true(worst < 1e-12)
    -- the padding row never gets a gradient
    assert.are.equal(0, gs[1]:select(2, 2):abs():max():item())
  end)

  it("a layer called twice sums both calls per sample", function()
    local Twice = nn.Module:extend("Twice")
    function Twice:init() self.fc = nn.Linear(4, 4) end
    function Twice:forward(x) return self.fc(self.fc(x):tanh()) end
    local m = Twice()
    local x, y = lg.randn(3, 4), lg.randint(1, 4, { 3 })
    assert.is_true(check_per_sample(m, ce, x, y) < 1e-12)
  end)

  it("more calls than lg.grad takes at once, .grad left alone", function()
    local Deep = nn.Module:extend("Deep")
    function Deep:init() self.fc = nn.Linear(3, 3) end
    function Deep:forward(x)
      for _ = 1, 70 do x = self.fc(x):tanh() end
      return x
    end
    local m = Deep()
    lg.no_grad(function() m.fc.weight:mul_(0.5) end)
    local x, y = lg.randn(3, 3), lg.randint(1, 3, { 3 })
    m.fc.weight.grad = lg.ones(3, 3)
    local gs = P.per_sample_grads(m, ce, x, y)
    assert.are.equal(9, m.fc.weight.grad:sum():item())
    assert.is_nil(m.fc.bias.grad)
    -- one pass of sum loss gives the per-sample sum
    m:zero_grad()
    ce_sum(m(x), y):backward()
    assert.is_true(maxdiff(gs[1]:sum(1), m.fc.weight.grad) < 1e-12)
    assert.is_true(check_per_sample(m, ce, x, y) < 1e-12)
  end)

  it("frozen parameters give false, unused ones zeros", function()
    local Model = nn.Module:extend("Partly")
    function Model:init()
      self.a = nn.Linear(3, 3)
      self.unused = nn.Linear(3, 3)
    end
    function Model:forward(x) return self.a(x) end
    local m = Model()
    m.a.bias:requires_grad_(false)
    local gs = P.per_sample_grads(m, ce, lg.randn(2, 3),
      lg.randint(1, 3, { 2 }))
    assert.are.equal(false, gs[2])
    assert.are.equal(0, gs[3]:abs():sum():item())
    assert.are.same({ 2, 3, 3 }, gs[3]:shape())
  end)

  it("a layer without a rule is an error naming it", function()
    local m = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    local e = err_of(P.per_sample_grads, m, ce, lg.randn(2, 3),
      lg.randint(1, 4, { 2 }))
    has(e, "per_sample_grads: no per-sample gradient rule for BatchNorm1d "
      .. "'1' (parameters weight, bias)")
    local Scaled = nn.Module:extend("Scaled")
    function Scaled:init()
      self.fc = nn.Linear(2, 2)
      self.scale = nn.Parameter(lg.ones(2))
    end
    function Scaled:forward(x) return self.fc(x) * self.scale end
    e = err_of(P.per_sample_grads, Scaled(), ce, lg.randn(2, 2),
      lg.randint(1, 2, { 2 }))
    has(e, "no per-sample gradient rule for Scaled '(the model)' "
      .. "(parameters scale)")
  end)

  it("a loss that is neither a sum nor a mean is refused", function()
    local m = nn.Linear(3, 2)
    local function odd(o, y) return ce(o, y, { reduction = "sum" }) ^ 2 end
    has(err_of(P.per_sample_grads, m, odd, lg.randn(4, 3),
      lg.randint(1, 2, { 4 })), "loss_fn must return the sum or the mean")
    -- told explicitly, no measurement is made
    local gs = P.per_sample_grads(m, ce_sum, lg.randn(4, 3),
      lg.randint(1, 2, { 4 }), { loss_reduction = "sum" })
    assert.are.same({ 4, 2, 3 }, gs[1]:shape())
  end)
end)

-- a small classification set and a model factory with a fixed init
local function problem(n)
  lg.manual_seed(21)
  local x, y = lg.randn(n, 5), lg.randint(1, 3, { n })
  return lg.data.TensorDataset(x, y)
end
local function model_of(seed)
  lg.manual_seed(seed)
  return nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 3))
end

describe("DP-SGD", function()
  before_each(f64)
  after_each(restore)

  it("noise 0 and a huge clip norm equal plain SGD on the mean loss",
    function()
      local ds = problem(12)
      local m1 = model_of(5)
      local o1 = lg.optim.SGD(m1:parameters(), { lr = 0.2, momentum = 0.9 })
      for _ = 1, 2 do
        for xb, yb in lg.data.DataLoader(ds, { batch_size = 4 }):iter() do
          o1:zero_grad()
          ce(m1(xb), yb):backward()
          o1:step()
        end
      end
      local m2 = model_of(5)
      local engine = P.PrivacyEngine()
      local model, opt, loader = engine:make_private { model = m2,
        optimizer = lg.optim.SGD(m2:parameters(), { lr = 0.2,
          momentum = 0.9 }),
        data_loader = lg.data.DataLoader(ds, { batch_size = 4 }),
        noise_multiplier = 0, max_grad_norm = 1e9, poisson_sampling = false }
      assert.are.equal(4, opt.expected_batch_size)
      for _ = 1, 2 do
        for xb, yb in loader:iter() do
          opt:zero_grad()
          ce(model(xb), yb):backward()
          opt:step()
        end
      end
      local p1, p2 = m1:parameters(), m2:parameters()
      for i = 1, #p1 do assert.is_true(maxdiff(p1[i], p2[i]) < 1e-12) end
      assert.are.equal(6, #opt.accountant)
      -- no noise: no privacy
      assert.are.equal(math.huge, engine:get_epsilon(1e-5))
    end)

  it("loss_reduction = \"sum\": the loop's summed loss, no division",
    function()
      local ds = problem(12)
      local m1, m2 = model_of(9), model_of(9)
      local o1 = lg.optim.SGD(m1:parameters(), { lr = 0.01 })
      for xb, yb in lg.data.DataLoader(ds, { batch_size = 6 }):iter() do
        o1:zero_grad()
        ce_sum(m1(xb), yb):backward()
        o1:step()
      end
      local model, opt, loader = P.PrivacyEngine():make_private {
        model = m2, optimizer = lg.optim.SGD(m2:parameters(), { lr = 0.01 }),
        data_loader = lg.data.DataLoader(ds, { batch_size = 6 }),
        noise_multiplier = 0, max_grad_norm = 1e9, poisson_sampling = false,
        loss_reduction = "sum" }
      for xb, yb in loader:iter() do
        opt:zero_grad()
        ce_sum(model(xb), yb):backward()
        opt:step()
      end
      local p1, p2 = m1:parameters(), m2:parameters()
      for i = 1, #p1 do assert.is_true(maxdiff(p1[i], p2[i]) < 1e-12) end
    end)

  -- one DP step of lr 1 and noise 0 against clipping by hand
  local function clip_case(m, x, y, C)
    local params = m:parameters()
    local expect = {}
    for k, p in ipairs(params) do expect[k] = lg.zeros_like(p) end
    local clipped, B = 0, x:size(1)
    for i = 1, B do
      m:zero_grad()
      ce(m(x:narrow(1, i, 1)), y:narrow(1, i, 1)):backward()
      local sq = 0
      for _, p in ipairs(params) do sq = sq + (p.grad * p.grad):sum():item() end
      local f = math.min(1, C / (math.sqrt(sq) + 1e-6))
      if f < 1 then clipped = clipped + 1 end
      for k, p in ipairs(params) do expect[k] = expect[k] + p.grad * f end
    end
    m:zero_grad()
    local ds = lg.data.TensorDataset(x, y)
    local model, opt = P.PrivacyEngine():make_private { model = m,
      optimizer = lg.optim.SGD(params, { lr = 1 }),
      data_loader = lg.data.DataLoader(ds, { batch_size = B }),
      noise_multiplier = 0, max_grad_norm = C, poisson_sampling = false }
    local before = {}
    for k, p in ipairs(params) do before[k] = p:clone() end
    opt:zero_grad()
    ce(model(x), y):backward()
    opt:step()
    for k, p in ipairs(params) do
      -- lr 1: the step is the privatized gradient, the clipped sum / B
      assert.is_true(maxdiff(before[k] - p, expect[k] / B) < 1e-12)
    end
    assert.are.equal(clipped / B, opt.last_clip_fraction)
    return clipped
  end

  it("clips each sample's whole gradient to max_grad_norm", function()
    -- an MLP on (B, in): the norms without per-sample gradients
    local ds = problem(8)
    assert.is_true(clip_case(model_of(6), ds.tensors[1], ds.tensors[2],
      0.05) > 4)
    -- convolution, LayerNorm, a Linear over positions: per-sample tensors
    lg.manual_seed(8)
    local m = nn.Sequential(nn.Conv2d(2, 3, 3, { padding = 1 }), nn.Tanh(),
      nn.LayerNorm({ 4, 4 }), nn.Linear(4, 2), nn.Flatten(),
      nn.Linear(3 * 4 * 2, 3))
    local x, y = lg.randn(6, 2, 4, 4), lg.randint(1, 3, { 6 })
    assert.is_true(clip_case(m, x, y, 0.1) > 2)
  end)

  it("adds N(0, (noise * max_grad_norm)^2) / expected batch size, seeded",
    function()
      local function noisy_grad(seed)
        local big = nn.Linear(100, 100)
        local ds = lg.data.TensorDataset(lg.randn(10, 100),
          lg.randint(1, 100, { 10 }))
        local _, opt = P.PrivacyEngine():make_private { model = big,
          optimizer = lg.optim.SGD(big:parameters(), { lr = 0 }),
          data_loader = lg.data.DataLoader(ds, { batch_size = 5 }),
          noise_multiplier = 2, max_grad_norm = 3, seed = seed,
          poisson_sampling = false }
        opt:zero_grad()
        opt:step()        -- no batch: the gradient is the noise alone
        return big.weight.grad
      end
      local g = noisy_grad(7)
      assert.are.equal(0, maxdiff(g, noisy_grad(7)))
      assert.is_true(maxdiff(g, noisy_grad(8)) > 0)
      local std = g:std():item()
      -- std 2 * 3 / 5 = 1.2 over 10^4 draws: within 3%
      assert.is_true(math.abs(std - 1.2) < 0.036, tostring(std))
      assert.is_true(math.abs(g:mean():item()) < 0.05)
    end)

  it("Poisson sampling: #loader steps, batches of varying size", function()
    local ds = problem(400)
    local loader = lg.data.DataLoader(ds, { sample_rate = 0.05, seed = 3 })
    assert.are.equal(20, #loader)
    local sizes, total = {}, 0
    for _ = 1, 5 do
      local n = 0
      for xb, yb in loader:iter() do
        n = n + 1
        sizes[xb:size(1)] = true
        assert.are.equal(xb:size(1), yb:size(1))
        total = total + xb:size(1)
      end
      assert.are.equal(20, n)
    end
    local distinct = 0
    for _ in pairs(sizes) do distinct = distinct + 1 end
    assert.is_true(distinct > 3)
    -- 100 steps of 400 * 0.05 = 20 expected: 2000 +- 3 sd (sqrt(1900))
    assert.is_true(math.abs(total - 2000) < 135, tostring(total))
    -- the same seed gives the same batches
    local a = lg.data.DataLoader(ds, { sample_rate = 0.05, seed = 9 })
    local b = lg.data.DataLoader(ds, { sample_rate = 0.05, seed = 9 })
    local ia, ib = a:iter(), b:iter()
    for _ = 1, 20 do
      local xa, xb = ia(), ib()
      assert.are.equal(0, maxdiff(xa, xb))
    end
  end)

  it("make_private returns a Poisson loader of rate 1 / #data_loader",
    function()
      local ds = problem(64)
      local m = model_of(1)
      local _, opt, loader = P.PrivacyEngine():make_private { model = m,
        optimizer = lg.optim.SGD(m:parameters(), { lr = 0.1 }),
        data_loader = lg.data.DataLoader(ds, { batch_size = 16 }),
        noise_multiplier = 1, max_grad_norm = 1 }
      assert.are.equal(0.25, loader.sample_rate)
      assert.are.equal(4, #loader)
      assert.are.equal(0.25, opt.sample_rate)
      assert.are.equal(16, opt.expected_batch_size)
    end)

  it("fit takes the private optimizer and reports epsilon per epoch",
    function()
      local ds = problem(48)
      local m = model_of(2)
      local engine = P.PrivacyEngine()
      local model, opt, loader = engine:make_private_with_epsilon {
        model = m, optimizer = lg.optim.SGD(m:parameters(), { lr = 0.1 }),
        data_loader = lg.data.DataLoader(ds, { batch_size = 12 }),
        target_epsilon = 4, target_delta = 1e-5, epochs = 3,
        max_grad_norm = 1, seed = 4 }
      local h = lg.train.fit { model = model, loss = ce, optimizer = opt,
        data = loader, epochs = 3, progress = false }
      assert.are.equal(3, #h.epsilon)
      assert.is_true(h.epsilon[1] < h.epsilon[2] and h.epsilon[2]
        < h.epsilon[3])
      assert.are.equal(engine:get_epsilon(1e-5), h.epsilon[3])
      -- the noise was chosen to spend just under 4 in 3 epochs
      assert.is_true(h.epsilon[3] <= 4 and h.epsilon[3] > 3.99,
        tostring(h.epsilon[3]))
      assert.are.equal(P.noise_for_epsilon { target_epsilon = 4,
        delta = 1e-5, sample_rate = 0.25, epochs = 3 }, opt.noise_multiplier)
    end)
end)

describe("bad input is named before any step", function()
  before_each(f64)
  after_each(restore)

  local function args(over)
    local ds = problem(16)
    local m = model_of(3)
    local o = { model = m, optimizer = lg.optim.SGD(m:parameters(),
      { lr = 0.1 }), data_loader = lg.data.DataLoader(ds, { batch_size = 4 }),
      noise_multiplier = 1, max_grad_norm = 1 }
    for k, v in pairs(over) do o[k] = v end
    return o
  end

  it("max_grad_norm <= 0", function()
    for _, c in ipairs { 0, -1 } do
      has(err_of(P.PrivacyEngine().make_private, P.PrivacyEngine(),
        args { max_grad_norm = c }),
        "make_private: max_grad_norm must be a finite number > 0 (got "
          .. tostring(c) .. ")")
    end
  end)

  it("sample rates outside (0, 1]", function()
    local acct = P.RDPAccountant()
    for _, q in ipairs { 0, -0.1, 1.5, 0 / 0 } do
      has(err_of(acct.step, acct, { noise_multiplier = 1, sample_rate = q }),
        "RDPAccountant:step: sample_rate must be in (0, 1]")
      has(err_of(P.noise_for_epsilon, { target_epsilon = 1, delta = 1e-5,
        sample_rate = q, steps = 10 }),
        "noise_for_epsilon: sample_rate must be in (0, 1]")
      has(err_of(lg.data.DataLoader, problem(4), { sample_rate = q }),
        "DataLoader: sample_rate must be in (0, 1]")
    end
    assert.are.equal(0, #acct)
    -- an empty loader has no sample rate
    has(err_of(P.PrivacyEngine().make_private, P.PrivacyEngine(),
      args { data_loader = lg.data.DataLoader(lg.data.TensorDataset(
        lg.zeros(0, 5)), { batch_size = 4 }) }),
      "make_private: sample_rate must be in (0, 1] (got inf)")
  end)

  it("an unsupported layer, with the parameters untouched", function()
    local m = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4),
      nn.Linear(4, 3))
    local before = m[1].weight:clone()
    local o = args { model = m, optimizer = lg.optim.SGD(m:parameters(),
      { lr = 0.1 }) }
    has(err_of(P.PrivacyEngine().make_private, P.PrivacyEngine(), o),
      "make_private: no per-sample gradient rule for BatchNorm1d '1'")
    o.noise_multiplier = nil
    o.target_epsilon, o.target_delta, o.epochs = 1, 1e-5, 1
    has(err_of(P.PrivacyEngine().make_private_with_epsilon,
      P.PrivacyEngine(), o),
      "make_private_with_epsilon: no per-sample gradient rule for "
        .. "BatchNorm1d '1'")
    assert.are.equal(0, maxdiff(before, m[1].weight))
    assert.is_nil(m[1].weight.grad)
  end)

  it("other options", function()
    local e = P.PrivacyEngine()
    has(err_of(e.make_private, e, args { noise_multiplier = -1 }),
      "make_private: noise_multiplier must be a finite number >= 0")
    has(err_of(e.make_private, e, args { noise = 1 }),
      "make_private: unknown option 'noise'")
    has(err_of(e.make_private, e, args { loss_reduction = "max" }),
      "make_private: loss_reduction must be \"mean\" or \"sum\"")
    local o = args {}
    e:make_private(o)
    has(err_of(e.make_private, e, o),
      "make_private: the model is already private")
    local acct = P.RDPAccountant()
    has(err_of(acct.get_epsilon, acct, 0),
      "RDPAccountant:get_epsilon: delta must be a number in (0, 1)")
    has(err_of(P.noise_for_epsilon, { target_epsilon = 0, delta = 1e-5,
      sample_rate = 0.1, steps = 1 }), "target_epsilon must be a positive")
    has(err_of(P.noise_for_epsilon, { target_epsilon = 1, delta = 1e-5,
      sample_rate = 0.1 }), "noise_for_epsilon: steps (or epochs)")
  end)
end)

describe("RDP accountant", function()
  local function close(a, b, rel)
    return math.abs(a - b) <= rel * math.abs(b)
  end

  it("matches the independent reference over a grid", function()
    for _, r in ipairs(fixture.epsilon) do
      local acct = P.RDPAccountant()
      acct:step { noise_multiplier = r[1], sample_rate = r[2], steps = r[3] }
      local eps, order = acct:get_epsilon(r[4])
      assert.is_true(close(eps, r[5], 1e-8), string.format(
        "sigma %g q %g T %d delta %g: %.12g vs %.12g", r[1], r[2], r[3], r[4],
        eps, r[5]))
      assert.are.equal(r[6], order)
    end
  end)

  it("RDP of one step at integer and fractional orders", function()
    for _, r in ipairs(fixture.rdp) do
      assert.is_true(close(P.rdp(r[2], r[1], r[3]), r[4], 1e-8))
    end
    -- q = 1 is the Gaussian mechanism: alpha / (2 sigma^2)
    assert.are.equal(2.5 / 8, P.rdp(1, 2, 2.5))
    -- a term exactly at erfc(0) (z0 - j = 0) ends
    local r = P.rdp(0.5, 0.5, 1.5)
    assert.is_true(r > 1.49 and r < 1.5)
    has(err_of(P.rdp, 0.5, 1e-300, 1.5), "rdp: the series at order 1.5 is "
      .. "not a number (sample_rate 0.5, noise_multiplier 1e-300)")
    has(err_of(P.rdp, 0.5, 0.5, 9999.5), "did not converge in 50000 terms")
    has(err_of(P.rdp, 0.5, 0.5, 1e300),
      "rdp: the order alpha must be a number in (1, 10000]")
    has(err_of(P.rdp, 1.5, 1, 2), "rdp: sample_rate must be in [0, 1]")
  end)

  it("Opacus's published value (sigma 1.5, q 0.04, 90 epochs)", function()
    local acct = P.RDPAccountant()
    for _ = 1, math.floor(90 / 0.04) do
      acct:step { noise_multiplier = 1.5, sample_rate = 0.04 }
    end
    assert.are.equal(2250, #acct)
    assert.is_true(close(acct:get_epsilon(1e-5), 7.32911117143, 1e-10))
  end)

  it("the orders are Opacus's defaults", function()
    local o = P.DEFAULT_ORDERS
    assert.are.equal(99 + 52, #o)
    assert.are.equal(1.1, o[1])
    assert.are.equal(10.9, o[99])
    assert.are.equal(12, o[100])
    assert.are.equal(63, o[#o])
  end)

  it("noise_for_epsilon bisects as Opacus", function()
    for _, r in ipairs(fixture.noise) do
      local sigma = P.noise_for_epsilon { target_epsilon = r[1], delta = r[2],
        sample_rate = r[3], steps = r[4] }
      assert.is_true(close(sigma, r[5], 1e-12), tostring(sigma))
      local acct = P.RDPAccountant()
      acct:step { noise_multiplier = sigma, sample_rate = r[3], steps = r[4] }
      local eps = acct:get_epsilon(r[2])
      assert.is_true(eps <= r[1] and eps > r[1] - 0.01)
    end
  end)

  it("composes steps of different settings", function()
    local a = P.RDPAccountant()
    a:step { noise_multiplier = 1, sample_rate = 0.01, steps = 100 }
    a:step { noise_multiplier = 2, sample_rate = 0.02, steps = 50 }
    local e2 = a:get_epsilon(1e-5)
    local b = P.RDPAccountant()
    b:step { noise_multiplier = 1, sample_rate = 0.01, steps = 100 }
    local e1 = b:get_epsilon(1e-5)
    assert.is_true(e2 > e1)
    local sd = a:state_dict()
    local c = P.RDPAccountant()
    c:load_state_dict(sd)
    assert.are.equal(e2, c:get_epsilon(1e-5))
  end)
end)

describe("dp_fmnist scenario", function()
  it("runs with --small and prints epsilon beside the accuracies", function()
    local bin = os.getenv("LGRAD_BIN") or "build/lgrad"
    local p = assert(io.popen("timeout 900 " .. bin
      .. " scripts/dp_fmnist.lua --small 2>&1"))
    local out = p:read("a")
    local ok = p:close()
    assert.is_true(ok, out)
    local acc = tonumber(out:match("non%-private: test accuracy ([%d.]+)"))
    assert.is_not_nil(acc, out)
    for _, target in ipairs { "3", "8" } do
      local a, e = out:match("target epsilon " .. target
        .. ": test accuracy ([%d.]+), epsilon spent ([%d.]+)")
      assert.is_not_nil(a, out)
      assert.is_true(tonumber(e) <= tonumber(target) + 1e-9, out)
    end
  end)
end)

describe("Module:register_forward_hook", function()
  it("sees each call's inputs and outputs until removed", function()
    local m = nn.Linear(3, 2)
    local seen = {}
    local h = m:register_forward_hook(function(mod, args, out)
      seen[#seen + 1] = { mod, args.n, args[1], out }
    end)
    local x = lg.randn(4, 3)
    local y = m(x)
    assert.are.equal(1, #seen)
    assert.are.equal(m, seen[1][1])
    assert.are.equal(1, seen[1][2])
    assert.are.equal(x, seen[1][3])
    assert.are.equal(y, seen[1][4])
    h.remove()
    m(x)
    assert.are.equal(1, #seen)
    -- hooks stay out of parameters and state dicts
    assert.are.equal(2, #m:parameters())
    assert.is_nil(m:state_dict()._forward_hooks)
    has(err_of(m.register_forward_hook, m, 1),
      "register_forward_hook: expected a function (got number)")
  end)
end)

describe("loop_rule", function()
  before_each(function()
    f64()
    lg.manual_seed(31)
  end)
  after_each(restore)

  it("gives any layer of independent samples its per-sample gradients",
    function()
      -- a gated layer with its own parameter and a Linear child, two
      -- outputs both used by the loss
      local Gated = nn.Module:extend("Gated")
      function Gated:init()
        self.gate = nn.Parameter(lg.randn(4))
        self.proj = nn.Linear(4, 4)
      end
      function Gated:forward(x)
        local h = self.proj(x) * self.gate:sigmoid()
        return h:tanh(), h:sum(2, true)
      end
      P.register_rule(Gated, P.loop_rule())
      local Model = nn.Module:extend("UsesGated")
      function Model:init()
        self.g = Gated()
        self.out = nn.Linear(5, 3)
      end
      function Model:forward(x)
        local a, b = self.g(x)
        return self.out(lg.cat({ a, b }, 2))
      end
      local m = Model()
      local x, y = lg.randn(5, 4), lg.randint(1, 3, { 5 })
      assert.is_true(check_per_sample(m, ce, x, y) < 1e-12)
      -- and through DP-SGD (noise 0, no clipping) it is plain SGD
      local m2 = Model()
      local sgd = Model()
      sgd:load_state_dict(m2:state_dict())
      local o1 = lg.optim.SGD(sgd:parameters(), { lr = 0.1 })
      o1:zero_grad()
      ce(sgd(x), y):backward()
      o1:step()
      local model, opt = P.PrivacyEngine():make_private { model = m2,
        optimizer = lg.optim.SGD(m2:parameters(), { lr = 0.1 }),
        data_loader = lg.data.DataLoader(lg.data.TensorDataset(x, y),
          { batch_size = 5 }), noise_multiplier = 0, max_grad_norm = 1e9,
        poisson_sampling = false }
      opt:zero_grad()
      ce(model(x), y):backward()
      opt:step()
      local p1, p2 = sgd:parameters(), m2:parameters()
      for i = 1, #p1 do assert.is_true(maxdiff(p1[i], p2[i]) < 1e-12) end
    end)
end)

-- the recurrent and attention layers, where lg.nn has them
describe("per_sample_grads of recurrent and attention layers", function()
  before_each(function()
    f64()
    lg.manual_seed(41)
  end)
  after_each(restore)

  local x, y
  local function data()
    x, y = lg.randn(4, 5, 3), lg.randint(1, 2, { 4 })
  end

  it("RNN, LSTM, GRU: outputs and final states, stacked, both directions",
    function()
      if not nn.LSTM then
        pending("lg.nn has no recurrent layers here")
        return
      end
      data()
      local Clf = nn.Module:extend("RecurrentClassifier")
      function Clf:init(cls, opts, use_out)
        self.rnn = cls(3, 4, opts)
        local D = opts.bidirectional and 2 or 1
        self.head = nn.Linear(use_out and 4 * D or 4, 2)
        self.use_out = use_out
      end
      function Clf:forward(inp)
        local out, h = self.rnn(inp)
        if self.use_out then
          if not self.rnn.batch_first then out = out:transpose(1, 2) end
          return self.head(out:select(2, out:size(2)))
        end
        return self.head(h:select(1, h:size(1)))
      end
      for _, cls in ipairs { nn.RNN, nn.LSTM, nn.GRU } do
        assert.is_true(check_per_sample(Clf(cls, { batch_first = true }),
          ce, x, y) < 1e-12)
        assert.is_true(check_per_sample(Clf(cls, { batch_first = true,
          num_layers = 2, bidirectional = true }, true), ce, x, y) < 1e-12)
      end
      -- sequence-first input
      local Seq = nn.Module:extend("SeqFirst")
      function Seq:init()
        self.rnn = nn.GRU(3, 4)
        self.head = nn.Linear(4, 2)
      end
      function Seq:forward(inp)
        local out = self.rnn(inp:transpose(1, 2))
        return self.head(out:select(1, out:size(1)))
      end
      assert.is_true(check_per_sample(Seq(), ce, x, y) < 1e-12)
      has(err_of(P.per_sample_grads, Clf(nn.LSTM, { batch_first = true,
        num_layers = 2, dropout = 0.5 }), ce, x, y),
        "per_sample_grads: per-sample gradients of LSTM 'rnn' need its "
          .. "dropout to be 0")
    end)

  it("MultiheadAttention and a TransformerEncoderLayer", function()
    if not nn.MultiheadAttention then
      pending("lg.nn has no attention layers here")
      return
    end
    data()
    local Att = nn.Module:extend("AttentionClassifier")
    function Att:init(enc)
      self.emb = nn.Linear(3, 8)
      if enc then
        self.enc = nn.TransformerEncoderLayer(8, 2, { dim_feedforward = 16,
          dropout = 0 })
      else
        self.att = nn.MultiheadAttention(8, 2)
      end
      self.head = nn.Linear(8, 2)
    end
    function Att:forward(inp)
      local h = self.emb(inp)
      if self.enc then
        h = self.enc(h)
      else
        h = self.att(h, h, h)
      end
      return self.head(h:mean(2))
    end
    assert.is_true(check_per_sample(Att(false), ce, x, y) < 1e-12)
    assert.is_true(check_per_sample(Att(true), ce, x, y) < 1e-12)
  end)
end)
