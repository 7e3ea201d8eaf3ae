/*
 * host_alloc_test.c -- a host's allocator for tensor memory: every block a
 * training script's tensors use comes from it and goes back to it, with
 * the size it was asked for; setting it late is refused.  Prints
 * "N passed, N failed".
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "lgrad_host.h"

static int passed, failed;
#define CHECK(cond, what)                                                      \
  do {                                                                         \
    if (cond)                                                                  \
      passed++;                                                                \
    else {                                                                     \
      failed++;                                                                \
      printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, what);                    \
    }                                                                          \
  } while (0)

static long nalloc, nfree;
static size_t outstanding;
static int bad_align;

static void *my_alloc(size_t size, size_t align, void *ctx) {
  (void)ctx;
  void *p = NULL;
  if (posix_memalign(&p, align, size) != 0)
    return NULL;
  if ((uintptr_t)p % align)
    bad_align = 1;
  nalloc++;
  outstanding += size;
  return p;
}

static void my_free(void *p, size_t size, void *ctx) {
  (void)ctx;
  nfree++;
  outstanding -= size;
  free(p);
}

int main(void) {
  CHECK(lg_set_allocator(my_alloc, NULL, NULL) == -1, "both or neither");
  CHECK(lg_set_allocator(my_alloc, my_free, NULL) == 0, "allocator set");
  lua_State *L = luaL_newstate();
  CHECK(lgrad_open(L) == LUA_OK, "lgrad_open");
  char *err = NULL;
  CHECK(lgrad_dostring(L,
                       "local m = lg.nn.Linear(64, 8)\n"
                       "local opt = lg.optim.Adam(m:parameters())\n"
                       "local x, y = lg.randn(256, 64), lg.randn(256, 8)\n"
                       "for _ = 1, 20 do opt:zero_grad()\n"
                       "  lg.F.mse_loss(m(x), y):backward(); opt:step() end\n"
                       "big = lg.zeros(1024, 1024)",
                       &err) == LUA_OK,
        "training with the host's memory");
  free(err);
  CHECK(nalloc > 0 && outstanding > (size_t)4 << 20 && !bad_align,
        "blocks came from the host, aligned as asked");
  CHECK(lg_set_allocator(NULL, NULL, NULL) == -1 &&
            lg_error() && *lg_error(),
        "too late to switch once tensors exist");
  lua_close(L);
  lg_mem_trim();
  CHECK(outstanding == 0 && nfree == nalloc,
        "every block went back to the host with its size");
  printf("blocks: %ld allocated, %ld freed\n", nalloc, nfree);
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
