-- The op registry (runtime/ops/ops.def): every entry is bound once as the
-- tensor method, the lg. function and, when flagged, the in-place twin,
-- lg.F's activation and the nn class; lg.ops describes them.  log2 is the
-- op that was added through the registry alone.
local lg = require "lgrad"

local F64 = lg.float64

describe("op registry", function()
  it("lists every element-wise op once, with its properties", function()
    local seen = {}
    assert.is_true(#lg.ops >= 40)
    for _, op in ipairs(lg.ops) do
      local key = op.name .. "/" .. op.arity
      assert.is_nil(seen[key], "twice: " .. key)
      seen[key] = true
      assert.is_true(op.arity == 1 or op.arity == 2)
      assert.is_string(op.family)
      assert.is_false(op.comparison and op.differentiable or false,
                      op.name .. " is both a comparison and differentiable")
    end
    for _, n in ipairs{"add", "mul", "pow", "exp", "relu", "log2"} do
      local found = false
      for _, op in ipairs(lg.ops) do found = found or op.name == n end
      assert.is_true(found, n)
    end
  end)

  it("binds the method, the function and the in-place twin from one entry",
     function()
    for _, op in ipairs(lg.ops) do
      local f = lg.Tensor[op.name]
      assert.is_function(f, op.name)
      if op.name ~= "exp" then -- lg.exp is also the experiment module
        assert.are.equal(f, lg[op.name], "lg." .. op.name)
      end
      local twin = lg.Tensor[op.name .. "_"]
      if op.inplace then
        assert.is_function(twin, op.name .. "_")
      elseif op.name ~= "atan2" then -- atan2 has no in-place twin
        assert.is_nil(twin, op.name .. "_")
      end
      if op.activation then
        assert.are.equal(f, lg.F[op.name], "lg.F." .. op.name)
        assert.is_table(lg.nn[op.module], "lg.nn." .. op.module)
      end
    end
    assert.is_nil(lg.Tensor.atan2_)
  end)

  it("gives bool results for the comparisons and float for the others",
     function()
    local a = lg.tensor({1.0, 2.0}, {requires_grad = true})
    local b = lg.tensor{2.0, 2.0}
    for _, op in ipairs(lg.ops) do
      if op.arity == 2 then
        local r = a[op.name](a, b)
        assert.are.equal(op.comparison and "bool" or "float32", r:dtype(),
                         op.name)
        assert.are.equal(op.differentiable, r.requires_grad, op.name)
      end
    end
  end)

  it("keeps the arithmetic metamethods on the same functions", function()
    local a, b = lg.tensor{1.0, 2.0}, lg.tensor{3.0, 5.0}
    assert.same({4, 7}, (a + b):totable())
    assert.same({-2, -3}, (a - b):totable())
    assert.same({3, 10}, (a * b):totable())
    assert.same({1, 8}, (a ^ 3):totable())
    assert.same({-1, -2}, (-a):totable())
  end)

  it("names the in-place twin in its errors", function()
    local ok, err = pcall(lg.Tensor.add_, lg.tensor{1.0}, "x")
    assert.is_false(ok)
    assert.matches("add_", err)
  end)

  it("runs a bool-valued op in place in the tensor's own dtype", function()
    local f = lg.tensor{1.5, 0.0, -2.0}
    assert.are.equal(f, f:logical_not_())
    assert.same({0, 1, 0}, f:totable())
    assert.are.equal("float32", f:dtype())
    local i = lg.tensor({3, 0}, {dtype = lg.int64}):logical_not_()
    assert.same({0, 1}, i:totable())
    local b = lg.tensor{true, false}:logical_not_()
    assert.same({false, true}, b:totable())
    assert.same({false, true}, lg.tensor{0 / 0, 0}:logical_not():totable())
  end)

  it("makes an nn module for each activation", function()
    local x = lg.tensor{-1.0, 0.5, 2.0}
    assert.same(x:relu():totable(), lg.nn.ReLU()(x):totable())
    assert.same(x:silu():totable(), lg.nn.SiLU()(x):totable())
    assert.same(x:tanh():totable(), lg.nn.Tanh()(x):totable())
  end)
end)

describe("log2", function()
  local xs = {0.25, 0.5, 1, 3, 8, 1000.5, 1e-300}

  it("matches math.log(x, 2) in float64", function()
    local y = lg.tensor(xs, {dtype = F64}):log2():totable()
    for i, x in ipairs(xs) do
      assert.near(math.log(x, 2), y[i], 1e-15 * math.abs(y[i]) + 1e-15)
    end
  end)

  it("matches in float32, as lg.log2 and in place", function()
    local x = lg.tensor{0.25, 3, 8}
    local y = lg.log2(x):totable()
    assert.near(-2, y[1], 1e-6)
    assert.near(math.log(3, 2), y[2], 1e-6)
    assert.near(3, y[3], 1e-6)
    local z = lg.tensor{2.0, 16.0}
    assert.are.equal(z, z:log2_())
    assert.same({1, 4}, z:totable())
  end)

  it("promotes int64 to float and follows IEEE at 0 and below", function()
    local y = lg.tensor({1, 4, 0, -1}, {dtype = lg.int64}):log2()
    assert.are.equal("float32", y:dtype())
    local t = y:totable()
    assert.same({0, 2, -math.huge}, {t[1], t[2], t[3]})
    assert.is_true(t[4] ~= t[4])
  end)

  it("has a gradient that passes gradcheck", function()
    lg.manual_seed(7)
    local x = (lg.rand({3, 4}, {dtype = F64}) + 0.5):requires_grad_()
    local ok, msg = lg.autograd.gradcheck(function(t) return t:log2() end,
                                          {x})
    assert(ok, msg)
    local w = lg.tensor({2.0, 4.0}, {dtype = F64, requires_grad = true})
    w:log2():sum():backward()
    assert.near(1 / (2 * math.log(2)), w.grad:totable()[1], 1e-15)
    assert.near(1 / (4 * math.log(2)), w.grad:totable()[2], 1e-15)
    assert.are.equal("log2", lg.log2(w).grad_fn)
  end)
end)
