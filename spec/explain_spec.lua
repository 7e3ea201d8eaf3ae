-- lg.explain: attributions against closed forms on a linear model, against
-- a step-by-step sum of gradients on a nonlinear one (float64), the
-- completeness error falling with the number of steps, SmoothGrad's
-- seeding, bad input, lg.plot.heatmap and the explain_fmnist scenario.
local lg = require "lgrad"
local E = lg.explain
local nn = lg.nn

local helpers = require "helpers"
local err_of, has = helpers.err_of, helpers.has

local function maxdiff(a, b) return (a - b):abs():max():item() end

local prev
local function setup()
  prev = lg.get_default_dtype()
  lg.set_default_dtype(lg.float64)
  lg.manual_seed(5)
end
local function teardown() lg.set_default_dtype(prev) end

-- f(x) = x W^T + b: the gradient of score t is row t of W
local function linear_case()
  local m = nn.Linear(6, 3)
  local x = lg.randn(4, 6)
  local t = lg.tensor({ 1, 3, 2, 3 }, { dtype = lg.int64 })
  local rows = m.weight:detach():index_select(1, t)   -- (4, 6)
  return m, x, t, rows
end

-- a nonlinear model and its reference integrated gradients, summed step
-- by step from single gradient evaluations
local function nonlinear()
  local m = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 8),
    nn.Softplus(), nn.Linear(8, 4))
  return m, lg.randn(3, 5)
end

describe("saliency and input x gradient", function()
  before_each(setup)
  after_each(teardown)

  it("are |W_t| and x * W_t on a linear model", function()
    local m, x, t, rows = linear_case()
    assert.are.equal(0, maxdiff(E.saliency(m, x, t), rows:abs()))
    assert.are.equal(0, maxdiff(E.saliency(m, x, t, { abs = false }), rows))
    assert.is_true(maxdiff(E.input_x_gradient(m, x, t), x * rows) < 1e-15)
    -- a number targets every sample
    local r2 = m.weight:detach():select(1, 2):view(1, 6):expand(4, 6)
    assert.are.equal(0, maxdiff(E.saliency(m, x, 2, { abs = false }), r2))
  end)

  it("leave the parameters' gradients alone", function()
    local m, x, t = linear_case()
    E.saliency(m, x, t)
    assert.is_nil(m.weight.grad)
    assert.is_false(x.requires_grad)
  end)

  it("agree with finite differences on a nonlinear model", function()
    local m, x = nonlinear()
    local g = E.saliency(m, x, 2, { abs = false })
    local h = 1e-6
    for i = 1, 3 do
      for j = 1, 5 do
        local xp, xm = x:clone(), x:clone()
        xp[i][j] = x[i][j] + h
        xm[i][j] = x[i][j] - h
        local fd = (m(xp)[i][2] - m(xm)[i][2]) / (2 * h)
        assert.is_true(math.abs(fd - g[i][j]) < 1e-8)
      end
    end
  end)
end)

describe("integrated gradients", function()
  before_each(setup)
  after_each(teardown)

  it("is (x - baseline) W_t on a linear model, exact with Gauss-Legendre",
    function()
      local m, x, t, rows = linear_case()
      local base = lg.randn(6)
      local a, err = E.integrated_gradients(m, x, t,
        { baseline = base, steps = 7, method = "gausslegendre" })
      assert.is_true(maxdiff(a, (x - base) * rows) < 1e-13)
      assert.is_true(err:abs():max():item() < 1e-13)
      -- Captum's trapezoid weights sum to 1 - 1/n: the error is -delta/n
      local n = 10
      local a2, err2 = E.integrated_gradients(m, x, t,
        { baseline = base, steps = n })
      assert.is_true(maxdiff(a2, (x - base) * rows * (n - 1) / n) < 1e-13)
      local delta = ((x - base) * rows):sum(2)
      assert.is_true(maxdiff(err2, -delta / n) < 1e-13)
    end)

  it("equals a step-by-step sum of gradients, in any batching", function()
    local m, x = nonlinear()
    local t = lg.tensor({ 4, 1, 2 }, { dtype = lg.int64 })
    local steps = 9
    local alphas, weights = E.integration_rule("riemann_trapezoid", steps)
    local ref = lg.zeros_like(x)
    for k = 1, steps do
      local g = E.saliency(m, x * alphas[k], t, { abs = false })
      ref = ref + g * weights[k]
    end
    ref = ref * x
    for _, ibs in ipairs { 1, 4, 1000 } do
      local a = E.integrated_gradients(m, x, t,
        { steps = steps, internal_batch_size = ibs })
      assert.is_true(maxdiff(a, ref) < 1e-14)
    end
  end)

  it("Captum's rules: points and weights", function()
    local a, w = E.integration_rule("riemann_trapezoid", 5)
    assert.are.same({ 0, 0.25, 0.5, 0.75, 1 }, a)
    assert.are.same({ 0.1, 0.2, 0.2, 0.2, 0.1 }, w)
    a = E.integration_rule("riemann_middle", 4)
    assert.are.same({ 0.125, 0.375, 0.625, 0.875 }, a)
    a, w = E.integration_rule("gausslegendre", 3)
    assert.is_true(math.abs(a[1] - (0.5 - math.sqrt(0.15))) < 1e-15)
    assert.is_true(math.abs(w[2] - 4 / 9) < 1e-15)
  end)

  it("completeness error falls as steps grow (16, 64, 256)", function()
    local m, x = nonlinear()
    for _, method in ipairs { "riemann_trapezoid", "riemann_middle",
      "riemann_left" } do
      local last = math.huge
      for _, steps in ipairs { 16, 64, 256 } do
        local _, err = E.integrated_gradients(m, x, 3,
          { steps = steps, method = method })
        local e = err:abs():max():item()
        assert.is_true(e < last, method .. " " .. steps)
        last = e
      end
    end
    -- a smooth model: Gauss-Legendre is at rounding level from 16 points
    for _, steps in ipairs { 16, 64, 256 } do
      local _, err = E.integrated_gradients(m, x, 3,
        { steps = steps, method = "gausslegendre" })
      assert.is_true(err:abs():max():item() < 1e-12)
    end
  end)
end)

describe("smoothgrad", function()
  before_each(setup)
  after_each(teardown)

  it("is the raw gradient when sigma is 0, seeded otherwise", function()
    local m, x = nonlinear()
    local g = E.saliency(m, x, 1, { abs = false })
    assert.is_true(maxdiff(E.smoothgrad(m, x, 1, { sigma = 0, samples = 3 }),
      g) < 1e-15)
    local a = E.smoothgrad(m, x, 1, { generator = lg.Generator(3),
      samples = 4 })
    local b = E.smoothgrad(m, x, 1, { generator = lg.Generator(3),
      samples = 4 })
    assert.are.equal(0, maxdiff(a, b))
    assert.is_true(maxdiff(a, g) > 0)
    -- squares and absolute values are never negative
    local sq = E.smoothgrad(m, x, 1, { method = "smoothgrad_sq",
      generator = lg.Generator(3), samples = 4 })
    assert.is_true(sq:min():item() >= 0)
    assert.is_true(E.smoothgrad(m, x, 1, { abs = true, samples = 2 })
      :min():item() >= 0)
  end)
end)

describe("bad input", function()
  before_each(setup)
  after_each(teardown)

  it("is named", function()
    local m, x = linear_case()
    has(err_of(E.saliency, m, x, 4),
      "saliency: target 4 is outside the classes 1..3")
    has(err_of(E.saliency, m, x, lg.tensor({ 1, 2 }, { dtype = lg.int64 })),
      "saliency: target must be an integer class or an int64 tensor of 4")
    has(err_of(E.input_x_gradient, m, x, lg.tensor({ 1, 2, 0, 1 },
      { dtype = lg.int64 })), "input_x_gradient: targets must be classes 1..3")
    has(err_of(E.saliency, m, x, 1, { absolute = true }),
      "saliency: unknown option 'absolute'")
    has(err_of(E.integrated_gradients, m, x, 1, { steps = 1 }),
      "integrated_gradients: a Riemann rule needs steps >= 2")
    has(err_of(E.integrated_gradients, m, x, 1, { steps = 0 }),
      "integrated_gradients: steps must be a positive integer")
    has(err_of(E.integrated_gradients, m, x, 1, { method = "simpson" }),
      "integrated_gradients: method must be riemann_trapezoid")
    has(err_of(E.integrated_gradients, m, x, 1, { baseline = lg.zeros(5) }),
      "integrated_gradients: baseline of shape [5] does not fit x [4,6]")
    has(err_of(E.smoothgrad, m, x, 1, { samples = 0 }),
      "smoothgrad: samples must be a positive integer")
    has(err_of(E.saliency, m, lg.zeros({ 4, 6 }, { dtype = lg.int64 }), 1),
      "saliency: x must be a float tensor")
    has(err_of(E.saliency, nn.Linear(6, 3), lg.randn(4, 5), 1), "linear")
  end)
end)

describe("plot.heatmap", function()
  it("draws one cell per value, panels in a grid", function()
    local svg = lg.plot.heatmap { panels = {
      { title = "a", data = lg.tensor({ { 1, -2 }, { 0, 3 } }) },
      { title = "b<", data = { { 0.1, 0.2, 0.3 } }, sequential = true } },
      title = "t" }
    local cells = select(2, svg:gsub('<rect x="%d+" y="%d+" width="5" '
      .. 'height="5" fill="#', ""))
    assert.are.equal(4 + 3, cells)
    has(svg, "b&lt;")
    -- the largest magnitude is full red, negatives are blue
    has(svg, 'fill="#ff0000"')
    has(svg, 'fill="#5555ff"')
    has(err_of(lg.plot.heatmap, { panels = { { data = lg.zeros(2, 2, 2) } } }),
      "plot.heatmap: panel 1: data must be 2-d (got 3-d)")
    has(err_of(lg.plot.heatmap, { panels = {} }), "plot.heatmap: expected")
    has(err_of(lg.plot.heatmap, { panels = { { data = { { 1 } } } },
      columns = 0 }), "plot.heatmap: columns and cell must be positive")
  end)
end)

describe("explain_fmnist scenario", function()
  it("runs with --small: heat maps and falling completeness errors",
    function()
      local bin = os.getenv("LGRAD_BIN") or "build/lgrad"
      local dir = os.tmpname()
      os.remove(dir)
      assert.is_true(os.execute("mkdir -p " .. dir))
      local p = assert(io.popen("timeout 900 " .. bin
        .. " scripts/explain_fmnist.lua --small --out " .. dir .. " 2>&1"))
      local out = p:read("a")
      local ok = p:close()
      assert.is_true(ok, out)
      local f = io.open(dir .. "/explain_fmnist.svg")
      assert.is_not_nil(f, out)
      local svg = f:read("a")
      f:close()
      os.remove(dir .. "/explain_fmnist.svg")
      os.remove(dir)
      assert.is_truthy(svg:find("integrated grad", 1, true))
      for _, method in ipairs { "riemann_trapezoid", "gausslegendre" } do
        local e16, e64, e256 = out:match("completeness error %(" .. method
          .. "%): 16 steps ([%d.e+-]+), 64 steps ([%d.e+-]+), 256 steps "
          .. "([%d.e+-]+)")
        assert.is_not_nil(e16, out)
        assert.is_true(tonumber(e16) > tonumber(e64)
          and tonumber(e64) > tonumber(e256), out)
      end
    end)
end)
