# lgrad -- build, demo, tests, benchmarks, packages.
# `make` builds build/liblgrad.a and build/liblgrad.so.0 (the C core and
# the embedding API, for host programs), build/lgrad.so (the Lua module)
# and build/lgrad (the binary).  `make demo` and `make test` first install
# what is missing (make deps).  `make install`, `make uninstall`, `make
# deb`, `make doc`: see "Installing" below.

CC ?= cc
LUA_INCDIR ?= /usr/include/lua5.4
LUA_INC ?= $(LUA_INCDIR)
LUA_LIB ?= -llua5.4
LIBFLAG ?= -shared
OPT ?= -O2 -fvect-cost-model=dynamic -fno-math-errno
SAN ?=
# the one place the version is written; lg._VERSION, lgrad -v, lgrad.pc,
# the library's file name and the installed lgrad.h take it from here
VERSION := $(shell cat VERSION)
SOVERSION = 0
CFLAGS_ALL = -std=gnu99 $(OPT) -g -fPIC -Wall -Wextra -Wno-unused-parameter \
  -pthread $(SAN) -DLG_VERSION='"$(VERSION)"' \
  -DLGRAD_LUADIR='"$(LUA_LMOD)"' $(CPPFLAGS) $(CFLAGS)
LDLIBS_CORE = -ldl -lz -lm -lpthread
B ?= build

DEPS = lua5.4 liblua5.4-dev libopenblas-dev lua-busted libreadline-dev \
  zlib1g-dev dataset-fashion-mnist fortunes fortunes-min
DEPS += luarocks lua-ldoc pkg-config
DEPS += openmpi-bin libopenmpi-dev
DEPS += libdnnl-dev libsleef-dev
DEP_FILES = /usr/bin/lua5.4 /usr/include/lua5.4/lua.h \
  /usr/include/x86_64-linux-gnu/cblas.h /usr/bin/busted \
  /usr/include/readline/readline.h /usr/include/zlib.h \
  /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz \
  /usr/share/games/fortunes/science /usr/share/games/fortunes/riddles
DEP_FILES += /usr/bin/luarocks /usr/bin/ldoc /usr/bin/pkg-config
DEP_FILES += /usr/bin/mpirun /usr/bin/mpicc
DEP_FILES += /usr/include/oneapi/dnnl/dnnl.h \
  /usr/include/x86_64-linux-gnu/sleef.h

RT_SRC = $(wildcard runtime/*.c runtime/*/*.c)
PROG_SRC = bindings/main.c bindings/cli/repl.c
BD_SRC = $(filter-out $(PROG_SRC),$(wildcard bindings/*.c))
RT_OBJ = $(RT_SRC:%.c=$(B)/%.o)
BD_OBJ = $(BD_SRC:%.c=$(B)/%.o)
HDRS = $(wildcard runtime/*.h runtime/*/*.h runtime/*/*.def bindings/*.h \
  bindings/cli/*.h)

.PHONY: all lib deps demo test env install uninstall clean bench sanitize \
  valgrind fuzz lint format doc deb deb-check mpi

all: lib mpi

# lg.dist's MPI piece: the one object linked with libmpi, loaded by
# runtime/dist/dist.c with dlopen under mpirun, so that lgrad and lgrad.so
# never need libmpi.  Built when mpicc (or pkg-config ompi) is found.
MPI_SRC = runtime/dist/mpi/lgrad_mpi.c runtime/dist/mpi_api.h
mpi:
	@if command -v mpicc >/dev/null 2>&1 || \
	    pkg-config --exists ompi 2>/dev/null; then \
	  $(MAKE) --no-print-directory $(B)/lgrad_mpi.so; \
	else echo "no mpicc: lgrad built without MPI (lg.dist is one rank)"; fi

$(B)/lgrad_mpi.so: $(MPI_SRC) Makefile
	@mkdir -p $(B)
	if command -v mpicc >/dev/null 2>&1; then \
	  mpicc -std=gnu99 $(OPT) -g -fPIC -Wall -Wextra -shared -o $@ $<; \
	else $(CC) -std=gnu99 $(OPT) -g -fPIC -Wall -Wextra -shared \
	  $$(pkg-config --cflags ompi) -o $@ $< $$(pkg-config --libs ompi); fi

# what `make install` installs
LIB_SO = $(B)/liblgrad.so.$(VERSION)
lib: $(B)/liblgrad.a $(LIB_SO) $(B)/liblgrad.so.$(SOVERSION) $(B)/liblgrad.so \
  $(B)/lgrad.so $(B)/lgrad

$(B)/%.o: %.c $(HDRS) Makefile VERSION
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -I$(LUA_INC) -c $< -o $@

# the library for host programs: the runtime and the embedding API
# (bindings/, without the binary's main.c), static and shared
$(B)/liblgrad.a: $(RT_OBJ) $(BD_OBJ)
	rm -f $@
	ar rcs $@ $^

$(LIB_SO): $(RT_OBJ) $(BD_OBJ)
	$(CC) $(CFLAGS_ALL) $(LDFLAGS) -shared \
	  -Wl,-soname,liblgrad.so.$(SOVERSION) -o $@ $^ $(LUA_LIB) $(LDLIBS_CORE)

$(B)/liblgrad.so.$(SOVERSION) $(B)/liblgrad.so: $(LIB_SO)
	ln -sf $(notdir $<) $@

# the Lua module: Lua's symbols come from the interpreter that loads it
$(B)/lgrad.so: $(BD_OBJ) $(RT_OBJ)
	$(CC) $(CFLAGS_ALL) $(LDFLAGS) $(LIBFLAG) -o $@ $^ $(LDLIBS_CORE)

$(B)/lgrad: $(PROG_SRC:%.c=$(B)/%.o) $(BD_OBJ) $(RT_OBJ)
	$(CC) $(CFLAGS_ALL) $(LDFLAGS) -Wl,-E -o $@ $^ $(LUA_LIB) -lreadline \
	  $(LDLIBS_CORE)

deps:
	@missing=""; for f in $(DEP_FILES); do [ -e $$f ] || missing=1; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	      apt-get install -y -qq $(DEPS); \
	  else \
	    echo "missing packages; run as root:"; \
	    echo "  apt-get install -y $(DEPS)"; exit 1; \
	  fi; \
	fi

# from another directory: eval "$$(make -s -C DIR env)" (GNU make 4.3
# prints "Entering directory" on stdout for -C before it reads this file,
# and only -s or --no-print-directory on the command line turn that off;
# each line below is also a valid shell command by itself)
env:
	@echo 'export LUA_PATH="$(CURDIR)/bindings/?.lua;$(CURDIR)/$(B)/?.lua;;"'
	@echo 'export LUA_CPATH="$(CURDIR)/$(B)/?.so;;"'
	@echo 'export PATH="$(CURDIR)/$(B):$$PATH"'

demo: deps all
	$(B)/lgrad scripts/demo.lua

test: deps all
	@sh scripts/run_specs.sh $(B)

sanitize:
	$(MAKE) B=build-san OPT=-O1 SAN="-fsanitize=address,undefined -fno-omit-frame-pointer" all
	ASAN_OPTIONS=detect_leaks=0 LGRAD_SAN="-fsanitize=address,undefined" \
	  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  LD_PRELOAD=$$($(CC) -print-file-name=libasan.so) \
	  sh scripts/run_specs.sh build-san

valgrind: all
	VALGRIND=1 sh scripts/run_specs.sh $(B)

lint:
	luacheck bindings/lgrad spec scripts

format:
	clang-format -i runtime/*.c runtime/*.h runtime/*/*.c runtime/*/*.h bindings/*.c bindings/*.h

bench: deps all
	@sh scripts/bench/run.sh $(B)

clean:
	rm -rf build build-san $(FUZZ_B)

include mk/package.mk
include examples/Makefile
include fuzz/Makefile
