-- gradcheck: analytic gradients against float64 central differences.
--
-- gradcheck(fn, inputs [, {eps = 1e-6, atol = 1e-5, rtol = 1e-3}])
-- fn(...) receives the inputs and returns a tensor.  For every input that
-- requires grad and every element of it, the derivative of <v, fn(x)> for
-- a fixed random v is computed by central differences and compared with
-- the gradient lg.grad gives.  Returns true, or false and a message that
-- names the input and the element.
local lg = require "lgrad"

local function call(fn, inputs)
  local out = fn(table.unpack(inputs, 1, inputs.n or #inputs))
  if not lg.is_tensor(out) then
    error("gradcheck: fn must return a tensor, got " .. type(out), 3)
  end
  return out
end

local function gradcheck(fn, inputs, opts)
  opts = opts or {}
  local eps = opts.eps or 1e-6
  local atol = opts.atol or 1e-5
  local rtol = opts.rtol or 1e-3
  if lg.is_tensor(inputs) then inputs = {inputs} end
  local wrt, which = {}, {}
  for i, x in ipairs(inputs) do
    if lg.is_tensor(x) and x.requires_grad then
      if x:dtype() ~= "float64" then
        error("gradcheck: input " .. i .. " is " .. x:dtype() ..
              "; use float64 inputs for finite differences", 2)
      end
      wrt[#wrt + 1] = x
      which[#which + 1] = i
    end
  end
  if #wrt == 0 then
    error("gradcheck: no input requires grad", 2)
  end
  local out = call(fn, inputs)
  local v = lg.randn(out:shape(), {dtype = out:dtype(),
                                   generator = lg.Generator(1234)})
  local grads = lg.grad(out, wrt, {grad_outputs = v, allow_unused = true})
  local function project(o)
    return (o:double() * v:double()):sum():item()
  end
  for k, x in ipairs(wrt) do
    local g = grads[k]
    for e = 1, x:numel() do
      local orig = x:get_flat(e)
      x:set_flat(e, orig + eps)
      local fp = lg.no_grad(function() return project(call(fn, inputs)) end)
      x:set_flat(e, orig - eps)
      local fm = lg.no_grad(function() return project(call(fn, inputs)) end)
      x:set_flat(e, orig)
      local num = (fp - fm) / (2 * eps)
      local ana = g and g:get_flat(e) or 0
      if math.abs(num - ana) > atol + rtol * math.abs(num) or ana ~= ana
         or num ~= num then
        return false, string.format(
          "gradcheck: input %d, element %d: analytic %.10g, numerical %.10g",
          which[k], e, ana, num)
      end
    end
  end
  return true
end

return gradcheck
