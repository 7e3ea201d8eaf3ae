-- lg.dist: one rank without mpirun; two ranks under mpirun (the program
-- is spec/dist_worker.lua), every run bounded by `timeout`.
local lg = require "lgrad"
local h = require "helpers"

local BIN = os.getenv("LGRAD_BIN") or "build/lgrad"
local BUILD = os.getenv("LGRAD_BUILD") or "build"

local function have(cmd)
  return os.execute("command -v " .. cmd .. " >/dev/null 2>&1") == true
end

local function readable(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end

local mpi_ok = have("mpirun") and have("timeout")
  and readable(BUILD .. "/lgrad_mpi.so")

-- runs the worker on two ranks; returns its output (stdout and stderr)
local function mpirun(mode, dir, extra)
  -- the sanitizer runtime is linked into build-san/lgrad itself; mpirun
  -- is not built for a preloaded one
  local cmd = string.format("env -u LD_PRELOAD timeout 120 mpirun -np 2 "
    .. "--oversubscribe --allow-run-as-root %s %s spec/dist_worker.lua %s "
    .. "%s 2>&1", extra or "", h.quote(BIN), mode, h.quote(dir))
  local f = io.popen(cmd)
  local out = f:read("a")
  f:close()
  return out
end

describe("lg.dist without mpirun", function()
  it("is rank 1 of 1 and its collectives are identities", function()
    lg.dist.init { timeout = 5 }
    assert.equal(1, lg.dist.rank())
    assert.equal(1, lg.dist.world_size())
    assert.is_true(lg.dist.is_main())
    lg.dist.barrier()
    local t = lg.tensor({ 1, 2, 3 })
    assert.equal(t, lg.dist.all_reduce(t, { op = "mean" }))
    assert.same({ 1, 2, 3 }, t:totable())
    assert.same({ 1, 2, 3 }, lg.dist.broadcast(t, 1):totable())
    local g = lg.dist.all_gather(t)
    assert.equal(1, #g)
    assert.same({ 1, 2, 3 }, g[1]:totable())
    assert.same({ 1, 2, 3 }, lg.dist.reduce_scatter(t):totable())
    assert.same({ 1, 2, 3 }, lg.dist.all_reduce_async(t):wait():totable())
  end)

  it("checks its arguments", function()
    assert.has_error(function() lg.dist.all_reduce(3) end,
      "lg.dist.all_reduce: argument 1 must be a tensor, got number")
    assert.has_error(function()
      lg.dist.all_reduce(lg.zeros(2), { op = "prod" })
    end, "lg.dist.all_reduce: op must be \"sum\", \"mean\", \"max\" or "
      .. "\"min\", got prod")
    assert.has_error(function() lg.dist.init { timeout = -1 } end,
      "lg.dist.init: timeout must be a positive number of seconds")
    assert.has_error(function()
      lg.dist.broadcast(lg.zeros(2), 2)
    end, "lg.dist.broadcast: root 2 is not a rank (1..1)")
    assert.has_error(function()
      lg.dist.all_reduce(lg.tensor({ true }), { op = "mean" })
    end, "lg.dist.all_reduce: mean is not defined for a bool tensor")
  end)

  it("wraps a model in DistributedDataParallel that trains as the model",
    function()
      lg.manual_seed(3)
      local net = lg.nn.Sequential(lg.nn.Linear(3, 4), lg.nn.Linear(4, 2))
      local ref = lg.nn.Sequential(lg.nn.Linear(3, 4), lg.nn.Linear(4, 2))
      ref:load_state_dict(net:state_dict())
      local ddp = lg.dist.DDP(net, { bucket_mb = 3e-5 })
      -- reverse registration order; a bucket closes once it holds 31 bytes
      assert.same({ { "1.bias", "1.weight" }, { "0.bias", "0.weight" } },
        ddp:buckets())
      local x = lg.randn(5, 3)
      ddp(x):sum():backward()
      ref(x):sum():backward()
      local rp = ref:parameters()
      for i, p in ipairs(net:parameters()) do
        assert.allclose(p.grad, rp[i].grad)
      end
      assert.equal(1, ddp:stats().backwards)
      assert.equal(2, ddp:stats().launched_early)
    end)

  it("gives a ZeroOptimizer the whole state on one rank", function()
    local w = lg.nn.Parameter(lg.ones(4))
    local z = lg.dist.ZeroOptimizer(lg.optim.Adam({ w }, { lr = 0.1 }))
    w:sum():backward()
    z:step()
    assert.equal(8, z:local_numel()) -- exp_avg and exp_avg_sq
    assert.allclose(w, lg.full({ 4 }, 0.9))
  end)
end)

describe("lg.dist on two ranks (mpirun)", function()
  if not mpi_ok then
    pending("mpirun, timeout or " .. BUILD .. "/lgrad_mpi.so not found")
    return
  end
  local dir = h.tmpdir()
  local out

  setup(function() out = mpirun("all", dir) end)

  it("passes every check of the worker on both ranks", function()
    local oks, fails = 0, {}
    for line in out:gmatch("[^\n]+") do
      if line:find("CHECK .* ok$") then oks = oks + 1 end
      if line:find("CHECK .* FAIL") then fails[#fails + 1] = line end
    end
    assert.same({}, fails)
    -- 24 all_reduce, bool, mean, 4 split, async, reduce_scatter mean, 3x2
    -- ddp, 2 bucket, 3 zero, unused, 4 sampler, 3 fit, size = 51 per rank
    assert.equal(2 * 51, oks, out)
    assert.truthy(out:find("%[1%] finished"), out)
    assert.truthy(out:find("%[2%] finished"), out)
  end)

  it("gives both ranks the same error when their models differ", function()
    local m1 = out:match("%[1%] MISMATCH ([^\n]*)")
    local m2 = out:match("%[2%] MISMATCH ([^\n]*)")
    assert.equal("DistributedDataParallel: the ranks' models differ: rank 1 "
      .. "has parameter 0.weight float32 [12x6] where rank 2 has parameter "
      .. "0.weight float32 [13x6] (entry 1)", m1)
    assert.equal(m1, m2)
  end)

  it("resumes the gathered optimizer state on one rank", function()
    local saved = lg.load(dir .. "/zero.safetensors").state
    local ck = lg.load(dir .. "/ckpt.safetensors")
    lg.manual_seed(3)
    local net = lg.nn.Sequential(lg.nn.Linear(6, 12), lg.nn.Tanh(),
      lg.nn.Linear(12, 12), lg.nn.Tanh(), lg.nn.Linear(12, 3))
    net:load_state_dict(ck.model)
    local z = lg.dist.ZeroOptimizer(lg.optim.Adam(net:parameters()))
    z:load_state_dict(ck.optimizer)
    assert.equal(558, z:local_numel()) -- all of it, on one rank
    assert.truthy(saved["1"] or saved[1])
  end)

  it("names a killed rank on the survivor within the timeout", function()
    -- --enable-recovery: mpirun leaves the survivor running, so that it
    -- finds out by itself (without it mpirun ends the job and names it)
    local o = mpirun("kill", dir, "--enable-recovery")
    assert.truthy(o:find("%[2%] finished") == nil, o)
    assert.truthy(o:find("did not complete within 2[%.%d]* s: missing rank 2 "
      .. "%(process %d+ has died%)"), o)
  end)

  it("trains the cnn-fmnist model on two ranks (scripts/ddp_fmnist.lua)",
    function()
      local f = io.popen(string.format("env -u LD_PRELOAD timeout 300 mpirun "
        .. "-np 2 --oversubscribe --allow-run-as-root %s --threads 1 "
        .. "scripts/ddp_fmnist.lua --small 2>&1", h.quote(BIN)))
      local o = f:read("a")
      f:close()
      local acc = tonumber(o:match("test accuracy: ([%d%.]+)"))
      assert.truthy(acc, o)
      assert.is_true(acc > 0.3, o) -- ten classes: chance is 0.1
      assert.truthy(o:find("2 rank%(s%), global batch 128"), o)
      local _, lines = o:gsub("test accuracy", "")
      assert.equal(1, lines, o) -- rank 1 alone reports
    end)

  it("names a rank that raised on the others", function()
    local o = mpirun("raise", dir)
    assert.truthy(o:find("rank 2 gives up"), o)
    assert.truthy(o:find("rank 2 left the job %(its script ended or raised "
      .. "an error%)"), o)
  end)
end)
