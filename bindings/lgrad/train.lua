--- lgrad.train: the training loop, metrics and callbacks (lg.train).
--
--   local history = lg.train.fit{
--     model = model, loss = lg.F.cross_entropy, optimizer = opt,
--     data = train_loader, val = test_loader, epochs = 10,
--     scheduler = lg.sched.Cosine(opt, {T_max = 10}),
--     metrics = {accuracy = lg.train.accuracy},
--     callbacks = {lg.train.EarlyStopping{patience = 3},
--                  lg.train.Checkpoint{path = "best.safetensors",
--                                      save_best_only = true}},
--   }
--   print(history.val_loss[#history.val_loss], history.accuracy[1])
--
-- Each step: optimizer:zero_grad(), output = model(x), l = loss(output, y),
-- l:backward(), optimizer:step().  The scheduler steps once per epoch
-- (scheduler_step = "batch": once per batch) and is given the epoch's
-- validation loss (the training loss without val), which Plateau reads and
-- the others ignore.
--
-- Metrics are functions (output, target) -> number averaged over samples;
-- they are measured on val when it is given (model in eval mode, no
-- graph), else on the training batches as they pass.
--
-- A callback is a table with any of the methods on_train_begin(state),
-- on_epoch_end(state), on_batch_end(state), on_train_end(state), or a
-- plain function called as on_epoch_end.  state has model, optimizer,
-- history, epoch, batch, epochs, logs (this epoch's values: loss,
-- val_loss, metrics, lr, time), and stop (set it to true to end fit after
-- this epoch).

local lg = require "lgrad"

local M = {}

local fmt = string.format
local is_tensor = lg.is_tensor
local clock = lg.clock or os.clock
local inf = math.huge

-- lg.dist when this process is one of several ranks (mpirun), else nil
local function dist_world()
  local d = package.loaded["lgrad.dist"]
  if d and d.active() then return d end
end

-- the numbers of an epoch's logs (not lr, time) averaged over the ranks;
-- DataLoader{distributed = true} gives every rank as many samples
local function average_logs(dist, logs)
  local keys, vals = {}, {}
  for k, v in pairs(logs) do
    if type(v) == "number" and k ~= "lr" and k ~= "time" then
      keys[#keys + 1] = k
    end
  end
  table.sort(keys)
  if #keys == 0 then return end
  for i, k in ipairs(keys) do vals[i] = logs[k] end
  local t = dist.all_reduce(lg.tensor(vals, { dtype = lg.float64 }),
    { op = "mean" }):totable()
  for i, k in ipairs(keys) do logs[k] = t[i] end
end

---------------------------------------------------------------------------
-- metrics

--- The fraction of rows whose largest output is the target: target holds
-- class labels 1..C (int64), or rows of scores/one-hot of output's shape.
-- A 1-d output is read as binary logits (positive: class 1 of {0, 1}).
function M.accuracy(output, target)
  if output:dim() == 1 then
    return output:gt(0):eq(target:gt(0.5)):sum():item() / output:size(1)
  end
  local pred = output:argmax(-1)
  if target:dim() == output:dim() then target = target:argmax(-1) end
  return pred:eq(target):sum():item() / pred:numel()
end

--- The area under the ROC curve of scores (1-d, higher means positive)
-- against labels (1-d, positive where > 0.5): the probability that a random
-- positive scores above a random negative, ties counting one half (the
-- Mann-Whitney statistic, as sklearn's roc_auc_score).  nil when labels
-- hold one class only.
function M.auc(scores, labels)
  if not is_tensor(scores) or not is_tensor(labels) or scores:dim() ~= 1
      or labels:dim() ~= 1 or scores:numel() ~= labels:numel() then
    error("auc: scores and labels must be 1-d tensors of one length", 2)
  end
  local sorted, order = lg.no_grad(function()
    return scores:detach():double():sort(1)
  end)
  local s = sorted:totable()
  local pos = labels:index_select(1, order):gt(0.5):totable()
  local n, npos, rank_sum = #s, 0, 0.0
  local i = 1
  while i <= n do
    local j = i
    while j < n and s[j + 1] == s[i] do j = j + 1 end
    local mid = (i + j) / 2 -- the mean rank of a run of ties
    for k = i, j do
      if pos[k] then
        npos = npos + 1
        rank_sum = rank_sum + mid
      end
    end
    i = j + 1
  end
  local nneg = n - npos
  if npos == 0 or nneg == 0 then return nil end
  return (rank_sum - npos * (npos + 1) / 2) / (npos * nneg)
end

-- a metric given as a function or a name of one in this module
local function resolve_metric(name, f)
  if type(f) == "function" then return f end
  if type(f) == "string" and type(M[f]) == "function" then return M[f] end
  if type(name) == "string" and f == true and type(M[name]) == "function" then
    return M[name]
  end
  error(fmt("fit: metric '%s' must be a function (output, target) -> "
    .. "number", tostring(name)), 3)
end

-- metrics as a list of {name, fn}, sorted by name for a stable order
local function metric_list(metrics)
  local list = {}
  if metrics == nil then return list end
  if type(metrics) ~= "table" then
    error("fit: metrics must be a table {name = fn}", 3)
  end
  for k, v in pairs(metrics) do
    if math.type(k) == "integer" then
      -- {"accuracy"}: a name from this module
      list[#list + 1] = { v, resolve_metric(v, v) }
    else
      list[#list + 1] = { k, resolve_metric(k, v) }
    end
  end
  table.sort(list, function(a, b) return a[1] < b[1] end)
  return list
end

local function batch_size(x, y)
  if is_tensor(y) and y:dim() > 0 then return y:size(1) end
  if is_tensor(x) and x:dim() > 0 then return x:size(1) end
  return 1
end

local function with_grad_off(fn, ...)
  local prev = lg.set_grad_enabled(false)
  local res = table.pack(pcall(fn, ...))
  lg.set_grad_enabled(prev)
  if not res[1] then error(res[2], 0) end
  return table.unpack(res, 2, res.n)
end

--- Evaluates model on a loader in eval mode without recording a graph:
-- returns {loss = mean loss (when opts.loss is given), name = metric...}
-- averaged over samples.  opts: loss, metrics = {name = fn}.  The model
-- is put back in the mode it was in.
function M.evaluate(model, loader, opts)
  opts = opts or {}
  local metrics = metric_list(opts.metrics)
  local loss = opts.loss
  local was_training = model.training
  if model.eval then model:eval() end
  local sums, count, lsum = {}, 0, 0
  for i = 1, #metrics do sums[i] = 0 end
  local ok, err = pcall(with_grad_off, function()
    for xb, yb in loader:iter() do
      local out = model(xb)
      local n = batch_size(xb, yb)
      if loss then lsum = lsum + loss(out, yb):item() * n end
      for i = 1, #metrics do
        sums[i] = sums[i] + metrics[i][2](out, yb) * n
      end
      count = count + n
    end
  end)
  if was_training and model.train then model:train() end
  if not ok then error(err, 0) end
  local res = {}
  if count == 0 then return res end
  if loss then res.loss = lsum / count end
  for i = 1, #metrics do res[metrics[i][1]] = sums[i] / count end
  return res
end

---------------------------------------------------------------------------
-- progress display

local tty_cache
--- True when standard output is a terminal (TERM set and not "dumb", and
-- `test -t 1` succeeds).
function M.is_terminal()
  if tty_cache == nil then
    local term = os.getenv("TERM")
    if not term or term == "" or term == "dumb" then
      tty_cache = false
    else
      local ok = os.execute("test -t 1")
      tty_cache = ok == true or ok == 0
    end
  end
  return tty_cache
end

local function hms(s)
  if s ~= s or s == inf then return "?" end
  s = math.floor(s + 0.5)
  if s >= 3600 then
    return fmt("%d:%02d:%02d", s // 3600, s % 3600 // 60, s % 60)
  end
  return fmt("%d:%02d", s // 60, s % 60)
end

local function bar(done, total, width)
  if not total or total <= 0 then return "" end
  local filled = math.floor(width * done / total + 1e-9)
  if filled > width then filled = width end
  local s = string.rep("=", filled)
  if filled < width then s = s .. ">" .. string.rep(" ", width - filled - 1) end
  return "[" .. s .. "]"
end

-- a number for the epoch line: fixed point unless very small or large
local function num(v)
  if v == nil then return "-" end
  local a = math.abs(v)
  if a ~= 0 and (a < 1e-3 or a >= 1e5) then return fmt("%.3e", v) end
  return fmt("%.4f", v)
end

local function epoch_line(state, keys)
  local logs = state.logs
  local parts = { fmt("epoch %d/%d", state.epoch, state.epochs) }
  for _, k in ipairs(keys) do
    if logs[k] ~= nil then parts[#parts + 1] = k .. " " .. num(logs[k]) end
  end
  parts[#parts + 1] = fmt("lr %.3g", logs.lr)
  parts[#parts + 1] = fmt("%.1fs", logs.time)
  return table.concat(parts, "  ")
end

---------------------------------------------------------------------------
-- fit

local fit_keys = {}
for _, k in ipairs { "model", "loss", "optimizer", "data", "epochs",
  "scheduler", "scheduler_step", "val", "metrics", "callbacks", "progress",
  "clip_grad_norm" } do
  fit_keys[k] = true
end

local function check_loader(name, v)
  if v == nil then return end
  if (type(v) ~= "table" and type(v) ~= "userdata") or v.iter == nil then
    error(fmt("fit: %s must be a DataLoader (anything with :iter() and #)",
      name), 3)
  end
end

local function call_cbs(cbs, method, state)
  for i = 1, #cbs do
    local cb = cbs[i]
    if type(cb) == "function" then
      if method == "on_epoch_end" then cb(state) end
    elseif cb[method] then
      cb[method](cb, state)
    end
  end
end

local function current_lr(opt)
  local groups = opt.param_groups
  if groups and groups[1] then return groups[1].lr end
  return 0 / 0
end

--- Trains model; returns the history {loss = {...}, val_loss = {...},
-- <metric> = {...}, lr = {...}, time = {...}} with one entry per epoch
-- (loss is the mean training loss over the epoch's samples, lr the first
-- group's rate during the epoch, time seconds).  See the top of this file.
-- Options beyond the API's: clip_grad_norm (max norm of the gradients
-- before each step), progress (true, false, or nil: a bar on a terminal,
-- one line per epoch otherwise).
function M.fit(o)
  if type(o) ~= "table" then error("fit: expected one table of options", 2) end
  for k in pairs(o) do
    if not fit_keys[k] then
      error(fmt("fit: unknown option '%s'", tostring(k)), 2)
    end
  end
  local model, loss, opt, data = o.model, o.loss, o.optimizer, o.data
  if model == nil then error("fit: model is required", 2) end
  if type(loss) ~= "function" then
    error("fit: loss must be a function (output, target) -> 0-d tensor", 2)
  end
  if opt == nil then error("fit: optimizer is required", 2) end
  if data == nil then error("fit: data is required", 2) end
  check_loader("data", data)
  check_loader("val", o.val)
  local epochs = o.epochs or 1
  if math.type(epochs) ~= "integer" or epochs < 0 then
    error("fit: epochs must be a non-negative integer", 2)
  end
  local sched = o.scheduler
  local per_batch = o.scheduler_step == "batch"
  if o.scheduler_step ~= nil and o.scheduler_step ~= "batch"
      and o.scheduler_step ~= "epoch" then
    error("fit: scheduler_step must be \"epoch\" or \"batch\"", 2)
  end
  local metrics = metric_list(o.metrics)
  local cbs = o.callbacks or {}
  if type(cbs) ~= "table" then error("fit: callbacks must be a list", 2) end
  local clip = o.clip_grad_norm
  local params = clip and model:parameters()
  local val = o.val

  local progress = o.progress
  local tty = false
  if progress == nil or progress == "auto" then
    tty = not lg.output and M.is_terminal()
    progress = true
  elseif progress == "bar" then
    tty, progress = true, true
  end
  local out = lg.output or io.stdout
  local dist = dist_world()
  if dist and not dist.is_main() then progress = false end

  local history = { loss = {}, val_loss = {}, lr = {}, time = {} }
  for _, m in ipairs(metrics) do history[m[1]] = {} end
  local keys = { "loss" }
  if val then keys[#keys + 1] = "val_loss" end
  for _, m in ipairs(metrics) do keys[#keys + 1] = m[1] end
  local private = type(opt) == "table" and opt.accountant ~= nil
    and type(opt.get_epsilon) == "function"
  if private then
    history.epsilon = {}
    keys[#keys + 1] = "epsilon"
  end

  local state = { model = model, optimizer = opt, history = history,
    epochs = epochs, epoch = 0, batch = 0, stop = false, logs = {} }
  local batch_cbs = {}
  for _, cb in ipairs(cbs) do
    if type(cb) == "table" and cb.on_batch_end then
      batch_cbs[#batch_cbs + 1] = cb
    end
  end
  call_cbs(cbs, "on_train_begin", state)

  for epoch = 1, epochs do
    state.epoch = epoch
    if model.train then model:train() end
    local lr = current_lr(opt)
    local t0 = clock()
    local nb = #data
    local lsum, count, b = 0, 0, 0
    local msums = {}
    for i = 1, #metrics do msums[i] = 0 end
    local last_draw = -inf
    for xb, yb in data:iter() do
      b = b + 1
      opt:zero_grad()
      if batch_size(xb, yb) == 0 then
        -- an empty Poisson-sampled batch: a private optimizer's step is
        -- its noise alone
        opt:step()
        goto next_batch
      end
      local output = model(xb)
      local l = loss(output, yb)
      local lv = l:item()
      if lv ~= lv or lv == inf or lv == -inf then
        if tty and progress then out:write("\n") end
        error(fmt("fit: the loss is %s at epoch %d, batch %d (lower the "
          .. "learning rate, or check the data and the model)",
          tostring(lv), epoch, b), 2)
      end
      l:backward()
      if clip then lg.reg.clip_grad_norm(params, clip) end
      opt:step()
      if sched and per_batch then sched:step() end
      local n = batch_size(xb, yb)
      lsum, count = lsum + lv * n, count + n
      if not val then
        for i = 1, #metrics do
          msums[i] = msums[i] + with_grad_off(metrics[i][2], output, yb) * n
        end
      end
      if #batch_cbs > 0 then
        state.batch = b
        state.batch_loss = lv
        for i = 1, #batch_cbs do batch_cbs[i]:on_batch_end(state) end
      end
      if tty and progress then
        local now = clock()
        if now - last_draw >= 0.1 or b == nb then
          last_draw = now
          local el = now - t0
          local rate = b / math.max(el, 1e-9)
          local eta = nb and (nb - b) / rate or 0 / 0
          out:write(fmt("\r%s %s %d/%d  %.1f it/s  ETA %s  loss %s\27[K",
            fmt("epoch %d/%d", epoch, epochs), bar(b, nb, 24), b, nb or 0,
            rate, hms(eta), num(lsum / count)))
          out:flush()
        end
      end
      ::next_batch::
    end
    local logs = { lr = lr }
    logs.loss = count > 0 and lsum / count or 0 / 0
    if val then
      local r = M.evaluate(model, val, { loss = loss,
        metrics = o.metrics })
      logs.val_loss = r.loss
      for _, m in ipairs(metrics) do logs[m[1]] = r[m[1]] end
    else
      for i, m in ipairs(metrics) do
        logs[m[1]] = count > 0 and msums[i] / count or 0 / 0
      end
    end
    if dist then average_logs(dist, logs) end
    if private then
      -- the privacy spent so far (DP optimizers of lg.privacy)
      logs.epsilon = opt:get_epsilon()
      history.epsilon[epoch] = logs.epsilon
    end
    if sched and not per_batch then
      sched:step(logs.val_loss or logs.loss)
    end
    logs.time = clock() - t0
    state.logs = logs
    history.loss[epoch] = logs.loss
    history.val_loss[epoch] = logs.val_loss
    history.lr[epoch] = logs.lr
    history.time[epoch] = logs.time
    for _, m in ipairs(metrics) do history[m[1]][epoch] = logs[m[1]] end
    if progress then
      if tty then out:write("\r\27[K") end
      out:write(epoch_line(state, keys), "\n")
      out:flush()
    end
    call_cbs(cbs, "on_epoch_end", state)
    if state.stop then break end
  end
  call_cbs(cbs, "on_train_end", state)
  return history
end

---------------------------------------------------------------------------
-- callbacks

local function monitor_mode(fname, monitor, mode)
  mode = mode or "auto"
  if mode == "auto" then
    if monitor:find("acc") or monitor:find("f1") or monitor:find("auc") then
      return "max"
    end
    return "min"
  end
  if mode ~= "min" and mode ~= "max" then
    error(fmt("%s: mode must be \"min\", \"max\" or \"auto\"", fname), 3)
  end
  return mode
end

local function monitored(fname, state, monitor)
  local v = state.logs[monitor]
  if v == nil then
    error(fmt("%s: no value for '%s' this epoch (metrics: %s%s)", fname,
      monitor, "loss",
      state.logs.val_loss and ", val_loss" or "; give fit a val loader for "
      .. "val_loss"), 0)
  end
  return v
end

local function improved(mode, v, best, min_delta)
  if best == nil then return true end
  if mode == "min" then return v < best - min_delta end
  return v > best + min_delta
end

local function snapshot(model)
  local copy = {}
  for k, t in pairs(model:state_dict()) do copy[k] = t:clone() end
  return copy
end

local EarlyStopping = {}
EarlyStopping.__index = EarlyStopping

--- EarlyStopping{monitor = "val_loss", patience = 3, min_delta = 0,
-- mode = "auto" ("max" for names with acc), restore_best = false}: stops
-- fit once the monitored value has gone patience epochs in a row without
-- improving on the best by more than min_delta; restore_best loads the best epoch's weights at the
-- end.  After fit: .best, .best_epoch, .stopped_epoch (nil if it ran out).
function M.EarlyStopping(o)
  o = o or {}
  local self = setmetatable({
    monitor = o.monitor or "val_loss",
    patience = o.patience or 3,
    min_delta = o.min_delta or 0,
    restore_best = o.restore_best or false,
  }, EarlyStopping)
  if math.type(self.patience) ~= "integer" or self.patience < 0 then
    error("EarlyStopping: patience must be a non-negative integer", 2)
  end
  if type(self.min_delta) ~= "number" or self.min_delta < 0 then
    error("EarlyStopping: min_delta must be a non-negative number", 2)
  end
  self.mode = monitor_mode("EarlyStopping", self.monitor, o.mode)
  return self
end

function EarlyStopping:on_train_begin()
  self.best, self.best_epoch, self.wait = nil, nil, 0
  self.stopped_epoch, self.best_state = nil, nil
end

function EarlyStopping:on_epoch_end(state)
  local v = monitored("EarlyStopping", state, self.monitor)
  if improved(self.mode, v, self.best, self.min_delta) then
    self.best, self.best_epoch, self.wait = v, state.epoch, 0
    if self.restore_best then self.best_state = snapshot(state.model) end
  else
    self.wait = self.wait + 1
    if self.wait >= self.patience then
      self.stopped_epoch = state.epoch
      state.stop = true
    end
  end
end

function EarlyStopping:on_train_end(state)
  if self.restore_best and self.best_state then
    state.model:load_state_dict(self.best_state)
  end
end

local Checkpoint = {}
Checkpoint.__index = Checkpoint

--- Checkpoint{path, monitor = "val_loss", mode = "auto", save_best_only =
-- false}: after each epoch (or each improvement of monitor) writes
-- lg.save(path, {model = model:state_dict(), optimizer =
-- optimizer:state_dict(), epoch = e, <monitor> = value}); "{epoch}" in
-- path is replaced by the epoch number.  .best_path names the last file.
function M.Checkpoint(o)
  if type(o) ~= "table" or type(o.path) ~= "string" then
    error("Checkpoint: path (a string) is required", 2)
  end
  local self = setmetatable({
    path = o.path,
    monitor = o.monitor or "val_loss",
    save_best_only = o.save_best_only or false,
  }, Checkpoint)
  self.mode = monitor_mode("Checkpoint", self.monitor, o.mode)
  return self
end

function Checkpoint:on_train_begin()
  self.best, self.best_epoch, self.best_path = nil, nil, nil
end

function Checkpoint:on_epoch_end(state)
  local v
  if self.save_best_only then
    v = monitored("Checkpoint", state, self.monitor)
    if not improved(self.mode, v, self.best, 0) then return end
    self.best, self.best_epoch = v, state.epoch
  else
    v = state.logs[self.monitor]
  end
  local path = self.path:gsub("{epoch}", tostring(state.epoch))
  local value = { model = state.model:state_dict(), epoch = state.epoch }
  if state.optimizer.state_dict then
    value.optimizer = state.optimizer:state_dict()
  end
  if v ~= nil then value[self.monitor] = v end
  -- every rank took part in the state dicts (a ZeroOptimizer gathers);
  -- rank 1 alone writes
  local dist = dist_world()
  if dist and not dist.is_main() then return end
  local ok, err = lg.save(path, value)
  if ok == nil and err then
    error("Checkpoint: " .. tostring(err), 0)
  end
  self.best_path = path
end

local CSVLogger = {}
CSVLogger.__index = CSVLogger

--- CSVLogger{path, separator = ",", append = false}: one row per epoch
-- with the columns epoch, loss, val_loss, the metrics, lr, time.
function M.CSVLogger(o)
  if type(o) ~= "table" or type(o.path) ~= "string" then
    error("CSVLogger: path (a string) is required", 2)
  end
  return setmetatable({ path = o.path, separator = o.separator or ",",
    append = o.append or false }, CSVLogger)
end

function CSVLogger:on_train_begin()
  local dist = dist_world()
  self.silent = dist and not dist.is_main()
  if self.silent then return end
  local f, err = io.open(self.path, self.append and "a" or "w")
  if not f then error("CSVLogger: " .. tostring(err), 0) end
  self.file, self.columns = f, nil
  self.need_header = not self.append or f:seek("end") == 0
end

function CSVLogger:on_epoch_end(state)
  if self.silent then return end
  local logs = state.logs
  if not self.columns then
    local cols = { "loss" }
    if logs.val_loss ~= nil then cols[#cols + 1] = "val_loss" end
    local extra = {}
    for k in pairs(logs) do
      if k ~= "loss" and k ~= "val_loss" and k ~= "lr" and k ~= "time" then
        extra[#extra + 1] = k
      end
    end
    table.sort(extra)
    for _, k in ipairs(extra) do cols[#cols + 1] = k end
    cols[#cols + 1] = "lr"
    cols[#cols + 1] = "time"
    self.columns = cols
    if self.need_header then
      self.file:write("epoch", self.separator,
        table.concat(cols, self.separator), "\n")
    end
  end
  local row = { tostring(state.epoch) }
  for _, k in ipairs(self.columns) do
    local v = logs[k]
    row[#row + 1] = v == nil and "" or fmt("%.10g", v)
  end
  self.file:write(table.concat(row, self.separator), "\n")
  self.file:flush()
end

function CSVLogger:on_train_end()
  if self.file then
    self.file:close()
    self.file = nil
  end
end

return M
