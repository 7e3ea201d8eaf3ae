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
