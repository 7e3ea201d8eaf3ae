-- lg.F.scaled_dot_product_attention: the fused op against the unfused
-- composition softmax(q k^T * scale + mask) v built from lgrad's own ops
-- (float64 and float32, every mask kind, lengths that are not multiples
-- of the block size), against PyTorch fixtures (spec/fixtures/
-- gen_attention.py writes the reference formula in torch 1.13, float64),
-- a float64 gradcheck, dropout drawn from the generator, and memory that
-- grows linearly in the sequence length.
local lg = require "lgrad"
require "helpers" -- assert.allclose, assert.shape

local F = lg.F
local sdpa = F.scaled_dot_product_attention
local fixture = dofile("spec/fixtures/attention.lua")

lg.manual_seed(20240611)

local function causal_keep(Tq, Tk)
  return lg.range(1, Tq):view(Tq, 1):ge(lg.range(1, Tk):view(1, Tk))
end

-- the unfused formula from separate ops (holds the Tq x Tk scores)
local function reference(q, k, v, opts)
  opts = opts or {}
  local scale = opts.scale or 1 / math.sqrt(q:size(-1))
  local s = q:matmul(k:transpose(-2, -1)) * scale
  local mask = opts.attn_mask
  if opts.is_causal then mask = causal_keep(q:size(-2), k:size(-2)) end
  if mask and mask:dtype() == "bool" then
    s = s:masked_fill(mask:eq(false), -math.huge)
  elseif mask then
    s = s + mask
  end
  return s:softmax(-1):matmul(v)
end

local function inputs(dtype, batch, Tq, Tk, D, Dv)
  local function shape(T, d)
    local s = {}
    for i, b in ipairs(batch) do s[i] = b end
    s[#s + 1] = T
    s[#s + 1] = d
    return s
  end
  local o = {dtype = dtype, requires_grad = true}
  return lg.randn(shape(Tq, D), o), lg.randn(shape(Tk, D), o),
         lg.randn(shape(Tk, Dv or D), o)
end

local function grads(out, q, k, v, upstream)
  local g = lg.grad(out, {q, k, v}, {grad_outputs = upstream})
  return g[1], g[2], g[3]
end

-- fused and unfused agree in value and in the gradient of every input
local function agree(dtype, tol, q, k, v, opts)
  local out = sdpa(q, k, v, opts)
  local want = reference(q, k, v, opts)
  assert.shape(out, want:shape())
  assert.allclose(out, want, tol, tol, "output")
  local up = lg.randn(out:shape(), {dtype = dtype})
  local a = {grads(out, q, k, v, up)}
  local b = {grads(want, q, k, v, up)}
  for i, name in ipairs({"dq", "dk", "dv"}) do
    assert.allclose(a[i], b[i], tol, tol, name)
  end
end

describe("scaled_dot_product_attention against the unfused formula", function()
  for _, dt in ipairs({"float64", "float32"}) do
    local tol = dt == "float64" and 1e-12 or 2e-5
    -- lengths around the block size of 64 keys and queries
    for _, T in ipairs({{1, 1}, {5, 7}, {64, 64}, {65, 129}, {130, 63}}) do
      local Tq, Tk = T[1], T[2]
      it(("%s, Tq = %d, Tk = %d: no mask, causal, bool, additive"):format(dt,
         Tq, Tk), function()
        local q, k, v = inputs(dt, {2, 3}, Tq, Tk, 8, 5)
        agree(dt, tol, q, k, v)
        agree(dt, tol, q, k, v, {is_causal = true})
        local keep = lg.rand(2, 1, Tq, Tk):gt(0.4)
        keep:select(4, 1):fill_(1) -- no row without a key
        agree(dt, tol, q, k, v, {attn_mask = keep})
        agree(dt, tol, q, k, v,
              {attn_mask = lg.randn({3, Tq, Tk}, {dtype = dt})})
        agree(dt, tol, q, k, v, {attn_mask = lg.randn({Tk}, {dtype = dt}),
                                 scale = 0.3})
      end)
    end
  end

  it("takes 2-d and 5-d inputs, and non-contiguous ones", function()
    local q, k, v = inputs("float64", {}, 6, 9, 4)
    agree("float64", 1e-12, q, k, v, {is_causal = true})
    q, k, v = inputs("float64", {2, 1, 2}, 6, 9, 4)
    agree("float64", 1e-12, q, k, v)
    local qt = lg.randn({2, 4, 6}, {dtype = "float64", requires_grad = true})
    local kt = lg.randn({2, 4, 9}, {dtype = "float64", requires_grad = true})
    local vv = lg.randn({2, 9, 4}, {dtype = "float64", requires_grad = true})
    local out = sdpa(qt:transpose(2, 3), kt:transpose(2, 3), vv)
    assert.allclose(out, reference(qt:transpose(2, 3), kt:transpose(2, 3),
                                   vv), 1e-12, 1e-12)
  end)

  it("a float mask of another dtype is converted; -inf entries mask", function()
    local q, k, v = inputs("float32", {2}, 4, 6, 8)
    local m = lg.zeros({4, 6}, {dtype = "float64"})
    m:narrow(2, 5, 2):fill_(-math.huge)
    agree("float32", 2e-5, q, k, v, {attn_mask = m})
  end)

  it("a row whose keys are all masked gives zeros and no gradient", function()
    local q, k, v = inputs("float64", {1}, 3, 4, 2)
    local keep = lg.tensor({{true, true, false, false},
                            {false, false, false, false},
                            {true, true, true, true}})
    local out = sdpa(q, k, v, {attn_mask = keep})
    assert.allclose(out[1][2], lg.zeros(2, {dtype = "float64"}), 0, 0)
    local ok = reference(q, k, v, {attn_mask = keep})
    assert.allclose(out[1][1], ok[1][1], 1e-12, 1e-12)
    out:sum():backward()
    assert.allclose(q.grad[1][2], lg.zeros(2, {dtype = "float64"}), 0, 0)
    -- finite: x - x is 0 only for finite x
    assert.is_true((q.grad - q.grad):eq(0):all():item())
    assert.is_true((k.grad - k.grad):eq(0):all():item())
  end)

  it("causal with more keys than queries masks from the top left, as torch",
     function()
    local q, k, v = inputs("float64", {}, 3, 5, 2)
    local out = sdpa(q, k, v, {is_causal = true})
    -- query 1 sees only key 1: its output is v[1]
    assert.allclose(out[1], v[1], 1e-12, 1e-12)
  end)

  it("gives the same bits on one thread and on several", function()
    local q, k, v = inputs("float32", {3, 4}, 70, 70, 16)
    local n = lg.get_num_threads()
    lg.set_num_threads(1)
    local a = sdpa(q, k, v, {is_causal = true})
    local ga = {grads(a, q, k, v, lg.ones(a:shape()))}
    lg.set_num_threads(2)
    local b = sdpa(q, k, v, {is_causal = true})
    local gb = {grads(b, q, k, v, lg.ones(b:shape()))}
    lg.set_num_threads(n)
    assert.is_true(a:eq(b):all():item())
    for i = 1, 3 do assert.is_true(ga[i]:eq(gb[i]):all():item()) end
  end)
end)

describe("scaled_dot_product_attention against PyTorch", function()
  for _, name in ipairs(fixture.sdpa_order) do
    local c = fixture.sdpa[name]
    it(name, function()
      local function t(x, rg)
        local r = lg.tensor(x.data, {dtype = "float64"}):view(x.shape)
        if rg then r:requires_grad_() end
        return r
      end
      local q, k, v = t(c.q, true), t(c.k, true), t(c.v, true)
      local opts = {is_causal = c.is_causal, scale = c.scale}
      if c.mask then
        opts.attn_mask = c.mask.dtype == "bool" and t(c.mask):ne(0)
          or t(c.mask)
      end
      local out = sdpa(q, k, v, opts)
      assert.allclose(out, t(c.out), 1e-10, 1e-12, "output")
      local g = lg.grad(out, {q, k, v}, {grad_outputs = t(c.upstream)})
      assert.allclose(g[1], t(c.dq), 1e-10, 1e-12, "dq")
      assert.allclose(g[2], t(c.dk), 1e-10, 1e-12, "dk")
      assert.allclose(g[3], t(c.dv), 1e-10, 1e-12, "dv")
    end)
  end
end)

describe("scaled_dot_product_attention gradcheck", function()
  it("passes in float64 with each kind of mask and with dropout", function()
    local q, k, v = inputs("float64", {2}, 5, 6, 3, 4)
    local keep = lg.rand(5, 6):gt(0.3)
    keep:select(2, 1):fill_(1)
    local add = lg.randn({2, 1, 6}, {dtype = "float64"})
    local cases = {{}, {is_causal = true}, {attn_mask = keep},
                   {attn_mask = add, scale = 0.7}}
    for _, o in ipairs(cases) do
      local ok, msg = lg.autograd.gradcheck(function(a, b, c)
        return sdpa(a, b, c, o)
      end, {q, k, v})
      assert.is_true(ok, msg)
    end
    -- dropout: a fresh generator per call keeps the mask fixed
    local ok, msg = lg.autograd.gradcheck(function(a, b, c)
      return sdpa(a, b, c, {dropout_p = 0.3, generator = lg.Generator(7)})
    end, {q, k, v})
    assert.is_true(ok, msg)
  end)

  it("refuses a second derivative instead of giving a wrong one", function()
    local q, k, v = inputs("float64", {}, 3, 3, 2)
    local out = sdpa(q, k, v)
    local g = lg.grad(out:sum(), {q}, {create_graph = true})[1]
    assert.has_error(function() g:sum():backward() end)
  end)
end)

describe("scaled_dot_product_attention dropout", function()
  it("is reproducible from the generator and drops about p", function()
    local q, k, v = inputs("float64", {2, 2}, 40, 40, 8)
    local a = sdpa(q, k, v, {dropout_p = 0.25, generator = lg.Generator(3)})
    local b = sdpa(q, k, v, {dropout_p = 0.25, generator = lg.Generator(3)})
    local c = sdpa(q, k, v, {dropout_p = 0.25, generator = lg.Generator(4)})
    assert.is_true(a:eq(b):all():item())
    assert.is_false(a:eq(c):all():item())
    -- with v = identity rows, out = dropped weights: count the zeros
    local eye = lg.eye(40):double():view(1, 1, 40, 40):expand(2, 2, 40, 40)
    local w = sdpa(q, k, eye:contiguous(),
                   {dropout_p = 0.25, generator = lg.Generator(5)})
    local zero = w:eq(0):double():mean():item()
    assert.is_true(zero > 0.2 and zero < 0.3, "dropped share " .. zero)
    -- kept weights are the undropped ones scaled by 1 / (1 - p)
    local full = sdpa(q, k, eye:contiguous())
    local kept = w:ne(0)
    assert.allclose(w, lg.where(kept, full / 0.75, lg.zeros_like(full)),
                    1e-12, 1e-12)
    -- p = 1 drops everything
    assert.allclose(sdpa(q, k, v, {dropout_p = 1}),
                    lg.zeros({2, 2, 40, 8}, {dtype = "float64"}), 0, 0)
  end)

  it("advances the default generator", function()
    local q, k, v = inputs("float32", {}, 8, 8, 4)
    lg.manual_seed(11)
    local a = sdpa(q, k, v, {dropout_p = 0.5})
    local b = sdpa(q, k, v, {dropout_p = 0.5})
    lg.manual_seed(11)
    local a2 = sdpa(q, k, v, {dropout_p = 0.5})
    assert.is_true(a:eq(a2):all():item())
    assert.is_false(a:eq(b):all():item())
  end)
end)

describe("scaled_dot_product_attention memory", function()
  -- what stays alive for backward after the forward: q, k, v (the
  -- caller's), the output and one log-sum-exp per row; no T x T scores
  local function held(T)
    collectgarbage()
    local q = lg.randn({1, 2, T, 32}, {requires_grad = true})
    local k, v = lg.randn({1, 2, T, 32}), lg.randn({1, 2, T, 32})
    local before = lg.memory_allocated()
    local out = sdpa(q, k, v, {is_causal = true})
    local after = lg.memory_allocated() - before
    out:sum():backward()
    return after
  end

  it("grows linearly in T (the scores would grow as T^2)", function()
    local a, b = held(512), held(1024)
    -- output + lse: 2 * 512 * (32 + 1) * 4 bytes at T = 512
    assert.is_true(a <= 2 * 512 * 33 * 4 + 4096, "held " .. a)
    assert.is_true(b <= 2.1 * a, ("T=512: %d bytes, T=1024: %d"):format(a, b))
  end)
end)

describe("scaled_dot_product_attention errors", function()
  local q = lg.randn(2, 5, 4)
  it("names the function and both shapes", function()
    assert.has_error(function() sdpa(q, lg.randn(2, 5, 3), lg.randn(2, 5, 4)) end,
      "scaled_dot_product_attention: query and key need the same last "
      .. "dimension: query [2,5,4] and key [2,5,3]")
    assert.has_error(function() sdpa(q, lg.randn(3, 5, 4), lg.randn(3, 5, 4)) end,
      "scaled_dot_product_attention: batch dimensions differ: query [2,5,4] "
      .. "and key [3,5,4]")
    assert.has_error(function() sdpa(q, q, lg.randn(2, 6, 4)) end,
      "scaled_dot_product_attention: key and value need the same length: "
      .. "key [2,5,4] and value [2,6,4]")
    assert.has_error(function()
      sdpa(q, q, q, {attn_mask = lg.zeros(4, 5)})
    end, "scaled_dot_product_attention: attn_mask [4,5] does not broadcast "
      .. "to the scores [2,5,5] of query [2,5,4]")
    assert.has_error(function() sdpa(lg.randn(4), q, q) end,
      "scaled_dot_product_attention: query must be (..., T, D), at least "
      .. "2-d (got [4])")
  end)

  it("refuses bad options", function()
    assert.has_error(function() sdpa(q, q, q, {dropout_p = 2}) end,
      "scaled_dot_product_attention: dropout_p must be in [0, 1] (got 2)")
    assert.has_error(function()
      sdpa(q, q, q, {is_causal = true, attn_mask = lg.zeros(5, 5)})
    end, "scaled_dot_product_attention: pass either attn_mask or is_causal, "
      .. "not both")
    assert.has_error(function() sdpa(q, q, q, {causal = true}) end,
      "scaled_dot_product_attention: unknown option 'causal'")
    assert.has_error(function()
      sdpa(q, q, q, {attn_mask = lg.zeros({5, 5}, {dtype = "int64"})})
    end, "scaled_dot_product_attention: attn_mask must be bool or float "
      .. "(got int64)")
    assert.has_error(function() sdpa(q, q:double(), q) end,
      "scaled_dot_product_attention: query, key and value must have one "
      .. "dtype (got float32, float64, float32)")
  end)
end)
