# lgrad -- build, demo, tests, benchmarks.
# `make` builds build/liblgrad.a (the C core), build/lgrad.so (the Lua
# module) and build/lgrad (the binary).  `make demo` and `make test` first
# install what is missing (make deps).

CC ?= cc
PREFIX ?= /usr/local
LUA_INC ?= /usr/include/lua5.4
LUA_LIB ?= -llua5.4
OPT ?= -O2 -fvect-cost-model=dynamic -fno-math-errno
SAN ?=
CFLAGS_ALL = -std=gnu99 $(OPT) -g -fPIC -Wall -Wextra -Wno-unused-parameter \
  -pthread $(SAN) $(CFLAGS)
LDLIBS_CORE = -ldl -lz -lm -lpthread
B ?= build

DEPS = lua5.4 liblua5.4-dev libopenblas-dev lua-busted libreadline-dev \
  zlib1g-dev dataset-fashion-mnist fortunes fortunes-min
DEP_FILES = /usr/bin/lua5.4 /usr/include/lua5.4/lua.h \
  /usr/include/x86_64-linux-gnu/cblas.h /usr/bin/busted \
  /usr/include/readline/readline.h /usr/include/zlib.h \
  /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz \
  /usr/share/games/fortunes/science /usr/share/games/fortunes/riddles

RT_SRC = $(wildcard runtime/*.c runtime/*/*.c)
BD_SRC = $(filter-out bindings/main.c,$(wildcard bindings/*.c))
RT_OBJ = $(RT_SRC:%.c=$(B)/%.o)
BD_OBJ = $(BD_SRC:%.c=$(B)/%.o)
HDRS = $(wildcard runtime/*.h runtime/*/*.h runtime/*/*.def bindings/*.h)

.PHONY: all deps demo test env install clean bench sanitize valgrind fuzz \
  lint format

all: $(B)/liblgrad.a $(B)/lgrad.so $(B)/lgrad

$(B)/%.o: %.c $(HDRS) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -I$(LUA_INC) -c $< -o $@

$(B)/liblgrad.a: $(RT_OBJ)
	ar rcs $@ $^

$(B)/lgrad.so: $(BD_OBJ) $(RT_OBJ)
	$(CC) $(CFLAGS_ALL) -shared -o $@ $^ $(LDLIBS_CORE)

$(B)/lgrad: $(B)/bindings/main.o $(BD_OBJ) $(RT_OBJ)
	$(CC) $(CFLAGS_ALL) -Wl,-E -o $@ $^ $(LUA_LIB) -lreadline $(LDLIBS_CORE)

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

env:
	@echo 'export LUA_PATH="$(CURDIR)/bindings/?.lua;$(CURDIR)/$(B)/?.lua;;"'
	@echo 'export LUA_CPATH="$(CURDIR)/$(B)/?.so;;"'
	@echo 'export PATH="$(CURDIR)/$(B):$$PATH"'

install: all
	install -d $(PREFIX)/bin $(PREFIX)/lib/lua/5.4 $(PREFIX)/share/lua/5.4/lgrad \
	  $(PREFIX)/include/lgrad $(PREFIX)/include/lgrad/ops $(PREFIX)/lib
	install -m 755 $(B)/lgrad $(PREFIX)/bin/lgrad
	install -m 755 $(B)/lgrad.so $(PREFIX)/lib/lua/5.4/lgrad.so
	install -m 644 bindings/lgrad/*.lua $(PREFIX)/share/lua/5.4/lgrad/
	install -m 644 $(B)/liblgrad.a $(PREFIX)/lib/liblgrad.a
	install -m 644 runtime/lgrad.h runtime/nn.h $(PREFIX)/include/lgrad/
	install -m 644 runtime/ops/ops.def $(PREFIX)/include/lgrad/ops/
	install -m 644 bindings/lgrad_host.h $(PREFIX)/include/lgrad/lgrad_host.h

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

include examples/Makefile
include fuzz/Makefile
