-- lg.save / lg.load (safetensors and .npy): round trips, files written by
-- numpy and by an independent writer, hostile files, atomic writes, and a
-- check of lgrad's files by Python (struct + json, and numpy.load).
local lg = require "lgrad"

local expected = dofile("spec/fixtures/io_expected.lua")
local FIX = "spec/fixtures/io/"

local function sh(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  return (out:gsub("%s+$", ""))
end

local TMP = sh("mktemp -d /tmp/lgrad-io-spec.XXXXXX")

local function path(name) return TMP .. "/" .. name end

local function write_file(name, bytes)
  local f = assert(io.open(path(name), "wb"))
  f:write(bytes)
  f:close()
  return path(name)
end

local function read_file(p)
  local f = assert(io.open(p, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function listdir(dir)
  local names = {}
  for n in sh("ls -A " .. dir):gmatch("[^\n]+") do names[#names + 1] = n end
  table.sort(names)
  return names
end

-- the elements of t in C order (a list), and its shape
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

local function same_value(a, b)
  if type(a) == "number" and type(b) == "number" then
    if a ~= a then return b ~= b end
    if a == 0 and b == 0 then return 1 / a == 1 / b end -- keeps -0.0
    return a == b
  end
  return a == b
end

local function assert_tensor(t, dtype, shape, vals)
  assert.equals(dtype, t:dtype())
  assert.same(shape, t:shape())
  local got = values(t)
  assert.equals(#vals, #got)
  for i = 1, #vals do
    if not same_value(vals[i], got[i]) then
      error(string.format("element %d: expected %s, got %s", i,
        tostring(vals[i]), tostring(got[i])), 2)
    end
  end
end

local function assert_like(t, exp)
  assert_tensor(t, exp.dtype, exp.shape, exp.values)
end

local function err_of(fn, ...)
  local ok, e = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return tostring(e)
end

local function assert_error_has(fn, needle)
  local e = err_of(fn)
  if not e:find(needle, 1, true) then
    error(string.format("error %q does not contain %q", e, needle), 2)
  end
end

teardown(function() os.execute("rm -rf " .. TMP) end)

describe("lg.save / lg.load round trips", function()
  local cases = {
    { "float32", {}, { 2.5 } },
    { "float32", { 3 }, { 1.5, -0.25, 2.0 ^ 100 } },
    { "float32", { 2, 3 }, { 1, 2, 3, 4, 5, 6 } },
    { "float32", { 0 }, {} },
    { "float32", { 2, 0, 3 }, {} },
    { "float64", {}, { math.pi } },
    { "float64", { 2, 2 }, { 1e-300, -1e300, 0.1, 5e-324 } },
    { "float64", { 1, 1, 1, 2 }, { -0.0, 1 / 0 } },
    { "float64", { 0, 4 }, {} },
    { "int64", {}, { -7 } },
    { "int64", { 5 }, { math.maxinteger, math.mininteger, 1 << 40, 0, -1 } },
    { "int64", { 0 }, {} },
    { "bool", {}, { true } },
    { "bool", { 2, 2 }, { true, false, false, true } },
    { "bool", { 3, 0 }, {} },
  }

  local function make(dtype, shape, vals)
    if #shape == 0 then return lg.tensor(vals[1], { dtype = dtype }) end
    local numel = 1
    for _, d in ipairs(shape) do numel = numel * d end
    if numel == 0 then return lg.zeros(shape, { dtype = dtype }) end
    return lg.tensor(vals, { dtype = dtype }):reshape(shape)
  end

  for i, c in ipairs(cases) do
    local dtype, shape, vals = c[1], c[2], c[3]
    local label = dtype .. " [" .. table.concat(shape, ",") .. "]"
    it("keeps a " .. label .. " tensor in safetensors", function()
      local t = make(dtype, shape, vals)
      local p = path("rt" .. i .. ".safetensors")
      assert.is_true(lg.save(p, t))
      local back = lg.load(p)
      assert_tensor(back, dtype, shape, vals)
    end)
    it("keeps a " .. label .. " tensor in .npy", function()
      local t = make(dtype, shape, vals)
      local p = path("rt" .. i .. ".npy")
      assert.is_true(lg.save(p, t))
      assert_tensor(lg.load(p), dtype, shape, vals)
    end)
  end

  it("keeps int64 values beyond 2^53 exactly", function()
    local t = lg.load(FIX .. "np_i64.npy") -- holds 2^53 + 1 and -2^62
    lg.save(path("i64.safetensors"), { t = t })
    lg.save(path("i64.npy"), t)
    assert_like(lg.load(path("i64.safetensors")).t, expected.np_i64)
    assert_like(lg.load(path("i64.npy")), expected.np_i64)
  end)

  it("keeps NaN and infinities", function()
    local t = lg.tensor({ 0 / 0, 1 / 0, -1 / 0 }, { dtype = lg.float32 })
    lg.save(path("nan.safetensors"), t)
    assert_tensor(lg.load(path("nan.safetensors")), "float32", { 3 },
      { 0 / 0, 1 / 0, -1 / 0 })
  end)

  it("stores a non-contiguous tensor in C order", function()
    local t = lg.tensor({ { 1, 2, 3 }, { 4, 5, 6 } }, { dtype = lg.float32 })
      :t()
    assert.is_false(t:is_contiguous())
    lg.save(path("tr.safetensors"), { x = t })
    lg.save(path("tr.npy"), t)
    local want = { 1, 4, 2, 5, 3, 6 }
    assert_tensor(lg.load(path("tr.safetensors")).x, "float32", { 3, 2 },
      want)
    assert_tensor(lg.load(path("tr.npy")), "float32", { 3, 2 }, want)
  end)

  it("gives back a nested table as it was saved", function()
    local w1 = lg.tensor({ { 1, 2 }, { 3, 4 } }, { dtype = lg.float32 })
    local b1 = lg.tensor({ 0.5, -0.5 }, { dtype = lg.float64 })
    local value = {
      model = { layers = { { weight = w1, bias = b1 }, { weight = w1 } } },
      epoch = 3,
      lr = 0.001,
      big = math.maxinteger,
      whole = 2.0,
      ratio = 1 / 3,
      inf = -1 / 0,
      name = "mlp",
      flag = false,
      on = true,
      ["a.b"] = lg.tensor(1.0),
      a = { b = lg.tensor(2.0), c = {} },
      empty = {},
      list = { 10, 20, "x", true },
      [7] = "seven",
      [-1] = "minus one",
    }
    local p = path("nested.safetensors")
    lg.save(p, value)
    local v = lg.load(p)
    assert_tensor(v.model.layers[1].weight, "float32", { 2, 2 },
      { 1, 2, 3, 4 })
    assert_tensor(v.model.layers[1].bias, "float64", { 2 }, { 0.5, -0.5 })
    assert_tensor(v.model.layers[2].weight, "float32", { 2, 2 },
      { 1, 2, 3, 4 })
    assert.equals(2, #v.model.layers)
    assert.equals(3, v.epoch)
    assert.equals("integer", math.type(v.epoch))
    assert.equals(math.maxinteger, v.big)
    assert.equals("float", math.type(v.whole))
    assert.equals(2.0, v.whole)
    assert.equals(0.001, v.lr)
    assert.equals(1 / 3, v.ratio)
    assert.equals(-1 / 0, v.inf)
    assert.equals("mlp", v.name)
    assert.equals(false, v.flag)
    assert.equals(true, v.on)
    assert_tensor(v["a.b"], "float32", {}, { 1 })
    assert_tensor(v.a.b, "float32", {}, { 2 })
    assert.same({}, v.a.c)
    assert.same({}, v.empty)
    assert.same({ 10, 20, "x", true }, v.list)
    assert.equals("integer", math.type(next(v.list)))
    assert.equals("seven", v[7])
    assert.equals("minus one", v[-1])
  end)

  it("keeps strings that are not UTF-8 or hold zero bytes", function()
    local bin = "\0\1\255\254 binary \0"
    lg.save(path("str.safetensors"), { bin = bin, utf = "héllo ☃",
      q = "a \"quoted\"\n\\ line" })
    local v = lg.load(path("str.safetensors"))
    assert.equals(bin, v.bin)
    assert.equals("héllo ☃", v.utf)
    assert.equals("a \"quoted\"\n\\ line", v.q)
    lg.save(path("keys.safetensors"), { ["a\0b"] = lg.tensor({ 1.0 }),
      ["c\0"] = "x", ["\u{2603}"] = { [3] = 1 } })
    local k = lg.load(path("keys.safetensors"))
    assert.equals(1, k["a\0b"]:item())
    assert.equals("x", k["c\0"])
    assert.equals(1, k["\u{2603}"][3])
  end)

  it("saves plain values at the root", function()
    lg.save(path("num.safetensors"), 42)
    assert.equals(42, lg.load(path("num.safetensors")))
    lg.save(path("s.safetensors"), "text")
    assert.equals("text", lg.load(path("s.safetensors")))
    lg.save(path("e.safetensors"), {})
    assert.same({}, lg.load(path("e.safetensors")))
  end)

  it("keeps keys that dot to the same name apart", function()
    local v = { a = { b = lg.tensor(1) }, ["a.b"] = lg.tensor(2),
      ["a.b~2"] = 3, __metadata__ = lg.tensor(4), __lgrad__ = 5 }
    lg.save(path("clash.safetensors"), v)
    local back, meta = lg.load(path("clash.safetensors"))
    assert.equals(1, back.a.b:item())
    assert.equals(2, back["a.b"]:item())
    assert.equals(3, back["a.b~2"])
    assert.equals(4, back.__metadata__:item())
    assert.equals(5, back.__lgrad__)
    assert.is_string(meta.__lgrad__)
  end)

  it("saves a shared tensor under each of its paths", function()
    local t = lg.tensor({ 1.0, 2.0 })
    lg.save(path("shared.safetensors"), { x = t, y = t })
    local v = lg.load(path("shared.safetensors"))
    assert_tensor(v.x, "float32", { 2 }, { 1, 2 })
    assert_tensor(v.y, "float32", { 2 }, { 1, 2 })
  end)

  it("writes the same bytes for the same value", function()
    local function value()
      return { b = lg.tensor({ 1, 2 }), a = { z = 1, y = "s" },
        [2] = lg.tensor(3), [1] = true }
    end
    lg.save(path("d1.safetensors"), value())
    lg.save(path("d2.safetensors"), value())
    assert.equals(read_file(path("d1.safetensors")),
      read_file(path("d2.safetensors")))
  end)

  it("refuses values it cannot store, naming where they are", function()
    assert_error_has(function() lg.save(path("f.safetensors"), {
        a = { b = print } }) end, "lg.save: cannot save a function at 'a.b'")
    local cyc = { x = {} }
    cyc.x.y = cyc
    assert_error_has(function() lg.save(path("f.safetensors"), cyc) end,
      "lg.save: a table contains itself at 'x.y'")
    assert_error_has(function() lg.save(path("f.safetensors"),
        { [true] = 1 }) end, "keys must be strings or integers")
    assert_error_has(function() lg.save(path("f.safetensors"),
        { [1.5] = 1 }) end, "keys must be strings or integers")
    assert_error_has(function() lg.save(path("f.safetensors"),
        { ["\255"] = 1 }) end, "a key is not valid UTF-8")
    local deep = {}
    local cur = deep
    for _ = 1, 150 do
      cur.x = {}
      cur = cur.x
    end
    assert_error_has(function() lg.save(path("f.safetensors"), deep) end,
      "tables nested too deep")
    local closed = lg.tensor({ 1.0 })
    closed:close()
    assert_error_has(function() lg.save(path("f.safetensors"),
        { a = { closed } }) end, "lg.save: tensor is closed at 'a.1'")
    assert_error_has(function() lg.save(path("f.npy"), closed) end,
      "tensor is closed")
    assert_error_has(function() lg.save(path("f.npy"), { lg.tensor(1) }) end,
      "lg.save: a .npy file holds one tensor, got table")
    assert_error_has(function() lg.save(path("f.safetensors")) end,
      "bad argument #2")
    assert_error_has(function() lg.save(nil, {}) end, "bad argument #1")
    assert.is_nil(io.open(path("f.safetensors")))
    assert.is_nil(io.open(path("f.npy")))
  end)
end)

describe("lg.save writes atomically", function()
  it("replaces a file and leaves no temporary behind", function()
    local dir = path("atomic")
    os.execute("mkdir -p " .. dir)
    local p = dir .. "/ckpt.safetensors"
    lg.save(p, { step = 1, w = lg.tensor({ 1.0, 2.0, 3.0 }) })
    lg.save(p, { step = 2, w = lg.tensor({ 4.0, 5.0, 6.0 }) })
    lg.save(dir .. "/x.npy", lg.tensor({ 1 }))
    assert.same({ "ckpt.safetensors", "x.npy" }, listdir(dir))
    local v = lg.load(p)
    assert.equals(2, v.step)
    assert_tensor(v.w, "float32", { 3 }, { 4, 5, 6 })
  end)

  it("keeps the previous file when a save fails", function()
    local dir = path("atomic2")
    os.execute("mkdir -p " .. dir)
    local p = dir .. "/ckpt.safetensors"
    lg.save(p, { step = 1 })
    local before = read_file(p)
    -- fails while walking the value, before any byte is written
    assert.has_error(function() lg.save(p, { step = 2, f = print }) end)
    assert.equals(before, read_file(p))
    -- fails at the file system: the target is a directory
    os.execute("mkdir -p " .. dir .. "/sub.safetensors")
    assert_error_has(function() lg.save(dir .. "/sub.safetensors",
        { step = 3 }) end, "sub.safetensors: is a directory")
    -- no directory to write into
    assert_error_has(function() lg.save(dir .. "/none/x.safetensors", {}) end,
      "cannot create a temporary file: No such file or directory")
    assert.same({ "ckpt.safetensors", "sub.safetensors" }, listdir(dir))
    assert.equals(1, lg.load(p).step)
  end)
end)

describe("files written by other programs", function()
  it("loads a safetensors file as a flat table keyed by tensor name",
    function()
      local v, meta = lg.load(FIX .. "foreign.safetensors")
      local n = 0
      for name, t in pairs(v) do
        n = n + 1
        assert.is_not_nil(expected.foreign[name], name)
        assert_like(t, expected.foreign[name])
      end
      assert.equals(10, n)
      assert.is_not_nil(v["layer.0.w"]) -- dotted names stay flat
      assert.same(expected.foreign_meta, meta)
    end)

  for _, name in ipairs { "np_f32", "np_f64", "np_i64", "np_bool", "np_0d",
    "np_empty", "np_3d", "np_fortran", "np_be_f4", "np_i4", "np_u1", "np_f2",
    "np_v2" } do
    it("loads " .. name .. ".npy written by numpy", function()
      assert_like(lg.load(FIX .. name .. ".npy"), expected[name])
    end)
  end
end)

describe("hostile files", function()
  local function st(name, header, data, hlen)
    return write_file(name, string.pack("<I8", hlen or #header) .. header
      .. (data or ""))
  end
  local function entry(dtype, shape, b, e)
    return string.format(
      '{"a":{"dtype":"%s","shape":[%s],"data_offsets":[%s,%s]}}', dtype,
      shape, b, e)
  end
  local function load_err(p) return err_of(lg.load, p) end

  local cases = {
    { "missing file", function() return path("nope.safetensors") end,
      "No such file or directory" },
    { "empty file", function() return write_file("empty.safetensors", "") end,
      "not a safetensors file" },
    { "truncated header length", function()
      return write_file("t1.safetensors", "\5\0\0") end,
      "shorter than the 8-byte header length" },
    { "header length larger than the file", function()
      return st("t2.safetensors", entry("F32", "1", 0, 4), "\0\0\0\0",
        1 << 40) end, "header length 1099511627776 larger than the file" },
    { "header length near 2^64", function()
      return st("t3.safetensors", "{}", "", -1) end,
      "larger than the file" },
    { "truncated header", function()
      return st("t4.safetensors", entry("F32", "1", 0, 4):sub(1, 20), "",
        60) end, "larger than the file" },
    { "shape whose product overflows", function()
      return st("t5.safetensors", entry("F32", "4611686018427387904,4", 0, 4),
        "\0\0\0\0") end, "shape's element count overflows" },
    { "shape times element size overflows", function()
      return st("t6.safetensors", entry("F64", "2305843009213693952", 0, 8),
        string.rep("\0", 8)) end, "shape's element count overflows" },
    { "offsets outside the data", function()
      return st("t7.safetensors", entry("F32", "4", 0, 16), "\0\0\0\0") end,
      "data_offsets [0, 16] outside the data (4 bytes)" },
    { "offsets that disagree with the shape", function()
      return st("t8.safetensors", entry("F32", "2", 0, 4), "\0\0\0\0") end,
      "data_offsets span 4 bytes but dtype and shape need 8" },
    { "offsets beyond 2^63", function()
      return st("t9.safetensors", entry("F32", "1", "9223372036854775807",
        "9223372036854775811"), "\0\0\0\0") end, "data_offsets" },
    { "overlapping tensors", function()
      return st("t10.safetensors",
        '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' ..
        '"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}',
        string.rep("\0", 12)) end, "overlaps the tensor before it" },
    { "a hole in the data", function()
      return st("t11.safetensors", entry("F32", "1", 4, 8),
        string.rep("\0", 8)) end, "hole in the data" },
    { "an absurd dtype", function()
      return st("t12.safetensors", entry("Q1024", "1", 0, 4), "\0\0\0\0") end,
      "unsupported dtype 'Q1024'" },
    { "a negative size", function()
      return st("t13.safetensors", entry("F32", "-1", 0, 4), "\0\0\0\0") end,
      "shape entries must be non-negative integers" },
    { "too many dimensions", function()
      return st("t14.safetensors", entry("F32", "1,1,1,1,1,1,1,1,1", 0, 4),
        "\0\0\0\0") end, "9 dimensions (at most 8)" },
    { "deep JSON nesting", function()
      return st("t15.safetensors", '{"a":' .. string.rep("[", 100000)
        .. string.rep("]", 100000) .. "}") end, "nesting deeper than" },
    { "a header of a million tiny values", function()
      return st("t15b.safetensors", '{"a":{"dtype":"F32","shape":[1],' ..
        '"data_offsets":[0,4],"junk":[' .. string.rep("1,", 1000000) ..
        '1]}}', "\0\0\0\0") end, "more values than the limit" },
    { "malformed JSON", function()
      return st("t16.safetensors", '{"a":{"dtype":"F32",}}') end,
      "bad JSON at byte 20" },
    { "invalid UTF-8 in a name", function()
      return st("t17.safetensors", entry("F32", "1", 0, 4):gsub('"a"',
        '"\255"'), "\0\0\0\0") end, "invalid UTF-8" },
    { "a repeated name", function()
      return st("t18.safetensors",
        '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},' ..
        '"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}',
        string.rep("\0", 8)) end, "tensor name 'a' appears twice" },
    { "metadata that is not a string", function()
      return st("t19.safetensors", '{"__metadata__":{"k":1}}') end,
      "metadata 'k' is not a string" },
    { "a header that is not an object", function()
      return st("t20.safetensors", "[1,2,3]") end,
      "header does not start with '{'" },
    { "data after the last tensor", function()
      return st("t21.safetensors", entry("F32", "1", 0, 4),
        string.rep("\0", 8)) end, "4 bytes of data after the last tensor" },
    { "a damaged lgrad structure", function()
      return st("t22.safetensors",
        '{"__metadata__":{"__lgrad__":"{\\"format\\":\\"lgrad\\",' ..
        '\\"version\\":1,\\"tables\\":[],\\"leaves\\":[[[],\\"t\\",' ..
        '\\"gone\\"]]}"}}') end, "a tensor it names is missing" },
    { "a directory", function() return TMP end, "is a directory" },
  }
  for _, c in ipairs(cases) do
    it("rejects " .. c[1], function()
      local p = c[2]()
      local e = load_err(p)
      assert.truthy(e:find("lg.load: " .. p, 1, true), e)
      assert.truthy(e:find(c[3], 1, true), e)
    end)
  end

  local function npy(name, header, data, major, hlen)
    major = major or 1
    local pre = "\147NUMPY" .. string.char(major, 0)
      .. (major == 1 and string.pack("<I2", hlen or #header)
        or string.pack("<I4", hlen or #header))
    return write_file(name, pre .. header .. (data or ""))
  end
  local npy_cases = {
    { "bad magic", function() return write_file("m.npy", "NUMPY....") end,
      "not a .npy file" },
    { "truncated data", function()
      return npy("n1.npy",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (10,), }",
        string.rep("\0", 8)) end,
      "truncated data (shape needs 40 bytes, file has 8)" },
    { "header length larger than the file", function()
      return npy("n2.npy", "{}", "", 1, 60000) end,
      "header length 60000 larger than the file" },
    { "an overflowing shape", function()
      return npy("n3.npy", "{'descr': '<f8', 'fortran_order': False, " ..
        "'shape': (4611686018427387904, 4), }") end,
      "shape's element count overflows" },
    { "a size beyond int64", function()
      return npy("n4.npy", "{'descr': '<f8', 'fortran_order': False, " ..
        "'shape': (99999999999999999999,), }") end, "size too large" },
    { "a complex dtype", function()
      return npy("n5.npy", "{'descr': '<c16', 'fortran_order': False, " ..
        "'shape': (1,), }", string.rep("\0", 16)) end,
      "unsupported .npy dtype '<c16'" },
    { "a structured dtype", function()
      return npy("n6.npy", "{'descr': [('a', '<f4')], 'fortran_order': " ..
        "False, 'shape': (1,), }", "\0\0\0\0") end,
      "structured .npy arrays are not supported" },
    { "code in the header", function()
      return npy("n7.npy", "{'descr': __import__('os').system('touch " ..
        path("pwned") .. "'), 'fortran_order': False, 'shape': (1,), }",
        "\0\0\0\0") end, "bad .npy header" },
    { "an unknown version", function() return npy("n8.npy", "{}", "", 9) end,
      "unsupported .npy version 9.0" },
    { "a missing key", function()
      return npy("n9.npy", "{'descr': '<f4', 'shape': (1,), }", "\0\0\0\0")
    end, "needs descr, fortran_order and shape" },
    { "too many dimensions", function()
      return npy("n10.npy", "{'descr': '<f4', 'fortran_order': False, " ..
        "'shape': (1,1,1,1,1,1,1,1,1), }", "\0\0\0\0") end,
      "more than 8 dimensions" },
  }
  for _, c in ipairs(npy_cases) do
    it("rejects a .npy file with " .. c[1], function()
      local p = c[2]()
      local e = load_err(p)
      assert.truthy(e:find("lg.load: " .. p, 1, true), e)
      assert.truthy(e:find(c[3], 1, true), e)
    end)
  end

  it("never evaluates a .npy header", function()
    assert.is_nil(io.open(path("pwned")))
  end)

  it("survives random damage to valid files", function()
    -- every damaged file either loads or raises a Lua error
    local seeds = { FIX .. "foreign.safetensors", FIX .. "np_3d.npy",
      FIX .. "np_fortran.npy" }
    local rng = lg.Generator(7)
    local r = lg.randint(0, 255, { 3 * 300 * 4 }, { generator = rng })
      :totable()
    local k = 0
    local function nextr()
      k = k + 1
      return r[k]
    end
    local loaded, failed = 0, 0
    for _, f in ipairs(seeds) do
      local orig = read_file(f)
      local ext = f:match("%.%w+$")
      for i = 1, 300 do
        local bytes = { orig:byte(1, -1) }
        local pos = (nextr() * 256 + nextr()) % #bytes + 1
        local kind = nextr() % 3
        if kind == 0 then
          bytes[pos] = nextr()
        elseif kind == 1 then
          for j = #bytes, pos, -1 do bytes[j] = nil end
        else
          bytes[pos] = ("0123456789[]{},:\"-e"):byte(nextr() % 19 + 1)
        end
        local chunks = {}
        for j = 1, #bytes, 4096 do
          chunks[#chunks + 1] = string.char(table.unpack(bytes, j,
            math.min(j + 4095, #bytes)))
        end
        local p = write_file("fuzz" .. i .. ext, table.concat(chunks))
        if pcall(lg.load, p) then loaded = loaded + 1 else failed = failed + 1 end
      end
    end
    assert.equals(900, loaded + failed)
    assert.is_true(failed > 0)
  end)
end)

describe("files read by Python", function()
  local function have_numpy()
    if not io.open("/usr/bin/python3") then return false end
    return os.execute("/usr/bin/python3 -c 'import numpy' 2>/dev/null")
      == true
  end

  it("reads lgrad's safetensors (struct + json) and .npy (numpy.load)",
    function()
      if not have_numpy() then
        pending("needs /usr/bin/python3 with numpy")
        return
      end
      local dir = path("py")
      os.execute("mkdir -p " .. dir)
      lg.save(dir .. "/all.safetensors", {
        w = lg.tensor({ { 1, 2, 3 }, { 4, 5, 6 } }, { dtype = lg.float32 }) / 8,
        d = lg.tensor({ math.pi, -1e-300 }, { dtype = lg.float64 }),
        i = lg.tensor({ math.maxinteger, math.mininteger, 7 },
          { dtype = lg.int64 }),
        m = lg.tensor({ true, false, true }, { dtype = "bool" }),
        z = lg.tensor(2.5),
        e = lg.zeros({ 0, 4 }, { dtype = lg.float64 }),
        nested = { a = { b = lg.tensor({ 9 }, { dtype = lg.int64 }) } },
        epoch = 3, lr = 0.5, name = "mlp", flag = true,
      })
      lg.save(dir .. "/w.npy", lg.tensor({ { 1, 2, 3 }, { 4, 5, 6 } }) / 8)
      lg.save(dir .. "/i.npy", lg.tensor({ math.maxinteger, -5 },
        { dtype = lg.int64 }))
      lg.save(dir .. "/m.npy", lg.tensor({ { true }, { false } },
        { dtype = "bool" }))
      lg.save(dir .. "/z.npy", lg.tensor(math.pi, { dtype = lg.float64 }))
      lg.save(dir .. "/e.npy", lg.zeros({ 2, 0 }))
      local out = sh("/usr/bin/python3 spec/fixtures/check_io.py " .. dir
        .. " 2>&1; echo \"exit=$?\"")
      assert.truthy(out:find("exit=0", 1, true), out)
      assert.truthy(out:find("all checks passed", 1, true), out)
    end)
end)
