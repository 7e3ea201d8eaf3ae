-- One-element tensors (0-d, or every dimension 1) take a short path
-- through the pointwise ops and the backward engine.  These specs check
-- that it gives exactly what the general path gives (the same element
-- computed inside a larger tensor), the same shapes, and the same graphs.
local lg = require "lgrad"

local XS = {1.5, -0.3, 2.0, 0.0, -2.5, 7.25, 1e-3}

-- the general path's answer: x OP y as the first element of a 2-element op
local function wide(f, x, y, dtype)
  local a = lg.tensor({x, x}, {dtype = dtype})
  local b = lg.tensor({y, y}, {dtype = dtype})
  return f(a, b)[1]
end

local BINOPS = {
  add = function(a, b) return a + b end,
  sub = function(a, b) return a - b end,
  mul = function(a, b) return a * b end,
  div = function(a, b) return a / b end,
  pow = function(a, b) return a ^ b end,
  maximum = function(a, b) return a:maximum(b) end,
  minimum = function(a, b) return a:minimum(b) end,
}

local function same(got, want)
  if got ~= got then
    assert.is_true(want ~= want)
  else
    assert.are.equal(want, got)
  end
end

describe("one-element pointwise ops", function()
  for _, dtype in ipairs({"float32", "float64"}) do
    for name, f in pairs(BINOPS) do
      it(name .. " on " .. dtype .. " matches the general path", function()
        for _, x in ipairs(XS) do
          for _, y in ipairs(XS) do
            local a = lg.tensor(x, {dtype = dtype})
            local b = lg.tensor(y, {dtype = dtype})
            same(f(a, b):item(), wide(f, x, y, dtype))
            -- tensor with a number, both sides
            same(f(a, y):item(), wide(f, x, y, dtype))
            if name ~= "maximum" and name ~= "minimum" then
              same(f(x, b):item(), wide(f, x, y, dtype))
            end
          end
        end
      end)
    end
  end

  it("keeps the shapes of 0-d and all-ones operands", function()
    local a0, a11 = lg.tensor(2.0), lg.ones(1, 1)
    assert.are.same({}, (a0 * a0):shape())
    assert.are.same({1, 1}, (a11 * a11):shape())
    assert.are.same({1, 1}, (a11 * 3):shape())
    assert.are.same({1, 1}, (a0 + a11):shape())
    assert.are.same({1, 1}, (a11 + a0):shape())
    assert.are.same({1, 1}, a11:exp():shape())
    assert.are.same("float64",
      (lg.tensor(1.0, {dtype = "float64"}) + a0):dtype())
  end)

  it("in place: values, broadcasting a 0-d source, version checks", function()
    local a = lg.ones(1)
    a:sub_(lg.tensor(0.25))
    assert.are.equal(0.75, a:item())
    a:mul_(a)
    assert.are.equal(0.5625, a:item())
    assert.has_error(function() lg.tensor(1.0):add_(lg.ones(1)) end)
    local w = lg.tensor(3.0, {requires_grad = true})
    local y = w * w
    local z = y ^ 2
    lg.no_grad(function() y:add_(lg.tensor(1.0)) end)
    assert.has_error(function() z:backward() end)
  end)
end)

describe("one-element backward", function()
  it("x^2 and the seed gradient match a two-element loss", function()
    for _, dtype in ipairs({"float32", "float64"}) do
      for _, x in ipairs(XS) do
        local w = lg.tensor(x, {dtype = dtype, requires_grad = true})
        local b = lg.tensor(0.5, {dtype = dtype, requires_grad = true})
        local loss = (w * 1.7 + b - 0.3) ^ 2
        loss:backward()
        local w2 = lg.tensor({x, x}, {dtype = dtype, requires_grad = true})
        local b2 = lg.tensor({0.5, 0.5}, {dtype = dtype, requires_grad = true})
        local l2 = (w2 * 1.7 + b2 - 0.3) ^ 2
        l2:backward(lg.ones(2, {dtype = dtype}))
        assert.are.equal(w2.grad[1], w.grad:item())
        assert.are.equal(b2.grad[1], b.grad:item())
        assert.are.same({}, w.grad:shape())
        assert.are.equal(dtype, w.grad:dtype())
      end
    end
  end)

  it("a leaf's first gradient is its own tensor and accumulates", function()
    local w = lg.tensor(2.0, {requires_grad = true})
    local y = w + 0
    local loss = y * y + y
    loss:backward()
    assert.are.equal(5, w.grad:item())
    assert.is_false(w.grad.requires_grad)
    local g = w.grad
    ;(w * 3):backward()
    assert.are.equal(8, w.grad:item())
    assert.are.equal(8, g:item()) -- accumulated in place
  end)

  it("double backward through x^2 still builds a graph", function()
    local x = lg.tensor(3.0, {requires_grad = true})
    local y = x ^ 2
    local g = lg.grad(y, x, {create_graph = true})
    assert.are.equal(6, g:item())
    local h = lg.grad(g, x)
    assert.are.equal(2, h:item())
  end)

  it("anomaly detection still names the backward that made a NaN", function()
    lg.autograd.detect_anomaly(true)
    local ok, err = pcall(function()
      local x = lg.tensor(0.0, {requires_grad = true})
      local y = x:sqrt()
      y:backward()
    end)
    lg.autograd.detect_anomaly(false)
    assert.is_false(ok)
    assert.matches("sqrt backward produced Inf", tostring(err), 1, true)
  end)
end)
