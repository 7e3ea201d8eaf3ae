--- lgrad.privacy: per-sample gradients, DP-SGD and its privacy accountant
-- (lg.privacy), the way Opacus users know them.
--
--   local engine = lg.privacy.PrivacyEngine()
--   model, opt, loader = engine:make_private{model = model,
--     optimizer = opt, data_loader = loader, noise_multiplier = 1.1,
--     max_grad_norm = 1.0}
--   for xb, yb in loader:iter() do        -- Poisson-sampled batches
--     opt:zero_grad()
--     lg.F.cross_entropy(model(xb), yb):backward()   -- mean loss
--     opt:step()                          -- clip, sum, noise, step
--   end
--   print(engine:get_epsilon(1e-5))
--
-- Per-sample gradients come from one backward pass: a forward hook on each
-- layer with parameters keeps the layer's input and its output, the output
-- retains its gradient, and a rule per layer type (Opacus's grad-sample
-- rules) turns (input, output gradient) into one gradient per sample:
--   Linear     gW[b] = sum over positions of g[b]^T x[b], gb[b] = sum g[b]
--   Conv2d     the input unfolded (im2col) per sample, then as Linear
--   Embedding  output gradients added into the rows the sample used
--   LayerNorm  gW[b] = sum of normalized input * g[b], gb[b] = sum g[b]
-- A layer with trainable parameters and no rule is an error naming it.
--
-- The accountant is the Renyi DP of the sampled Gaussian mechanism
-- (Mironov, Talwar and Zhang 2019), over Opacus's default orders, turned
-- into (epsilon, delta) by Opacus's conversion (Balle et al. 2020).

local lg = require "lgrad"
local nn = require "lgrad.nn"
local data = require "lgrad.data"

local M = {}

local F = lg.F
local fmt = string.format
local is_tensor = lg.is_tensor
local log, exp, sqrt, huge = math.log, math.exp, math.sqrt, math.huge

local SUPPORTED = "Linear, Conv2d, Embedding, LayerNorm"

---------------------------------------------------------------------------
-- per-sample gradient rules: rule(module, input, output_grad) returns
-- {param name = (B, shape of the parameter) tensor}

local rules = {}
M.rules = rules
-- classes whose rule needs dropout 0: class -> fn(module) true when not
local needs_no_dropout = {}
-- rules that work from any output's gradient (loop_rule's)
local any_output = setmetatable({}, { __mode = "k" })

-- (B, ..., n) -> (B, T, n)
local function rows3(t)
  return t:reshape(t:size(1), -1, t:size(-1))
end

rules[nn.Linear] = function(m, x, g)
  local x3, g3 = rows3(x), rows3(g)
  local r = { weight = lg.matmul(g3:transpose(2, 3), x3) }
  if m.bias then r.bias = g3:sum(2) end
  return r
end

-- the flat positions (1-based) of im2col in a padded (Hp, Wp) plane:
-- (kh * kw * OH * OW), kernel offset major, cached per geometry
local im2col_cache = setmetatable({}, { __mode = "v" })
local function im2col_index(hp, wp, k, s, d, oh, ow)
  local key = table.concat({ hp, wp, k[1], k[2], s[1], s[2], d[1], d[2] },
    ",")
  local idx = im2col_cache[key]
  if idx then return idx end
  local list, n = {}, 0
  for ki = 0, k[1] - 1 do
    for kj = 0, k[2] - 1 do
      for i = 0, oh - 1 do
        local row = (i * s[1] + ki * d[1]) * wp
        for j = 0, ow - 1 do
          n = n + 1
          list[n] = row + j * s[2] + kj * d[2] + 1
        end
      end
    end
  end
  idx = lg.tensor(list, { dtype = lg.int64 })
  im2col_cache[key] = idx
  return idx
end

rules[nn.Conv2d] = function(m, x, g)
  local B, C, H, W = x:size(1), x:size(2), x:size(3), x:size(4)
  local p, k = m.padding, m.kernel_size
  local xp = x
  if p[1] > 0 or p[2] > 0 then
    xp = lg.zeros({ B, C, H + 2 * p[1], W + 2 * p[2] }, { dtype = x:dtype() })
    xp:narrow(3, p[1] + 1, H):narrow(4, p[2] + 1, W):copy_(x)
  end
  local O, oh, ow = g:size(2), g:size(3), g:size(4)
  local hp, wp = xp:size(3), xp:size(4)
  local idx = im2col_index(hp, wp, k, m.stride, m.dilation, oh, ow)
  local kk, L = k[1] * k[2], oh * ow
  -- (B, C, K * L) -> (B, C * K, L): channel major, then kernel offset
  local cols = xp:reshape(B, C, hp * wp):index_select(3, idx)
    :reshape(B, C * kk, L)
  local g3 = g:reshape(B, O, L)
  local G = m.groups
  local cg, og = C // G, O // G
  local parts = {}
  for gi = 0, G - 1 do
    parts[gi + 1] = lg.matmul(g3:narrow(2, gi * og + 1, og),
      cols:narrow(2, gi * cg * kk + 1, cg * kk):transpose(2, 3))
  end
  local gw = G == 1 and parts[1] or lg.cat(parts, 2)
  local r = { weight = gw:reshape(B, O, cg, k[1], k[2]) }
  if m.bias then r.bias = g3:sum(3) end
  return r
end

rules[nn.Embedding] = function(m, idx, g)
  local B, N, D = idx:size(1), m.num_embeddings, m.embedding_dim
  local flat = idx:reshape(B, -1)
  local T = flat:size(2)
  -- row b * N + idx of a (B * N, D) table, for sample b
  local rows = (lg.range(0, B - 1):view(B, 1) * N + flat):reshape(B * T)
  local gw = lg.index_add(lg.zeros({ B * N, D }, { dtype = g:dtype() }), 1,
    rows, g:reshape(B * T, D)):reshape(B, N, D)
  if m.padding_idx then gw:select(2, m.padding_idx):zero_() end
  return { weight = gw }
end

rules[nn.LayerNorm] = function(m, x, g)
  local shape = m.normalized_shape
  local B = x:size(1)
  local flat = { B, -1 }
  for i = 1, #shape do flat[i + 2] = shape[i] end
  local r = {}
  if m.weight then
    local xhat = F.layer_norm(x, shape, nil, nil, { eps = m.eps })
    r.weight = (xhat * g):reshape(flat):sum(2)
  end
  if m.bias then r.bias = g:reshape(flat):sum(2) end
  return r
end


---------------------------------------------------------------------------
-- layers, hooks and the one backward pass

-- a module's own parameters that require grad: list of {name, p}
local function own_params(m)
  local list = {}
  for name, p in pairs(m:named_parameters()) do
    if not name:find(".", 1, true) and p.requires_grad then
      list[#list + 1] = { name, p }
    end
  end
  return list
end

-- the layers of model that hold trainable parameters, each with its rule;
-- a layer without a rule is an error of fname naming it
local function layers_of(fname, model)
  if not nn.is_module(model) then
    error(fmt("%s: model must be an lg.nn module (got %s)", fname,
      type(model)), 3)
  end
  local layers = {}
  for path, m in pairs(model:named_modules()) do
    local own = own_params(m)
    if #own > 0 then
      local rule = rules[getmetatable(m)]
      if not rule then
        local names = {}
        for i, e in ipairs(own) do names[i] = e[1] end
        error(fmt("%s: no per-sample gradient rule for %s '%s' (parameters "
          .. "%s); supported layers: %s", fname, tostring(m.__name),
          path == "" and "(the model)" or path, table.concat(names, ", "),
          SUPPORTED), 3)
      end
      local nd = needs_no_dropout[getmetatable(m)]
      if nd and nd(m) then
        error(fmt("%s: per-sample gradients of %s '%s' need its dropout to "
          .. "be 0 (each sample's second run would draw other masks)",
          fname, tostring(m.__name), path == "" and "(the model)" or path), 3)
      end
      layers[#layers + 1] = { module = m, rule = rule, params = own,
        calls = {} }
    end
  end
  return layers
end

-- hooks keeping each call's arguments and the outputs that are part of a
-- graph: call = {x = first argument, args = {...}, outs = {[k] = k-th
-- output}}; retain: the outputs keep their gradient for a later backward
local suspended = false -- set while a loop rule runs a layer again

local function attach(layers, retain, training_only)
  for _, L in ipairs(layers) do
    L.handle = L.module:register_forward_hook(function(m, args, ...)
      if suspended or (training_only and not m.training) then return end
      local res = table.pack(...)
      local outs, any = {}, false
      for k = 1, res.n do
        local o = res[k]
        if is_tensor(o) and o.requires_grad then
          if retain then o:retain_grad() end
          outs[k], any = o, true
        end
      end
      if any then
        local calls = L.calls
        calls[#calls + 1] = { x = args[1], args = args, outs = outs }
      end
    end)
  end
end

-- per-sample gradients by parameter from the layers' calls: grad_of(li,
-- i, call) gives the gradients of layer li's call i's outputs ({[k] =
-- gradient}, or nil), scale multiplies them.  A rule is called as
-- rule(module, x, g, call, grads): g is the first output's gradient
local function collect(layers, grad_of, scale)
  local acc = {}
  local prev = lg.set_grad_enabled(false)
  local ok, err = pcall(function()
    for li, L in ipairs(layers) do
      for i, call in ipairs(L.calls) do
        local gs = grad_of(li, i, call)
        -- closed forms need the first output's gradient, loop rules any
        if gs and (gs[1] or (any_output[L.rule] and next(gs))) then
          local scaled = {}
          for k, gk in pairs(gs) do
            scaled[k] = scale ~= 1 and gk * scale or gk
          end
          local r = L.rule(L.module, call.x, scaled[1], call, scaled)
          for _, e in ipairs(L.params) do
            local per = r[e[1]]
            if per then
              local p = e[2]
              acc[p] = acc[p] and acc[p] + per or per
            end
          end
        end
      end
    end
  end)
  lg.set_grad_enabled(prev)
  if not ok then error(err, 0) end
  return acc
end

--- Adds a per-sample rule for a module class: fn(module, input,
-- output_grad, call, grads) returns {param name = (B, shape) tensor} for
-- the module's own parameters (call.args: the call's arguments, grads:
-- {[k] = gradient of its k-th output}).
function M.register_rule(cls, fn)
  if type(cls) ~= "table" or type(fn) ~= "function" then
    error("register_rule: expected a module class and a function", 2)
  end
  rules[cls] = fn
end

-- arguments of sample b: each tensor argument narrowed to b on dim 1
local function slice_dim1(_, args, b)
  local out = { n = args.n }
  for i = 1, args.n do
    local a = args[i]
    out[i] = is_tensor(a) and a:dim() > 0 and a:narrow(1, b, 1) or a
  end
  return out
end

local function dim1() return 1 end

--- A rule for any layer whose samples do not interact (no BatchNorm
-- inside, no randomness in its forward): the layer runs again on each
-- sample's arguments alone (slice(module, args, b), default: tensors
-- narrowed on dim 1) and its own parameters are differentiated against
-- that sample's output gradients (output k's batch dimension is
-- out_dim(module, k), default 1).  B small backward passes through this
-- layer only; the rest of the model still runs once.
function M.loop_rule(slice, out_dim)
  slice, out_dim = slice or slice_dim1, out_dim or dim1
  local function rule(m, _, _, call, grads)
    local own = own_params(m)
    local params = {}
    for i, e in ipairs(own) do params[i] = e[2] end
    local k1, o1 = next(call.outs)
    local B = o1:size(out_dim(m, k1))
    local per = {}
    for i = 1, #params do per[i] = {} end
    suspended = true
    local ok, err = pcall(lg.enable_grad, function()
      for b = 1, B do
        local args = slice(m, call.args, b)
        local res = table.pack(m:forward(table.unpack(args, 1, args.n)))
        local total
        for k, g in pairs(grads) do
          local o = res[k]
          local term = (o * g:narrow(out_dim(m, k), b, 1):reshape(o:shape()))
            :sum()
          total = total and total + term or term
        end
        local gs = lg.grad(total, params, { allow_unused = true })
        for i, p in ipairs(params) do
          per[i][b] = gs[i] or lg.zeros(p:shape(), { dtype = p:dtype() })
        end
      end
    end)
    suspended = false
    if not ok then error(err, 0) end
    local r = {}
    for i, e in ipairs(own) do r[e[1]] = lg.stack(per[i], 1) end
    return r
  end
  any_output[rule] = true
  return rule
end

-- narrows each tensor argument i to sample b on dim_of(i) (nil: passed
-- whole); the same tensor twice gives the same slice (self-attention)
local function slice_by(args, b, dim_of)
  local out, seen = { n = args.n }, {}
  for i = 1, args.n do
    local a = args[i]
    local d = is_tensor(a) and a:dim() > 0 and dim_of(i, a)
    if d then
      seen[a] = seen[a] or a:narrow(d, b, 1)
      out[i] = seen[a]
    else
      out[i] = a
    end
  end
  return out
end

-- an options argument (a plain table) with its per-sample tensors
-- narrowed: fields[name] = the batch dimension of that field
local function slice_opts(out, b, fields)
  for i = 1, out.n do
    local o = out[i]
    if type(o) == "table" and not is_tensor(o) then
      local c = {}
      for k, v in pairs(o) do
        local d = fields[k]
        c[k] = (d and is_tensor(v)) and v:narrow(d, b, 1) or v
      end
      out[i] = c
    end
  end
  return out
end

-- layers defined elsewhere in lg.nn that have no closed form here: the
-- recurrent layers (one fused op per layer and direction: the gates'
-- gradients of each step are not seen from outside) and attention's input
-- projections run again per sample (loop_rule); their dropout must be 0
-- (a second run would draw other masks)
if nn.RNNBase then
  local function rnn_slice(m, args, b)
    return slice_opts(slice_by(args, b, function(i)
      if i == 1 then return m.batch_first and 1 or 2 end
      return 2 -- h0, c0: (L * D, B, H)
    end), b, { lengths = 1 })
  end
  local function rnn_out_dim(m, k)
    if k == 1 then return m.batch_first and 1 or 2 end
    return 2
  end
  for _, name in ipairs { "RNN", "LSTM", "GRU" } do
    if nn[name] then
      rules[nn[name]] = M.loop_rule(rnn_slice, rnn_out_dim)
      needs_no_dropout[nn[name]] = function(m)
        return m.num_layers > 1 and m.dropout > 0
      end
      SUPPORTED = SUPPORTED .. ", " .. name
    end
  end
end
if nn.MultiheadAttention then
  local MHA = nn.MultiheadAttention
  local function mha_slice(m, args, b)
    local out = slice_opts(slice_by(args, b, function(i)
      if i <= 3 then return m.batch_first and 1 or 2 end -- query, key, value
    end), b, { key_padding_mask = 1 })
    local H = m.num_heads
    for i = 4, out.n do
      local o = out[i]
      -- a (B * H, T, S) mask: sample b's H rows
      if type(o) == "table" and not is_tensor(o) and is_tensor(o.attn_mask)
          and o.attn_mask:dim() == 3 then
        o.attn_mask = o.attn_mask:narrow(1, (b - 1) * H + 1, H)
      end
    end
    return out
  end
  rules[MHA] = M.loop_rule(mha_slice, function(m, k)
    if k == 1 then return m.batch_first and 1 or 2 end
    return 1 -- the attention weights, (B, ...)
  end)
  needs_no_dropout[MHA] = function(m) return m.dropout > 0 end
  SUPPORTED = SUPPORTED .. ", MultiheadAttention"
end

-- the factor from the batch loss's output gradients to each sample's
-- own: 1 when loss_fn sums over the batch, B when it averages.  Told by
-- opts.loss_reduction, else measured: the loss of the batch taken twice
-- is twice the loss for a sum and the same loss for a mean
local function reduction_scale(fname, loss_fn, out, y, loss, B, reduction)
  if reduction == "sum" then return 1 end
  if reduction == "mean" then return B end
  if reduction ~= nil then
    error(fmt("%s: loss_reduction must be \"mean\" or \"sum\" (got %s)",
      fname, tostring(reduction)), 3)
  end
  if B <= 1 or not is_tensor(y) then return B end
  local l1 = loss:item()
  local l2 = lg.no_grad(function()
    local o = out:detach()
    return loss_fn(lg.cat({ o, o }, 1), lg.cat({ y, y }, 1)):item()
  end)
  local dsum, dmean = math.abs(l2 - 2 * l1), math.abs(l2 - l1)
  local tol = 1e-3 * math.max(math.abs(l1), 1e-30)
  if dmean <= dsum and dmean <= tol then return B end
  if dsum < dmean and dsum <= tol then return 1 end
  error(fmt("%s: loss_fn must return the sum or the mean of per-sample "
    .. "losses (the batch taken twice gave %.6g against %.6g; pass "
    .. "loss_reduction)", fname, l2, l1), 3)
end

local MAX_GRAD_OUTPUTS = 64

--- Per-sample gradients: a list parallel to model:parameters(), each
-- (B, shape of p) with slice i the gradient of loss_fn(model(x_i), y_i)
-- (false for a parameter that does not require grad), from one forward
-- and one backward pass.  loss_fn returns the sum or the mean over the
-- batch (measured, or opts.loss_reduction = "mean" | "sum").  Parameters'
-- .grad are left as they were.
function M.per_sample_grads(model, loss_fn, x, y, opts)
  local fname = "per_sample_grads"
  if type(loss_fn) ~= "function" then
    error(fname .. ": loss_fn must be a function (output, target) -> loss",
      2)
  end
  opts = opts or {}
  local layers = layers_of(fname, model)
  local params = model:parameters()
  attach(layers, false, false)
  local ok, out, loss = pcall(function()
    return lg.enable_grad(function()
      local o = model(x)
      return o, loss_fn(o, y)
    end)
  end)
  for _, L in ipairs(layers) do
    L.handle.remove()
    L.handle = nil
  end
  if not ok then error(out, 0) end
  if not is_tensor(out) or out:dim() == 0 then
    error(fname .. ": the model must return a tensor with a batch "
      .. "dimension", 2)
  end
  if not is_tensor(loss) or loss:numel() ~= 1 then
    error(fname .. ": loss_fn must return a one-element tensor", 2)
  end
  local B = out:size(1)
  local scale = reduction_scale(fname, loss_fn, out, y, loss, B,
    opts.loss_reduction)
  local outs, where = {}, {}
  for li, L in ipairs(layers) do
    for i, call in ipairs(L.calls) do
      for k, o in pairs(call.outs) do
        outs[#outs + 1] = o
        where[#outs] = { li, i, k }
      end
    end
  end
  local grads = {}
  local function put(w, g)
    grads[w[1]] = grads[w[1]] or {}
    local byk = grads[w[1]][w[2]] or {}
    grads[w[1]][w[2]] = byk
    byk[w[3]] = g
  end
  if #outs > 0 and #outs <= MAX_GRAD_OUTPUTS then
    local gs = lg.grad(loss, outs, { allow_unused = true })
    for k, w in ipairs(where) do put(w, gs[k]) end
  elseif #outs > 0 then
    -- more calls than lg.grad takes: the outputs retain their gradients
    -- through one backward, the parameters' .grad are put back after it
    local saved = {}
    for i, p in ipairs(params) do
      saved[i] = p.grad or false
      p.grad = nil   -- backward may accumulate into a .grad in place
    end
    for _, o in ipairs(outs) do o:retain_grad() end
    local bok, berr = pcall(loss.backward, loss)
    for i, p in ipairs(params) do p.grad = saved[i] or nil end
    if not bok then error(berr, 0) end
    for k, w in ipairs(where) do put(w, outs[k].grad) end
  end
  local acc = collect(layers, function(li, i)
    return grads[li] and grads[li][i]
  end, scale)
  for _, L in ipairs(layers) do L.calls = {} end
  local res = {}
  for i, p in ipairs(params) do
    if not p.requires_grad then
      res[i] = false
    else
      local gs = acc[p]
      if not gs then
        local shape = p:shape()
        table.insert(shape, 1, B)
        gs = lg.zeros(shape, { dtype = p:dtype() })
      end
      res[i] = gs
    end
  end
  return res
end

---------------------------------------------------------------------------
-- Renyi DP of the sampled Gaussian mechanism

-- log(1 + x) without losing x when it is tiny
local function log1p(x)
  local u = 1 + x
  if u == 1 then return x end
  return log(u) * x / (u - 1)
end

-- log(exp(a) + exp(b)) and log(exp(a) - exp(b)) (a >= b)
local function log_add(a, b)
  if a < b then a, b = b, a end
  if b == -huge then return a end
  return log1p(exp(b - a)) + a
end

local function expm1(x)
  if math.abs(x) < 1e-5 then return x + x * x / 2 + x * x * x / 6 end
  return exp(x) - 1
end

local function log_sub(a, b)
  if a < b then
    error("RDPAccountant: log_sub of a larger number (internal error)", 0)
  end
  if b == -huge then return a end
  if a == b then return -huge end
  local d = expm1(a - b)
  if d == huge then return a end
  return log(d) + b
end

local SQRT_PI = sqrt(math.pi)

-- erfc(x) for 0 <= x < 3 (1 - erf by a series of positive terms) and
-- log erfc(x) for x >= 3 (a continued fraction, modified Lentz)
local function erfc_small(x)
  local x2 = x * x
  local term, sum, n = x, x, 0
  repeat
    n = n + 1
    term = term * 2 * x2 / (2 * n + 1)
    sum = sum + term
  until term <= 1e-17 * sum -- x = 0: the first term is 0
  return 1 - 2 / SQRT_PI * exp(-x2) * sum
end

local function log_erfc_large(x)
  -- past 1e8 the continued fraction is x itself to double precision
  if x > 1e8 then return -x * x - log(SQRT_PI) - log(x) end
  local tiny = 1e-300
  local f, c, d = x, x, 0
  for k = 1, 10000 do
    local a = k / 2
    d = x + a * d
    if d == 0 then d = tiny end
    d = 1 / d
    c = x + a / c
    if c == 0 then c = tiny end
    local delta = c * d
    f = f * delta
    if math.abs(delta - 1) < 1e-16 then break end
  end
  return -x * x - log(SQRT_PI) - log(f)
end

local function log_erfc(x)
  if x ~= x then return x end
  if x >= 3 then return log_erfc_large(x) end
  if x >= 0 then return log(erfc_small(x)) end
  if x > -3 then return log(2 - erfc_small(-x)) end
  return log(2 - exp(log_erfc_large(-x)))
end
M._log_erfc = log_erfc

local function log_a_int(q, sigma, alpha)
  local log_a = -huge
  local lq, l1q = log(q), log1p(-q)
  local lc = 0 -- log C(alpha, i), from log C(alpha, i - 1)
  for i = 0, alpha do
    if i > 0 then lc = lc + log((alpha - i + 1) / i) end
    local s = lc + i * lq + (alpha - i) * l1q
      + (i * i - i) / (2 * sigma * sigma)
    log_a = log_add(log_a, s)
  end
  return log_a
end

-- the fractional-order series stops at MAX_TERMS terms with an error
-- (realistic settings need a few thousand; sample rates near 1/2 with
-- noise below 1 need far more, which takes minutes in Opacus too)
local MAX_TERMS = 50000

local function log_a_frac(q, sigma, alpha)
  local a0, a1 = -huge, -huge
  local z0 = sigma * sigma * log(1 / q - 1) + 0.5
  local lq, l1q = log(q), log1p(-q)
  local r2s = sqrt(2) * sigma
  local i, coef = 0, 1
  while true do
    -- binom(alpha, i), from binom(alpha, i - 1)
    if i > 0 then coef = coef * (alpha - i + 1) / i end
    local lc = log(math.abs(coef))
    local j = alpha - i
    local t0 = lc + i * lq + j * l1q
    local t1 = lc + j * lq + i * l1q
    local e0 = log(0.5) + log_erfc((i - z0) / r2s)
    local e1 = log(0.5) + log_erfc((z0 - j) / r2s)
    local s0 = t0 + (i * i - i) / (2 * sigma * sigma) + e0
    local s1 = t1 + (j * j - j) / (2 * sigma * sigma) + e1
    if coef > 0 then
      a0, a1 = log_add(a0, s0), log_add(a1, s1)
    else
      a0, a1 = log_sub(a0, s0), log_sub(a1, s1)
    end
    i = i + 1
    if math.max(s0, s1) < -30 then break end
    if s0 ~= s0 or s1 ~= s1 then
      error(fmt("rdp: the series at order %g is not a number (sample_rate "
        .. "%g, noise_multiplier %g)", alpha, q, sigma), 0)
    end
    if i >= MAX_TERMS then
      error(fmt("rdp: the series at order %g did not converge in %d terms "
        .. "(sample_rate %g, noise_multiplier %g)", alpha, MAX_TERMS, q,
        sigma), 0)
    end
  end
  return log_add(a0, a1)
end

local MAX_ORDER = 10000

--- The RDP of one step of the sampled Gaussian mechanism at order alpha.
function M.rdp(q, sigma, alpha)
  if type(q) ~= "number" or not (q >= 0 and q <= 1) then
    error("rdp: sample_rate must be in [0, 1] (got " .. tostring(q) .. ")", 2)
  end
  if type(sigma) ~= "number" or sigma ~= sigma or sigma < 0 then
    error("rdp: noise_multiplier must be a number >= 0 (got "
      .. tostring(sigma) .. ")", 2)
  end
  if type(alpha) ~= "number" or alpha ~= alpha or alpha <= 1
      or (alpha > MAX_ORDER and alpha ~= huge) then
    error(fmt("rdp: the order alpha must be a number in (1, %d] (got %s)",
      MAX_ORDER, tostring(alpha)), 2)
  end
  if q == 0 then return 0 end
  if sigma == 0 then return huge end
  if q == 1 then return alpha / (2 * sigma * sigma) end
  if alpha == huge then return huge end
  local la
  if alpha == math.floor(alpha) then
    la = log_a_int(q, sigma, math.tointeger(alpha))
  else
    la = log_a_frac(q, sigma, alpha)
  end
  return la / (alpha - 1)
end

--- Opacus's default orders: 1.1, 1.2, ..., 10.9, then 12, ..., 63.
local ORDERS = {}
for x = 1, 99 do ORDERS[#ORDERS + 1] = 1 + x / 10.0 end
for a = 12, 63 do ORDERS[#ORDERS + 1] = a + 0.0 end
M.DEFAULT_ORDERS = ORDERS

local function check_delta(fname, delta)
  if type(delta) ~= "number" or not (delta > 0 and delta < 1) then
    error(fmt("%s: delta must be a number in (0, 1) (got %s)", fname,
      tostring(delta)), 3)
  end
end

local function check_rate(fname, q)
  if type(q) ~= "number" or not (q > 0 and q <= 1) then
    error(fmt("%s: sample_rate must be in (0, 1] (got %s)", fname,
      tostring(q)), 3)
  end
end

local function check_noise(fname, sigma)
  if type(sigma) ~= "number" or sigma ~= sigma or sigma < 0 or sigma == huge then
    error(fmt("%s: noise_multiplier must be a finite number >= 0 (got %s)",
      fname, tostring(sigma)), 3)
  end
end

-- one step's RDP at each default order, by "sigma|q" (a few hundred
-- entries at most: a run has a handful of settings)
local rdp_cache, rdp_cached = {}, 0
local function rdp_vector(sigma, q, orders)
  local key = fmt("%.17g|%.17g", sigma, q)
  local v = orders == ORDERS and rdp_cache[key]
  if v then return v end
  v = {}
  for i, a in ipairs(orders) do v[i] = M.rdp(q, sigma, a) end
  if orders == ORDERS then
    if rdp_cached >= 512 then rdp_cache, rdp_cached = {}, 0 end
    rdp_cache[key], rdp_cached = v, rdp_cached + 1
  end
  return v
end

-- epsilon and the best order for history {{sigma, q, steps}...}
local function privacy_spent(history, delta, orders)
  orders = orders or ORDERS
  local vecs = {}
  for k, h in ipairs(history) do vecs[k] = rdp_vector(h[1], h[2], orders) end
  local best, best_alpha = huge, nil
  for i, a in ipairs(orders) do
    local r = 0
    for k, h in ipairs(history) do r = r + vecs[k][i] * h[3] end
    local eps = r - (log(delta) + log(a)) / (a - 1) + log((a - 1) / a)
    if eps == eps and eps < best then best, best_alpha = eps, a end
  end
  return best, best_alpha
end

local RDPAccountant = {}
RDPAccountant.__index = RDPAccountant
RDPAccountant.__name = "lgrad.privacy.RDPAccountant"

--- An accountant: acct:step{noise_multiplier, sample_rate} once per step,
-- acct:get_epsilon(delta) returns epsilon and the best order.
function M.RDPAccountant()
  return setmetatable({ history = {} }, RDPAccountant)
end

function RDPAccountant:step(o)
  if type(o) ~= "table" then
    error("RDPAccountant:step: expected {noise_multiplier, sample_rate}", 2)
  end
  check_noise("RDPAccountant:step", o.noise_multiplier)
  check_rate("RDPAccountant:step", o.sample_rate)
  local n = o.steps or 1
  if math.type(n) ~= "integer" or n < 0 then
    error("RDPAccountant:step: steps must be a non-negative integer", 2)
  end
  local h = self.history
  local last = h[#h]
  if last and last[1] == o.noise_multiplier and last[2] == o.sample_rate then
    last[3] = last[3] + n
  else
    h[#h + 1] = { o.noise_multiplier, o.sample_rate, n }
  end
end

--- Epsilon spent so far at delta (and the order that gave it).
function RDPAccountant:get_epsilon(delta, orders)
  check_delta("RDPAccountant:get_epsilon", delta)
  if #self.history == 0 then return 0, nil end
  return privacy_spent(self.history, delta, orders)
end

--- The number of steps taken.
function RDPAccountant:__len()
  local n = 0
  for _, h in ipairs(self.history) do n = n + h[3] end
  return n
end

function RDPAccountant:state_dict()
  local h = {}
  for i, e in ipairs(self.history) do h[i] = { e[1], e[2], e[3] } end
  return { history = h }
end

function RDPAccountant:load_state_dict(sd)
  if type(sd) ~= "table" or type(sd.history) ~= "table" then
    error("RDPAccountant:load_state_dict: expected {history = {...}}", 2)
  end
  local h = {}
  for i, e in ipairs(sd.history) do h[i] = { e[1], e[2], e[3] } end
  self.history = h
end

local MAX_SIGMA = 1e6

--- The noise multiplier that spends target_epsilon at delta over steps
-- (or epochs / sample_rate steps), as Opacus's get_noise_multiplier:
-- bisection to within epsilon_tolerance (0.01) below the target.
function M.noise_for_epsilon(o)
  local fname = "noise_for_epsilon"
  if type(o) ~= "table" then
    error(fname .. ": expected {target_epsilon, delta, sample_rate, steps}",
      2)
  end
  local target, delta, q = o.target_epsilon, o.delta or o.target_delta,
    o.sample_rate
  if type(target) ~= "number" or target ~= target or target <= 0 then
    error(fmt("%s: target_epsilon must be a positive number (got %s)",
      fname, tostring(target)), 2)
  end
  check_delta(fname, delta)
  check_rate(fname, q)
  local steps = o.steps
  if steps == nil and o.epochs ~= nil then
    steps = math.floor(o.epochs / q)
  end
  if math.type(steps) ~= "integer" or steps < 1 then
    error(fmt("%s: steps (or epochs) must give a positive integer number "
      .. "of steps (got %s)", fname, tostring(steps)), 2)
  end
  local tol = o.epsilon_tolerance or 0.01
  local function eps_at(sigma)
    return (privacy_spent({ { sigma, q, steps } }, delta))
  end
  local lo, hi, eps_hi = 0, 10, huge
  while eps_hi > target do
    hi = 2 * hi
    eps_hi = eps_at(hi)
    if hi > MAX_SIGMA then
      error(fname .. ": the privacy budget is too low (no noise multiplier "
        .. "up to 1e6 reaches it)", 2)
    end
  end
  while target - eps_hi > tol do
    local mid = (lo + hi) / 2
    local e = eps_at(mid)
    if e < target then
      hi, eps_hi = mid, e
    else
      lo = mid
    end
  end
  return hi
end

---------------------------------------------------------------------------
-- DP-SGD: the optimizer, the loader and the engine

local DPOptimizer = {}
DPOptimizer.__name = "lgrad.privacy.DPOptimizer"
DPOptimizer.__index = function(self, k)
  local v = DPOptimizer[k]
  if v ~= nil then return v end
  return rawget(self, "original_optimizer")[k]
end

-- Linear on (B, in) inputs called once needs no per-sample gradient to
-- be clipped (ghost clipping, Li et al. 2021; Opacus's fast gradient
-- clipping): sample b's gradient g_b x_b^T has the norm |g_b| |x_b|, and
-- the clipped sum is one product (f * G)^T X
local ghost = {}
ghost[nn.Linear] = {
  norm2 = function(m, x, g)
    local gg = (g * g):sum(2)
    local s = gg * (x * x):sum(2)
    if m.bias then s = s + gg end
    return s
  end,
  clipped_sum = function(m, x, gf)
    local r = { weight = lg.matmul(gf:t(), x) }
    if m.bias then r.bias = gf:sum(1) end
    return r
  end,
}

local function ghost_of(L)
  local gr = ghost[getmetatable(L.module)]
  if not gr or L.shared or #L.calls ~= 1 then return nil end
  local call = L.calls[1]
  local out = call.outs[1]
  if not is_tensor(call.x) or call.x:dim() ~= 2 or not out or not out.grad
  then
    return nil
  end
  return gr
end

-- the per-sample gradients of the last forward and backward: clipped to
-- max_grad_norm as one flat vector per sample, summed, noised, scaled
function DPOptimizer:_privatize()
  local layers, C = self._layers, self.max_grad_norm
  local B = self._batch
  for _, L in ipairs(layers) do
    local x = L.calls[1] and L.calls[1].x
    if not B and is_tensor(x) and x:dim() > 0 then B = x:size(1) end
  end
  B = B or 0
  local scale = self.loss_reduction == "mean" and B or 1
  local ghosts = {}
  for li, L in ipairs(layers) do ghosts[li] = ghost_of(L) or false end
  local acc = collect(layers, function(li, _, call)
    if ghosts[li] then return nil end
    local gs = {}
    for k, o in pairs(call.outs) do gs[k] = o.grad end
    return gs
  end, scale)
  local std = self.noise_multiplier * C
  local prev = lg.set_grad_enabled(false)
  local ok, err = pcall(function()
    local sq
    local function add(s) sq = sq and sq + s or s end
    for li, gr in ipairs(ghosts) do
      if gr then
        local L = layers[li]
        local x, g = L.calls[1].x, L.calls[1].outs[1].grad
        if scale ~= 1 then g = g * scale end
        L.ghost_g = g
        add(gr.norm2(L.module, x, g))
      end
    end
    for _, p in ipairs(self._params) do
      local gs = acc[p]
      if gs then add((gs * gs):reshape(B, -1):sum(2)) end
    end
    local factor
    if sq then
      factor = (C / (sq:sqrt() + 1e-6)):clamp(0, 1)
      self.last_clip_fraction = factor:lt(1):sum():item() / B
    end
    local sums = {}
    for li, gr in ipairs(ghosts) do
      if gr then
        local L = layers[li]
        local g = L.ghost_g
        L.ghost_g = nil
        local r = gr.clipped_sum(L.module, L.calls[1].x,
          g * factor:to(g:dtype()):view(B, 1))
        for _, e in ipairs(L.params) do sums[e[2]] = r[e[1]] end
      end
    end
    for _, p in ipairs(self._params) do
      local gs = acc[p]
      local g = sums[p]
      if not g and gs and factor then
        local shape = { B }
        for _ = 2, gs:dim() do shape[#shape + 1] = 1 end
        g = (gs * factor:to(gs:dtype()):view(shape)):sum(1)
      elseif not g then
        g = lg.zeros(p:shape(), { dtype = p:dtype() })
      end
      if std > 0 then
        g = g + lg.randn(p:shape(), { dtype = p:dtype(),
          generator = self.generator }) * std
      end
      if self.loss_reduction == "mean" then
        g = g / self.expected_batch_size
      end
      p.grad = g
    end
  end)
  lg.set_grad_enabled(prev)
  for _, L in ipairs(layers) do L.calls = {} end
  if not ok then error(err, 0) end
end

--- One DP-SGD step: privatizes the gradients of the last backward, steps
-- the wrapped optimizer and records the step in the accountant.
function DPOptimizer:step(closure)
  local loss
  if closure then loss = lg.enable_grad(closure) end
  self:_privatize()
  self._batch = nil
  self.original_optimizer:step()
  self.accountant:step { noise_multiplier = self.noise_multiplier,
    sample_rate = self.sample_rate }
  return loss
end

function DPOptimizer:zero_grad()
  for _, L in ipairs(self._layers) do L.calls = {} end
  self._batch = nil
  self.original_optimizer:zero_grad()
end

function DPOptimizer:state_dict()
  return self.original_optimizer:state_dict()
end

function DPOptimizer:load_state_dict(sd)
  return self.original_optimizer:load_state_dict(sd)
end

--- Epsilon spent so far at delta (default: the engine's target delta).
function DPOptimizer:get_epsilon(delta)
  return (self.accountant:get_epsilon(delta or self.target_delta))
end

function DPOptimizer:__tostring()
  return fmt("DPOptimizer(noise_multiplier=%.4g, max_grad_norm=%.4g, "
    .. "expected_batch_size=%d, sample_rate=%.4g)", self.noise_multiplier,
    self.max_grad_norm, self.expected_batch_size, self.sample_rate)
end

--- True for an optimizer made by make_private.
function M.is_private(opt)
  return type(opt) == "table" and getmetatable(opt) == DPOptimizer
end

-- models already hooked by make_private (a second set of hooks would
-- count every call twice)
local private_models = setmetatable({}, { __mode = "k" })

local PrivacyEngine = {}
PrivacyEngine.__index = PrivacyEngine
PrivacyEngine.__name = "lgrad.privacy.PrivacyEngine"

--- An engine holding one RDP accountant (opts.accountant = "rdp").
function M.PrivacyEngine(opts)
  opts = opts or {}
  if opts.accountant ~= nil and opts.accountant ~= "rdp" then
    error("PrivacyEngine: the only accountant is \"rdp\" (got "
      .. tostring(opts.accountant) .. ")", 2)
  end
  return setmetatable({ accountant = M.RDPAccountant() }, PrivacyEngine)
end

local make_keys = {}
for _, k in ipairs { "model", "optimizer", "data_loader", "noise_multiplier",
  "max_grad_norm", "poisson_sampling", "loss_reduction", "generator", "seed",
  "target_delta", "target_epsilon", "epochs", "epsilon_tolerance",
  "batch_first" } do
  make_keys[k] = true
end

-- checks make_private's options; returns the loader's sample rate
local function check_make(fname, o)
  if type(o) ~= "table" then
    error(fname .. ": expected one table of options", 3)
  end
  nn._options(fname, o, make_keys)
  local c = o.max_grad_norm
  if type(c) ~= "number" or c ~= c or c <= 0 or c == huge then
    error(fmt("%s: max_grad_norm must be a finite number > 0 (got %s)",
      fname, tostring(c)), 3)
  end
  local loader = o.data_loader
  if type(loader) ~= "table" or loader.dataset == nil
      or loader.batch_size == nil then
    error(fname .. ": data_loader must be an lg.data.DataLoader", 3)
  end
  if o.optimizer == nil or o.optimizer.step == nil then
    error(fname .. ": optimizer is required", 3)
  end
  if M.is_private(o.optimizer) then
    error(fname .. ": the optimizer is already private", 3)
  end
  local lr = o.loss_reduction or "mean"
  if lr ~= "mean" and lr ~= "sum" then
    error(fmt("%s: loss_reduction must be \"mean\" or \"sum\" (got %s)",
      fname, tostring(lr)), 3)
  end
  local nb = #loader
  local q = loader.sample_rate or (nb > 0 and 1 / nb or huge)
  check_rate(fname, q)
  return q
end

--- Makes model, optimizer and loader private: returns model (hooked),
-- a DP optimizer wrapping optimizer, and a Poisson-sampling loader with
-- sample rate 1 / #data_loader (poisson_sampling = false keeps the
-- loader).  Options: noise_multiplier, max_grad_norm (> 0),
-- loss_reduction ("mean": the loop's loss averages over the batch),
-- batch_first (true: the model's input is (B, ...); false: (T, B, ...)),
-- generator (an lg.Generator for the noise) or seed, target_delta (for
-- the epsilon fit reports; 1e-5).
function PrivacyEngine:make_private(o)
  local fname = "make_private"
  local q = check_make(fname, o)
  check_noise(fname, o.noise_multiplier)
  local model, loader = o.model, o.data_loader
  local layers = layers_of(fname, model)
  if private_models[model] then
    error(fname .. ": the model is already private (make_private was "
      .. "called on it before)", 2)
  end
  local params, owner = {}, {}
  for _, L in ipairs(layers) do
    for _, e in ipairs(L.params) do
      local p = e[2]
      if owner[p] then
        -- a parameter shared by two layers: their per-sample gradients
        -- add up before clipping
        L.shared, owner[p].shared = true, true
      else
        owner[p] = L
        params[#params + 1] = p
      end
    end
  end
  local n = #loader.dataset
  local seed = o.seed
  if seed == nil then seed = lg.randint(0, 0x7FFFFFFF, { 1 }):item() end
  if math.type(seed) ~= "integer" then
    error(fname .. ": seed must be an integer", 2)
  end
  local gen = o.generator or lg.Generator(seed)
  if o.poisson_sampling ~= false and not loader.sample_rate then
    loader = data.DataLoader(loader.dataset, { sample_rate = q,
      steps = #loader, seed = (seed * 31 + 7) & 0x7FFFFFFF })
  end
  attach(layers, true, true)
  private_models[model] = true
  local opt
  -- the batch size of each training forward: the model's input's first
  -- dimension (its second with batch_first = false, as Opacus's option)
  local bdim = o.batch_first == false and 2 or 1
  model:register_forward_hook(function(m, args)
    local x = args[1]
    if m.training and is_tensor(x) and x:dim() >= bdim and opt then
      opt._batch = x:size(bdim)
    end
  end)
  opt = setmetatable({
    original_optimizer = o.optimizer,
    noise_multiplier = o.noise_multiplier,
    max_grad_norm = o.max_grad_norm,
    expected_batch_size = math.max(1, math.floor(n * q)),
    sample_rate = q,
    loss_reduction = o.loss_reduction or "mean",
    generator = gen,
    accountant = self.accountant,
    target_delta = o.target_delta or 1e-5,
    _layers = layers,
    _params = params,
  }, DPOptimizer)
  self.model, self.optimizer, self.loader = model, opt, loader
  return model, opt, loader
end

--- make_private with the noise multiplier that spends target_epsilon at
-- target_delta over epochs (Opacus's get_noise_multiplier).
function PrivacyEngine:make_private_with_epsilon(o)
  local fname = "make_private_with_epsilon"
  local q = check_make(fname, o)
  if o.noise_multiplier ~= nil then
    error(fname .. ": give target_epsilon, not noise_multiplier", 2)
  end
  if type(o.epochs) ~= "number" or o.epochs ~= o.epochs or o.epochs <= 0 then
    error(fmt("%s: epochs must be a positive number (got %s)", fname,
      tostring(o.epochs)), 2)
  end
  layers_of(fname, o.model)
  local sigma = M.noise_for_epsilon { target_epsilon = o.target_epsilon,
    delta = o.target_delta, sample_rate = q, epochs = o.epochs,
    epsilon_tolerance = o.epsilon_tolerance }
  local copy = {}
  for k, v in pairs(o) do copy[k] = v end
  copy.noise_multiplier = sigma
  copy.target_epsilon, copy.epochs, copy.epsilon_tolerance = nil, nil, nil
  return self:make_private(copy)
end

--- Epsilon spent so far at delta.
function PrivacyEngine:get_epsilon(delta)
  return (self.accountant:get_epsilon(delta))
end

return M
