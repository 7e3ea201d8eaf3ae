-- Memory of the autograd graph: saved tensors are freed when backward
-- finishes (unless retain_graph) and when a graph's outputs are collected
-- without backward; a long training loop keeps a flat resident size; a very
-- deep chain backwards and is freed without overflowing the C stack.
-- lg.memory_allocated() counts the bytes held by live storages.
local lg = require "lgrad"

local F64 = lg.float64

local function collect()
  collectgarbage()
  collectgarbage()
end

local function live()
  collect()
  return lg.memory_allocated()
end

-- a graph over x whose nodes save several tensors of x's size
local function graph(x)
  local h = x:exp()
  local s = h:sin() * x
  local t = (s:tanh() + h:sigmoid()):log_softmax(1)
  return (t * s):sum()
end

describe("autograd memory", function()
  local x, base, nbytes

  before_each(function()
    x = lg.randn(256, 256, {dtype = F64, requires_grad = true})
    nbytes = 256 * 256 * 8
    base = live()
  end)

  it("frees the saved tensors when backward finishes", function()
    local loss = graph(x)
    collect()
    local with_graph = lg.memory_allocated() - base
    assert.is_true(with_graph >= 5 * nbytes, "the graph holds tensors")
    loss:backward()
    -- loss is still referenced, x.grad now exists; nothing else is left
    local after = live() - base
    assert.is_true(after <= nbytes + 4096,
                   string.format("%d bytes left after backward", after))
    assert.is_nil(loss.grad)
    x.grad = nil
    loss = nil -- luacheck: ignore 311
    assert.is_true(live() - base <= 4096)
  end)

  it("keeps the graph with retain_graph until the last backward",
     function()
    local loss = graph(x)
    loss:backward(nil, {retain_graph = true})
    local retained = live() - base
    assert.is_true(retained >= 5 * nbytes,
                   string.format("only %d bytes retained", retained))
    loss:backward()
    assert.is_true(live() - base <= nbytes + 4096)
  end)

  it("frees the graph when its outputs are collected without backward",
     function()
    for _ = 1, 5 do graph(x) end
    local after = live() - base
    assert.is_true(after <= 4096,
                   string.format("%d bytes left after collection", after))
    assert.is_nil(x.grad)
  end)

  it("frees what lg.grad used, and leaves .grad alone", function()
    local g = lg.grad(graph(x), x)
    assert.equal(256, g:size(1))
    assert.is_true(live() - base <= nbytes + 4096)
    g = nil -- luacheck: ignore 311
    assert.is_true(live() - base <= 4096)
    assert.is_nil(x.grad)
  end)

  it("frees a create_graph graph once the gradient is collected",
     function()
    local g = lg.grad(graph(x), x, {create_graph = true})
    local hv = lg.grad((g * g):sum(), x)
    assert.equal(256, hv:size(1))
    g, hv = nil, nil -- luacheck: ignore 311
    assert.is_true(live() - base <= 4096,
                   string.format("%d bytes left", live() - base))
  end)
end)

describe("a deep chain", function()
  it("x = x * 1.0001 200,000 times backwards without a stack overflow",
     function()
    local base = live()
    local x = lg.ones({}, {dtype = F64, requires_grad = true})
    local y = x
    local n = 200000
    for _ = 1, n do y = y * 1.0001 end
    y:backward()
    assert.near(1.0001 ^ n, x.grad:item(), 1.0001 ^ n * 1e-9)
    assert.near(1.0001 ^ n, y:item(), 1.0001 ^ n * 1e-9)
    y = nil -- luacheck: ignore 311
    x.grad = nil
    assert.is_true(live() - base <= 4096)
  end)

  it("is freed without backward, from either end", function()
    local base = live()
    local x = lg.ones({}, {dtype = F64, requires_grad = true})
    local y = x
    for _ = 1, 200000 do y = y:mul(1.0001) end
    y = nil -- luacheck: ignore 311
    assert.is_true(live() - base <= 4096)
    -- a chain with a tensor in the middle still held from Lua
    local mid
    y = x
    for i = 1, 200000 do
      y = y:add(0)
      if i == 100000 then mid = y end
    end
    collect()
    y:backward()
    assert.equal(1, x.grad:item())
    assert.equal(1, mid:item())
    assert.is_nil(mid.grad)
    mid, y = nil, nil -- luacheck: ignore 311
    x.grad = nil
    assert.is_true(live() - base <= 4096)
  end)
end)

describe("a long training loop", function()
  -- AddressSanitizer quarantines freed memory, so the resident size grows
  -- under it whatever the program does
  local h = require "helpers"
  local run = h.asan and pending or it
  run("keeps a flat resident size over 100,000 steps", function()
    -- the child prints VmRSS (kB) at step 10,000 and at the end
    local child = [[
      local lg = require "lgrad"
      ]] .. h.rss_source .. [[
      lg.manual_seed(1)
      local x = lg.randn(8, 4)
      local y = lg.randn(8, 3)
      local w = lg.randn(4, 3, {requires_grad = true})
      local b = lg.zeros(3, {requires_grad = true})
      local function update()
        w:sub_(w.grad * 0.01)
        b:sub_(b.grad * 0.01)
      end
      local first, loss
      for step = 1, 100000 do
        local out = (lg.matmul(x, w) + b):tanh()
        loss = ((out - y) ^ 2):mean()
        loss:backward()
        lg.no_grad(update)
        w.grad = nil
        b.grad = nil
        if step == 10000 then first = rss() end
      end
      print(first, rss(), loss:item())
    ]]
    local cmd = "lua5.4 -e '" .. child:gsub("'", "'\\''") .. "' 2>&1"
    local f = assert(io.popen(cmd))
    local out = f:read("a")
    local ok = f:close()
    assert(ok, out)
    local first, last, loss = out:match("^(%d+)%s+(%d+)%s+(%S+)")
    assert(first, out)
    first, last = tonumber(first), tonumber(last)
    assert.is_true(tonumber(loss) < 2, "the loop trained: " .. out)
    assert.is_true(last <= first * 1.10,
                   string.format("VmRSS grew from %d kB to %d kB", first,
                                 last))
  end)
end)
