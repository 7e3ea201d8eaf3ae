-- The REPL, driven through a pseudo-terminal with script(1) from
-- util-linux: the keystrokes are typed ahead, the transcript is read back
-- with terminal escapes removed.  Typed-ahead keys may reach the terminal
-- while it is in canonical mode, so none of its editing characters (^U,
-- ^W, ^C) are used: ^A ^K clear a line instead.
local BIN = os.getenv("LGRAD_BIN") or "build/lgrad"

local function quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function slurp(path)
  local f = io.open(path)
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function have(cmd)
  return os.execute("command -v " .. cmd .. " > /dev/null 2>&1")
end

local tmp = os.tmpname()
local home = tmp .. ".home"
local history = home .. "/.lgrad_history"

-- types `keys` into a REPL (`args` after the binary) and returns what the
-- terminal showed, with "\r\n" as "\n" and escape sequences removed
local function session(keys, args)
  local input, out = tmp .. ".in", tmp .. ".out"
  local f = assert(io.open(input, "w"))
  f:write(keys)
  f:close()
  local cmd = string.format(
    "HOME=%s TERM=dumb timeout 30 script -qfec %s /dev/null < %s > %s 2>&1",
    quote(home), quote(quote(BIN) .. " " .. (args or "")), quote(input),
    quote(out))
  os.execute(cmd)
  local text = slurp(out) or ""
  os.remove(input)
  os.remove(out)
  text = text:gsub("\27%[[%d;?]*[%a@`]", "")  -- CSI sequences
             :gsub("\27[%(%)][%w]", "")       -- charset selection
             :gsub("\27[=>]", "")
             :gsub("\7", "")                  -- bell
             :gsub("\r+\n", "\n"):gsub("\r", "\n")
  return text
end

-- the text after the first REPL prompt (the typed-ahead echo comes first)
local function after_banner(text)
  local i = text:find("lgrad 0.1.0 (", 1, true)
  return i and text:sub(i) or text
end

local has_script = have("script") and have("timeout")

describe("the REPL", function()
  setup(function()
    os.execute("mkdir -p " .. quote(home))
  end)
  teardown(function()
    os.execute("rm -rf " .. quote(home))
    os.remove(tmp)
  end)

  it("is driven through a pseudo-terminal", function()
    assert.is_true(has_script, "script(1) and timeout(1) are needed")
  end)
  if not has_script then return end

  it("prints a banner and the value of an expression", function()
    local t = after_banner(session("1 + 1\n=2 * 21\nos.exit(0)\n"))
    assert.matches("^lgrad 0%.1%.0 %(Lua 5%.4", t)
    assert.truthy(t:find("> 1 + 1\n2\n", 1, true), t)
    assert.truthy(t:find("> =2 * 21\n42\n", 1, true), t)
  end)

  it("prints several values separated by tabs, and nil", function()
    local t = after_banner(session("1, 'two', nil\nnil\nos.exit(0)\n"))
    assert.truthy(t:find("\n1\ttwo\tnil\n", 1, true), t)
    assert.truthy(t:find("> nil\nnil\n", 1, true), t)
  end)

  it("pretty-prints tensors as tostring does", function()
    local t = after_banner(session("lg.ones(2, 3)\nos.exit(0)\n"))
    local f = io.popen(quote(BIN) .. " -e 'io.write(tostring(lg.ones(2, 3)))'")
    local direct = f:read("a")
    f:close()
    assert.truthy(direct:find("2x3", 1, true), direct)
    assert.truthy(direct:find("float32", 1, true), direct)
    assert.truthy(t:find("> lg.ones(2, 3)\n" .. direct .. "\n> os.exit",
                         1, true), t)
  end)

  it("prints tables as constructors", function()
    local t = after_banner(session(
      "{1, 2, x = 'a', sub = {true}}\nlg.ones(2, 3):shape()\nos.exit(0)\n"))
    assert.truthy(t:find('{1, 2, sub = {true}, x = "a"}', 1, true), t)
    assert.truthy(t:find("{2, 3}", 1, true), t)
  end)

  it("prints errors and keeps going", function()
    local t = after_banner(session(
      "error('boom')\nlg.zeros(2, 3) + lg.zeros(4, 5)\nx = = 1\n" ..
      "'still alive'\nos.exit(0)\n"))
    assert.truthy(t:find("stdin:1: boom", 1, true), t)
    assert.truthy(t:find("[2,3]", 1, true) and t:find("[4,5]", 1, true), t)
    assert.truthy(t:find("unexpected symbol near '='", 1, true), t)
    assert.truthy(t:find("\nstill alive\n", 1, true), t)
  end)

  it("continues an incomplete chunk on the next line with >>", function()
    local t = after_banner(session(
      "for i = 1, 3 do\nio.write(i, ';')\nend\n" ..
      "function sq(x)\nreturn x * x\nend\nsq(9)\n" ..
      "1 +\n2\nos.exit(0)\n"))
    assert.truthy(t:find("> for i = 1, 3 do\n>> io.write(i, ';')\n>> end\n" ..
                         "1;2;3;", 1, true), t)
    assert.truthy(t:find("> sq(9)\n81\n", 1, true), t)
    assert.truthy(t:find("> 1 +\n>> 2\n3\n", 1, true), t)
  end)

  it("keeps locals of one chunk only, globals across lines", function()
    local t = after_banner(session("g = 5\nlocal l = 6\ng, l\nos.exit(0)\n"))
    assert.truthy(t:find("> g, l\n5\tnil\n", 1, true), t)
  end)

  it("completes lg's names with Tab", function()
    -- a unique completion is inserted (with "(" after a function)...
    local t = after_banner(session("lg.zeros_l\t2)\nos.exit(0)\n"))
    assert.truthy(t:find("lg.zeros_like(2)", 1, true), t)
    -- ...an ambiguous one up to the common prefix, then listed
    t = after_banner(session("lg.ze\t\t\t\1\11\nos.exit(0)\n"))
    assert.truthy(t:find("> lg.zero", 1, true), t)
    assert.truthy(t:find("lg.zeros(", 1, true), t)
    assert.truthy(t:find("lg.zeros_like(", 1, true), t)
  end)

  it("completes globals, fields of tables and methods of tensors", function()
    local t = after_banner(session(
      "x = lg.ones(3)\nprin\t'p')\nstring.rev\t'ab')\n" ..
      "x:nume\t)\nx.requires_gr\t\nos.exit(0)\n"))
    assert.truthy(t:find("> print('p')\np\n", 1, true), t)
    assert.truthy(t:find("> string.reverse('ab')\nba\n", 1, true), t)
    assert.truthy(t:find("> x:numel()\n3\n", 1, true), t)
    assert.truthy(t:find("> x.requires_grad\nfalse\n", 1, true), t)
  end)

  it("completes a callable table with a parenthesis", function()
    local t = after_banner(session(
      "Callable_x = setmetatable({}, {__call = function() return 'called' " ..
      "end})\nCallable_\t)\nos.exit(0)\n"))
    assert.truthy(t:find("> Callable_x()\ncalled\n", 1, true), t)
  end)

  it("with -i keeps the script's globals", function()
    local script = tmp .. ".lua"
    local f = assert(io.open(script, "w"))
    f:write("w = lg.full({2}, 1.5)\nhelper = function(v) return v * 2 end\n")
    f:close()
    local t = after_banner(session("w:sum():item()\nhelper(21)\nos.exit(0)\n",
                                   "-i " .. quote(script)))
    os.remove(script)
    assert.truthy(t:find("> w:sum():item()\n3.0\n", 1, true), t)
    assert.truthy(t:find("> helper(21)\n42\n", 1, true), t)
  end)

  it("saves the history in ~/.lgrad_history", function()
    os.remove(history)
    session("a_first_entry = 1\nfor i = 1, 2 do\nend\n\4")
    local h = slurp(history)
    assert.truthy(h, "no history file")
    assert.truthy(h:find("a_first_entry = 1", 1, true), h)
    assert.truthy(h:find("for i = 1, 2 do", 1, true), h)
    -- and reads it back: Up arrow recalls the last entry
    os.remove(history)
    session("recall_me = 41 + 1\n\4")
    local t = after_banner(session("\27[A\nrecall_me\nos.exit(0)\n"))
    assert.truthy(t:find("> recall_me\n42\n", 1, true), t)
  end)

  it("quits on Ctrl-D", function()
    local t = session("x = 1\n\4")
    assert.truthy(after_banner(t):find("> x = 1\n> \n", 1, true), t)
  end)
end)
