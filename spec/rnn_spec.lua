-- lg.nn.RNN, LSTM, GRU and their cells against torch 1.13 (float64
-- fixtures from spec/fixtures/gen_rnn.py), gradcheck of the fused op,
-- variable lengths and the errors bad input gets.
local lg = require "lgrad"
require "helpers"
local nn = lg.nn
local fixture = dofile("spec/fixtures/rnn.lua")

local f64 = lg.float64

local function T(f, dtype)
  if f == nil then return nil end
  local d = f.dtype == "int64" and lg.int64 or dtype or f64
  return lg.tensor(f.data, { dtype = d }):reshape(f.shape)
end

local function err_of(fn, ...)
  local ok, e = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return tostring(e)
end

local SEQ = { RNN = true, LSTM = true, GRU = true }

-- the lgrad module of a case with torch's weights loaded
local function build(c, dtype)
  local opts = {}
  for k, v in pairs(c.opts) do opts[k] = v end
  opts.dtype = dtype or f64
  local m = nn[c.kind](c.args[1], c.args[2], opts)
  local sd = {}
  for k, v in pairs(c.state) do sd[k] = T(v, dtype) end
  m:load_state_dict(sd)
  m:eval()
  return m
end

-- runs a case; returns the outputs by name and the leaves by name
local function run(c, dtype)
  local m = build(c, dtype)
  local leaves = { input = T(c.input, dtype):requires_grad_(true) }
  if c.h0 then leaves.h0 = T(c.h0, dtype):requires_grad_(true) end
  if c.c0 then leaves.c0 = T(c.c0, dtype):requires_grad_(true) end
  local outs = {}
  if SEQ[c.kind] then
    local opts = c.lengths and { lengths = T(c.lengths),
                                 enforce_sorted = c.enforce_sorted } or nil
    if c.kind == "LSTM" then
      outs.out, outs.h_n, outs.c_n = m(leaves.input, leaves.h0, leaves.c0, opts)
    else
      outs.out, outs.h_n = m(leaves.input, leaves.h0, opts)
    end
  elseif c.kind == "LSTMCell" then
    outs.h_n, outs.c_n = m(leaves.input, leaves.h0, leaves.c0)
  else
    outs.h_n = m(leaves.input, leaves.h0)
  end
  return m, outs, leaves
end

local names = {}
for k in pairs(fixture.cases) do names[#names + 1] = k end
table.sort(names)

describe("recurrent modules against torch (float64)", function()
  for _, name in ipairs(names) do
    local c = fixture.cases[name]
    it(name .. ": state_dict names, outputs and every gradient", function()
      local m, outs, leaves = run(c)
      -- torch's parameter names, in torch's order
      local keys = {}
      for k in pairs(m:state_dict()) do keys[#keys + 1] = k end
      assert.same(c.keys, keys)
      local total
      for k, u in pairs(c.up) do
        assert.allclose(outs[k], T(c[k]), 1e-10, 1e-12, name .. " " .. k)
        local term = (outs[k] * T(u)):sum()
        total = total and total + term or term
      end
      local wrt, wnames = {}, {}
      for k, p in pairs(m:named_parameters()) do
        wrt[#wrt + 1], wnames[#wnames + 1] = p, k
      end
      for k, v in pairs(leaves) do
        wrt[#wrt + 1], wnames[#wnames + 1] = v, k
      end
      local grads = lg.grad({ total }, wrt)
      for i, k in ipairs(wnames) do
        assert(c.grads[k], "fixture has no gradient for " .. k)
        assert.allclose(grads[i], T(c.grads[k]), 1e-9, 1e-11,
                        name .. " d/d" .. k)
      end
      assert.equals(#wnames, (function()
        local n = 0
        for _ in pairs(c.grads) do n = n + 1 end
        return n
      end)())
    end)
  end

  it("float32 gives torch's values to float32 rounding", function()
    for _, name in ipairs({ "lstm_lengths_bidir_2layer_bf", "gru", "rnn_tanh" }) do
      local c = fixture.cases[name]
      local _, outs = run(c, lg.float32)
      assert.equals("float32", outs.out:dtype())
      assert.allclose(outs.out, T(c.out), 1e-4, 1e-5, name)
      assert.allclose(outs.h_n, T(c.h_n), 1e-4, 1e-5, name)
    end
  end)
end)

describe("the fused recurrent op", function()
  local d = { dtype = f64, requires_grad = true }
  for _, mode in ipairs({ "rnn_tanh", "rnn_relu", "lstm", "gru" }) do
    it(mode .. " passes gradcheck (lengths, both directions)", function()
      local G = mode == "lstm" and 4 or mode == "gru" and 3 or 1
      local Tn, B, I, H = 4, 3, 2, 3
      lg.manual_seed(7)
      local x = lg.randn({ Tn, B, I }, d)
      local h0, c0 = lg.randn({ B, H }, d), lg.randn({ B, H }, d)
      local wih, whh = lg.randn({ G * H, I }, d), lg.randn({ G * H, H }, d)
      local bih, bhh = lg.randn({ G * H }, d), lg.randn({ G * H }, d)
      for _, lens in ipairs({ false, true }) do
        for _, rev in ipairs({ false, true }) do
          local L = lens and lg.tensor({ 4, 2, 1 }, { dtype = lg.int64 }) or nil
          local ok, msg = lg.autograd.gradcheck(
            function(xx, hh, cc, a, b, e, f)
              return lg._rnn.layer(mode, xx, hh, mode == "lstm" and cc or nil,
                                   a, b, e, f, L, rev)
            end, { x, h0, c0, wih, whh, bih, bhh })
          assert(ok, tostring(msg))
        end
      end
    end)
  end

  it("a 2-layer bidirectional LSTM module passes gradcheck", function()
    lg.manual_seed(3)
    local m = nn.LSTM(2, 3, { num_layers = 2, bidirectional = true,
                              batch_first = true, dtype = f64 })
    local x = lg.randn({ 3, 4, 2 }, d)
    local lengths = lg.tensor({ 4, 4, 2 }, { dtype = lg.int64 })
    local params = m:parameters()
    local inputs = { x }
    for _, p in ipairs(params) do inputs[#inputs + 1] = p end
    local ok, msg = lg.autograd.gradcheck(function(xx)
      local out, hn, cn = m(xx, nil, nil, { lengths = lengths })
      return lg.cat({ out:flatten(), hn:flatten(), cn:flatten() }, 1)
    end, inputs)
    assert(ok, tostring(msg))
  end)

  it("computes nothing past a sequence's end", function()
    lg.manual_seed(5)
    local m = nn.GRU(3, 4, { bidirectional = true, dtype = f64 })
    local x = lg.randn({ 5, 2, 3 }, { dtype = f64 })
    local lengths = lg.tensor({ 5, 2 }, { dtype = lg.int64 })
    local function pad(t) return t:narrow(1, 3, 3):select(2, 2) end
    local out, hn = m(x, nil, { lengths = lengths })
    -- padded outputs are exactly zero
    assert.equals(0, pad(out):abs():sum():item())
    -- the padding's values change nothing
    local x2 = x:clone()
    pad(x2):fill_(1e6)
    local out2, hn2 = m(x2, nil, { lengths = lengths })
    assert.allclose(out2, out, 0, 0)
    assert.allclose(hn2, hn, 0, 0)
    -- and get no gradient
    local xg = x:clone():requires_grad_(true)
    local o3 = m(xg, nil, { lengths = lengths })
    o3:sum():backward()
    assert.equals(0, pad(xg.grad):abs():sum():item())
    assert.is_true(xg.grad:narrow(1, 1, 2):select(2, 2):abs():sum():item() > 0)
    -- a sequence of length 2 alone gives the same outputs and state
    local o4, hn4 = m(x:narrow(1, 1, 2):narrow(2, 2, 1))
    assert.allclose(out:narrow(1, 1, 2):narrow(2, 2, 1), o4, 1e-12, 1e-14)
    assert.allclose(hn:narrow(2, 2, 1), hn4, 1e-12, 1e-14)
  end)

  it("refuses double backward instead of giving zero", function()
    local m = nn.LSTM(2, 2, { dtype = f64 })
    local x = lg.randn({ 3, 1, 2 }, { dtype = f64, requires_grad = true })
    local out = m(x)
    local g = lg.grad({ out:pow(2):sum() }, { x }, { create_graph = true })[1]
    assert.matches("double backward", err_of(function() g:sum():backward() end))
  end)
end)

describe("recurrent modules", function()
  it("name and shape their parameters as torch", function()
    local m = nn.GRU(5, 7, { num_layers = 2, bidirectional = true })
    local sd = m:state_dict()
    assert.same({ 21, 5 }, sd.weight_ih_l0:shape())
    assert.same({ 21, 7 }, sd.weight_hh_l0_reverse:shape())
    assert.same({ 21, 14 }, sd.weight_ih_l1:shape())
    assert.same({ 21 }, sd.bias_hh_l1_reverse:shape())
    assert.equals(16, #m:parameters())
    local lstm = nn.LSTM(3, 4, { bias = false })
    assert.same({ "weight_ih_l0", "weight_hh_l0" }, (function()
      local ks = {}
      for k in pairs(lstm:state_dict()) do ks[#ks + 1] = k end
      return ks
    end)())
    assert.matches("LSTM%(3, 4, bias=False%)", tostring(lstm))
    assert.matches("GRU%(5, 7, num_layers=2, bidirectional=True%)", tostring(m))
    -- U(-1/sqrt(H), 1/sqrt(H))
    local bound = 1 / math.sqrt(7)
    for _, p in ipairs(m:parameters()) do
      assert.is_true(p:abs():max():item() <= bound)
    end
  end)

  it("learn: an LSTM fits a delayed copy task", function()
    lg.manual_seed(11)
    local m = nn.LSTM(1, 8, { batch_first = true })
    local head = nn.Linear(8, 1)
    local params = m:parameters()
    for _, p in ipairs(head:parameters()) do params[#params + 1] = p end
    local opt = lg.optim.Adam(params, { lr = 0.03 })
    local x = lg.randn(16, 6, 1)
    local y = lg.cat({ lg.zeros(16, 1, 1), x:narrow(2, 1, 5) }, 2)
    local first, last
    for step = 1, 150 do
      opt:zero_grad()
      local out = m(x)
      local loss = lg.F.mse_loss(head(out), y)
      loss:backward()
      opt:step()
      if step == 1 then first = loss:item() end
      last = loss:item()
    end
    assert.is_true(last < 0.1 * first, ("loss %g -> %g"):format(first, last))
  end)

  it("apply dropout between layers only when training", function()
    lg.manual_seed(2)
    local m = nn.LSTM(3, 4, { num_layers = 2, dropout = 0.5 })
    local x = lg.randn(3, 2, 3)
    m:eval()
    local a, b = m(x), m(x)
    assert.allclose(a, b, 0, 0)
    m:train()
    local c, e = m(x), m(x)
    assert.is_true((c - e):abs():max():item() > 0)
  end)

  it("cells take (x, h, c) or (x, {h, c})", function()
    local cell = nn.LSTMCell(3, 2, { dtype = f64 })
    local x = lg.randn({ 4, 3 }, { dtype = f64 })
    local h, c = lg.randn({ 4, 2 }, { dtype = f64 }), lg.randn({ 4, 2 }, { dtype = f64 })
    local h1, c1 = cell(x, h, c)
    local h2, c2 = cell(x, { h, c })
    assert.allclose(h1, h2, 0, 0)
    assert.allclose(c1, c2, 0, 0)
    -- the cell is one step of the layer with the same weights
    local lstm = nn.LSTM(3, 2, { dtype = f64 })
    lstm:load_state_dict({ weight_ih_l0 = cell.weight_ih, weight_hh_l0 = cell.weight_hh,
                           bias_ih_l0 = cell.bias_ih, bias_hh_l0 = cell.bias_hh })
    local _, hn, cn = lstm(x:unsqueeze(1), h:unsqueeze(1), c:unsqueeze(1))
    assert.allclose(hn[1], h1, 1e-14, 1e-14)
    assert.allclose(cn[1], c1, 1e-14, 1e-14)
  end)
end)

describe("recurrent modules reject bad input", function()
  local lstm = nn.LSTM(10, 4, { batch_first = true })
  it("a (T, B, E) input of the wrong size to a batch_first layer", function()
    assert.matches("LSTM: input must have shape %(B, T, 10%) %(batch_first = true%) or %(T, 10%), got %[5,3,8%]",
                   err_of(lstm, lg.randn(5, 3, 8)))
    assert.matches("LSTM: input must have shape", err_of(lstm, lg.randn(10)))
    assert.matches("LSTM: input must be a tensor", err_of(lstm, 3))
  end)
  it("states of the wrong shape or dtype", function()
    local x = lg.randn(2, 5, 10)
    assert.matches("LSTM: h0 must have shape %[1,2,4%] for the input %[2,5,10%] %(got %[1,5,4%]%)",
                   err_of(lstm, x, lg.zeros(1, 5, 4), lg.zeros(1, 2, 4)))
    assert.matches("LSTM: c0 must have shape %[1,2,4%]",
                   err_of(lstm, x, lg.zeros(1, 2, 4), lg.zeros(2, 2, 4)))
    assert.matches("LSTM: h0 is float64 but the input is float32",
                   err_of(lstm, x, lg.zeros({ 1, 2, 4 }, { dtype = f64 })))
    assert.matches("LSTM: the input is float64 but the parameters are float32",
                   err_of(lstm, x:double()))
    assert.matches("LSTM: expected %(x %[, h0 %[, c0%]%] %[, opts%]%), got 4 arguments",
                   err_of(lstm, x, nil, nil, lg.zeros(1)))
  end)
  it("lengths longer than the sequence, unsorted or malformed", function()
    local x = lg.randn(3, 5, 10)
    local L = function(t) return lg.tensor(t, { dtype = lg.int64 }) end
    assert.matches("LSTM: length 6 of sequence 2 is longer than the input %[3,5,10%] %(5 steps%)",
                   err_of(lstm, x, nil, nil, { lengths = L({ 5, 6, 1 }) }))
    assert.matches("LSTM: lengths %[3,5,1%] must be sorted longest first, or pass {enforce_sorted = false}",
                   err_of(lstm, x, nil, nil, { lengths = L({ 3, 5, 1 }) }))
    assert.matches("LSTM: length 0 of sequence 3 must be at least 1",
                   err_of(lstm, x, nil, nil, { lengths = L({ 5, 3, 0 }) }))
    assert.matches("LSTM: lengths %[2%] must have one value per sequence of the input %[3,5,10%] %(batch size 3%)",
                   err_of(lstm, x, nil, nil, { lengths = L({ 5, 3 }) }))
    assert.matches("LSTM: lengths must be a 1%-d int64 tensor %(got float32 %[3%]%)",
                   err_of(lstm, x, nil, nil, { lengths = lg.ones(3) }))
    assert.matches("LSTM: unknown option 'length'",
                   err_of(lstm, x, nil, nil, { length = L({ 5, 3, 1 }) }))
  end)
  it("bad constructor arguments", function()
    assert.matches("RNN: nonlinearity must be \"tanh\" or \"relu\"",
                   err_of(nn.RNN, 3, 4, { nonlinearity = "sigmoid" }))
    assert.matches("GRU: dropout must be a number in %[0, 1%]",
                   err_of(nn.GRU, 3, 4, { dropout = 2 }))
    assert.matches("LSTM: hidden_size must be an integer", err_of(nn.LSTM, 3, 0))
    assert.matches("GRU: unknown option 'nonlinearity'",
                   err_of(nn.GRU, 3, 4, { nonlinearity = "relu" }))
  end)
  it("cells check their input and states", function()
    local cell = nn.GRUCell(3, 4)
    assert.matches("GRUCell: input must have shape %(B, 3%) or %(3%), got %[2,5%]",
                   err_of(cell, lg.randn(2, 5)))
    assert.matches("GRUCell: h must have shape %[2,4%] for the input %[2,3%] %(got %[4%]%)",
                   err_of(cell, lg.randn(2, 3), lg.randn(4)))
  end)
  it("the raw op checks shapes too", function()
    local x = lg.randn(3, 2, 4)
    assert.matches("lstm: weight_ih must have shape %[8,4%] %(got %[8,3%]%)",
                   err_of(lg._rnn.layer, "lstm", x, lg.zeros(2, 2), lg.zeros(2, 2),
                          lg.zeros(8, 3), lg.zeros(8, 2)))
    assert.matches("gru: lengths must be sorted longest first",
                   err_of(lg._rnn.layer, "gru", x, lg.zeros(2, 2), nil,
                          lg.zeros(6, 4), lg.zeros(6, 2), nil, nil,
                          lg.tensor({ 1, 3 }, { dtype = lg.int64 })))
    assert.matches("lstm: c0 is required",
                   err_of(lg._rnn.layer, "lstm", x, lg.zeros(2, 2), nil,
                          lg.zeros(8, 4), lg.zeros(8, 2)))
  end)
end)

describe("scripts/char_lstm.lua --small", function()
  it("trains, validates and samples", function()
    local bin = os.getenv("LGRAD_BIN") or "build/lgrad"
    local p = assert(io.popen("timeout 600 " .. bin
      .. " scripts/char_lstm.lua --small 2>&1"))
    local out = p:read("a")
    local ok = p:close()
    assert.is_true(ok, out)
    local val = tonumber(out:match("final validation loss: ([%d.]+)"))
    assert.is_not_nil(val, out)
    -- 114 byte values: a model that learned nothing scores log(114) = 4.74
    assert.is_true(val > 0 and val < 4.74, out)
    assert.is_truthy(out:find("iter    12  train loss", 1, true), out)
    local sample = out:match("sample %(temperature 0.8%):\n(.-)\nfinal")
    assert.is_not_nil(sample, out)
    assert.equals("The ", sample:sub(1, 4))
  end)
end)
