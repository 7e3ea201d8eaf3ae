--- lgrad.nn_layers: more of torch.nn's layers, containers and the loss
-- modules (attached to lg.nn).
--
--   Conv1d(in, out, k [, {stride, padding, dilation, groups, bias}])
--   RMSNorm(shape [, {eps, elementwise_affine}])   GroupNorm(groups, channels
--   [, {eps, affine}])   AdaptiveAvgPool2d(size)   ELU([alpha]) SELU() Mish()
--   Hardtanh([min_val, max_val])   Unflatten(dim, sizes)
--   ModuleDict{name = module, ...}   ParameterList{t1, t2, ...}
--   MSELoss L1Loss CrossEntropyLoss NLLLoss BCELoss BCEWithLogitsLoss
--   HuberLoss SmoothL1Loss KLDivLoss ({reduction, ...} as in lg.F)
--
-- Parameter and buffer names are torch's, so state dicts interchange.

local lg = require "lgrad"
local Fx = require "lgrad.functional"

return function(nn)
  local util = nn._util
  local options, set_of, check_int = util.options, util.set_of,
    util.check_int
  local F = lg.F
  local is_tensor = lg.is_tensor
  local mtype = math.type
  local fmt = string.format

  local function dt_of(opts)
    return opts.dtype and { dtype = opts.dtype } or nil
  end

  ---------------------------------------------------------------------------
  -- Conv1d

  local Conv1d = nn.Module:extend("Conv1d")
  nn.Conv1d = Conv1d

  local conv_opts = set_of { "stride", "padding", "dilation", "groups",
    "bias", "dtype" }

  --- Conv1d(in, out, kernel [, {stride = 1, padding = 0 | "same" |
  -- "valid", dilation = 1, groups = 1, bias = true, dtype}])
  function Conv1d:init(nin, nout, k, opts)
    local fn = "Conv1d"
    check_int(fn, "in_channels", nin)
    check_int(fn, "out_channels", nout)
    check_int(fn, "kernel_size", k)
    opts = options(fn, opts, conv_opts)
    local groups = check_int(fn, "groups", opts.groups or 1)
    self.stride = check_int(fn, "stride", opts.stride or 1)
    self.dilation = check_int(fn, "dilation", opts.dilation or 1)
    local pad = opts.padding or 0
    if pad ~= "same" and pad ~= "valid" then
      check_int(fn, "padding", pad, 0)
    end
    if pad == "same" and self.stride ~= 1 then
      error("Conv1d: padding \"same\" needs stride 1", 3)
    end
    if nin % groups ~= 0 or nout % groups ~= 0 then
      error(fmt("Conv1d: in_channels (%d) and out_channels (%d) must be "
        .. "divisible by groups (%d)", nin, nout, groups), 3)
    end
    self.in_channels, self.out_channels, self.kernel_size = nin, nout, k
    self.padding, self.groups = pad, groups
    self._opts = { stride = self.stride, padding = pad,
      dilation = self.dilation, groups = groups }
    util.weight_and_bias(self, { nout, nin // groups, k }, opts)
    self:reset_parameters()
  end

  Conv1d.reset_parameters = nn.Linear.reset_parameters

  function Conv1d:forward(x)
    if not is_tensor(x) or (x:dim() ~= 3 and x:dim() ~= 2)
        or x:size(-2) ~= self.in_channels then
      error(fmt("Conv1d: input must be (N, %d, L) or (%d, L) (got %s)",
        self.in_channels, self.in_channels, is_tensor(x)
        and "[" .. table.concat(x:shape(), ",") .. "]" or type(x)), 2)
    end
    return Fx.conv1d(x, self.weight, self.bias, self._opts)
  end

  function Conv1d:extra_repr()
    local s = fmt("%d, %d, kernel_size=(%d,), stride=(%d,)", self.in_channels,
      self.out_channels, self.kernel_size, self.stride)
    if self.padding ~= 0 then
      s = s .. ", padding=" .. (type(self.padding) == "string"
        and self.padding or "(" .. self.padding .. ",)")
    end
    if self.dilation ~= 1 then s = s .. ", dilation=(" .. self.dilation .. ",)" end
    if self.groups ~= 1 then s = s .. ", groups=" .. self.groups end
    if self.bias == nil then s = s .. ", bias=False" end
    return s
  end

  ---------------------------------------------------------------------------
  -- norms

  local function shape_list(fname, shape)
    if mtype(shape) == "integer" then shape = { shape } end
    if type(shape) ~= "table" or is_tensor(shape) or #shape == 0 then
      error(fname .. ": normalized_shape must be an integer or a table of "
        .. "sizes", 4)
    end
    for _, s in ipairs(shape) do check_int(fname, "each size", s) end
    return shape
  end

  local RMSNorm = nn.Module:extend("RMSNorm")
  nn.RMSNorm = RMSNorm

  --- RMSNorm(normalized_shape [, {eps, elementwise_affine = true, dtype}]):
  -- eps nil uses the input dtype's machine epsilon, as torch
  function RMSNorm:init(shape, opts)
    opts = options("RMSNorm", opts, set_of { "eps", "elementwise_affine",
      "dtype" })
    self.normalized_shape = shape_list("RMSNorm", shape)
    if opts.eps ~= nil and type(opts.eps) ~= "number" then
      error("RMSNorm: eps must be a number", 3)
    end
    self.eps = opts.eps
    self.elementwise_affine = opts.elementwise_affine ~= false
    if self.elementwise_affine then
      self.weight = nn.Parameter(lg.ones(self.normalized_shape, dt_of(opts)))
    end
    self._opts = { eps = self.eps }
  end

  function RMSNorm:forward(x)
    if not is_tensor(x) then
      error("RMSNorm: input must be a tensor (got " .. type(x) .. ")", 2)
    end
    return Fx.rms_norm(x, self.normalized_shape, self.weight, self._opts)
  end

  function RMSNorm:extra_repr()
    return fmt("(%s,), eps=%s, elementwise_affine=%s",
      table.concat(self.normalized_shape, ", "), tostring(self.eps),
      tostring(self.elementwise_affine))
  end

  local GroupNorm = nn.Module:extend("GroupNorm")
  nn.GroupNorm = GroupNorm

  --- GroupNorm(num_groups, num_channels [, {eps = 1e-5, affine = true, dtype}])
  function GroupNorm:init(G, C, opts)
    check_int("GroupNorm", "num_groups", G)
    check_int("GroupNorm", "num_channels", C)
    opts = options("GroupNorm", opts, set_of { "eps", "affine", "dtype" })
    if C % G ~= 0 then
      error(fmt("GroupNorm: num_channels (%d) must be divisible by "
        .. "num_groups (%d)", C, G), 3)
    end
    self.num_groups, self.num_channels = G, C
    self.eps = opts.eps or 1e-5
    self.affine = opts.affine ~= false
    if self.affine then
      self.weight = nn.Parameter(lg.ones({ C }, dt_of(opts)))
      self.bias = nn.Parameter(lg.zeros({ C }, dt_of(opts)))
    end
    self._opts = { eps = self.eps }
  end

  function GroupNorm:forward(x)
    if not is_tensor(x) or x:dim() < 2 or x:size(2) ~= self.num_channels then
      error(fmt("GroupNorm: input must be (N, %d, ...) (got %s)",
        self.num_channels, is_tensor(x)
        and "[" .. table.concat(x:shape(), ",") .. "]" or type(x)), 2)
    end
    return Fx.group_norm(x, self.num_groups, self.weight, self.bias,
      self._opts)
  end

  function GroupNorm:extra_repr()
    return fmt("%d, %d, eps=%s, affine=%s", self.num_groups,
      self.num_channels, tostring(self.eps), tostring(self.affine))
  end

  ---------------------------------------------------------------------------
  -- pooling, reshaping, activations

  local AdaptiveAvgPool2d = nn.Module:extend("AdaptiveAvgPool2d")
  nn.AdaptiveAvgPool2d = AdaptiveAvgPool2d

  --- AdaptiveAvgPool2d(output_size): n or {h, w}
  function AdaptiveAvgPool2d:init(size)
    if type(size) == "table" then
      size = { size[1], size[2] }
    elseif mtype(size) ~= "integer" then
      error("AdaptiveAvgPool2d: output_size must be an integer or a pair "
        .. "{h, w}", 3)
    end
    self.output_size = size
  end

  function AdaptiveAvgPool2d:forward(x)
    return Fx.adaptive_avg_pool2d(x, self.output_size)
  end

  function AdaptiveAvgPool2d:extra_repr()
    local s = self.output_size
    if type(s) == "table" then
      return fmt("output_size=(%s, %s)", tostring(s[1]), tostring(s[2]))
    end
    return "output_size=" .. s
  end

  local function simple(name, forward, init, repr)
    local cls = nn.Module:extend(name)
    cls.forward = forward
    if init then cls.init = init end
    if repr then cls.extra_repr = repr end
    nn[name] = cls
    return cls
  end

  --- ELU([alpha = 1]) (or {alpha})
  simple("ELU", function(self, x) return Fx.elu(x, self.alpha) end,
    function(self, a)
      if type(a) == "table" then a = options("ELU", a, set_of { "alpha" }).alpha end
      if a ~= nil and type(a) ~= "number" then
        error("ELU: alpha must be a number", 3)
      end
      self.alpha = a or 1.0
    end,
    function(self) return "alpha=" .. self.alpha end)
  simple("SELU", function(_, x) return Fx.selu(x) end)
  simple("Mish", function(_, x) return Fx.mish(x) end)
  --- Hardtanh([min_val = -1, max_val = 1]) (or {min_val, max_val})
  simple("Hardtanh", function(self, x)
      return Fx.hardtanh(x, self.min_val, self.max_val)
    end,
    function(self, lo, hi)
      if type(lo) == "table" then
        local o = options("Hardtanh", lo, set_of { "min_val", "max_val" })
        lo, hi = o.min_val, o.max_val
      end
      lo, hi = lo or -1.0, hi or 1.0
      if type(lo) ~= "number" or type(hi) ~= "number" or lo > hi then
        error("Hardtanh: min_val and max_val must be numbers with min_val "
          .. "<= max_val", 3)
      end
      self.min_val, self.max_val = lo, hi
    end,
    function(self) return fmt("min_val=%s, max_val=%s", self.min_val, self.max_val) end)

  local Unflatten = nn.Module:extend("Unflatten")
  nn.Unflatten = Unflatten

  --- Unflatten(dim, sizes): dim (1-based, negative from the end) becomes
  -- the sizes (one of them may be -1)
  function Unflatten:init(dim, sizes)
    if mtype(dim) ~= "integer" or dim == 0 then
      error("Unflatten: dim must be a non-zero integer", 3)
    end
    if type(sizes) ~= "table" or is_tensor(sizes) or #sizes == 0 then
      error("Unflatten: sizes must be a list of integers", 3)
    end
    for _, s in ipairs(sizes) do
      if mtype(s) ~= "integer" or (s < 1 and s ~= -1) then
        error("Unflatten: sizes must be positive integers (or one -1)", 3)
      end
    end
    self.dim, self.unflattened_size = dim, sizes
  end

  function Unflatten:forward(x)
    if not is_tensor(x) then
      error("Unflatten: input must be a tensor (got " .. type(x) .. ")", 2)
    end
    local shape, n = x:shape(), x:dim()
    local d = self.dim < 0 and n + 1 + self.dim or self.dim
    if d < 1 or d > n then
      error(fmt("Unflatten: dim %d is out of range for the input [%s]",
        self.dim, table.concat(shape, ",")), 2)
    end
    local out = {}
    for i = 1, d - 1 do out[#out + 1] = shape[i] end
    for _, s in ipairs(self.unflattened_size) do out[#out + 1] = s end
    for i = d + 1, n do out[#out + 1] = shape[i] end
    local ok, y = pcall(x.reshape, x, out)
    if not ok then
      error(fmt("Unflatten: cannot unflatten dim %d (size %d) of the input "
        .. "[%s] into [%s]", self.dim, shape[d], table.concat(shape, ","),
        table.concat(self.unflattened_size, ",")), 2)
    end
    return y
  end

  function Unflatten:extra_repr()
    return fmt("dim=%d, unflattened_size=(%s)", self.dim,
      table.concat(self.unflattened_size, ", "))
  end

  ---------------------------------------------------------------------------
  -- containers

  local ModuleDict = nn.Module:extend("ModuleDict")
  nn.ModuleDict = ModuleDict

  --- ModuleDict{name = module, ...} (names sorted, as a Lua table has no
  -- order) or ModuleDict{{name, module}, ...} (in that order)
  function ModuleDict:init(mods)
    if mods == nil then return end
    if type(mods) ~= "table" or nn.is_module(mods) then
      error("ModuleDict: expected a table of modules", 3)
    end
    if #mods > 0 then
      for i, pair in ipairs(mods) do
        if type(pair) ~= "table" or type(pair[1]) ~= "string"
            or not nn.is_module(pair[2]) then
          error(fmt("ModuleDict: entry %d must be {name, module}", i), 3)
        end
        self:add_module(pair[1], pair[2])
      end
      return
    end
    local keys = {}
    for k in pairs(mods) do
      if type(k) ~= "string" then
        error("ModuleDict: names must be strings (got " .. type(k) .. ")", 3)
      end
      keys[#keys + 1] = k
    end
    table.sort(keys)
    for _, k in ipairs(keys) do
      if not nn.is_module(mods[k]) then
        error(fmt("ModuleDict: '%s' is not a module (got %s)", k,
          type(mods[k])), 3)
      end
      self:add_module(k, mods[k])
    end
  end

  --- the names, in order
  function ModuleDict:keys()
    local out = {}
    for _, k in ipairs(self._order) do
      if self._kind[k] == "module" then out[#out + 1] = k end
    end
    return out
  end

  --- {name, module} pairs, in order
  function ModuleDict:items()
    local out = {}
    for _, k in ipairs(self:keys()) do out[#out + 1] = { k, rawget(self, k) } end
    return out
  end

  function ModuleDict:values()
    local out = {}
    for _, k in ipairs(self:keys()) do out[#out + 1] = rawget(self, k) end
    return out
  end

  function ModuleDict.__len(self) return #self:keys() end

  function ModuleDict.forward()
    error("ModuleDict: has no forward; call its modules", 2)
  end

  local ParameterList = nn.Module:extend("ParameterList")
  nn.ParameterList = ParameterList

  --- ParameterList{t1, t2, ...}: parameters named "0", "1", ... (p[1] is
  -- the first), as torch.nn.ParameterList
  function ParameterList:init(list)
    rawset(self, "_n", 0)
    if list == nil then return end
    if type(list) ~= "table" or is_tensor(list) then
      error("ParameterList: expected a list of tensors", 3)
    end
    for i, t in ipairs(list) do
      if not is_tensor(t) then
        error(fmt("ParameterList: element %d is not a tensor (got %s)", i,
          type(t)), 3)
      end
      self:append(t)
    end
  end

  --- Appends a tensor (made a parameter); returns the list.
  function ParameterList:append(t)
    if not is_tensor(t) then
      error("ParameterList:append: expected a tensor (got " .. type(t) .. ")",
        2)
    end
    local n = self._n
    self:register_parameter(tostring(n), nn.Parameter(t))
    rawset(self, "_n", n + 1)
    return self
  end

  function ParameterList.__index(self, k)
    if mtype(k) == "integer" then
      if k < 1 or k > rawget(self, "_n") then return nil end
      return rawget(self, tostring(k - 1))
    end
    return ParameterList[k]
  end

  function ParameterList.__len(self) return self._n end

  function ParameterList.forward()
    error("ParameterList: has no forward; use its parameters", 2)
  end

  ---------------------------------------------------------------------------
  -- loss modules: options as lg.F's; weight tensors are buffers, as torch's

  local function loss(name, fname, keys, positional, buffers)
    local cls = nn.Module:extend(name)
    nn[name] = cls
    local allowed = set_of(keys)
    function cls:init(opts)
      if positional and type(opts) == "number" then
        opts = { [positional] = opts }
      end
      opts = options(name, opts, allowed)
      local o = {}
      for k, v in pairs(opts) do
        if (buffers or {})[k] then
          if not is_tensor(v) then
            error(fmt("%s: %s must be a tensor (got %s)", name, k, type(v)), 3)
          end
          self:register_buffer(k, v)
        else
          o[k] = v
          self[k] = v
        end
      end
      self.reduction = opts.reduction or "mean"
      rawset(self, "_opts", o)
    end
    function cls:forward(input, target)
      local o = self._opts
      for k in pairs(buffers or {}) do o[k] = rawget(self, k) end
      return F[fname](input, target, o)
    end
    return cls
  end

  loss("MSELoss", "mse_loss", { "reduction" })
  loss("L1Loss", "l1_loss", { "reduction" })
  loss("CrossEntropyLoss", "cross_entropy",
    { "weight", "ignore_index", "reduction", "label_smoothing" }, nil,
    { weight = true })
  loss("NLLLoss", "nll_loss", { "weight", "ignore_index", "reduction" }, nil,
    { weight = true })
  loss("BCELoss", "binary_cross_entropy", { "weight", "reduction" }, nil,
    { weight = true })
  loss("BCEWithLogitsLoss", "bce_with_logits",
    { "weight", "pos_weight", "reduction" }, nil,
    { weight = true, pos_weight = true })
  loss("HuberLoss", "huber_loss", { "delta", "reduction" }, "delta")
  loss("SmoothL1Loss", "smooth_l1_loss", { "beta", "reduction" }, "beta")
  loss("KLDivLoss", "kl_div", { "reduction", "log_target" })
end
