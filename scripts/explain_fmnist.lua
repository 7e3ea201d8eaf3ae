-- Attributions of a Fashion-MNIST CNN (interpretability): which pixels
-- made the network pick its class.
--
--   lgrad scripts/explain_fmnist.lua [--small] [--epochs N] [--images N]
--                                    [--out DIR] [--seed N]
--
-- Trains a small CNN (two 3x3 convolution + pooling blocks, a Linear
-- head; 2 epochs, or --small: 1 epoch on 1,000 images), then for the
-- first --images test images writes SVG heat maps (through lg.plot.heatmap)
-- of saliency, input x gradient, integrated gradients (zero baseline, 64
-- steps) and SmoothGrad for the predicted class to DIR/explain_fmnist.svg,
-- and prints integrated gradients' completeness error, |sum(attr) - (f(x)
-- - f(0))| averaged over the images, at 16, 64 and 256 steps for
-- Captum's riemann_trapezoid rule and for Gauss-Legendre.
local lg = require "lgrad"
local nn = lg.nn
local E = lg.explain

local S = dofile((arg and arg[0] and arg[0]:match("^(.*)/") or "scripts")
  .. "/scenario.lua")
local o = S.options(arg, { epochs = 2, seed = 1, batch = 128, lr = 2e-3,
  images = 4, out = "." })
if o.small then
  o.ntrain, o.ntest, o.epochs = 1000, 200, math.min(o.epochs, 1)
end
lg.manual_seed(o.seed)

local t_start = lg.clock()
local xtr, ytr = lg.data.fashion_mnist("train", { n = o.ntrain })
local xte, yte = lg.data.fashion_mnist("test", { n = o.ntest })
xtr, xte = xtr:unsqueeze(2), xte:unsqueeze(2)  -- (N, 1, 28, 28) in [0, 1]

local model = nn.Sequential(
  nn.Conv2d(1, 16, 3, { padding = 1 }), nn.ReLU(), nn.MaxPool2d(2),
  nn.Conv2d(16, 32, 3, { padding = 1 }), nn.ReLU(), nn.MaxPool2d(2),
  nn.Flatten(), nn.Linear(32 * 7 * 7, 10))
local train = lg.data.DataLoader(lg.data.TensorDataset(xtr, ytr),
  { batch_size = o.batch, shuffle = true, seed = o.seed })
local test = lg.data.DataLoader(lg.data.TensorDataset(xte, yte),
  { batch_size = 500 })
local history = lg.train.fit { model = model, loss = lg.F.cross_entropy,
  optimizer = lg.optim.Adam(model:parameters(), { lr = o.lr }),
  data = train, val = test, epochs = o.epochs,
  metrics = { accuracy = lg.train.accuracy } }
print(string.format("test accuracy: %.4f", history.accuracy[#history.accuracy]))
model:eval()

local CLASSES = { "T-shirt", "Trouser", "Pullover", "Dress", "Coat",
  "Sandal", "Shirt", "Sneaker", "Bag", "Boot" }
local n = math.min(o.images, xte:size(1))
local x = xte:narrow(1, 1, n)
local pred = lg.no_grad(function() return model(x):argmax(2) end)
local target = pred:view(n)

local sal = E.saliency(model, x, target)
local ixg = E.input_x_gradient(model, x, target)
local ig = E.integrated_gradients(model, x, target, { steps = 64 })
local sg = E.smoothgrad(model, x, target, { samples = 25, sigma = 0.15,
  generator = lg.Generator(o.seed) })

local panels = {}
for i = 1, n do
  local label = CLASSES[target[i]] or "?"
  local function add(title, t, seq)
    panels[#panels + 1] = { title = title, data = t[i][1], sequential = seq }
  end
  add(string.format("#%d %s", i, label), x, true)
  add("saliency", sal, true)
  add("input x grad", ixg)
  add("integrated grad", ig)
  add("SmoothGrad", sg)
end
local path = o.out .. "/explain_fmnist.svg"
lg.plot.heatmap { panels = panels, columns = 5, cell = 4, path = path,
  title = "Fashion-MNIST CNN attributions (red: toward the class, blue: "
    .. "against)" }
print("heat maps: " .. path)

local dscore = lg.no_grad(function()
  local idx = target:view(n, 1)
  return (model(x):gather(2, idx) - model(lg.zeros_like(x)):gather(2, idx))
    :abs():mean():item()
end)
print(string.format("mean |f(x) - f(0)| of the target score: %.3f", dscore))
for _, method in ipairs { "riemann_trapezoid", "gausslegendre" } do
  local parts = {}
  for _, steps in ipairs { 16, 64, 256 } do
    local _, err = E.integrated_gradients(model, x, target,
      { steps = steps, method = method, internal_batch_size = 256 })
    parts[#parts + 1] = string.format("%d steps %.3e", steps,
      err:abs():mean():item())
  end
  print(string.format("completeness error (%s): %s", method,
    table.concat(parts, ", ")))
end
print(string.format("time %.1f s", lg.clock() - t_start))
