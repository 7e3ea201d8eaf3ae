-- lg.train: fit (the step it runs, history, schedulers, validation and
-- metrics, the progress display, the non-finite loss error), evaluate,
-- accuracy, and the callbacks EarlyStopping, Checkpoint and CSVLogger.
local lg = require "lgrad"
local nn = lg.nn
local F = lg.F

-- a small regression problem: y = x w + 0.5 + noise
local function regression(n, seed)
  local g = lg.Generator(seed or 1)
  local x = lg.randn({n, 3}, {generator = g})
  local w = lg.tensor({{1.5}, {-2}, {0.5}})
  local y = x:mm(w) + 0.5 + lg.randn({n, 1}, {generator = g}) * 0.01
  return x, y
end

-- a classification problem: the label is the largest of 3 inputs
local function classes(n, seed)
  local x = lg.randn({n, 3}, {generator = lg.Generator(seed or 2)})
  return x, x:argmax(2)
end

local function loader(x, y, bs, opts)
  opts = opts or {}
  opts.batch_size = bs
  return lg.data.DataLoader(lg.data.TensorDataset(x, y), opts)
end

-- runs fn with io.stdout sent to a file; returns what was written
local function capture(fn)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  local saved = io.stdout
  io.stdout = f -- luacheck: ignore 122
  local ok, err = pcall(fn)
  io.stdout = saved -- luacheck: ignore 122
  f:close()
  local text = assert(io.open(path)):read("a")
  os.remove(path)
  if not ok then error(err, 0) end
  return text
end

local function fit_quiet(o)
  o.progress = false
  return lg.train.fit(o)
end

describe("lg.train.fit", function()
  before_each(function() lg.manual_seed(1) end)

  it("runs zero_grad, forward, loss, backward, step for each batch",
    function()
      local x, y = regression(40)
      lg.manual_seed(5)
      local a = nn.Linear(3, 1)
      lg.manual_seed(5)
      local b = nn.Linear(3, 1)
      local opt_a = lg.optim.SGD(a:parameters(), {lr = 0.1, momentum = 0.9})
      fit_quiet{model = a, loss = F.mse_loss, optimizer = opt_a,
                data = loader(x, y, 8), epochs = 3}
      -- the same by hand
      local opt_b = lg.optim.SGD(b:parameters(), {lr = 0.1, momentum = 0.9})
      local data = loader(x, y, 8)
      for _ = 1, 3 do
        for xb, yb in data:iter() do
          opt_b:zero_grad()
          F.mse_loss(b(xb), yb):backward()
          opt_b:step()
        end
      end
      assert.are.same(b.weight:totable(), a.weight:totable())
      assert.are.same(b.bias:totable(), a.bias:totable())
    end)

  it("learns and returns the history, one entry per epoch", function()
    local x, y = regression(64)
    local m = nn.Linear(3, 1)
    local opt = lg.optim.Adam(m:parameters(), {lr = 0.05})
    local h = fit_quiet{model = m, loss = F.mse_loss, optimizer = opt,
                        data = loader(x, y, 16, {shuffle = true, seed = 3}),
                        val = loader(x, y, 64), epochs = 30}
    assert.are.equal(30, #h.loss)
    assert.are.equal(30, #h.val_loss)
    assert.are.equal(30, #h.lr)
    assert.are.equal(30, #h.time)
    assert.is_true(h.loss[30] < h.loss[1] / 20, h.loss[30] .. " " .. h.loss[1])
    assert.is_true(h.val_loss[30] < 0.05)
    for e = 1, 30 do
      assert.are.equal(0.05, h.lr[e])
      assert.is_true(h.time[e] >= 0)
    end
    -- the epoch's loss is the mean over its samples
    assert.is_true(math.abs(h.loss[1]) < math.huge)
  end)

  it("measures metrics on val, in eval mode and without a graph",
    function()
      local x, y = classes(120)
      local m = nn.Sequential(nn.Linear(3, 16), nn.Dropout(0.2), nn.ReLU(),
                              nn.Linear(16, 3))
      local opt = lg.optim.Adam(m:parameters(), {lr = 0.02})
      local modes = {}
      local h = fit_quiet{model = m, loss = F.cross_entropy, optimizer = opt,
        data = loader(x, y, 20), val = loader(x, y, 40), epochs = 15,
        metrics = {accuracy = lg.train.accuracy,
                   mode = function(out)
                     modes[#modes + 1] = m.training
                     assert.is_false(out.requires_grad)
                     return 1
                   end}}
      assert.are.equal(15, #h.accuracy)
      assert.is_true(h.accuracy[15] > 0.9, tostring(h.accuracy[15]))
      assert.are.equal(1, h.mode[1])
      for _, training in ipairs(modes) do assert.is_false(training) end
      -- back in training mode afterwards, grad mode on
      assert.is_true(m.training)
      assert.is_true(lg.is_grad_enabled())
      -- it agrees with evaluate
      local r = lg.train.evaluate(m, loader(x, y, 40),
                                  {loss = F.cross_entropy,
                                   metrics = {accuracy = lg.train.accuracy}})
      assert.is_true(math.abs(r.accuracy - h.accuracy[15]) < 1e-12)
      assert.is_true(math.abs(r.loss - h.val_loss[15]) < 1e-6)
    end)

  it("measures metrics on the training batches without val", function()
    local x, y = classes(60)
    local m = nn.Linear(3, 3)
    local opt = lg.optim.SGD(m:parameters(), {lr = 0.5})
    local h = fit_quiet{model = m, loss = F.cross_entropy, optimizer = opt,
                        data = loader(x, y, 30), epochs = 2,
                        metrics = {"accuracy"}}
    assert.are.equal(2, #h.accuracy)
    assert.are.equal(0, #h.val_loss)
    assert.is_true(h.accuracy[2] >= 0 and h.accuracy[2] <= 1)
  end)

  it("steps the scheduler per epoch, or per batch", function()
    local x, y = regression(32)
    local m = nn.Linear(3, 1)
    local opt = lg.optim.SGD(m:parameters(), {lr = 0.1})
    local h = fit_quiet{model = m, loss = F.mse_loss, optimizer = opt,
      data = loader(x, y, 8), epochs = 3,
      scheduler = lg.sched.Step(opt, {step_size = 1, gamma = 0.5})}
    assert.are.same({0.1, 0.05, 0.025}, h.lr)
    local opt2 = lg.optim.SGD(m:parameters(), {lr = 0.1})
    h = fit_quiet{model = m, loss = F.mse_loss, optimizer = opt2,
      data = loader(x, y, 8), epochs = 2, scheduler_step = "batch",
      scheduler = lg.sched.Step(opt2, {step_size = 1, gamma = 0.5})}
    -- four batches per epoch
    assert.are.equal(0.1, h.lr[1])
    assert.is_true(math.abs(h.lr[2] - 0.1 / 16) < 1e-15)
  end)

  it("gives Plateau the validation loss", function()
    local x, y = regression(16)
    local m = nn.Linear(3, 1)
    local opt = lg.optim.SGD(m:parameters(), {lr = 0.1})
    -- a constant loss never improves: Plateau (patience 1) halves the rate
    local function flat(out, t) return F.mse_loss(out, t) * 0 + 1 end
    local h = fit_quiet{model = m, loss = flat, optimizer = opt,
      data = loader(x, y, 16), val = loader(x, y, 16), epochs = 5,
      scheduler = lg.sched.Plateau(opt, {patience = 1, factor = 0.5})}
    assert.are.same({0.1, 0.1, 0.1, 0.05, 0.05}, h.lr)
    assert.is_true(h.lr[5] < h.lr[1])
  end)

  it("stops with an error naming the epoch and batch of a non-finite loss",
    function()
      local x, y = regression(32)
      local m = nn.Linear(3, 1)
      local opt = lg.optim.SGD(m:parameters(), {lr = 0.01})
      local calls = 0
      local function loss(out, target)
        calls = calls + 1
        local l = F.mse_loss(out, target)
        if calls == 7 then return l * (0 / 0) end
        return l
      end
      assert.has_error(function()
        fit_quiet{model = m, loss = loss, optimizer = opt,
                  data = loader(x, y, 8), epochs = 3}
      end, "fit: the loss is " .. tostring(0 / 0) .. " at epoch 2, batch 3 "
        .. "(lower the learning rate, or check the data and the model)")
      calls = 0
      local big = function(out, t) return F.mse_loss(out, t) * math.huge end
      assert.has_error(function()
        fit_quiet{model = m, loss = big, optimizer = opt,
                  data = loader(x, y, 8), epochs = 1}
      end, "fit: the loss is inf at epoch 1, batch 1 (lower the learning "
        .. "rate, or check the data and the model)")
    end)

  it("accepts any loader with :iter() and #", function()
    local x, y = regression(8)
    local fake = setmetatable({}, {__len = function() return 2 end})
    function fake.iter()
      local i = 0
      return function()
        i = i + 1
        if i <= 2 then return x:narrow(1, 4 * i - 3, 4), y:narrow(1, 4 * i - 3, 4) end
      end
    end
    local m = nn.Linear(3, 1)
    local h = fit_quiet{model = m, loss = F.mse_loss,
                        optimizer = lg.optim.SGD(m:parameters(), {lr = 0.1}),
                        data = fake, epochs = 2}
    assert.are.equal(2, #h.loss)
  end)

  it("calls callbacks, and a callback can stop fit", function()
    local x, y = regression(16)
    local m = nn.Linear(3, 1)
    local seen = {}
    local cb = {
      on_train_begin = function(_, s) seen[#seen + 1] = "begin" .. s.epoch end,
      on_batch_end = function(_, s) seen[#seen + 1] = "b" .. s.batch end,
      on_epoch_end = function(_, s)
        seen[#seen + 1] = "e" .. s.epoch
        if s.epoch == 2 then s.stop = true end
      end,
      on_train_end = function() seen[#seen + 1] = "end" end,
    }
    local epochs = {}
    local h = fit_quiet{model = m, loss = F.mse_loss,
      optimizer = lg.optim.SGD(m:parameters(), {lr = 0.1}),
      data = loader(x, y, 8), epochs = 5,
      callbacks = {cb, function(s) epochs[#epochs + 1] = s.logs.loss end}}
    assert.are.same({"begin0", "b1", "b2", "e1", "b1", "b2", "e2", "end"},
                    seen)
    assert.are.same(h.loss, epochs)
  end)

  it("checks its options", function()
    local x, y = regression(8)
    local m = nn.Linear(3, 1)
    local opt = lg.optim.SGD(m:parameters(), {lr = 0.1})
    local data = loader(x, y, 4)
    assert.has_error(function()
      lg.train.fit{loss = F.mse_loss, optimizer = opt, data = data}
    end, "fit: model is required")
    assert.has_error(function()
      lg.train.fit{model = m, loss = F.mse_loss, optimizer = opt,
                   data = data, epoch = 3}
    end, "fit: unknown option 'epoch' (valid options: model, loss, " ..
      "optimizer, data, epochs, scheduler, scheduler_step, val, metrics, " ..
      "callbacks, verbose, log_every, progress, clip_grad_norm)")
    assert.has_error(function()
      lg.train.fit{model = m, loss = F.mse_loss, optimizer = opt,
                   data = {1, 2, 3}}
    end, "fit: data must be a DataLoader (anything with :iter() and #)")
    assert.has_error(function()
      lg.train.fit{model = m, loss = F.mse_loss, optimizer = opt,
                   data = data, scheduler_step = "step"}
    end, "fit: scheduler_step must be \"epoch\" or \"batch\"")
    assert.has_error(function()
      lg.train.fit{model = m, loss = "mse", optimizer = opt, data = data}
    end, "fit: loss must be a function (output, target) -> 0-d tensor")
  end)
end)

describe("lg.train progress", function()
  local x, y = regression(64)

  local function run(progress)
    local m = nn.Linear(3, 1)
    return capture(function()
      lg.train.fit{model = m, loss = F.mse_loss,
                   optimizer = lg.optim.SGD(m:parameters(), {lr = 0.05}),
                   data = loader(x, y, 8), val = loader(x, y, 64),
                   epochs = 2, progress = progress,
                   metrics = {mae = function(o, t)
                     return (o - t):abs():mean():item()
                   end}}
    end)
  end

  it("prints one plain line per epoch when not on a terminal", function()
    local text = run(nil)
    if lg.train.is_terminal() then return end -- run by hand on a terminal
    local lines = {}
    for line in text:gmatch("[^\n]+") do lines[#lines + 1] = line end
    assert.are.equal(2, #lines)
    assert.is_nil(text:find("\r", 1, true))
    assert.is_truthy(lines[1]:match("^epoch 1/2  loss %d+%.%d+  val_loss "
      .. "%d+%.%d+  mae %d+%.%d+  lr 0%.05  %d+%.%ds$"), lines[1])
    assert.is_truthy(lines[2]:match("^epoch 2/2 "))
  end)

  it("draws a bar rewritten with \\r on a terminal", function()
    local text = run("bar")
    assert.is_truthy(text:find("\r", 1, true))
    assert.is_truthy(text:find("8/8", 1, true))
    assert.is_truthy(text:find("it/s", 1, true))
    assert.is_truthy(text:find("ETA", 1, true))
    assert.is_truthy(text:find("[========================]", 1, true))
    assert.is_truthy(text:find("\n", 1, true))
  end)

  it("is silent with progress = false", function()
    assert.are.equal("", run(false))
  end)

  it("prints a line every N epochs off a terminal (verbose, log_every)",
     function()
    local function lines_of(opts)
      local m = nn.Linear(3, 1)
      local o = {model = m, loss = F.mse_loss,
                 optimizer = lg.optim.SGD(m:parameters(), {lr = 0.01}),
                 data = loader(x, y, 64), epochs = 200}
      for k, v in pairs(opts) do o[k] = v end
      local text = capture(function() lg.train.fit(o) end)
      local epochs = {}
      for e in text:gmatch("epoch (%d+)/200") do epochs[#epochs + 1] = tonumber(e) end
      return epochs
    end
    if not lg.train.is_terminal() then
      local auto = lines_of{}
      assert.same({1, 10, 20, 30}, {auto[1], auto[2], auto[3], auto[4]})
      assert.equal(21, #auto) -- 1, 10, 20, ..., 200
    end
    assert.equal(200, #lines_of{verbose = true})
    assert.same({1, 50, 100, 150, 200}, lines_of{verbose = 1, log_every = 50})
    assert.same({}, lines_of{verbose = false})
    assert.same({}, lines_of{verbose = 0})
    assert.has_error(function() lines_of{verbose = "loud"} end,
      "fit: verbose must be \"auto\", true, false, 0, 1 or 2")
    assert.has_error(function() lines_of{log_every = 0} end,
      "fit: log_every must be a positive integer")
  end)

  it("is_terminal answers a boolean", function()
    assert.is_boolean(lg.train.is_terminal())
  end)
end)

describe("lg.train.accuracy", function()
  it("compares the argmax with labels 1..C", function()
    local out = lg.tensor({{0.1, 0.9, 0}, {2, 1, 0}, {0, 0, 1}, {0, 1, 0}})
    local labels = lg.tensor({2, 1, 3, 3}, {dtype = lg.int64})
    assert.are.equal(0.75, lg.train.accuracy(out, labels))
  end)

  it("reads one-hot or probability targets and binary logits", function()
    local out = lg.tensor({{0.1, 0.9}, {2, 1}})
    assert.are.equal(0.5, lg.train.accuracy(out, lg.tensor({{1, 0}, {1, 0}})))
    local logits = lg.tensor({-1, 2, 0.5, -3})
    assert.are.equal(0.75, lg.train.accuracy(logits, lg.tensor({0, 1, 0, 0})))
  end)
end)

describe("lg.train callbacks", function()
  before_each(function() lg.manual_seed(2) end)

  -- a fit whose monitored value follows a script: the loss function
  -- returns the next scripted value for every batch of an epoch
  local function scripted(values, callbacks, opts)
    local x, y = regression(4)
    local m = nn.Linear(3, 1)
    local opt = lg.optim.SGD(m:parameters(), {lr = 0.01})
    local epoch = 0
    local cb_epoch = {on_train_begin = function() epoch = 1 end,
                      on_epoch_end = function() epoch = epoch + 1 end}
    local list = {cb_epoch}
    for _, c in ipairs(callbacks) do list[#list + 1] = c end
    local o = {model = m, optimizer = opt, data = loader(x, y, 4),
               epochs = #values, callbacks = list, progress = false,
               loss = function(out, t)
                 return F.mse_loss(out, t) * 0 + values[epoch]
               end}
    for k, v in pairs(opts or {}) do o[k] = v end
    return lg.train.fit(o), m
  end

  it("EarlyStopping waits patience epochs without improvement", function()
    local es = lg.train.EarlyStopping{monitor = "loss", patience = 2}
    local h = scripted({5, 4, 4.5, 3, 3.5, 3.2, 3.1, 1}, {es})
    -- best 3 at epoch 4; epochs 5 and 6 do not improve: stop at 6
    assert.are.equal(6, #h.loss)
    assert.are.equal(6, es.stopped_epoch)
    assert.are.equal(3, es.best)
    assert.are.equal(4, es.best_epoch)
  end)

  it("EarlyStopping respects min_delta and mode", function()
    local es = lg.train.EarlyStopping{monitor = "loss", patience = 1,
                                      min_delta = 0.5}
    local h = scripted({5, 4.8, 4.7, 1}, {es})
    assert.are.equal(2, #h.loss)
    local up = lg.train.EarlyStopping{monitor = "loss", patience = 1,
                                      mode = "max"}
    h = scripted({1, 2, 3, 2, 5}, {up})
    assert.are.equal(4, #h.loss)
    assert.are.equal(3, up.best)
  end)

  it("EarlyStopping can restore the best weights", function()
    local es = lg.train.EarlyStopping{monitor = "loss", patience = 1,
                                      restore_best = true}
    local snaps = {}
    local snap = {on_epoch_end = function(_, s)
      snaps[s.epoch] = s.model.weight:clone()
    end}
    local _, m = scripted({3, 1, 2, 2.5}, {snap, es})
    assert.are.same(snaps[2]:totable(), m.weight:totable())
  end)

  it("EarlyStopping on val_loss without val says what is missing", function()
    local es = lg.train.EarlyStopping{}
    assert.has_error(function() scripted({1, 2}, {es}) end,
      "EarlyStopping: no value for 'val_loss' this epoch (metrics: loss; "
      .. "give fit a val loader for val_loss)")
  end)

  it("Checkpoint saves the model, the optimizer and the epoch", function()
    local dir = os.tmpname()
    os.remove(dir)
    local path = dir .. "-{epoch}.safetensors"
    local ck = lg.train.Checkpoint{path = path, monitor = "loss",
                                   save_best_only = true}
    local h, m = scripted({3, 2, 2.5, 1}, {ck})
    assert.are.equal(4, #h.loss)
    local saved = {}
    for e = 1, 4 do
      local p = dir .. "-" .. e .. ".safetensors"
      local f = io.open(p)
      saved[e] = f ~= nil
      if f then f:close() end
    end
    assert.are.same({true, true, false, true}, saved)
    local ckpt = lg.load(dir .. "-4.safetensors")
    assert.are.equal(4, ckpt.epoch)
    assert.are.equal(1, ckpt.loss)
    local m2 = nn.Linear(3, 1)
    m2:load_state_dict(ckpt.model)
    assert.are.same(m.weight:totable(), m2.weight:totable())
    local opt2 = lg.optim.SGD(m2:parameters(), {lr = 0.5})
    opt2:load_state_dict(ckpt.optimizer)
    assert.are.equal(0.01, opt2.param_groups[1].lr)
    assert.are.equal(dir .. "-4.safetensors", ck.best_path)
    for e = 1, 4 do os.remove(dir .. "-" .. e .. ".safetensors") end
  end)

  it("Checkpoint without save_best_only writes every epoch", function()
    local path = os.tmpname()
    local ck = lg.train.Checkpoint{path = path}
    scripted({3, 4}, {ck})
    assert.are.equal(2, lg.load(path).epoch)
    os.remove(path)
  end)

  it("CSVLogger writes a header and one row per epoch", function()
    local path = os.tmpname()
    local x, y = classes(20)
    local m = nn.Linear(3, 3)
    lg.train.fit{model = m, loss = F.cross_entropy, progress = false,
                 optimizer = lg.optim.SGD(m:parameters(), {lr = 0.1}),
                 data = loader(x, y, 10), val = loader(x, y, 10), epochs = 3,
                 metrics = {accuracy = lg.train.accuracy},
                 callbacks = {lg.train.CSVLogger{path = path}}}
    local lines = {}
    for line in io.lines(path) do lines[#lines + 1] = line end
    os.remove(path)
    assert.are.equal(4, #lines)
    assert.are.equal("epoch,loss,val_loss,accuracy,lr,time", lines[1])
    assert.is_truthy(lines[2]:match("^1,[%d.e-]+,[%d.e-]+,[%d.e-]+,0%.1,"))
    assert.is_truthy(lines[4]:match("^3,"))
  end)

  it("callbacks check their options", function()
    assert.has_error(function() lg.train.Checkpoint{} end,
      "Checkpoint: path (a string) is required")
    assert.has_error(function() lg.train.CSVLogger{} end,
      "CSVLogger: path (a string) is required")
    assert.has_error(function() lg.train.EarlyStopping{patience = -1} end,
      "EarlyStopping: patience must be a non-negative integer")
    assert.has_error(function() lg.train.EarlyStopping{mode = "up"} end,
      "EarlyStopping: mode must be \"min\", \"max\" or \"auto\"")
  end)
end)
