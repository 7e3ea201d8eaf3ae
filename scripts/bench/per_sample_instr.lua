-- One workload for scripts/bench/per_sample_instr.sh: 3 calls of
--   lgrad per_sample_instr.lua WHAT MODEL
-- WHAT: none (setup only), plain (forward and backward), per_sample
-- (lg.privacy.per_sample_grads), dp (forward, backward and a DP-SGD step's
-- clipping and noise); MODEL: mlp (784-256-10, batch 256) or cnn
-- (conv16-conv32-linear, batch 64).  One thread.
local lg = require "lgrad"
lg.set_num_threads(1)
lg.manual_seed(1)
local nn, P = lg.nn, lg.privacy
local what, kind = arg[1], arg[2]
local model, x, y
if kind == "mlp" then
  model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
  x, y = lg.rand(256, 784), lg.randint(1, 10, { 256 })
else
  model = nn.Sequential(nn.Conv2d(1, 16, 3, { padding = 1 }), nn.ReLU(),
    nn.MaxPool2d(2), nn.Conv2d(16, 32, 3, { padding = 1 }), nn.ReLU(),
    nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 7 * 7, 10))
  x, y = lg.rand(64, 1, 28, 28), lg.randint(1, 10, { 64 })
end
local ce = lg.F.cross_entropy
local opt
if what == "dp" then
  local _
  _, opt = P.PrivacyEngine():make_private { model = model,
    optimizer = lg.optim.SGD(model:parameters(), { lr = 0 }),
    data_loader = lg.data.DataLoader(lg.data.TensorDataset(x, y),
      { batch_size = x:size(1) }),
    noise_multiplier = 1, max_grad_norm = 1, poisson_sampling = false,
    seed = 1 }
end
for _ = 1, 3 do
  if what == "plain" then
    model:zero_grad()
    ce(model(x), y):backward()
  elseif what == "per_sample" then
    P.per_sample_grads(model, ce, x, y, { loss_reduction = "mean" })
  elseif what == "dp" then
    opt:zero_grad()
    ce(model(x), y):backward()
    opt:_privatize()
  end
end
