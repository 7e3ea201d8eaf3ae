-- LuaRocks: builds lgrad with its Makefile from a checkout and installs
-- it into a rocks tree.
--
--   luarocks --lua-version=5.4 make rockspecs/lgrad-scm-1.rockspec
--   luarocks --lua-version=5.4 make --tree /tmp/rocks rockspecs/lgrad-scm-1.rockspec
--   luarocks --lua-version=5.4 remove lgrad
--
-- The Lua module (lgrad.so) goes to the tree's C module directory, the Lua
-- half (lgrad/*.lua) to its Lua directory, the lgrad binary to its bin.
-- The files for C hosts (liblgrad, headers, lgrad.pc, the man page) stay
-- in the rock's own directory under c/: for pkg-config,
--   PKG_CONFIG_PATH=$(luarocks --lua-version=5.4 show --rock-dir lgrad)/c/lib/pkgconfig
-- "scm" is the version of whatever the checkout holds; the package
-- version is the file VERSION (lg._VERSION, lgrad -v).
rockspec_format = "3.0"
package = "lgrad"
version = "scm-1"
source = {
  -- `luarocks make` builds the checkout it runs in; the URL is where
  -- `luarocks install lgrad` would clone from once it is published
  url = "git+https://example.invalid/lgrad.git",
}
description = {
  summary = "Tensors, autograd and optimizers in C, driven from Lua 5.4",
  detailed = [[
lgrad trains models and optimizes parameters from Lua 5.4 scripts: tensors,
reverse-mode autograd, optimizers, learning-rate schedulers, regularizers,
modules and a training loop, computed in C with OpenBLAS for matrix
products. Installs the Lua module, the lgrad interpreter and REPL, and
liblgrad for C programs that embed it.]],
  license = "not yet chosen",
}
dependencies = {
  "lua >= 5.4, < 5.5",
}
-- Debian keeps cblas.h under the multiarch include directory, where
-- LuaRocks 3.8 does not look for headers: OpenBLAS is found by its library
-- (lgrad loads libopenblas.so.0 at run time and needs no header of it)
external_dependencies = {
  OPENBLAS = { library = "openblas" },
  ZLIB = { header = "zlib.h", library = "z" },
  READLINE = { header = "readline/readline.h", library = "readline" },
}
build = {
  type = "make",
  build_target = "lib",
  build_variables = {
    CFLAGS = "$(CFLAGS)",
    LIBFLAG = "$(LIBFLAG)",
    LUA_INCDIR = "$(LUA_INCDIR)",
  },
  install_variables = {
    INST_PREFIX = "$(PREFIX)",
    INST_BINDIR = "$(BINDIR)",
    INST_LIBDIR = "$(LIBDIR)",
    INST_LUADIR = "$(LUADIR)",
    LIBDIR = "$(PREFIX)/c/lib",
    INCDIR = "$(PREFIX)/c/include",
    MANDIR = "$(PREFIX)/c/share/man",
  },
}
