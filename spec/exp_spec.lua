-- lg.exp: the learning-rate range test, the gradient noise scale, the
-- DataLoader option that grows the batch with it, and sweeps (grid,
-- random, in worker processes).
local lg = require "lgrad"
local exp = require "lgrad.exp"

local function err_of(fn, ...)
  local ok, e = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return tostring(e)
end

local function has(s, sub)
  assert.is_truthy(s:find(sub, 1, true),
    string.format("%q does not contain %q", s, sub))
end

-- a one-parameter "model" whose output is its parameter w
local function scalar_model(w0)
  local w = lg.tensor({ w0 + 0.0 }, { requires_grad = true })
  return setmetatable({ w = w, parameters = function() return { w } end },
    { __call = function() return w end })
end

local function dummy_loader(n)
  return lg.data.DataLoader(lg.zeros(n or 10, 1), { batch_size = 1 })
end

-- y = x w* + noise, x ~ N(0, scale^2 I_d)
local function regression(d, n, sigma, scale, seed)
  local g = lg.Generator(seed)
  local x = lg.randn({ n, d }, { generator = g }) * (scale or 1)
  local y = x:matmul(lg.ones(d, 1)) + lg.randn({ n, 1 }, { generator = g })
    * sigma
  return x, y
end

local function linear_at(d, value)
  local m = lg.nn.Linear(d, 1, { bias = false })
  lg.no_grad(function() m.weight:fill_(value) end)
  return m
end

describe("lg.exp", function()
  it("is lg.experiment; lg.exp(t) stays the exponential and forwards the " ..
     "module's fields", function()
    assert.equals(exp, lg.experiment)
    assert.is_function(lg.exp.lr_find)
    assert.equals(exp.lr_find, lg.exp.lr_find)
    assert.equals(exp.sweep, lg.exp.sweep)
    assert.is_nil(getmetatable(exp)) -- a plain module, not callable
    local e = lg.exp(lg.tensor { 0, 1 }):totable()
    assert.equals(1, e[1])
    assert.is_true(math.abs(e[2] - math.exp(1)) < 1e-6)
  end)
end)

describe("lg.exp.lr_find", function()
  -- loss = 0.5 a w^2: gradient descent w <- (1 - lr a) w reaches the
  -- minimum in one step at lr = 1/a, the best rate, and diverges beyond
  -- lr = 2/a
  for _, a in ipairs { 2, 10, 50 } do
    it("suggests about 1/a on the quadratic 0.5 a w^2 (a = " .. a .. ")",
      function()
        local m = scalar_model(1)
        local r = exp.lr_find(m, function(out)
          return (out * out):sum() * (0.5 * a)
        end, dummy_loader())
        local ratio = r.suggestion * a
        assert.is_true(ratio > 1 / 3 and ratio < 3,
          "suggestion " .. r.suggestion .. " for best rate " .. 1 / a)
        assert.is_true(r.diverged)
        assert.equals(r.suggestion, r.suggestion_min10)
        assert.is_true(r.suggestion_steepest < r.lr_min)
      end)
  end

  it("suggests about 1/a on least squares whose Hessian is a I", function()
    -- 0.5 * mean((x w - y)^2) with x ~ N(0, a I): Hessian a I, best rate 1/a
    local a = 10
    local x, y = regression(8, 4000, 0, math.sqrt(a), 1)
    local m = linear_at(8, 0)
    local loader = lg.data.DataLoader(lg.data.TensorDataset(x, y),
      { batch_size = 32, shuffle = true, seed = 1 })
    local r = exp.lr_find(m, function(o, t)
      return lg.F.mse_loss(o, t) * 0.5
    end, loader)
    local ratio = r.suggestion * a
    assert.is_true(ratio > 1 / 3 and ratio < 3, "ratio " .. ratio)
  end)

  it("grows the rate exponentially and smooths with bias correction",
    function()
      local m = scalar_model(1)
      local r = exp.lr_find(m, function(out) return (out * out):sum() end,
        dummy_loader(3), { start = 1e-4, stop = 1e-2, steps = 5,
          smooth = 0.5 })
      assert.equals(5, #r.lrs)
      local want = { 1e-4, 10 ^ -3.5, 1e-3, 10 ^ -2.5, 1e-2 }
      for i = 1, 5 do
        assert.is_true(math.abs(r.lrs[i] / want[i] - 1) < 1e-12)
      end
      -- the smoothed value is the bias-corrected moving average of the raw
      local avg = 0
      for i = 1, 5 do
        avg = 0.5 * avg + 0.5 * r.raw_losses[i]
        assert.is_true(math.abs(r.losses[i] - avg / (1 - 0.5 ^ i)) < 1e-12)
      end
      assert.is_true(math.abs(r.losses[1] - 1) < 1e-6) -- w^2 at w = 1
      assert.is_false(r.diverged)
    end)

  it("stops when the smoothed loss exceeds diverge times its best",
    function()
      local m = scalar_model(1)
      local r = exp.lr_find(m, function(out) return (out * out):sum() end,
        dummy_loader(), { start = 1e-3, stop = 100, steps = 200 })
      assert.is_true(r.diverged)
      assert.is_true(#r.lrs < 200)
      local best = math.huge
      for i = 1, #r.losses - 1 do best = math.min(best, r.losses[i]) end
      assert.is_true(r.losses[#r.losses] > 4 * best)
    end)

  it("puts the model, its gradients, the generator and the loader back",
    function()
      lg.manual_seed(5)
      local x, y = regression(4, 64, 0.1, 1, 2)
      local m = lg.nn.Sequential(lg.nn.Linear(4, 8), lg.nn.BatchNorm1d(8),
        lg.nn.Dropout(0.2), lg.nn.Linear(8, 1))
      local loader = lg.data.DataLoader(lg.data.TensorDataset(x, y),
        { batch_size = 16, shuffle = true, seed = 3 })
      for _ in loader:iter() do end
      local params = m:parameters()
      lg.F.mse_loss(m(x), y):backward()
      local before, grads = {}, {}
      for i, p in ipairs(params) do
        before[i] = p:clone()
        grads[i] = p.grad:clone()
      end
      local bufs = {}
      for i, b in ipairs(m:buffers()) do bufs[i] = b:clone() end
      local rng = lg.rng_state()
      local lsd = loader:state_dict()
      exp.lr_find(m, lg.F.mse_loss, loader, { steps = 30 })
      for i, p in ipairs(params) do
        assert.is_true(p:eq(before[i]):all():item(), "parameter " .. i)
        assert.is_true(p.grad:eq(grads[i]):all():item(), "gradient " .. i)
      end
      for i, b in ipairs(m:buffers()) do
        assert.is_true(b:eq(bufs[i]):all():item(), "buffer " .. i)
      end
      assert.same(rng, lg.rng_state())
      assert.same(lsd, loader:state_dict())
    end)

  it("takes optimizers as constructors, functions or objects", function()
    local loss = function(out) return (out * out):sum() * 5 end
    local m = scalar_model(1)
    local r1 = exp.lr_find(m, loss, dummy_loader(),
      { optimizer = lg.optim.Adam, steps = 20 })
    local used
    local r2 = exp.lr_find(m, loss, dummy_loader(), { steps = 20,
      optimizer = function(params, lr)
        used = lr
        return lg.optim.SGD(params, { lr = lr, momentum = 0.9 })
      end })
    assert.equals(1e-7, used)
    local r3 = exp.lr_find(m, loss, dummy_loader(), { steps = 20,
      optimizer = { lg.optim.SGD, { momentum = 0.9 } } })
    assert.same(r2.losses, r3.losses)
    assert.not_same(r1.losses, r2.losses)
    -- an optimizer of the caller's: its state is restored
    local opt = lg.optim.SGD(m:parameters(), { lr = 0.05, momentum = 0.9 })
    loss(m()):backward()
    opt:step()
    local w = m.w:item()
    local sd = opt:state_dict()
    local buf = sd.state[1].momentum_buffer:clone()
    exp.lr_find(m, loss, dummy_loader(), { optimizer = opt, steps = 20 })
    assert.equals(w, m.w:item())
    assert.equals(0.05, opt.param_groups[1].lr)
    local sd2 = opt:state_dict()
    assert.is_true(sd2.state[1].momentum_buffer:eq(buf):all():item())
  end)

  it("rejects bad arguments", function()
    local m = scalar_model(1)
    local loss = function(out) return (out * out):sum() end
    has(err_of(exp.lr_find, m, loss, dummy_loader(), { stop = 1e-9 }),
      "lr_find: stop must be larger than start")
    has(err_of(exp.lr_find, m, loss, dummy_loader(), { steps = 1 }),
      "lr_find: steps must be at least 2")
    has(err_of(exp.lr_find, m, loss, dummy_loader(), { smooth = 1 }),
      "lr_find: smooth must be in [0, 1)")
    has(err_of(exp.lr_find, m, loss, dummy_loader(), { stpes = 3 }),
      "lr_find: unknown option 'stpes'")
    has(err_of(exp.lr_find, m, "loss", dummy_loader()),
      "lr_find: loss_fn must be a function")
    has(err_of(exp.lr_find, m, loss, {}), "lr_find: loader must be")
    has(err_of(exp.lr_find, m, function() return lg.ones(2) end,
      dummy_loader()), "lr_find: loss_fn must return a 0-d tensor")
    -- an error inside still puts the parameter back
    local n = 0
    err_of(exp.lr_find, m, function(out)
      n = n + 1
      if n == 5 then error("loss failed") end
      return (out * out):sum()
    end, dummy_loader())
    assert.equals(1, m.w:item())
  end)
end)

describe("lg.exp.noise_scale", function()
  -- Linear regression y = x.w* + e, x ~ N(0, I_d), e ~ N(0, s^2), model
  -- x.w, per-sample loss (x.w - y)^2 (mse_loss).  With delta = w - w*, a
  -- sample's gradient is g = 2 x (x.delta - e), so
  --   G = E g = 2 delta,                      |G|^2 = 4 |delta|^2
  --   E g g^T = 4 (E[x x^T (x.delta)^2] + s^2 I) = 4 (|delta|^2 I
  --             + 2 delta delta^T + s^2 I)    (Gaussian fourth moments)
  --   tr(Sigma) = tr(E g g^T) - |G|^2 = 4 ((d + 1) |delta|^2 + d s^2)
  -- and B_simple = tr(Sigma) / |G|^2 = (d + 1) + d s^2 / |delta|^2.
  local function analytic(d, delta2, s2)
    return 4 * ((d + 1) * delta2 + d * s2) / (4 * delta2), 4 * delta2,
      4 * ((d + 1) * delta2 + d * s2)
  end

  for _, case in ipairs { { w = 0, sigma = 2, small = 16, big = 512 },
    { w = 0.9, sigma = 1, small = 16, big = 2048 } } do
    it(string.format("matches tr(Sigma)/|G|^2 on linear regression "
      .. "(w = %g, noise %g)", case.w, case.sigma), function()
      local d = 10
      local x, y = regression(d, 20000, case.sigma, 1, 11)
      local m = linear_at(d, case.w)
      local delta2 = d * (1 - case.w) ^ 2
      local b, g2, tr = analytic(d, delta2, case.sigma ^ 2)
      local loader = lg.data.DataLoader(lg.data.TensorDataset(x, y),
        { batch_size = case.small })
      local r = exp.noise_scale(m, lg.F.mse_loss, loader,
        { big = case.big, draws = 10, seed = 1 })
      assert.equals(case.small, r.small)
      assert.equals(case.big, r.big)
      local function near(got, want, what)
        assert.is_true(math.abs(got / want - 1) < 0.2, string.format(
          "%s: %g, analytic %g", what, got, want))
      end
      near(r.B_simple, b, "B_simple")
      near(r.G2, g2, "|G|^2")
      near(r.trace, tr, "tr(Sigma)")
      -- the suggestion is B_simple rounded to a power of two
      local s = r.suggested_batch_size
      assert.equals(s, 2 ^ math.floor(math.log(s, 2) + 0.5))
      assert.is_true(s / r.B_simple < 1.5 and r.B_simple / s < 1.5)
    end)
  end

  it("is the same for the same seed and leaves the model alone", function()
    local x, y = regression(4, 2000, 1, 1, 3)
    local m = linear_at(4, 0.5)
    local loader = lg.data.DataLoader(lg.data.TensorDataset(x, y),
      { batch_size = 8, shuffle = true, seed = 1 })
    local w = m.weight:clone()
    local lsd = loader:state_dict()
    local r1 = exp.noise_scale(m, lg.F.mse_loss, loader, { seed = 4 })
    local r2 = exp.noise_scale(m, lg.F.mse_loss, loader, { seed = 4 })
    assert.equals(r1.B_simple, r2.B_simple)
    assert.equals(128, r1.big)
    assert.is_true(m.weight:eq(w):all():item())
    assert.is_nil(m.weight.grad)
    assert.same(lsd, loader:state_dict())
  end)

  it("rejects batch sizes it cannot use", function()
    local x, y = regression(2, 100, 1, 1, 3)
    local m = linear_at(2, 0)
    local loader = lg.data.DataLoader(lg.data.TensorDataset(x, y),
      { batch_size = 8 })
    has(err_of(exp.noise_scale, m, lg.F.mse_loss, loader, { big = 12 }),
      "noise_scale: big (12) must be at least twice small (8)")
    has(err_of(exp.noise_scale, m, lg.F.mse_loss, loader, { big = 200 }),
      "noise_scale: big (200) is larger than the dataset (100)")
    has(err_of(exp.noise_scale, m, lg.F.mse_loss, loader, { draws = 0 }),
      "noise_scale: draws must be a positive integer")
  end)
end)

describe("DataLoader grow_batch", function()
  it("raises batch_size to the measured noise scale, never lowers it",
    function()
      local scales = { 20, 7, 50, 1e9 }
      local calls = 0
      local loader
      loader = lg.data.DataLoader(lg.range(1, 100), { batch_size = 4,
        grow_batch = { every = 1, max = 64, noise_scale = function(l)
          calls = calls + 1
          assert.equals(l, loader)
          return scales[calls]
        end } })
      local sizes = {}
      for e = 1, 4 do
        local n = 0
        for xb in loader:iter() do
          n = n + xb:size(1)
          sizes[e] = sizes[e] or xb:size(1)
        end
        assert.equals(100, n)
      end
      assert.same({ 4, 20, 20, 50 }, sizes)
      assert.equals(64, loader.batch_size)
      assert.equals(4, #loader.batch_history)
      assert.same({ epoch = 3, batch_size = 50, noise_scale = 50 },
        loader.batch_history[3])
    end)

  it("measures every `every` epochs, and keeps the size in state_dict",
    function()
      local calls = 0
      local opts = { batch_size = 2, grow_batch = { every = 2,
        noise_scale = function()
          calls = calls + 1
          return 10 * calls
        end } }
      local loader = lg.data.DataLoader(lg.range(1, 40), opts)
      for _ = 1, 4 do
        for _ in loader:iter() do end
      end
      assert.equals(2, calls)
      assert.equals(20, loader.batch_size)
      local other = lg.data.DataLoader(lg.range(1, 40), opts)
      other:load_state_dict(loader:state_dict())
      assert.equals(20, other.batch_size)
    end)

  it("measures with lg.exp.noise_scale given model and loss", function()
    -- B_simple = 11 + 10 * 4 / 10 = 15 at w = 0 (see noise_scale above)
    local x, y = regression(10, 4000, 2, 1, 5)
    local m = linear_at(10, 0)
    local loader = lg.data.DataLoader(lg.data.TensorDataset(x, y),
      { batch_size = 4, grow_batch = { model = m, loss = lg.F.mse_loss,
        draws = 10 } })
    for _ in loader:iter() do end
    assert.is_true(loader.batch_size >= 12 and loader.batch_size <= 18,
      "batch size " .. loader.batch_size)
  end)

  it("rejects bad options", function()
    has(err_of(lg.data.DataLoader, lg.range(1, 4), { grow_batch = 3 }),
      "DataLoader: grow_batch must be a table")
    has(err_of(lg.data.DataLoader, lg.range(1, 4), { grow_batch = {} }),
      "DataLoader: grow_batch needs model and loss")
    has(err_of(lg.data.DataLoader, lg.range(1, 4), { grow_batch = {
      noise_scale = function() return 1 end, every = 0 } }),
      "DataLoader: grow_batch.every must be a positive integer")
    has(err_of(lg.data.DataLoader, lg.range(1, 4), { grow_batch = {
      noise_scale = function() return 1 end, evry = 2 } }),
      "DataLoader: unknown grow_batch option 'evry'")
  end)
end)

describe("lg.exp.sweep", function()
  local tmp = os.tmpname()
  teardown(function() os.remove(tmp) end)

  -- a small regression whose data is an upvalue of run (a tensor sent to
  -- the workers by value); lr = 0.9 diverges on purpose
  local x, y = regression(3, 64, 0.1, 1, 7)
  local function train(lr, steps)
    local m = lg.nn.Linear(3, 1)
    local opt = lg.optim.SGD(m:parameters(), { lr = lr })
    local l
    for _ = 1, steps do
      opt:zero_grad()
      l = lg.F.mse_loss(m(x), y)
      l:backward()
      opt:step()
    end
    return l:item()
  end
  local function run(cfg, info)
    if cfg.lr == 0.3 and cfg.steps == 20 then error("boom at " .. cfg.lr) end
    return { loss = train(cfg.lr, cfg.steps), draw = lg.rand(1)[1],
      lua_draw = math.random(1000), trial = info.trial, tag = "t" }
  end
  local space = { lr = { 0.01, 0.1, 0.3 }, steps = { 10, 20 } }

  it("visits the grid in order and records failures", function()
    local s = exp.sweep { space = space, run = run, csv = tmp }
    assert.equals(6, #s.results)
    local order = {}
    for i, r in ipairs(s.results) do
      order[i] = r.config.lr .. "/" .. r.config.steps
      assert.equals(i, r.trial)
    end
    assert.same({ "0.01/10", "0.01/20", "0.1/10", "0.1/20", "0.3/10",
      "0.3/20" }, order)
    local bad = s.results[6]
    assert.is_false(bad.ok)
    has(bad.error, "boom at 0.3")
    assert.is_nil(bad.metrics)
    for i = 1, 5 do
      assert.is_true(s.results[i].ok)
      assert.equals(i, s.results[i].metrics.trial)
    end
    -- the best is the lowest loss among the trials that worked
    local best, bi = math.huge, nil
    for i = 1, 5 do
      if s.results[i].metrics.loss < best then
        best, bi = s.results[i].metrics.loss, i
      end
    end
    assert.equals(bi, s.best.trial)
    assert.same(s.results[bi].config, s.best.config)
    -- the CSV: a header and one row per trial
    local f = assert(io.open(tmp))
    local lines = {}
    for line in f:lines() do lines[#lines + 1] = line end
    f:close()
    assert.equals(7, #lines)
    assert.equals("trial,seed,lr,steps,ok,draw,loss,lua_draw,tag,trial,"
      .. "error", lines[1])
    assert.is_truthy(lines[7]:match(",false,,,,,,[^,]*: boom at 0%.3$"),
      lines[7])
    assert.is_truthy(lines[2]:match("^1,%d+,0.01,10,true,"))
  end)

  it("seeds every trial: the same seed gives the same numbers", function()
    local a = exp.sweep { space = space, run = run }
    local b = exp.sweep { space = space, run = run }
    local c = exp.sweep { space = space, run = run, seed = 2 }
    assert.same(a.results, b.results)
    assert.not_equals(a.results[1].metrics.draw, c.results[1].metrics.draw)
    assert.not_equals(a.results[1].metrics.draw, a.results[2].metrics.draw)
  end)

  it("gives the same table with jobs = 2 as with jobs = 1 (grid)", function()
    local one = exp.sweep { space = space, run = run }
    local two = exp.sweep { space = space, run = run, jobs = 2 }
    assert.same(one.results, two.results)
    assert.same(one.best, two.best)
    local iso = exp.sweep { space = space, run = run, isolate = true }
    assert.same(one.results, iso.results)
  end)

  it("draws random configurations from lists and distributions", function()
    local rspace = { lr = exp.log_uniform(1e-3, 1), steps = { 5, 10 },
      momentum = exp.uniform(0, 0.9), width = exp.int_uniform(1, 4) }
    local r = function(cfg)
      return { loss = train(cfg.lr, cfg.steps) + cfg.momentum * 0,
        width = cfg.width }
    end
    local a = exp.sweep { space = rspace, run = r, mode = "random",
      trials = 8, seed = 3 }
    assert.equals(8, #a.results)
    local widths = {}
    for _, t in ipairs(a.results) do
      local c = t.config
      assert.is_true(c.lr >= 1e-3 and c.lr <= 1)
      assert.is_true(c.steps == 5 or c.steps == 10)
      assert.is_true(c.momentum >= 0 and c.momentum <= 0.9)
      assert.equals("integer", math.type(c.width))
      widths[c.width] = true
    end
    assert.is_true(next(widths) ~= nil)
    local b = exp.sweep { space = rspace, run = r, mode = "random",
      trials = 8, seed = 3, jobs = 2 }
    assert.same(a.results, b.results)
    local c = exp.sweep { space = rspace, run = r, mode = "random",
      trials = 8, seed = 4 }
    assert.not_same(a.results[1].config, c.results[1].config)
  end)

  it("records a worker that dies and goes on", function()
    local s = exp.sweep { space = { a = { 1, 2, 3 } }, jobs = 2, quiet = true,
      run = function(cfg)
        if cfg.a == 2 then os.exit(7) end
        return cfg.a * 1.5
      end }
    assert.is_true(s.results[1].ok)
    assert.equals(1.5, s.results[1].metrics.loss)
    assert.is_false(s.results[2].ok)
    has(s.results[2].error, "worker process exited with status 7")
    assert.equals(4.5, s.results[3].metrics.loss)
    assert.equals(1, s.best.trial)
  end)

  it("sends shared and recursive upvalues, modules and tables", function()
    local count = 0
    local function bump() count = count + 1 end
    local function fib(n) return n < 2 and n or fib(n - 1) + fib(n - 2) end
    local settings = { scale = 3, nested = { 1, 2 } }
    settings.self = settings
    local f = function(cfg)
      bump()
      bump()
      return { fib = fib(cfg.n), count = count,
        scaled = settings.scale * settings.self.nested[2],
        word = string.format("%d", cfg.n), sum = lg.ones(3):sum() }
    end
    local a = exp.sweep { space = { n = { 10, 15 } }, run = f, jobs = 2 }
    for i, want in ipairs { 55, 610 } do
      local m = a.results[i].metrics
      assert.is_true(a.results[i].ok, a.results[i].error)
      assert.equals(want, m.fib)
      assert.equals(2, m.count) -- each worker starts from count = 0
      assert.equals(6, m.scaled)
      assert.equals(3, m.sum)
    end
    assert.equals("10", a.results[1].metrics.word)
  end)

  it("refuses what cannot reach a worker, and bad options", function()
    local fh = io.tmpfile()
    has(err_of(exp.sweep, { space = { a = { 1 } }, jobs = 2,
      run = function() return fh end }),
      "sweep: upvalue 'fh' of run is a FILE*")
    fh:close()
    has(err_of(exp.sweep, { space = { a = { 1 } } }),
      "sweep: run must be a function")
    has(err_of(exp.sweep, { space = { a = { 1 } }, run = run, mode = "x" }),
      "sweep: mode must be \"grid\" or \"random\"")
    has(err_of(exp.sweep, { space = { a = exp.uniform(0, 1) }, run = run }),
      "sweep: grid mode needs a list of values for space.a")
    has(err_of(exp.sweep, { space = { a = { 1 } }, run = run, jobs = 0 }),
      "sweep: jobs must be a positive integer")
    has(err_of(exp.sweep, { space = { a = { 1 } }, run = run, jbos = 2 }),
      "sweep: unknown option 'jbos'")
    -- a run returning something other than metrics fails its trial
    local s = exp.sweep { space = { a = { 1 } }, run = function()
      return function() end
    end }
    assert.is_false(s.results[1].ok)
    has(s.results[1].error, "run must return a number or a table")
    assert.is_nil(s.best)
  end)

  it("picks the best by goal = max", function()
    local s = exp.sweep { space = { a = { 3, 1, 2 } }, metric = "acc",
      goal = "max", run = function(cfg) return { acc = cfg.a } end }
    assert.equals(1, s.best.trial)
    assert.equals(3, s.best.metrics.acc)
  end)
end)

describe("scripts/tune_fmnist.lua --small", function()
  it("chooses lr, batch and weight decay, trains, and writes the plots",
    function()
      local dir = os.tmpname()
      os.remove(dir)
      assert.is_true(os.execute("mkdir " .. dir))
      local bin = os.getenv("LGRAD_BIN") or "build/lgrad"
      local p = assert(io.popen(bin .. " scripts/tune_fmnist.lua --small "
        .. "--out " .. dir .. " 2>&1"))
      local out = p:read("a")
      local ok = p:close()
      assert.is_true(ok, out)
      has(out, "-> batch size ")
      has(out, "lr_find: lowest smoothed loss at lr ")
      has(out, "sweep (2 trials, 2 workers")
      local t, d = out:match("test accuracy: tuned ([%d.]+) default "
        .. "([%d.]+)")
      assert.is_not_nil(t, out)
      assert.is_true(tonumber(t) > 0.2 and tonumber(d) > 0.2, out)
      for _, name in ipairs { "lr_find", "sweep", "history", "compare" } do
        local path = dir .. "/tune_" .. name .. ".svg"
        local f = assert(io.open(path), path)
        assert.is_truthy(f:read("a"):find("^<svg "), path)
        f:close()
        os.remove(path)
      end
      os.remove(dir)
    end)
end)
