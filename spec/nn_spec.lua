-- lg.nn: modules against torch.nn (spec/fixtures/gen_nn.py sets torch's
-- weights and records inputs, outputs, gradients and running statistics;
-- here the same modules are built, the weights loaded with
-- load_state_dict, and everything compared to 1e-9 relative in float64 and
-- 1e-4 in float32, with an absolute floor of 1e-2 times those for
-- gradients that are zero in exact arithmetic, such as a bias before
-- BatchNorm), names and order of parameters and state dicts, parameter
-- counts, train/eval behaviour, state_dict round trips, repr,
-- initializations, Lua-defined modules, and error messages.
local lg = require "lgrad"
local nn = lg.nn
local fixture = dofile("spec/fixtures/nn.lua")
local cases = fixture.cases

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

local function shape_str(s) return "[" .. table.concat(s, ",") .. "]" end

local function check_close(got, want, tol, what)
  assert(got ~= nil, what .. ": missing")
  local gs, ws = shape_str(got:shape()), shape_str(want.shape)
  if gs ~= ws then
    error(string.format("%s: shape %s, expected %s", what, gs, ws), 2)
  end
  local g, w = flat(got), want.data
  local big = 0
  for i = 1, #w do big = math.max(big, math.abs(w[i])) end
  for i = 1, #w do
    local scale = math.max(math.abs(w[i]), 0.1 * big, 1e-2)
    if not (math.abs(g[i] - w[i]) <= tol * scale) then -- luacheck: ignore 581
      error(string.format("%s: element %d is %.12g, expected %.12g", what, i,
                          g[i], w[i]), 2)
    end
  end
end

local function keys_of(ordered)
  local ks = {}
  for k in pairs(ordered) do ks[#ks + 1] = k end
  return ks
end

-- the Lua twin of gen_nn.py's Custom module
local Custom = nn.Module:extend("Custom")
function Custom:init()
  self.fc1 = nn.Linear(4, 6)
  self.scale = nn.Parameter(lg.ones(3))
  self.norm = nn.BatchNorm1d(6)
  self.fc2 = nn.Linear(6, 3)
end
function Custom:forward(x)
  return self.fc2(self.norm(self.fc1(x)):tanh()) * self.scale
end

-- the lgrad module of each fixture case
local builders = {
  linear = function() return nn.Linear(5, 3) end,
  linear_nobias = function() return nn.Linear(5, 3, {bias = false}) end,
  conv = function() return nn.Conv2d(3, 4, 3, {stride = 2, padding = 1}) end,
  conv_groups = function()
    return nn.Conv2d(4, 6, {3, 2}, {stride = {1, 2}, padding = {2, 1},
                                    dilation = {2, 1}, groups = 2,
                                    bias = false})
  end,
  conv_same = function() return nn.Conv2d(2, 3, 5, {padding = "same"}) end,
  maxpool = function() return nn.MaxPool2d(2) end,
  maxpool_opts = function()
    return nn.MaxPool2d(3, {stride = 2, padding = 1, ceil_mode = true})
  end,
  avgpool = function() return nn.AvgPool2d(2) end,
  avgpool_opts = function()
    return nn.AvgPool2d(3, {stride = 2, padding = 1,
                            count_include_pad = false})
  end,
  flatten = function() return nn.Flatten() end,
  embedding = function() return nn.Embedding(10, 4, {padding_idx = 3}) end,
  bn1d = function() return nn.BatchNorm1d(4) end,
  bn1d_3d_cumulative = function()
    return nn.BatchNorm1d(3, {momentum = false})
  end,
  bn2d = function() return nn.BatchNorm2d(3, {momentum = 0.3, eps = 1e-3}) end,
  bn2d_noaffine = function() return nn.BatchNorm2d(3, {affine = false}) end,
  layernorm = function() return nn.LayerNorm(6) end,
  layernorm2 = function() return nn.LayerNorm({4, 6}, {eps = 1e-3}) end,
  relu = function() return nn.ReLU() end,
  gelu = function() return nn.GELU() end,
  gelu_tanh = function() return nn.GELU{approximate = "tanh"} end,
  tanh = function() return nn.Tanh() end,
  sigmoid = function() return nn.Sigmoid() end,
  leaky_relu = function() return nn.LeakyReLU(0.2) end,
  softmax = function() return nn.Softmax(2) end,
  softmax_dim0 = function() return nn.Softmax(1) end,
  log_softmax = function() return nn.LogSoftmax(-1) end,
  identity = function() return nn.Identity() end,
  dropout_eval = function() return nn.Dropout(0.5) end,
  mlp = function()
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Dropout(0.5),
                         nn.Linear(8, 3))
  end,
  cnn = function()
    return nn.Sequential(nn.Conv2d(1, 4, 3, {padding = 1}),
                         nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(4 * 3 * 3, 5))
  end,
  custom = function() return Custom() end,
}

local function run_case(name, dtype, tol)
  local c = cases[name]
  local m = builders[name]()
  m:to(dtype)
  local sd = {}
  for k, f in pairs(c.state) do sd[k] = T(f, dtype) end
  m:load_state_dict(sd)
  for _, s in ipairs(c.steps) do
    if s.mode == "train" then m:train() else m:eval() end
    local x = T(s.input, dtype)
    if not c.index_input then x:requires_grad_(true) end
    m:zero_grad()
    local out = m(x)
    check_close(out, s.out, tol, name .. " " .. s.mode .. " output")
    local leaves = m:named_parameters()
    if #leaves > 0 or not c.index_input then
      out:backward(T(s.upstream, dtype))
      for k, g in pairs(s.grads) do
        local got = k == "input" and x.grad or leaves[k].grad
        check_close(got, g, tol, name .. " grad " .. k)
      end
    end
    local bufs = m:named_buffers()
    for k, v in pairs(s.after) do
      check_close(bufs[k], v, tol, name .. " " .. k .. " after")
    end
  end
end

-- ---- against PyTorch ----

describe("lg.nn against torch.nn", function()
  local names = {}
  for k in pairs(cases) do names[#names + 1] = k end
  table.sort(names)
  for _, name in ipairs(names) do
    it(name .. " (float64)", function()
      run_case(name, lg.float64, 1e-9)
    end)
    it(name .. " (float32)", function()
      run_case(name, lg.float32, 1e-4)
    end)
  end

  it("names parameters and state dict entries as PyTorch, in its order",
    function()
      for _, name in ipairs(names) do
        local c, m = cases[name], builders[name]()
        assert.are.same(c.param_keys, keys_of(m:named_parameters()), name)
        assert.are.same(c.keys, keys_of(m:state_dict()), name)
      end
    end)

  it("counts parameters as PyTorch", function()
    for _, name in ipairs(names) do
      local m = builders[name]()
      assert.are.equal(cases[name].nparams, m:num_parameters(), name)
      local n = 0
      for _, p in ipairs(m:parameters()) do n = n + p:numel() end
      assert.are.equal(cases[name].nparams, n, name)
    end
  end)

  it("calculate_gain matches torch.nn.init", function()
    local g = fixture.gains
    local init = nn.init
    for _, nl in ipairs {"linear", "conv2d", "sigmoid", "tanh", "relu",
                         "leaky_relu", "selu"} do
      assert.is_true(math.abs(init.calculate_gain(nl) - g[nl]) < 1e-12, nl)
    end
    assert.is_true(math.abs(init.calculate_gain("leaky_relu", 0.2)
                            - g.leaky_relu_0_2) < 1e-12)
  end)
end)

-- ---- modules, containers and names ----

describe("lg.nn modules", function()
  before_each(function() lg.manual_seed(1) end)

  it("Sequential takes modules or one list, indexes them from 1", function()
    local a, b = nn.Linear(3, 4), nn.ReLU()
    local s1, s2 = nn.Sequential(a, b), nn.Sequential{a, b}
    assert.are.equal(2, #s1)
    assert.are.equal(2, #s2)
    assert.are.equal(a, s1[1])
    assert.are.equal(b, s2[2])
    s1:add(nn.Linear(4, 2))
    assert.are.equal(3, #s1)
    assert.are.same({"0.weight", "0.bias", "2.weight", "2.bias"},
                    keys_of(s1:named_parameters()))
    local y = s1(lg.randn(5, 3))
    assert.are.same({5, 2}, y:shape())
  end)

  it("named_parameters is a list of pairs, a map and an iterator", function()
    local m = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    local np = m:named_parameters()
    assert.are.equal(4, #np)
    assert.are.equal("0.weight", np[1][1])
    assert.are.equal(np[1][2], np["0.weight"])
    local names = {}
    for name, p in m:named_parameters() do
      names[#names + 1] = name
      assert.is_true(lg.is_tensor(p))
    end
    assert.are.same({"0.weight", "0.bias", "1.weight", "1.bias"}, names)
    local list = m:parameters()
    for i = 1, 4 do assert.are.equal(np[i][2], list[i]) end
  end)

  it("counts a shared parameter once", function()
    local lin = nn.Linear(3, 3)
    local m = nn.Sequential(lin, nn.Tanh(), lin)
    assert.are.equal(2, #m:parameters())
    assert.are.equal(12, m:num_parameters())
    -- the state dict keeps both names, as PyTorch's
    assert.are.equal(4, #keys_of(m:state_dict()))
  end)

  it("shapes of every layer", function()
    local x = lg.randn(2, 3, 9, 9)
    assert.are.same({2, 5, 9, 9}, nn.Conv2d(3, 5, 3, {padding = 1})(x):shape())
    assert.are.same({2, 5, 4, 4}, nn.Conv2d(3, 5, 3, {stride = 2})(x):shape())
    assert.are.same({2, 3, 4, 4}, nn.MaxPool2d(2)(x):shape())
    assert.are.same({2, 3, 3, 3}, nn.AvgPool2d(3)(x):shape())
    assert.are.same({2, 243}, nn.Flatten()(x):shape())
    assert.are.same({2, 3, 81}, nn.Flatten(3)(x):shape())
    assert.are.same({2, 3, 9, 9}, nn.BatchNorm2d(3)(x):shape())
    assert.are.same({2, 3, 9, 9}, nn.LayerNorm{9, 9}(x):shape())
    local idx = lg.tensor({{1, 2}, {3, 4}}, {dtype = lg.int64})
    assert.are.same({2, 2, 7}, nn.Embedding(4, 7)(idx):shape())
    assert.are.same({4, 6}, nn.Linear(5, 6)(lg.randn(4, 5)):shape())
  end)

  it("keeps the Embedding padding row at zero with no gradient", function()
    local e = nn.Embedding(5, 3, {padding_idx = 2})
    assert.are.same({0, 0, 0}, e.weight[2]:totable())
    local idx = lg.tensor({1, 2, 2, 5}, {dtype = lg.int64})
    e(idx):sum():backward()
    assert.are.same({0, 0, 0}, e.weight.grad[2]:totable())
    assert.are.same({1, 1, 1}, e.weight.grad[5]:totable())
    assert.are.same({1, 1, 1}, e.weight.grad[1]:totable())
  end)

  it("Conv2d padding \"same\" keeps the size", function()
    local c = nn.Conv2d(2, 4, 3, {padding = "same", dilation = 2})
    assert.are.same({1, 4, 7, 8}, c(lg.randn(1, 2, 7, 8)):shape())
  end)
end)

-- ---- train and eval ----

describe("lg.nn train and eval", function()
  before_each(function() lg.manual_seed(3) end)

  it("Dropout drops in training and passes through in eval", function()
    local d = nn.Dropout(0.5)
    local x = lg.ones(1000)
    local y = d(x)
    local zeros = y:eq(0):sum():item()
    assert.is_true(zeros > 400 and zeros < 600, "zeros: " .. zeros)
    -- the kept elements are scaled by 1 / (1 - p)
    assert.are.equal(2, y:max():item())
    d:eval()
    assert.are.equal(x, d(x))
    d:train()
    assert.is_true(d(x):eq(0):sum():item() > 0)
  end)

  it("train() and eval() reach every sub-module", function()
    local m = nn.Sequential(nn.Linear(2, 2),
                            nn.Sequential(nn.Dropout(0.1),
                                          nn.BatchNorm1d(2)))
    m:eval()
    for _, sub in ipairs(m:modules()) do assert.is_false(sub.training) end
    m:train()
    for _, sub in ipairs(m:modules()) do assert.is_true(sub.training) end
    m:train(false)
    assert.is_false(m[2][2].training)
  end)

  it("BatchNorm updates running statistics only in training", function()
    local bn = nn.BatchNorm1d(3)
    local x = lg.randn(16, 3) * 2 + 5
    bn(x)
    assert.are.equal(1, bn.num_batches_tracked:item())
    local mean = bn.running_mean:clone()
    -- momentum 0.1 from zero: 0.1 * the batch mean
    local bm = x:mean(1)
    assert.is_true(((mean - bm * 0.1):abs():max():item()) < 1e-5)
    bn:eval()
    local y = bn(x)
    assert.are.equal(1, bn.num_batches_tracked:item())
    assert.are.same(mean:totable(), bn.running_mean:totable())
    -- eval normalizes with the running statistics
    local want = (x - bn.running_mean) / (bn.running_var + 1e-5):sqrt()
    assert.is_true((y - want):abs():max():item() < 1e-4)
  end)

  it("BatchNorm without running statistics uses the batch's in eval",
    function()
      local bn = nn.BatchNorm1d(2, {track_running_stats = false})
      assert.are.equal(0, #keys_of(bn:named_buffers()))
      bn:eval()
      local y = bn(lg.randn(8, 2) * 3 + 1)
      assert.is_true(y:mean(1):abs():max():item() < 1e-5)
    end)
end)

-- ---- state dicts ----

describe("lg.nn state_dict", function()
  before_each(function() lg.manual_seed(5) end)

  local function cnn()
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(),
                         nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
  end

  it("round-trips into a fresh model", function()
    local a, b = cnn(), cnn()
    a(lg.randn(4, 1, 6, 6)) -- moves the running statistics
    b:load_state_dict(a:state_dict())
    a:eval()
    b:eval()
    local x = lg.randn(2, 1, 6, 6)
    assert.are.same(a(x):totable(), b(x):totable())
    assert.are.equal(1, b[2].num_batches_tracked:item())
  end)

  it("round-trips through lg.save and lg.load", function()
    local a, b = cnn(), cnn()
    a(lg.randn(4, 1, 6, 6))
    local path = os.tmpname()
    lg.save(path, a:state_dict())
    b:load_state_dict(lg.load(path))
    -- nested under a key, as a checkpoint holds it
    lg.save(path, {model = a:state_dict(), epoch = 3})
    local c = cnn()
    c:load_state_dict(lg.load(path).model)
    os.remove(path)
    a:eval(); b:eval(); c:eval()
    local x = lg.randn(2, 1, 6, 6)
    assert.are.same(a(x):totable(), b(x):totable())
    assert.are.same(a(x):totable(), c(x):totable())
  end)

  it("shares storage with the parameters, detached", function()
    local m = nn.Linear(2, 2)
    local sd = m:state_dict()
    assert.is_false(sd.weight.requires_grad)
    assert.are.equal(m.weight:storage_id(), sd.weight:storage_id())
    lg.no_grad(function() m.weight:fill_(7) end)
    assert.are.equal(7, sd.weight[1][1])
  end)

  it("load_state_dict copies values and keeps the parameters", function()
    local m, src = nn.Linear(2, 2), nn.Linear(2, 2)
    local w = m.weight
    m:load_state_dict(src:state_dict())
    assert.are.equal(w, m.weight)
    assert.is_true(m.weight.requires_grad)
    assert.are.same(src.weight:totable(), m.weight:totable())
  end)

  it("names missing and unexpected keys, and loads nothing then", function()
    local m = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    local before = m[1].weight:clone()
    local sd = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1)):state_dict()
    sd["1.bias"] = nil
    sd["2.weight"] = lg.zeros(1)
    assert.has_error(function() m:load_state_dict(sd) end,
      "load_state_dict: missing keys: 1.bias; unexpected keys: 2.weight")
    assert.are.same(before:totable(), m[1].weight:totable())
  end)

  it("names the key of a shape mismatch", function()
    local m = nn.Linear(2, 3)
    local sd = nn.Linear(3, 2):state_dict()
    assert.has_error(function() m:load_state_dict(sd) end,
      "load_state_dict: size mismatch for 'weight': the module has [3,2], "
      .. "the state dict [2,3]; size mismatch for 'bias': the module has "
      .. "[3], the state dict [2]")
  end)

  it("non-strict loading returns missing and unexpected keys", function()
    local m = nn.Linear(2, 3)
    local src = nn.Linear(2, 3)
    local missing, unexpected = m:load_state_dict(
      {weight = src.weight:detach(), extra = lg.zeros(1)}, {strict = false})
    assert.are.same({"bias"}, missing)
    assert.are.same({"extra"}, unexpected)
    assert.are.same(src.weight:totable(), m.weight:totable())
  end)

  it("rejects a value that is not a tensor", function()
    local m = nn.Linear(2, 3)
    local sd = m:state_dict()
    sd.bias = 3
    assert.has_error(function() m:load_state_dict(sd) end,
      "load_state_dict: 'bias' is a number, not a tensor")
  end)
end)

-- ---- Lua-defined modules ----

describe("lg.nn.Module subclasses", function()
  before_each(function() lg.manual_seed(9) end)

  it("register sub-modules, parameters and buffers by assignment",
    function()
      local Net = nn.Module:extend("Net")
      function Net:init(n)
        self.body = nn.Sequential(nn.Linear(n, 4), nn.ReLU())
        self.w = lg.randn(4, {requires_grad = true})
        self.plain = lg.zeros(2) -- no grad: an attribute, not registered
        self:register_buffer("steps", lg.tensor(0))
        self.label = "net"
      end
      function Net:forward(x)
        self.steps:add_(1)
        return (self.body(x) * self.w):sum(-1)
      end
      local m = Net(3)
      assert.are.same({"w", "body.0.weight", "body.0.bias"},
                      keys_of(m:named_parameters()))
      assert.are.same({"w", "steps", "body.0.weight", "body.0.bias"},
                      keys_of(m:state_dict()))
      assert.are.same({5}, m(lg.randn(5, 3)):shape())
      assert.are.equal(1, m.steps:item())
      -- reassigning a registered field keeps its place
      m.w = lg.ones(4, {requires_grad = true})
      assert.are.equal(m.w, m:named_parameters().w)
      assert.are.equal(
        "Net(\n  (body): Sequential(\n    (0): Linear(in_features=3, "
        .. "out_features=4, bias=true)\n    (1): ReLU()\n  )\n)\n"
        .. "Parameters: 20", tostring(m))
    end)

  it("subclasses of subclasses inherit init, forward and metamethods",
    function()
      local Base = nn.Module:extend("Base")
      function Base:init(k) self.k = k end
      function Base:forward(x) return x * self.k end
      local Twice = Base:extend("Twice")
      function Twice:forward(x) return Base.forward(self, x) * 2 end
      local m = Twice(3)
      assert.are.equal(Base, Twice.super)
      assert.are.equal(12, m(lg.tensor(2)):item())
      assert.are.equal("Twice()\nParameters: 0", tostring(m))
    end)

  it("a module without forward says so", function()
    local Empty = nn.Module:extend("Empty")
    assert.has_error(function() Empty()(lg.zeros(1)) end,
      "Empty: forward is not implemented")
  end)

  it("zero_grad clears the gradients of every parameter", function()
    local m = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    m(lg.randn(4, 3)):sum():backward()
    for _, p in ipairs(m:parameters()) do assert.is_not_nil(p.grad) end
    m:zero_grad()
    for _, p in ipairs(m:parameters()) do assert.is_nil(p.grad) end
  end)

  it("requires_grad_(false) freezes and the repr counts trainable ones",
    function()
      local m = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
      m[1]:requires_grad_(false)
      assert.are.equal(11, m:num_parameters())
      assert.are.equal(3, m:num_parameters(true))
      assert.is_truthy(tostring(m):find("Parameters: 11 %(trainable 3%)"))
    end)

  it("apply visits children before the parent", function()
    local m = nn.Sequential(nn.Linear(1, 1), nn.ReLU())
    local seen = {}
    m:apply(function(mod) seen[#seen + 1] = mod.__name end)
    assert.are.same({"Linear", "ReLU", "Sequential"}, seen)
  end)

  it("to(float64) converts parameters and buffers", function()
    local m = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)):double()
    for _, t in pairs(m:state_dict()) do
      local d = t:dtype()
      assert.is_true(d == "float64" or d == "int64")
    end
    assert.is_true(m[1].weight.requires_grad)
    assert.are.equal("float64", m(lg.randn(3, 2, {dtype = lg.float64})):dtype())
  end)
end)

-- ---- repr ----

describe("lg.nn repr", function()
  it("prints the structure as PyTorch, then the parameter count", function()
    local m = nn.Sequential(nn.Conv2d(1, 8, 3, {padding = 1}),
                            nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                            nn.Flatten(), nn.Dropout(0.25),
                            nn.Linear(8 * 14 * 14, 10))
    assert.are.equal([[
Sequential(
  (0): Conv2d(1, 8, kernel_size=3, stride=1, padding=1)
  (1): BatchNorm2d(8, eps=1e-05, momentum=0.1, affine=true, track_running_stats=true)
  (2): ReLU()
  (3): MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=false)
  (4): Flatten(start_dim=2, end_dim=-1)
  (5): Dropout(p=0.25)
  (6): Linear(in_features=1568, out_features=10, bias=true)
)
Parameters: 15,786]], tostring(m))
  end)

  it("describes each layer's options", function()
    assert.are.equal("Linear(in_features=3, out_features=2, bias=false)",
                     tostring(nn.Linear(3, 2, {bias = false})):match("^[^\n]*"))
    assert.are.equal("Conv2d(4, 6, kernel_size=(3, 2), stride=(1, 2), "
                     .. "padding=(2, 1), dilation=(2, 1), groups=2, bias=false)",
      tostring(nn.Conv2d(4, 6, {3, 2}, {stride = {1, 2}, padding = {2, 1},
                                        dilation = {2, 1}, groups = 2,
                                        bias = false})):match("^[^\n]*"))
    assert.are.equal("Embedding(10, 4, padding_idx=3)",
      tostring(nn.Embedding(10, 4, {padding_idx = 3})):match("^[^\n]*"))
    assert.are.equal("LayerNorm((6,), eps=1e-05, elementwise_affine=true)",
      tostring(nn.LayerNorm(6)):match("^[^\n]*"))
    assert.are.equal("GELU(approximate='tanh')",
      tostring(nn.GELU("tanh")):match("^[^\n]*"))
    assert.are.equal("LeakyReLU(negative_slope=0.2)",
      tostring(nn.LeakyReLU(0.2)):match("^[^\n]*"))
  end)
end)

-- ---- initialization ----

describe("lg.nn.init", function()
  local init = nn.init
  before_each(function() lg.manual_seed(11) end)

  local function within(t, bound)
    return t:abs():max():item() <= bound + 1e-7
  end

  it("Linear and Conv2d default to PyTorch's bounds", function()
    local lin = nn.Linear(400, 300)
    local b = 1 / math.sqrt(400)
    assert.is_true(within(lin.weight, b))
    assert.is_true(within(lin.bias, b))
    -- uniform: std = bound / sqrt(3), and it fills the range
    assert.is_true(math.abs(lin.weight:std():item() - b / math.sqrt(3)) < 1e-3)
    assert.is_true(lin.weight:abs():max():item() > 0.99 * b)
    local conv = nn.Conv2d(8, 16, 3)
    local cb = 1 / math.sqrt(8 * 9)
    assert.is_true(within(conv.weight, cb))
    assert.is_true(within(conv.bias, cb))
    assert.is_true(conv.weight:abs():max():item() > 0.95 * cb)
  end)

  it("Embedding is N(0, 1), norms start at identity", function()
    local e = nn.Embedding(1000, 50)
    assert.is_true(math.abs(e.weight:std():item() - 1) < 0.02)
    local bn = nn.BatchNorm1d(3)
    assert.are.same({1, 1, 1}, bn.weight:totable())
    assert.are.same({0, 0, 0}, bn.bias:totable())
    assert.are.same({1, 1, 1}, bn.running_var:totable())
  end)

  it("uniform_, normal_, constant_ fill in place and keep requires_grad",
    function()
      local w = lg.empty({200, 100}, {requires_grad = true})
      assert.are.equal(w, init.uniform_(w, -2, 3))
      assert.is_true(w:min():item() >= -2 and w:max():item() <= 3)
      assert.is_true(w.requires_grad)
      init.normal_(w, 1, 0.5)
      assert.is_true(math.abs(w:mean():item() - 1) < 0.02)
      assert.is_true(math.abs(w:std():item() - 0.5) < 0.02)
      init.constant_(w, 0.25)
      assert.are.equal(0.25, w:min():item())
      assert.are.equal(0.25, w:max():item())
    end)

  it("xavier and kaiming scale by the fans and the gain", function()
    local w = lg.empty(300, 200)
    init.xavier_uniform_(w)
    local a = math.sqrt(6 / 500)
    assert.is_true(within(w, a) and w:abs():max():item() > 0.99 * a)
    init.xavier_normal_(w, 2)
    assert.is_true(math.abs(w:std():item() - 2 * math.sqrt(2 / 500)) < 0.003)
    init.kaiming_uniform_(w, {nonlinearity = "relu"})
    local kb = math.sqrt(2) * math.sqrt(3 / 200)
    assert.is_true(within(w, kb) and w:abs():max():item() > 0.99 * kb)
    init.kaiming_normal_(w, {mode = "fan_out", nonlinearity = "relu"})
    assert.is_true(math.abs(w:std():item() - math.sqrt(2 / 300)) < 0.002)
    -- positional a, as torch: leaky_relu gain with slope a
    init.kaiming_uniform_(w, math.sqrt(5))
    assert.is_true(within(w, 1 / math.sqrt(200)))
    local c = lg.empty(16, 8, 3, 3)
    init.kaiming_normal_(c)
    assert.is_true(math.abs(c:std():item()
                            - math.sqrt(2 / 1.0001) / math.sqrt(72)) < 0.01)
  end)

  it("orthogonal_ gives orthonormal rows or columns, times the gain",
    function()
      for _, shape in ipairs {{6, 4}, {4, 6}, {5, 5}, {3, 2, 2}} do
        local w = lg.empty(shape, {dtype = lg.float64})
        init.orthogonal_(w, 2)
        local m = w:reshape(shape[1], -1)
        local g = m:size(1) <= m:size(2) and m:mm(m:t()) or m:t():mm(m)
        local n = g:size(1)
        local err = (g - lg.eye(n, {dtype = lg.float64}) * 4):abs():max()
        assert.is_true(err:item() < 1e-10, shape_str(shape))
      end
    end)

  it("the same seed gives the same initialization", function()
    lg.manual_seed(42)
    local a = nn.Linear(5, 5)
    lg.manual_seed(42)
    local b = nn.Linear(5, 5)
    assert.are.same(a.weight:totable(), b.weight:totable())
    local g1, g2 = lg.Generator(3), lg.Generator(3)
    local w1, w2 = lg.empty(4, 4), lg.empty(4, 4)
    init.kaiming_uniform_(w1, {generator = g1})
    init.kaiming_uniform_(w2, {generator = g2})
    assert.are.same(w1:totable(), w2:totable())
  end)

  it("errors name the function and the cause", function()
    assert.has_error(function() init.xavier_uniform_(lg.empty(5)) end,
      "init.xavier_uniform_: fan in and fan out need a tensor with at "
      .. "least 2 dimensions (got 1)")
    assert.has_error(function()
      init.kaiming_uniform_(lg.empty(2, 2), {mode = "fan"})
    end, "init.kaiming_uniform_: mode must be \"fan_in\" or \"fan_out\" "
      .. "(got fan)")
    assert.has_error(function() init.calculate_gain("swish") end,
      "init.calculate_gain: unsupported nonlinearity 'swish'")
    assert.has_error(function()
      init.uniform_(lg.zeros({2}, {dtype = lg.int64}))
    end, "init.uniform_: needs a float tensor (got int64)")
  end)
end)

-- ---- errors ----

describe("lg.nn errors", function()
  it("constructors check their arguments", function()
    assert.has_error(function() nn.Linear(3) end,
      "Linear: out_features must be an integer >= 0 (got nil)")
    assert.has_error(function() nn.Linear(3, 2, {baias = false}) end,
      "Linear: unknown option 'baias'")
    assert.has_error(function() nn.Conv2d(3, 4, 3, {groups = 2}) end,
      "Conv2d: in_channels (3) and out_channels (4) must be divisible by "
      .. "groups (2)")
    assert.has_error(function() nn.Conv2d(3, 4, "x") end,
      "Conv2d: kernel_size must be an integer or a pair {h, w} (got x)")
    assert.has_error(function() nn.Dropout(1.5) end,
      "Dropout: p must be a probability in [0, 1] (got 1.5)")
    assert.has_error(function() nn.Embedding(5, 2, {padding_idx = 6}) end,
      "Embedding: padding_idx must be an index in 1..5 (got 6)")
    assert.has_error(function() nn.Sequential(nn.ReLU(), 3) end,
      "Sequential: argument 2 is not a module (got number)")
    assert.has_error(function() nn.GELU("fast") end,
      "GELU: approximate must be \"none\" or \"tanh\" (got fast)")
  end)

  it("forward reports shape errors with both shapes", function()
    assert.has_error(function() nn.Linear(3, 2)(lg.randn(4, 5)) end,
      "linear: input [4,5] and weight [2,3] do not align (the input's last "
      .. "dim must be 3)")
    assert.has_error(function() nn.BatchNorm2d(3)(lg.randn(4, 3)) end,
      "BatchNorm2d: expected a 4-d input (N, C, H, W), got [4,3]")
    assert.has_error(function() nn.BatchNorm1d(3)(lg.randn(4)) end,
      "BatchNorm1d: expected a 2-d or 3-d input (N, C[, L]), got [4]")
  end)
end)
