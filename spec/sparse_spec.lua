-- Embedding bags, row-sparse gradients and the optimizers that take them:
-- values and gradients of F.embedding_bag in every mode, and SGD /
-- Adagrad / SparseAdam trajectories, against PyTorch 1.13 (fixtures from
-- spec/fixtures/gen_sparse.py, float64); the engine's accumulation rules;
-- errors; clipping, regularizers, save/load of a table and its state.
local lg = require "lgrad"
require "helpers"

local fx = dofile("spec/fixtures/sparse.lua")
local F = lg.F
local f64 = { dtype = lg.float64 }
local i64 = { dtype = lg.int64 }

local function ids(t) return lg.tensor(t, i64) end

-- ---- embedding_bag against torch -------------------------------------

local function run_bag(case, sparse)
  local w = lg.tensor(fx.bag_weight, { dtype = lg.float64,
                                       requires_grad = true })
  local opts = { mode = case.mode, sparse = sparse,
                 padding_idx = case.padding_idx }
  local psw
  if case.psw then
    psw = lg.tensor(case.psw, { dtype = lg.float64, requires_grad = true })
    opts.per_sample_weights = psw
  end
  local out
  if case.offsets then
    out = F.embedding_bag(ids(case.indices), w, ids(case.offsets), opts)
  else
    out = F.embedding_bag(ids(case.indices), w, opts)
  end
  (out * lg.tensor(case.R, f64)):sum():backward()
  return out, w, psw
end

describe("embedding_bag matches torch 1.13", function()
  for _, case in ipairs(fx.bags) do
    for _, sparse in ipairs { false, true } do
      it(case.name .. (sparse and " (sparse)" or ""), function()
        local out, w, psw = run_bag(case, sparse)
        assert.allclose(out, case.out, 1e-12, 1e-12)
        assert.equal(sparse, w:grad_is_sparse())
        assert.allclose(w.grad, case.grad, 1e-12, 1e-12)
        if case.psw_grad then
          assert.allclose(psw.grad, case.psw_grad, 1e-12, 1e-12)
        end
      end)
    end
  end

  it("embedding with sparse = true and padding_idx", function()
    local e = fx.embedding
    local w = lg.tensor(e.weight, { dtype = lg.float64,
                                    requires_grad = true })
    local out = F.embedding(ids(e.indices), w,
      { padding_idx = e.padding_idx, sparse = true })
    assert.allclose(out, e.out, 1e-12, 1e-12);
    (out * lg.tensor(e.R, f64)):sum():backward()
    assert.is_true(w:grad_is_sparse())
    assert.allclose(w.grad, e.grad, 1e-12, 1e-12)
  end)

  it("nn.EmbeddingBag calls with offsets, per-sample weights and 2-d input",
    function()
      local bag = lg.nn.EmbeddingBag(12, 3, { mode = "sum", dtype = lg.float64 })
      lg.no_grad(function() bag.weight:copy_(lg.tensor(fx.bag_weight, f64)) end)
      for _, case in ipairs(fx.bags) do
        if case.mode == "sum" and not case.padding_idx then
          local y
          local psw = case.psw and lg.tensor(case.psw, f64)
          if case.offsets then
            y = bag(ids(case.indices), ids(case.offsets), psw)
          else
            y = bag(ids(case.indices), nil, psw)
          end
          assert.allclose(y, case.out, 1e-12, 1e-12)
        end
      end
      assert.equal("mean", lg.nn.EmbeddingBag(4, 2).mode)
    end)
end)

describe("embedding_bag gradients (float64 finite differences)", function()
  local idx = ids { 2, 5, 5, 1, 7, 3, 3, 6 }
  local off = ids { 1, 4, 4, 6 }
  for _, mode in ipairs { "sum", "mean", "max" } do
    it(mode, function()
      lg.manual_seed(3)
      local w = lg.randn({ 8, 3 }, { dtype = lg.float64, requires_grad = true })
      local ok, msg = lg.autograd.gradcheck(function(x)
        return F.embedding_bag(idx, x, off, { mode = mode, padding_idx = 6 })
      end, { w })
      assert.is_true(ok, msg)
    end)
  end
  it("sum with per-sample weights", function()
    lg.manual_seed(4)
    local w = lg.randn({ 8, 3 }, { dtype = lg.float64, requires_grad = true })
    local p = lg.randn({ 8 }, { dtype = lg.float64, requires_grad = true })
    local ok, msg = lg.autograd.gradcheck(function(x, q)
      return F.embedding_bag(idx, x, off, { mode = "sum",
                                            per_sample_weights = q })
    end, { w, p })
    assert.is_true(ok, msg)
  end)
end)

-- ---- the sparse gradient itself ---------------------------------------

describe("row-sparse gradients", function()
  it("hold sorted unique rows, duplicates summed", function()
    local w = lg.zeros({ 10, 2 }, { requires_grad = true })
    F.embedding_bag(ids { 7, 2, 7, 7, 9 }, w, ids { 1, 3 },
      { mode = "sum", sparse = true }):sum():backward()
    local rows, vals = w:grad_sparse()
    assert.same({ 2, 7, 9 }, rows:totable())
    assert.same({ { 1, 1 }, { 3, 3 }, { 1, 1 } }, vals:totable())
    assert.same({ 10, 2 }, w.grad:shape())
  end)

  it("sparse + sparse merges the rows; sparse + dense gives dense", function()
    local w = lg.zeros({ 6, 1 }, { requires_grad = true })
    local function bag(list)
      return F.embedding_bag(ids(list), w, ids { 1 },
        { mode = "sum", sparse = true }):sum()
    end
    bag({ 1, 4 }):backward()
    bag({ 4, 6 }):backward()
    local rows, vals = w:grad_sparse()
    assert.same({ 1, 4, 6 }, rows:totable())
    assert.same({ { 1 }, { 2 }, { 1 } }, vals:totable())
    -- the same table used densely in the same graph
    w.grad = nil
    local loss = bag({ 2 }) + (w * 3):sum()
    loss:backward()
    assert.is_false(w:grad_is_sparse())
    assert.same({ { 3 }, { 4 }, { 3 }, { 3 }, { 3 }, { 3 } }, w.grad:totable())
    -- a dense .grad takes a later sparse gradient in place
    bag({ 5 }):backward()
    assert.same({ 3, 4, 3, 3, 4, 3 }, { table.unpack(w.grad:flatten():totable()) })
  end)

  it("through a non-leaf or lg.grad the gradient is dense", function()
    local w = lg.ones({ 5, 2 }, { dtype = lg.float64, requires_grad = true })
    local v = w * 2
    F.embedding_bag(ids { 3 }, v, ids { 1 }, { mode = "sum", sparse = true })
      :sum():backward()
    assert.is_false(w:grad_is_sparse())
    assert.same({ 0, 0, 0, 0, 2, 2, 0, 0, 0, 0 }, w.grad:flatten():totable())
    local g = lg.grad(F.embedding_bag(ids { 2, 2 }, w, ids { 1 },
      { mode = "sum", sparse = true }):sum(), { w })[1]
    assert.same({ 0, 0, 2, 2, 0, 0, 0, 0, 0, 0 }, g:flatten():totable())
  end)

  it("zero_grad without set_to_none leaves an empty sparse gradient",
    function()
      local w = lg.zeros({ 4, 2 }, { requires_grad = true })
      local opt = lg.optim.SparseAdam({ w }, { lr = 0.1 })
      F.embedding_bag(ids { 2 }, w, ids { 1 }, { sparse = true })
        :sum():backward()
      opt:zero_grad(false)
      assert.is_true(w:grad_is_sparse())
      assert.equal(0, (w:grad_sparse()):numel())
      assert.equal(0, w.grad:abs():sum():item())
    end)

  it("clip_grad_norm clips a sparse gradient as its dense form", function()
    local a = lg.zeros({ 6, 2 }, { requires_grad = true })
    local b = lg.zeros({ 6, 2 }, { requires_grad = true })
    for k, w in ipairs { a, b } do
      F.embedding_bag(ids { 1, 3, 3, 6 }, w, ids { 1, 3 },
        { mode = "sum", sparse = k == 1 }):sum():backward()
    end
    local na = lg.reg.clip_grad_norm({ a }, 1.0)
    local nb = lg.reg.clip_grad_norm({ b }, 1.0)
    assert.near(nb, na, 1e-6)
    assert.is_true(a:grad_is_sparse())
    assert.allclose(a.grad, b.grad, 1e-6, 1e-7)
  end)

  it("regularizers add their gradient to the rows the batch used", function()
    local w = lg.full({ 4, 1 }, 2.0, { requires_grad = true })
    F.embedding_bag(ids { 3 }, w, ids { 1 }, { mode = "sum", sparse = true })
      :sum():backward()
    lg.reg.L2(0.5):apply({ w })
    assert.is_true(w:grad_is_sparse())
    assert.same({ 0, 0, 2, 0 }, w.grad:flatten():totable())
  end)
end)

-- ---- optimizers on sparse gradients -----------------------------------

describe("sparse optimizers match torch 1.13", function()
  local O = fx.optim
  for _, case in ipairs(O.cases) do
    it(case.name, function()
      local w = lg.tensor(O.weight, { dtype = lg.float64,
                                      requires_grad = true })
      local opts = {}
      for k, v in pairs(case.opts) do opts[k] = v end
      local opt = lg.optim[case.optim]({ w }, opts)
      for s, b in ipairs(O.batches) do
        local out = F.embedding_bag(ids(b.indices), w, ids(b.offsets),
          { mode = "sum", sparse = true })
        local loss = (out * lg.tensor(b.R, f64)):sum() + (out * out):sum() / 2
        loss:backward()
        assert.is_true(w:grad_is_sparse())
        opt:step()
        opt:zero_grad()
        assert.allclose(w, case.trajectory[s], 1e-10, 1e-12,
          case.name .. " step " .. s)
      end
    end)
  end

  it("rows outside the batch keep their bits (SparseAdam, Adagrad, SGD)",
    function()
      for _, make in ipairs {
        function(p) return lg.optim.SparseAdam(p, { lr = 0.1 }) end,
        function(p) return lg.optim.Adagrad(p, { lr = 0.1 }) end,
        function(p) return lg.optim.SGD(p, { lr = 0.1, momentum = 0.9 }) end,
      } do
        lg.manual_seed(5)
        local w = lg.randn({ 50, 4 }, { requires_grad = true })
        local before = w:clone()
        local opt = make({ w })
        F.embedding_bag(ids { 7, 9, 7 }, w, ids { 1 }, { sparse = true })
          :sum():backward()
        opt:step()
        local changed = w:ne(before):any(2):flatten():totable()
        for r = 1, 50 do
          assert.equal(r == 7 or r == 9, changed[r], "row " .. r)
        end
      end
    end)

  it("a dense optimizer refuses a sparse gradient, naming itself", function()
    local w = lg.zeros({ 4, 2 }, { requires_grad = true })
    local b = lg.zeros({ 2 }, { requires_grad = true })
    F.embedding_bag(ids { 2 }, w, ids { 1 }, { sparse = true }):sum():backward()
    b.grad = lg.ones(2)
    local opt = lg.optim.Adam({ b, w })
    assert.has_error(function() opt:step() end,
      "Adam.step: parameter 2 has a sparse gradient, which Adam does not "
      .. "support (use SparseAdam, SGD or Adagrad for it, or an embedding "
      .. "with sparse = false)")
    assert.has_error(function() lg.optim.SparseAdam({ b }):step() end,
      "SparseAdam.step: parameter 1 has a dense gradient; SparseAdam does "
      .. "not support dense gradients, please consider Adam instead")
    assert.has_error(function()
      lg.optim.Adagrad({ w }, { weight_decay = 0.1 }):step()
    end, "Adagrad.step: weight_decay is not compatible with the sparse "
      .. "gradient of parameter 1")
  end)

  it("SGD momentum continues from a loaded state_dict", function()
    local function run(resume)
      local w = lg.tensor(O.weight, { dtype = lg.float64,
                                      requires_grad = true })
      local opt = lg.optim.SGD({ w }, { lr = 0.1, momentum = 0.9 })
      for s, b in ipairs(O.batches) do
        if resume and s == 4 then
          local sd = opt:state_dict()
          opt = lg.optim.SGD({ w }, { lr = 0.1, momentum = 0.9 })
          opt:load_state_dict(sd)
        end
        F.embedding_bag(ids(b.indices), w, ids(b.offsets),
          { mode = "sum", sparse = true }):pow(2):sum():backward()
        opt:step()
        opt:zero_grad()
      end
      return w
    end
    assert.same(run(false):totable(), run(true):totable())
  end)
end)

-- ---- errors -----------------------------------------------------------

describe("embedding_bag rejects bad input", function()
  local w = lg.zeros(5, 2)
  it("out-of-range ids", function()
    assert.has_error(function()
      F.embedding_bag(ids { 1, 6 }, w, ids { 1 })
    end, "embedding_bag: indices[2] = 6 is out of range 1..5")
    assert.has_error(function()
      F.embedding_bag(ids { { 0, 1 } }, w)
    end, "embedding_bag: indices[1] = 0 is out of range 1..5")
  end)
  it("decreasing offsets, offsets past the end, a bad first offset",
    function()
      assert.has_error(function()
        F.embedding_bag(ids { 1, 2, 3 }, w, ids { 1, 3, 2 })
      end, "embedding_bag: offsets must not decrease (offsets[3] = 2 after 3)")
      assert.has_error(function()
        F.embedding_bag(ids { 1, 2, 3 }, w, ids { 1, 5 })
      end, "embedding_bag: offsets[2] = 5 is past the end of indices "
        .. "(3 indices)")
      assert.has_error(function()
        F.embedding_bag(ids { 1, 2, 3 }, w, ids { 2 })
      end, "embedding_bag: offsets[1] = 2 must be 1 (the first bag starts at "
        .. "the first index)")
    end)
  it("empty bags give zeros in every mode", function()
    for _, mode in ipairs { "sum", "mean", "max" } do
      local y = F.embedding_bag(ids { 2 }, lg.ones(5, 2), ids { 1, 2, 2 },
        { mode = mode })
      assert.same({ { 1, 1 }, { 0, 0 }, { 0, 0 } }, y:totable())
    end
  end)
  it("options and shapes", function()
    assert.has_error(function()
      F.embedding_bag(ids { 1 }, w, ids { 1 }, { mode = "min" })
    end, 'embedding_bag: mode must be "sum", "mean" or "max" (got min)')
    assert.has_error(function()
      F.embedding_bag(ids { 1 }, w, ids { 1 },
        { mode = "mean", per_sample_weights = lg.ones(1) })
    end, "embedding_bag: per_sample_weights are only supported for mode 'sum'")
    assert.has_error(function()
      F.embedding_bag(ids { 1, 2 }, w)
    end, "embedding_bag: indices must be 2-d (bags, length) without offsets, "
      .. "or 1-d with offsets (got [2])")
    assert.has_error(function()
      F.embedding_bag(ids { 1 }, w, ids { 1 }, { padding_idx = 9 })
    end, "embedding_bag: padding_idx 9 out of range for 5 embeddings")
    assert.has_error(function()
      F.embedding_bag(ids { 1 }, w, ids { 1 }, { bogus = 1 })
    end, "embedding_bag: unknown option 'bogus'")
    assert.has_error(function()
      F.embedding_bag(lg.ones(2), w, ids { 1 })
    end, "embedding_bag: indices must be int64 (got float32)")
  end)
end)

-- ---- files ------------------------------------------------------------

describe("save and load", function()
  it("a table and its SparseAdam state round-trip exactly", function()
    local h = require "helpers"
    lg.manual_seed(9)
    local w = lg.randn({ 2000, 16 }, { requires_grad = true })
    local opt = lg.optim.SparseAdam({ w }, { lr = 0.01 })
    for _ = 1, 3 do
      local idx = lg.randint(1, 2000, { 64 })
      F.embedding_bag(idx, w, ids { 1, 33 }, { sparse = true }):pow(2):sum()
        :backward()
      opt:step()
      opt:zero_grad()
    end
    local st = opt:state_dict().state[1]
    local path = h.tmpdir() .. "/table.safetensors"
    lg.save(path, { weight = w:detach(), exp_avg = st.exp_avg,
                    exp_avg_sq = st.exp_avg_sq, step = st.step })
    local back = lg.load(path)
    assert.is_true(lg.equal and lg.equal(back.weight, w) or
                   back.weight:eq(w):all():item())
    assert.is_true(back.exp_avg:eq(st.exp_avg):all():item())
    assert.is_true(back.exp_avg_sq:eq(st.exp_avg_sq):all():item())
    assert.equal(3, back.step)
    os.remove(path)
  end)
end)

-- ---- metrics and the scenario ------------------------------------------

describe("lg.train.auc", function()
  it("is the Mann-Whitney statistic with ties counted half", function()
    -- positives 0.9, 0.5, 0.3 against negatives 0.5, 0.2: 0.9 wins both
    -- (2), 0.5 ties one and wins one (1.5), 0.3 wins one (1): 4.5 of 6
    local auc = lg.train.auc(lg.tensor { 0.9, 0.5, 0.3, 0.5, 0.2 },
                             lg.tensor { 1, 1, 1, 0, 0 })
    assert.near(4.5 / 6, auc, 1e-15)
    assert.equal(1, lg.train.auc(lg.tensor { 3, 1 }, lg.tensor { 1, 0 }))
    assert.is_nil(lg.train.auc(lg.tensor { 3, 1 }, lg.tensor { 1, 1 }))
    assert.has_error(function() lg.train.auc(lg.ones(2), lg.ones(3)) end,
      "auc: scores and labels must be 1-d tensors of one length")
  end)
end)

describe("recommend_dlrm.lua --small", function()
  it("trains and prints its AUC beside the true model's", function()
    local bin = os.getenv("LGRAD_BIN") or "build/lgrad"
    local p = assert(io.popen("timeout 600 " .. bin
      .. " scripts/recommend_dlrm.lua --small 2>&1"))
    local out = p:read("a")
    assert.is_true(p:close(), out)
    local auc, true_auc = out:match("held%-out AUC: model ([%d.]+), true "
                                    .. "model ([%d.]+)")
    assert.is_not_nil(auc, out)
    -- 60K impressions: well above chance, below the truth
    assert.is_true(tonumber(auc) > 0.6, out)
    assert.is_true(tonumber(true_auc) > tonumber(auc), out)
  end)
end)
