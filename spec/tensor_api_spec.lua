-- The tensor API of issue 14: the two silent wrong results (an in-place
-- copy between overlapping views, an options table where a dim was
-- expected), Torch7 slicing, the added ops against PyTorch fixtures and
-- gradcheck, in-place ops inside a graph, and the PyTorch habits.
local lg = require "lgrad"

local h = require "helpers"

-- element by element within tol (relative and absolute), as flat float64
local function flat(x)
  return lg.is_tensor(x) and x:double():flatten():totable() or x
end
local function close(a, b, tol)
  tol = tol or 1e-9
  assert(h.allclose(flat(a), flat(b), tol, tol),
         h.compare(flat(a), flat(b), tol, tol))
end

describe("overlapping in-place writes read their source first", function()
  it("copy_ between overlapping narrows of one tensor", function()
    local a = lg.range(1, 5):float()
    a:narrow(1, 2, 4):copy_(a:narrow(1, 1, 4))
    assert.same({1, 1, 2, 3, 4}, a:totable())
    local b = lg.range(1, 5):float()
    b:narrow(1, 1, 4):copy_(b:narrow(1, 2, 4))
    assert.same({2, 3, 4, 5, 5}, b:totable())
  end)
  it("a transposed copy of a matrix into itself", function()
    local m = lg.tensor{{1, 2}, {3, 4}}
    m:copy_(m:t())
    assert.same({{1, 3}, {2, 4}}, m:totable())
  end)
  it("t[i] = view of t and in-place arithmetic on overlapping views", function()
    local m = lg.tensor{{1, 2}, {3, 4}}
    m[2] = m[1]
    assert.same({{1, 2}, {1, 2}}, m:totable())
    local a = lg.range(1, 5):float()
    a:narrow(1, 2, 4):add_(a:narrow(1, 1, 4))
    assert.same({1, 3, 5, 7, 9}, a:totable())
    local r = lg.tensor{{1, 2}, {3, 4}}:float()
    r:add_(r[1])
    assert.same({{2, 4}, {4, 6}}, r:totable())
  end)
  it("scatter_ with a source overlapping the target", function()
    local t = lg.tensor{1, 2, 3, 4}:float()
    t:scatter_(1, lg.tensor{2, 3, 4}, t:narrow(1, 1, 3))
    assert.same({1, 1, 2, 3}, t:totable())
  end)
end)

describe("reductions take PyTorch's keywords, never ignore them", function()
  local x = lg.tensor{{1, 2, 3}, {4, 5, 6}}:float()
  it("sum, mean, max with {dim =, keepdim =}", function()
    local s = x:sum{dim = 2, keepdim = true}
    assert.same({2, 1}, s:shape())
    assert.same({{6}, {15}}, s:totable())
    assert.same({2, 5}, x:mean{dim = 2}:totable())
    local v, i = x:max{dim = 2}
    assert.same({3, 6}, v:totable())
    assert.same({3, 3}, i:totable())
    local v2 = x:min{dim = 1, keepdim = true}
    assert.same({{1, 2, 3}}, v2:totable())
    assert.same({2, 2, 2}, x:argmax{dim = 1}:totable())
    assert.same({1, 3}, x:sum(1, {keepdim = true}):shape())
    assert.same({3}, x:var{dim = 1, unbiased = false}:shape())
    assert.same({2, 1}, x:logsumexp{dim = 2, keepdim = true}:shape())
    assert.same({2}, x:norm(2, {dim = 2}):shape())
  end)
  it("an unknown option or a stray argument raises", function()
    assert.has_error(function() x:sum{dim = 2, keepdims = true} end,
      "sum: unknown option 'keepdims' (valid options: dim, keepdim)")
    assert.has_error(function() x:mean(1, true, 3) end,
      "mean: unexpected argument #4 (a number)")
    assert.has_error(function() x:sum(2, {dim = 1}) end,
      "sum: dim given twice (as an argument and an option)")
    assert.has_error(function() x:max{dim = 3} end)
  end)
end)

local gradcheck = lg.autograd.gradcheck
local function r64(...)
  return lg.randn({...}, {dtype = lg.float64, requires_grad = true})
end
local function check(fn, inputs)
  local ok, msg = gradcheck(fn, inputs)
  assert(ok, msg)
end

describe("slicing, Torch7's way", function()
  local t = lg.range(1, 24):float():view(2, 3, 4)
  it("numbers select, {a, b} is inclusive, {} keeps, negatives count back",
     function()
    assert.same({6, 7}, t[{1, 2, {2, 3}}]:totable())
    assert.same({2, 2}, t[{{}, {2, 3}, -1}]:shape())
    assert.same({{8, 12}, {20, 24}}, t[{{}, {2, 3}, -1}]:totable())
    assert.same({{1, 3}, {9, 11}}, t[{1, {1, -1, 2}, {1, 3, 2}}]:totable())
    assert.same({1, 3, 4}, t[{{-1}}]:shape())
    assert.same({2, 3, 4}, t[{}]:shape())
    assert.same({2, 0, 4}, t[{{}, {2, 1}}]:shape())
  end)
  it("is a view of the same storage", function()
    local s = t:clone()
    local v = s[{2, {1, 2}, {2, 3}}]
    assert.equal(s:storage_id(), v:storage_id())
    v:fill_(0)
    assert.same({13, 0, 0, 16}, s[{2, 1}]:totable())
  end)
  it("assigns a number or a broadcastable tensor", function()
    local m = lg.zeros(3, 4)
    m[{{1, 2}, {2, 3}}] = 5
    m[{3}] = lg.tensor{1, 2, 3, 4}:float()
    m[{{}, 4}] = lg.tensor{7}:float()
    assert.same({{0, 5, 5, 7}, {0, 5, 5, 7}, {1, 2, 3, 7}}, m:totable())
    local i = lg.zeros({2, 2}, {dtype = lg.int64})
    i[{2, 2}] = (1 << 62) + 1
    assert.equal((1 << 62) + 1, i[2][2])
  end)
  it("gives clear errors", function()
    assert.has_error(function() return t[{3}] end,
      "index: index 3 out of range for size 2 of dimension 1 (indices are " ..
      "1-based, negative from the end)")
    assert.has_error(function() return t[{1, 1, 1, 1}] end,
      "index: 4 indices for a tensor of shape [2,3,4]")
    assert.has_error(function() return t[{{1, 5}}] end,
      "index: range 1..5 out of bounds for size 2 of dimension 1")
    assert.has_error(function() return t[{{1, 2, 0}}] end,
      "index: step 0 must be positive (dimension 1)")
    assert.has_error(function() return t[{"a"}] end,
      "index: entry 1 of an index table must be a number or a range " ..
      "table, got string")
    assert.has_error(function()
      local m = lg.zeros(2, 2); m[{1}] = lg.zeros(3)
    end)
  end)
  it("x[0] says indices are 1-based; a[1.0] is a[1]", function()
    local v = lg.tensor{10, 20, 30}
    assert.has_error(function() return v[0] end,
      "index: index 0 is out of range: indices are 1-based (1..3, or -1 " ..
      "for the last)")
    assert.equal(20, v[2.0])
    v[3.0] = 5
    assert.equal(5, v[3])
    assert.has_error(function() return v[1.5] end,
      "index: tensor indices must be integers, got 1.5")
  end)
  it("get and set are differentiable (gradcheck)", function()
    check(function(x) return x[{2, {1, -1, 2}}] * 3 end, {r64(3, 5)})
    check(function(x) return x[{{}, {2, 4}, -1}]:exp() end, {r64(2, 4, 3)})
    check(function(x, v)
      local y = x * 1
      y[{{1, 3, 2}, {2, 3}}] = v
      return y:tanh()
    end, {r64(3, 4), r64(2, 2)})
    check(function(x, v)
      local y = x:sin() -- sin saves its input, not its output
      y[{2}] = v -- broadcast of a (1) tensor along the row
      return y * y
    end, {r64(3, 4), r64(1)})
    check(function(v)
      local z = lg.zeros({2, 3}, {dtype = lg.float64})
      z[{{}, 2}] = v * 2
      return z
    end, {r64(2)})
  end)
end)

describe("in-place ops inside a graph", function()
  it("masked_fill_ before a softmax, relu_, add_ on non-leaves", function()
    local x = r64(3, 3)
    local scores = x * 2
    local mask = lg.ones(3, 3):triu(1):bool()
    scores:masked_fill_(mask, -math.huge)
    assert.equal("masked_fill", scores.grad_fn)
    local p = scores:softmax(2)
    p:sum(1):pow(2):sum():backward()
    local x2 = x:detach():requires_grad_()
    local p2 = (x2 * 2):masked_fill(mask, -math.huge):softmax(2)
    p2:sum(1):pow(2):sum():backward()
    close(x.grad, x2.grad)
    check(function(a, b)
      local h = a * 1
      h:relu_()
      h:add_(b)
      h:mul_(2)
      return h
    end, {r64(3, 4), r64(4)})
    check(function(a)
      local h = a:sin()
      h:clamp_(-0.5, 0.5)
      h:sub_(1)
      return h
    end, {r64(5)})
  end)
  it("a buffer that does not require grad becomes part of the graph",
     function()
    check(function(v)
      local buf = lg.zeros({4}, {dtype = lg.float64})
      buf:add_(v)
      buf:mul_(v)
      local c = lg.zeros({4}, {dtype = lg.float64})
      c:copy_(buf * 3)
      return c + buf
    end, {r64(4)})
  end)
  it("the version counter still catches an overwritten saved tensor",
     function()
    local x = r64(4)
    local h = x:tanh()   -- tanh saves its output
    h:add_(1)
    assert.has_error(function() h:sum():backward() end,
      "backward: a tensor saved by tanh was modified in place after it was " ..
      "used (version 1, expected 0)")
  end)
  it("a leaf that requires grad refuses with torch's message", function()
    local x = r64(3)
    for _, f in ipairs{function() x:add_(1) end, function() x:relu_() end,
                       function() x:masked_fill_(lg.ones(3):bool(), 0) end,
                       function() x[{1}] = 0 end} do
      local ok, err = pcall(f)
      assert.is_false(ok)
      assert.matches("a leaf Variable that requires grad is being used " ..
                     "in an in%-place operation%.", err)
    end
  end)
  it("a view inside a graph refuses instead of losing the write", function()
    local y = r64(3, 4) * 1
    assert.has_error(function() y:narrow(1, 1, 2):add_(1) end,
      "add_: in-place write into a view inside a graph is not recorded " ..
      "(write through t[{...}] = v on the tensor itself, or clone() the " ..
      "view first)")
  end)
end)

-- ---- PyTorch fixtures (spec/fixtures/gen_tensor_api.py) ----

local function from_fixture(f, grad)
  local dtype = f.dtype or "float64"
  local t = lg.tensor(f.data, {dtype = dtype}):view(f.shape)
  if grad and dtype == "float64" then t = t:clone():requires_grad_() end
  return t
end

local OPS = {
  tril = function(x, k) return x:tril(k) end,
  triu = function(x, k) return x:triu(k) end,
  ["repeat"] = function(x, r) return x["repeat"](x, r) end,
  tile = function(x, r) return x:tile(r) end,
  flip = function(x, d) return x:flip(d) end,
  roll = function(x, s, d) return x:roll(s, d) end,
  cumprod = function(x, d) return x:cumprod(d) end,
  amax = function(x, d, k) return x:amax(d, k) end,
  amin = function(x, d, k) return x:amin(d, k) end,
  diag = function(x, k) return x:diag(k) end,
  diagonal = function(x, o, a, b) return x:diagonal(o, a, b) end,
  unfold = function(x, d, s, st) return x:unfold(d, s, st) end,
  masked_select = function(x, m) return x:masked_select(m) end,
  slice = function(x, idx) return x[idx] end,
  argsort = function(x, d, desc) return x:argsort(d, {descending = desc}) end,
  nonzero = function(x) return x:nonzero() end,
  unique = function(x)
    return x:unique{return_inverse = true, return_counts = true}
  end,
  isclose = function(a, b) return lg.isclose(a, b) end,
  isnan = function(a) return a:isnan() end,
  isinf = function(a) return a:isinf() end,
  isfinite = function(a) return a:isfinite() end,
  nan_to_num = function(a, v)
    if v then return a:nan_to_num{nan = v[1], posinf = v[2], neginf = v[3]} end
    return a:nan_to_num()
  end,
  inv = function(a) return lg.linalg.inv(a) end,
  solve = function(a, b) return lg.linalg.solve(a, b) end,
  cholesky = function(a) return lg.linalg.cholesky(a) end,
  cholesky_upper = function(a) return lg.linalg.cholesky(a, {upper = true}) end,
  det = function(a) return lg.linalg.det(a) end,
  slogdet_logabs = function(a) return select(2, lg.linalg.slogdet(a)) end,
  slogdet_sign = function(a) return (lg.linalg.slogdet(a)):detach() end,
  qr_q = function(a) return (lg.linalg.qr(a)) end,
  qr_r = function(a) return select(2, lg.linalg.qr(a)) end,
  svdvals = function(a) return lg.linalg.svdvals(a) end,
  svd_s = function(a) return select(2, lg.linalg.svd(a)) end,
  eigh_w = function(a) return (lg.linalg.eigh(a + a:transpose(-2, -1))) end,
  eigh_v2 = function(a)
    return select(2, lg.linalg.eigh(a + a:transpose(-2, -1))):pow(2)
  end,
  lstsq = function(a, b) return lg.linalg.lstsq(a, b) end,
  norm = function(a, ord, dim) return lg.linalg.norm(a, ord, dim) end,
}

describe("the tensor API against PyTorch (float64 fixtures)", function()
  local cases = dofile("spec/fixtures/tensor_api.lua")
  it("has every case", function() assert.equal(68, #cases) end)
  for _, c in ipairs(cases) do
    it(c.name, function()
      local inputs = {}
      for i, f in ipairs(c.inputs) do inputs[i] = from_fixture(f, true) end
      local args = {}
      for i = 1, #c.inputs do args[i] = inputs[i] end
      -- args may hold nil (roll without dims, amax over everything)
      local n = #c.inputs
      for i, a in pairs(c.args) do args[n + i] = a; end
      local nargs = n + (c.nargs or 3)
      local outs = table.pack(OPS[c.op](table.unpack(args, 1, nargs)))
      local want = c.outs or {c.out}
      for i, w in ipairs(want) do
        local got = outs[i]
        assert.same(w.shape, got:shape())
        if (w.dtype or "float64") == "float64" then
          close(got, lg.tensor(w.data, {dtype = lg.float64}), c.tol or 1e-10)
        else
          assert.same(w.data, got:flatten():totable())
        end
      end
      if c.grads then
        local wt = from_fixture(c.w)
        local req = {}
        for _, x in ipairs(inputs) do
          if x.requires_grad then req[#req + 1] = x end
        end
        local gs = lg.grad({(outs[1] * wt):sum()}, req, {allow_unused = true})
        for i, g in ipairs(c.grads) do
          close(gs[i] or lg.zeros(g.shape, {dtype = lg.float64}),
                lg.tensor(g.data, {dtype = lg.float64}), 1e-9)
        end
      end
    end)
  end
end)

describe("gradients of the added ops (float64 gradcheck)", function()
  it("tril triu repeat tile flip roll", function()
    check(function(x) return x:tril(-1) end, {r64(2, 3, 4)})
    check(function(x) return x:triu(1) end, {r64(4, 3)})
    check(function(x) return x["repeat"](x, {2, 1, 3}) end, {r64(2, 3)})
    check(function(x) return x:tile{3} end, {r64(2, 2)})
    check(function(x) return x:flip{1, 2} end, {r64(3, 4)})
    check(function(x) return x:roll({1, -2}, {1, 2}) end, {r64(3, 4)})
    check(function(x) return x:roll(4) end, {r64(3, 4)})
  end)
  it("cumprod (with a zero) amax amin", function()
    check(function(x) return x:cumprod(2) end, {r64(3, 4)})
    check(function(x)
      local y = x * 1
      y[{2, 2}] = 0
      return y:cumprod(2)
    end, {r64(3, 5)})
    check(function(x) return x:amax(1) end, {r64(3, 4)})
    check(function(x) return x:amin{dim = 2, keepdim = true} end,
          {r64(3, 4)})
    check(function(x) return x:amax() end, {r64(5)})
  end)
  it("diag diagonal unfold masked_select", function()
    check(function(x) return x:diag(1) end, {r64(3)})
    check(function(x) return x:diag(-1) end, {r64(3, 4)})
    check(function(x) return x:diagonal(1, 1, 3) end, {r64(3, 2, 4)})
    check(function(x) return x:unfold(2, 3, 2) end, {r64(2, 7)})
    check(function(x) return x:unfold(1, 2, 1):exp() end, {r64(4, 3)})
    local m = lg.tensor{{true, false, true}, {false, false, true}}
    check(function(x) return x:masked_select(m) end, {r64(2, 3)})
  end)
  it("second order through diagonal, unfold, tril and slicing", function()
    local x = r64(3, 3)
    local y = (x:tril():diagonal():pow(3)):sum() +
              (x:unfold(1, 2, 1):pow(2)):sum() + x[{{1, 3, 2}, 2}]:pow(3):sum()
    local g = lg.grad({y}, {x}, {create_graph = true})[1]
    local h = lg.grad({g:sum()}, {x})[1]
    -- d2/dx2 of x_ii^3 is 6 x_ii; of x_ij^2 (counted once per window) 2;
    -- of x_12^3 and x_32^3 6 x
    local xv = x:totable()
    local hv = h:totable()
    local windows = {1, 2, 1}
    for i = 1, 3 do
      for j = 1, 3 do
        local want = 2 * windows[i]
        if i == j then want = want + 6 * xv[i][j] end
        if j == 2 and i ~= 2 then want = want + 6 * xv[i][j] end
        assert(math.abs(hv[i][j] - want) < 1e-9, ("%d,%d"):format(i, j))
      end
    end
  end)
end)

describe("isnan isinf isfinite nan_to_num (one line each of ops.def)",
         function()
  it("work on every dtype and nan_to_num has a gradient", function()
    assert.same({false, false}, lg.tensor{1, 2}:isnan():totable())
    assert.same({true, true}, lg.tensor{1, 2}:isfinite():totable())
    assert.same({false}, lg.tensor{true}:isinf():totable())
    assert.same({3, -4}, lg.tensor{3, -4}:nan_to_num():totable())
    local y = lg.tensor{1, 0 / 0, math.huge}:nan_to_num_()
    assert.same({1, 0}, {y[1], y[2]})
    assert(y[3] > 3e38 and y[3] < math.huge)
    check(function(x) return (x * 3):nan_to_num{nan = 1} end, {r64(2, 3)})
  end)
end)

describe("selection and sampling", function()
  it("argsort, nonzero, unique, isclose, allclose", function()
    local x = lg.tensor{3, 1, 2}
    assert.same({2, 3, 1}, x:argsort():totable())
    assert.same({1, 3, 2}, x:argsort(1, {descending = true}):totable())
    assert.same({{1}, {2}, {3}}, x:nonzero():totable())
    assert.same({1, 2, 3}, lg.tensor{2, 3, 1, 3}:unique():totable())
    assert.is_true(lg.allclose(lg.tensor{1.0, 2.0}, lg.tensor{1.0, 2.0 + 1e-7}))
    assert.is_false(lg.allclose(lg.tensor{1.0}, lg.tensor{1.1}))
    assert.is_true(lg.allclose(lg.tensor{0 / 0}, lg.tensor{0 / 0},
                               {equal_nan = true}))
    assert.has_error(function() lg.isclose(x, x, {rtl = 1}) end,
      "isclose: unknown option 'rtl' (valid options: rtol, atol, equal_nan)")
  end)
  it("multinomial draws by weight, 1-based, with and without replacement",
     function()
    local g = lg.Generator(7)
    local p = lg.tensor{0, 3, 1, 0.0}
    local s = lg.multinomial(p, 4000, {replacement = true, generator = g})
    local c2 = s:eq(2):sum():item()
    assert.equal(4000, c2 + s:eq(3):sum():item())
    assert(math.abs(c2 / 4000 - 0.75) < 0.03, c2)
    local w = lg.multinomial(lg.tensor{{1, 1, 1}, {0, 2, 5.0}}, 2, {generator = g})
    assert.same({2, 2}, w:shape())
    local row = w[2]:totable()
    assert.are_not.equal(row[1], row[2])
    assert.has_error(function() lg.multinomial(p, 3) end,
      "multinomial: row 1 has fewer non-zero categories than samples asked " ..
      "without replacement")
    assert.has_error(function() lg.multinomial(lg.tensor{-1, 1.0}, 1) end,
      "multinomial: row 1 has a negative, infinite or NaN probability")
    -- the same generator state gives the same draws
    local a = lg.multinomial(p, 10, {replacement = true,
                                     generator = lg.Generator(3)})
    local b = lg.multinomial(p, 10, {replacement = true,
                                     generator = lg.Generator(3)})
    assert.same(a:totable(), b:totable())
  end)
  it("bernoulli draws 0/1 with each element's probability", function()
    local p = lg.full({20000}, 0.3, {dtype = lg.float64})
    local b = lg.bernoulli(p, {generator = lg.Generator(1)})
    assert.equal("float64", b:dtype())
    local m = b:mean():item()
    assert(math.abs(m - 0.3) < 0.02, m)
    assert.same({0, 1, 1}, lg.tensor{0, 1, 1.0}:bernoulli():totable())
    assert.has_error(function() lg.tensor{1.5}:bernoulli() end,
      "bernoulli: probability 1.5 at element 1 is not in [0, 1]")
  end)
  it("bad arguments raise naming the op", function()
    local x = lg.zeros(3)
    assert.has_error(function() x:tril() end,
      "tril: needs a tensor of at least 2 dimensions, got [3]")
    assert.has_error(function() x:flip() end,
      "flip: give the dims to flip (a number or a table)")
    assert.has_error(function() x:unfold(1, 4, 1) end,
      "unfold: size 4 (0..3) and step 1 (at least 1) do not fit dimension 1")
    assert.has_error(function() x:tile{-1} end,
      "tile: repeat count -1 of dimension 1 is negative")
    assert.has_error(function() x:diagonal() end,
      "diagonal: needs at least 2 dimensions, got [3]")
    assert.has_error(function() x:roll({1, 2}, 1) end,
      "roll: 2 shifts for 1 dims")
    assert.has_error(function() x:masked_select(lg.ones(3)) end,
      "masked_select: the mask must be a bool tensor, got float32")
    assert.has_error(function() x:masked_fill_(lg.ones(4):bool(), 1) end)
  end)
end)

describe("lg.linalg", function()
  local LA = lg.linalg
  local function spd(n, b)
    local a = b and r64(b, n, n) or r64(n, n)
    return (a:matmul(a:transpose(-2, -1)) + lg.eye(n, {dtype = lg.float64}) * n)
      :detach():requires_grad_()
  end
  it("float32 in, float32 out; batched over leading dims", function()
    local a = lg.randn(2, 3, 3, 3) + lg.eye(3) * 4
    local i = LA.inv(a)
    assert.equal("float32", i:dtype())
    assert.same({2, 3, 3, 3}, i:shape())
    assert(lg.allclose(a:matmul(i), lg.eye(3):expand(2, 3, 3, 3),
                       {atol = 1e-5}))
    assert.same({2, 3}, LA.det(a):shape())
  end)
  it("gradients (float64 gradcheck)", function()
    check(function(a) return LA.inv(a) end, {spd(3, 2)})
    check(function(a, b) return LA.solve(a, b) end, {spd(3), r64(2, 3, 2)})
    check(function(a, b) return LA.solve(a, b) end, {spd(3), r64(3)})
    check(function(a)
      return LA.cholesky((a + a:transpose(-2, -1)) * 0.5)
    end, {spd(3, 2)})
    check(function(a)
      return LA.cholesky((a + a:t()) * 0.5, {upper = true})
    end, {spd(3)})
    check(function(a) return LA.det(a) end, {r64(2, 3, 3)})
    check(function(a) return select(2, LA.slogdet(a)) end, {r64(3, 3)})
    check(function(a) local q = LA.qr(a); return q end, {r64(4, 3)})
    check(function(a) return select(2, LA.qr(a)) end, {r64(3, 3)})
    check(function(a) return LA.svdvals(a) end, {r64(3, 4)})
    check(function(a)
      local w, v = LA.eigh(a + a:t())
      return w:sum() + (v * v):matmul(w:unsqueeze(2)):sum()
    end, {r64(4, 4)})
    check(function(a, b) return LA.lstsq(a, b) end, {r64(5, 3), r64(5, 2)})
    check(function(a) return LA.norm(a, "nuc") end, {r64(3, 3)})
    check(function(a) return LA.norm(a, 3, 2) end, {r64(3, 4)})
    check(function(a) return LA.norm(a, "fro", {1, 2}, {keepdim = true}) end,
          {r64(2, 3, 2)})
  end)
  it("inv, solve, det, slogdet, cholesky are differentiable again",
     function()
    local function gg(f, a)
      check(function(x)
        -- gradcheck's finite differences run under no_grad
        local was = lg.set_grad_enabled(true)
        local g = lg.grad({f(x):sum()}, {x}, {create_graph = true})[1]
        lg.set_grad_enabled(was)
        return g
      end, {a})
    end
    gg(LA.inv, spd(3))
    gg(LA.det, r64(3, 3))
    gg(function(x) return select(2, LA.slogdet(x)) end, spd(3))
    gg(function(x) return LA.solve(x, lg.ones({3}, {dtype = lg.float64})) end,
       spd(3))
    gg(function(x) return LA.cholesky((x + x:t()) * 0.5) end, spd(3))
    -- first-order ones refuse create_graph instead of a wrong answer
    local a = r64(3, 3)
    assert.has_error(function()
      lg.grad({LA.svdvals(a):sum()}, {a}, {create_graph = true})
    end, "grad: svd: this gradient is not differentiable again (create_graph)")
  end)
  it("errors name the op and the batch element", function()
    local a = lg.eye(3):expand(4, 3, 3):clone()
    a[{3, 2}] = 0
    assert.has_error(function() LA.inv(a) end,
      "inv: batch element 3 is singular (U[2,2] is zero)")
    assert.has_error(function() LA.solve(a, lg.ones(4, 3)) end,
      "solve: batch element 3 of A is singular (U[2,2] is zero)")
    local b = lg.eye(2):expand(2, 2, 2):clone()
    b[{2, 1, 1}] = -1
    assert.has_error(function() LA.cholesky(b) end,
      "cholesky: batch element 2 is not positive definite (the leading " ..
      "minor of order 1 is not positive)")
    assert.has_error(function() LA.inv(lg.zeros(2, 3)) end,
      "inv: needs square matrices, got [2,3]")
    assert.has_error(function() LA.det(lg.zeros(3)) end,
      "det: needs a matrix or a batch of matrices (..., m, n), got [3]")
    assert.has_error(function() LA.solve(lg.eye(3), lg.ones(2)) end,
      "solve: A [3,3] and B [2] do not fit (A's size 3 against B's 2)")
    assert.has_error(function() LA.svd(lg.eye(2), {full_matrices = true}) end,
      "svd: only full_matrices = false (the reduced SVD) is supported")
    assert.equal(0, LA.det(lg.zeros(2, 2)):item())
    local s, l = LA.slogdet(lg.zeros(2, 2))
    assert.equal(0, s:item())
    assert.equal(-math.huge, l:item())
    local x = r64(3, 3)
    local _, _, vh = LA.svd(x)
    assert.has_error(function() vh:sum():backward() end,
      "backward: svd: gradients through the singular vectors (U, Vh) are " ..
      "not supported; only the singular values are differentiable")
  end)
end)

describe("PyTorch habits", function()
  local function err_of(fn)
    local ok, e = pcall(fn)
    assert.is_false(ok)
    return e
  end
  it("errors inside nn, data and train point at the caller's line", function()
    local here = debug.getinfo(1, "S").short_src
    local function at(e, line)
      assert.equal(here .. ":" .. line, e:match("^(.-:%d+):"), e)
      assert.is_nil(e:find("lgrad/nn.lua", 1, true), e)
    end
    local m = lg.nn.Linear(3, 2)
    local line = debug.getinfo(1, "l").currentline + 1
    local e = err_of(function() local _ = m(lg.zeros(4, 5)) end)
    at(e, line)
    assert.matches("linear: input %[4,5%] and weight %[2,3%]", e)
    line = debug.getinfo(1, "l").currentline + 1
    e = err_of(function() local _ = lg.nn.Linear(-1, 2) end)
    at(e, line)
    local seq = lg.nn.Sequential(lg.nn.Linear(3, 2), lg.nn.Linear(3, 2))
    line = debug.getinfo(1, "l").currentline + 1
    e = err_of(function() local _ = seq(lg.zeros(1, 3)) end)
    at(e, line)
    line = debug.getinfo(1, "l").currentline + 1
    e = err_of(function() local _ = lg.data.TensorDataset(lg.zeros(3), lg.zeros(4)) end)
    at(e, line)
    local ds = lg.data.TensorDataset(lg.zeros(3))
    line = debug.getinfo(1, "l").currentline + 1
    e = err_of(function() local _ = ds[5] end)
    at(e, line)
    line = debug.getinfo(1, "l").currentline + 1
    e = err_of(function() local _ = lg.data.DataLoader(ds, {batch_size = 0}) end)
    at(e, line)
    line = debug.getinfo(1, "l").currentline + 1
    e = err_of(function() local _ = lg.data.fashion_mnist("validation") end)
    at(e, line)
    local lin = lg.nn.Linear(1, 1)
    line = debug.getinfo(1, "l").currentline + 1
    e = err_of(function() local _ = lg.train.fit{model = lin, loss = lg.F.mse_loss,
      optimizer = lg.optim.SGD(lin:parameters(), {lr = 0.1}), verbose = false,
      data = lg.data.DataLoader(lg.data.TensorDataset(lg.zeros(3, 2), lg.zeros(3, 1)),
                                {batch_size = 2})} end)
    at(e, line)
  end)
  it("lg.autograd.Function objects have .apply, and calling them still works",
     function()
    local Double = lg.autograd.Function{
      forward = function(_, x) return x * 2 end,
      backward = function(_, g) return g * 2 end,
    }
    local x = r64(3)
    local a, b, c = Double.apply(x), Double(x), Double:apply(x)
    close(a, x * 2)
    close(b, a)
    close(c, a)
    a:sum():backward()
    close(x.grad, lg.full({3}, 2, {dtype = lg.float64}))
  end)
end)

describe("README", function()
  it("the slicing / linalg section's example runs", function()
    local text = assert(io.open("README.md")):read("a")
    local section = text:match("\n## Slicing, more tensor ops.-\n```lua\n(.-)\n```")
    assert.is_string(section)
    assert(load(section, "=README"))()
  end)
end)
