-- Optimizers (lg.optim): trajectories against PyTorch 1.13 (fixtures from
-- spec/fixtures/gen_optim.py), Adafactor / Muon / Lion against plain Lua
-- implementations of their published updates, bit-for-bit resume through
-- state_dict, param_groups, zero_grad and error messages.
local lg = require "lgrad"

local fx = dofile("spec/fixtures/optim.lua")
local f64 = {dtype = lg.float64}

-- ---- the fixture's problem -------------------------------------------

local N = 16

local function coef(i)
  return 0.5 + ((7 * i) % 10) / 10, 0.1 + ((3 * i) % 5) / 10
end

local function start()
  local x = {}
  for i = 1, N do x[i] = ((37 * i) % 19) / 19 * 4 - 2 end
  return x
end

-- loss and gradient of sign * f at x (a flat list)
local function loss_grad(x, sign)
  local f, g = 0, {}
  for i = 1, #x do
    local a, c = coef(i)
    local v = x[i]
    f = f + a * v * v + c * math.sin(3 * v)
    g[i] = sign * (2 * a * v + 3 * c * math.cos(3 * v))
  end
  return sign * f, g
end

local function rows(list, first, r, c)
  local m = {}
  for i = 1, r do
    m[i] = {}
    for j = 1, c do m[i][j] = list[first + (i - 1) * c + j - 1] end
  end
  return m
end

local function slice(list, first, n)
  local s = {}
  for i = 1, n do s[i] = list[first + i - 1] end
  return s
end

-- A (3x4) and b (4) from the flat values x (default: the start point)
local function make_params(x, dtype)
  x = x or start()
  local o = {dtype = dtype or lg.float64, requires_grad = true}
  return lg.tensor(rows(x, 1, 3, 4), o), lg.tensor(slice(x, 13, 4), o)
end

local function flat(A, b)
  local x = {}
  for _, r in ipairs(A:totable()) do
    for _, v in ipairs(r) do x[#x + 1] = v end
  end
  for _, v in ipairs(b:totable()) do x[#x + 1] = v end
  return x
end

local function set_grads(A, b, sign)
  local f, g = loss_grad(flat(A, b), sign or 1)
  local o = {dtype = A:dtype() == "float32" and lg.float32 or lg.float64}
  A.grad = lg.tensor(rows(g, 1, 3, 4), o)
  b.grad = lg.tensor(slice(g, 13, 4), o)
  return f
end

local function close(got, want, rtol, what)
  rtol = rtol or 1e-6
  assert.are.equal(#want, #got, what)
  for i = 1, #want do
    local d = math.abs(got[i] - want[i])
    if d ~= d or d > rtol * math.abs(want[i]) + 1e-12 then
      error(string.format("%s: element %d is %.17g, expected %.17g",
                          what or "values", i, got[i], want[i]), 2)
    end
  end
end

local function describe_opts(o)
  local keys = {}
  for k in pairs(o) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do
    local v = o[k]
    if type(v) == "table" then v = "{" .. table.concat(v, ", ") .. "}" end
    parts[#parts + 1] = k .. "=" .. tostring(v)
  end
  return table.concat(parts, " ")
end

local function build(name, A, b, opts, groups)
  local params = {A, b}
  if groups then
    params = {{params = {A}}, {params = {b}}}
    for g = 1, 2 do
      for k, v in pairs(groups[g]) do params[g][k] = v end
    end
  end
  return lg.optim[name](params, opts)
end

-- runs a fixture case (optionally under another optimizer name)
local function run_case(case, name)
  local A, b = make_params()
  local opt = build(name or case.optim, A, b, case.opts, case.groups)
  local sign = case.opts.maximize and -1 or 1
  local traj, losses = {}, {}
  for s = 1, fx.steps do
    if case.optim == "LBFGS" then
      losses[s] = opt:step(function() return set_grads(A, b, sign) end)
    else
      set_grads(A, b, sign)
      opt:step()
    end
    traj[s] = flat(A, b)
  end
  return traj, losses
end

describe("optim against PyTorch 1.13", function()
  for n, case in ipairs(fx.cases) do
    local title = string.format("%s %s%s (case %d)", case.optim,
                                describe_opts(case.opts),
                                case.groups and " with two groups" or "", n)
    it(title, function()
      local traj, losses = run_case(case)
      for s = 1, fx.steps do
        close(traj[s], case.steps[s], 1e-6, "step " .. s)
      end
      if case.losses then close(losses, case.losses, 1e-6, "losses") end
    end)
  end

  it("GD is SGD without momentum", function()
    for _, case in ipairs(fx.cases) do
      if case.optim == "SGD" and case.opts.momentum == nil then
        local traj = run_case(case, "GD")
        for s = 1, fx.steps do close(traj[s], case.steps[s], 1e-12) end
        return
      end
    end
    error("no plain SGD case in the fixture")
  end)

  it("has PyTorch's defaults", function()
    for name, d in pairs(fx.defaults) do
      local A, b = make_params()
      local opt = lg.optim[name]({A, b}, name == "SGD" and {lr = 0.1} or nil)
      local g = opt.param_groups[1]
      for k, v in pairs(d) do
        if type(v) == "table" then
          assert.are.same(v, g[k], name .. "." .. k)
        else
          assert.are.equal(v, g[k], name .. "." .. k)
        end
      end
    end
  end)

  it("LBFGS follows PyTorch on Rosenbrock", function()
    local r = fx.rosenbrock
    local x = lg.tensor({-1.5, 2.0}, {dtype = lg.float64,
                                     requires_grad = true})
    local opt = lg.optim.LBFGS({x}, {line_search = "strong_wolfe",
                                     max_iter = 10, tolerance_grad = 1e-12,
                                     tolerance_change = 1e-14})
    for s = 1, #r.steps do
      local loss = opt:step(function()
        opt:zero_grad()
        local x1, x2 = x:select(1, 1), x:select(1, 2)
        local f = (1 - x1) ^ 2 + 100 * (x2 - x1 ^ 2) ^ 2
        f:backward()
        return f
      end)
      close({loss}, {r.losses[s]}, 1e-6, "loss " .. s)
      close(x:totable(), r.steps[s], 1e-6, "step " .. s)
    end
    local st = opt:state_dict().state[1]
    assert.are.equal(r.n_iter, st.n_iter)
    assert.are.equal(r.func_evals, st.func_evals)
  end)
end)

describe("LBFGS", function()
  -- Rosenbrock with its gradient written by hand: the closure sets .grad
  local function rosen(x)
    local a, b = x[1], x[2]
    return (1 - a) ^ 2 + 100 * (b - a * a) ^ 2,
           {-2 * (1 - a) - 400 * a * (b - a * a), 200 * (b - a * a)}
  end

  it("reaches the Rosenbrock minimum to 1e-6 in under 100 iterations",
     function()
    for _, start_at in ipairs({{-1.5, 2.0}, {-1.2, 1.0}, {2.0, -1.0}}) do
      local x = lg.tensor(start_at, {dtype = lg.float64,
                                     requires_grad = true})
      local opt = lg.optim.LBFGS({x}, {line_search = "strong_wolfe",
                                       max_iter = 99, max_eval = 1000,
                                       tolerance_grad = 1e-10,
                                       tolerance_change = 1e-14})
      opt:step(function()
        local f, g = rosen(x:totable())
        x.grad = lg.tensor(g, f64)
        return f
      end)
      local v = x:totable()
      assert.is_true(math.abs(v[1] - 1) < 1e-6 and math.abs(v[2] - 1) < 1e-6,
                     string.format("from (%g, %g) ended at (%.10g, %.10g)",
                                   start_at[1], start_at[2], v[1], v[2]))
      local n_iter = opt:state_dict().state[1].n_iter
      assert.is_true(n_iter < 100, "took " .. n_iter .. " iterations")
    end
  end)

  it("accepts a 0-d tensor as the closure's loss and returns a number",
     function()
    local x = lg.tensor({3.0}, {dtype = lg.float64, requires_grad = true})
    local opt = lg.optim.LBFGS({x}, {line_search = "strong_wolfe"})
    local loss = opt:step(function()
      opt:zero_grad()
      local f = (x * x):sum()
      f:backward()
      return f
    end)
    assert.are.equal("number", math.type(loss) and "number" or type(loss))
    assert.are.equal(9, loss)
    assert.is_true(math.abs(x:totable()[1]) < 1e-6)
  end)

  it("requires a closure, a loss from it, and one parameter group", function()
    local x = lg.tensor({1.0}, {dtype = lg.float64, requires_grad = true})
    local opt = lg.optim.LBFGS({x})
    assert.has_error(function() opt:step() end,
      "LBFGS.step: a closure that re-evaluates the loss is required")
    assert.has_error(function() opt:step(function() end) end,
      "LBFGS.step: the closure must return the loss (a number or a " ..
      "one-element tensor), not a nil")
    local y = lg.tensor({1.0}, {dtype = lg.float64, requires_grad = true})
    assert.has_error(function()
      lg.optim.LBFGS({{params = {x}}, {params = {y}}})
    end, "LBFGS: doesn't support per-parameter options (parameter groups)")
    assert.has_error(function()
      lg.optim.LBFGS({x}, {line_search = "armijo"})
    end, "LBFGS: line_search must be nil or 'strong_wolfe'")
  end)
end)

-- ---- Adafactor, Muon and Lion against plain Lua ----------------------

-- the reference updates work on {values = flat list, shape = {r, c} or {n}}
local function ref_lion(p, g, st, o)
  local lr, b1, b2, wd = o.lr, o.betas[1], o.betas[2], o.weight_decay or 0
  st.m = st.m or {}
  for i = 1, #p do
    local m = st.m[i] or 0
    local gi = o.maximize and -g[i] or g[i]
    local c = b1 * m + (1 - b1) * gi
    local s = c > 0 and 1 or (c < 0 and -1 or 0)
    p[i] = p[i] * (1 - lr * wd) - lr * s
    st.m[i] = b2 * m + (1 - b2) * gi
  end
end

-- Adafactor (Shazeer and Stern 2018) with PyTorch's use of lr and eps1
local function ref_adafactor(p, g, st, o, shape)
  st.t = (st.t or 0) + 1
  local t, n = st.t, #p
  local lr, d, wd = o.lr or 1e-2, o.d or 1, o.weight_decay or 0
  local eps1 = o.eps and o.eps[1] or 2.220446049250313e-16
  local eps2 = o.eps and o.eps[2] or 1e-3
  local w = t ^ (o.beta2_decay or -0.8)
  local rho = math.min(lr, 1 / math.sqrt(t))
  local ss = 0
  for i = 1, n do ss = ss + p[i] * p[i] end
  local alpha = math.max(eps2, math.sqrt(ss / n)) * rho
  local gg = {}
  for i = 1, n do gg[i] = o.maximize and -g[i] or g[i] end
  local v = {}
  if #shape == 2 then
    local R, C = shape[1], shape[2]
    st.r, st.c = st.r or {}, st.c or {}
    for i = 1, R do
      local s = 0
      for j = 1, C do s = s + gg[(i - 1) * C + j] ^ 2 end
      local old = st.r[i] or 0
      st.r[i] = old + w * (s / C - old)
    end
    for j = 1, C do
      local s = 0
      for i = 1, R do s = s + gg[(i - 1) * C + j] ^ 2 end
      local old = st.c[j] or 0
      st.c[j] = old + w * (s / R - old)
    end
    local rm = 0
    for i = 1, R do rm = rm + st.r[i] end
    rm = math.max(rm / R, eps1)
    for i = 1, R do
      for j = 1, C do v[(i - 1) * C + j] = st.r[i] * st.c[j] / rm end
    end
  else
    st.v = st.v or {}
    for i = 1, n do
      local old = st.v[i] or 0
      st.v[i] = old + w * (gg[i] ^ 2 - old)
      v[i] = st.v[i]
    end
  end
  local u, us = {}, 0
  for i = 1, n do
    u[i] = gg[i] / math.sqrt(math.max(v[i], eps1 * eps1))
    us = us + u[i] * u[i]
  end
  local denom = math.max(1, math.sqrt(us / n) / d)
  for i = 1, n do
    p[i] = p[i] * (1 - lr * wd) - alpha / denom * u[i]
  end
end

local function matmul(a, b, n, k, m) -- a (n x k), b (k x m), row-major
  local c = {}
  for i = 1, n do
    for j = 1, m do
      local s = 0
      for l = 1, k do s = s + a[(i - 1) * k + l] * b[(l - 1) * m + j] end
      c[(i - 1) * m + j] = s
    end
  end
  return c
end

local function transpose(a, n, m)
  local t = {}
  for i = 1, n do
    for j = 1, m do t[(j - 1) * n + i] = a[(i - 1) * m + j] end
  end
  return t
end

-- Muon (Keller Jordan): momentum, Nesterov, 5 quintic Newton-Schulz steps
local function ref_muon(p, g, st, o, shape)
  local mu, lr = o.momentum or 0.95, o.lr or 1e-3
  local wd = o.weight_decay or 0.1
  local nesterov = o.nesterov ~= false
  local a, b, c = 3.4445, -4.7750, 2.0315
  local R, C = shape[1], shape[2]
  st.buf = st.buf or {}
  local u = {}
  for i = 1, #p do
    local old = st.buf[i] or 0
    st.buf[i] = mu * old + (1 - mu) * g[i]
    u[i] = nesterov and (1 - mu) * g[i] + mu * st.buf[i] or st.buf[i]
  end
  local tr = R > C
  local r, cc = R, C
  if tr then u, r, cc = transpose(u, R, C), C, R end
  local nrm = 0
  for i = 1, #u do nrm = nrm + u[i] * u[i] end
  nrm = math.max(math.sqrt(nrm), 1e-7)
  for i = 1, #u do u[i] = u[i] / nrm end
  for _ = 1, 5 do
    local A = matmul(u, transpose(u, r, cc), r, cc, r)
    local AA = matmul(A, A, r, r, r)
    local B = {}
    for i = 1, #A do B[i] = b * A[i] + c * AA[i] end
    local BX = matmul(B, u, r, r, cc)
    for i = 1, #u do u[i] = a * u[i] + BX[i] end
  end
  if tr then u = transpose(u, r, cc) end
  local scale = math.sqrt(math.max(1, R / C))
  for i = 1, #p do p[i] = p[i] * (1 - lr * wd) - lr * scale * u[i] end
end

describe("optim against their published updates", function()
  local function compare(name, opts, ref, shapes, steps)
    -- parameters from the start point, cut to the given shapes
    local x = start()
    local params, refs, at = {}, {}, 1
    for k, shape in ipairs(shapes) do
      local n = shape[1] * (shape[2] or 1)
      local vals = slice(x, at, n)
      at = at + n
      params[k] = lg.tensor(#shape == 2 and rows(vals, 1, shape[1], shape[2])
                            or vals, {dtype = lg.float64,
                                      requires_grad = true})
      refs[k] = {p = vals, st = {}, shape = shape}
    end
    local opt = lg.optim[name](params, opts)
    for s = 1, steps or 20 do
      for k, shape in ipairs(shapes) do
        -- the gradient at the reference point, fed to both
        local _, g = loss_grad(refs[k].p, 1)
        params[k].grad = lg.tensor(#shape == 2 and
                                   rows(g, 1, shape[1], shape[2]) or g, f64)
        ref(refs[k].p, g, refs[k].st, opts, shape)
      end
      opt:step()
      for k, shape in ipairs(shapes) do
        local got = params[k]:totable()
        if #shape == 2 then
          local fl = {}
          for _, r in ipairs(got) do
            for _, v in ipairs(r) do fl[#fl + 1] = v end
          end
          got = fl
        end
        close(got, refs[k].p, 1e-9, name .. " step " .. s)
      end
    end
  end

  it("Lion", function()
    compare("Lion", {lr = 0.01, betas = {0.9, 0.99}}, ref_lion, {{3, 4}, {4}})
    compare("Lion", {lr = 0.02, betas = {0.8, 0.9}, weight_decay = 0.5,
                     maximize = true}, ref_lion, {{16}})
  end)

  it("Lion has the paper's defaults", function()
    local A, b = make_params()
    local g = lg.optim.Lion({A, b}).param_groups[1]
    assert.are.same({1e-4, {0.9, 0.99}, 0}, {g.lr, g.betas, g.weight_decay})
  end)

  it("Adafactor, factored (matrices) and not (vectors)", function()
    compare("Adafactor", {}, ref_adafactor, {{3, 4}, {4}})
    compare("Adafactor", {lr = 0.05, beta2_decay = -0.5, eps = {1e-20, 1e-2},
                          d = 2, weight_decay = 0.1}, ref_adafactor,
            {{4, 3}, {2, 2}})
    compare("Adafactor", {maximize = true, lr = 0.1}, ref_adafactor,
            {{16}})
  end)

  it("Muon on wide and tall matrices", function()
    compare("Muon", {lr = 0.02}, ref_muon, {{3, 4}, {1, 4}})
    compare("Muon", {lr = 0.01, momentum = 0.9, nesterov = false,
                     weight_decay = 0}, ref_muon, {{4, 3}})
  end)

  it("Muon refuses parameters that are not matrices", function()
    local A, b = make_params()
    assert.has_error(function() lg.optim.Muon({A, b}) end,
      "Muon: parameter 2 has 1 dimensions; Muon only optimizes 2-d " ..
      "parameters (give biases and embeddings to AdamW)")
  end)
end)

-- ---- state_dict / load_state_dict -------------------------------------

local RESUME = {
  {"GD", {lr = 0.05}},
  {"SGD", {lr = 0.05, momentum = 0.9, nesterov = true}},
  {"Adam", {lr = 0.1, amsgrad = true}},
  {"AdamW", {lr = 0.1}},
  {"RMSprop", {lr = 0.01, centered = true, momentum = 0.5}},
  {"Adagrad", {lr = 0.1, initial_accumulator_value = 0.1}},
  {"Adadelta", {}},
  {"Adamax", {lr = 0.1}},
  {"NAdam", {lr = 0.05}},
  {"RAdam", {lr = 0.1}},
  {"Rprop", {lr = 0.01}},
  {"ASGD", {lr = 0.05, t0 = 3}},
  {"Adafactor", {}},
  {"Muon", {lr = 0.02}, true},
  {"Lion", {lr = 0.01}},
  {"LBFGS", {max_iter = 3, history_size = 4}},
  {"LBFGS", {line_search = "strong_wolfe", max_iter = 3}},
}

local function train(opt, A, b, n, name)
  for _ = 1, n do
    if name == "LBFGS" then
      opt:step(function() return set_grads(A, b, 1) end)
    else
      set_grads(A, b, 1)
      opt:step()
    end
  end
end

local function params_for(name, x)
  local A, b = make_params(x)
  if name == "Muon" then return {A}, A, b end
  return {A, b}, A, b
end

describe("state_dict", function()
  for _, c in ipairs(RESUME) do
    local name, opts = c[1], c[2]
    it(name .. " resumes bit for bit", function()
      local list, A, b = params_for(name)
      local opt = lg.optim[name](list, opts)
      train(opt, A, b, 12, name)
      local want = flat(A, b)

      local list2, A2, b2 = params_for(name)
      local opt2 = lg.optim[name](list2, opts)
      train(opt2, A2, b2, 5, name)
      local sd = opt2:state_dict()
      local x = flat(A2, b2)
      -- perturb the first run after saving: the saved state is a copy
      train(opt2, A2, b2, 3, name)

      local list3, A3, b3 = params_for(name, x)
      local opt3 = lg.optim[name](list3, opts)
      opt3:load_state_dict(sd)
      train(opt3, A3, b3, 7, name)
      local got = flat(A3, b3)
      for i = 1, #want do
        if got[i] ~= want[i] then
          error(string.format("element %d: %.17g after resuming, %.17g "
                              .. "uninterrupted", i, got[i], want[i]))
        end
      end
    end)
  end

  it("lists per-parameter state under PyTorch's names", function()
    local A, b = make_params()
    local opt = lg.optim.Adam({A, b}, {lr = 0.1, amsgrad = true})
    assert.are.same({}, opt:state_dict().state)
    set_grads(A, b)
    opt:step()
    local sd = opt:state_dict()
    assert.are.equal(1, sd.state[1].step)
    assert.are.same({3, 4}, sd.state[1].exp_avg:shape())
    assert.are.same({4}, sd.state[2].max_exp_avg_sq:shape())
    assert.are.same({1, 2}, sd.param_groups[1].params)
    assert.are.equal(0.1, sd.param_groups[1].lr)
    assert.are.same({0.9, 0.999}, sd.param_groups[1].betas)
    local af = lg.optim.Adafactor({A, b})
    set_grads(A, b)
    af:step()
    local st = af:state_dict().state
    assert.are.same({3, 1}, st[1].row_var:shape())
    assert.are.same({1, 4}, st[1].col_var:shape())
    assert.are.same({4}, st[2].variance:shape())
  end)

  it("restores hyperparameters and extra keys", function()
    local A, b = make_params()
    local opt = lg.optim.SGD({{params = {A}}, {params = {b}, lr = 0.5}},
                             {lr = 0.1, momentum = 0.9})
    opt.param_groups[1].initial_lr = 0.1
    local sd = opt:state_dict()
    local A2, b2 = make_params()
    local opt2 = lg.optim.SGD({{params = {A2}}, {params = {b2}}}, {lr = 1})
    opt2:load_state_dict(sd)
    assert.are.equal(0.1, opt2.param_groups[1].lr)
    assert.are.equal(0.5, opt2.param_groups[2].lr)
    assert.are.equal(0.9, opt2.param_groups[2].momentum)
    assert.are.equal(0.1, opt2.param_groups[1].initial_lr)
    assert.is_nil(opt2.param_groups[2].initial_lr)
  end)

  it("refuses a state dict of another shape", function()
    local A, b = make_params()
    local opt = lg.optim.Adam({A, b})
    set_grads(A, b)
    opt:step()
    local sd = opt:state_dict()
    local opt1 = lg.optim.Adam({A})
    assert.has_error(function() opt1:load_state_dict(sd) end,
      "load_state_dict: parameter group 1 has 2 parameters in the state " ..
      "dict and 1 in the optimizer")
    local opt2 = lg.optim.Adam({b, A})
    local ok, err = pcall(opt2.load_state_dict, opt2, sd)
    assert.is_false(ok)
    assert.truthy(err:find("load_state_dict: state 'exp_[a-z_]+' of " ..
                           "parameter 1 has 12 elements, expected 4$"), err)
    -- the failed load left no half-loaded state behind
    assert.are.same({}, opt2:state_dict().state)
    assert.has_error(function() opt2:load_state_dict({}) end,
      "load_state_dict: the state dict has no 'param_groups' list")
  end)

  it("survives lg.save and lg.load", function()
    if not lg.save then return pending("lg.save is not available") end
    local A, b = make_params()
    local opt = lg.optim.Adam({A, b}, {lr = 0.1})
    train(opt, A, b, 3)
    local path = os.tmpname()
    lg.save(path, opt:state_dict())
    local sd = lg.load(path)
    os.remove(path)
    local x = flat(A, b)
    train(opt, A, b, 4)
    local A2, b2 = make_params(x)
    local opt2 = lg.optim.Adam({A2, b2}, {lr = 0.1})
    opt2:load_state_dict(sd)
    train(opt2, A2, b2, 4)
    assert.are.same(flat(A, b), flat(A2, b2))
  end)
end)

-- ---- param_groups, zero_grad, dtypes ------------------------------------

describe("param_groups", function()
  it("reads and writes through to the optimizer", function()
    local A, b = make_params()
    local opt = lg.optim.SGD({A, b}, {lr = 0.1})
    local g = opt.param_groups[1]
    assert.are.equal(0.1, g.lr)
    assert.are.equal(A, g.params[1])
    assert.are.equal(b, g.params[2])
    opt.param_groups[1].lr = 0
    set_grads(A, b)
    local before = flat(A, b)
    opt:step()
    assert.are.same(before, flat(A, b))
    g.lr = 0.5
    assert.are.equal(0.5, opt.param_groups[1].lr)
    opt:step()
    local after = flat(A, b)
    local _, grad = loss_grad(before, 1)
    close(after, (function()
      local w = {}
      for i = 1, N do w[i] = before[i] - 0.5 * grad[i] end
      return w
    end)(), 1e-15)
  end)

  it("takes tuples, booleans and choices", function()
    local A = make_params()
    local opt = lg.optim.Adam({A})
    local g = opt.param_groups[1]
    g.betas = {0.5, 0.6}
    g.amsgrad = true
    assert.are.same({0.5, 0.6}, g.betas)
    assert.is_true(g.amsgrad)
    local l = lg.optim.LBFGS({A})
    assert.is_nil(l.param_groups[1].line_search)
    l.param_groups[1].line_search = "strong_wolfe"
    assert.are.equal("strong_wolfe", l.param_groups[1].line_search)
    assert.are.equal(25, l.param_groups[1].max_eval)
    assert.has_error(function() g.betas = {0.5, 1} end,
      "Adam: betas[2] must be in [0, 1) (got 1)")
    assert.has_error(function() g.lr = -1 end,
      "Adam: lr must be >= 0 (got -1)")
    assert.has_error(function() g.amsgrad = 1 end,
      "Adam: amsgrad must be a boolean, not a number")
    assert.has_error(function() g.params = {} end,
      "param_groups: 'params' cannot be assigned (use add_param_group)")
    assert.has_error(function() g.note = "x" end,
      "param_groups: 'note' must be a number, not a string")
  end)

  it("keeps extra numeric keys, as a scheduler stores them", function()
    local A = make_params()
    local opt = lg.optim.SGD({{params = {A}, lr = 0.1, max_lr = 1}})
    local g = opt.param_groups[1]
    assert.are.equal(1, g.max_lr)
    g.initial_lr = 0.1
    assert.are.equal(0.1, g.initial_lr)
    local seen = {}
    for k, v in pairs(g) do seen[k] = v end
    assert.are.equal(0.1, seen.initial_lr)
    assert.are.equal(0.1, seen.lr)
    assert.are.equal(A, seen.params[1])
    g.initial_lr = nil
    assert.is_nil(g.initial_lr)
  end)

  it("takes per-group options over the defaults", function()
    local A, b = make_params()
    local opt = lg.optim.Adam({{params = {A}}, {params = b, lr = 0.5}},
                              {lr = 0.1, weight_decay = 0.01})
    assert.are.equal(0.1, opt.param_groups[1].lr)
    assert.are.equal(0.5, opt.param_groups[2].lr)
    assert.are.equal(0.01, opt.param_groups[2].weight_decay)
    local c = lg.tensor({1.0}, {dtype = lg.float64, requires_grad = true})
    opt:add_param_group({params = {c}, eps = 1e-3})
    assert.are.equal(3, #opt.param_groups)
    assert.are.equal(0.1, opt.param_groups[3].lr)
    assert.are.equal(1e-3, opt.param_groups[3].eps)
    assert.has_error(function() opt:add_param_group({params = {A}}) end,
      "Adam: parameter 4 is already in parameter group 1")
  end)
end)

describe("step and zero_grad", function()
  it("skip parameters without a gradient", function()
    local A, b = make_params()
    local opt = lg.optim.Adam({A, b}, {lr = 0.1})
    set_grads(A, b)
    b.grad = nil
    local x = flat(A, b)
    opt:step()
    local y = flat(A, b)
    for i = 13, 16 do assert.are.equal(x[i], y[i]) end
    assert.are_not.equal(x[1], y[1])
    assert.is_nil(opt:state_dict().state[2])
  end)

  it("zero_grad sets grads to nil, or to zeros", function()
    local A, b = make_params()
    local opt = lg.optim.SGD({A, b}, {lr = 0.1})
    set_grads(A, b)
    opt:zero_grad()
    assert.is_nil(A.grad)
    assert.is_nil(b.grad)
    set_grads(A, b)
    opt:zero_grad(false)
    assert.are.same({0, 0, 0, 0}, b.grad:totable())
  end)

  it("calls the closure with grad enabled and returns its loss", function()
    local A, b = make_params()
    local opt = lg.optim.SGD({A, b}, {lr = 0.1})
    local loss = lg.no_grad(function()
      return opt:step(function()
        assert.is_true(lg.set_grad_enabled(true))
        return set_grads(A, b)
      end)
    end)
    local f = loss_grad(start(), 1)
    assert.are.equal(f, loss)
    assert.is_nil(opt:step())
  end)

  it("raises the closure's own error", function()
    local A = make_params()
    local opt = lg.optim.Adam({A})
    assert.has_error(function() opt:step(function() error("boom", 0) end) end,
                     "boom")
    local l = lg.optim.LBFGS({A})
    assert.has_error(function() l:step(function() error("bam", 0) end) end,
                     "bam")
  end)

  it("updates float32 parameters", function()
    local A, b = make_params(nil, lg.float32)
    local A2, b2 = make_params()
    local o1 = lg.optim.Adam({A, b}, {lr = 0.1})
    local o2 = lg.optim.Adam({A2, b2}, {lr = 0.1})
    for _ = 1, 10 do
      set_grads(A, b)
      set_grads(A2, b2)
      o1:step()
      o2:step()
    end
    close(flat(A, b), flat(A2, b2), 1e-4, "float32 against float64")
    assert.are.equal("float32", A:dtype())
  end)

  it("checks the gradients it is given", function()
    local A, b = make_params()
    local opt = lg.optim.SGD({A, b}, {lr = 0.1})
    set_grads(A, b)
    A.grad = lg.zeros({4, 3}, f64):t()
    assert.has_error(function() opt:step() end,
      "SGD.step: the gradient of parameter 1 is not contiguous")
  end)
end)

describe("optim errors", function()
  local A, b = make_params()

  it("names bad options", function()
    assert.has_error(function() lg.optim.Adam({A}, {lr = -1}) end,
      "Adam: lr must be >= 0 (got -1)")
    assert.has_error(function() lg.optim.Adam({A}, {betas = {1, 0.9}}) end,
      "Adam: betas[1] must be in [0, 1) (got 1)")
    assert.has_error(function() lg.optim.AdamW({A}, {betas = {0.9, -0.1}}) end,
      "AdamW: betas[2] must be in [0, 1) (got -0.10000000000000001)")
    assert.has_error(function() lg.optim.Adam({A}, {betas = 0.9}) end,
      "Adam: betas must be a table of 2 numbers")
    assert.has_error(function() lg.optim.Adam({A}, {lr = "big"}) end,
      "Adam: lr must be a number, not a string")
    assert.has_error(function() lg.optim.Adam({A}, {momentum = 0.9}) end,
      "Adam: unknown option 'momentum'")
    assert.has_error(function() lg.optim.SGD({A}) end,
      "SGD: lr is required")
    assert.has_error(function()
      lg.optim.SGD({A}, {lr = 0.1, nesterov = true})
    end, "SGD: Nesterov momentum requires a momentum and zero dampening")
    assert.has_error(function()
      lg.optim.Rprop({A}, {etas = {1.5, 1.2}})
    end, "Rprop: etas[1] must be in (0, 1) (got 1.5)")
    assert.has_error(function()
      lg.optim.Adadelta({A}, {rho = 1.5})
    end, "Adadelta: rho must be in [0, 1] (got 1.5)")
    assert.has_error(function()
      lg.optim.Adafactor({A}, {d = 0.5})
    end, "Adafactor: d must be >= 1 (got 0.5)")
    assert.has_error(function()
      lg.optim.LBFGS({A}, {max_iter = 2.5})
    end, "LBFGS: max_iter must be an integer (got 2.5)")
  end)

  it("names bad parameter lists", function()
    assert.has_error(function() lg.optim.Adam(A) end,
      "Adam: params must be a list of tensors or of parameter groups, " ..
      "not a lgrad.Tensor")
    assert.has_error(function() lg.optim.Adam(5) end,
      "Adam: params must be a list of tensors or of parameter groups, " ..
      "not a number")
    assert.has_error(function() lg.optim.SGD({}, {lr = 1}) end,
      "SGD: got an empty parameter list")
    assert.has_error(function() lg.optim.Adam({{params = {}}}) end,
      "Adam: got an empty parameter list")
    assert.has_error(function() lg.optim.Adam({A, 3}) end,
      "Adam: parameter 2 is a number, not a tensor")
    assert.has_error(function() lg.optim.Adam({A, A}) end,
      "Adam: parameter 2 appears twice in its group")
    assert.has_error(function() lg.optim.Adam({{lr = 1}}) end,
      "Adam: parameter group 1 has no 'params' list")
    assert.has_error(function()
      lg.optim.Adam({lg.tensor({1, 2})})
    end, "Adam: parameter 1 has dtype int64; optimizers need float32 or " ..
         "float64 parameters")
    assert.has_error(function()
      lg.optim.Adam({lg.zeros({2, 3}, f64):t()})
    end, "Adam: parameter 1 is not contiguous (call :contiguous() before " ..
         "making it a parameter)")
    assert.has_error(function() lg.optim.Adam({b * 2}) end,
      "Adam: parameter 1 is not a leaf tensor (it was computed by mul); " ..
      "optimize the leaf it comes from")
    assert.has_error(function() lg.optim.Nope({A}) end)
  end)
end)

-- ---- training: a softmax regression on a Fashion-MNIST subset ----------

describe("optim on Fashion-MNIST", function()
  it("every optimizer lowers a softmax regression's loss", function()
    local ok, data = pcall(function() return lg.data end)
    if not (ok and data and data.fashion_mnist and lg.F and
            lg.F.cross_entropy) then
      return pending("needs lg.data.fashion_mnist and lg.F.cross_entropy")
    end
    local ok2, X, Y = pcall(data.fashion_mnist, "train")
    if not ok2 then return pending("Fashion-MNIST files not found: " .. X) end
    local n = 512
    local x = X:narrow(1, 1, n):reshape(n, 784):double()
    local y = Y:narrow(1, 1, n)
    local kinds = {
      {"GD", {lr = 0.5}}, {"SGD", {lr = 0.1, momentum = 0.9}},
      {"Adam", {lr = 0.01}}, {"AdamW", {lr = 0.01}},
      {"RMSprop", {lr = 0.001}}, {"Adagrad", {lr = 0.1}},
      {"Adadelta", {lr = 1}}, {"Adamax", {lr = 0.01}},
      {"NAdam", {lr = 0.01}}, {"RAdam", {lr = 0.01}},
      {"Rprop", {lr = 0.001}}, {"ASGD", {lr = 0.1}},
      {"Adafactor", {lr = 1}}, {"Muon", {lr = 0.02}},
      {"Lion", {lr = 0.001}}, {"LBFGS", {line_search = "strong_wolfe"}},
    }
    for _, k in ipairs(kinds) do
      local W = lg.zeros({784, 10}, {dtype = lg.float64,
                                     requires_grad = true})
      local c = lg.zeros({1, 10}, {dtype = lg.float64, requires_grad = true})
      local params = k[1] == "Muon" and {W} or {W, c}
      local opt = lg.optim[k[1]](params, k[2])
      local function closure()
        opt:zero_grad()
        local loss = lg.F.cross_entropy(x:matmul(W) + c, y)
        loss:backward()
        return loss
      end
      local first = lg.no_grad(function()
        return lg.F.cross_entropy(x:matmul(W) + c, y):item()
      end)
      for _ = 1, (k[1] == "LBFGS" and 3 or 30) do opt:step(closure) end
      local last = lg.no_grad(function()
        return lg.F.cross_entropy(x:matmul(W) + c, y):item()
      end)
      assert.is_true(last < 0.9 * first, string.format(
        "%s: loss went from %.4f to %.4f", k[1], first, last))
    end
  end)
end)
