-- Installing for real: `make install PREFIX=<tmp>` (and with DESTDIR),
-- then the result used from stock lua5.4, from the installed lgrad binary
-- and from a C host compiled with pkg-config against the installed
-- library (shared and static), then `make uninstall` leaving no file; the
-- rock built from a clean copy of the tree into a temporary LuaRocks tree
-- (when luarocks is installed), used the same ways and removed.  Every
-- command runs under `timeout`.  The version in VERSION must agree with
-- lg._VERSION, `lgrad -v`, lgrad.pc, the rockspec and debian/changelog.
local h = require "helpers"

local BUILD = os.getenv("LGRAD_BUILD") or "build"
local B = BUILD:match("([^/]+)/?$")
local SAN = os.getenv("LGRAD_SAN") or ""
local q = h.quote

local function slurp(path)
  local f = io.open(path)
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- runs a shell command (stderr with stdout); returns the output and
-- whether it exited 0
local log = os.tmpname()
local function sh(cmd)
  local ok = os.execute("(" .. cmd .. ") > " .. log .. " 2>&1")
  return slurp(log) or "", ok == true
end

local function run(cmd, seconds)
  local out, ok = sh("timeout " .. (seconds or 120) .. " sh -c " .. q(cmd))
  assert(ok, "failed: " .. cmd .. "\n" .. out)
  return out
end

-- make in this tree, outside any make that runs the specs
local function make(args, seconds)
  return run("env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS make " ..
             "--no-print-directory B=" .. q(B) .. " " .. args, seconds or 300)
end

local VERSION = assert(slurp("VERSION")):match("^(%S+)")

-- files and symbolic links under dir (sorted, relative)
local function files_under(dir)
  local out = run("cd " .. q(dir) ..
                  " && find . \\( -type f -o -type l \\) | sort")
  local r = {}
  for line in out:gmatch("[^\n]+") do r[#r + 1] = line:sub(3) end
  return r
end

-- the README's embedding example
local function readme_example(dir)
  local readme = assert(slurp("README.md"))
  local code = readme:match("<!%-%- embed%-example[^\n]*\n```c\n(.-)```")
  assert(code, "README.md has no embed-example block")
  local path = dir .. "/host.c"
  local f = assert(io.open(path, "w"))
  f:write(code)
  f:close()
  return path
end

-- compiles the README example with pkg-config (PKG_CONFIG_PATH=pcdir),
-- runs it and checks what it prints; static = link liblgrad.a
local function host_check(pcdir, libdir, dir, static)
  local src = readme_example(dir)
  local exe = dir .. (static and "/host_static" or "/host")
  local pc = "PKG_CONFIG_PATH=" .. q(pcdir) .. " pkg-config "
  local cmd
  if static then
    -- liblgrad.a by name, then what --static adds (Libs.private, Lua's)
    cmd = "cc -std=gnu99 -Wall -Wextra " .. SAN .. " -o " .. q(exe) .. " " ..
          q(src) .. " $(" .. pc .. "--cflags lgrad) " ..
          q(libdir .. "/liblgrad.a") .. " $(" .. pc ..
          "--static --libs lgrad | sed 's/-llgrad//')"
  else
    cmd = "cc -std=gnu99 -Wall -Wextra " .. SAN .. " -o " .. q(exe) .. " " ..
          q(src) .. " $(" .. pc .. "--cflags --libs lgrad)"
  end
  local warnings = run(cmd)
  assert.equals("", warnings)
  if not static then
    local needed = run("readelf -d " .. q(exe))
    assert.truthy(needed:find("[liblgrad.so.0]", 1, true))
  end
  local out = run("env LD_LIBRARY_PATH=" .. q(libdir) .. " " .. q(exe), 60)
  assert.equals("w = 3.0000\n", out)
end

-- stock lua5.4 with LUA_PATH/LUA_CPATH pointing into an install
local function lua_check(luadir, cmoddir)
  local out = run("env LUA_PATH=" .. q(luadir .. "/?.lua") ..
    " LUA_CPATH=" .. q(cmoddir .. "/?.so") .. " lua5.4 -e " .. q([[
      local lg = require "lgrad"
      io.write(package.searchpath("lgrad", package.cpath), "\n")
      io.write(lg._VERSION, "\n")
      lg.manual_seed(1)
      local m = lg.nn.Linear(3, 1)
      local x = lg.randn(32, 3)
      local y = x:sum(2, true)
      local opt = lg.optim.Adam(m:parameters(), {lr = 0.05})
      local first, last
      for _ = 1, 100 do
        opt:zero_grad()
        local loss = lg.F.mse_loss(m(x), y)
        loss:backward()
        opt:step()
        first = first or loss:item()
        last = loss:item()
      end
      io.write(last < first / 10 and "trained" or "not trained", "\n")]]), 60)
  local path, version, trained = out:match("^(%S+)\n(%S+)\n(%S+)\n$")
  assert.equals(cmoddir .. "/lgrad.so", path, out)
  assert.equals(VERSION, version)
  assert.equals("trained", trained)
end

local function binary_check(bin)
  local out = run(q(bin) .. " -v", 30)
  assert.truthy(out:find("^lgrad " .. VERSION:gsub("%.", "%%.") .. " "), out)
  out = run(q(bin) .. " -e " ..
            q("io.write(lg.nn.Linear(3, 2):num_parameters())"), 30)
  assert.equals("8", out)
end

describe("installing", function()
  local dirs = {}
  local function tmp()
    local d = h.tmpdir()
    dirs[#dirs + 1] = d
    return d
  end
  teardown(function()
    for _, d in ipairs(dirs) do os.execute("rm -rf " .. q(d)) end
    os.remove(log)
  end)

  it("agrees on one version: VERSION, lg._VERSION, lgrad -v, the " ..
     "rockspec and debian/changelog", function()
    assert.truthy(VERSION:match("^%d+%.%d+%.%d+$"), VERSION)
    assert.equals(VERSION, require("lgrad")._VERSION)
    local bin = os.getenv("LGRAD_BIN") or (BUILD .. "/lgrad")
    assert.truthy(run(q(bin) .. " -v", 30):find("lgrad " .. VERSION, 1, true))
    local changelog = assert(slurp("debian/changelog"))
    assert.equals(VERSION, changelog:match("^lgrad %(([^)]+)%)"))
    -- the scm rock builds whatever VERSION says; a release rockspec
    -- would be named lgrad-<VERSION>-<n>
    for name in io.popen("ls rockspecs"):lines() do
      local v = name:match("^lgrad%-(.+)%-%d+%.rockspec$")
      assert(v == "scm" or v == VERSION, "rockspecs/" .. name ..
             " does not match VERSION " .. VERSION)
      local spec = assert(slurp("rockspecs/" .. name))
      assert.truthy(spec:find('version = "' .. v .. '-', 1, true))
    end
  end)

  it("the README's embedding example builds against the build tree " ..
     "(shared and static liblgrad)", function()
    local dir = tmp()
    local src = readme_example(dir)
    local base = "cc -std=gnu99 -Wall -Wextra " .. SAN ..
                 " -I/usr/include/lua5.4 -Ibindings " .. q(src)
    assert.equals("", run(base .. " -L" .. q(BUILD) .. " -llgrad -llua5.4" ..
                          " -o " ..
                          q(dir .. "/shared")))
    assert.equals("", run(base .. " " .. q(BUILD .. "/liblgrad.a") ..
                          " -llua5.4 -ldl -lz -lm -lpthread -o " ..
                          q(dir .. "/static")))
    assert.equals("w = 3.0000\n", run("env LD_LIBRARY_PATH=" .. q(BUILD) ..
                                      " " .. q(dir .. "/shared"), 60))
    assert.equals("w = 3.0000\n", run(q(dir .. "/static"), 60))
  end)

  it("make install PREFIX=... gives a prefix that lua5.4, the binary " ..
     "and a pkg-config host use; make uninstall removes every file",
     function()
    local prefix = tmp() .. "/prefix"
    make("install PREFIX=" .. q(prefix))
    local files = files_under(prefix)
    local want = {"bin/lgrad", "include/lgrad/lgrad.h",
      "include/lgrad/lgrad_host.h", "include/lgrad/nn.h",
      "include/lgrad/ops/ops.def", "lib/liblgrad.a",
      "lib/liblgrad.so", "lib/liblgrad.so.0", "lib/liblgrad.so." .. VERSION,
      "lib/lua/5.4/lgrad.so", "lib/pkgconfig/lgrad.pc",
      "share/lua/5.4/lgrad/nn.lua", "share/man/man1/lgrad.1"}
    for _, f in ipairs(want) do
      local found = false
      for _, g in ipairs(files) do found = found or g == f end
      assert(found, f .. " not installed; got:\n" .. table.concat(files, "\n"))
    end
    -- the shared library is versioned, with its SONAME
    local dyn = run("readelf -d " ..
                    q(prefix .. "/lib/liblgrad.so." .. VERSION))
    assert.truthy(dyn:find("Library soname: [liblgrad.so.0]", 1, true))
    assert.equals("liblgrad.so.0\n",
                  run("readlink " .. q(prefix .. "/lib/liblgrad.so")))
    -- the installed header carries the version; the .pc the prefix
    local header = slurp(prefix .. "/include/lgrad/lgrad.h")
    assert.truthy(header:find('#define LG_VERSION "' .. VERSION .. '"', 1,
                              true))
    local pcdir = prefix .. "/lib/pkgconfig"
    assert.equals(VERSION .. "\n", run("env PKG_CONFIG_PATH=" .. q(pcdir) ..
                                       " pkg-config --modversion lgrad"))
    local flags = run("env PKG_CONFIG_PATH=" .. q(pcdir) ..
                      " pkg-config --cflags --libs lgrad")
    assert.truthy(flags:find("-I" .. prefix .. "/include/lgrad", 1, true))
    assert.truthy(flags:find("-L" .. prefix .. "/lib -llgrad", 1, true))

    lua_check(prefix .. "/share/lua/5.4", prefix .. "/lib/lua/5.4")
    binary_check(prefix .. "/bin/lgrad")
    host_check(pcdir, prefix .. "/lib", tmp(), false)
    host_check(pcdir, prefix .. "/lib", tmp(), true)

    make("uninstall PREFIX=" .. q(prefix))
    assert.same({}, files_under(prefix))
    assert.is_nil(io.open(prefix .. "/include/lgrad"))
    assert.is_nil(io.open(prefix .. "/share/lua/5.4/lgrad"))
  end)

  it("make install DESTDIR=... stages under DESTDIR with the final paths",
     function()
    local dest = tmp()
    make("install DESTDIR=" .. q(dest) ..
         " PREFIX=/usr LIBDIR=/usr/lib/x86_64-linux-gnu")
    local pc = slurp(dest .. "/usr/lib/x86_64-linux-gnu/pkgconfig/lgrad.pc")
    assert.truthy(pc, "no lgrad.pc under DESTDIR")
    assert.truthy(pc:find("\nlibdir=/usr/lib/x86_64-linux-gnu\n", 1, true))
    assert.truthy(io.open(dest ..
      "/usr/lib/x86_64-linux-gnu/lua/5.4/lgrad.so"))
    assert.truthy(io.open(dest .. "/usr/share/lua/5.4/lgrad/nn.lua"))
    make("uninstall DESTDIR=" .. q(dest) ..
         " PREFIX=/usr LIBDIR=/usr/lib/x86_64-linux-gnu")
    assert.same({}, files_under(dest))
  end)

  it("builds the rock from a clean copy into a tree, uses it and " ..
     "removes it", function()
    if not os.execute("command -v luarocks > /dev/null 2>&1") then
      pending("luarocks is not installed (make deps installs it)")
      return
    end
    if h.asan then
      -- the rock builds with LuaRocks' flags, not the sanitizers'
      pending("not under make sanitize")
      return
    end
    local src, tree = tmp() .. "/src", tmp() .. "/tree"
    run("mkdir -p " .. q(src) .. " && tar -cf - --exclude=./build " ..
        "--exclude='./build-*' --exclude=./.git . | tar -xf - -C " .. q(src))
    local lr = "luarocks --lua-version=5.4 --tree " .. q(tree)
    local out = run("cd " .. q(src) .. " && env -u MAKEFLAGS -u MAKELEVEL " ..
                    "MAKEFLAGS=-j2 " .. lr ..
                    " make rockspecs/lgrad-scm-1.rockspec", 900)
    assert.truthy(out:find("lgrad scm%-1 is now installed"), out)
    lua_check(tree .. "/share/lua/5.4", tree .. "/lib/lua/5.4")
    binary_check(tree .. "/bin/lgrad")
    local rockdir = run(lr .. " show --rock-dir lgrad"):match("^(%S+)")
    host_check(rockdir .. "/c/lib/pkgconfig", rockdir .. "/c/lib", tmp(),
               false)
    run(lr .. " remove lgrad")
    -- LuaRocks keeps only its (now empty) manifest
    assert.same({"lib/luarocks/rocks-5.4/manifest"}, files_under(tree))
  end)
end)
