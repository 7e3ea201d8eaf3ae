-- lg.nn.MultiheadAttention, TransformerEncoderLayer, TransformerEncoder,
-- TransformerDecoderLayer, TransformerDecoder and Transformer against
-- torch.nn's (spec/fixtures/gen_attention.py, torch 1.13, float64): each
-- module is built here as the generator built it in torch, loads torch's
-- state_dict (torch's names), and must give torch's output, attention
-- weights and the gradients of every input and every parameter.  The
-- Transformer also loads torch's checkpoint from a safetensors file.
local lg = require "lgrad"
require "helpers" -- assert.allclose, assert.shape

local nn = lg.nn
local fixture = dofile("spec/fixtures/attention.lua")
lg.manual_seed(20240611)

local function tensor(x)
  local t = lg.tensor(x.data, {dtype = "float64"}):view(x.shape)
  if x.dtype == "bool" then return t:ne(0) end
  return t
end

local function ff(opts)
  local o = {dim_feedforward = 16, dropout = 0}
  for k, v in pairs(opts or {}) do o[k] = v end
  return o
end

-- how the generator built and called each module
local cases = {
  mha_self = {
    build = function() return nn.MultiheadAttention(8, 2) end,
    call = function(m, i) return m(i.x, i.x, i.x) end},
  mha_kvdim_padding = {
    build = function() return nn.MultiheadAttention(8, 2, {kdim = 6, vdim = 4}) end,
    call = function(m, i)
      return m(i.q, i.k, i.v, {key_padding_mask = i.key_padding_mask,
                               need_weights = false})
    end},
  mha_float_mask_per_head_weights = {
    build = function() return nn.MultiheadAttention(8, 4, {bias = false}) end,
    call = function(m, i)
      return m(i.q, i.k, i.v, {attn_mask = i.attn_mask,
                               average_attn_weights = false})
    end},
  mha_bool_3d_mask_and_padding = {
    build = function() return nn.MultiheadAttention(8, 2) end,
    call = function(m, i)
      return m(i.q, i.k, i.v, {attn_mask = i.attn_mask, need_weights = false,
                               key_padding_mask = i.key_padding_mask})
    end},
  mha_sequence_first = {
    build = function() return nn.MultiheadAttention(8, 2, {batch_first = false}) end,
    call = function(m, i) return m(i.x, i.x, i.x, {need_weights = false}) end},
  mha_unbatched = {
    build = function() return nn.MultiheadAttention(8, 2) end,
    call = function(m, i) return m(i.x, i.x, i.x) end},
  encoder_layer_post_relu = {
    build = function() return nn.TransformerEncoderLayer(8, 2, ff()) end,
    call = function(m, i)
      return m(i.src, {src_mask = i.src_mask,
                       src_key_padding_mask = i.src_key_padding_mask})
    end},
  encoder_layer_pre_gelu = {
    build = function()
      return nn.TransformerEncoderLayer(8, 2, ff{norm_first = true,
                                                activation = "gelu"})
    end,
    call = function(m, i) return m(i.src) end},
  encoder_two_layers_norm = {
    build = function()
      return nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, ff()), 2,
                                   {norm = nn.LayerNorm(8)})
    end,
    call = function(m, i) return m(i.src, {mask = i.mask}) end},
  decoder_layer_post = {
    build = function() return nn.TransformerDecoderLayer(8, 2, ff()) end,
    call = function(m, i)
      return m(i.tgt, i.memory, {tgt_mask = i.tgt_mask,
               memory_key_padding_mask = i.memory_key_padding_mask})
    end},
  decoder_layer_pre_gelu = {
    build = function()
      return nn.TransformerDecoderLayer(8, 2, ff{norm_first = true,
                                                activation = "gelu"})
    end,
    call = function(m, i) return m(i.tgt, i.memory) end},
  decoder_two_layers_norm = {
    build = function()
      return nn.TransformerDecoder(nn.TransformerDecoderLayer(8, 2, ff()), 2,
                                   {norm = nn.LayerNorm(8)})
    end,
    call = function(m, i) return m(i.tgt, i.memory, {tgt_mask = i.tgt_mask}) end},
  transformer = {
    build = function()
      return nn.Transformer(ff{d_model = 8, nhead = 2, num_encoder_layers = 2,
                               num_decoder_layers = 2})
    end,
    call = function(m, i)
      return m(i.src, i.tgt, {tgt_mask = i.tgt_mask,
                              src_key_padding_mask = i.src_key_padding_mask})
    end},
}

local function inputs_of(c)
  local ins = {}
  for k, x in pairs(c.inputs) do
    ins[k] = tensor(x)
    if x.dtype ~= "bool" and not k:find("mask$") then
      ins[k]:requires_grad_()
    end
  end
  return ins
end

local function check(name, c, m)
  local ins = inputs_of(c)
  local out, w = cases[name].call(m, ins)
  assert.allclose(out, tensor(c.out), 1e-10, 1e-12, "output")
  if c.weights then
    assert.allclose(w, tensor(c.weights), 1e-10, 1e-12, "attention weights")
  else
    assert.is_nil(w)
  end
  (out * tensor(c.upstream)):sum():backward()
  local params, n = m:named_parameters(), 0
  for gname, g in pairs(c.grads) do
    local t = ins[gname] or params[gname]
    assert.is_not_nil(t, gname)
    assert.allclose(t.grad, tensor(g), 1e-9, 1e-11, "gradient of " .. gname)
    n = n + 1
  end
  return n
end

describe("transformer modules against torch.nn", function()
  local names = {}
  for k in pairs(cases) do names[#names + 1] = k end
  table.sort(names)
  for _, name in ipairs(names) do
    it(name .. ": output, weights and every gradient", function()
      local c = fixture.modules[name]
      local m = cases[name].build():double()
      m:eval()
      -- the same parameters, by torch's names
      local params = m:named_parameters()
      assert.are.equal(#c.param_names, #m:parameters())
      for _, pn in ipairs(c.param_names) do assert.is_not_nil(params[pn], pn) end
      local sd = {}
      for k, x in pairs(c.state) do sd[k] = tensor(x) end
      m:load_state_dict(sd)
      local n = check(name, c, m)
      assert.is_true(n >= #c.param_names)
    end)
  end

  it("Transformer loads torch's checkpoint from safetensors", function()
    local c = fixture.modules.transformer
    local m = cases.transformer.build()
    local sd = lg.load("spec/fixtures/transformer.safetensors")
    m:double():load_state_dict(sd)
    m:eval()
    local out = cases.transformer.call(m, inputs_of(c))
    assert.allclose(out, tensor(c.out), 1e-10, 1e-12)
  end)
end)

describe("MultiheadAttention", function()
  it("gives the same output with and without weights (fused path)", function()
    local m = nn.MultiheadAttention(16, 4):double()
    local x = lg.randn({3, 7, 16}, {dtype = "float64"})
    local pad = lg.zeros(3, 7):bool()
    pad[2]:narrow(1, 6, 2):fill_(1)
    local mask = nn.Transformer.generate_square_subsequent_mask(7,
      {dtype = "float64"})
    for _, o in ipairs({{}, {is_causal = true}, {key_padding_mask = pad},
                        {attn_mask = mask, key_padding_mask = pad},
                        {attn_mask = mask:ne(0)}}) do
      local a = m(x, x, x, o)
      o.need_weights = false
      local b, w = m(x, x, x, o)
      assert.is_nil(w)
      assert.allclose(a, b, 1e-12, 1e-12)
    end
  end)

  it("passes gradcheck with respect to its inputs", function()
    local m = nn.MultiheadAttention(4, 2, {kdim = 3}):double()
    local q = lg.randn({2, 3, 4}, {dtype = "float64", requires_grad = true})
    local k = lg.randn({2, 5, 3}, {dtype = "float64", requires_grad = true})
    local v = lg.randn({2, 5, 4}, {dtype = "float64", requires_grad = true})
    local ok, msg = lg.autograd.gradcheck(function(a, b, c)
      return (m(a, b, c, {need_weights = false}))
    end, {q, k, v})
    assert.is_true(ok, msg)
  end)

  it("drops attention weights only in training", function()
    local m = nn.MultiheadAttention(8, 2, {dropout = 0.5})
    local x = lg.randn(2, 6, 8)
    local a = m(x, x, x, {need_weights = false})
    local b = m(x, x, x, {need_weights = false})
    assert.is_false(a:eq(b):all():item())
    m:eval()
    local c = m(x, x, x, {need_weights = false})
    m.dropout = 0
    m:train()
    assert.allclose(c, m(x, x, x, {need_weights = false}), 0, 0)
  end)

  it("has torch's parameter names and initialization", function()
    local m = nn.MultiheadAttention(8, 2)
    local names = {}
    for k in pairs(m:state_dict()) do names[#names + 1] = k end
    table.sort(names)
    assert.are.same({"in_proj_bias", "in_proj_weight", "out_proj.bias",
                     "out_proj.weight"}, names)
    assert.are.equal(0, m.in_proj_bias:abs():sum():item())
    local bound = math.sqrt(6 / (8 + 24))
    assert.is_true(m.in_proj_weight:abs():max():item() <= bound)
    local kv = nn.MultiheadAttention(8, 2, {kdim = 3, vdim = 5, bias = false})
    names = {}
    for k in pairs(kv:state_dict()) do names[#names + 1] = k end
    table.sort(names)
    assert.are.same({"k_proj_weight", "out_proj.weight", "q_proj_weight",
                     "v_proj_weight"}, names)
  end)

  it("names itself and both shapes on bad input", function()
    assert.has_error(function() nn.MultiheadAttention(10, 3) end,
      "MultiheadAttention: embed_dim 10 is not divisible by num_heads 3")
    local m = nn.MultiheadAttention(8, 2)
    local tbe = lg.randn(5, 2, 8) -- (T, B, E) fed to a batch_first module
    assert.has_error(function()
      m(tbe, tbe, tbe, {key_padding_mask = lg.zeros(2, 5):bool()})
    end, "MultiheadAttention: key_padding_mask [2,5] must be (B, S) = [5,2] "
      .. "for query [5,2,8] and key [5,2,8] (inputs are (B, L, E))")
    local x = lg.randn(2, 5, 8)
    assert.has_error(function()
      m(x, x, x, {attn_mask = lg.zeros(5, 4)})
    end, "MultiheadAttention: attn_mask [5,4] must be (T, S) = [5,5] or "
      .. "(B * H, T, S) = [4,5,5] for query [2,5,8] and key [2,5,8]")
    assert.has_error(function() m(lg.randn(2, 5, 6)) end,
      "MultiheadAttention: query [2,5,6] has 6 features, expected embed_dim 8")
    assert.has_error(function() m(x, lg.randn(3, 5, 8), lg.randn(3, 5, 8)) end,
      "MultiheadAttention: query [2,5,8], key [3,5,8] and value [3,5,8] "
      .. "disagree on the batch size (inputs are (B, L, E))")
    assert.has_error(function() m(x, x, x, {mask = 1}) end,
      "MultiheadAttention: unknown option 'mask'")
  end)
end)

describe("transformer layers", function()
  it("name themselves and the shapes on bad input", function()
    assert.has_error(function() nn.TransformerEncoderLayer(10, 4) end,
      "TransformerEncoderLayer: d_model 10 is not divisible by nhead 4")
    local l = nn.TransformerEncoderLayer(8, 2, ff())
    assert.has_error(function() l(lg.randn(2, 5, 6)) end,
      "TransformerEncoderLayer: src [2,5,6] must be (B, L, E) with E = "
      .. "d_model = 8")
    local d = nn.TransformerDecoderLayer(8, 2, ff())
    assert.has_error(function() d(lg.randn(2, 5, 8), lg.randn(3, 4, 8)) end,
      "TransformerDecoderLayer: tgt [2,5,8] and memory [3,4,8] disagree on "
      .. "the batch size")
    assert.has_error(function() nn.TransformerEncoder(d, 2) end,
      "TransformerEncoder: expected a TransformerEncoderLayer (got "
      .. "TransformerDecoderLayer)")
    local t = nn.Transformer(ff{d_model = 8, nhead = 2, num_encoder_layers = 1,
                                num_decoder_layers = 1})
    assert.has_error(function() t(lg.randn(2, 5, 8), lg.randn(3, 5, 8)) end,
      "Transformer: the batch size of src [2,5,8] and tgt [3,5,8] must be equal")
    assert.has_error(function()
      nn.TransformerEncoderLayer(8, 2, {activation = "tanh"})
    end, "TransformerEncoderLayer: activation must be \"relu\", \"gelu\" or "
      .. "a function (got tanh)")
  end)

  it("copies the layer's weights into each of a stack's layers", function()
    local l = nn.TransformerEncoderLayer(8, 2, ff())
    local e = nn.TransformerEncoder(l, 3)
    assert.are.equal(3 * #l:parameters(), #e:parameters())
    assert.allclose(e.layers[3].linear1.weight, l.linear1.weight, 0, 0)
    assert.are_not.equal(e.layers[3].linear1.weight, l.linear1.weight)
  end)

  it("is_causal equals the explicit causal mask", function()
    local l = nn.TransformerEncoderLayer(8, 2, ff{norm_first = true}):double()
    local x = lg.randn({2, 6, 8}, {dtype = "float64"})
    local mask = nn.Transformer.generate_square_subsequent_mask(6,
      {dtype = "float64"})
    assert.allclose(l(x, {is_causal = true}), l(x, {src_mask = mask}),
                    1e-12, 1e-12)
  end)

  it("generate_square_subsequent_mask is -inf above the diagonal", function()
    local m = nn.Transformer.generate_square_subsequent_mask(3)
    assert.are.same({{0, -math.huge, -math.huge}, {0, 0, -math.huge},
                     {0, 0, 0}}, m:totable())
  end)
end)
