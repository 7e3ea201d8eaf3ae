-- Autograd semantics: .grad accumulation and clearing, requires_grad,
-- is_leaf, grad_fn, retain_graph, lg.grad, grad mode (no_grad,
-- set_grad_enabled), detach, retain_grad, in-place checks with the version
-- counter, lg.autograd.Function, gradcheck's failure report, anomaly
-- detection, and the scalar-sgd seed script.
-- luacheck: no unused args
local lg = require "lgrad"

local F64 = lg.float64

local function values(t)
  local out = {}
  for i = 1, t:numel() do out[i] = t:get_flat(i) end
  return out
end

local function assert_values(want, t, tol)
  assert.is_not_nil(t)
  local got = values(t)
  assert.equal(#want, #got)
  for i = 1, #want do
    if math.abs(got[i] - want[i]) > (tol or 1e-6) then
      error(string.format("element %d is %.10g, expected %.10g", i, got[i],
                          want[i]), 2)
    end
  end
end

-- fn must raise an error whose message contains every given plain text
local function raises(fn, ...)
  local ok, err = pcall(fn)
  assert(not ok, "expected an error")
  err = tostring(err)
  for _, text in ipairs({...}) do
    if not err:find(text, 1, true) then
      error(string.format("error %q does not mention %q", err, text), 2)
    end
  end
  return err
end

-- t:backward(...), for lines that would start with a parenthesis
local function backward(t, ...) t:backward(...) end

local function leaf(list)
  return lg.tensor(list, {dtype = F64, requires_grad = true})
end

describe("leaves and .grad", function()
  it("accumulates into .grad across backward calls", function()
    local x = leaf({1, 2, 3})
    backward((x * x):sum())
    assert_values({2, 4, 6}, x.grad)
    backward((x * 3):sum())
    assert_values({5, 7, 9}, x.grad)
  end)

  it("t.grad = nil clears it; the next backward starts from zero",
     function()
    local x = leaf({1, 2})
    x:sum():backward()
    x.grad = nil
    assert.is_nil(x.grad)
    backward((x * 5):sum())
    assert_values({5, 5}, x.grad)
  end)

  it("a gradient may be assigned if its shape matches", function()
    local x = leaf({1, 2})
    x.grad = lg.tensor({10, 20}, {dtype = F64})
    x:sum():backward()
    assert_values({11, 21}, x.grad)
    raises(function() x.grad = lg.zeros(3, {dtype = F64}) end, "grad",
           "[3]", "[2]")
  end)

  it("does not give .grad a graph of its own", function()
    local x = leaf({1, 2})
    backward((x * x):sum())
    assert.is_false(x.grad.requires_grad)
    assert.is_nil(x.grad.grad_fn)
  end)

  it("requires_grad, is_leaf and grad_fn", function()
    local a = lg.zeros(2)
    assert.is_false(a.requires_grad)
    assert.is_true(a.is_leaf)
    assert.is_nil(a.grad_fn)
    local x = lg.ones(2, {requires_grad = true})
    assert.is_true(x.requires_grad)
    assert.is_true(x.is_leaf)
    assert.is_nil(x.grad_fn)
    local y = x * 2
    assert.is_true(y.requires_grad)
    assert.is_false(y.is_leaf)
    assert.equal("string", type(y.grad_fn))
    assert.equal("mul", y.grad_fn)
    assert.equal("sum", y:sum().grad_fn)
    assert.equal("add", (x + a).grad_fn)
    assert.equal("exp", x:exp().grad_fn)
    assert.equal("transpose", x:t().grad_fn)
    -- an op on tensors that do not require grad records nothing
    local z = a * 2
    assert.is_false(z.requires_grad)
    assert.is_nil(z.grad_fn)
    assert.is_true(z.is_leaf)
  end)

  it("requires_grad_ turns grad on and off on leaves", function()
    local x = lg.zeros(3)
    assert.equal(x, x:requires_grad_())
    assert.is_true(x.requires_grad)
    x:requires_grad_(false)
    assert.is_false(x.requires_grad)
    x.requires_grad = true
    assert.is_true(x.requires_grad)
    raises(function() lg.zeros(2, {dtype = lg.int64}):requires_grad_() end,
           "requires_grad_", "float")
    raises(function() (x * 2):requires_grad_(false) end, "requires_grad_",
           "non-leaf")
  end)

  it("only leaves get .grad; retain_grad keeps a non-leaf's", function()
    local x = leaf({1, 2, 3})
    local h = x * 2
    local k = x * 3
    assert.equal(h, h:retain_grad())
    backward((h * h + k):sum())
    assert_values({4, 8, 12}, h.grad)
    assert.is_nil(k.grad)
    assert_values({8 + 3, 16 + 3, 24 + 3}, x.grad)
    assert.is_false(h.is_leaf)
  end)

  it("backward with an explicit gradient for a non-scalar output",
     function()
    local x = leaf({1, 2, 3})
    local y = x * x
    y:backward(lg.tensor({1, 0, -1}, {dtype = F64}))
    assert_values({2, 0, -6}, x.grad)
  end)

  it("backward on a non-scalar without a gradient raises", function()
    local x = leaf({1, 2, 3})
    raises(function() (x * 2):backward() end, "backward", "one element",
           "[3]")
    assert.is_nil(x.grad)
  end)

  it("backward with a gradient of the wrong shape raises", function()
    local x = leaf({1, 2, 3})
    raises(function() (x * 2):backward(lg.ones(2, {dtype = F64})) end,
           "backward", "[2]", "[3]")
  end)

  it("backward on a tensor that does not require grad raises", function()
    raises(function() lg.ones(2):sum():backward() end, "backward",
           "does not require grad")
  end)

  it("a leaf used many times sums every path", function()
    local x = leaf({2})
    local y = x
    for _ = 1, 10 do y = y + x end
    y:sum():backward()
    assert_values({11}, x.grad)
  end)

  it("gradients of float32 leaves stay float32", function()
    local x = lg.ones(3, {requires_grad = true})
    backward((x:double() * 2):sum())
    assert.equal("float32", x.grad:dtype())
    assert_values({2, 2, 2}, x.grad)
  end)
end)

describe("retain_graph", function()
  it("a second backward without it raises, naming retain_graph",
     function()
    local x = leaf({1, 2})
    local y = x:exp():sum()
    y:backward()
    raises(function() y:backward() end, "retain_graph")
  end)

  it("with it, the second backward works and accumulates", function()
    local x = leaf({0, 1})
    local y = x:exp():sum()
    y:backward(nil, {retain_graph = true})
    assert_values({1, math.exp(1)}, x.grad)
    y:backward()
    assert_values({2, 2 * math.exp(1)}, x.grad)
  end)

  it("lg.grad frees the graph too unless asked", function()
    local x = leaf({1, 2})
    local y = (x * x):sum()
    lg.grad(y, x, {retain_graph = true})
    lg.grad(y, x)
    raises(function() lg.grad(y, x) end, "retain_graph")
  end)
end)

describe("lg.grad", function()
  it("returns gradients without touching .grad", function()
    local x = leaf({1, 2, 3})
    local g = lg.grad((x * x):sum(), x)
    assert_values({2, 4, 6}, g)
    assert.is_nil(x.grad)
  end)

  it("a list of inputs gives a list; a tensor gives a tensor", function()
    local a, b = leaf({1, 2}), leaf({3, 4})
    local gs = lg.grad((a * b):sum(), {a, b})
    assert.equal("table", type(gs))
    assert_values({3, 4}, gs[1])
    assert_values({1, 2}, gs[2])
    assert.is_true(lg.is_tensor(lg.grad((a * b):sum(), a)))
  end)

  it("takes grad_outputs for non-scalar outputs, and lists of outputs",
     function()
    local x = leaf({1, 2})
    local g = lg.grad(x * x, x,
                      {grad_outputs = lg.tensor({1, 10}, {dtype = F64})})
    assert_values({2, 40}, g)
    local y1, y2 = x * 2, x * x
    local gs = lg.grad({y1, y2}, {x}, {grad_outputs = {
      lg.tensor({1, 1}, {dtype = F64}), lg.tensor({1, -1}, {dtype = F64})}})
    assert_values({2 + 2, 2 - 4}, gs[1])
    raises(function() lg.grad(x * x, x) end, "one element")
  end)

  it("allow_unused gives nil for an unused input; without it, an error",
     function()
    local x, u = leaf({1, 2}), leaf({5})
    local gs = lg.grad((x * 3):sum(), {x, u}, {allow_unused = true})
    assert_values({3, 3}, gs[1])
    assert.is_nil(gs[2])
    raises(function() lg.grad((x * 3):sum(), {x, u}) end, "grad",
           "input 2", "allow_unused")
  end)

  it("raises for an input that does not require grad", function()
    local x = leaf({1})
    raises(function() lg.grad((x * 2):sum(), lg.ones(1)) end, "grad",
           "does not require grad")
  end)

  it("gradients of an intermediate tensor", function()
    local x = leaf({1, 2})
    local h = x * 3
    local g = lg.grad((h * h):sum(), h)
    assert_values({6, 12}, g)
  end)

  it("an output that is also an input counts its own gradient once",
     function()
    local x = leaf({1, 2})
    local h = x * 2
    assert_values({1, 1}, lg.grad(h, h,
                                  {grad_outputs = lg.ones(2, {dtype = F64})}))
    local k = x * 3
    -- d/dk of (k, sum k^2) weighted (1, 1) is 1 + 2k
    local g = lg.grad({k, (k * k):sum()}, {k},
                      {grad_outputs = {lg.ones(2, {dtype = F64})}})
    assert_values({1 + 6, 1 + 12}, g[1])
    local s = x:sum()
    assert.equal(1, lg.grad(s, s):item())
  end)

  it("runs only the part of the graph that leads to the inputs",
     function()
    local ran = 0
    local Count = lg.autograd.Function{
      forward = function(ctx, t) return t * 1 end,
      backward = function(ctx, g) ran = ran + 1 return g end,
    }
    local a, b = leaf({1, 2}), leaf({3, 4})
    local loss = (Count(a) * b):sum()
    local gb = lg.grad(loss, b)
    assert_values({1, 2}, gb)
    assert.equal(0, ran)
    -- below an intermediate input nothing runs, and nothing is freed
    local h = a:exp()
    local gh = lg.grad((Count(h) * 2):sum(), h)
    assert.equal(1, ran)
    assert_values({2, 2}, gh)
    backward(h:sum())
    assert_values({math.exp(1), math.exp(2)}, a.grad, 1e-12)
  end)

  it("with create_graph the gradient can be differentiated again",
     function()
    local x = leaf({1, 2})
    local g = lg.grad((x ^ 3):sum(), x, {create_graph = true})
    assert.is_true(g.requires_grad)
    local h = lg.grad(g:sum(), x)
    assert_values({6, 12}, h)
  end)
end)

describe("grad mode", function()
  it("lg.no_grad(fn, ...) passes arguments and returns fn's results",
     function()
    local a, b, c = lg.no_grad(function(p, q) return p + q, "two", nil end,
                               1, 2)
    assert.equal(3, a)
    assert.equal("two", b)
    assert.is_nil(c)
  end)

  it("records nothing inside no_grad", function()
    local x = leaf({1, 2})
    local y = lg.no_grad(function() return x * 2 end)
    assert.is_false(y.requires_grad)
    assert.is_nil(y.grad_fn)
    assert.is_true(lg.is_grad_enabled())
  end)

  it("restores grad mode when fn raises, and passes the error on",
     function()
    local err = raises(function()
      lg.no_grad(function() error("inner failure") end)
    end, "inner failure")
    assert.is_string(err)
    assert.is_true(lg.is_grad_enabled())
    local x = leaf({1})
    assert.is_true((x * 2).requires_grad)
    -- nested: the outer state is what comes back
    lg.set_grad_enabled(false)
    pcall(lg.no_grad, function() error("again") end)
    assert.is_false(lg.is_grad_enabled())
    lg.set_grad_enabled(true)
  end)

  it("set_grad_enabled returns the old state", function()
    assert.is_true(lg.set_grad_enabled(false))
    local x = leaf({1})
    assert.is_false((x * 2).requires_grad)
    assert.is_false(lg.set_grad_enabled(false))
    assert.is_false(lg.set_grad_enabled(true))
    assert.is_true(lg.set_grad_enabled(true))
    assert.is_true((x * 2).requires_grad)
  end)

  it("enable_grad records inside no_grad", function()
    local x = leaf({1})
    local y = lg.no_grad(function()
      return lg.enable_grad(function() return x * 2 end)
    end)
    assert.is_true(y.requires_grad)
    assert.is_true(lg.is_grad_enabled())
  end)
end)

describe("detach", function()
  it("shares storage and does not require grad", function()
    local x = leaf({1, 2, 3})
    local d = x:detach()
    assert.equal(x:storage_id(), d:storage_id())
    assert.is_false(d.requires_grad)
    assert.is_true(d.is_leaf)
    d:fill_(7)
    assert_values({7, 7, 7}, x)
  end)

  it("cuts the graph", function()
    local x = leaf({1, 2})
    local y = x * x
    local z = y:detach() * 3 + y
    z:sum():backward()
    assert_values({2, 4}, x.grad)
  end)
end)

describe("in-place operations and the version counter", function()
  it("modifying a saved output raises at backward, never a wrong gradient",
     function()
    local x = leaf({0, 1})
    local y = x:exp()
    lg.no_grad(function() y:add_(1) end)
    raises(function() y:sum():backward() end, "exp", "modified in place")
    assert.is_nil(x.grad)
  end)

  it("modifying a saved input raises at backward", function()
    local a, b = leaf({1, 2}), leaf({3, 4})
    local y = a * b
    lg.no_grad(function() a:mul_(2) end)
    raises(function() y:sum():backward() end, "mul", "modified in place")
    assert.is_nil(b.grad)
  end)

  it("a write through another view of the saved storage is seen",
     function()
    local x = leaf({1, 2, 3, 4})
    local y = x:sin()
    lg.no_grad(function() x:narrow(1, 2, 2):zero_() end)
    raises(function() y:sum():backward() end, "modified in place")
  end)

  it("a write to a tensor no node saved is fine", function()
    local x = leaf({1, 2})
    local c = lg.tensor({5, 5}, {dtype = F64})
    local y = x + c -- add saves nothing
    c:add_(1)
    y:sum():backward()
    assert_values({1, 1}, x.grad)
  end)

  it("in-place ops on a leaf that requires grad raise, naming the op",
     function()
    local x = leaf({1, 2})
    raises(function() x:add_(1) end, "add_", "requires grad")
    raises(function() x:mul_(2) end, "mul_", "requires grad")
    raises(function() x:zero_() end, "zero_", "requires grad")
    raises(function() x:fill_(3) end, "fill_", "requires grad")
    raises(function() x:exp_() end, "exp", "requires grad")
    raises(function() x:copy_(lg.zeros(2, {dtype = F64})) end, "copy_",
           "requires grad")
    raises(function() x[1] = 5 end, "requires grad")
    assert_values({1, 2}, x)
    -- allowed without recording
    lg.no_grad(function() x:add_(1) end)
    assert_values({2, 3}, x)
  end)

  it("an in-place op on a non-leaf either raises or keeps gradients right",
     function()
    local x = leaf({1, 2})
    local y = x * x
    local ok = pcall(function() y:mul_(3) end)
    y:sum():backward()
    assert_values(ok and {6, 12} or {2, 4}, x.grad)
  end)
end)

describe("lg.autograd.Function", function()
  local MulAdd = lg.autograd.Function{
    name = "muladd",
    forward = function(ctx, a, b, k)
      ctx:save(a, b)
      ctx.k = k
      return a * b + k
    end,
    backward = function(ctx, g)
      local a, b = ctx.saved[1], ctx.saved[2]
      return g * b, g * a, nil
    end,
  }

  it("computes forward and backward, with a number argument", function()
    local a, b = leaf({1, 2}), leaf({3, 4})
    local y = MulAdd(a, b, 10)
    assert_values({13, 18}, y)
    assert.is_true(y.requires_grad)
    assert.equal("muladd", y.grad_fn)
    y:sum():backward()
    assert_values({3, 4}, a.grad)
    assert_values({1, 2}, b.grad)
  end)

  it("passes gradcheck, with its number argument", function()
    local a = lg.randn(3, 4, {dtype = F64, requires_grad = true})
    local b = lg.randn(4, {dtype = F64, requires_grad = true})
    local Bcast = lg.autograd.Function{
      forward = function(ctx, x, y, k)
        ctx:save(x, y)
        ctx.k = k
        return (x * y):sin() * k
      end,
      backward = function(ctx, g)
        local x, y = ctx.saved[1], ctx.saved[2]
        local d = g * (x * y):cos() * ctx.k
        return d * y, (d * x):sum(1), nil
      end,
    }
    assert.is_true(lg.autograd.gradcheck(
      function(x, y, k) return Bcast(x, y, k) end, {a, b, 2.5}))
    assert.is_true(lg.autograd.gradcheck(
      function(x, y) return MulAdd(x, y, 1):exp() end,
      {lg.randn(3, {dtype = F64, requires_grad = true}),
       lg.randn(3, {dtype = F64, requires_grad = true})}))
  end)

  it("runs forward without recording and composes with other ops",
     function()
    local inside
    local Probe = lg.autograd.Function{
      forward = function(ctx, x)
        local t = x * 2
        inside = t.requires_grad
        return t
      end,
      backward = function(ctx, g) return g * 2 end,
    }
    local x = leaf({1, 2})
    local y = (Probe(x):exp() * x):sum()
    assert.is_false(inside)
    y:backward()
    -- d/dx exp(2x) x = 2 exp(2x) x + exp(2x)
    assert_values({2 * math.exp(2) + math.exp(2),
                   4 * math.exp(4) + math.exp(4)}, x.grad, 1e-9)
  end)

  it("its backward is differentiable again under create_graph", function()
    local Cube = lg.autograd.Function{
      name = "cube",
      forward = function(ctx, x) ctx:save(x) return x ^ 3 end,
      backward = function(ctx, g) return g * 3 * ctx.saved[1] ^ 2 end,
    }
    local x = leaf({1, 2})
    local g = lg.grad(Cube(x):sum(), x, {create_graph = true})
    assert.is_true(g.requires_grad)
    assert_values({3, 12}, g)
    assert_values({6, 12}, lg.grad(g:sum(), x))
  end)

  it("gives needs_input_grad and records nothing for constant inputs",
     function()
    local seen
    local Id = lg.autograd.Function{
      forward = function(ctx, x, y)
        seen = ctx.needs_input_grad
        return x + y
      end,
      backward = function(ctx, g) return g, g end,
    }
    local y = Id(leaf({1}), lg.ones(1, {dtype = F64}))
    assert.same({true, false}, seen)
    assert.is_true(y.requires_grad)
    local z = Id(lg.ones(1), lg.ones(1))
    assert.is_false(z.requires_grad)
    assert.is_nil(z.grad_fn)
  end)

  it("an error inside the Lua backward surfaces as a Lua error",
     function()
    local Broken = lg.autograd.Function{
      name = "broken",
      forward = function(ctx, x) return x * 1 end,
      backward = function(ctx, g) error("no gradient today") end,
    }
    local x = leaf({1})
    raises(function() Broken(x):sum():backward() end, "broken",
           "no gradient today")
    assert.is_nil(x.grad)
    -- and the state is usable afterwards
    assert.is_true(lg.is_grad_enabled())
    backward((x * 2):sum())
    assert_values({2}, x.grad)
  end)

  it("an error inside forward surfaces and restores grad mode", function()
    local Fails = lg.autograd.Function{
      forward = function(ctx, x) error("bad forward") end,
      backward = function(ctx, g) return g end,
    }
    raises(function() Fails(leaf({1})) end, "bad forward")
    assert.is_true(lg.is_grad_enabled())
  end)

  it("rejects bad results from backward and forward", function()
    local WrongShape = lg.autograd.Function{
      name = "wrong_shape",
      forward = function(ctx, x) return x * 2 end,
      backward = function(ctx, g) return lg.ones(1, {dtype = F64}) end,
    }
    raises(function() WrongShape(leaf({1, 2, 3})):sum():backward() end,
           "wrong_shape", "[1]", "[3]")
    local NotTensor = lg.autograd.Function{
      forward = function(ctx, x) return x * 2 end,
      backward = function(ctx, g) return 5 end,
    }
    raises(function() NotTensor(leaf({1})):sum():backward() end,
           "number", "not a tensor")
    local NoOutput = lg.autograd.Function{
      forward = function(ctx, x) return 5 end,
      backward = function(ctx, g) return g end,
    }
    raises(function() NoOutput(leaf({1})) end, "Function", "tensor")
    raises(function() lg.autograd.Function{forward = function() end} end,
           "Function", "backward")
  end)

  it("gradcheck returns false naming the input and element of a wrong "
     .. "backward", function()
    local WrongSecond = lg.autograd.Function{
      forward = function(ctx, a, b) ctx:save(a, b) return a * b end,
      backward = function(ctx, g)
        local a, b = ctx.saved[1], ctx.saved[2]
        return g * b, g * a * 1.5 -- the second is wrong
      end,
    }
    local a = lg.randn(3, {dtype = F64, requires_grad = true})
    local b = lg.randn(3, {dtype = F64, requires_grad = true})
    local ok, msg = lg.autograd.gradcheck(
      function(x, y) return WrongSecond(x, y) end, {a, b})
    assert.is_false(ok)
    assert.matches("input 2, element 1", msg)
    assert.matches("analytic", msg)
    assert.matches("numerical", msg)

    -- a wrong value at one element only
    local OffByOne = lg.autograd.Function{
      forward = function(ctx, x) return x * 2 end,
      backward = function(ctx, g)
        local r = g * 2
        lg.no_grad(function() r:set_flat(3, 0) end)
        return r
      end,
    }
    ok, msg = lg.autograd.gradcheck(function(x) return OffByOne(x) end,
      {lg.randn(4, {dtype = F64, requires_grad = true})})
    assert.is_false(ok)
    assert.matches("input 1, element 3", msg)
  end)

  it("gradcheck honours atol and rtol", function()
    -- a gradient off by one part in 10^4
    local Slightly = lg.autograd.Function{
      forward = function(ctx, x) return x * 2 end,
      backward = function(ctx, g) return g * 2.0002 end,
    }
    local x = lg.randn(3, {dtype = F64, requires_grad = true})
    local f = function(t) return Slightly(t) end
    assert.is_true(lg.autograd.gradcheck(f, {x}))
    local ok, msg = lg.autograd.gradcheck(f, {x}, {atol = 1e-9, rtol = 1e-6})
    assert.is_false(ok)
    assert.matches("input 1, element 1", msg)
    assert.is_true(lg.autograd.gradcheck(f, {x},
                                         {eps = 1e-4, atol = 1e-9,
                                          rtol = 1e-3}))
  end)

  it("gradcheck asks for float64 inputs and an input requiring grad",
     function()
    raises(function()
      lg.autograd.gradcheck(function(x) return x * 2 end,
                            {lg.ones(2, {requires_grad = true})})
    end, "float64")
    raises(function()
      lg.autograd.gradcheck(function(x) return x * 2 end,
                            {lg.ones(2, {dtype = F64})})
    end, "requires grad")
  end)
end)

describe("lg.autograd.detect_anomaly", function()
  after_each(function() lg.autograd.detect_anomaly(false) end)

  it("returns the previous state", function()
    assert.is_false(lg.autograd.detect_anomaly(true))
    assert.is_true(lg.autograd.detect_anomaly(false))
    assert.is_false(lg.autograd.detect_anomaly())
  end)

  it("off, a NaN passes silently", function()
    local y = lg.tensor({-1}, {dtype = F64}):log()
    assert.is_true(y:item() ~= y:item())
  end)

  it("raises naming the op that produced NaN in forward", function()
    lg.autograd.detect_anomaly(true)
    raises(function() lg.tensor({-1}, {dtype = F64}):log() end, "log",
           "NaN")
    raises(function()
      return (leaf({1, -2}) * 1):sqrt()
    end, "sqrt", "NaN")
  end)

  it("raises naming the op whose backward produced Inf", function()
    lg.autograd.detect_anomaly(true)
    local x = leaf({0, 1})
    local y = x:sqrt() -- sqrt(0) = 0 is fine forward
    raises(function() y:sum():backward() end, "sqrt", "backward", "Inf")
    assert.is_nil(x.grad)
  end)

  it("leaves finite computations alone", function()
    lg.autograd.detect_anomaly(true)
    local x = leaf({1, 2})
    x:sqrt():log():sum():backward()
    assert_values({0.5, 0.25}, x.grad, 1e-12)
  end)
end)

describe("scripts/seed_scalar_sgd.lua", function()
  it("fits w and b near 3 and 2", function()
    local f = assert(io.popen("lua5.4 scripts/seed_scalar_sgd.lua 2>&1"))
    local out = f:read("a")
    local ok = f:close()
    assert(ok, out)
    local w, b = out:match("w = ([%d.-]+)%s+b = ([%d.-]+)")
    assert(w, out)
    assert.near(3, tonumber(w), 0.05)
    assert.near(2, tonumber(b), 0.05)
    assert.matches("steps/s", out)
  end)
end)
