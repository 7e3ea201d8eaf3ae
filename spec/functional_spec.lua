-- lg.F: convolution, pooling, normalization, embedding, dropout, one_hot
-- and the activations.  Values and gradients are checked against PyTorch
-- fixtures (spec/fixtures/gen_functional.py), to 1e-6 relative in float64
-- and 1e-4 in float32, and by float64 finite differences (gradcheck).
local lg = require "lgrad"
local F = lg.F
local cases = dofile("spec/fixtures/functional.lua")

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

local function same_shape(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end

local function shape_str(s) return "[" .. table.concat(s, ",") .. "]" end

-- |got - want| <= tol * max(|want|, 0.1 * max|want|, 1e-12), elementwise
local function check_close(got, want, tol, what)
  assert(got, what .. ": missing")
  local gs = got:shape()
  if not same_shape(gs, want.shape) then
    error(string.format("%s: shape %s, expected %s", what, shape_str(gs),
                        shape_str(want.shape)), 2)
  end
  local g, w = flat(got), want.data
  local big = 0
  for i = 1, #w do big = math.max(big, math.abs(w[i])) end
  for i = 1, #w do
    local scale = math.max(math.abs(w[i]), 0.1 * big, 1e-12)
    local err = math.abs(g[i] - w[i])
    if err ~= err or err > tol * scale then
      error(string.format("%s: element %d is %.12g, expected %.12g", what, i,
                          g[i], w[i]), 2)
    end
  end
end

local function contains(list, x)
  for _, v in ipairs(list) do if v == x then return true end end
  return false
end

-- runs one fixture case with tensors of dtype, checks out, grads and any
-- tensors changed in place
local function run_case(c, dtype, tol)
  local ts = {}
  for k, f in pairs(c.tensors) do
    ts[k] = T(f, dtype)
    if contains(c.grad_names, k) then ts[k]:requires_grad_(true) end
  end
  local args, n = {}, #c.args
  for i, a in ipairs(c.args) do
    if type(a) == "string" then args[i] = ts[a] else args[i] = a.value end
  end
  if c.opts then
    local o = {}
    for k, v in pairs(c.opts) do
      if k == "weight" or k == "pos_weight" then o[k] = ts[v] else o[k] = v end
    end
    n = n + 1
    args[n] = o
  end
  local out = F[c.op](table.unpack(args, 1, n))
  check_close(out, c.out, tol, c.name .. " output")
  out:backward(T(c.upstream, dtype))
  for k, g in pairs(c.grads) do
    check_close(ts[k].grad, g, tol, c.name .. " grad " .. k)
  end
  for k, v in pairs(c.after or {}) do
    check_close(ts[k], v, tol, c.name .. " " .. k .. " after")
  end
end

local gradcheck = lg.autograd and lg.autograd.gradcheck

local function randn(...)
  return lg.randn({...}, {dtype = lg.float64, requires_grad = true})
end

local function assert_gradcheck(fn, inputs, opts)
  local ok, msg = gradcheck(fn, inputs, opts)
  assert(ok, msg)
end

-- ---- fixtures ----

describe("lg.F against PyTorch", function()
  for _, c in ipairs(cases) do
    if c.group ~= "loss" then
      it(c.name .. " (float64)", function() run_case(c, lg.float64, 1e-6) end)
      it(c.name .. " (float32)", function() run_case(c, lg.float32, 1e-4) end)
    end
  end
end)

-- ---- finite differences ----

describe("lg.F gradcheck (float64)", function()
  before_each(function() lg.manual_seed(7) end)

  it("linear, with and without bias, 1-d to 3-d inputs", function()
    local w, b = randn(4, 3), randn(4)
    assert_gradcheck(F.linear, {randn(5, 3), w, b})
    assert_gradcheck(F.linear, {randn(2, 2, 3), w, b})
    assert_gradcheck(F.linear, {randn(3), w})
  end)

  it("linear of a non-contiguous input", function()
    local x = randn(3, 5)
    assert_gradcheck(function(a, w) return F.linear(a:t(), w) end,
                     {x, randn(2, 3)})
  end)

  it("conv2d with stride, padding, dilation and groups", function()
    assert_gradcheck(function(x, w, b)
      return F.conv2d(x, w, b, {stride = {2, 1}, padding = 1,
                                dilation = {1, 2}, groups = 2})
    end, {randn(2, 4, 5, 6), randn(2, 2, 3, 2), randn(2)})
    assert_gradcheck(function(x, w) return F.conv2d(x, w) end,
                     {randn(1, 3, 4, 4), randn(2, 3, 1, 1)})
  end)

  it("conv2d over a batch of five", function()
    assert_gradcheck(function(x, w, b)
      return F.conv2d(x, w, b, {padding = 1, stride = {1, 2}})
    end, {randn(5, 2, 4, 4), randn(3, 2, 3, 3), randn(3)})
  end)

  it("conv2d of a non-contiguous input", function()
    assert_gradcheck(function(x, w)
      return F.conv2d(x:transpose(3, 4), w, nil, {padding = 1})
    end, {randn(1, 2, 5, 4), randn(3, 2, 3, 3)})
  end)

  it("max_pool2d and avg_pool2d", function()
    assert_gradcheck(function(x)
      return F.max_pool2d(x, 3, {stride = 2, padding = 1, ceil_mode = true})
    end, {randn(2, 2, 6, 5)})
    assert_gradcheck(function(x)
      return F.avg_pool2d(x, {2, 3}, {stride = 2, padding = 1,
                                      count_include_pad = false})
    end, {randn(2, 2, 6, 5)})
  end)

  it("batch_norm in training and eval mode", function()
    assert_gradcheck(function(x, w, b)
      return F.batch_norm(x, nil, nil, w, b, {training = true})
    end, {randn(3, 2, 2, 3), randn(2), randn(2)})
    local rm = lg.tensor({0.1, -0.2}, {dtype = lg.float64})
    local rv = lg.tensor({1.5, 0.7}, {dtype = lg.float64})
    assert_gradcheck(function(x, w, b)
      return F.batch_norm(x, rm, rv, w, b)
    end, {randn(4, 2), randn(2), randn(2)})
  end)

  it("layer_norm", function()
    assert_gradcheck(function(x, w, b)
      return F.layer_norm(x, {2, 3}, w, b)
    end, {randn(4, 2, 3), randn(2, 3), randn(2, 3)})
  end)

  it("norms and pooling of non-contiguous inputs", function()
    assert_gradcheck(function(x, w, b)
      return F.layer_norm(x:transpose(1, 2), 3, w:t():t(), b)
    end, {randn(3, 2, 3), randn(3), randn(3)})
    assert_gradcheck(function(x, w)
      return F.batch_norm(x:permute({2, 1, 3}), nil, nil, w, nil,
                          {training = true})
    end, {randn(2, 3, 4), randn(2)})
    assert_gradcheck(function(x)
      return F.max_pool2d(x:transpose(3, 4), 2)
    end, {randn(1, 2, 4, 6)})
  end)

  it("embedding", function()
    local idx = lg.tensor({{1, 3}, {3, 2}}):long()
    assert_gradcheck(function(w) return F.embedding(idx, w) end,
                     {randn(4, 3)})
  end)

  it("dropout with a fixed mask", function()
    local x = randn(3, 4)
    assert_gradcheck(function(a)
      lg.manual_seed(3)
      return F.dropout(a, 0.4, true)
    end, {x})
  end)

  it("activations", function()
    for _, name in ipairs({"relu", "gelu", "sigmoid", "tanh", "silu",
                           "softplus", "leaky_relu"}) do
      assert_gradcheck(F[name], {randn(3, 4)})
    end
    assert_gradcheck(function(x) return F.gelu(x, {approximate = "tanh"}) end,
                     {randn(5)})
    assert_gradcheck(function(x) return F.softmax(x, 1) end, {randn(3, 4)})
    assert_gradcheck(function(x) return F.log_softmax(x, -1) end,
                     {randn(3, 4)})
  end)

  it("linear is differentiable twice (create_graph)", function()
    local x, w = randn(2, 3), randn(4, 3)
    local y = F.linear(x, w):pow(2):sum()
    local gx = lg.grad(y, {x}, {create_graph = true})[1]
    local gw = lg.grad(gx:sum(), {w})[1]
    -- d/dw of sum_ij (2 (x w^T) w)_ij, checked by finite differences
    local function f(wv)
      local xx = x:detach()
      local g = lg.matmul(lg.matmul(xx, wv:t()) * 2, wv)
      return g:sum()
    end
    local ok, msg = gradcheck(f, {w})
    assert(ok, msg)
    local w2 = w:detach():requires_grad_(true)
    f(w2):backward()
    check_close(gw, {shape = w:shape(), data = flat(w2.grad)}, 1e-9,
                "second derivative")
  end)
end)

-- ---- behaviour ----

describe("lg.F behaviour", function()
  it("linear matches x w^T + b for 1-d, 2-d and 3-d inputs", function()
    local w, b = lg.randn(4, 3), lg.randn(4)
    for _, x in ipairs({lg.randn(3), lg.randn(5, 3), lg.randn(2, 5, 3)}) do
      local want = lg.matmul(x, w:t()) + b
      local got = F.linear(x, w, b)
      check_close(got, {shape = want:shape(), data = flat(want)}, 1e-5,
                  "linear")
    end
  end)

  it("conv2d 1x1 equals a matmul over channels", function()
    local x, w = lg.randn(2, 3, 4, 5, {dtype = lg.float64}),
                 lg.randn(6, 3, 1, 1, {dtype = lg.float64})
    local y = F.conv2d(x, w)
    local want = lg.matmul(w:view(6, 3), x:view(2, 3, 20)):view(2, 6, 4, 5)
    check_close(y, {shape = want:shape(), data = flat(want)}, 1e-12,
                "conv 1x1")
  end)

  it("max_pool2d returns 1-based flat indices on request", function()
    local x = lg.tensor({{{{1, 5, 2, 0}, {3, 4, 8, 7}}}}, {dtype = lg.float32})
    local y, idx = F.max_pool2d(x, 2, {return_indices = true})
    assert.same({5, 8}, flat(y))
    assert.same({2, 7}, flat(idx))
    assert.equal("int64", idx:dtype())
  end)

  it("max_pool2d takes a positional stride", function()
    local x = lg.randn(1, 1, 5, 5)
    local a = F.max_pool2d(x, 3, 1)
    assert.same({1, 1, 3, 3}, a:shape())
    local b = F.avg_pool2d(x, {2, 2}, {1, 2})
    assert.same({1, 1, 4, 2}, b:shape())
  end)

  it("batch_norm updates running stats only in training", function()
    local x = lg.randn(8, 3)
    local rm, rv = lg.zeros(3), lg.ones(3)
    F.batch_norm(x, rm, rv, nil, nil, {training = false})
    assert.same({0, 0, 0}, flat(rm))
    F.batch_norm(x, rm, rv, nil, nil, {training = true, momentum = 1})
    local mean, var = x:mean(1), x:var(1)
    check_close(rm, {shape = {3}, data = flat(mean)}, 1e-5, "running mean")
    check_close(rv, {shape = {3}, data = flat(var)}, 1e-5, "running var")
  end)

  it("batch_norm updates strided and float64 running stats", function()
    local x = lg.randn(8, 3)
    local stats = lg.zeros({3, 2}, {dtype = lg.float64})
    local rm, rv = stats:select(2, 1), stats:select(2, 2)
    rv:fill_(1)
    F.batch_norm(x, rm, rv, nil, nil, {training = true, momentum = 0.5})
    local mean, var = flat(x:mean(1)), flat(x:var(1))
    local got = flat(stats)
    for c = 1, 3 do
      assert.is_true(math.abs(got[2 * c - 1] - 0.5 * mean[c]) < 1e-6)
      assert.is_true(math.abs(got[2 * c] - (0.5 + 0.5 * var[c])) < 1e-6)
    end
  end)

  it("dropout is the identity in eval mode and with p = 0", function()
    local x = lg.randn(4, 5)
    assert.same(flat(x), flat(F.dropout(x, 0.5, false)))
    assert.same(flat(x), flat(F.dropout(x, 0)))
  end)

  it("dropout zeroes about p of the elements and scales the rest", function()
    lg.manual_seed(1)
    local x = lg.ones(100, 100, {dtype = lg.float64})
    local y = F.dropout(x, 0.3)
    local zeros, other = 0, 0
    for _, v in ipairs(flat(y)) do
      if v == 0 then zeros = zeros + 1
      elseif math.abs(v - 1 / 0.7) < 1e-12 then other = other + 1 end
    end
    assert.equal(10000, zeros + other)
    assert.is_true(math.abs(zeros / 10000 - 0.3) < 0.03)
  end)

  it("dropout's gradient is its mask", function()
    lg.manual_seed(2)
    local x = lg.randn({6, 7}, {dtype = lg.float64, requires_grad = true})
    local y = F.dropout(x, 0.5)
    y:sum():backward()
    local yv, xv, gv = flat(y), flat(x), flat(x.grad)
    for i = 1, #yv do
      assert.is_true(math.abs(yv[i] - xv[i] * gv[i]) < 1e-12)
    end
    assert.equal("dropout", y.grad_fn)
  end)

  it("dropout follows the seed and the generator option", function()
    lg.manual_seed(5)
    local a = flat(F.dropout(lg.ones(50), 0.5))
    lg.manual_seed(5)
    local b = flat(F.dropout(lg.ones(50), 0.5))
    assert.same(a, b)
    local c = flat(F.dropout(lg.ones(50), 0.5, true,
                             {generator = lg.Generator(9)}))
    local d = flat(F.dropout(lg.ones(50), 0.5, true,
                             {generator = lg.Generator(9)}))
    assert.same(c, d)
  end)

  it("dropout with p = 1 gives zeros", function()
    assert.same({0, 0, 0}, flat(F.dropout(lg.ones(3), 1)))
  end)

  it("one_hot takes 1-based labels", function()
    local y = F.one_hot(lg.tensor({2, 1, 3}):long())
    assert.equal("int64", y:dtype())
    assert.same({3, 3}, y:shape())
    assert.same({0, 1, 0, 1, 0, 0, 0, 0, 1}, flat(y))
    assert.same({2, 5}, F.one_hot(lg.tensor({1, 5}):long(), 5):shape())
    assert.same({2, 4}, F.one_hot(lg.tensor({1, 2}):long(), 4):shape())
  end)

  it("embedding takes 1-based indices and a negative padding_idx", function()
    local w = lg.tensor({{1, 2}, {3, 4}, {5, 6}}, {dtype = lg.float32})
    assert.same({5, 6, 1, 2}, flat(F.embedding(lg.tensor({3, 1}):long(), w)))
    local wr = w:clone():requires_grad_(true)
    F.embedding(lg.tensor({3, 3, 1}):long(), wr, {padding_idx = -1})
      :sum():backward()
    assert.same({1, 1, 0, 0, 0, 0}, flat(wr.grad))
  end)

  it("activations match the tensor methods", function()
    local x = lg.randn(3, 4)
    assert.same(flat(x:relu()), flat(F.relu(x)))
    assert.same(flat(x:sigmoid()), flat(F.sigmoid(x)))
    assert.same(flat(x:tanh()), flat(F.tanh(x)))
    assert.same(flat(x:softmax(1)), flat(F.softmax(x, 1)))
    assert.same(flat(x:log_softmax(2)), flat(F.log_softmax(x)))
    local v = lg.tensor({-1, 2}, {dtype = lg.float64})
    assert.same({-0.2, 2}, flat(F.leaky_relu(v, 0.2)))
    assert.same({-0.01, 2}, flat(F.leaky_relu(v)))
  end)

  it("gelu is exact by default and tanh-approximated on request", function()
    local x = lg.tensor({1.0}, {dtype = lg.float64})
    local exact = 0.5 * (1 + 0.6826894921370859) -- x Phi(x) at 1
    assert.is_true(math.abs(F.gelu(x):item() - exact) < 1e-12)
    local approx = 0.5 * (1 + math.tanh(math.sqrt(2 / math.pi) *
                                        (1 + 0.044715)))
    assert.is_true(math.abs(F.gelu(x, {approximate = "tanh"}):item()
                            - approx) < 1e-12)
    assert.is_true(math.abs(F.gelu(x, "tanh"):item() - approx) < 1e-12)
  end)
end)

-- ---- errors ----

describe("lg.F errors", function()
  it("conv2d reports channel mismatches with both shapes", function()
    assert.has_error(function()
      F.conv2d(lg.randn(2, 3, 5, 5), lg.randn(4, 2, 3, 3))
    end, "conv2d: input [2,3,5,5] has 3 channels but weight [4,2,3,3] " ..
         "expects 2 (2 per group, 1 groups)")
  end)

  it("conv2d rejects a kernel bigger than the input", function()
    assert.has_error(function()
      F.conv2d(lg.randn(1, 1, 2, 2), lg.randn(1, 1, 3, 3))
    end, "conv2d: input [1,1,2,2] (padded by 0, 0) is smaller than the " ..
         "dilated kernel of weight [1,1,3,3]")
  end)

  it("conv2d rejects bad options", function()
    local x, w = lg.randn(1, 2, 5, 5), lg.randn(2, 2, 3, 3)
    assert.has_error(function() F.conv2d(x, w, nil, {stride = 0}) end,
      "conv2d: stride and dilation must be positive and padding " ..
      "non-negative (got stride 0, padding 0, dilation 1)")
    assert.has_error(function() F.conv2d(x, w, nil, {strides = 2}) end,
      "conv2d: unknown option 'strides' (valid options: stride, padding, dilation, groups)")
    assert.has_error(function() F.conv2d(x, w, nil, {padding = "same"}) end,
      "conv2d: padding must be an integer or a pair {h, w} (got string)")
    assert.has_error(function()
      F.conv2d(lg.randn(1, 4, 5, 5), lg.randn(3, 2, 3, 3), nil, {groups = 2})
    end, "conv2d: groups (2) must be positive and divide the 3 output " ..
         "channels of weight [3,2,3,3]")
    assert.has_error(function() F.conv2d(x, w, lg.randn(3)) end,
      "conv2d: bias must have shape [2] (got [3])")
  end)

  it("conv2d needs float tensors of one dtype", function()
    assert.has_error(function()
      F.conv2d(lg.randn(1, 2, 5, 5), lg.randn({2, 2, 3, 3},
                                              {dtype = lg.float64}))
    end, "conv2d: weight is float64 but the input is float32")
  end)

  it("linear reports both shapes", function()
    assert.has_error(function() F.linear(lg.randn(2, 3), lg.randn(4, 5)) end,
      "linear: input [2,3] and weight [4,5] do not align (the input's " ..
      "last dim must be 5)")
  end)

  it("pooling rejects bad windows", function()
    assert.has_error(function()
      F.max_pool2d(lg.randn(1, 1, 4, 4), 2, {padding = 2})
    end, "max_pool2d: padding (2) must be at most half of the kernel " ..
         "size (2)")
    assert.has_error(function() F.avg_pool2d(lg.randn(1, 1, 2, 2), 3) end,
      "avg_pool2d: input [1,1,2,2] is too small for a 3x3 window " ..
      "(output would be 0x0)")
    assert.has_error(function() F.max_pool2d(lg.randn(4, 4), 2) end,
      "max_pool2d: input must be 3-d (C, H, W) or 4-d (N, C, H, W), got [4,4]")
    assert.has_error(function()
      F.avg_pool2d(lg.randn(1, 1, 4, 4), 2, {dilation = 2})
    end, "avg_pool2d: unknown option 'dilation' (valid options: stride, padding, ceil_mode, count_include_pad, divisor_override)")
  end)

  it("norms report shape mismatches", function()
    assert.has_error(function() F.layer_norm(lg.randn(2, 3), 4) end,
      "layer_norm: input [2,3] does not end with normalized_shape [4]")
    assert.has_error(function()
      F.layer_norm(lg.randn(2, 3), 3, lg.randn(4))
    end, "layer_norm: weight [4] does not match normalized_shape [3]")
    assert.has_error(function()
      F.batch_norm(lg.randn(4, 3), lg.zeros(2), lg.ones(3))
    end, "batch_norm: running_mean must have shape [3] (got [2])")
    assert.has_error(function()
      F.batch_norm(lg.randn(4, 3), nil, nil)
    end, "batch_norm: running_mean and running_var are needed when not " ..
         "training")
    assert.has_error(function()
      F.batch_norm(lg.randn(1, 3), nil, nil, nil, nil, {training = true})
    end, "batch_norm: expected more than 1 value per channel when " ..
         "training, got input [1,3]")
    assert.has_error(function()
      F.batch_norm(lg.randn(4, 3), nil, nil, nil, nil, {train = true})
    end, "batch_norm: unknown option 'train' (valid options: training, momentum, eps)")
  end)

  it("embedding and one_hot check index ranges", function()
    assert.has_error(function()
      F.embedding(lg.tensor({1, 4}):long(), lg.randn(3, 2))
    end, "embedding: index 4 out of range 1..3")
    assert.has_error(function()
      F.embedding(lg.tensor({0}):long(), lg.randn(3, 2))
    end, "embedding: index 0 out of range 1..3")
    assert.has_error(function()
      F.embedding(lg.tensor({1.0}), lg.randn(3, 2))
    end, "embedding: indices must be int64 (got float32)")
    assert.has_error(function() F.one_hot(lg.tensor({1, 4}):long(), 3) end,
      "one_hot: label 4 out of range 1..3")
  end)

  it("dropout and activations check their arguments", function()
    assert.has_error(function() F.dropout(lg.randn(3), 1.5) end,
      "dropout: probability must be between 0 and 1 (got 1.5)")
    assert.has_error(function() F.gelu(lg.randn(3), {approximate = "erf"}) end,
      "gelu: approximate must be \"none\" or \"tanh\" (got \"erf\")")
    assert.has_error(function() F.gelu(lg.randn(3), 5) end,
      "bad argument #2 to 'gelu' (\"none\", \"tanh\" or an options " ..
      "table expected)")
    assert.has_error(function()
      F.conv2d(lg.randn(1, 2, 3, 3), lg.randn(2, 2, 1, 1), nil, {groups = 1.5})
    end, "conv2d: option 'groups' must be an integer (got 1.5)")
    assert.has_error(function() F.softmax(lg.randn(2, 3), 3) end,
      "softmax: dimension 3 out of range for a 2-d tensor (dimensions " ..
      "are 1..2 or negative)")
  end)

  it("double backward through conv2d raises instead of giving zero", function()
    local x = lg.randn({1, 1, 4, 4}, {requires_grad = true})
    local w = lg.randn({1, 1, 3, 3}, {requires_grad = true})
    local gx = lg.grad(F.conv2d(x, w):sum(), {x}, {create_graph = true})[1]
    local ok, err = pcall(function() gx:sum():backward() end)
    assert.is_false(ok)
    assert.matches("conv2d_backward: differentiating a gradient of this op " ..
                   "again %(double backward%) is not supported", err)
  end)

  it("a saved input changed in place is caught at backward", function()
    local x = lg.randn(1, 1, 4, 4)
    local w = lg.randn({1, 1, 3, 3}, {requires_grad = true})
    local y = F.conv2d(x, w):sum()
    x:add_(1)
    local ok, err = pcall(function() y:backward() end)
    assert.is_false(ok)
    assert.matches("saved by conv2d was modified in place", err)
  end)
end)
