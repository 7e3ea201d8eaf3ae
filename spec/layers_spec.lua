-- Conv1d, RMSNorm, GroupNorm, AdaptiveAvgPool2d, ELU, SELU, Mish,
-- Hardtanh, Unflatten, ModuleDict, ParameterList and the loss modules
-- against torch 1.13 (float64 fixtures from spec/fixtures/gen_layers.py),
-- gradcheck of the lg.F functions behind them, and their errors.
local lg = require "lgrad"
require "helpers"
local nn, F = lg.nn, lg.F
local fixture = dofile("spec/fixtures/layers.lua")

local f64 = lg.float64

local function T(f)
  if f == nil then return nil end
  local d = f.dtype == "int64" and lg.int64 or f64
  return lg.tensor(f.data, { dtype = d }):reshape(f.shape)
end

local function err_of(fn, ...)
  local ok, e = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return tostring(e)
end

local function build(c)
  local args = {}
  for i, v in ipairs(c.args) do args[i] = v end
  local opts = {}
  for k, v in pairs(c.opts) do opts[k] = v end
  for k, v in pairs(c.topts or {}) do opts[k] = T(v) end
  if next(opts) then args[#args + 1] = opts end
  local m = nn[c.kind](table.unpack(args))
  m:double()
  local sd = {}
  for k, v in pairs(c.state) do sd[k] = T(v) end
  m:load_state_dict(sd)
  return m
end

local names = {}
for k in pairs(fixture.cases) do names[#names + 1] = k end
table.sort(names)

describe("layers and losses against torch (float64)", function()
  for _, name in ipairs(names) do
    local c = fixture.cases[name]
    it(name .. ": state_dict names, output and every gradient", function()
      local m = build(c)
      local keys = {}
      for k in pairs(m:state_dict()) do keys[#keys + 1] = k end
      assert.same(c.keys, keys)
      local x = T(c.input):requires_grad_(true)
      local out = c.target and m(x, T(c.target)) or m(x)
      assert.allclose(out, T(c.out), 1e-10, 1e-12, name)
      local wrt, wnames = {}, {}
      for k, p in pairs(m:named_parameters()) do
        wrt[#wrt + 1], wnames[#wnames + 1] = p, k
      end
      wrt[#wrt + 1], wnames[#wnames + 1] = x, "input"
      local grads = lg.grad({ (out * T(c.up)):sum() }, wrt)
      local n = 0
      for _ in pairs(c.grads) do n = n + 1 end
      assert.equals(n, #wnames)
      for i, k in ipairs(wnames) do
        assert.allclose(grads[i], T(c.grads[k]), 1e-9, 1e-11, name .. " d/d" .. k)
      end
    end)
  end
end)

describe("lg.F functions behind the layers", function()
  local d = { dtype = f64, requires_grad = true }
  local function check(fn, inputs)
    local ok, msg = lg.autograd.gradcheck(fn, inputs)
    assert(ok, tostring(msg))
  end

  it("pass gradcheck", function()
    lg.manual_seed(1)
    check(function(x, w, b) return F.conv1d(x, w, b, { stride = 2, padding = 2, dilation = 2 }) end,
          { lg.randn({ 2, 2, 7 }, d), lg.randn({ 3, 2, 3 }, d), lg.randn({ 3 }, d) })
    check(function(x, w) return F.conv1d(x, w, { padding = "same", groups = 2 }) end,
          { lg.randn({ 1, 4, 6 }, d), lg.randn({ 2, 2, 4 }, d) })
    check(function(x, w) return F.rms_norm(x, { 2, 3 }, w) end,
          { lg.randn({ 2, 2, 3 }, d), lg.randn({ 2, 3 }, d) })
    check(function(x, w, b) return F.group_norm(x, 2, w, b) end,
          { lg.randn({ 2, 4, 3 }, d), lg.randn({ 4 }, d), lg.randn({ 4 }, d) })
    check(function(x) return F.adaptive_avg_pool2d(x, { 3, 2 }) end,
          { lg.randn({ 1, 2, 5, 4 }, d) })
    for _, fn in ipairs({ F.elu, F.selu, F.mish }) do
      check(fn, { lg.randn({ 3, 4 }, d) })
    end
    check(function(x) return F.hardtanh(x, -0.5, 0.5) end,
          { lg.randn({ 3, 4 }, d) })
  end)

  it("are in lg.F without loading lg.nn, as the C functions are", function()
    for _, k in ipairs({ "conv1d", "rms_norm", "group_norm", "adaptive_avg_pool2d",
                         "elu", "selu", "mish", "hardtanh" }) do
      assert.is_function(rawget(F, k) or F[k], k)
    end
    assert.is_nil(F.no_such_function)
  end)

  it("rms_norm's eps defaults to the dtype's machine epsilon", function()
    local x64 = lg.zeros({ 1, 4 }, { dtype = f64 })
    x64[1][1] = 1e-4
    local x = x64:float()
    -- mean(x^2) = 2.5e-9 is far below float32's epsilon (1.19e-7)
    local y32 = F.rms_norm(x, 4):totable()[1][1]
    assert.near(1e-4 / math.sqrt(2.5e-9 + 1.1920928955078125e-07), y32, 1e-6)
    local y64 = F.rms_norm(x64, 4):totable()[1][1]
    assert.near(1e-4 / math.sqrt(2.5e-9 + 2.220446049250313e-16), y64, 1e-9)
    assert.near(1e-4 / math.sqrt(2.5e-9 + 1e-3),
                F.rms_norm(x64, 4, { eps = 1e-3 }):totable()[1][1], 1e-12)
  end)

  it("elu has no NaN gradient for large inputs", function()
    local x = lg.tensor({ 1000, -1000, 0.5 }, d)
    F.elu(x):sum():backward()
    assert.same({ 1, 0, 1 }, x.grad:totable())
  end)

  it("cross_entropy over (B, C, T) equals it over (B T, C)", function()
    lg.manual_seed(4)
    local logits = lg.randn(2, 5, 3)
    local labels = lg.randint(1, 5, { 2, 3 })
    local a = F.cross_entropy(logits, labels)
    local b = F.cross_entropy(logits:permute({ 1, 3, 2 }):reshape(6, 5), labels:reshape(6))
    assert.near(b:item(), a:item(), 1e-6)
    assert.near(a:item(), nn.CrossEntropyLoss()(logits, labels):item(), 1e-7)
  end)
end)

describe("containers", function()
  it("ModuleDict keeps names and order; its parameters are dotted", function()
    local md = nn.ModuleDict({ { "enc", nn.Linear(2, 3) }, { "act", nn.ReLU() },
                               { "dec", nn.Linear(3, 1) } })
    assert.same({ "enc", "act", "dec" }, md:keys())
    assert.equals(3, #md)
    assert.equals(md.dec, md:values()[3])
    local ks = {}
    for k in pairs(md:state_dict()) do ks[#ks + 1] = k end
    assert.same({ "enc.weight", "enc.bias", "dec.weight", "dec.bias" }, ks)
    local sorted = nn.ModuleDict({ b = nn.ReLU(), a = nn.Tanh() })
    assert.same({ "a", "b" }, sorted:keys())
    assert.matches("ModuleDict: 'x' is not a module", err_of(nn.ModuleDict, { x = 1 }))
    assert.matches("ModuleDict: has no forward", err_of(md, lg.zeros(1)))
  end)

  it("ParameterList names its parameters 0, 1, ... and trains them", function()
    local pl = nn.ParameterList({ lg.ones(2), lg.zeros(3) })
    assert.equals(2, #pl)
    assert.same({ 3 }, pl[2]:shape())
    assert.is_true(pl[1].requires_grad)
    assert.is_nil(pl[3])
    pl:append(lg.ones(1))
    local ks = {}
    for k in pairs(pl:state_dict()) do ks[#ks + 1] = k end
    assert.same({ "0", "1", "2" }, ks)
    assert.equals(3, #pl:parameters())
    assert.matches("ParameterList: element 2 is not a tensor",
                   err_of(nn.ParameterList, { lg.ones(1), 5 }))
  end)
end)

describe("layers reject bad input", function()
  it("naming the module and both shapes", function()
    local conv = nn.Conv1d(3, 4, 3)
    assert.matches("Conv1d: input must be %(N, 3, L%) or %(3, L%) %(got %[2,5,9%]%)",
                   err_of(conv, lg.randn(2, 5, 9)))
    assert.matches("conv1d: the input %[2,5,9%] has 5 channels but the weight %[4,3,3%] with groups = 1 expects 3",
                   err_of(F.conv1d, lg.randn(2, 5, 9), lg.randn(4, 3, 3)))
    assert.matches("conv1d: weight must be %(out_channels, in_channels / groups, kernel%) "
                   .. "%(got %[4,3%] for the input %[2,3,9%]%)",
                   err_of(F.conv1d, lg.randn(2, 3, 9), lg.randn(4, 3)))
    assert.matches("GroupNorm: input must be %(N, 4, ...%) %(got %[2,3%]%)",
                   err_of(nn.GroupNorm(2, 4), lg.randn(2, 3)))
    assert.matches("GroupNorm: num_channels %(5%) must be divisible by num_groups %(2%)",
                   err_of(nn.GroupNorm, 2, 5))
    assert.matches("group_norm: weight must have shape %[4%] for the input %[2,4,3%] %(got %[3%]%)",
                   err_of(F.group_norm, lg.randn(2, 4, 3), 2, lg.ones(3)))
    assert.matches("rms_norm: the input %[2,3%] does not end with normalized_shape %[4%]",
                   err_of(nn.RMSNorm(4), lg.randn(2, 3)))
    assert.matches("rms_norm: weight must have shape %[3%] %(got %[2%]%)",
                   err_of(F.rms_norm, lg.randn(2, 3), 3, lg.ones(2)))
    assert.matches("adaptive_avg_pool2d: input must be %(N, C, H, W%) or %(C, H, W%) %(got %[2,3%]%)",
                   err_of(nn.AdaptiveAvgPool2d(2), lg.randn(2, 3)))
    assert.matches("Unflatten: cannot unflatten dim 2 %(size 6%) of the input %[4,6%] into %[4,2%]",
                   err_of(nn.Unflatten(2, { 4, 2 }), lg.randn(4, 6)))
    assert.matches("hardtanh: min_val %(1%) must not exceed max_val %(0%)",
                   err_of(F.hardtanh, lg.randn(2), 1, 0))
    assert.matches("CrossEntropyLoss: unknown option 'smoothing'",
                   err_of(nn.CrossEntropyLoss, { smoothing = 0.1 }))
    assert.matches("MSELoss: unknown option 'delta'", err_of(nn.MSELoss, { delta = 1 }))
  end)
end)
