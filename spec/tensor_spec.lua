-- Tensors: creation, seeded random numbers, inspection, printing, views
-- that share storage, t[i] reads and writes, and gather/scatter, cat,
-- stack, split, chunk, topk and sort, checked against hand-computed
-- values and plain Lua loops (the API reference, doc/api/lg.luadoc).
local lg = require "lgrad"
local h = require "helpers"

local function numbers_in(s)
  local out = {}
  for tok in s:gmatch("[%-%+]?%d+%.?%d*[eE]?[%-%+]?%d*") do
    out[#out + 1] = tonumber(tok)
  end
  return out
end

-- the output of a child lua5.4 running code, with the same module paths
local function run_child(code)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(code)
  f:close()
  local p = assert(io.popen(string.format(
    "LUA_PATH=%q LUA_CPATH=%q lua5.4 %s 2>&1",
    os.getenv("LUA_PATH") or package.path,
    os.getenv("LUA_CPATH") or package.cpath, path)))
  local out = p:read("a")
  p:close()
  os.remove(path)
  return out
end

describe("creation", function()
  describe("lg.tensor", function()
    it("takes a nested table and keeps its values and shape", function()
      local t = lg.tensor{{1, 2, 3}, {4, 5, 6}}
      assert.shape(t, {2, 3})
      assert.same({{1, 2, 3}, {4, 5, 6}}, t:totable())
      local c = lg.tensor{{{1.5}, {2.5}}, {{3.5}, {4.5}}, {{5.5}, {6.5}}}
      assert.shape(c, {3, 2, 1})
      assert.allclose(c, {{{1.5}, {2.5}}, {{3.5}, {4.5}}, {{5.5}, {6.5}}})
    end)

    it("infers int64 from integers, float32 from floats, bool from booleans",
       function()
      assert.equal("int64", lg.tensor{1, 2, 3}:dtype())
      assert.equal("float32", lg.tensor{1.5, 2}:dtype())
      assert.equal("float32", lg.tensor{1, 2.0}:dtype())
      assert.equal("float32", lg.tensor{{1, 2}, {3, 0.5}}:dtype())
      assert.equal("bool", lg.tensor{true, false}:dtype())
      assert.same({true, false}, lg.tensor{true, false}:totable())
    end)

    it("makes a 0-d tensor from a number or a boolean", function()
      local i = lg.tensor(3)
      assert.equal(0, i:dim())
      assert.equal("int64", i:dtype())
      assert.equal(3, i:item())
      assert.equal("integer", math.type(i:item()))
      local f = lg.tensor(2.5)
      assert.equal(0, f:dim())
      assert.equal("float32", f:dtype())
      assert.equal(2.5, f:item())
      local b = lg.tensor(true)
      assert.equal("bool", b:dtype())
      assert.is_true(b:item())
      assert.same({}, f:shape())
      assert.equal(1, f:numel())
    end)

    it("honours dtype and requires_grad options", function()
      local t = lg.tensor({1, 2, 3}, {dtype = lg.float64})
      assert.equal("float64", t:dtype())
      assert.allclose(t, {1, 2, 3})
      local l = lg.tensor({1.7, -2.2}, {dtype = lg.int64})
      assert.equal("int64", l:dtype())
      assert.same({1, -2}, l:totable())
      local b = lg.tensor({0, 2, 0}, {dtype = lg.bool})
      assert.same({false, true, false}, b:totable())
      local g = lg.tensor({1.0, 2.0}, {requires_grad = true})
      assert.is_true(g.requires_grad)
      assert.is_false(lg.tensor{1.0}.requires_grad)
      local s = lg.tensor(4, {dtype = lg.float64})
      assert.equal("float64", s:dtype())
      assert.equal(4, s:item())
    end)

    it("copies a tensor (changes to the copy leave the source alone)",
       function()
      local a = lg.tensor{{1, 2}, {3, 4}}
      local b = lg.tensor(a)
      assert.same(a:totable(), b:totable())
      assert.equal("int64", b:dtype())
      b:fill_(0)
      assert.same({{1, 2}, {3, 4}}, a:totable())
      local c = lg.tensor(a, {dtype = lg.float64})
      assert.equal("float64", c:dtype())
      assert.allclose(c, {{1, 2}, {3, 4}})
      -- from a transposed view: the copy has the view's logical order
      local t = lg.tensor(a:t())
      assert.same({{1, 3}, {2, 4}}, t:totable())
      assert.is_true(t:is_contiguous())
    end)

    it("follows set_default_dtype for floats", function()
      lg.set_default_dtype(lg.float64)
      local ok, err = pcall(function()
        assert.equal("float64", lg.tensor{0.5}:dtype())
        assert.equal("float64", lg.zeros(2):dtype())
        assert.equal("float64", lg.rand(2):dtype())
        assert.equal("float64", lg.range(0, 1, 0.5):dtype())
        assert.equal("int64", lg.tensor{1}:dtype())
        -- float64 keeps the digits float32 would lose
        assert.equal(0.1, lg.tensor{0.1}[1])
      end)
      lg.set_default_dtype(lg.float32)
      assert(ok, err)
      assert.equal("float32", lg.tensor{0.5}:dtype())
      assert.are_not.equal(0.1, lg.tensor{0.1}[1])
    end)
  end)

  describe("zeros ones empty full", function()
    it("take the shape as integers or as one table", function()
      for _, f in ipairs{"zeros", "ones", "empty", "rand", "randn"} do
        assert.shape(lg[f](2, 3), {2, 3})
        assert.shape(lg[f]{2, 3}, {2, 3})
        assert.shape(lg[f](4), {4})
        assert.shape(lg[f]({2, 3, 4}, {dtype = lg.float64}), {2, 3, 4})
        assert.equal("float64", lg[f]({2}, {dtype = lg.float64}):dtype())
        assert.equal("float64", lg[f](2, 2, {dtype = lg.float64}):dtype())
        assert.equal("float32", lg[f](2):dtype())
      end
    end)

    it("fill with 0 and 1 in every dtype", function()
      assert.same({{0, 0, 0}, {0, 0, 0}}, lg.zeros(2, 3):totable())
      assert.same({{1, 1}, {1, 1}}, lg.ones{2, 2}:totable())
      assert.same({0, 0}, lg.zeros(2, {dtype = lg.int64}):totable())
      assert.equal("integer", math.type(lg.ones(1, {dtype = lg.int64})[1]))
      assert.same({true, true}, lg.ones(2, {dtype = lg.bool}):totable())
      assert.same({false}, lg.zeros(1, {dtype = lg.bool}):totable())
    end)

    it("make a 0-d tensor from the empty shape", function()
      local z = lg.zeros{}
      assert.equal(0, z:dim())
      assert.equal(1, z:numel())
      assert.equal(0, z:item())
      local o = lg.ones({}, {dtype = lg.float64})
      assert.equal("float64", o:dtype())
      assert.equal(1, o:item())
    end)

    it("allow zero-sized dimensions", function()
      local e = lg.zeros(0, 3)
      assert.shape(e, {0, 3})
      assert.equal(0, e:numel())
      assert.equal(0, e:sum():item())
    end)

    it("requires_grad in the options", function()
      local z = lg.zeros({2, 3}, {dtype = lg.float64, requires_grad = true})
      assert.is_true(z.requires_grad)
      assert.is_true(lg.randn(2, 3, {requires_grad = true}).requires_grad)
      assert.is_false(lg.zeros(2).requires_grad)
    end)

    it("full fills with the value", function()
      assert.allclose(lg.full({2, 2}, 7.5), {{7.5, 7.5}, {7.5, 7.5}})
      assert.equal("float32", lg.full({3}, 0.5):dtype())
      local i = lg.full({3}, 4, {dtype = lg.int64})
      assert.same({4, 4, 4}, i:totable())
      assert.equal("int64", i:dtype())
      assert.equal(-2, lg.full({}, -2):item())
      assert.same({true, true}, lg.full({2}, true):totable())
    end)
  end)

  describe("eye", function()
    it("is the identity", function()
      assert.same({{1, 0, 0}, {0, 1, 0}, {0, 0, 1}}, lg.eye(3):totable())
      assert.equal("float32", lg.eye(2):dtype())
      local d = lg.eye(2, {dtype = lg.float64})
      assert.equal("float64", d:dtype())
      assert.same({{1, 0}, {0, 1}}, d:totable())
      assert.same({{1}}, lg.eye(1):totable())
    end)
  end)

  describe("range", function()
    it("is inclusive and int64 for integer arguments", function()
      local r = lg.range(1, 5)
      assert.equal(5, r:numel())
      assert.equal("int64", r:dtype())
      assert.same({1, 2, 3, 4, 5}, r:totable())
      assert.same({1, 3, 5}, lg.range(1, 5, 2):totable())
      assert.same({1, 3, 5}, lg.range(1, 6, 2):totable())
      assert.same({5, 4, 3, 2, 1}, lg.range(5, 1, -1):totable())
      assert.same({0}, lg.range(0, 0):totable())
      assert.same({-2, -1, 0}, lg.range(-2, 0):totable())
    end)

    it("has as many elements as Lua's numeric for", function()
      for _, c in ipairs{{1, 10, 3}, {10, 1, -4}, {0, 7, 7}, {3, 3, 1},
                         {-5, 5, 2}} do
        local want = {}
        for i = c[1], c[2], c[3] do want[#want + 1] = i end
        assert.same(want, lg.range(c[1], c[2], c[3]):totable())
      end
    end)

    it("gives the default float dtype for float arguments", function()
      local r = lg.range(0, 1, 0.25)
      assert.equal("float32", r:dtype())
      assert.allclose(r, {0, 0.25, 0.5, 0.75, 1})
      local f = lg.range(1.0, 3)
      assert.equal("float32", f:dtype())
      assert.allclose(f, {1, 2, 3})
      assert.allclose(lg.range(1, 2, 0.5), {1, 1.5, 2})
      local d = lg.range(1, 3, {dtype = lg.float64})
      assert.equal("float64", d:dtype())
      assert.allclose(d, {1, 2, 3})
    end)
  end)

  describe("linspace", function()
    it("spaces n points from a to b inclusive", function()
      assert.allclose(lg.linspace(0, 1, 5), {0, 0.25, 0.5, 0.75, 1})
      assert.allclose(lg.linspace(-1, 1, 3), {-1, 0, 1})
      assert.allclose(lg.linspace(2, 2, 1), {2})
      assert.allclose(lg.linspace(3, 1, 3), {3, 2, 1})
      local d = lg.linspace(0, 1, 11, {dtype = lg.float64})
      assert.equal("float64", d:dtype())
      for i = 1, 11 do
        assert.is_true(math.abs(d[i] - (i - 1) / 10) < 1e-15)
      end
    end)
  end)

  describe("random", function()
    it("rand is uniform in [0, 1)", function()
      lg.manual_seed(1)
      local r = lg.rand(20000)
      local v = h.flat(r)
      local lo, hi, sum = math.huge, -math.huge, 0
      for _, x in ipairs(v) do
        lo, hi, sum = math.min(lo, x), math.max(hi, x), sum + x
      end
      assert.is_true(lo >= 0 and hi < 1)
      assert.is_true(lo < 0.01 and hi > 0.99)
      assert.is_true(math.abs(sum / #v - 0.5) < 0.01)
    end)

    it("randn has mean 0 and standard deviation 1", function()
      lg.manual_seed(2)
      local v = h.flat(lg.randn(20000, {dtype = lg.float64}))
      local sum, sq = 0, 0
      for _, x in ipairs(v) do sum, sq = sum + x, sq + x * x end
      local mean = sum / #v
      assert.is_true(math.abs(mean) < 0.03)
      assert.is_true(math.abs(math.sqrt(sq / #v - mean * mean) - 1) < 0.03)
    end)

    it("randint draws from lo..hi inclusive, int64", function()
      lg.manual_seed(3)
      local r = lg.randint(1, 10, {2000})
      assert.equal("int64", r:dtype())
      assert.shape(r, {2000})
      local seen = {}
      for _, x in ipairs(h.flat(r)) do
        assert.equal("integer", math.type(x))
        assert.is_true(x >= 1 and x <= 10)
        seen[x] = true
      end
      for k = 1, 10 do assert.is_true(seen[k], "never drew " .. k) end
      assert.shape(lg.randint(-3, 3, {4, 5}), {4, 5})
      assert.same({7, 7}, lg.randint(7, 7, {2}):totable())
    end)

    it("randperm is a 1-based permutation of 1..n", function()
      lg.manual_seed(4)
      for _, n in ipairs{1, 2, 10, 1000} do
        local p = lg.randperm(n)
        assert.equal("int64", p:dtype())
        assert.shape(p, {n})
        local seen = {}
        for _, x in ipairs(h.flat(p)) do
          assert.is_true(x >= 1 and x <= n)
          assert.is_nil(seen[x])
          seen[x] = true
        end
      end
      -- not the identity for a long one
      local p = h.flat(lg.randperm(100))
      local moved = 0
      for i = 1, 100 do if p[i] ~= i then moved = moved + 1 end end
      assert.is_true(moved > 50)
    end)

    it("gives the same numbers after the same seed", function()
      lg.manual_seed(42)
      local a = {lg.rand(50):totable(), lg.randn(3, 4):totable(),
                 lg.randint(1, 100, {20}):totable(),
                 lg.randperm(30):totable(),
                 lg.zeros(9):uniform_(-2, 2):totable(),
                 lg.zeros(9):normal_(1, 3):totable(),
                 lg.rand_like(lg.zeros(4)):totable(),
                 lg.randn_like(lg.zeros(4)):totable()}
      lg.manual_seed(42)
      local b = {lg.rand(50):totable(), lg.randn(3, 4):totable(),
                 lg.randint(1, 100, {20}):totable(),
                 lg.randperm(30):totable(),
                 lg.zeros(9):uniform_(-2, 2):totable(),
                 lg.zeros(9):normal_(1, 3):totable(),
                 lg.rand_like(lg.zeros(4)):totable(),
                 lg.randn_like(lg.zeros(4)):totable()}
      assert.same(a, b)
      lg.manual_seed(43)
      assert.are_not.same(a[1], lg.rand(50):totable())
    end)

    it("gives the same numbers in a new process", function()
      local code = [[local lg = require "lgrad"; lg.manual_seed(123)
        local t = lg.randn(6, {dtype = lg.float64})
        for i = 1, 6 do io.write(string.format("%.17g ", t[i])) end
        local p = lg.randperm(8)
        for i = 1, 8 do io.write(p[i], " ") end]]
      local a, b = run_child(code), run_child(code)
      assert.equal(14, #numbers_in(a), a)
      assert.equal(a, b)
      lg.manual_seed(123)
      local t = lg.randn(6, {dtype = lg.float64})
      assert.allclose(numbers_in(a)[1], t[1], 0, 0)
      assert.allclose(numbers_in(a)[6], t[6], 0, 0)
    end)

    it("gives the same numbers for any thread count", function()
      local old = lg.get_num_threads and lg.get_num_threads() or 1
      lg.set_num_threads(1)
      lg.manual_seed(9)
      local a = lg.randn(100000)
      local au = lg.zeros(50000):uniform_()
      lg.set_num_threads(4)
      lg.manual_seed(9)
      local b = lg.randn(100000)
      local bu = lg.zeros(50000):uniform_()
      lg.set_num_threads(old)
      assert.is_true(a:eq(b):all():item())
      assert.is_true(au:eq(bu):all():item())
    end)

    it("lg.Generator streams are independent of the global one", function()
      local g1, g2 = lg.Generator(5), lg.Generator(5)
      lg.manual_seed(77)
      local plain = lg.rand(8):totable()
      lg.manual_seed(77)
      local x = lg.rand(8, {generator = g1})
      local after = lg.rand(8):totable() -- global stream untouched by g1
      assert.same(plain, after)
      local y = lg.rand(8, {generator = g2})
      assert.same(x:totable(), y:totable())
      assert.are_not.same(plain, x:totable())
      -- every random function takes one
      local g3, g4 = lg.Generator(11), lg.Generator(11)
      local function draw(g)
        return {lg.randn(5, {generator = g}):totable(),
                lg.randint(0, 9, {5}, {generator = g}):totable(),
                lg.randperm(6, {generator = g}):totable(),
                lg.zeros(4):uniform_(0, 1, {generator = g}):totable(),
                lg.zeros(4):normal_(0, 1, {generator = g}):totable(),
                lg.rand_like(lg.zeros(3), {generator = g}):totable(),
                lg.randn_like(lg.zeros(3), {generator = g}):totable()}
      end
      assert.same(draw(g3), draw(g4))
      -- a different seed, different numbers
      assert.are_not.same(lg.rand(8, {generator = lg.Generator(6)}):totable(),
                          x:totable())
    end)

    it("uniform_ and normal_ fill in place within their parameters",
       function()
      lg.manual_seed(5)
      local t = lg.zeros(5000, {dtype = lg.float64})
      assert.is_true(rawequal(t, t:uniform_(-3, -1)))
      local v = h.flat(t)
      local sum = 0
      for _, x in ipairs(v) do
        assert.is_true(x >= -3 and x < -1)
        sum = sum + x
      end
      assert.is_true(math.abs(sum / #v + 2) < 0.05)
      assert.is_true(rawequal(t, t:normal_(10, 0.5)))
      local s, sq = 0, 0
      for _, x in ipairs(h.flat(t)) do s, sq = s + x, sq + x * x end
      local mean = s / #v
      assert.is_true(math.abs(mean - 10) < 0.05)
      assert.is_true(math.abs(math.sqrt(sq / #v - mean * mean) - 0.5) < 0.03)
    end)
  end)

  describe("*_like", function()
    it("keep shape and dtype, and take options", function()
      local a = lg.zeros({2, 3}, {dtype = lg.float64})
      for _, f in ipairs{"zeros_like", "ones_like", "rand_like", "randn_like"}
      do
        local b = lg[f](a)
        assert.shape(b, {2, 3})
        assert.equal("float64", b:dtype())
        assert.equal("float32", lg[f](a, {dtype = lg.float32}):dtype())
      end
      assert.same({{0, 0, 0}, {0, 0, 0}}, lg.zeros_like(a):totable())
      assert.same({{1, 1, 1}, {1, 1, 1}}, lg.ones_like(a):totable())
      local i = lg.ones_like(lg.tensor{{1, 2}})
      assert.equal("int64", i:dtype())
      assert.same({{1, 1}}, i:totable())
      -- from a view: the view's shape
      assert.shape(lg.zeros_like(lg.zeros(2, 5):t()), {5, 2})
      assert.is_true(lg.ones_like(a, {requires_grad = true}).requires_grad)
    end)
  end)

  describe("dtype conversion", function()
    it("float double long to and dtype names", function()
      local t = lg.tensor{1.75, -2.25, 3}
      assert.equal("float32", t:dtype())
      assert.equal("float64", t:double():dtype())
      assert.equal("float32", t:double():float():dtype())
      local l = t:long()
      assert.equal("int64", l:dtype())
      assert.same({1, -2, 3}, l:totable())
      assert.equal("float64", t:to(lg.float64):dtype())
      assert.same({true, true, true}, t:to(lg.bool):totable())
      assert.same({false, true}, lg.tensor{0, 5}:to(lg.bool):totable())
      assert.allclose(lg.tensor{true, false}:to(lg.float32), {1, 0})
      assert.equal("float32", lg.float32)
      assert.equal("float64", lg.float64)
      assert.equal("int64", lg.int64)
      assert.equal("bool", lg.bool)
    end)
  end)
end)

describe("inspection", function()
  local t = lg.zeros(2, 3, 4)

  it("shape is a new table each time", function()
    local s = t:shape()
    assert.same({2, 3, 4}, s)
    s[1] = 99
    assert.same({2, 3, 4}, t:shape())
    assert.are_not.equal(t:shape(), t:shape())
  end)

  it("size, dim, numel and #", function()
    assert.equal(2, t:size(1))
    assert.equal(3, t:size(2))
    assert.equal(4, t:size(3))
    assert.equal(4, t:size(-1))
    assert.equal(3, t:size(-2))
    assert.equal(2, t:size(-3))
    assert.equal(3, t:dim())
    assert.equal(24, t:numel())
    assert.equal(2, #t)
    assert.equal(5, #lg.zeros(5))
    assert.equal(0, lg.tensor(1.5):dim())
    assert.equal(1, lg.tensor(1.5):numel())
    assert.equal(0, lg.zeros(3, 0):numel())
    assert.equal("integer", math.type(t:size(1)))
    assert.equal("integer", math.type(t:numel()))
  end)

  it("item gives a number of the tensor's kind", function()
    assert.equal(3, lg.tensor{3}:item())
    assert.equal("integer", math.type(lg.tensor{3}:item()))
    assert.equal(0.5, lg.tensor{{0.5}}:item())
    assert.equal("float", math.type(lg.tensor{{0.5}}:item()))
    assert.is_false(lg.tensor{false}:item())
    -- large int64 values are exact
    local big = lg.tensor{9007199254740993}
    assert.equal(9007199254740993, big:item())
    assert.equal(9007199254740993, big[1])
    assert.same({9007199254740993}, big:totable())
  end)

  it("totable gives nested Lua tables", function()
    local a = lg.tensor{{{1, 2}, {3, 4}}, {{5, 6}, {7, 8}}}
    assert.same({{{1, 2}, {3, 4}}, {{5, 6}, {7, 8}}}, a:totable())
    assert.equal(7, lg.tensor(7):totable())
    assert.same({}, lg.zeros(0):totable())
    -- of views, in logical order
    assert.same({{1, 5}, {2, 6}}, a:select(2, 1):t():totable())
  end)

  it("is_contiguous", function()
    local a = lg.zeros(3, 4)
    assert.is_true(a:is_contiguous())
    assert.is_false(a:t():is_contiguous())
    assert.is_true(a:t():contiguous():is_contiguous())
    assert.is_true(a:narrow(1, 2, 2):is_contiguous())
    assert.is_false(a:narrow(2, 2, 2):is_contiguous())
    assert.is_false(lg.zeros(1, 4):expand(3, 4):is_contiguous())
    assert.is_true(a:select(1, 2):is_contiguous())
    assert.is_false(a:select(2, 2):is_contiguous())
    assert.is_false(lg.zeros(2, 3, 4):permute(3, 1, 2):is_contiguous())
  end)

  describe("tostring", function()
    it("shows the values, then type and size as Torch7 did", function()
      local s = tostring(lg.tensor{{1.5, 2, 3}, {4, 5, 6.25}})
      assert.is_truthy(s:find("[lgrad.Tensor float32 of size 2x3]", 1, true))
      local tail = s:match("(%[lgrad%.Tensor[^%]]*%])%s*$")
      assert.equal("[lgrad.Tensor float32 of size 2x3]", tail)
      local body = s:sub(1, s:find("[lgrad.Tensor", 1, true) - 1)
      assert.allclose(numbers_in(body), {1.5, 2, 3, 4, 5, 6.25}, 1e-4)
      -- rows on separate lines
      local first = body:match("^[^\n]*")
      assert.allclose(numbers_in(first), {1.5, 2, 3}, 1e-4)
    end)

    it("for each dtype and rank", function()
      local s = tostring(lg.tensor{3, -1, 20})
      assert.truthy(s:find("[lgrad.Tensor int64 of size 3]", 1, true))
      assert.same({3, -1, 20}, numbers_in(s:sub(1, s:find("%[") - 1)))
      local d = tostring(lg.tensor({0.125}, {dtype = lg.float64}))
      assert.truthy(d:find("[lgrad.Tensor float64 of size 1]", 1, true))
      assert.truthy(d:find("0.125", 1, true))
      local b = tostring(lg.tensor{true, false})
      assert.truthy(b:find("true", 1, true) and b:find("false", 1, true))
      assert.truthy(b:find("[lgrad.Tensor bool of size 2]", 1, true))
      local c = tostring(lg.range(1, 12):view(2, 3, 2))
      assert.truthy(c:find("[lgrad.Tensor int64 of size 2x3x2]", 1, true))
      local body = c:sub(1, c:find("[lgrad.Tensor", 1, true) - 1)
      local seen = {}
      for _, v in ipairs(numbers_in(body)) do seen[v] = true end
      for v = 1, 12 do assert.is_true(seen[v], "missing " .. v) end
      local z = tostring(lg.tensor(2.5))
      assert.truthy(z:find("2.5", 1, true))
      assert.truthy(z:find("[lgrad.Tensor float32", 1, true))
    end)

    it("shows small, large and non-finite values", function()
      local s = tostring(lg.tensor({1e-6, 1e6, -3.25}, {dtype = lg.float64}))
      local body = s:sub(1, s:find("[lgrad.Tensor", 1, true) - 1)
      assert.allclose(numbers_in(body), {1e-6, 1e6, -3.25}, 1e-3)
      local n = tostring(lg.tensor{0 / 0, math.huge, -math.huge, 1.5})
      assert.truthy(n:find("nan", 1, true))
      assert.truthy(n:find("inf", 1, true))
      assert.truthy(n:find("-inf", 1, true))
      assert.truthy(n:find("1.5", 1, true))
    end)

    it("of a non-contiguous view shows its logical order", function()
      local s = tostring(lg.tensor{{1, 2}, {3, 4}}:t())
      local body = s:sub(1, s:find("[lgrad.Tensor", 1, true) - 1)
      assert.same({1, 3, 2, 4}, numbers_in(body))
    end)

    it("of a large tensor stays short", function()
      local s = tostring(lg.zeros(1000, 1000))
      assert.is_true(#s < 20000)
      assert.truthy(s:find("of size 1000x1000", 1, true))
    end)
  end)
end)

describe("views share storage", function()
  local function base() return lg.range(1, 12):view(3, 4) end

  it("view (integers, a table, -1 inferred)", function()
    local a = base()
    local v = a:view(4, 3)
    assert.same({{1, 2, 3}, {4, 5, 6}, {7, 8, 9}, {10, 11, 12}}, v:totable())
    assert.shape(a:view{2, 6}, {2, 6})
    assert.shape(a:view(-1), {12})
    assert.shape(a:view(2, -1), {2, 6})
    assert.shape(a:view{-1, 3, 2}, {2, 3, 2})
    v[2] = 0 -- row 2 of the view is elements 4..6 of the base
    assert.same({{1, 2, 3, 0}, {0, 0, 7, 8}, {9, 10, 11, 12}}, a:totable())
    a[3] = -1
    assert.same({-1, -1, -1}, v[4]:totable())
  end)

  it("reshape shares when it can and copies values when it cannot",
     function()
    local a = base()
    local r = a:reshape(2, 6)
    assert.same({{1, 2, 3, 4, 5, 6}, {7, 8, 9, 10, 11, 12}}, r:totable())
    r[1] = 0
    assert.equal(0, a[1][1])
    local tr = base():t():reshape(12)
    assert.same({1, 5, 9, 2, 6, 10, 3, 7, 11, 4, 8, 12}, tr:totable())
    assert.shape(a:reshape{-1}, {12})
    assert.shape(a:reshape(4, -1), {4, 3})
  end)

  it("flatten", function()
    local a = lg.range(1, 24):view(2, 3, 4)
    local f = a:flatten()
    assert.shape(f, {24})
    assert.same(h.flat(a), f:totable())
    f[24] = 0
    assert.equal(0, a[2][3][4])
    assert.shape(a:flatten(2), {2, 12})
    assert.shape(a:flatten(1, 2), {6, 4})
    local ft = base():t():flatten()
    assert.same({1, 5, 9, 2, 6, 10, 3, 7, 11, 4, 8, 12}, ft:totable())
  end)

  it("squeeze and unsqueeze", function()
    local a = lg.range(1, 6):view(1, 2, 1, 3)
    assert.shape(a:squeeze(), {2, 3})
    assert.shape(a:squeeze(1), {2, 1, 3})
    assert.shape(a:squeeze(3), {1, 2, 3})
    assert.shape(a:squeeze(-2), {1, 2, 3})
    assert.shape(a:squeeze(2), {1, 2, 1, 3}) -- size 2: unchanged
    local s = a:squeeze()
    assert.same({{1, 2, 3}, {4, 5, 6}}, s:totable())
    s[2][3] = 60
    assert.equal(60, a[1][2][1][3])
    local v = lg.tensor{1, 2, 3}
    assert.shape(v:unsqueeze(1), {1, 3})
    assert.shape(v:unsqueeze(2), {3, 1})
    assert.shape(v:unsqueeze(-1), {3, 1})
    assert.shape(v:unsqueeze(-2), {1, 3})
    assert.shape(lg.zeros(2, 3):unsqueeze(2), {2, 1, 3})
    assert.shape(lg.tensor(5):unsqueeze(1), {1})
    local u = v:unsqueeze(1)
    u[1][2] = 20
    assert.same({1, 20, 3}, v:totable())
  end)

  it("transpose and t", function()
    local a = base()
    local t = a:t()
    assert.shape(t, {4, 3})
    for i = 1, 3 do
      for j = 1, 4 do assert.equal(a[i][j], t[j][i]) end
    end
    assert.same(t:totable(), a:transpose(1, 2):totable())
    assert.same(t:totable(), a:transpose(2, 1):totable())
    assert.same(t:totable(), a:transpose(-1, -2):totable())
    t[2][3] = 100
    assert.equal(100, a[3][2])
    local b = lg.range(1, 24):view(2, 3, 4)
    local bt = b:transpose(1, 3)
    assert.shape(bt, {4, 3, 2})
    for i = 1, 2 do
      for j = 1, 3 do
        for k = 1, 4 do assert.equal(b[i][j][k], bt[k][j][i]) end
      end
    end
    assert.same({1, 2, 3}, lg.tensor{1, 2, 3}:t():totable())
  end)

  it("permute", function()
    local b = lg.range(1, 24):view(2, 3, 4)
    local p = b:permute(3, 1, 2)
    assert.shape(p, {4, 2, 3})
    assert.same(p:totable(), b:permute{3, 1, 2}:totable())
    assert.same(p:totable(), b:permute(-1, 1, 2):totable())
    for i = 1, 2 do
      for j = 1, 3 do
        for k = 1, 4 do assert.equal(b[i][j][k], p[k][i][j]) end
      end
    end
    p[4][2][3] = -5
    assert.equal(-5, b[2][3][4])
    assert.same(b:totable(), b:permute(1, 2, 3):totable())
  end)

  it("expand repeats without copying", function()
    local r = lg.tensor{{1, 2, 3}}
    local e = r:expand(4, 3)
    assert.same({{1, 2, 3}, {1, 2, 3}, {1, 2, 3}, {1, 2, 3}}, e:totable())
    assert.same(e:totable(), r:expand{4, 3}:totable())
    assert.same(e:totable(), r:expand(4, -1):totable())
    local c = lg.tensor{{1}, {2}}:expand(2, 3)
    assert.same({{1, 1, 1}, {2, 2, 2}}, c:totable())
    local n = lg.tensor{5, 6}:expand(2, 2, 2) -- new leading dims
    assert.same({{{5, 6}, {5, 6}}, {{5, 6}, {5, 6}}}, n:totable())
    r[1][2] = 20
    assert.same({1, 20, 3}, e[4]:totable())
    assert.equal(2, lg.tensor(2.0):expand(3):sum():item() / 3)
  end)

  it("narrow(d, start, len) with a 1-based start", function()
    local a = base()
    local n = a:narrow(2, 2, 2)
    assert.same({{2, 3}, {6, 7}, {10, 11}}, n:totable())
    assert.same({{5, 6, 7, 8}}, a:narrow(1, 2, 1):totable())
    assert.same({{4}, {8}, {12}}, a:narrow(-1, 4, 1):totable())
    assert.same({{1, 2, 3, 4}, {5, 6, 7, 8}, {9, 10, 11, 12}},
                a:narrow(1, 1, 3):totable())
    assert.shape(a:narrow(1, 3, 0), {0, 4})
    n:fill_(0)
    assert.same({{1, 0, 0, 4}, {5, 0, 0, 8}, {9, 0, 0, 12}}, a:totable())
    -- a narrow of a narrow
    local nn = base():narrow(2, 2, 3):narrow(1, 2, 2):narrow(2, 2, 1)
    assert.same({{7}, {11}}, nn:totable())
  end)

  it("select(d, i) drops the dimension", function()
    local a = base()
    assert.same({5, 6, 7, 8}, a:select(1, 2):totable())
    assert.same({3, 7, 11}, a:select(2, 3):totable())
    assert.same({4, 8, 12}, a:select(2, -1):totable())
    assert.same({9, 10, 11, 12}, a:select(-2, -1):totable())
    local c = a:select(2, 1)
    c[3] = 90
    assert.equal(90, a[3][1])
    local s = lg.tensor{4, 5}:select(1, 2)
    assert.equal(0, s:dim())
    assert.equal(5, s:item())
  end)

  it("contiguous copies a strided view; clone always copies", function()
    local a = base()
    local c = a:t():contiguous()
    assert.is_true(c:is_contiguous())
    assert.same(a:t():totable(), c:totable())
    c[1] = 0
    assert.same({1, 5, 9}, a:select(2, 1):totable())
    local k = a:clone()
    assert.same(a:totable(), k:totable())
    assert.equal(a:dtype(), k:dtype())
    k[1][1] = 77
    assert.equal(1, a[1][1])
    local kt = a:t():clone()
    assert.same(a:t():totable(), kt:totable())
    -- contiguous of a contiguous tensor sees the same data
    local same = a:contiguous()
    assert.same(a:totable(), same:totable())
  end)

  it("views of views write through to the base", function()
    local a = lg.zeros(4, 5, {dtype = lg.float64})
    local v = a:t():narrow(1, 2, 3):select(2, 4) -- column 4 of a, rows 2..4
    v:fill_(1)
    for i = 1, 4 do
      for j = 1, 5 do
        local want = (i == 4 and j >= 2 and j <= 4) and 1 or 0
        assert.equal(want, a[i][j])
      end
    end
    a:view(20):narrow(1, 1, 2):add_(5)
    assert.same({5, 5, 0, 0, 0}, a[1]:totable())
  end)

  it("a view keeps its base's storage after the base is dropped", function()
    local v
    do
      local a = lg.range(1, 6):view(2, 3)
      v = a:t()
    end
    collectgarbage()
    collectgarbage()
    assert.same({{1, 4}, {2, 5}, {3, 6}}, v:totable())
  end)
end)

describe("t[i]", function()
  it("reads a number from a 1-d tensor", function()
    local v = lg.tensor{10, 20, 30}
    assert.equal(10, v[1])
    assert.equal(30, v[3])
    assert.equal(30, v[-1])
    assert.equal(10, v[-3])
    assert.equal("integer", math.type(v[2]))
    local f = lg.tensor{0.5, 1.5}
    assert.equal(1.5, f[2])
    assert.equal("float", math.type(f[1]))
    assert.is_true(lg.tensor{false, true}[2])
    assert.equal(3, lg.tensor{1, 2, 3, 4}:narrow(1, 2, 3)[2])
    assert.equal(6, lg.range(1, 6):view(2, 3):select(2, 3)[2])
  end)

  it("reads a view from a tensor of higher rank", function()
    local a = lg.range(1, 12):view(3, 4)
    local r = a[2]
    assert.shape(r, {4})
    assert.same({5, 6, 7, 8}, r:totable())
    assert.same({9, 10, 11, 12}, a[-1]:totable())
    assert.equal(7, a[2][3])
    assert.equal(12, a[-1][-1])
    r[1] = 50
    assert.equal(50, a[2][1])
    local b = lg.range(1, 24):view(2, 3, 4)
    assert.shape(b[2], {3, 4})
    assert.equal(23, b[2][3][3])
    assert.equal(17, b[-1][2][1])
    local tr = a:t()
    assert.same({2, 6, 10}, tr[2]:totable())
    assert.equal(10, tr[2][3])
  end)

  it("assigns a number", function()
    local v = lg.tensor{1.0, 2.0, 3.0}
    v[2] = 9.5
    v[-1] = -1
    assert.same({1, 9.5, -1}, v:totable())
    local a = lg.zeros(2, 3)
    a[2] = 4
    assert.same({{0, 0, 0}, {4, 4, 4}}, a:totable())
    a[1][3] = 7
    assert.same({{0, 0, 7}, {4, 4, 4}}, a:totable())
    local i = lg.zeros(3, {dtype = lg.int64})
    i[1] = 5
    assert.same({5, 0, 0}, i:totable())
    local b = lg.zeros(2, {dtype = lg.bool})
    b[2] = true
    assert.same({false, true}, b:totable())
  end)

  it("assigns a tensor of the row's shape or one that broadcasts to it",
     function()
    local a = lg.zeros(3, 4)
    a[1] = lg.tensor{1, 2, 3, 4}
    a[2] = lg.tensor{9}
    a[-1] = lg.tensor(7.0)
    assert.same({{1, 2, 3, 4}, {9, 9, 9, 9}, {7, 7, 7, 7}}, a:totable())
    local c = lg.zeros(2, 2, 3)
    c[2] = lg.tensor{{1, 2, 3}}
    assert.same({{1, 2, 3}, {1, 2, 3}}, c[2]:totable())
    assert.same({{0, 0, 0}, {0, 0, 0}}, c[1]:totable())
    c[1] = lg.tensor{{1}, {2}}
    assert.same({{1, 1, 1}, {2, 2, 2}}, c[1]:totable())
    -- from a strided source into a strided destination
    local m = lg.zeros(3, 3)
    local tm = m:t()
    tm[2] = lg.range(1, 9):view(3, 3):t()[3]
    assert.same({{0, 3, 0}, {0, 6, 0}, {0, 9, 0}}, m:totable())
  end)
end)

describe("gather and scatter", function()
  local a = lg.tensor{{1, 2, 3}, {4, 5, 6}, {7, 8, 9}}

  it("index_select with 1-based indices", function()
    local idx = lg.tensor{3, 1, 3}
    assert.same({{7, 8, 9}, {1, 2, 3}, {7, 8, 9}},
                a:index_select(1, idx):totable())
    assert.same({{3, 1, 3}, {6, 4, 6}, {9, 7, 9}},
                a:index_select(2, idx):totable())
    assert.same({{2}, {5}, {8}}, a:index_select(-1, lg.tensor{2}):totable())
    assert.same({3, 3, 1},
                lg.tensor{1, 2, 3}:index_select(1, lg.tensor{3, 3, 1})
                  :totable())
    -- a strided input
    assert.same({{3, 9}, {1, 7}}, a:t():index_select(1, lg.tensor{3, 1})
                                    :index_select(2, lg.tensor{1, 3})
                                    :totable())
    -- result is a copy
    local s = a:index_select(1, lg.tensor{1})
    s:fill_(0)
    assert.equal(1, a[1][1])
  end)

  it("gather picks along a dimension", function()
    local idx = lg.tensor{{1, 1}, {3, 2}, {2, 3}}
    -- out[i][j] = a[i][idx[i][j]]
    assert.same({{1, 1}, {6, 5}, {8, 9}}, a:gather(2, idx):totable())
    -- out[i][j] = a[idx[i][j]][j]
    local idx1 = lg.tensor{{3, 2, 1}}
    assert.same({{7, 5, 3}}, a:gather(1, idx1):totable())
    -- against a loop on random data
    local x = lg.tensor(h.data({4, 5}, 1))
    lg.manual_seed(3)
    local gi = lg.randint(1, 5, {4, 7})
    local g = x:gather(2, gi)
    assert.shape(g, {4, 7})
    for i = 1, 4 do
      for j = 1, 7 do assert.equal(x[i][gi[i][j]], g[i][j]) end
    end
    local gt = x:t():gather(1, gi:narrow(2, 1, 5):t())
    for i = 1, 5 do
      for j = 1, 4 do assert.equal(x[j][gi[j][i]], gt[i][j]) end
    end
  end)

  it("scatter_ writes in place and returns the tensor", function()
    local z = lg.zeros(3, 4)
    local idx = lg.tensor{{2, 4}, {1, 3}, {4, 1}}
    local src = lg.tensor{{1.0, 2.0}, {3.0, 4.0}, {5.0, 6.0}}
    local r = z:scatter_(2, idx, src)
    assert.is_true(rawequal(r, z))
    assert.same({{0, 1, 0, 2}, {3, 0, 4, 0}, {6, 0, 0, 5}}, z:totable())
    local y = lg.zeros(3, 2)
    y:scatter_(1, lg.tensor{{3, 1}}, lg.tensor{{7.0, 8.0}})
    assert.same({{0, 8}, {0, 0}, {7, 0}}, y:totable())
    -- a number as the source
    local w = lg.zeros(2, 3)
    w:scatter_(2, lg.tensor{{3}, {1}}, 1.5)
    assert.same({{0, 0, 1.5}, {1.5, 0, 0}}, w:totable())
    -- into a strided view: lands in the base
    local base = lg.zeros(4, 3)
    base:t():scatter_(2, lg.tensor{{4}, {1}, {2}}, lg.tensor{{1.0}, {2.0},
                                                           {3.0}})
    assert.same({{0, 2, 0}, {0, 0, 3}, {0, 0, 0}, {1, 0, 0}}, base:totable())
  end)

  it("masked_fill with a broadcast mask leaves the input alone", function()
    local x = lg.tensor{{1.0, 2.0, 3.0}, {4.0, 5.0, 6.0}}
    local m = lg.tensor{{true, false, true}, {false, false, true}}
    assert.same({{0, 2, 0}, {4, 5, 0}}, x:masked_fill(m, 0):totable())
    assert.same({{1, 2, 3}, {4, 5, 6}}, x:totable())
    assert.same({{-1, 2, -1}, {-1, 5, -1}},
                x:masked_fill(lg.tensor{true, false, true}, -1):totable())
    assert.same({{9, 9, 9}, {4, 5, 6}},
                x:masked_fill(lg.tensor{{true}, {false}}, 9):totable())
    -- a strided input: the columns 1 and 2 of x as rows
    assert.same({{1, 9}, {2, 9}},
                x:t():narrow(1, 1, 2):masked_fill(lg.tensor{false, true}, 9)
                  :totable())
    local masked = x:masked_fill(x:gt(3.5), math.huge)
    assert.same({{1, 2, 3}, {math.huge, math.huge, math.huge}},
                masked:totable())
    local i = lg.tensor{1, 2, 3}:masked_fill(lg.tensor{false, true, false}, 0)
    assert.same({1, 0, 3}, i:totable())
    assert.equal("int64", i:dtype())
  end)

  it("where picks from a where cond holds, else from b", function()
    local c = lg.tensor{{true, false}, {false, true}}
    local x = lg.tensor{{1.0, 2.0}, {3.0, 4.0}}
    local y = lg.tensor{{-1.0, -2.0}, {-3.0, -4.0}}
    assert.same({{1, -2}, {-3, 4}}, lg.where(c, x, y):totable())
    -- broadcasting of all three
    assert.same({{1, 20}, {3, 20}},
                lg.where(lg.tensor{true, false}, x,
                         lg.tensor{{10.0, 20.0}}):totable())
    assert.same({{1, 0}, {0, 4}}, lg.where(c, x, 0):totable())
    assert.same({{5, 2}, {3, 5}}, lg.where(c, 5, x):totable())
    -- a condition from a comparison, strided operands
    local z = lg.where(x:t():gt(2), x:t(), y)
    assert.same({{-1, 3}, {-3, 4}}, z:totable())
  end)

  describe("cat and stack", function()
    local p = lg.tensor{{1, 2}, {3, 4}}
    local q = lg.tensor{{5, 6}}

    it("cat joins along a dimension (1 by default)", function()
      assert.same({{1, 2}, {3, 4}, {5, 6}}, lg.cat({p, q}, 1):totable())
      assert.same({{1, 2}, {3, 4}, {5, 6}}, lg.cat{p, q}:totable())
      assert.same({{1, 2, 1, 3}, {3, 4, 2, 4}}, lg.cat({p, p:t()}, 2):totable())
      assert.same({{1, 2, 5}, {3, 4, 6}}, lg.cat({p, q:t()}, -1):totable())
      assert.same({1, 2, 3}, lg.cat{lg.tensor{1}, lg.tensor{2, 3}}:totable())
      assert.same({{1, 2}}, lg.cat{p:narrow(1, 1, 1)}:totable())
      local three = lg.cat({q, q, q}, 1)
      assert.same({{5, 6}, {5, 6}, {5, 6}}, three:totable())
      three[1][1] = 0
      assert.equal(5, q[1][1]) -- a copy
      local f = lg.cat{lg.zeros(2, 3, {dtype = lg.float64}),
                       lg.ones(1, 3, {dtype = lg.float64})}
      assert.equal("float64", f:dtype())
      assert.same({{0, 0, 0}, {0, 0, 0}, {1, 1, 1}}, f:totable())
    end)

    it("stack makes a new dimension", function()
      local s = lg.stack({p, p:t()}, 1)
      assert.shape(s, {2, 2, 2})
      assert.same({{{1, 2}, {3, 4}}, {{1, 3}, {2, 4}}}, s:totable())
      assert.same(s:totable(), lg.stack{p, p:t()}:totable())
      local s2 = lg.stack({p, p:t()}, 2)
      assert.same({{{1, 2}, {1, 3}}, {{3, 4}, {2, 4}}}, s2:totable())
      local s3 = lg.stack({p, p:t()}, -1)
      assert.same({{{1, 1}, {2, 3}}, {{3, 2}, {4, 4}}}, s3:totable())
      assert.same({{1, 2}, {3, 4}},
                  lg.stack{lg.tensor{1, 2}, lg.tensor{3, 4}}:totable())
      assert.same({1, 2}, lg.stack{lg.tensor(1), lg.tensor(2)}:totable())
    end)
  end)

  describe("split and chunk", function()
    it("split(size, d) gives views of that size, the last shorter",
       function()
      local v = lg.range(1, 5)
      local parts = v:split(2)
      assert.equal(3, #parts)
      assert.same({1, 2}, parts[1]:totable())
      assert.same({3, 4}, parts[2]:totable())
      assert.same({5}, parts[3]:totable())
      parts[2][1] = 30
      assert.equal(30, v[3])
      local m = lg.range(1, 12):view(3, 4)
      local cols = m:split(3, 2)
      assert.equal(2, #cols)
      assert.same({{1, 2, 3}, {5, 6, 7}, {9, 10, 11}}, cols[1]:totable())
      assert.same({{4}, {8}, {12}}, cols[2]:totable())
      assert.equal(2, #m:split(2, -1))
      assert.equal(1, #m:split(10, 1))
      local sized = m:split({1, 2}, 1)
      assert.same({{1, 2, 3, 4}}, sized[1]:totable())
      assert.same({{5, 6, 7, 8}, {9, 10, 11, 12}}, sized[2]:totable())
    end)

    it("chunk(n, d) gives at most n pieces", function()
      local v = lg.range(1, 6)
      local c = v:chunk(3)
      assert.equal(3, #c)
      assert.same({{1, 2}, {3, 4}, {5, 6}},
                  {c[1]:totable(), c[2]:totable(), c[3]:totable()})
      local d = lg.range(1, 5):chunk(2)
      assert.equal(2, #d)
      assert.same({1, 2, 3}, d[1]:totable())
      assert.same({4, 5}, d[2]:totable())
      local m = lg.range(1, 8):view(2, 4)
      local mc = m:chunk(2, 2)
      assert.same({{1, 2}, {5, 6}}, mc[1]:totable())
      assert.same({{3, 4}, {7, 8}}, mc[2]:totable())
      mc[2]:fill_(0)
      assert.same({{1, 2, 0, 0}, {5, 6, 0, 0}}, m:totable())
      assert.equal(2, #lg.range(1, 2):chunk(5))
    end)
  end)

  describe("topk and sort", function()
    it("topk returns the k largest and their 1-based indices", function()
      local v = lg.tensor{3.0, 1.0, 4.0, 1.5, 9.0, 2.0}
      local val, idx = v:topk(3)
      assert.allclose(val, {9, 4, 3})
      assert.same({5, 3, 1}, idx:totable())
      assert.equal("int64", idx:dtype())
      local m = lg.tensor{{1.0, 5.0, 3.0}, {8.0, 2.0, 7.0}}
      local mv, mi = m:topk(2) -- last dim by default
      assert.allclose(mv, {{5, 3}, {8, 7}})
      assert.same({{2, 3}, {1, 3}}, mi:totable())
      local cv, ci = m:topk(1, 1)
      assert.allclose(cv, {{8, 5, 7}})
      assert.same({{2, 1, 2}}, ci:totable())
      local sv, si = v:topk(2, 1, {largest = false})
      assert.allclose(sv, {1, 1.5})
      assert.same({2, 4}, si:totable())
      -- the indices pick the values out of the input
      local tv, ti = m:t():topk(2, 1)
      assert.same(tv:totable(), m:t():gather(1, ti):totable())
    end)

    it("sort returns ascending values and 1-based indices", function()
      local v = lg.tensor{3.0, 1.0, 4.0, 1.5, 9.0, 2.0}
      local sv, si = v:sort()
      assert.allclose(sv, {1, 1.5, 2, 3, 4, 9})
      assert.same({2, 4, 6, 1, 3, 5}, si:totable())
      local dv, di = v:sort(1, true)
      assert.allclose(dv, {9, 4, 3, 2, 1.5, 1})
      assert.same({5, 3, 1, 6, 4, 2}, di:totable())
      local m = lg.tensor{{3, 1, 2}, {0, 5, -4}}
      local rv, ri = m:sort(2)
      assert.same({{1, 2, 3}, {-4, 0, 5}}, rv:totable())
      assert.same({{2, 3, 1}, {3, 1, 2}}, ri:totable())
      local cv, ci = m:sort(1)
      assert.same({{0, 1, -4}, {3, 5, 2}}, cv:totable())
      assert.same({{2, 1, 2}, {1, 2, 1}}, ci:totable())
      assert.same(rv:totable(), m:sort(-1):totable())
    end)

    it("sort agrees with table.sort on random data, strided input",
       function()
      local x = lg.tensor(h.data({6, 9}, 7), {dtype = lg.float64})
      local xt = x:t() -- sort each column of x
      local vals, idx = xt:sort(1)
      for j = 1, 6 do
        local col = {}
        for i = 1, 9 do col[i] = x[j][i] end
        table.sort(col)
        for i = 1, 9 do
          assert.equal(col[i], vals[i][j])
          assert.equal(x[j][idx[i][j]], vals[i][j])
        end
      end
    end)
  end)
end)

describe("index ops against loops on every layout and dtype", function()
  local shape = {3, 4, 5}
  local next_value = h.stream(99)
  local function randint(lo, hi)
    return lo + math.floor((next_value() + 1) / 2 * (hi - lo + 1))
  end
  -- element of a nested table at a list of indices
  local function at(t, idx)
    for _, i in ipairs(idx) do t = t[i] end
    return t
  end
  local function each_index(sh, f)
    local idx = {}
    local function go(d)
      if d > #sh then return f(idx) end
      for i = 1, sh[d] do
        idx[d] = i
        go(d + 1)
      end
    end
    go(1)
  end
  local dtypes = {lg.float32, lg.float64, lg.int64}
  local function data_for(dtype, seed)
    return h.data(shape, seed, dtype == lg.int64)
  end

  it("index_select along each dim", function()
    for _, dtype in ipairs(dtypes) do
      local x = lg.tensor(data_for(dtype, 1), {dtype = dtype})
      local v = x:totable()
      for d = 1, 3 do
        local list = {}
        for k = 1, 6 do list[k] = randint(1, shape[d]) end
        local idx = lg.tensor(list)
        for _, l in ipairs(h.layouts(v, dtype)) do
          local r = l[2]:index_select(d, idx)
          local want = {table.unpack(shape)}
          want[d] = 6
          assert.shape(r, want)
          assert.equal(dtype, r:dtype())
          each_index(want, function(i)
            local src = {table.unpack(i)}
            src[d] = list[i[d]]
            assert.equal(at(v, src), at(r:totable(), i))
          end)
          -- a strided index tensor gives the same
          local sidx = lg.zeros(6, 2, {dtype = lg.int64}):select(2, 2)
          sidx:copy_(idx)
          assert.same(r:totable(), l[2]:index_select(d, sidx):totable())
        end
      end
    end
  end)

  it("gather along each dim", function()
    for _, dtype in ipairs(dtypes) do
      local x = lg.tensor(data_for(dtype, 2), {dtype = dtype})
      local v = x:totable()
      for d = 1, 3 do
        local ishape = {3, 2, 4}
        local list = {}
        each_index(ishape, function()
          list[#list + 1] = randint(1, shape[d])
        end)
        local idx = lg.tensor(h.nest(list, ishape))
        local iv = idx:totable()
        for _, l in ipairs(h.layouts(v, dtype)) do
          for _, li in ipairs(h.layouts(iv, lg.int64)) do
            local r = l[2]:gather(d, li[2])
            assert.shape(r, ishape)
            local rv = r:totable()
            each_index(ishape, function(i)
              local src = {table.unpack(i)}
              src[d] = at(iv, i)
              assert.equal(at(v, src), at(rv, i))
            end)
          end
        end
      end
    end
  end)

  it("scatter_ along each dim inverts gather", function()
    for _, dtype in ipairs(dtypes) do
      local src = lg.tensor(data_for(dtype, 3), {dtype = dtype})
      for d = 1, 3 do
        -- a permutation along d for every position of the other dims, so
        -- no two writes land on one element
        local n = shape[d]
        local list = {}
        local perms = {}
        each_index(shape, function(i)
          local key = {}
          for k = 1, 3 do if k ~= d then key[#key + 1] = i[k] end end
          key = table.concat(key, ",")
          if not perms[key] then
            local p = {}
            for k = 1, n do p[k] = k end
            for k = n, 2, -1 do
              local j = randint(1, k)
              p[k], p[j] = p[j], p[k]
            end
            perms[key] = p
          end
          list[#list + 1] = perms[key][i[d]]
        end)
        local idx = lg.tensor(h.nest(list, shape))
        for _, l in ipairs(h.layouts(lg.zeros(shape, {dtype = dtype})
                                       :totable(), dtype)) do
          local out = l[2]
          assert.is_true(rawequal(out, out:scatter_(d, idx, src)))
          -- out[... idx[i] ...] = src[i]
          local ov, sv, iv = out:totable(), src:totable(), idx:totable()
          each_index(shape, function(i)
            local dst = {table.unpack(i)}
            dst[d] = at(iv, i)
            assert.equal(at(sv, i), at(ov, dst))
          end)
          assert.same(src:totable(), out:gather(d, idx):totable())
        end
      end
    end
  end)

  it("masked_fill and where with random masks", function()
    for _, dtype in ipairs(dtypes) do
      local x = lg.tensor(data_for(dtype, 4), {dtype = dtype})
      local y = lg.tensor(data_for(dtype, 5), {dtype = dtype})
      local mlist = {}
      for k = 1, 20 do mlist[k] = next_value() > 0 end
      local mask = lg.tensor(h.nest(mlist, {4, 5})) -- broadcast over dim 1
      local xv, yv, mv = x:totable(), y:totable(), mask:totable()
      for _, l in ipairs(h.layouts(xv, dtype)) do
        local mf = l[2]:masked_fill(mask, 7):totable()
        local w = lg.where(mask, l[2], y):totable()
        each_index(shape, function(i)
          local m = mv[i[2]][i[3]]
          assert.equal(m and 7 or at(xv, i), at(mf, i))
          assert.equal(m and at(xv, i) or at(yv, i), at(w, i))
        end)
      end
    end
  end)

  it("cat and stack along each dim", function()
    for _, dtype in ipairs(dtypes) do
      local x = lg.tensor(data_for(dtype, 6), {dtype = dtype})
      local xv = x:totable()
      for _, l in ipairs(h.layouts(xv, dtype)) do
        for d = 1, 3 do
          local c = lg.cat({x, l[2]}, d)
          local want = {table.unpack(shape)}
          want[d] = 2 * shape[d]
          assert.shape(c, want)
          local cv = c:totable()
          each_index(want, function(i)
            local src = {table.unpack(i)}
            if src[d] > shape[d] then src[d] = src[d] - shape[d] end
            assert.equal(at(xv, src), at(cv, i))
          end)
          local s = lg.stack({l[2], x, l[2]}, d)
          local sw = {table.unpack(shape)}
          table.insert(sw, d, 3)
          assert.shape(s, sw)
          local sv = s:totable()
          each_index(sw, function(i)
            local src = {table.unpack(i)}
            table.remove(src, d)
            assert.equal(at(xv, src), at(sv, i))
          end)
        end
      end
    end
  end)

  it("split, chunk, topk and sort on strided inputs", function()
    for _, dtype in ipairs(dtypes) do
      local x = lg.tensor(data_for(dtype, 7), {dtype = dtype})
      local xv = x:totable()
      for _, l in ipairs(h.layouts(xv, dtype)) do
        local parts = l[2]:split(2, 3)
        assert.equal(3, #parts)
        assert.same(l[2]:narrow(3, 5, 1):totable(), parts[3]:totable())
        assert.same(x:narrow(3, 3, 2):totable(), parts[2]:totable())
        local ch = l[2]:chunk(2, 2)
        assert.same(x:narrow(2, 3, 2):totable(), ch[2]:totable())
        local sv, si = l[2]:sort(2)
        local tv, ti = l[2]:topk(2, 3)
        for a = 1, 3 do
          for c = 1, 5 do
            local col = {}
            for b = 1, 4 do col[b] = xv[a][b][c] end
            table.sort(col)
            for b = 1, 4 do
              assert.equal(col[b], sv[a][b][c])
              assert.equal(xv[a][si[a][b][c]][c], sv[a][b][c])
            end
          end
          for b = 1, 4 do
            local row = {table.unpack(xv[a][b])}
            table.sort(row, function(p, q) return p > q end)
            assert.equal(row[1], tv[a][b][1])
            assert.equal(row[2], tv[a][b][2])
            assert.equal(xv[a][b][ti[a][b][1]], tv[a][b][1])
            assert.equal(xv[a][b][ti[a][b][2]], tv[a][b][2])
          end
        end
      end
    end
  end)
end)
