-- host_train.lua -- the Lua half of examples/host_train.c: fits a small
-- MLP classifier (d -> hidden -> classes, ReLU) with Adam on data that
-- the host program hands over without copying.
--
-- train(x, y, opts) takes x (N x d float32), y (N int64 labels 1..C) and
-- options {hidden, epochs, batch_size, lr, seed}; it returns the
-- parameters {w1 = (hidden x d), b1 = (hidden), w2 = (C x hidden),
-- b2 = (C)} and the last minibatch loss.  `lg` is the global that
-- lgrad_open sets.
-- luacheck: globals train, read globals lg

local function uniform(shape, bound)
  -- as nn.Linear initializes: U(-bound, bound)
  return (lg.rand(shape) * (2 * bound) - bound):requires_grad_(true)
end

function train(x, y, opts)
  opts = opts or {}
  local hidden = opts.hidden or 32
  local epochs = opts.epochs or 60
  local batch = opts.batch_size or 64
  lg.manual_seed(opts.seed or 0)

  local n, d = x:size(1), x:size(2)
  local classes = y:max():item()
  local b_in, b_hid = 1 / math.sqrt(d), 1 / math.sqrt(hidden)
  local w1, b1 = uniform({ hidden, d }, b_in), uniform({ hidden }, b_in)
  local w2, b2 = uniform({ classes, hidden }, b_hid),
                 uniform({ classes }, b_hid)
  local opt = lg.optim.Adam({ w1, b1, w2, b2 }, { lr = opts.lr or 0.01 })

  local loss_value
  for _ = 1, epochs do
    local perm = lg.randperm(n)
    for i = 1, n, batch do
      local idx = perm:narrow(1, i, math.min(batch, n - i + 1))
      local xb, yb = x:index_select(1, idx), y:index_select(1, idx)
      local h = (xb:matmul(w1:t()) + b1):relu()
      local loss = lg.F.cross_entropy(h:matmul(w2:t()) + b2, yb)
      opt:zero_grad()
      loss:backward()
      opt:step()
      loss_value = loss:item()
    end
  end
  return { w1 = w1, b1 = b1, w2 = w2, b2 = b2 }, loss_value
end
