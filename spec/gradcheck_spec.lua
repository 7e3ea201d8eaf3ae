-- Every differentiable tensor op of the API reference (doc/api/lg.luadoc)
-- against float64 central differences (lg.autograd.gradcheck), on fresh random
-- inputs: broadcast shapes, non-contiguous inputs (transposed, narrowed and
-- expanded, both as leaves and as views taken inside the op), every
-- dimension (1, 2, -1) and keepdim.  Inputs are kept away from kinks (abs,
-- relu, clamp, max at ties, log at <= 0) so that central differences are
-- valid.  Second order: gradgradcheck runs gradcheck on the function
-- x -> lg.grad(f(x), x, {create_graph = true}), which checks every
-- Hessian-vector product against finite differences of the first gradient;
-- a few Hessians are also compared with closed forms.
--
-- The inputs come from one seed (LGRAD_SPEC_SEED, default below) so that a
-- failure can be replayed; any seed should pass.
local lg = require "lgrad"

local SEED = tonumber(os.getenv("LGRAD_SPEC_SEED") or "") or 20240611
lg.manual_seed(SEED)

local F64 = lg.float64

-- ---- inputs ----

local function shape_of(...)
  local s = {...}
  if type(s[1]) == "table" then return s[1] end
  return s
end

-- standard normal, requires grad
local function randn(...)
  return lg.randn(shape_of(...), {dtype = F64, requires_grad = true})
end

-- normal values pushed at least m (0.2) away from zero
local function away(...)
  local u = lg.randn(shape_of(...), {dtype = F64})
  return (u:sign() * (u:abs() + 0.2)):requires_grad_()
end

-- uniform in [0.5, 1.5]
local function pos(...)
  return (lg.rand(shape_of(...), {dtype = F64}) + 0.5):requires_grad_()
end

-- distinct values with gaps of at least 0.05 in random order, so that max,
-- min, sort and topk have no ties within the finite-difference step
local function distinct(...)
  local s = shape_of(...)
  local n = 1
  for _, d in ipairs(s) do n = n * d end
  local perm = lg.randperm(n):double()
  local jitter = lg.rand(n, {dtype = F64}) * 0.05
  return ((perm * 0.1 + jitter - n * 0.05):reshape(s)):requires_grad_()
end

-- a leaf that is the transpose of a contiguous (c, r) tensor
local function transposed(r, c, make)
  local base = (make or randn)(c, r):detach()
  local t = base:t():requires_grad_()
  assert(not t:is_contiguous() and t.is_leaf)
  return t
end

-- a leaf that is a narrowed (every other column block) view
local function narrowed(r, c, make)
  local base = (make or randn)(r, c + 3):detach()
  local t = base:narrow(2, 2, c):requires_grad_()
  assert(not t:is_contiguous() and t.is_leaf)
  return t
end

-- a (2, 3) tensor with a zero at flat position 2, and at 4 too when n > 1
local function with_zeros(n)
  local x = away(2, 3):detach()
  x:set_flat(2, 0)
  if n > 1 then x:set_flat(4, 0) end
  return x:requires_grad_()
end

local function idx(list) return lg.tensor(list, {dtype = lg.int64}) end

-- ---- checks ----

local function check(fn, inputs, opts)
  local ok, msg = lg.autograd.gradcheck(fn, inputs, opts)
  assert(ok, (msg or "gradcheck failed") .. " (seed " .. SEED .. ")")
end

-- gradcheck of the first gradient: the derivative of
-- x -> grad(<w, f(x)>, x) (with create_graph) against finite differences;
-- returns what gradcheck returns
local function second_order(fn, inputs, opts)
  local wrt = {}
  for _, x in ipairs(inputs) do
    if lg.is_tensor(x) and x.requires_grad then wrt[#wrt + 1] = x end
  end
  local w
  local function first_grads(...)
    local args = table.pack(...)
    return lg.enable_grad(function()
      local y = fn(table.unpack(args, 1, args.n))
      w = w or lg.randn(y:shape(), {dtype = F64})
      local gs = lg.grad(y, wrt, {grad_outputs = w, create_graph = true})
      local flat = {}
      for i = 1, #wrt do flat[i] = gs[i]:reshape(-1) end
      return lg.cat(flat, 1)
    end)
  end
  return lg.autograd.gradcheck(first_grads, inputs, opts)
end

local function gradgradcheck(fn, inputs, opts)
  local ok, msg = second_order(fn, inputs, opts)
  assert(ok, (msg or "gradgradcheck failed") .. " (seed " .. SEED .. ")")
end

-- ---- element-wise ----

local unary = {
  {"neg", randn}, {"exp", randn}, {"log", pos}, {"log1p", pos},
  {"sqrt", pos}, {"rsqrt", pos}, {"abs", away}, {"sin", randn},
  {"cos", randn}, {"tanh", randn}, {"sigmoid", randn}, {"relu", away},
  {"gelu", randn}, {"softplus", randn}, {"square", randn},
  {"reciprocal", away}, {"expm1", randn}, {"erf", randn}, {"silu", randn},
}

describe("gradcheck: element-wise unary ops", function()
  for _, u in ipairs(unary) do
    local name, make = u[1], u[2]
    local op = function(x) return x[name](x) end
    it(name .. " on a 1-d, a 3-d and a 0-d tensor", function()
      check(op, {make(5)})
      check(op, {make(2, 3, 4)})
      check(op, {make({})})
    end)
    it(name .. " on transposed and narrowed leaves", function()
      check(op, {transposed(3, 4, make)})
      check(op, {narrowed(3, 4, make)})
    end)
    it(name .. " on views taken inside: t(), narrow, expand", function()
      check(function(x) return op(x:t()) end, {make(4, 3)})
      check(function(x) return op(x:narrow(1, 2, 2)) end, {make(4, 3)})
      check(function(x) return op(x:expand(3, 4)) end, {make(3, 1)})
      check(function(x) return op(x:expand(2, 3)) end, {make(3)})
    end)
  end

  it("gelu with the tanh approximation", function()
    check(function(x) return x:gelu({approximate = "tanh"}) end,
          {randn(3, 4)})
    check(function(x) return x:gelu("tanh") end, {transposed(3, 4)})
  end)

  it("sign has a zero gradient", function()
    check(function(x) return x:sign() * 3 end, {away(3, 4)})
    local x = away(5)
    x:sign():sum():backward()
    for i = 1, 5 do assert.equal(0, x.grad:get_flat(i)) end
  end)

  it("leaky_relu with the default and a given slope", function()
    check(function(x) return x:leaky_relu() end, {away(3, 4)})
    check(function(x) return x:leaky_relu(0.2) end, {away(3, 4)})
    check(function(x) return x:t():leaky_relu(0.3) end, {away(4, 3)})
  end)

  it("clamp with both bounds, only a lower one, only an upper one",
     function()
    -- values at least 0.05 away from the bounds -0.5 and 0.5
    local function values()
      local base = lg.tensor({-1.3, -0.8, -0.4, -0.1, 0.2, 0.4, 0.7, 1.9,
                              -0.3, 0.9, -2.2, 0.05}, {dtype = F64})
      return (base + lg.rand(12, {dtype = F64}) * 0.04):reshape(3, 4)
        :requires_grad_()
    end
    check(function(x) return x:clamp(-0.5, 0.5) end, {values()})
    check(function(x) return x:clamp(-0.5) end, {values()})
    check(function(x) return x:clamp(nil, 0.5) end, {values()})
    check(function(x) return x:t():clamp(-0.5, 0.5) end, {values()})
  end)

  it("clamp with its bounds in an options table", function()
    local x = (lg.tensor({-1.3, -0.2, 0.3, 1.7}, {dtype = F64}))
      :requires_grad_()
    check(function(t) return t:clamp({min = -0.5, max = 0.5}) end, {x})
  end)
end)

local binary = {
  {"add", randn, randn}, {"sub", randn, randn}, {"mul", randn, randn},
  {"div", randn, away}, {"pow", pos, randn}, {"atan2", away, away},
}

describe("gradcheck: element-wise binary ops", function()
  for _, b in ipairs(binary) do
    local name, ma, mb = b[1], b[2], b[3]
    local op = function(x, y) return x[name](x, y) end
    it(name .. " on equal shapes", function()
      check(op, {ma(2, 3, 4), mb(2, 3, 4)})
    end)
    it(name .. " broadcasting (3,1) with (1,4), (4) with (3,4), 0-d with "
       .. "(3,4)", function()
      check(op, {ma(3, 1), mb(1, 4)})
      check(op, {ma(4), mb(3, 4)})
      check(op, {ma(3, 4), mb(4)})
      check(op, {ma({}), mb(3, 4)})
      check(op, {ma(2, 1, 4), mb(3, 1)})
    end)
    it(name .. " on non-contiguous inputs", function()
      check(op, {transposed(3, 4, ma), narrowed(3, 4, mb)})
      check(function(x, y) return op(x:t(), y:expand(3, 4)) end,
            {ma(4, 3), mb(1, 4)})
      check(function(x, y) return op(x:narrow(2, 2, 3), y:t()) end,
            {ma(3, 5), mb(3, 3)})
    end)
    it(name .. " with only one input requiring grad", function()
      local c = mb(3, 4):detach()
      check(function(x) return op(x, c) end, {ma(3, 4)})
      local d = ma(3, 4):detach()
      check(function(y) return op(d, y) end, {mb(3, 4)})
    end)
  end

  it("operators + - * / ^ and unary minus", function()
    check(function(x, y) return x + y end, {randn(3, 1), randn(4)})
    check(function(x, y) return x - y end, {randn(3, 1), randn(4)})
    check(function(x, y) return x * y end, {randn(3, 1), randn(4)})
    check(function(x, y) return x / y end, {randn(3, 1), away(4)})
    check(function(x, y) return x ^ y end, {pos(3, 1), randn(4)})
    check(function(x) return -x end, {randn(3, 4)})
  end)

  it("a number on either side", function()
    check(function(x) return x + 2 end, {randn(3, 4)})
    check(function(x) return 2 + x end, {randn(3, 4)})
    check(function(x) return x - 2 end, {randn(3, 4)})
    check(function(x) return 2 - x end, {randn(3, 4)})
    check(function(x) return x * 3 end, {randn(3, 4)})
    check(function(x) return 3 * x end, {randn(3, 4)})
    check(function(x) return x / 2 end, {randn(3, 4)})
    check(function(x) return 2 / x end, {away(3, 4)})
    check(function(x) return x:add(2):mul(3):sub(1):div(4) end,
          {randn(3, 4)})
  end)

  it("pow with number exponents and a number base", function()
    check(function(x) return x ^ 2 end, {randn(3, 4)})
    check(function(x) return x ^ 3 end, {randn(3, 4)})
    check(function(x) return x ^ 0.5 end, {pos(3, 4)})
    check(function(x) return x ^ -1 end, {away(3, 4)})
    check(function(x) return x ^ -1.5 end, {pos(3, 4)})
    check(function(x) return x:pow(2.5) end, {pos(3, 4)})
    check(function(x) return 2 ^ x end, {randn(3, 4)})
    check(function(x) return 0.5 ^ x end, {randn(3, 4)})
    check(function(x) return x:t() ^ 3 end, {randn(4, 3)})
  end)

  it("maximum and minimum away from ties", function()
    for _, name in ipairs({"maximum", "minimum"}) do
      local a = distinct(3, 4)
      local b = (a:detach() + away(3, 4):detach() * 0.5):requires_grad_()
      check(function(x, y) return x[name](x, y) end, {a, b})
      local c = distinct(1, 4)
      check(function(x, y) return x[name](x, y) end, {distinct(3, 1), c})
      check(function(x, y) return x:t()[name](x:t(), y) end,
            {distinct(4, 3), distinct(4)})
    end
  end)

  it("where with a broadcast condition and broadcast branches", function()
    local cond = lg.rand(3, 4):gt(0.5)
    check(function(a, b) return lg.where(cond, a, b) end,
          {randn(3, 4), randn(3, 4)})
    check(function(a, b) return lg.where(cond, a, b) end,
          {randn(3, 1), randn(4)})
    local row = lg.rand(4):gt(0.5)
    check(function(a, b) return lg.where(row, a, b) end,
          {randn(3, 4), randn(3, 4)})
    check(function(a, b) return a:where(cond, b) end,
          {transposed(3, 4), randn(3, 4)})
  end)

  it("masked_fill", function()
    local mask = lg.rand(3, 4):gt(0.5)
    check(function(x) return x:masked_fill(mask, 7) end, {randn(3, 4)})
    check(function(x) return x:t():masked_fill(mask, -1) end, {randn(4, 3)})
    local row = lg.rand(4):gt(0.5)
    check(function(x) return x:masked_fill(row, 0) end, {randn(3, 4)})
  end)
end)

-- ---- reductions ----

describe("gradcheck: reductions", function()
  local dims = {1, 2, 3, -1}

  for _, name in ipairs({"sum", "mean"}) do
    it(name .. " over everything and along every dim, keepdim", function()
      check(function(x) return x[name](x) end, {randn(2, 3, 4)})
      check(function(x) return x[name](x) end, {transposed(3, 4)})
      for _, d in ipairs(dims) do
        check(function(x) return x[name](x, d) end, {randn(2, 3, 4)})
        check(function(x) return x[name](x, d, true) end, {randn(2, 3, 4)})
        check(function(x) return x[name](x, d, {keepdim = true}) end,
              {randn(2, 3, 4)})
      end
      check(function(x) return x:t()[name](x:t(), 1) end, {randn(3, 4)})
      check(function(x) return x:expand(3, 4)[name](x:expand(3, 4), 1) end,
            {randn(1, 4)})
    end)
  end

  it("prod over everything and along every dim", function()
    check(function(x) return x:prod() end, {away(2, 3)})
    for _, d in ipairs(dims) do
      check(function(x) return x:prod(d) end, {away(2, 3, 4)})
      check(function(x) return x:prod(d, true) end, {away(2, 3, 4)})
    end
    check(function(x) return x:t():prod(2) end, {away(3, 4)})
  end)

  it("prod with one zero and with two zeros", function()
    check(function(x) return x:prod() end, {with_zeros(1)})
    check(function(x) return x:prod() end, {with_zeros(2)})
    check(function(x) return x:prod(1) end, {with_zeros(1)})
    check(function(x) return x:prod(2) end, {with_zeros(1)})
    check(function(x) return x:prod(2) end, {with_zeros(2)})
  end)

  for _, name in ipairs({"max", "min"}) do
    it(name .. " over everything and along every dim (values)", function()
      check(function(x) return x[name](x) end, {distinct(3, 4)})
      for _, d in ipairs(dims) do
        check(function(x) return (x[name](x, d)) end, {distinct(2, 3, 4)})
        check(function(x) return (x[name](x, d, true)) end,
              {distinct(2, 3, 4)})
      end
      check(function(x) return (x:t()[name](x:t(), 1)) end,
            {distinct(3, 4)})
    end)
  end

  for _, name in ipairs({"var", "std"}) do
    it(name .. " unbiased and biased, along every dim", function()
      check(function(x) return x[name](x) end, {randn(3, 4)})
      check(function(x) return x[name](x, {unbiased = false}) end,
            {randn(3, 4)})
      for _, d in ipairs(dims) do
        check(function(x) return x[name](x, d) end, {randn(2, 3, 4)})
        check(function(x) return x[name](x, d, true) end, {randn(2, 3, 4)})
        check(function(x)
          return x[name](x, d, {keepdim = true, unbiased = false})
        end, {randn(2, 3, 4)})
      end
      check(function(x) return x:t()[name](x:t(), 2) end, {randn(3, 4)})
    end)
  end

  it("norm with p = 1, 2, 3 and inf, over everything and along dims",
     function()
    for _, p in ipairs({1, 2, 3}) do
      check(function(x) return x:norm(p) end, {away(3, 4)})
      for _, d in ipairs(dims) do
        check(function(x) return x:norm(p, d) end, {away(2, 3, 4)})
        check(function(x) return x:norm(p, d, true) end, {away(2, 3, 4)})
      end
      check(function(x) return x:t():norm(p, 1) end, {away(3, 4)})
    end
    check(function(x) return x:norm() end, {randn(5)})
    check(function(x) return x:norm("inf") end, {distinct(3, 4)})
    check(function(x) return x:norm(math.huge) end, {distinct(3, 4)})
    check(function(x) return x:norm("inf", 2) end, {distinct(3, 4)})
    check(function(x) return x:norm(math.huge, -1, true) end,
          {distinct(2, 3, 4)})
  end)

  it("norm has a zero gradient where the norm is zero, as PyTorch",
     function()
    for _, p in ipairs({2, 3, 1.5}) do
      local z = lg.zeros(3, {dtype = F64, requires_grad = true})
      z:norm(p):backward()
      assert.same({0, 0, 0}, z.grad:totable())
      local x = lg.tensor({{0, 0}, {3, 4}}, {dtype = F64}):requires_grad_()
      x:norm(p, 2):sum():backward()
      local g = x.grad:totable()
      assert.same({0, 0}, g[1])
      local n = (3 ^ p + 4 ^ p) ^ (1 / p)
      assert.near(3 ^ (p - 1) / n ^ (p - 1), g[2][1], 1e-12)
      assert.near(4 ^ (p - 1) / n ^ (p - 1), g[2][2], 1e-12)
    end
    check(function(x) return x:norm() end, {lg.zeros(3, {dtype = F64,
                                                        requires_grad = true})})
  end)

  it("logsumexp over everything and along every dim", function()
    check(function(x) return x:logsumexp() end, {randn(3, 4)})
    for _, d in ipairs(dims) do
      check(function(x) return x:logsumexp(d) end, {randn(2, 3, 4)})
      check(function(x) return x:logsumexp(d, true) end, {randn(2, 3, 4)})
    end
    check(function(x) return (x * 30):logsumexp(2) end, {randn(3, 4)})
    check(function(x) return x:t():logsumexp(1) end, {randn(3, 4)})
  end)

  for _, name in ipairs({"softmax", "log_softmax"}) do
    it(name .. " along every dim", function()
      check(function(x) return x[name](x) end, {randn(3, 4)})
      for _, d in ipairs(dims) do
        check(function(x) return x[name](x, d) end, {randn(2, 3, 4)})
      end
      check(function(x) return x[name](x, 1) end, {transposed(3, 4)})
      check(function(x) return x:t()[name](x:t(), 2) end, {randn(3, 4)})
      check(function(x) return (x * 20)[name](x * 20, 2) end, {randn(3, 4)})
    end)
  end

  it("cumsum along every dim", function()
    check(function(x) return x:cumsum() end, {randn(5)})
    for _, d in ipairs(dims) do
      check(function(x) return x:cumsum(d) end, {randn(2, 3, 4)})
    end
    check(function(x) return x:cumsum(2) end, {transposed(3, 4)})
    check(function(x) return x:expand(3, 4):cumsum(1) end, {randn(4)})
  end)
end)

-- ---- views ----

describe("gradcheck: views", function()
  it("view, reshape, flatten", function()
    check(function(x) return x:view(4, 3) end, {randn(3, 4)})
    check(function(x) return x:view({2, -1}) end, {randn(3, 4)})
    check(function(x) return x:view(12) end, {randn(2, 3, 2)})
    check(function(x) return x:reshape(6, 2) end, {randn(3, 4)})
    check(function(x) return x:t():reshape(12) end, {randn(3, 4)})
    check(function(x) return x:reshape({2, 2, 3}) end, {transposed(3, 4)})
    check(function(x) return x:flatten() end, {randn(2, 3, 4)})
    check(function(x) return x:flatten(2) end, {randn(2, 3, 4)})
    check(function(x) return x:flatten(1, 2) end, {randn(2, 3, 4)})
    check(function(x) return x:permute(3, 1, 2):flatten() end,
          {randn(2, 3, 4)})
  end)

  it("squeeze and unsqueeze", function()
    check(function(x) return x:squeeze() end, {randn(3, 1, 4, 1)})
    check(function(x) return x:squeeze(2) end, {randn(3, 1, 4)})
    check(function(x) return x:squeeze(-1) end, {randn(3, 4, 1)})
    check(function(x) return x:unsqueeze(1) end, {randn(3, 4)})
    check(function(x) return x:unsqueeze(2) end, {randn(3, 4)})
    check(function(x) return x:unsqueeze(-1) end, {randn(3, 4)})
    check(function(x) return x:t():unsqueeze(2) * 2 end, {randn(3, 4)})
  end)

  it("transpose, t, permute", function()
    check(function(x) return x:t() end, {randn(3, 4)})
    check(function(x) return x:t() end, {randn(4)})
    check(function(x) return x:transpose(1, 3) end, {randn(2, 3, 4)})
    check(function(x) return x:transpose(2, -1) end, {randn(2, 3, 4)})
    check(function(x) return x:permute(2, 3, 1) end, {randn(2, 3, 4)})
    check(function(x) return x:permute({3, 1, 2}) end, {randn(2, 3, 4)})
    check(function(x) return x:t() end, {transposed(3, 4)})
  end)

  it("expand, including new leading dims", function()
    check(function(x) return x:expand(3, 4) end, {randn(3, 1)})
    check(function(x) return x:expand(2, 3, 4) end, {randn(4)})
    check(function(x) return x:expand({2, 3, 4}) end, {randn(1, 3, 1)})
    check(function(x) return x:expand(5) end, {randn({})})
    check(function(x) return x:t():expand(2, 4, 3) end, {randn(3, 4)})
  end)

  it("narrow and select along every dim", function()
    for _, d in ipairs({1, 2, 3, -1}) do
      check(function(x) return x:narrow(d, 2, 1) end, {randn(3, 3, 3)})
      check(function(x) return x:select(d, 2) end, {randn(3, 3, 3)})
      check(function(x) return x:select(d, -1) end, {randn(3, 3, 3)})
    end
    check(function(x) return x:narrow(2, 2, 3) end, {randn(3, 5)})
    check(function(x) return x:narrow(1, 2, 2):narrow(2, 1, 2) end,
          {transposed(4, 3)})
    check(function(x) return x:select(2, 3) end, {transposed(3, 4)})
  end)

  it("contiguous, clone and t[i]", function()
    check(function(x) return x:contiguous() end, {randn(3, 4)})
    check(function(x) return x:t():contiguous() end, {randn(3, 4)})
    check(function(x) return x:clone() end, {randn(3, 4)})
    check(function(x) return x:t():clone() end, {randn(3, 4)})
    check(function(x) return x[2] end, {randn(3, 4)})
    check(function(x) return x[-1] end, {randn(3, 4)})
    check(function(x) return x[2][3] end, {randn(3, 4, 2)})
    check(function(x) return x:t()[1] end, {randn(3, 4)})
  end)

  it("one element read through a view twice accumulates", function()
    check(function(x) return x[1] * x:select(1, 1) + x:t()[2] end,
          {randn(2, 2)})
  end)
end)

-- ---- gather, scatter, joins, sorting ----

describe("gradcheck: indexing", function()
  it("index_select along every dim, with repeated indices", function()
    check(function(x) return x:index_select(1, idx({3, 1, 3})) end,
          {randn(3, 4)})
    check(function(x) return x:index_select(2, idx({4, 4, 2})) end,
          {randn(3, 4)})
    check(function(x) return x:index_select(-1, {1, 2, 1}) end,
          {randn(2, 3, 2)})
    check(function(x) return x:index_select(1, {2, 2}) end,
          {transposed(3, 4)})
  end)

  it("gather along every dim, with repeated indices", function()
    check(function(x)
      return x:gather(1, idx({{1, 2, 3, 1}, {3, 3, 1, 2}}))
    end, {randn(3, 4)})
    check(function(x)
      return x:gather(2, idx({{1, 1}, {4, 2}, {3, 4}}))
    end, {randn(3, 4)})
    check(function(x)
      return x:gather(-1, idx({{2, 2, 1}, {1, 3, 3}}))
    end, {transposed(2, 3)})
  end)

  it("scatter_add: gradients for self and src", function()
    local index = idx({{1, 2, 1, 3}, {3, 1, 1, 2}})
    check(function(x, s) return x:scatter_add(1, index, s) end,
          {randn(3, 4), randn(2, 4)})
    local index2 = idx({{1, 1}, {2, 4}, {3, 3}})
    check(function(x, s) return x:scatter_add(2, index2, s) end,
          {randn(3, 4), randn(3, 2)})
    check(function(x, s) return x:scatter_add(-1, index2, s:t()) end,
          {transposed(3, 4), randn(2, 3)})
  end)

  it("scatter_add with a source larger than the index", function()
    local index = idx({{1, 3}})
    check(function(x, s) return x:scatter_add(1, index, s) end,
          {randn(3, 3), randn(2, 3)})
    local s = randn(2, 3)
    lg.randn(3, 3, {dtype = F64}):scatter_add(1, index, s):sum():backward()
    assert.same({2, 3}, s.grad:shape())
    assert.same({{1, 1, 0}, {0, 0, 0}}, s.grad:totable())
  end)

  it("joins and selections with some inputs constant", function()
    local c = lg.randn(2, 3, {dtype = F64})
    check(function(a) return lg.cat({a, c}, 1) end, {randn(1, 3)})
    check(function(a) return lg.stack({c, a}, 2) end, {randn(2, 3)})
    check(function(a) return lg.where(c:gt(0), a, c) end, {randn(2, 3)})
    check(function(s) return c:index_add(1, {2, 2}, s) end, {randn(2, 3)})
    check(function(x) return x:scatter_add(2, idx({{1, 1}, {3, 2}}), c) end,
          {randn(2, 3)})
  end)

  it("index_add: gradients for self and src, repeated indices", function()
    check(function(x, s) return x:index_add(1, idx({3, 1, 3}), s) end,
          {randn(3, 4), randn(3, 4)})
    check(function(x, s) return x:index_add(2, {2, 2}, s) end,
          {randn(3, 4), randn(3, 2)})
    check(function(x, s) return x:index_add(-1, {1, 4}, s:t()) end,
          {transposed(3, 4), randn(2, 3)})
  end)

  it("cat along every dim, three inputs of different sizes", function()
    check(function(a, b, c) return lg.cat({a, b, c}, 1) end,
          {randn(1, 3), randn(2, 3), randn(3, 3)})
    check(function(a, b, c) return lg.cat({a, b, c}, 2) end,
          {randn(2, 1), randn(2, 3), transposed(2, 2)})
    check(function(a, b) return lg.cat({a, b}, -1) end,
          {randn(2, 2, 1), randn(2, 2, 3)})
    check(function(a) return lg.cat({a, a * 2, a:exp()}, 1) end, {randn(4)})
  end)

  it("stack along every dim", function()
    for _, d in ipairs({1, 2, 3, -1}) do
      check(function(a, b) return lg.stack({a, b}, d) end,
            {randn(2, 3), transposed(2, 3)})
    end
    check(function(a) return lg.stack({a, a:sin()}, 2) end, {randn(3)})
  end)

  it("cat and stack default to dim 1", function()
    check(function(a, b) return lg.cat({a, b}) end, {randn(2, 3), randn(1, 3)})
    check(function(a, b) return lg.stack({a, b}) end, {randn(3), randn(3)})
  end)

  it("split and chunk: each piece, along every dim", function()
    for _, d in ipairs({1, 2, -1}) do
      for k = 1, 3 do
        check(function(x) return x:split(2, d)[k] end, {randn(5, 5)})
        check(function(x) return x:chunk(3, d)[k] end, {randn(6, 6)})
      end
      check(function(x) return x:split({1, 4}, d)[2] end, {randn(5, 5)})
    end
    check(function(x)
      local p = x:split(2, 2)
      return p[1] * p[2] + p[2]:exp()
    end, {transposed(3, 4)})
  end)

  it("topk values along every dim, largest and smallest", function()
    check(function(x) return (x:topk(2)) end, {distinct(3, 5)})
    check(function(x) return (x:topk(2, 1)) end, {distinct(4, 3)})
    check(function(x) return (x:topk(3, -1, {largest = false})) end,
          {distinct(2, 3, 4)})
    check(function(x) return (x:topk(2, 2)) end, {distinct(2, 4, 3)})
    check(function(x) return (x:t():topk(2, 1)) end, {distinct(3, 4)})
  end)

  it("sort values along every dim, ascending and descending", function()
    check(function(x) return (x:sort()) end, {distinct(3, 5)})
    check(function(x) return (x:sort(1)) end, {distinct(3, 5)})
    check(function(x) return (x:sort(2, true)) end, {distinct(3, 5)})
    check(function(x) return (x:sort(-1, {descending = true})) end,
          {distinct(2, 3, 4)})
    check(function(x) return (x:t():sort(1)) end, {distinct(3, 4)})
  end)
end)

-- ---- linear algebra ----

describe("gradcheck: matrix products", function()
  it("matmul 1-d and 2-d in every combination", function()
    local mm = function(a, b) return lg.matmul(a, b) end
    check(mm, {randn(4), randn(4)})
    check(mm, {randn(3, 4), randn(4)})
    check(mm, {randn(4), randn(4, 5)})
    check(mm, {randn(3, 4), randn(4, 5)})
    check(function(a, b) return a:matmul(b) end, {randn(3, 4), randn(4, 5)})
  end)

  it("matmul batched, and with batch broadcasting", function()
    local mm = function(a, b) return lg.matmul(a, b) end
    check(mm, {randn(2, 3, 4), randn(2, 4, 5)})
    check(mm, {randn(2, 3, 4), randn(4, 5)})
    check(mm, {randn(3, 4), randn(2, 4, 5)})
    check(mm, {randn(2, 1, 3, 4), randn(3, 4, 2)})
    check(mm, {randn(2, 3, 4), randn(4)})
    check(mm, {randn(4), randn(2, 4, 5)})
  end)

  it("matmul on non-contiguous inputs", function()
    check(function(a, b) return lg.matmul(a:t(), b) end,
          {randn(4, 3), randn(4, 5)})
    check(function(a, b) return lg.matmul(a, b:t()) end,
          {randn(3, 4), randn(5, 4)})
    check(function(a, b) return lg.matmul(a, b) end,
          {transposed(3, 4), narrowed(4, 2)})
    check(function(a, b) return lg.matmul(a:transpose(2, 3), b) end,
          {randn(2, 4, 3), randn(2, 4, 5)})
    check(function(a, b) return lg.matmul(a:expand(2, 3, 4), b) end,
          {randn(3, 4), randn(2, 4, 2)})
  end)

  it("mm, mv, dot, outer", function()
    check(function(a, b) return a:mm(b) end, {randn(3, 4), randn(4, 2)})
    check(function(a, b) return lg.mm(a, b) end,
          {transposed(3, 4), randn(4, 2)})
    check(function(a, v) return a:mv(v) end, {randn(3, 4), randn(4)})
    check(function(a, v) return a:t():mv(v) end, {randn(4, 3), randn(4)})
    check(function(a, b) return a:dot(b) end, {randn(5), randn(5)})
    check(function(a, b) return lg.dot(a:narrow(1, 2, 3), b) end,
          {randn(5), randn(3)})
    check(function(a, b) return a:outer(b) end, {randn(3), randn(4)})
  end)

  it("a product with the same tensor on both sides", function()
    check(function(a) return lg.matmul(a, a) end, {randn(3, 3)})
    check(function(a) return a:t():mm(a) end, {randn(4, 3)})
    check(function(a) return a:dot(a) end, {randn(4)})
  end)
end)

-- ---- second order ----

describe("second order through lg.grad with create_graph", function()
  it("element-wise unary ops", function()
    for _, u in ipairs(unary) do
      local name, make = u[1], u[2]
      -- squared, so that ops with a constant derivative still have a
      -- non-zero second derivative to check
      gradgradcheck(function(x)
        local y = x[name](x)
        return y * y
      end, {make(3, 4)})
      gradgradcheck(function(x) return x[name](x) * x end, {make(5)})
    end
    gradgradcheck(function(x) return x:gelu("tanh") end, {randn(3, 4)})
    gradgradcheck(function(x)
      local y = x:leaky_relu(0.2)
      return y * y
    end, {away(3, 4)})
    gradgradcheck(function(x)
      local y = x:clamp(-0.5, 0.5)
      return y * y
    end, {(away(3, 4):detach() * 0.2):requires_grad_()})
  end)

  it("element-wise binary ops, with broadcasting and numbers", function()
    for _, b in ipairs(binary) do
      local name, ma, mb = b[1], b[2], b[3]
      gradgradcheck(function(x, y)
        local z = x[name](x, y)
        return z * z
      end, {ma(3, 1), mb(4)})
    end
    gradgradcheck(function(x) return x ^ 3 end, {randn(3, 4)})
    gradgradcheck(function(x) return 2 ^ x end, {randn(3, 4)})
    gradgradcheck(function(x) return 2 / x end, {away(3, 4)})
    gradgradcheck(function(x) return x ^ -1.5 end, {pos(3, 4)})
    gradgradcheck(function(x, y)
      local z = x:maximum(y)
      return z * z
    end, {distinct(3, 4), distinct(3, 4)})
  end)

  it("reductions", function()
    local function sq(f) return function(x) local y = f(x) return y * y end end
    gradgradcheck(sq(function(x) return x:sum() end), {randn(3, 4)})
    gradgradcheck(sq(function(x) return x:sum(2) end), {randn(3, 4)})
    gradgradcheck(sq(function(x) return x:mean(1, true) end), {randn(3, 4)})
    gradgradcheck(function(x) return x:prod() end, {away(2, 3)})
    gradgradcheck(function(x) return x:prod(2) end, {away(3, 3)})
    gradgradcheck(function(x) return x:prod() end, {with_zeros(1)})
    gradgradcheck(function(x) return x:prod(2) end, {with_zeros(1)})
    gradgradcheck(function(x) return x:prod(1) end, {with_zeros(2)})
    gradgradcheck(sq(function(x) return (x:max(2)) end), {distinct(3, 4)})
    gradgradcheck(sq(function(x) return x:min() end), {distinct(3, 4)})
    gradgradcheck(function(x) return x:var() end, {randn(3, 4)})
    gradgradcheck(function(x) return x:var(1) end, {randn(3, 4)})
    gradgradcheck(function(x) return x:std(2) end, {randn(3, 4)})
    gradgradcheck(function(x) return x:norm() end, {randn(3, 4)})
    gradgradcheck(function(x) return x:norm(3, 2) end, {away(3, 4)})
    gradgradcheck(function(x) return x:logsumexp(2) end, {randn(3, 4)})
    gradgradcheck(function(x) return x:softmax(2) end, {randn(3, 4)})
    gradgradcheck(function(x) return x:log_softmax(1) end, {randn(3, 4)})
    gradgradcheck(sq(function(x) return x:cumsum(2) end), {randn(3, 4)})
  end)

  it("views and indexing inside a nonlinear function", function()
    local function sq(f) return function(x) local y = f(x) return y * y end end
    gradgradcheck(sq(function(x) return x:t():reshape(12) end), {randn(3, 4)})
    gradgradcheck(sq(function(x) return x:expand(3, 4) end), {randn(4)})
    gradgradcheck(sq(function(x) return x:narrow(2, 2, 2) end), {randn(3, 4)})
    gradgradcheck(sq(function(x) return x:index_select(1, {2, 2, 1}) end),
                  {randn(3, 4)})
    gradgradcheck(sq(function(x) return x:gather(2, idx({{1, 1}, {2, 3}})) end),
                  {randn(2, 3)})
    gradgradcheck(sq(function(x) return lg.cat({x, x:t()}, 1) end),
                  {randn(3, 3)})
  end)

  it("matmul, mm, mv, dot, outer (cross terms of a bilinear map)",
     function()
    gradgradcheck(function(a, b) return lg.matmul(a, b) end,
                  {randn(3, 4), randn(4, 2)})
    gradgradcheck(function(a, b) return lg.matmul(a, b) end,
                  {randn(2, 3, 4), randn(4, 2)})
    gradgradcheck(function(a) return lg.matmul(a, a) end, {randn(3, 3)})
    gradgradcheck(function(a, v) return a:mv(v) end, {randn(3, 4), randn(4)})
    gradgradcheck(function(a, b) return a:dot(b) end, {randn(4), randn(4)})
    gradgradcheck(function(a, b) return a:outer(b) end, {randn(3), randn(2)})
    gradgradcheck(function(a, b) return lg.matmul(a, b):tanh() end,
                  {randn(3, 4), randn(4, 2)})
  end)

  it("activations composed as in a layer", function()
    for _, act in ipairs({"tanh", "sigmoid", "softplus", "gelu", "silu",
                          "relu"}) do
      gradgradcheck(function(w, x)
        return lg.matmul(x, w)[act](lg.matmul(x, w)):sum(2)
      end, {randn(4, 3), randn(5, 4)})
    end
  end)

  it("the check itself fails on a backward that is not differentiable",
     function()
    local Cube = lg.autograd.Function{
      forward = function(ctx, x) ctx:save(x) return x ^ 3 end,
      backward = function(ctx, g)
        return g * ctx.saved[1]:detach() ^ 2 * 3
      end,
    }
    local x = randn(4)
    -- first order is right
    check(function(t) return Cube(t) end, {x})
    -- second order misses the 6x term
    local ok, msg = second_order(function(t) return Cube(t) + t * t end, {x})
    assert.is_false(ok)
    assert.matches("input 1, element %d", msg)
  end)

  it("closed forms: d2/dx2 sin x = -sin x, Hv of sum x^3 is 6 x v",
     function()
    local x = randn({})
    local g = lg.grad(x:sin(), x, {create_graph = true})
    local h = lg.grad(g, x)
    assert.near(-math.sin(x:item()), h:item(), 1e-12)
    assert.near(math.cos(x:item()), g:item(), 1e-12)

    local y = randn(5)
    local v = lg.randn(5, {dtype = F64})
    local gy = lg.grad((y ^ 3):sum(), y, {create_graph = true})
    local hv = lg.grad((gy * v):sum(), y)
    for i = 1, 5 do
      assert.near(6 * y:get_flat(i) * v:get_flat(i), hv:get_flat(i), 1e-10)
    end
  end)

  it("closed form: Hv of sum((A B)^2) in A is 2 V B B^T", function()
    local a, b = randn(3, 4), lg.randn(4, 2, {dtype = F64})
    local v = lg.randn(3, 4, {dtype = F64})
    local ga = lg.grad((lg.matmul(a, b) ^ 2):sum(), a, {create_graph = true})
    local hv = lg.grad((ga * v):sum(), a)
    local want = lg.matmul(lg.matmul(v, b), b:t()) * 2
    for i = 1, 12 do
      assert.near(want:get_flat(i), hv:get_flat(i), 1e-10)
    end
  end)

  it("backward with create_graph leaves a differentiable .grad", function()
    local x = randn(3)
    local y = (x ^ 3):sum()
    y:backward(nil, {create_graph = true})
    assert.is_true(x.grad.requires_grad)
    local gx = x.grad
    x.grad = nil
    gx:sum():backward()
    for i = 1, 3 do assert.near(6 * x:get_flat(i), x.grad:get_flat(i), 1e-10) end
  end)
end)
