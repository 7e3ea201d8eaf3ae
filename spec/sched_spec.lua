-- Learning-rate schedulers (lg.sched): learning rates (and momentum) of 60
-- steps against PyTorch 1.13 (fixtures from spec/fixtures/gen_sched.py),
-- resume through state_dict, and option errors.
local lg = require "lgrad"

local fx = dofile("spec/fixtures/sched.lua")
local NSTEPS = 60

-- the functions the fixture's Lambda and Multiplicative cases name
-- (the same as FNS in gen_sched.py)
local FNS = {
  pow09 = function(e) return 0.9 ^ e end,
  inv = function(e) return 1.0 / (1.0 + 0.1 * e) end,
  halve10 = function(e) return 0.5 ^ (e // 10) end,
  const095 = function() return 0.95 end,
  every5 = function(e) if e % 5 == 0 then return 0.9 end return 1.0 end,
  sqrt = function(e) return 1.0 / math.sqrt(1.0 + e) end,
}

-- SGD(momentum = 0.9) or Adam with two groups, lr 0.1 and 0.05
local function make_optimizer(kind)
  local f64 = {dtype = lg.float64, requires_grad = true}
  local p1, p2 = lg.randn({3}, f64), lg.randn({2}, f64)
  local groups = {{params = {p1}, lr = 0.1}, {params = {p2}, lr = 0.05}}
  if kind == "Adam" then return lg.optim.Adam(groups, {lr = 0.1}) end
  return lg.optim.SGD(groups, {lr = 0.1, momentum = 0.9})
end

-- a scheduler from a fixture description (children built first, as in
-- PyTorch, each one acting on the optimizer when made)
local function build(opt, name, opts)
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  if type(o.fn) == "table" then
    local t = {}
    for i, f in ipairs(o.fn) do t[i] = FNS[f] end
    o.fn = t
  elseif o.fn then
    o.fn = FNS[o.fn]
  end
  if o.schedulers then
    local t = {}
    for i, c in ipairs(o.schedulers) do t[i] = build(opt, c.name, c.opts) end
    o.schedulers = t
  end
  return lg.sched[name](opt, o)
end

local function momentum(opt, g, kind)
  local pg = opt.param_groups[g]
  if kind == "Adam" then return pg.betas[1] end
  return pg.momentum
end

local function step(s, c, k)
  if c.name == "Plateau" then s:step(fx.metric[k]) else s:step() end
end

local function close(got, want, what)
  local tol = 1e-6 * math.abs(want) + 1e-15
  if math.abs(got - want) > tol or got ~= got then
    error(string.format("%s: got %.17g, want %.17g", what, got, want), 2)
  end
end

local function label(i, c)
  return string.format("case %d (%s %s)", i, c.name,
                       c.optimizer == "Adam" and "with Adam" or "")
end

describe("lg.sched against PyTorch 1.13", function()
  for i, c in ipairs(fx.cases) do
    it(label(i, c) .. " gives the same lrs for 60 steps", function()
      local opt = make_optimizer(c.optimizer)
      local s = build(opt, c.name, c.opts)
      assert.are.equal(0, s.last_step)
      for k = 1, NSTEPS + 1 do
        if k > 1 then step(s, c, k - 1) end
        local lrs = s:get_lr()
        assert.are.equal(2, #lrs)
        for g = 1, 2 do
          local what = string.format("step %d group %d", k - 1, g)
          close(opt.param_groups[g].lr, c.lrs[k][g], what .. " lr")
          assert.are.equal(opt.param_groups[g].lr, lrs[g])
          if c.momentum then
            close(momentum(opt, g, c.optimizer), c.momentum[k][g],
                  what .. " momentum")
          end
        end
      end
      assert.are.equal(NSTEPS, s.last_step)
    end)
  end
end)

describe("lg.sched resume", function()
  local K = 23
  for i, c in ipairs(fx.cases) do
    it(label(i, c) .. " continues identically from a state_dict",
       function()
      local opt = make_optimizer(c.optimizer)
      local s = build(opt, c.name, c.opts)
      local want = {}
      local osd, ssd
      for k = 1, NSTEPS do
        step(s, c, k)
        want[k] = s:get_lr()
        if k == K then osd, ssd = opt:state_dict(), s:state_dict() end
      end
      -- fresh objects, made the same way, then loaded
      local opt2 = make_optimizer(c.optimizer)
      local s2 = build(opt2, c.name, c.opts)
      opt2:load_state_dict(osd)
      s2:load_state_dict(ssd)
      assert.are.equal(K, s2.last_step)
      for k = K + 1, NSTEPS do
        step(s2, c, k)
        local got = s2:get_lr()
        for g = 1, 2 do
          assert.are.equal(want[k][g], got[g])
          assert.are.equal(want[k][g], opt2.param_groups[g].lr)
        end
      end
    end)
  end

  it("state_dict is plain data with the kind and the children", function()
    local opt = make_optimizer()
    local a = lg.sched.Constant(opt, {factor = 0.5, total_iters = 2})
    local b = lg.sched.Exponential(opt, {gamma = 0.9})
    local s = lg.sched.Sequential(opt, {schedulers = {a, b},
                                        milestones = {3}})
    s:step()
    local sd = s:state_dict()
    assert.are.equal("Sequential", sd.kind)
    assert.are.equal(1, sd.last_epoch)
    assert.are.same({3}, sd.milestones)
    assert.are.equal("Constant", sd.schedulers[1].kind)
    assert.are.equal(0.5, sd.schedulers[1].factor)
    assert.are.equal("Exponential", sd.schedulers[2].kind)
  end)

  it("refuses a state of another kind and leaves the scheduler as it was",
     function()
    local opt = make_optimizer()
    local s = lg.sched.Step(opt, {step_size = 2})
    local e = lg.sched.Exponential(make_optimizer(), {gamma = 0.5})
    s:step()
    assert.has_error(function() s:load_state_dict(e:state_dict()) end,
      "load_state_dict: state is for a Exponential scheduler, not Step")
    local sd = s:state_dict()
    sd.base_lrs = {1}
    assert.has_error(function() s:load_state_dict(sd) end,
      "load_state_dict: base_lrs must be a list of 2 numbers")
    sd = s:state_dict()
    sd.last_epoch = 7
    sd.step_size = "x"
    assert.has_error(function() s:load_state_dict(sd) end,
      "load_state_dict: step_size must be a number")
    assert.are.equal(1, s.last_step)
  end)
end)

describe("lg.sched behaviour", function()
  it("sets initial_lr once and keeps it across schedulers", function()
    local opt = make_optimizer()
    opt.param_groups[1].lr = 0.2
    lg.sched.Exponential(opt, {gamma = 0.5})
    assert.are.equal(0.2, opt.param_groups[1].initial_lr)
    opt.param_groups[1].lr = 0.3
    local s = lg.sched.Lambda(opt, function(e) return 1 / (e + 1) end)
    assert.are.same({0.2, 0.05}, s:base_lrs())
    assert.are.equal(0.2, opt.param_groups[1].lr)
  end)

  it("Plateau takes a number or a one-element tensor and needs one",
     function()
    local opt = make_optimizer()
    local s = lg.sched.Plateau(opt, {patience = 0, factor = 0.5})
    s:step(1.0)
    s:step(lg.tensor(2.0))
    assert.are.same({0.05, 0.025}, s:get_lr())
    assert.are.equal(2, s.last_step)
    assert.has_error(function() s:step() end,
      "sched.Plateau: step needs the metric (a number), got no value")
  end)

  it("other schedulers ignore a metric passed to step", function()
    local opt = make_optimizer()
    local s = lg.sched.Step(opt, {step_size = 1, gamma = 0.5})
    s:step(123.0)
    assert.are.equal(1, s.last_step)
    assert.are.equal(0.05, s:get_lr()[1])
  end)

  it("step_to jumps with the closed form (fractional for restarts)",
     function()
    local opt = make_optimizer()
    local s = lg.sched.Step(opt, {step_size = 3, gamma = 0.5})
    s:step_to(7)
    assert.are.equal(7, s.last_step)
    close(s:get_lr()[1], 0.1 * 0.25, "Step at 7")
    local opt2 = make_optimizer()
    local r = lg.sched.CosineWarmRestarts(opt2, {T_0 = 10})
    r:step_to(2.5)
    close(r:get_lr()[1], 0.05 * (1 + math.cos(math.pi * 0.25)), "T_cur 2.5")
    assert.are.equal(2, r.last_step)
  end)

  it("keeps its optimizer alive", function()
    local s = lg.sched.Exponential(make_optimizer(), {gamma = 0.5})
    collectgarbage()
    collectgarbage()
    s:step()
    assert.are.equal(0.05, s.optimizer.param_groups[1].lr)
  end)

  it("refuses to step once its optimizer is closed", function()
    local opt = make_optimizer()
    local s = lg.sched.Exponential(opt, {gamma = 0.5})
    getmetatable(opt).__close(opt)
    assert.has_error(function() s:step() end, "optimizer is closed")
    assert.are.same({0.1, 0.05}, s:get_lr())
  end)

  it("notices a Lambda function that closes the optimizer", function()
    local opt = make_optimizer()
    local closing = false
    local s = lg.sched.Lambda(opt, function()
      if closing then getmetatable(opt).__close(opt) end
      return 1
    end)
    closing = true
    assert.has_error(function() s:step() end,
      "sched.Lambda: fn closed the optimizer at epoch 1")
  end)

  it("Chained takes the children's optimizer", function()
    local opt = make_optimizer()
    local a = lg.sched.Exponential(opt, {gamma = 0.5})
    local b = lg.sched.Step(opt, {step_size = 2, gamma = 0.1})
    local s = lg.sched.Chained{schedulers = {a, b}}
    s:step()
    s:step()
    close(opt.param_groups[1].lr, 0.1 * 0.25 * 0.1, "chained")
    assert.are.equal(2, s.last_step)
    assert.are.equal(2, #s.schedulers)
  end)

  it("Lambda accepts a function instead of options", function()
    local opt = make_optimizer()
    local s = lg.sched.Lambda(opt, function(e) return 2 ^ -e end)
    s:step()
    assert.are.same({0.05, 0.025}, s:get_lr())
  end)

  it("reports an error raised inside a Lambda function", function()
    local opt = make_optimizer()
    local bad = false
    local s = lg.sched.Lambda(opt, {fn = function()
      if bad then error("boom") end
      return 1
    end})
    bad = true
    local ok, err = pcall(s.step, s)
    assert.is_false(ok)
    assert.truthy(err:find("^sched.Lambda: fn failed at epoch 1: .*boom"))
    assert.are.equal(0, s.last_step) -- a failed step changes nothing
    bad = false
    s:step()
    assert.are.equal(1, s.last_step)
  end)

  it("rejects a Lambda function that returns no number", function()
    local opt = make_optimizer()
    assert.has_error(function()
      lg.sched.Lambda(opt, {fn = function() return "x" end})
    end, "sched.Lambda: fn must return a number, returned string at epoch 0")
    local s = lg.sched.Multiplicative(opt, {fn = function(e)
      if e > 0 then return nil end
      return 1
    end})
    assert.has_error(function() s:step() end,
      "sched.Multiplicative: fn must return a number, returned nil at " ..
      "epoch 1")
  end)

  it("OneCycle refuses to step past total_steps", function()
    local opt = make_optimizer()
    local s = lg.sched.OneCycle(opt, {max_lr = 1, total_steps = 3})
    for _ = 1, 3 do s:step() end
    assert.has_error(function() s:step() end,
      "sched.OneCycle: tried to step 5 times; total_steps is 3")
  end)

  it("prints its kind and step", function()
    local s = lg.sched.Exponential(make_optimizer(), {gamma = 0.5})
    assert.are.equal("lgrad.Scheduler(Exponential, last_step = 0)",
                     tostring(s))
    assert.are.equal("Exponential", s.kind)
  end)
end)

describe("lg.sched errors", function()
  local opt = make_optimizer()
  local cases = {
    {"Step", {}, "sched.Step: step_size is required"},
    {"Step", {step_size = 0}, "sched.Step: step_size must be a positive " ..
       "integer, got 0"},
    {"Step", {step_size = 2.5}, "sched.Step: step_size must be an " ..
       "integer, got a fraction"},
    {"Step", {step_size = 2, gama = 0.5}, "sched.Step: unknown option 'gama'"},
    {"Step", {step_size = "2"}, "sched.Step: step_size must be an " ..
       "integer, got string"},
    {"MultiStep", {}, "sched.MultiStep: milestones is required"},
    {"MultiStep", {milestones = {3, -1}}, "sched.MultiStep: " ..
       "milestones[2] must be >= 0, got -1"},
    {"Exponential", {}, "sched.Exponential: gamma is required"},
    {"Constant", {factor = 1.5}, "sched.Constant: factor must be in " ..
       "(0, 1], got 1.5"},
    {"Cosine", {}, "sched.Cosine: T_max is required"},
    {"Cosine", {T_max = -1}, "sched.Cosine: T_max must be positive, got -1"},
    {"CosineWarmRestarts", {T_0 = 10, T_mult = 0}, "sched." ..
       "CosineWarmRestarts: T_mult must be an integer >= 1, got 0"},
    {"Linear", {start_factor = 0}, "sched.Linear: start_factor must be " ..
       "in (0, 1], got 0"},
    {"Polynomial", {total_iters = 0}, "sched.Polynomial: total_iters " ..
       "must be a positive integer, got 0"},
    {"OneCycle", {total_steps = 10}, "sched.OneCycle: max_lr is required"},
    {"OneCycle", {max_lr = 1}, "sched.OneCycle: give total_steps, or " ..
       "epochs and steps_per_epoch"},
    {"OneCycle", {max_lr = 1, total_steps = 0}, "sched.OneCycle: " ..
       "total_steps must be a positive integer, got -1"},
    {"OneCycle", {max_lr = {1, 2, 3}, total_steps = 5}, "sched.OneCycle: " ..
       "max_lr has 3 values for 2 parameter groups"},
    {"OneCycle", {max_lr = 1, total_steps = 5, pct_start = 2},
     "sched.OneCycle: pct_start must be in [0, 1], got 2"},
    {"OneCycle", {max_lr = 1, total_steps = 5, anneal_strategy = "cosine"},
     "sched.OneCycle: anneal_strategy must be one of cos, linear, got cosine"},
    {"Cyclic", {max_lr = 1}, "sched.Cyclic: base_lr is required"},
    {"Cyclic", {base_lr = 0.1, max_lr = 1, mode = "tri"}, "sched.Cyclic: " ..
       "mode must be one of triangular, triangular2, exp_range, got tri"},
    {"Plateau", {factor = 1}, "sched.Plateau: factor must be < 1, got 1"},
    {"Plateau", {mode = "up"}, "sched.Plateau: mode must be one of min, " ..
       "max, got up"},
    {"Plateau", {threshold_mode = 1}, "sched.Plateau: threshold_mode " ..
       "must be one of rel, abs, got number"},
    {"Plateau", {min_lr = {1}}, "sched.Plateau: min_lr has 1 values for " ..
       "2 parameter groups"},
    {"Lambda", {}, "sched.Lambda: fn is required"},
    {"Lambda", {fn = {FNS.pow09}}, "sched.Lambda: fn has 1 functions " ..
       "for 2 parameter groups"},
    {"Sequential", {schedulers = {}}, "sched.Sequential: schedulers is " ..
       "empty"},
    {"Sequential", {schedulers = {1}}, "sched.Sequential: schedulers[1] " ..
       "is not a scheduler"},
  }
  for _, c in ipairs(cases) do
    it(c[3], function()
      assert.has_error(function() lg.sched[c[1]](opt, c[2]) end, c[3])
    end)
  end

  it("needs an optimizer", function()
    assert.has_error(function() lg.sched.Step(nil, {step_size = 1}) end)
    assert.has_error(function() lg.sched.Step({}, {step_size = 1}) end)
  end)

  it("Sequential checks milestones and children", function()
    local a = lg.sched.Exponential(opt, {gamma = 0.9})
    local b = lg.sched.Exponential(opt, {gamma = 0.8})
    assert.has_error(function()
      lg.sched.Sequential(opt, {schedulers = {a, b}, milestones = {}})
    end, "sched.Sequential: expected 1 milestones for 2 schedulers, got 0")
    local other = lg.sched.Exponential(make_optimizer(), {gamma = 0.5})
    assert.has_error(function()
      lg.sched.Sequential(opt, {schedulers = {a, other}, milestones = {2}})
    end, "sched.Sequential: scheduler 2 belongs to another optimizer")
    local p = lg.sched.Plateau(opt)
    assert.has_error(function()
      lg.sched.Chained{schedulers = {a, p}}
    end, "sched.Chained: Plateau needs a metric and cannot be a child")
  end)

  it("cycling momentum needs an optimizer with momentum", function()
    local p = lg.randn({2}, {requires_grad = true})
    local ad = lg.optim.Adagrad({p}, {lr = 0.1})
    assert.has_error(function()
      lg.sched.Cyclic(ad, {base_lr = 0.01, max_lr = 0.1})
    end, "sched.Cyclic: the optimizer has no momentum to cycle (pass " ..
      "cycle_momentum = false)")
    lg.sched.Cyclic(ad, {base_lr = 0.01, max_lr = 0.1,
                         cycle_momentum = false})
  end)
end)
