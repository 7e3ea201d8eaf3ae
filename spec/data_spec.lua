-- lg.data: IDX and CSV readers, Fashion-MNIST, TensorDataset, DataLoader.
local lg = require "lgrad"

local expected = dofile("spec/fixtures/io_expected.lua")
local FIX = "spec/fixtures/io/"
local FMNIST = "/usr/share/datasets/fashion-mnist"

local function values(t)
  if t:dim() == 0 then return { t:item() } end
  local out = {}
  local function walk(v)
    if type(v) == "table" then
      for _, x in ipairs(v) do walk(x) end
    else
      out[#out + 1] = v
    end
  end
  walk(t:totable())
  return out
end

local function assert_like(t, exp)
  assert.equals(exp.dtype, t:dtype())
  assert.same(exp.shape, t:shape())
  local got = values(t)
  assert.equals(#exp.values, #got)
  for i, v in ipairs(exp.values) do
    if v ~= v then
      assert.is_true(got[i] ~= got[i], "element " .. i .. " is NaN")
    else
      assert.equals(v, got[i], "element " .. i)
    end
  end
end

local function err_of(fn, ...)
  local ok, e = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return tostring(e)
end

local function has(e, needle)
  assert.truthy(e:find(needle, 1, true),
    string.format("%q does not contain %q", e, needle))
end

describe("lg.data.read_idx", function()
  it("reads every IDX type, plain and gzip", function()
    assert_like(lg.data.read_idx(FIX .. "u8-idx3.gz"), expected.idx_u8)
    assert_like(lg.data.read_idx(FIX .. "i32-idx2.gz"), expected.idx_i32)
    assert_like(lg.data.read_idx(FIX .. "f32-idx1"), expected.idx_f32)
    assert_like(lg.data.read_idx(FIX .. "f64-idx2.gz"), expected.idx_f64)
    assert_like(lg.data.read_idx(FIX .. "i16-idx1"), expected.idx_i16)
  end)

  it("converts while reading (scale, shift, dtype, limit)", function()
    assert_like(lg.data.read_idx(FIX .. "u8-idx3.gz", { scale = 1 / 255 }),
      expected.idx_u8_scaled)
    assert_like(lg.data.read_idx(FIX .. "labels-idx1",
      { dtype = lg.int64, shift = 1 }), expected.idx_labels)
    local first = lg.data.read_idx(FIX .. "u8-idx3.gz", { limit = 2 })
    assert.same({ 2, 2, 2 }, first:shape())
    assert.same({ 0, 21, 42, 63, 84, 105, 126, 147 }, values(first))
    local d = lg.data.read_idx(FIX .. "labels-idx1", { dtype = lg.float64 })
    assert.equals("float64", d:dtype())
    assert.same({ 9, 0, 3, 1 }, values(d))
  end)

  it("rejects bad files with the path and the cause", function()
    has(err_of(lg.data.read_idx, FIX .. "nope"),
      "read_idx: " .. FIX .. "nope: No such file or directory")
    has(err_of(lg.data.read_idx, FIX .. "plain.csv"),
      "not an IDX file (bad magic)")
    local p = os.tmpname()
    local f = assert(io.open(p, "wb"))
    f:write("\0\0\8\2" .. string.pack(">I4>I4", 60000, 60000) .. "abc")
    f:close()
    has(err_of(lg.data.read_idx, p),
      "truncated data (shape needs 3600000000 bytes, the file has 3)")
    -- a few bytes of gzip cannot hold gigabytes: refused before allocating
    os.execute("printf '\\000\\000\\010\\003\\000\\001\\000\\000\\000\\001"
      .. "\\000\\000\\000\\001\\000\\000' | gzip -c > " .. p)
    has(err_of(lg.data.read_idx, p), "the file can hold at most")
    -- a cut gzip stream
    os.execute("head -c 300 " .. FMNIST .. "/t10k-labels-idx1-ubyte.gz > "
      .. p .. " 2>/dev/null")
    if io.open(FMNIST .. "/t10k-labels-idx1-ubyte.gz") then
      has(err_of(lg.data.read_idx, p), "truncated")
    end
    os.remove(p)
    has(err_of(lg.data.read_idx, FIX .. "f32-idx1", { limit = -1 }),
      "limit must be a non-negative integer")
  end)
end)

describe("lg.data.read_csv", function()
  it("reads a header, quoted names, CRLF, blank lines and empty fields",
    function()
      local t, names = lg.data.read_csv(FIX .. "header.csv",
        { header = true, dtype = lg.float64 })
      assert_like(t, expected.csv_header)
      assert.same(expected.csv_header_names, names)
    end)

  it("reads integers with another delimiter", function()
    local t, names = lg.data.read_csv(FIX .. "plain.csv",
      { delimiter = ";", dtype = lg.int64 })
    assert_like(t, expected.csv_plain)
    assert.is_nil(names)
    local f = lg.data.read_csv(FIX .. "plain.csv", { delimiter = ";" })
    assert.equals(lg.get_default_dtype(), f:dtype())
  end)

  it("names the line and column of bad input", function()
    local p = os.tmpname()
    local function with(text)
      local f = assert(io.open(p, "wb"))
      f:write(text)
      f:close()
      return p
    end
    has(err_of(lg.data.read_csv, with("1,2\n3\n")),
      p .. ": line 2 has 1 field, expected 2")
    has(err_of(lg.data.read_csv, with("1,2\n3,x\n")),
      p .. ": line 2, column 2: 'x' is not a number")
    has(err_of(lg.data.read_csv, with("1,2\n3,\"4\n"), {}),
      "unterminated quoted field")
    has(err_of(lg.data.read_csv, with("1,2.5\n"), { dtype = lg.int64 }),
      "'2.5' is not an integer")
    has(err_of(lg.data.read_csv, with("1,2\n"), { delimiter = "ab" }),
      "delimiter must be one character")
    local empty = lg.data.read_csv(with(""))
    assert.same({ 0, 0 }, empty:shape())
    os.remove(p)
  end)
end)

describe("lg.data.fashion_mnist", function()
  local have = io.open(FMNIST .. "/train-labels-idx1-ubyte.gz") ~= nil

  -- the first bytes of a gzip file, decompressed by gzip(1)
  local function raw_bytes(file, n)
    local p = assert(io.popen("gzip -dc " .. FMNIST .. "/" .. file
      .. " | head -c " .. n))
    local s = p:read("a")
    p:close()
    return s
  end

  it("reads the full train and test splits", function()
    if not have then return pending("needs dataset-fashion-mnist") end
    local x, y = lg.data.fashion_mnist("train")
    assert.same({ 60000, 28, 28 }, x:shape())
    assert.same({ 60000 }, y:shape())
    assert.equals("float32", x:dtype())
    assert.equals("int64", y:dtype())
    assert.equals(0, x:min():item())
    assert.equals(1, x:max():item())
    assert.equals(1, y:min():item())
    assert.equals(10, y:max():item())
    -- Fashion-MNIST is balanced: 6000 of each class
    local counts = {}
    for _, c in ipairs(y:totable()) do counts[c] = (counts[c] or 0) + 1 end
    for c = 1, 10 do assert.equals(6000, counts[c]) end
    local xt, yt = lg.data.fashion_mnist("test")
    assert.same({ 10000, 28, 28 }, xt:shape())
    assert.same({ 10000 }, yt:shape())
  end)

  it("matches the raw bytes of the files", function()
    if not have then return pending("needs dataset-fashion-mnist") end
    local x, y = lg.data.fashion_mnist("train", { n = 20 })
    assert.same({ 20, 28, 28 }, x:shape())
    local lab = raw_bytes("train-labels-idx1-ubyte.gz", 8 + 20)
    for i = 1, 20 do assert.equals(lab:byte(8 + i) + 1, y[i]) end
    assert.equals(10, y[1]) -- the first training image is an ankle boot
    local img = raw_bytes("train-images-idx3-ubyte.gz", 16 + 2 * 784)
    local px = values(x:narrow(1, 1, 2))
    for k = 1, 2 * 784 do
      local want = img:byte(16 + k) / 255
      assert.is_true(math.abs(px[k] - want) < 1e-7, "pixel " .. k)
    end
    local _, yt = lg.data.fashion_mnist("test", { n = 3 })
    local tl = raw_bytes("t10k-labels-idx1-ubyte.gz", 11)
    assert.same({ tl:byte(9) + 1, tl:byte(10) + 1, tl:byte(11) + 1 },
      yt:totable())
  end)

  it("checks its arguments", function()
    has(err_of(lg.data.fashion_mnist, "validation"),
      "split must be \"train\" or \"test\"")
    has(err_of(lg.data.fashion_mnist, "train", { dir = "/nonexistent" }),
      "fashion_mnist: cannot find /nonexistent/train-images-idx3-ubyte(.gz)")
    has(err_of(lg.data.fashion_mnist, "train", { n = -1 }),
      "n must be a non-negative integer")
  end)
end)

describe("lg.data.TensorDataset", function()
  it("indexes samples across tensors", function()
    local x = lg.tensor({ { 1, 2 }, { 3, 4 }, { 5, 6 } }, { dtype = lg.float32 })
    local y = lg.tensor({ 7, 8, 9 }, { dtype = lg.int64 })
    local ds = lg.data.TensorDataset(x, y)
    assert.equals(3, #ds)
    local s = ds[2]
    assert.same({ 3, 4 }, s[1]:totable())
    assert.equals(8, s[2]:item())
    local a, b = ds:get(-1)
    assert.same({ 5, 6 }, a:totable())
    assert.equals(9, b:item())
    assert.truthy(tostring(ds):find("3 samples", 1, true))
  end)

  it("refuses mismatched or missing tensors and bad indices", function()
    has(err_of(lg.data.TensorDataset, lg.zeros(3, 2), lg.zeros(4)),
      "TensorDataset: tensor 2 has 4 samples, tensor 1 has 3")
    has(err_of(lg.data.TensorDataset), "needs at least one tensor")
    has(err_of(lg.data.TensorDataset, lg.zeros(2), {}),
      "argument 2 is not a tensor")
    has(err_of(lg.data.TensorDataset, lg.tensor(1.0)), "tensor 1 is 0-d")
    local ds = lg.data.TensorDataset(lg.zeros(3))
    has(err_of(function() return ds[4] end), "index 4 out of range 1..3")
    has(err_of(function() return ds[1.5] end), "index must be an integer")
  end)
end)

describe("lg.data.DataLoader", function()
  local N = 10
  local function dataset()
    local x = lg.range(1, N):view(N, 1):double()
    local y = lg.range(1, N)
    return lg.data.TensorDataset(x, y)
  end

  -- the sample ids of one epoch, batch by batch
  local function epoch(loader)
    local batches = {}
    for xb, yb in loader:iter() do
      local ids = yb:totable()
      assert.same(ids, values(xb)) -- x and y stay aligned
      batches[#batches + 1] = ids
    end
    return batches
  end

  local function flat(batches)
    local out = {}
    for _, b in ipairs(batches) do
      for _, v in ipairs(b) do out[#out + 1] = v end
    end
    return out
  end

  local function sorted(t)
    local c = { table.unpack(t) }
    table.sort(c)
    return c
  end

  it("visits samples in order without shuffle, last batch partial",
    function()
      local loader = lg.data.DataLoader(dataset(), { batch_size = 4 })
      assert.equals(3, #loader)
      assert.same({ { 1, 2, 3, 4 }, { 5, 6, 7, 8 }, { 9, 10 } },
        epoch(loader))
    end)

  it("drops the last partial batch with drop_last", function()
    local loader = lg.data.DataLoader(dataset(),
      { batch_size = 4, drop_last = true })
    assert.equals(2, #loader)
    assert.same({ { 1, 2, 3, 4 }, { 5, 6, 7, 8 } }, epoch(loader))
    local exact = lg.data.DataLoader(dataset(),
      { batch_size = 5, drop_last = true })
    assert.equals(2, #exact)
    assert.equals(2, #epoch(exact))
  end)

  it("gives every sample exactly once per shuffled epoch", function()
    local loader = lg.data.DataLoader(dataset(),
      { batch_size = 3, shuffle = true, seed = 11 })
    assert.equals(4, #loader)
    local orders = {}
    for e = 1, 5 do
      local b = epoch(loader)
      assert.equals(4, #b)
      assert.equals(1, #b[4])
      local ids = flat(b)
      assert.same({ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }, sorted(ids))
      orders[e] = table.concat(ids, ",")
    end
    assert.equals(5, loader.epoch)
    -- a new permutation each epoch
    local distinct = {}
    for _, o in ipairs(orders) do distinct[o] = true end
    local n = 0
    for _ in pairs(distinct) do n = n + 1 end
    assert.is_true(n >= 4)
    assert.are_not.equal("1,2,3,4,5,6,7,8,9,10", orders[1])
  end)

  it("shuffles reproducibly from the seed", function()
    local function run(seed)
      local l = lg.data.DataLoader(dataset(),
        { batch_size = 4, shuffle = true, seed = seed })
      return { flat(epoch(l)), flat(epoch(l)) }
    end
    assert.same(run(3), run(3))
    assert.are_not.same(run(3), run(4))
    -- without a seed, lg.manual_seed decides
    lg.manual_seed(5)
    local a = flat(epoch(lg.data.DataLoader(dataset(), { shuffle = true })))
    lg.manual_seed(5)
    local b = flat(epoch(lg.data.DataLoader(dataset(), { shuffle = true })))
    assert.same(a, b)
  end)

  it("resumes mid-epoch from state_dict with the same batches", function()
    local opts = { batch_size = 3, shuffle = true, seed = 21 }
    local full = lg.data.DataLoader(dataset(), opts)
    local e1, e2 = epoch(full), epoch(full)
    -- interrupted after two batches of epoch 2
    local a = lg.data.DataLoader(dataset(), opts)
    epoch(a)
    local it = a:iter()
    it()
    it()
    local sd = a:state_dict()
    assert.same({ seed = 21, epoch = 2, position = 2, batch_size = 3 }, sd)
    local b = lg.data.DataLoader(dataset(), { batch_size = 3, shuffle = true })
    b:load_state_dict(sd)
    assert.same({ e2[3], e2[4] }, epoch(b))
    assert.same(epoch(full), epoch(b)) -- and epoch 3 onwards
    assert.are_not.same(e1, e2)
    -- a state saved at the end of an epoch starts the next one
    local c = lg.data.DataLoader(dataset(), opts)
    c:load_state_dict({ seed = 21, epoch = 1, position = 4 })
    assert.same(e2, epoch(c))
    has(err_of(function() c:load_state_dict({ seed = 21, epoch = 1,
      position = 1, batch_size = 5 }) end), "saved with batch_size 5")
  end)

  it("batches Dataset-like tables by stacking samples", function()
    local ds = setmetatable({}, {
      __len = function() return 5 end,
      __index = function(_, i)
        return { lg.full({ 2 }, i), i * 10 }
      end,
    })
    local loader = lg.data.DataLoader(ds, { batch_size = 2 })
    local got = {}
    for xb, yb in loader:iter() do
      got[#got + 1] = { xb:shape(), values(xb), yb:totable(), yb:dtype() }
    end
    assert.equals(3, #got)
    assert.same({ 2, 2 }, got[1][1])
    assert.same({ 1, 1, 2, 2 }, got[1][2])
    assert.same({ 10, 20 }, got[1][3])
    assert.equals("int64", got[1][4])
    assert.same({ 1, 2 }, got[3][1])
    assert.same({ 50 }, got[3][3])
    local single = setmetatable({}, {
      __len = function() return 3 end,
      __index = function(_, i) return lg.full({ 1 }, i) end,
    })
    local l2 = lg.data.DataLoader(single, { batch_size = 3 })
    for xb in l2:iter() do assert.same({ 1, 2, 3 }, values(xb)) end
  end)

  it("takes a tensor as a dataset, and handles tiny and empty ones",
    function()
      local l = lg.data.DataLoader(lg.range(1, 3), { batch_size = 8 })
      assert.equals(1, #l)
      assert.same({ { 1, 2, 3 } }, (function()
        local out = {}
        for xb in l:iter() do out[#out + 1] = xb:totable() end
        return out
      end)())
      local e = lg.data.DataLoader(lg.data.TensorDataset(lg.zeros(0, 2)),
        { batch_size = 2, shuffle = true })
      assert.equals(0, #e)
      for _ in e:iter() do error("no batch expected") end
      local d = lg.data.DataLoader(lg.range(1, 3),
        { batch_size = 8, drop_last = true })
      assert.equals(0, #d)
    end)

  it("checks its arguments", function()
    has(err_of(lg.data.DataLoader, dataset(), { batch_size = 0 }),
      "batch_size must be a positive integer, got 0")
    has(err_of(lg.data.DataLoader, 42), "dataset must have a length")
    has(err_of(lg.data.DataLoader, dataset(), 5), "options must be a table")
    has(err_of(lg.data.DataLoader, dataset(), { seed = 1.5 }),
      "seed must be an integer")
  end)
end)
