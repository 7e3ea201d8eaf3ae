-- The API reference (doc/api/*.luadoc, one LDoc file per module) against
-- the loaded module: every name lgrad exports has an entry, every entry
-- has a one-line example (@usage), and no entry names a function that
-- does not exist.  A failure lists the names and the file to add them to.
--
-- An entry is a doc comment that ends in "-- @function NAME" (methods of a
-- type: "-- @function Type:NAME" after the type's "-- @type Type" block);
-- fields and constants are "-- @field NAME" lines of a "-- @table" block.
-- Names starting with "_" are private and need none.
local h = require "helpers"

local DOC = "doc/api/"

-- name -> {usage = bool} for the entries of one .luadoc file
local function entries(file)
  local f = assert(io.open(DOC .. file .. ".luadoc"))
  local text = f:read("a")
  f:close()
  local r, has_usage = {}, false
  for line in text:gmatch("[^\n]*") do
    if line:match("^%-%-%-") then has_usage = false end
    if line:match("^%-%-%s*@usage") then has_usage = true end
    local fn = line:match("^%-%-%s*@function%s+([%w_%.:]+)")
    if fn then r[fn] = {usage = has_usage, kind = "function"} end
    local field = line:match("^%-%-%s*@field%s+([%w_]+)")
    if field then r[field] = r[field] or {usage = true, kind = "field"} end
  end
  return r
end

-- the public names of a table (no "_" prefix)
local function public(t)
  local names = {}
  for k in pairs(t) do
    if type(k) == "string" and not k:match("^_") then names[#names + 1] = k end
  end
  table.sort(names)
  return names
end

-- the names of `names` with no entry in any of `files` (each name looked
-- up as prefix .. name)
local function missing(names, files, prefix)
  local docs = {}
  for i, f in ipairs(files) do docs[i] = entries(f) end
  local out = {}
  for _, n in ipairs(names) do
    local found = false
    for _, d in ipairs(docs) do
      found = found or d[(prefix or "") .. n] ~= nil
    end
    if not found then out[#out + 1] = (prefix or "") .. n end
  end
  return out
end

local function check(what, names, files, prefix)
  local m = missing(names, files, prefix)
  assert(#m == 0, string.format(
    "%s: %d exported name(s) have no entry in %s%s.luadoc: %s\n" ..
    "add for each a doc comment ending in \"-- @function %s\" (a value: " ..
    "an \"-- @field\" line of a @table block; see the entries there)",
    what, #m, DOC, files[1], table.concat(m, ", "), m[1] or "NAME"))
  return #names
end

local lg = require "lgrad"

-- every module of the reference: its doc file, the exported table
local function modules()
  return {
    {"lg", lg, "lg"},
    {"lg.F", lg.F, "F"},
    {"lg.nn", lg.nn, "nn"},
    {"lg.nn.init", lg.nn.init, "nn.init"},
    {"lg.optim", lg.optim, "optim"},
    {"lg.sched", lg.sched, "sched"},
    {"lg.reg", lg.reg, "reg"},
    {"lg.data", lg.data, "data"},
    {"lg.train", lg.train, "train"},
    {"lg.exp", require "lgrad.exp", "exp"},
    {"lg.plot", lg.plot, "plot"},
    {"lg.autograd", lg.autograd, "autograd"},
    {"lg.dist", lg.dist, "dist"},
    {"lg.explain", lg.explain, "explain"},
    {"lg.privacy", lg.privacy, "privacy"},
  }
end

-- the methods of a class table (functions only, no metamethods)
local function methods(class)
  local r = {}
  for _, n in ipairs(public(class)) do
    if type(class[n]) == "function" then r[#r + 1] = n end
  end
  return r
end

describe("the API reference", function()
  it("has an entry for every exported name of each module", function()
    local total = 0
    for _, m in ipairs(modules()) do
      total = total + check(m[1], public(m[2]), {m[3]})
    end
    assert.is_true(total > 250)
  end)

  it("has an entry for every tensor method (in lg.Tensor or lg)", function()
    check("lg.Tensor", public(lg.Tensor), {"Tensor", "lg"})
  end)

  it("has an entry for the methods of modules, datasets and loaders",
     function()
    check("lg.nn.Module", methods(lg.nn.Module), {"nn"}, "Module:")
    check("lg.data DataLoader", methods(lg.data.DataLoader_class), {"data"},
          "DataLoader:")
    check("lg.data TensorDataset", methods(lg.data.TensorDataset_class),
          {"data"}, "TensorDataset:")
  end)

  it("documents only methods that optimizers, schedulers and " ..
     "regularizers have", function()
    local w = lg.zeros(2, {requires_grad = true})
    local opt = lg.optim.SGD({w}, {lr = 0.1})
    local objects = {
      {"optim", "Optimizer", opt},
      {"sched", "Scheduler", lg.sched.Step(opt, {step_size = 1})},
      {"reg", "Regularizer", lg.reg.L1(0.1)},
    }
    for _, o in ipairs(objects) do
      local count = 0
      for name in pairs(entries(o[1])) do
        local method = name:match("^" .. o[2] .. ":(.+)$")
        if method then
          count = count + 1
          assert(type(o[3][method]) == "function", string.format(
            "%s.luadoc documents %s, which %s objects do not have", o[1],
            name, o[2]))
        end
      end
      assert(count >= 3, o[2] .. ": too few methods documented")
    end
  end)

  it("has no entry for a function that does not exist", function()
    for _, m in ipairs(modules()) do
      for name, e in pairs(entries(m[3])) do
        if e.kind == "function" and not name:find("[.:]") then
          assert(m[2][name] ~= nil, string.format(
            "%s.luadoc documents %s.%s, which %s does not export", m[3],
            m[1], name, m[1]))
        end
      end
    end
    for name in pairs(entries("Tensor")) do
      if not name:find("[.:]") and entries("Tensor")[name].kind ==
          "function" then
        assert(lg.Tensor[name], "Tensor.luadoc documents " .. name ..
               ", which tensors do not have")
      end
    end
    for name in pairs(entries("nn")) do
      local method = name:match("^Module:(.+)$")
      if method then
        assert(lg.nn.Module[method], "nn.luadoc documents " .. name ..
               ", which lg.nn.Module does not have")
      end
    end
  end)

  it("gives every function entry a one-line example (@usage)", function()
    local bad = {}
    for _, f in ipairs({"lg", "Tensor", "F", "nn", "nn.init", "optim",
                        "sched", "reg", "data", "train", "exp", "plot",
                        "autograd"}) do
      for name, e in pairs(entries(f)) do
        if e.kind == "function" and not e.usage then
          bad[#bad + 1] = f .. ".luadoc: " .. name
        end
      end
    end
    table.sort(bad)
    assert(#bad == 0, "entries without @usage: " .. table.concat(bad, ", "))
  end)

  it("finds names that have no entry, and says where to add them",
     function()
    local names = {"zeros", "no_such_function_here"}
    assert.same({"no_such_function_here"}, missing(names, {"lg"}))
    local ok, err = pcall(check, "lg", names, {"lg"})
    assert.is_false(ok)
    assert.matches("doc/api/lg.luadoc: no_such_function_here", err, 1, true)
    assert.matches('"-- @function no_such_function_here"', err, 1, true)
  end)

  it("builds with ldoc (make doc) without warnings", function()
    if not os.execute("command -v ldoc > /dev/null 2>&1") then
      pending("ldoc is not installed (apt-get install lua-ldoc)")
      return
    end
    local dir = h.tmpdir()
    local p = io.popen("timeout 120 ldoc -c doc/config.ld -d " ..
                       h.quote(dir) .. " . 2>&1; echo \"exit $?\"")
    local out = p:read("a")
    p:close()
    assert.matches("exit 0\n$", out)
    for line in out:gmatch("[^\n]+") do
      assert(line:match("^reading") or line:match("^changing") or
             line:match("^output") or line:match("^exit"),
             "ldoc said: " .. line)
    end
    local f = io.open(dir .. "/modules/lg.nn.html")
    assert.truthy(f and f:read("a"):find("Module:parameters", 1, true))
    if f then f:close() end
    os.execute("rm -rf " .. h.quote(dir))
  end)

  it("is linked from the README", function()
    local f = assert(io.open("README.md"))
    local readme = f:read("a")
    f:close()
    assert.truthy(readme:find("(doc/api/)", 1, true))
  end)
end)
