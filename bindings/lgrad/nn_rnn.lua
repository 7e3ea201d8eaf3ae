--- lgrad.nn_rnn: recurrent modules (lg.nn.RNN, LSTM, GRU and their cells).
--
--   local lstm = lg.nn.LSTM(10, 20, {num_layers = 2, batch_first = true})
--   local out, h_n, c_n = lstm(x)             -- x (B, T, 10): out (B, T, 20)
--   local out2 = lstm(x, h0, c0, {lengths = lg.tensor({5, 3}, {dtype = lg.int64})})
--
-- Shapes, options, gate orders (LSTM i, f, g, o; GRU r, z, n) and
-- parameter names (weight_ih_l0, weight_hh_l0_reverse, bias_ih_l1 ...) are
-- PyTorch's, so state dicts interchange with torch.nn.LSTM's.  Each layer
-- and direction is one op of runtime/ops/rnn.c (one GEMM for the inputs,
-- then a GEMM and a fused gate kernel per step).
--
-- Variable lengths ({lengths = int64 tensor of B values}, what
-- pack_padded_sequence gives torch): outputs past a sequence's length are
-- zero and h_n holds each sequence's last real step (for the reverse
-- direction, its first).  Lengths must be sorted longest first unless
-- {enforce_sorted = false}, as in torch.

local lg = require "lgrad"

return function(nn)
  local util = nn._util
  local options, set_of, check_int = util.options, util.set_of,
    util.check_int
  local is_tensor = lg.is_tensor
  local fmt = string.format
  local rnn_layer = lg._rnn.layer
  local dropout = lg.F.dropout

  local function shape_str(t)
    return "[" .. table.concat(t:shape(), ",") .. "]"
  end

  local function dims_str(list)
    return "[" .. table.concat(list, ",") .. "]"
  end

  -- U(-1/sqrt(H), 1/sqrt(H)) for every weight and bias, as torch
  local function reset_uniform(self)
    local bound = self.hidden_size > 0 and 1 / math.sqrt(self.hidden_size)
      or 0
    lg.no_grad(function()
      for _, p in ipairs(self:parameters()) do
        p:uniform_(-bound, bound)
      end
    end)
  end

  local GATES = { rnn_tanh = 1, rnn_relu = 1, lstm = 4, gru = 3 }

  -- an Elman network's nonlinearity option: "tanh" (default) or "relu"
  local function nonlinearity(name, opts)
    local nl = type(opts) == "table" and opts.nonlinearity or "tanh"
    if nl ~= "tanh" and nl ~= "relu" then
      error(fmt("%s: nonlinearity must be \"tanh\" or \"relu\" (got %s)",
        name, tostring(nl)), 3)
    end
    return nl
  end

  ---------------------------------------------------------------------------
  -- RNN, LSTM, GRU

  local RNNBase = nn.Module:extend("RNNBase")
  nn.RNNBase = RNNBase

  local base_opts = set_of { "num_layers", "bias", "batch_first", "dropout",
    "bidirectional", "dtype" }
  local rnn_opts = set_of { "num_layers", "bias", "batch_first", "dropout",
    "bidirectional", "nonlinearity", "dtype" }

  local function base_init(self, name, mode, nin, nhid, opts)
    check_int(name, "input_size", nin)
    check_int(name, "hidden_size", nhid)
    opts = options(name, opts, mode:sub(1, 3) == "rnn" and rnn_opts
      or base_opts)
    local L = opts.num_layers == nil and 1 or opts.num_layers
    check_int(name, "num_layers", L)
    local p = opts.dropout or 0
    if type(p) ~= "number" or p < 0 or p > 1 then
      error(fmt("%s: dropout must be a number in [0, 1] (got %s)", name,
        tostring(p)), 3)
    end
    rawset(self, "_mode", mode)
    self.input_size, self.hidden_size, self.num_layers = nin, nhid, L
    self.bias = opts.bias ~= false
    self.batch_first = opts.batch_first == true
    self.dropout = p
    self.bidirectional = opts.bidirectional == true
    local D = self.bidirectional and 2 or 1
    local G = GATES[mode]
    local dt = opts.dtype and { dtype = opts.dtype } or nil
    for l = 0, L - 1 do
      local lin = l == 0 and nin or nhid * D
      for dir = 0, D - 1 do
        local sfx = l .. (dir == 1 and "_reverse" or "")
        self["weight_ih_l" .. sfx] = nn.Parameter(lg.empty({ G * nhid, lin }, dt))
        self["weight_hh_l" .. sfx] = nn.Parameter(lg.empty({ G * nhid, nhid }, dt))
        if self.bias then
          self["bias_ih_l" .. sfx] = nn.Parameter(lg.empty({ G * nhid }, dt))
          self["bias_hh_l" .. sfx] = nn.Parameter(lg.empty({ G * nhid }, dt))
        end
      end
    end
    reset_uniform(self)
  end

  RNNBase.reset_parameters = reset_uniform

  function RNNBase:extra_repr()
    local s = fmt("%d, %d", self.input_size, self.hidden_size)
    if self._mode == "rnn_relu" then s = s .. ", nonlinearity='relu'" end
    if self.num_layers ~= 1 then s = s .. ", num_layers=" .. self.num_layers end
    if not self.bias then s = s .. ", bias=False" end
    if self.batch_first then s = s .. ", batch_first=True" end
    if self.dropout ~= 0 then s = s .. ", dropout=" .. self.dropout end
    if self.bidirectional then s = s .. ", bidirectional=True" end
    return s
  end

  local fwd_opts = set_of { "lengths", "enforce_sorted" }

  -- checks a state tensor (h0 or c0): (L * D, B, H), or (L * D, H) for an
  -- unbatched input
  local function check_state(self, what, s, want, x)
    if s == nil then return nil end
    if not is_tensor(s) then
      error(fmt("%s: %s must be a tensor (got %s)", self.__name, what,
        type(s)), 4)
    end
    local ok = s:dim() == #want
    for i = 1, #want do ok = ok and s:size(i) == want[i] end
    if not ok then
      error(fmt("%s: %s must have shape %s for the input %s (got %s)",
        self.__name, what, dims_str(want), shape_str(x), shape_str(s)), 4)
    end
    if s:dtype() ~= x:dtype() then
      error(fmt("%s: %s is %s but the input is %s", self.__name, what,
        s:dtype(), x:dtype()), 4)
    end
    return s
  end

  -- lengths: a 1-d int64 tensor of B values in 1..T; returns the Lua list
  local function check_lengths(self, len, B, T, x)
    if not is_tensor(len) or len:dtype() ~= "int64" or len:dim() ~= 1 then
      error(fmt("%s: lengths must be a 1-d int64 tensor (got %s)",
        self.__name, is_tensor(len) and (len:dtype() .. " " .. shape_str(len))
        or type(len)), 4)
    end
    if len:size(1) ~= B then
      error(fmt("%s: lengths %s must have one value per sequence of the "
        .. "input %s (batch size %d)", self.__name, shape_str(len),
        shape_str(x), B), 4)
    end
    local list = len:totable()
    for b, v in ipairs(list) do
      if v > T then
        error(fmt("%s: length %d of sequence %d is longer than the input "
          .. "%s (%d steps)", self.__name, v, b, shape_str(x), T), 4)
      end
      if v < 1 then
        error(fmt("%s: length %d of sequence %d must be at least 1",
          self.__name, v, b), 4)
      end
    end
    return list
  end

  -- (T, B, I) input, (L D, B, H) states -> output (T, B, D H), h_n, c_n
  local function run_layers(self, x, h0, c0, lengths)
    local mode, L = self._mode, self.num_layers
    local D = self.bidirectional and 2 or 1
    local T = x:size(1)
    local lstm = mode == "lstm"
    local sfx_of = { [0] = "", [1] = "_reverse" }
    local hs, cs = {}, {}
    local input = x
    for l = 0, L - 1 do
      local outs = {}
      for dir = 0, D - 1 do
        local k = l * D + dir + 1
        local sfx = l .. sfx_of[dir]
        local res = rnn_layer(mode, input, h0:select(1, k),
          lstm and c0:select(1, k) or nil, self["weight_ih_l" .. sfx],
          self["weight_hh_l" .. sfx], self["bias_ih_l" .. sfx],
          self["bias_hh_l" .. sfx], lengths, dir == 1)
        outs[dir + 1] = res:narrow(1, 1, T)
        hs[k] = res:select(1, T + 1)
        if lstm then cs[k] = res:select(1, T + 2) end
      end
      local out = D == 2 and lg.cat(outs, 3) or outs[1]
      if self.dropout > 0 and self.training and l < L - 1 then
        out = dropout(out, self.dropout, true)
      end
      input = out
    end
    return input, lg.stack(hs, 1), lstm and lg.stack(cs, 1) or nil
  end

  -- forward(x [, h0 [, c0]] [, {lengths, enforce_sorted}])
  function RNNBase:forward(x, ...)
    local name = self.__name
    local lstm = self._mode == "lstm"
    local args = table.pack(...)
    while args.n > 0 and args[args.n] == nil do args.n = args.n - 1 end
    local opts
    local last = args[args.n]
    if args.n > 0 and type(last) == "table" and not is_tensor(last) then
      opts = options(name, last, fwd_opts)
      args.n = args.n - 1
      while args.n > 0 and args[args.n] == nil do args.n = args.n - 1 end
    else
      opts = {}
    end
    if args.n > (lstm and 2 or 1) then
      error(fmt("%s: expected (x [, h0%s] [, opts]), got %d arguments", name,
        lstm and " [, c0]" or "", args.n + 1), 2)
    end
    local h0, c0 = args[1], args[2]
    if not is_tensor(x) then
      error(fmt("%s: input must be a tensor (got %s)", name, type(x)), 2)
    end
    local D = self.bidirectional and 2 or 1
    local I, H, LD = self.input_size, self.hidden_size, self.num_layers * D
    local want = self.batch_first and "(B, T, %d)" or "(T, B, %d)"
    if (x:dim() ~= 3 and x:dim() ~= 2) or x:size(-1) ~= I then
      error(fmt("%s: input must have shape " .. want .. " (batch_first = %s)"
        .. " or (T, %d), got %s", name, I, tostring(self.batch_first), I,
        shape_str(x)), 2)
    end
    local batched = x:dim() == 3
    local xt = x
    if not batched then
      xt = x:unsqueeze(2)
    elseif self.batch_first then
      xt = x:transpose(1, 2)
    end
    local T, B = xt:size(1), xt:size(2)
    if T < 1 then
      error(fmt("%s: the input %s has no time steps", name, shape_str(x)), 2)
    end
    local sw = batched and { LD, B, H } or { LD, H }
    h0 = check_state(self, "h0", h0, sw, x)
    c0 = lstm and check_state(self, "c0", c0, sw, x) or nil
    local dt = { dtype = x:dtype() }
    h0 = h0 and (batched and h0 or h0:unsqueeze(2)) or lg.zeros({ LD, B, H }, dt)
    if lstm then
      c0 = c0 and (batched and c0 or c0:unsqueeze(2)) or lg.zeros({ LD, B, H }, dt)
    end
    for _, p in ipairs(self:parameters()) do
      if p:dtype() ~= x:dtype() then
        error(fmt("%s: the input is %s but the parameters are %s", name,
          x:dtype(), p:dtype()), 2)
      end
    end
    local lengths, perm, inv
    if opts.lengths ~= nil then
      if not batched then
        error(name .. ": lengths need a batched (3-d) input", 2)
      end
      local list = check_lengths(self, opts.lengths, B, T, x)
      local sorted = true
      for b = 2, B do sorted = sorted and list[b] <= list[b - 1] end
      lengths = opts.lengths
      if not sorted then
        if opts.enforce_sorted ~= false then
          error(fmt("%s: lengths %s must be sorted longest first, or pass "
            .. "{enforce_sorted = false}", name,
            dims_str(list)), 2)
        end
        local vals, idx = opts.lengths:sort(1, true)
        perm, lengths = idx, vals
        local _, undo = idx:sort(1)
        inv = undo
        xt = xt:index_select(2, perm)
        h0 = h0:index_select(2, perm)
        if lstm then c0 = c0:index_select(2, perm) end
      end
    end
    local out, hn, cn = run_layers(self, xt, h0, c0, lengths)
    if perm then
      out = out:index_select(2, inv)
      hn = hn:index_select(2, inv)
      if lstm then cn = cn:index_select(2, inv) end
    end
    if not batched then
      out = out:squeeze(2)
      hn = hn:squeeze(2)
      if lstm then cn = cn:squeeze(2) end
    elseif self.batch_first then
      out = out:transpose(1, 2)
    end
    if lstm then return out, hn, cn end
    return out, hn
  end

  -- a class named name over base, whose init is initf with the mode (an
  -- Elman network's from its nonlinearity option)
  local function define(base, initf, name, mode)
    local cls = base:extend(name)
    nn[name] = cls
    function cls:init(nin, nhid, opts)
      local nl = not mode and nonlinearity(name, opts) or nil
      initf(self, name, mode or "rnn_" .. nl, nin, nhid, opts)
      if nl then self.nonlinearity = nl end
    end
    return cls
  end

  --- RNN(input_size, hidden_size [, {num_layers = 1, nonlinearity = "tanh",
  -- bias = true, batch_first = false, dropout = 0, bidirectional = false}])
  define(RNNBase, base_init, "RNN")
  --- LSTM(input_size, hidden_size [, opts]): out, h_n, c_n = lstm(x [, h0, c0])
  define(RNNBase, base_init, "LSTM", "lstm")
  --- GRU(input_size, hidden_size [, opts]): out, h_n = gru(x [, h0])
  define(RNNBase, base_init, "GRU", "gru")

  ---------------------------------------------------------------------------
  -- cells: one step, the same fused kernels with T = 1

  local CellBase = nn.Module:extend("RNNCellBase")
  local cell_opts = set_of { "bias", "dtype" }
  local rnncell_opts = set_of { "bias", "nonlinearity", "dtype" }

  local function cell_init(self, name, mode, nin, nhid, opts)
    check_int(name, "input_size", nin)
    check_int(name, "hidden_size", nhid)
    opts = options(name, opts, mode:sub(1, 3) == "rnn" and rnncell_opts
      or cell_opts)
    rawset(self, "_mode", mode)
    self.input_size, self.hidden_size = nin, nhid
    self.bias = opts.bias ~= false
    local G = GATES[mode]
    local dt = opts.dtype and { dtype = opts.dtype } or nil
    self.weight_ih = nn.Parameter(lg.empty({ G * nhid, nin }, dt))
    self.weight_hh = nn.Parameter(lg.empty({ G * nhid, nhid }, dt))
    if self.bias then
      self.bias_ih = nn.Parameter(lg.empty({ G * nhid }, dt))
      self.bias_hh = nn.Parameter(lg.empty({ G * nhid }, dt))
    end
    reset_uniform(self)
  end

  CellBase.reset_parameters = reset_uniform

  function CellBase:extra_repr()
    local s = fmt("%d, %d", self.input_size, self.hidden_size)
    if not self.bias then s = s .. ", bias=False" end
    if self._mode == "rnn_relu" then s = s .. ", nonlinearity='relu'" end
    return s
  end

  -- forward(x [, h]) or, for LSTMCell, (x [, h, c]) or (x, {h, c})
  function CellBase:forward(x, h, c)
    local name, lstm = self.__name, self._mode == "lstm"
    if lstm and type(h) == "table" and not is_tensor(h) then
      h, c = h[1], h[2]
    end
    if not is_tensor(x) or (x:dim() ~= 1 and x:dim() ~= 2)
        or x:size(-1) ~= self.input_size then
      error(fmt("%s: input must have shape (B, %d) or (%d), got %s", name,
        self.input_size, self.input_size,
        is_tensor(x) and shape_str(x) or type(x)), 2)
    end
    local batched = x:dim() == 2
    local xb = batched and x or x:unsqueeze(1)
    local B, H = xb:size(1), self.hidden_size
    local want = batched and { B, H } or { H }
    h = check_state(self, "h", h, want, x)
    c = lstm and check_state(self, "c", c, want, x) or nil
    local dt = { dtype = x:dtype() }
    h = h and (batched and h or h:unsqueeze(1)) or lg.zeros({ B, H }, dt)
    if lstm then
      c = c and (batched and c or c:unsqueeze(1)) or lg.zeros({ B, H }, dt)
    end
    local res = rnn_layer(self._mode, xb:unsqueeze(1), h, c, self.weight_ih,
      self.weight_hh, self.bias_ih, self.bias_hh, nil, false)
    local h1 = res:select(1, 2)
    local c1 = lstm and res:select(1, 3) or nil
    if not batched then
      h1 = h1:squeeze(1)
      c1 = c1 and c1:squeeze(1)
    end
    if lstm then return h1, c1 end
    return h1
  end

  --- RNNCell(input_size, hidden_size [, {bias, nonlinearity = "tanh"}])
  define(CellBase, cell_init, "RNNCell")
  --- LSTMCell(input_size, hidden_size [, {bias}]): h, c = cell(x [, h, c])
  define(CellBase, cell_init, "LSTMCell", "lstm")
  --- GRUCell(input_size, hidden_size [, {bias}]): h = cell(x [, h])
  define(CellBase, cell_init, "GRUCell", "gru")
end
