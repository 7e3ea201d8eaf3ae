--- lgrad.nn_transformer: attention and transformer modules of lg.nn.
--
--   local mha = lg.nn.MultiheadAttention(64, 4)            -- batch_first
--   local out, w = mha(x, x, x, {key_padding_mask = pad})  -- x (B, T, 64)
--   local layer = lg.nn.TransformerEncoderLayer(64, 4,
--     {dim_feedforward = 256, dropout = 0, norm_first = true})
--   local enc = lg.nn.TransformerEncoder(layer, 2)
--   local y = enc(x, {mask = lg.nn.Transformer.generate_square_subsequent_mask(T)})
--
-- PyTorch's modules with its options, defaults (except batch_first, which
-- is true here) and state_dict names, so torch checkpoints load with
-- load_state_dict.  Masks have torch's meaning for these modules: a bool
-- attn_mask or key_padding_mask is true where attention is NOT allowed, a
-- float one is added to the scores.  (lg.F.scaled_dot_product_attention
-- takes PyTorch 2's functional convention instead: bool true = attend.)
-- Without need_weights the attention runs in the fused op, which holds
-- no T x S matrix; with it (MultiheadAttention's default, as in torch)
-- the weights are computed and returned.
local lg = require "lgrad"

local F = lg.F
local init = require "lgrad.nn_init"
local fmt = string.format
local is_tensor = lg.is_tensor
local sdpa = F.scaled_dot_product_attention

local function shape_str(t)
  return "[" .. table.concat(t:shape(), ",") .. "]"
end

local function check_tensor(fname, what, t)
  if t ~= nil and not is_tensor(t) then
    error(fmt("%s: %s must be a tensor (got %s)", fname, what, type(t)), 3)
  end
  return t
end

-- a float mask to add to the scores: bool true becomes -inf
local function additive(mask, dtype)
  if mask:dtype() == "bool" then
    return lg.zeros(mask:shape(), { dtype = dtype }):masked_fill(mask,
      -math.huge)
  end
  return mask:dtype() == dtype and mask or mask:to(dtype)
end

-- (T, S): -inf where key j comes after query i, else 0
local function causal_mask(T, S, dtype)
  local after = lg.range(1, T):view(T, 1):lt(lg.range(1, S):view(1, S))
  return lg.zeros({ T, S }, { dtype = dtype }):masked_fill(after, -math.huge)
end

return function(nn)
  local Module, Linear, LayerNorm, Dropout = nn.Module, nn.Linear,
    nn.LayerNorm, nn.Dropout
  -- check_int(fname, what, v, min) and options(fname, opts, allowed set)
  local check_int, nn_options = nn._check_int, nn._options
  local function options(fname, opts, allowed)
    local set = {}
    for _, k in ipairs(allowed) do set[k] = true end
    return nn_options(fname, opts, set)
  end

  -------------------------------------------------------------------------
  -- MultiheadAttention

  local MHA = Module:extend("MultiheadAttention")
  nn.MultiheadAttention = MHA
  local mha_opts = { "dropout", "bias", "batch_first", "kdim", "vdim",
    "dtype" }

  --- MultiheadAttention(embed_dim, num_heads [, {dropout = 0, bias = true,
  -- batch_first = true, kdim = embed_dim, vdim = embed_dim, dtype}])
  function MHA:init(embed_dim, num_heads, opts)
    local fn = "MultiheadAttention"
    check_int(fn, "embed_dim", embed_dim, 1)
    check_int(fn, "num_heads", num_heads, 1)
    if embed_dim % num_heads ~= 0 then
      error(fmt("%s: embed_dim %d is not divisible by num_heads %d", fn,
        embed_dim, num_heads), 3)
    end
    opts = options(fn, opts, mha_opts)
    local p = opts.dropout or 0
    if type(p) ~= "number" or not (p >= 0 and p <= 1) then
      error(fmt("%s: dropout must be a probability in [0, 1] (got %s)", fn,
        tostring(p)), 3)
    end
    self.embed_dim, self.num_heads = embed_dim, num_heads
    self.head_dim = embed_dim // num_heads
    self.kdim = check_int(fn, "kdim", opts.kdim or embed_dim, 1)
    self.vdim = check_int(fn, "vdim", opts.vdim or embed_dim, 1)
    self.dropout = p
    self.batch_first = opts.batch_first ~= false
    self._qkv_same = self.kdim == embed_dim and self.vdim == embed_dim
    local dt = opts.dtype and { dtype = opts.dtype } or nil
    local E = embed_dim
    if self._qkv_same then
      self.in_proj_weight = nn.Parameter(lg.empty({ 3 * E, E }, dt))
    else
      self.q_proj_weight = nn.Parameter(lg.empty({ E, E }, dt))
      self.k_proj_weight = nn.Parameter(lg.empty({ E, self.kdim }, dt))
      self.v_proj_weight = nn.Parameter(lg.empty({ E, self.vdim }, dt))
    end
    if opts.bias ~= false then
      self.in_proj_bias = nn.Parameter(lg.empty({ 3 * E }, dt))
    end
    self.out_proj = Linear(E, E, { bias = opts.bias ~= false,
      dtype = opts.dtype })
    self:reset_parameters()
  end

  --- torch's initialization: xavier_uniform_ projections, zero biases
  function MHA:reset_parameters()
    if self._qkv_same then
      init.xavier_uniform_(self.in_proj_weight)
    else
      init.xavier_uniform_(self.q_proj_weight)
      init.xavier_uniform_(self.k_proj_weight)
      init.xavier_uniform_(self.v_proj_weight)
    end
    if self.in_proj_bias then
      init.zeros_(self.in_proj_bias)
      init.zeros_(self.out_proj.bias)
    end
  end

  function MHA:extra_repr()
    return fmt("embed_dim=%d, num_heads=%d, dropout=%s, batch_first=%s",
      self.embed_dim, self.num_heads, tostring(self.dropout),
      tostring(self.batch_first))
  end

  -- the three projections: (B, L, E) each
  local function project(self, query, key, value)
    local E, b = self.embed_dim, self.in_proj_bias
    local function bias(i) return b and b:narrow(1, (i - 1) * E + 1, E) end
    if self._qkv_same and rawequal(query, key) and rawequal(key, value) then
      -- self-attention: one product, then the three column blocks
      local qkv = F.linear(query, self.in_proj_weight, b)
      return qkv:narrow(3, 1, E), qkv:narrow(3, E + 1, E),
        qkv:narrow(3, 2 * E + 1, E)
    end
    local wq, wk, wv
    if self._qkv_same then
      local w = self.in_proj_weight
      wq, wk, wv = w:narrow(1, 1, E), w:narrow(1, E + 1, E),
        w:narrow(1, 2 * E + 1, E)
    else
      wq, wk, wv = self.q_proj_weight, self.k_proj_weight, self.v_proj_weight
    end
    return F.linear(query, wq, bias(1)), F.linear(key, wk, bias(2)),
      F.linear(value, wv, bias(3))
  end

  -- (B, L, E) -> (B, H, L, hd)
  local function heads(x, B, L, H, hd)
    return x:reshape(B, L, H, hd):transpose(2, 3)
  end

  local mha_call_opts = { "attn_mask", "key_padding_mask", "need_weights",
    "is_causal", "average_attn_weights" }

  -- inputs as (B, L, E): batch_first, sequence-first or unbatched
  local function to_batch_first(self, fn, query, key, value)
    local nd = query:dim()
    if nd ~= 2 and nd ~= 3 then
      error(fmt("%s: query must be %s or unbatched (L, E) (got %s)", fn,
        self.batch_first and "(B, L, E)" or "(L, B, E)", shape_str(query)), 3)
    end
    if key:dim() ~= nd or value:dim() ~= nd then
      error(fmt("%s: query %s, key %s and value %s must have the same "
        .. "number of dimensions", fn, shape_str(query), shape_str(key),
        shape_str(value)), 3)
    end
    if nd == 2 then
      return query:unsqueeze(1), key:unsqueeze(1), value:unsqueeze(1)
    end
    if not self.batch_first then
      return query:transpose(1, 2), key:transpose(1, 2), value:transpose(1, 2)
    end
    return query, key, value
  end

  local function check_inputs(self, fn, q, k, v, query, key, value)
    local layout = self.batch_first and "(B, L, E)" or "(L, B, E)"
    if q:size(3) ~= self.embed_dim then
      error(fmt("%s: query %s has %d features, expected embed_dim %d", fn,
        shape_str(query), q:size(3), self.embed_dim), 3)
    end
    if k:size(3) ~= self.kdim or v:size(3) ~= self.vdim then
      error(fmt("%s: key %s and value %s must have kdim %d and vdim %d "
        .. "features", fn, shape_str(key), shape_str(value), self.kdim,
        self.vdim), 3)
    end
    if k:size(1) ~= q:size(1) or v:size(1) ~= q:size(1) then
      error(fmt("%s: query %s, key %s and value %s disagree on the batch "
        .. "size (inputs are %s)", fn, shape_str(query), shape_str(key),
        shape_str(value), layout), 3)
    end
    if v:size(2) ~= k:size(2) then
      error(fmt("%s: key %s and value %s must have the same length", fn,
        shape_str(key), shape_str(value)), 3)
    end
  end

  -- the masks as one float mask broadcasting to (B, H, T, S), or as a bool
  -- keep-mask (true: attend) for the fused op; nil when there is none
  local function combine_masks(self, fn, o, B, T, S, dtype, unbatched,
                               query, key)
    local H = self.num_heads
    local am, kpm = o.attn_mask, o.key_padding_mask
    check_tensor(fn, "attn_mask", am)
    check_tensor(fn, "key_padding_mask", kpm)
    local layout = self.batch_first and "(B, L, E)" or "(L, B, E)"
    if am then
      local s = am:shape()
      if #s == 2 and s[1] == T and s[2] == S then
        am = am:view(1, 1, T, S)
      elseif #s == 3 and s[1] == B * H and s[2] == T and s[3] == S then
        am = am:view(B, H, T, S)
      else
        error(fmt("%s: attn_mask %s must be (T, S) = [%d,%d] or (B * H, T, "
          .. "S) = [%d,%d,%d] for query %s and key %s", fn, shape_str(am), T,
          S, B * H, T, S, shape_str(query), shape_str(key)), 3)
      end
    elseif o.is_causal then
      am = causal_mask(T, S, dtype):view(1, 1, T, S)
    end
    if kpm then
      local s = kpm:shape()
      local ok = unbatched and (#s == 1 and s[1] == S)
        or (#s == 2 and s[1] == B and s[2] == S)
      if not ok then
        error(fmt("%s: key_padding_mask %s must be (B, S) = [%d,%d] for "
          .. "query %s and key %s (inputs are %s)", fn, shape_str(kpm), B, S,
          shape_str(query), shape_str(key), layout), 3)
      end
      kpm = kpm:view(B, 1, 1, S)
    end
    if am and kpm then return additive(am, dtype) + additive(kpm, dtype) end
    local m = am or kpm
    if m and m:dtype() == "bool" then return m:eq(false) end
    return m and additive(m, dtype)
  end

  --- out, weights = mha(query, key, value [, {attn_mask, key_padding_mask,
  -- need_weights = true, is_causal = false, average_attn_weights = true}])
  -- query (B, T, E), key (B, S, kdim), value (B, S, vdim) (batch_first), or
  -- unbatched (T, E); out as query; weights (B, T, S) averaged over heads
  -- or (B, H, T, S), nil without need_weights.
  function MHA:forward(query, key, value, o)
    local fn = "MultiheadAttention"
    key = key == nil and query or key
    value = value == nil and key or value
    check_tensor(fn, "query", query)
    check_tensor(fn, "key", key)
    check_tensor(fn, "value", value)
    o = options(fn, o, mha_call_opts)
    local unbatched = query:dim() == 2
    local self_attn = rawequal(query, key) and rawequal(key, value)
    local q, k, v = to_batch_first(self, fn, query, key, value)
    check_inputs(self, fn, q, k, v, query, key, value)
    if self_attn then k, v = q, q end
    local B, T, S = q:size(1), q:size(2), k:size(2)
    local H, hd, E = self.num_heads, self.head_dim, self.embed_dim
    local mask = combine_masks(self, fn, o, B, T, S, query:dtype(),
      unbatched, query, key)
    q, k, v = project(self, q, k, v)
    q, k, v = heads(q, B, T, H, hd), heads(k, B, S, H, hd),
      heads(v, B, S, H, hd)
    local p = self.training and self.dropout or 0
    local out, weights
    if o.need_weights == false then
      local causal = o.is_causal and o.attn_mask == nil
        and o.key_padding_mask == nil
      out = sdpa(q, k, v, { attn_mask = not causal and mask or nil,
        is_causal = causal, dropout_p = p })
    else
      local s = q:matmul(k:transpose(3, 4)) * (1 / math.sqrt(hd))
      if mask and mask:dtype() == "bool" then
        s = s:masked_fill(mask:eq(false), -math.huge)
      elseif mask then
        s = s + mask
      end
      weights = s:softmax(-1)
      if p > 0 then weights = F.dropout(weights, p) end
      out = weights:matmul(v)
      if o.average_attn_weights ~= false then weights = weights:mean(2) end
      if unbatched then weights = weights:squeeze(1) end
    end
    out = self.out_proj(out:transpose(2, 3):reshape(B, T, E))
    if unbatched then
      out = out:squeeze(1)
    elseif not self.batch_first then
      out = out:transpose(1, 2)
    end
    return out, weights
  end

  -------------------------------------------------------------------------
  -- encoder and decoder layers

  local layer_opts = { "dim_feedforward", "dropout", "activation",
    "layer_norm_eps", "batch_first", "norm_first", "bias", "dtype" }

  local function activation_of(fname, a)
    if a == nil or a == "relu" then return "relu", F.relu end
    if a == "gelu" then return "gelu", F.gelu end
    if type(a) == "function" then return "custom", a end
    if type(a) == "table" and type(getmetatable(a)) == "table"
        and getmetatable(a).__call then
      return "custom", function(x) return a(x) end
    end
    error(fmt("%s: activation must be \"relu\", \"gelu\" or a function (got "
      .. "%s)", fname, tostring(a)), 4)
  end

  -- the parts both layers share: feed-forward block, norms and dropouts
  local function layer_init(self, fname, d_model, nhead, opts, nnorm)
    check_int(fname, "d_model", d_model, 1)
    check_int(fname, "nhead", nhead, 1)
    opts = options(fname, opts, layer_opts)
    self._args = { d_model, nhead, opts }
    local dff = check_int(fname, "dim_feedforward",
      opts.dim_feedforward or 2048, 1)
    local p = opts.dropout == nil and 0.1 or opts.dropout
    local bias = opts.bias ~= false
    self.d_model = d_model
    self.activation_name, self._activation = activation_of(fname,
      opts.activation)
    self.norm_first = opts.norm_first == true
    self.batch_first = opts.batch_first ~= false
    local attn = { dropout = p, bias = bias, batch_first = self.batch_first,
      dtype = opts.dtype }
    if d_model % nhead ~= 0 then
      error(fmt("%s: d_model %d is not divisible by nhead %d", fname,
        d_model, nhead), 3)
    end
    self.self_attn = MHA(d_model, nhead, attn)
    if nnorm == 3 then self.multihead_attn = MHA(d_model, nhead, attn) end
    local lo = { bias = bias, dtype = opts.dtype }
    self.linear1 = Linear(d_model, dff, lo)
    self.dropout = Dropout(p)
    self.linear2 = Linear(dff, d_model, lo)
    local no = { eps = opts.layer_norm_eps or 1e-5, bias = bias,
      dtype = opts.dtype }
    for i = 1, nnorm do self["norm" .. i] = LayerNorm(d_model, no) end
    for i = 1, nnorm do self["dropout" .. i] = Dropout(p) end
  end

  local function layer_repr(self)
    return fmt("d_model=%d, activation=%s, norm_first=%s", self.d_model,
      self.activation_name, tostring(self.norm_first))
  end

  -- x -> out_dropout(linear2(dropout(activation(linear1(x)))))
  local function feed_forward(self, out_dropout)
    return function(x)
      return out_dropout(self.linear2(self.dropout(self._activation(
        self.linear1(x)))))
    end
  end

  -- x -> dropout(attention of x over memory (nil: over itself))
  local function attention(attn, dropout, memory, mask, padding, causal)
    local o = { attn_mask = mask, key_padding_mask = padding,
      need_weights = false, is_causal = causal }
    return function(x)
      local kv = memory or x
      return dropout((attn(x, kv, kv, o)))
    end
  end

  -- one residual sub-block: x + f(norm(x)) with norm_first, else
  -- norm(x + f(x))
  local function residual(self, x, norm, f)
    if self.norm_first then return x + f(norm(x)) end
    return norm(x + f(x))
  end

  local function check_seq(fname, what, x, d_model, batch_first)
    if not is_tensor(x) then
      error(fmt("%s: %s must be a tensor (got %s)", fname, what, type(x)), 3)
    end
    local d = x:dim()
    if (d ~= 2 and d ~= 3) or x:size(d) ~= d_model then
      error(fmt("%s: %s %s must be %s with E = d_model = %d", fname, what,
        shape_str(x), batch_first and "(B, L, E)" or "(L, B, E)", d_model),
        3)
    end
  end

  local TEL = Module:extend("TransformerEncoderLayer")
  nn.TransformerEncoderLayer = TEL

  --- TransformerEncoderLayer(d_model, nhead [, {dim_feedforward = 2048,
  -- dropout = 0.1, activation = "relu" | "gelu" | function,
  -- layer_norm_eps = 1e-5, batch_first = true, norm_first = false,
  -- bias = true, dtype}])
  function TEL:init(d_model, nhead, opts)
    layer_init(self, "TransformerEncoderLayer", d_model, nhead, opts, 2)
  end
  TEL.extra_repr = layer_repr

  local enc_call_opts = { "src_mask", "src_key_padding_mask", "is_causal" }

  --- layer(src [, {src_mask, src_key_padding_mask, is_causal}])
  function TEL:forward(src, o)
    local fn = "TransformerEncoderLayer"
    check_seq(fn, "src", src, self.d_model, self.batch_first)
    o = options(fn, o, enc_call_opts)
    local x = residual(self, src, self.norm1, attention(self.self_attn,
      self.dropout1, nil, o.src_mask, o.src_key_padding_mask, o.is_causal))
    return residual(self, x, self.norm2, feed_forward(self, self.dropout2))
  end

  local TDL = Module:extend("TransformerDecoderLayer")
  nn.TransformerDecoderLayer = TDL

  --- TransformerDecoderLayer(d_model, nhead [, options as the encoder
  -- layer's]): self-attention, attention over the memory, feed-forward
  function TDL:init(d_model, nhead, opts)
    layer_init(self, "TransformerDecoderLayer", d_model, nhead, opts, 3)
  end
  TDL.extra_repr = layer_repr

  local dec_call_opts = { "tgt_mask", "memory_mask", "tgt_key_padding_mask",
    "memory_key_padding_mask", "tgt_is_causal", "memory_is_causal" }

  --- layer(tgt, memory [, {tgt_mask, memory_mask, tgt_key_padding_mask,
  -- memory_key_padding_mask, tgt_is_causal, memory_is_causal}])
  function TDL:forward(tgt, memory, o)
    local fn = "TransformerDecoderLayer"
    check_seq(fn, "tgt", tgt, self.d_model, self.batch_first)
    check_seq(fn, "memory", memory, self.d_model, self.batch_first)
    if tgt:dim() ~= memory:dim() or (tgt:dim() == 3 and
        tgt:size(self.batch_first and 1 or 2)
        ~= memory:size(self.batch_first and 1 or 2)) then
      error(fmt("%s: tgt %s and memory %s disagree on the batch size", fn,
        shape_str(tgt), shape_str(memory)), 2)
    end
    o = options(fn, o, dec_call_opts)
    local x = residual(self, tgt, self.norm1, attention(self.self_attn,
      self.dropout1, nil, o.tgt_mask, o.tgt_key_padding_mask,
      o.tgt_is_causal))
    x = residual(self, x, self.norm2, attention(self.multihead_attn,
      self.dropout2, memory, o.memory_mask, o.memory_key_padding_mask,
      o.memory_is_causal))
    return residual(self, x, self.norm3, feed_forward(self, self.dropout3))
  end

  -------------------------------------------------------------------------
  -- stacks

  -- n copies of layer with its weights (torch deep-copies the layer)
  local function clones(fname, cls, layer, n)
    if getmetatable(layer) ~= cls then
      error(fmt("%s: expected a %s (got %s)", fname, cls.__name,
        nn.is_module(layer) and layer.__name or type(layer)), 4)
    end
    check_int(fname, "num_layers", n, 0)
    local list, sd = {}, layer:state_dict()
    for i = 1, n do
      local c = getmetatable(layer)(table.unpack(layer._args, 1, 3))
      c:load_state_dict(sd)
      if not layer.training then c:eval() end
      list[i] = c
    end
    return nn.ModuleList(table.unpack(list, 1, n))
  end

  local function stack_init(self, fname, cls, layer, n, opts)
    opts = options(fname, opts, { "norm" })
    self.layers = clones(fname, cls, layer, n)
    self.num_layers = n
    if opts.norm ~= nil then
      if not nn.is_module(opts.norm) then
        error(fmt("%s: norm must be a module (got %s)", fname,
          type(opts.norm)), 3)
      end
      self.norm = opts.norm
    end
  end

  local TE = Module:extend("TransformerEncoder")
  nn.TransformerEncoder = TE

  --- TransformerEncoder(encoder_layer, num_layers [, {norm}]): num_layers
  -- copies of the layer (weights copied), then norm when given
  function TE:init(layer, n, opts)
    stack_init(self, "TransformerEncoder", TEL, layer, n, opts)
  end

  --- enc(src [, {mask, src_key_padding_mask, is_causal}])
  function TE:forward(src, o)
    o = options("TransformerEncoder", o,
      { "mask", "src_key_padding_mask", "is_causal" })
    local lo = { src_mask = o.mask, is_causal = o.is_causal,
      src_key_padding_mask = o.src_key_padding_mask }
    local x = src
    for i = 1, self.num_layers do x = self.layers[i](x, lo) end
    if self.norm then x = self.norm(x) end
    return x
  end

  local TD = Module:extend("TransformerDecoder")
  nn.TransformerDecoder = TD

  --- TransformerDecoder(decoder_layer, num_layers [, {norm}])
  function TD:init(layer, n, opts)
    stack_init(self, "TransformerDecoder", TDL, layer, n, opts)
  end

  --- dec(tgt, memory [, options of TransformerDecoderLayer's forward])
  function TD:forward(tgt, memory, o)
    o = options("TransformerDecoder", o, dec_call_opts)
    local x = tgt
    for i = 1, self.num_layers do x = self.layers[i](x, memory, o) end
    if self.norm then x = self.norm(x) end
    return x
  end

  -------------------------------------------------------------------------
  -- Transformer

  local T = Module:extend("Transformer")
  nn.Transformer = T
  local transformer_opts = { "d_model", "nhead", "num_encoder_layers",
    "num_decoder_layers", "dim_feedforward", "dropout", "activation",
    "layer_norm_eps", "batch_first", "norm_first", "bias", "dtype" }

  --- Transformer([{d_model = 512, nhead = 8, num_encoder_layers = 6,
  -- num_decoder_layers = 6, dim_feedforward = 2048, dropout = 0.1,
  -- activation = "relu", layer_norm_eps = 1e-5, batch_first = true,
  -- norm_first = false, bias = true, dtype}])
  function T:init(opts)
    local fn = "Transformer"
    opts = options(fn, opts, transformer_opts)
    local d_model, nhead = opts.d_model or 512, opts.nhead or 8
    local lo = {}
    for _, k in ipairs(layer_opts) do lo[k] = opts[k] end
    local no = { eps = opts.layer_norm_eps or 1e-5, bias = opts.bias ~= false,
      dtype = opts.dtype }
    self.encoder = TE(TEL(d_model, nhead, lo),
      check_int(fn, "num_encoder_layers", opts.num_encoder_layers or 6, 0),
      { norm = LayerNorm(d_model, no) })
    self.decoder = TD(TDL(d_model, nhead, lo),
      check_int(fn, "num_decoder_layers", opts.num_decoder_layers or 6, 0),
      { norm = LayerNorm(d_model, no) })
    self.d_model, self.nhead = d_model, nhead
    self.batch_first = opts.batch_first ~= false
    for _, p in ipairs(self:parameters()) do
      if p:dim() > 1 then init.xavier_uniform_(p) end
    end
  end

  --- model(src, tgt [, {src_mask, tgt_mask, memory_mask,
  -- src_key_padding_mask, tgt_key_padding_mask, memory_key_padding_mask,
  -- src_is_causal, tgt_is_causal, memory_is_causal}])
  function T:forward(src, tgt, o)
    local fn = "Transformer"
    o = options(fn, o, { "src_mask", "tgt_mask", "memory_mask",
      "src_key_padding_mask", "tgt_key_padding_mask",
      "memory_key_padding_mask", "src_is_causal", "tgt_is_causal",
      "memory_is_causal" })
    check_seq(fn, "src", src, self.d_model, self.batch_first)
    check_seq(fn, "tgt", tgt, self.d_model, self.batch_first)
    local bd = self.batch_first and 1 or 2
    if src:dim() ~= tgt:dim() or (src:dim() == 3 and
        src:size(bd) ~= tgt:size(bd)) then
      error(fmt("%s: the batch size of src %s and tgt %s must be equal", fn,
        shape_str(src), shape_str(tgt)), 2)
    end
    local memory = self.encoder(src, { mask = o.src_mask,
      src_key_padding_mask = o.src_key_padding_mask,
      is_causal = o.src_is_causal })
    return self.decoder(tgt, memory, { tgt_mask = o.tgt_mask,
      memory_mask = o.memory_mask,
      tgt_key_padding_mask = o.tgt_key_padding_mask,
      memory_key_padding_mask = o.memory_key_padding_mask,
      tgt_is_causal = o.tgt_is_causal,
      memory_is_causal = o.memory_is_causal })
  end

  --- Transformer.generate_square_subsequent_mask(sz [, {dtype}]): (sz, sz)
  -- float, -inf above the diagonal and 0 elsewhere
  function T.generate_square_subsequent_mask(sz, opts)
    check_int("generate_square_subsequent_mask", "sz", sz, 0)
    opts = options("generate_square_subsequent_mask", opts, { "dtype" })
    return causal_mask(sz, sz, opts.dtype or lg.get_default_dtype())
  end
end
