-- No data lost: a process killed with SIGKILL in the middle of lg.save
-- leaves the previous checkpoint intact, and a training run resumed from a
-- checkpoint (model, optimizer, scheduler, random state, data order) ends
-- exactly where the uninterrupted run ends.  Runs $LGRAD_BIN in child
-- processes.
local lg = require "lgrad"

local BIN = os.getenv("LGRAD_BIN") or "build/lgrad"

local h = require "helpers"
local quote, tmpdir = h.quote, h.tmpdir

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

describe("lg.save under SIGKILL", function()
  -- the child saves checkpoint i (16 MB of float32 all equal to i, and a
  -- nested table derived from i) over and over, saying "saving i" before
  -- and "saved i" after each save
  local child = [[
    local lg = require "lgrad"
    io.stdout:setvbuf("no")
    local path, i = arg[1], tonumber(arg[2])
    while true do
      local ck = {step = i, w = lg.full({4000000}, i),
                  nested = {x = lg.full({100, 100}, -i), n = i * 3,
                            name = "ckpt" .. i, flags = {i % 2 == 0, true}}}
      io.stdout:write("saving ", i, "\n")
      lg.save(path, ck)
      io.stdout:write("saved ", i, "\n")
      i = i + 1
    end
  ]]

  local function check(ck, path)
    local s = ck.step
    assert.equal("integer", math.type(s), path)
    assert.same({4000000}, ck.w:shape())
    assert.equal(s, ck.w:min():item())
    assert.equal(s, ck.w:max():item())
    assert.same({100, 100}, ck.nested.x:shape())
    assert.equal(-s, ck.nested.x:min():item())
    assert.equal(-s, ck.nested.x:max():item())
    assert.equal(s * 3, ck.nested.n)
    assert.equal("ckpt" .. s, ck.nested.name)
    assert.same({s % 2 == 0, true}, ck.nested.flags)
    return s
  end

  it("always leaves the previous checkpoint loadable and intact (30 kills)",
    function()
      local dir = tmpdir()
      local script, path = dir .. "/child.lua", dir .. "/ckpt.safetensors"
      local log = dir .. "/child.log"
      write(script, child)
      -- checkpoint 0 exists before the first kill
      lg.save(path, {step = 0, w = lg.full({4000000}, 0),
                     nested = {x = lg.full({100, 100}, 0), n = 0,
                               name = "ckpt0", flags = {true, true}}})
      math.randomseed(20240611)
      local last, mid_save = 0, 0
      for kill = 1, 30 do
        -- a seeded random moment: from before the child has started to
        -- several saves in
        local delay = ("%.3f"):format(0.02 + math.random() * 0.6)
        os.execute(("%s %s %s %d > %s 2>&1 & pid=$!; sleep %s; " ..
                    "kill -KILL $pid; wait $pid 2>/dev/null"):format(
          quote(BIN), quote(script), quote(path), last + 1, quote(log),
          delay))
        local ok, ck = pcall(lg.load, path)
        assert(ok, ("after kill %d (%s s): %s"):format(kill, delay,
                                                      tostring(ck)))
        local step = check(ck, path)
        -- the child's own account: the checkpoint is the last one it
        -- finished, or the one it was renaming into place when killed
        local said = slurp(log)
        local saving = tonumber(said:match("saving (%d+)\n$"))
        local saved = {}
        for i in said:gmatch("saved (%d+)") do saved[#saved + 1] = tonumber(i) end
        local done = saved[#saved] or last
        if saving then
          mid_save = mid_save + 1
          assert.is_true(step == done or step == saving,
            ("kill %d: loaded %d, the child had saved %d and was saving %d")
            :format(kill, step, done, saving))
        else
          assert.equal(done, step)
        end
        assert.is_true(step >= last)
        last = step
      end
      -- the kills did land inside lg.save (most moments are)
      assert.is_true(mid_save > 0)
      os.execute("rm -rf " .. quote(dir))
    end)
end)

describe("a training run resumed from a checkpoint", function()
  -- mode "full": trains 6 epochs of 7 batches and saves the final
  -- parameters; mode "crash": the same, checkpointing every 5 steps, and
  -- kills itself with SIGKILL after step 23 (in the middle of epoch 4;
  -- the work since step 20, in the middle of epoch 3, is lost);
  -- mode "resume": loads the checkpoint into fresh objects (after drawing
  -- from the generator, so only the restored state can match) and goes on
  local child = [[
    local lg = require "lgrad"
    local mode, dir = arg[1], arg[2]
    local ckpt = dir .. "/train.safetensors"
    lg.manual_seed(7)
    -- the data: 50 samples, 3 classes, from a fixed generator
    local g = lg.Generator(11)
    local x = lg.randn(50, 6, {generator = g})
    local y = lg.randint(1, 3, {50}, {generator = g})
    local loader = lg.data.DataLoader(lg.data.TensorDataset(x, y),
                                      {batch_size = 8, shuffle = true,
                                       seed = 5})
    local model = lg.nn.Sequential(lg.nn.Linear(6, 16), lg.nn.ReLU(),
                                   lg.nn.Dropout(0.3), lg.nn.Linear(16, 3))
    local opt = lg.optim.Adam(model:parameters(), {lr = 0.01})
    local sched = lg.sched.OneCycle(opt, {max_lr = 0.05, total_steps = 42})
    local step, epoch = 0, 0
    if mode == "resume" then
      lg.randn(100) -- moves the generator: only the restored state can match
      local ck = lg.load(ckpt)
      model:load_state_dict(ck.model)
      opt:load_state_dict(ck.optim)
      sched:load_state_dict(ck.sched)
      loader:load_state_dict(ck.loader)
      lg.rng_state(ck.rng)
      step, epoch = ck.step, ck.epoch
    end
    model:train()
    local function checkpoint()
      lg.save(ckpt, {model = model:state_dict(), optim = opt:state_dict(),
                     sched = sched:state_dict(), loader = loader:state_dict(),
                     rng = lg.rng_state(), step = step, epoch = epoch})
    end
    -- an epoch resumed in the middle goes on in the same call to iter()
    local position = loader:state_dict().position
    local resumed_mid_epoch = mode == "resume" and position > 0 and
                              position < #loader
    while epoch < 6 do
      if not resumed_mid_epoch then epoch = epoch + 1 end
      resumed_mid_epoch = false
      for xb, yb in loader:iter() do
        opt:zero_grad()
        local loss = lg.F.cross_entropy(model(xb), yb)
        loss:backward()
        opt:step()
        sched:step()
        step = step + 1
        if mode == "crash" and step % 5 == 0 then checkpoint() end
        if mode == "crash" and step == 23 then
          io.stdout:flush()
          local pid = io.open("/proc/self/stat"):read("n")
          os.execute("kill -KILL " .. pid)
        end
      end
    end
    lg.save(dir .. "/" .. mode .. ".safetensors",
            {model = model:state_dict(), rng = lg.rng_state(), step = step})
  ]]

  it("ends bit for bit where the uninterrupted run ends", function()
    local dir = tmpdir()
    local script = dir .. "/train.lua"
    write(script, child)
    local function run(mode)
      local out = dir .. "/" .. mode .. ".out"
      local ok, how, code = os.execute(("%s %s %s %s > %s 2>&1"):format(
        quote(BIN), quote(script), mode, quote(dir), quote(out)))
      return ok, how, code, slurp(out)
    end
    local ok, _, _, out = run("full")
    assert(ok, out)
    local crashed, how, code, out2 = run("crash")
    -- the shell reports a child killed by a signal as status 128 + 9
    assert.is_falsy(crashed, out2)
    assert.is_true((how == "exit" and code == 137) or
                   (how == "signal" and code == 9), out2)
    assert.is_nil(io.open(dir .. "/crash.safetensors"))
    local resumed_ok, _, _, out3 = run("resume")
    assert(resumed_ok, out3)
    local full = lg.load(dir .. "/full.safetensors")
    local resumed = lg.load(dir .. "/resume.safetensors")
    assert.equal(full.step, resumed.step)
    assert.same(full.rng, resumed.rng)
    local n = 0
    for name, t in pairs(full.model) do
      n = n + 1
      local r = resumed.model[name]
      assert.is_truthy(r, name)
      assert.same(t:shape(), r:shape())
      assert.is_true(t:eq(r):all():item(),
        ("parameter %s differs by up to %g"):format(name,
          (t - r):abs():max():item()))
    end
    assert.equal(4, n)
    os.execute("rm -rf " .. quote(dir))
  end)
end)
