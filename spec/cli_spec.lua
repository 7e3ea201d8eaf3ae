-- The lgrad binary: arg table, -e, -l, -v, -h, --seed, --threads, stdin,
-- error reports and exit status.  Runs $LGRAD_BIN in child processes.
local BIN = os.getenv("LGRAD_BIN") or "build/lgrad"

local tmpfiles = {}

local function tmpfile(content)
  local path = os.tmpname()
  tmpfiles[#tmpfiles + 1] = path
  if content then
    local f = assert(io.open(path, "w"))
    f:write(content)
    f:close()
  end
  return path
end

local function quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- runs the binary with a shell-quoted argument list; returns stdout,
-- stderr and the exit status
local function run(args, stdin)
  local out, err = tmpfile(), tmpfile()
  local cmd = quote(BIN)
  for _, a in ipairs(args) do cmd = cmd .. " " .. quote(a) end
  if stdin then
    cmd = cmd .. " < " .. quote(tmpfile(stdin))
  else
    cmd = cmd .. " < /dev/null"
  end
  local ok, _, code = os.execute(cmd .. " > " .. out .. " 2> " .. err)
  local function slurp(p)
    local f = assert(io.open(p))
    local s = f:read("a")
    f:close()
    return s
  end
  return slurp(out), slurp(err), ok and 0 or code
end

describe("lgrad binary", function()
  teardown(function()
    for _, p in ipairs(tmpfiles) do os.remove(p) end
  end)

  it("sets arg as lua does and passes the arguments as ...", function()
    local script = tmpfile([[
      print(arg[-3], arg[-2], arg[-1], arg[0], #arg, arg[1], arg[2])
      print(select("#", ...), ...)
    ]])
    local out, err, code = run({ "--seed", "7", script, "a b", "-x" })
    assert.equals("", err)
    assert.equals(0, code)
    assert.equals(table.concat({ BIN, "--seed", "7", script, "2", "a b", "-x" },
                               "\t") .. "\n2\ta b\t-x\n", out)
  end)

  it("matches lua5.4's arg table for the same command line", function()
    local script = tmpfile([[
      local keys = {}
      for k in pairs(arg) do keys[#keys + 1] = k end
      table.sort(keys)
      for _, k in ipairs(keys) do
        if k < 0 and arg[k - 1] == nil then io.write(k, "=<interp> ")
        else io.write(k, "=", arg[k], " ") end
      end
    ]])
    local ours = run({ "-e", "x=1", script, "p", "q" })
    local f = io.popen("lua5.4 -e x=1 " .. quote(script) .. " p q")
    local theirs = f:read("a")
    f:close()
    assert.equals(theirs, ours)
  end)

  it("has the global lg and require 'lgrad' giving the same table", function()
    local out, _, code = run({ "-e",
      "print(type(lg), require('lgrad') == lg, lg.zeros(2):numel())" })
    assert.equals(0, code)
    assert.equals("table\ttrue\t2\n", out)
  end)

  it("runs several -e chunks in order, sharing globals", function()
    local out, _, code = run({ "-e", "a = 2", "-e", "a = a * 5",
                               "-e", "print(a)" })
    assert.equals(0, code)
    assert.equals("10\n", out)
  end)

  it("runs -e chunks before the script", function()
    local script = tmpfile("print(pre .. ' then script')\n")
    local out = run({ "-e", "pre = 'chunk'", script })
    assert.equals("chunk then script\n", out)
  end)

  it("requires a module with -l, also as g=mod", function()
    local out, _, code = run({ "-l", "s=string", "-l", "table",
      "-e", "print(s.rep('ab', 2), type(table.concat))" })
    assert.equals(0, code)
    assert.equals("abab\tfunction\n", out)
  end)

  it("prints the version with -v", function()
    local out, _, code = run({ "-v" })
    assert.equals(0, code)
    assert.matches("^lgrad 0%.1%.0 %(Lua 5%.4%.%d+, OpenBLAS [^;)]*; oneDNN [^)]*%)\n$", out)
  end)

  it("prints usage with -h and --help, mentioning every option", function()
    for _, opt in ipairs({ "-h", "--help" }) do
      local out, _, code = run({ opt })
      assert.equals(0, code)
      assert.matches("^usage: lgrad %[options%] %[script %[args%]%]", out)
      for _, o in ipairs({ "-e", "-i", "-l", "-v", "--threads", "--seed" }) do
        assert.truthy(out:find(o, 1, true), o .. " missing from usage")
      end
    end
  end)

  it("gives the same random numbers for the same --seed", function()
    local args = { "-e", "print(lg.randn(5):sum():item(), lg.rand(3):totable()[2])" }
    local a = run({ "--seed", "42", table.unpack(args) })
    local b = run({ "--seed=42", table.unpack(args) })
    local c = run({ "--seed", "43", table.unpack(args) })
    assert.equals(a, b)
    assert.are_not.equals(a, c)
    assert.matches("^%-?%d", a)
  end)

  it("--seed N is lg.manual_seed(N)", function()
    local a = run({ "--seed", "5", "-e", "print(lg.rand(4):sum():item())" })
    local b = run({ "-e", "lg.manual_seed(5) print(lg.rand(4):sum():item())" })
    assert.equals(b, a)
  end)

  it("sets the thread count with --threads and LGRAD_NUM_THREADS", function()
    local out = run({ "--threads", "1", "-e", "print(lg.get_num_threads())" })
    assert.equals("1\n", out)
    out = run({ "--threads=2", "-e", "print(lg.get_num_threads())" })
    assert.equals("2\n", out)
    local f = io.popen("LGRAD_NUM_THREADS=1 " .. quote(BIN) ..
                       " -e 'print(lg.get_num_threads())'")
    assert.equals("1\n", f:read("a"))
    f:close()
  end)

  it("rejects a bad --threads or --seed value", function()
    local _, err, code = run({ "--threads", "0", "-e", "print(1)" })
    assert.equals(1, code)
    assert.equals("lgrad: --threads expects an integer in 1..1024\n", err)
    _, err, code = run({ "--seed", "abc", "-e", "print(1)" })
    assert.equals(1, code)
    assert.equals("lgrad: --seed expects a non-negative integer\n", err)
  end)

  it("reports a script error with a traceback and exits 1", function()
    local script = tmpfile(
      "local function inner() error('bad thing') end\ninner()\n")
    local out, err, code = run({ script })
    assert.equals(1, code)
    assert.equals("", out)
    assert.truthy(err:find("^lgrad: " .. script:gsub("%p", "%%%0") ..
                           ":1: bad thing\nstack traceback:\n"))
    assert.truthy(err:find("in local 'inner'", 1, true))
  end)

  it("reports lgrad's own errors the same way", function()
    local out, err, code = run({ "-e",
      "local a = lg.zeros(2, 3) local b = lg.zeros(4, 5) return lg.matmul(a, b)" })
    assert.equals(1, code)
    assert.equals("", out)
    assert.matches("^lgrad: %(command line%):1: .*matmul.*%[2,3%].*%[4,5%]", err)
  end)

  it("reports a syntax error, a missing file and a bad option", function()
    local _, err, code = run({ "-e", "x = = 1" })
    assert.equals(1, code)
    assert.matches("^lgrad: %(command line%):1: unexpected symbol near '='", err)
    _, err, code = run({ "/nonexistent/script.lua" })
    assert.equals(1, code)
    assert.matches("^lgrad: cannot open /nonexistent/script.lua", err)
    _, err, code = run({ "--no-such-option" })
    assert.equals(1, code)
    assert.matches("^lgrad: unrecognized option '%-%-no%-such%-option'\nusage:", err)
    _, err, code = run({ "-e" })
    assert.equals(1, code)
    assert.matches("^lgrad: '%-e' needs argument", err)
  end)

  it("exits with os.exit's status", function()
    local _, _, code = run({ "-e", "os.exit(3)" })
    assert.equals(3, code)
  end)

  it("runs stdin as a script when it is not a terminal", function()
    local out, _, code = run({}, "print(lg.ones(3):sum():item())\n")
    assert.equals(0, code)
    assert.equals("3.0\n", out)
  end)

  it("runs '-' as stdin with arguments", function()
    local out, _, code = run({ "-", "u", "v" }, "print(arg[0], ...)\n")
    assert.equals(0, code)
    assert.equals("-\tu\tv\n", out)
  end)

  it("with -i and stdin not a terminal, keeps the script's globals", function()
    local script = tmpfile("answer = 6 * 7\n")
    local out, _, code = run({ "-i", script }, "answer + 1\n")
    assert.equals(0, code)
    assert.truthy(out:find("43\n", 1, true))
  end)

  it("finds lgrad's Lua submodules from any directory", function()
    local f = io.popen("cd / && " .. quote(BIN) ..
      " -e 'print(package.searchpath(\"lgrad.data\", package.path) ~= nil)'")
    assert.equals("true\n", f:read("a"))
    f:close()
  end)

  it("runs LUA_INIT first, unless -E", function()
    local f = io.popen("LUA_INIT='init_ran = true' " .. quote(BIN) ..
                       " -e 'print(init_ran)'")
    assert.equals("true\n", f:read("a"))
    f:close()
    f = io.popen("LUA_INIT='init_ran = true' " .. quote(BIN) ..
                 " -E -e 'print(init_ran)'")
    assert.equals("nil\n", f:read("a"))
    f:close()
  end)
end)
