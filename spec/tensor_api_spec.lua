-- The tensor API of issue 14: the two silent wrong results (an in-place
-- copy between overlapping views, an options table where a dim was
-- expected), Torch7 slicing, the added ops against PyTorch fixtures and
-- gradcheck, in-place ops inside a graph, and the PyTorch habits.
local lg = require "lgrad"

local function close(a, b, tol)
  tol = tol or 1e-9
  local ta = lg.is_tensor(a) and a:double():flatten():totable() or a
  local tb = lg.is_tensor(b) and b:double():flatten():totable() or b
  assert.are.equal(#tb, #ta)
  for i = 1, #ta do
    local x, y = ta[i], tb[i]
    if not (x ~= x and y ~= y) and not (x == y) then
      assert(math.abs(x - y) <= tol * (1 + math.abs(y)),
             ("element %d: %s vs %s"):format(i, tostring(x), tostring(y)))
    end
  end
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
