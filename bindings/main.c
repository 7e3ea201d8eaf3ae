/*
 * main.c -- the lgrad binary's driver: options, scripts and chunks run
 * with lgrad loaded (the global `lg`), Lua's allocator and warnings.  The
 * interactive REPL is cli/repl.c, its value printer lgrad/printer.lua.
 *
 *   lgrad [options] [script [args]]
 *
 * Modeled on Lua 5.4's own lua.c: the same options (-e -l -i -v -E -W --
 * -), the same `arg` table, the same error reports; plus --threads N,
 * --seed N and -h.  With no script, a terminal on stdin gets the REPL and
 * anything else is run as a script.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "../runtime/lgrad.h"
#include "binding.h"
#include "cli/cli.h"
#include "lgrad_host.h"

#define PROGNAME "lgrad"


/* the state, for signal handlers and completion (as lua.c's cli_L) */
lua_State *cli_L;
const char *cli_progname = PROGNAME;

/* ---- messages and protected calls (as in lua.c) ---- */

static void print_usage(FILE *f) {
  fprintf(f,
          "usage: %s [options] [script [args]]\n"
          "Available options are:\n"
          "  -e chunk       execute string 'chunk'\n"
          "  -i             enter interactive mode after the script\n"
          "  -l mod         require library 'mod' into global 'mod'\n"
          "  -l g=mod       require library 'mod' into global 'g'\n"
          "  -v, --version  show version information\n"
          "  -h, --help     show this help\n"
          "  -E             ignore environment variables\n"
          "  -W             turn warnings on\n"
          "  --threads N    use N threads (also env LGRAD_NUM_THREADS)\n"
          "  --seed N       seed the default random generator\n"
          "  --             stop handling options\n"
          "  -              run stdin as a script and stop handling "
          "options\n"
          "With no script, a terminal gets the REPL: the value of an "
          "expression is\nprinted, Tab completes names, Ctrl-D quits.\n",
          PROGNAME);
}

void cli_message(const char *pname, const char *msg) {
  if (pname)
    fprintf(stderr, "%s: ", pname);
  fprintf(stderr, "%s\n", msg);
  fflush(stderr);
}

/* prints the error object on top of the stack (if any) and pops it */
int cli_report(lua_State *L, int status) {
  if (status != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    cli_message(cli_progname, msg ? msg : "(error object is not a string)");
    lua_pop(L, 1);
  }
  return status;
}

/* Ctrl-C while Lua code runs: a hook raises "interrupted!" at the next
 * Lua instruction (a long C kernel finishes first) */
static void lstop(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  luaL_error(L, "interrupted!");
}

static void laction(int sig) {
  int flag = LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT;
  signal(sig, SIG_DFL); /* a second Ctrl-C kills the process */
  lua_sethook(cli_L, lstop, flag, 1);
}

int cli_docall(lua_State *L, int narg, int nres) {
  int base = lua_gettop(L) - narg;
  lua_pushcfunction(L, lgL_traceback);
  lua_insert(L, base);
  cli_L = L;
  signal(SIGINT, laction);
  int status = lua_pcall(L, narg, nres, base);
  signal(SIGINT, SIG_DFL);
  lua_remove(L, base);
  return status;
}

void cli_print_version(void) {
  const char *blas = lg_blas_info();
  printf("lgrad %s (%s, %s; %s)\n", LG_VERSION, LUA_RELEASE,
         blas ? blas : "OpenBLAS", lg_dnnl_info());
  fflush(stdout);
}

static void createargtable(lua_State *L, char **argv, int argc, int script) {
  if (script == argc)
    script = 0; /* no script name: arg[0] is the interpreter */
  int narg = argc - (script + 1);
  lua_createtable(L, narg > 0 ? narg : 0, script + 1);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
}

static int dochunk(lua_State *L, int status) {
  if (status == LUA_OK)
    status = cli_docall(L, 0, 0);
  return cli_report(L, status);
}

static int dofile(lua_State *L, const char *name) {
  return dochunk(L, luaL_loadfile(L, name));
}

static int dostring(lua_State *L, const char *s, const char *name) {
  return dochunk(L, luaL_loadbuffer(L, s, strlen(s), name));
}

/* -l [g=]mod: global g (or mod) = require(mod) */
static int dolibrary(lua_State *L, const char *spec) {
  const char *eq = strchr(spec, '=');
  const char *mod = eq ? eq + 1 : spec;
  lua_getglobal(L, "require");
  lua_pushstring(L, mod);
  int status = cli_docall(L, 1, 1);
  if (status == LUA_OK) {
    if (eq)
      lua_pushlstring(L, spec, (size_t)(eq - spec));
    else
      lua_pushstring(L, mod);
    lua_insert(L, -2);
    lua_setglobal(L, lua_tostring(L, -2));
    lua_pop(L, 1);
  }
  return cli_report(L, status);
}

static int pushargs(lua_State *L) {
  if (lua_getglobal(L, "arg") != LUA_TTABLE)
    luaL_error(L, "'arg' is not a table");
  int n = (int)luaL_len(L, -1);
  luaL_checkstack(L, n + 3, "too many arguments to script");
  for (int i = 1; i <= n; i++)
    lua_rawgeti(L, -i, i);
  lua_remove(L, -(n + 1));
  return n;
}

static int handle_script(lua_State *L, char **argv) {
  const char *fname = argv[0];
  if (strcmp(fname, "-") == 0 && strcmp(argv[-1], "--") != 0)
    fname = NULL; /* stdin */
  int status = luaL_loadfile(L, fname);
  if (status == LUA_OK) {
    int n = pushargs(L);
    status = cli_docall(L, n, LUA_MULTRET);
  }
  return cli_report(L, status);
}

/* ---- options ---- */

enum {
  HAS_ERROR = 1,
  HAS_I = 2,
  HAS_V = 4,
  HAS_E = 8,
  HAS_BIGE = 16,
  HAS_H = 32
};

typedef struct {
  int flags;
  int script; /* index of the script in argv, argc when none */
  const char *threads;
  const char *seed;
  const char *bad; /* the offending option */
} options;

/* the value of a long option given as "--name N" or "--name=N" */
static const char *longvalue(char **argv, int *i, const char *name) {
  size_t n = strlen(name);
  if (strncmp(argv[*i], name, n) != 0)
    return NULL;
  if (argv[*i][n] == '=')
    return argv[*i] + n + 1;
  if (argv[*i][n] != '\0')
    return NULL;
  if (argv[*i + 1] == NULL)
    return "";
  return argv[++*i];
}

static void collectargs(char **argv, options *o) {
  int i;
  o->flags = 0;
  o->threads = o->seed = o->bad = NULL;
  for (i = 1; argv[i] != NULL; i++) {
    o->script = i;
    o->bad = argv[i];
    if (argv[i][0] != '-')
      return; /* the script */
    switch (argv[i][1]) {
    case '-': {
      const char *v;
      if (argv[i][2] == '\0') {
        o->script = i + 1;
        return;
      } else if ((v = longvalue(argv, &i, "--threads"))) {
        o->threads = v;
      } else if ((v = longvalue(argv, &i, "--seed"))) {
        o->seed = v;
      } else if (!strcmp(argv[i], "--help")) {
        o->flags |= HAS_H;
      } else if (!strcmp(argv[i], "--version")) {
        o->flags |= HAS_V;
      } else {
        o->flags |= HAS_ERROR;
        return;
      }
      break;
    }
    case '\0':
      return; /* script "-" is stdin */
    case 'E':
    case 'W':
    case 'h':
    case 'i':
    case 'v':
      if (argv[i][2] != '\0') {
        o->flags |= HAS_ERROR;
        return;
      }
      if (argv[i][1] == 'E')
        o->flags |= HAS_BIGE;
      else if (argv[i][1] == 'h')
        o->flags |= HAS_H;
      else if (argv[i][1] == 'i')
        o->flags |= HAS_I | HAS_V; /* -i implies -v, as in lua */
      else if (argv[i][1] == 'v')
        o->flags |= HAS_V;
      break;
    case 'e':
      o->flags |= HAS_E;
      /* fallthrough */
    case 'l':
      if (argv[i][2] == '\0') {
        i++;
        if (argv[i] == NULL || argv[i][0] == '-') {
          o->flags |= HAS_ERROR;
          return;
        }
      }
      break;
    default:
      o->flags |= HAS_ERROR;
      return;
    }
  }
  o->script = i;
  o->bad = NULL;
}

/* -e, -l and -W in the order given */
static int runargs(lua_State *L, char **argv, int n) {
  for (int i = 1; i < n; i++) {
    int opt = argv[i][1];
    if (argv[i][0] != '-')
      continue;
    if (opt == '-') { /* skip a long option's separate value */
      if (!strcmp(argv[i], "--threads") || !strcmp(argv[i], "--seed"))
        i++;
      continue;
    }
    if (opt == 'W') {
      lua_warning(L, "@on", 0);
    } else if (opt == 'e' || opt == 'l') {
      const char *extra = argv[i] + 2;
      if (*extra == '\0')
        extra = argv[++i];
      int status = opt == 'e' ? dostring(L, extra, "=(command line)")
                              : dolibrary(L, extra);
      if (status != LUA_OK)
        return 0;
    }
  }
  return 1;
}

static int handle_luainit(lua_State *L) {
  const char *name = "=LUA_INIT_" LUA_VERSION_MAJOR "_" LUA_VERSION_MINOR;
  const char *init = getenv(name + 1);
  if (init == NULL) {
    name = "=LUA_INIT";
    init = getenv(name + 1);
  }
  if (init == NULL)
    return LUA_OK;
  if (init[0] == '@')
    return dofile(L, init + 1);
  return dostring(L, init, name);
}

static int parse_count(const char *s, long long lo, long long hi,
                       long long *out) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (!*s || *end || errno || v < lo || v > hi)
    return -1;
  *out = v;
  return 0;
}

/* --threads, LGRAD_NUM_THREADS and --seed; 0 after reporting an error */
static int apply_settings(const options *o) {
  long long v;
  const char *env = (o->flags & HAS_BIGE) ? NULL : getenv("LGRAD_NUM_THREADS");
  if (env && *env && !o->threads) {
    if (parse_count(env, 1, 1024, &v)) {
      cli_message(cli_progname, "LGRAD_NUM_THREADS must be an integer in 1..1024");
      return 0;
    }
    lg_set_num_threads((int)v);
  }
  if (o->threads) {
    if (parse_count(o->threads, 1, 1024, &v)) {
      cli_message(cli_progname, "--threads expects an integer in 1..1024");
      return 0;
    }
    lg_set_num_threads((int)v);
  }
  if (o->seed) {
    char *end;
    errno = 0;
    unsigned long long s = strtoull(o->seed, &end, 0);
    if (!*o->seed || *end || errno || o->seed[0] == '-') {
      cli_message(cli_progname, "--seed expects a non-negative integer");
      return 0;
    }
    lg_manual_seed((uint64_t)s);
  }
  return 1;
}

/* ---- main ---- */

static int pmain(lua_State *L) {
  int argc = (int)lua_tointeger(L, 1);
  char **argv = (char **)lua_touserdata(L, 2);
  options o;
  collectargs(argv, &o);
  if (o.flags & HAS_ERROR) {
    const char *bad = o.bad ? o.bad : "?";
    if (bad[1] == 'e' || bad[1] == 'l')
      fprintf(stderr, "%s: '%s' needs argument\n", PROGNAME, bad);
    else
      fprintf(stderr, "%s: unrecognized option '%s'\n", PROGNAME, bad);
    print_usage(stderr);
    return 0;
  }
  if (o.flags & HAS_H) {
    print_usage(stdout);
    lua_pushboolean(L, 1);
    return 1;
  }
  if (o.flags & HAS_V)
    cli_print_version();
  if (o.flags & HAS_BIGE) {
    lua_pushboolean(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, "LUA_NOENV");
  }
  luaL_openlibs(L);
  createargtable(L, argv, argc, o.script);
  lua_gc(L, LUA_GCRESTART);
  lua_gc(L, LUA_GCGEN, 0, 0);
  if (cli_report(L, lgrad_open(L)) != LUA_OK)
    return 0;
  lua_settop(L, 2);
  if (!apply_settings(&o))
    return 0;
  if (!(o.flags & HAS_BIGE) && handle_luainit(L) != LUA_OK)
    return 0;
  if (!runargs(L, argv, o.script))
    return 0;
  if (o.script < argc && handle_script(L, argv + o.script) != LUA_OK)
    return 0;
  if (o.flags & HAS_I) {
    cli_repl(L);
  } else if (o.script == argc && !(o.flags & (HAS_E | HAS_V))) {
    if (isatty(STDIN_FILENO)) {
      cli_print_version();
      cli_repl(L);
    } else {
      if (dofile(L, NULL) != LUA_OK)
        return 0;
    }
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* ---- Lua's allocator ----
 * A script's tensor loop makes and drops a few small Lua objects per
 * step (boxes, closures, strings); through libc each is a malloc and a
 * free.  Blocks up to LA_MAX bytes come instead from per-size-class free
 * lists (16-byte classes) carved out of 64 KB chunks, which are given
 * back all at once when the state closes; larger blocks go to libc.  Only
 * the lgrad binary uses it: require "lgrad" from lua5.4 keeps Lua's. */
#define LA_GRAIN 16
#define LA_MAX 256
#define LA_NCLASS (LA_MAX / LA_GRAIN)
#define LA_CHUNK ((size_t)64 << 10)

typedef struct la_chunk {
  struct la_chunk *next;
  union { long double d; void *p; long long l; } align[];
} la_chunk;

typedef struct {
  void *free[LA_NCLASS];
  char *bump, *end; /* the rest of the newest chunk */
  la_chunk *chunks;
} la_state;

static int la_class(size_t n) { return (int)((n - 1) / LA_GRAIN); }

static void *la_small(la_state *a, int c) {
  void *p = a->free[c];
  if (p) {
    a->free[c] = *(void **)p;
    return p;
  }
  size_t sz = (size_t)(c + 1) * LA_GRAIN;
  if ((size_t)(a->end - a->bump) < sz) {
    la_chunk *k = malloc(sizeof *k + LA_CHUNK);
    if (!k)
      return NULL;
    k->next = a->chunks;
    a->chunks = k;
    a->bump = (char *)k->align;
    a->end = a->bump + LA_CHUNK;
  }
  p = a->bump;
  a->bump += sz;
  return p;
}

static void la_release(la_state *a, void *p, int c) {
  *(void **)p = a->free[c];
  a->free[c] = p;
}

static void *la_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  la_state *a = ud;
  if (!ptr)
    osize = 0; /* osize then names the kind of object */
  bool osmall = ptr && osize <= LA_MAX, nsmall = nsize && nsize <= LA_MAX;
  if (nsize == 0) {
    if (osmall)
      la_release(a, ptr, la_class(osize));
    else
      free(ptr);
    return NULL;
  }
  if (!ptr)
    return nsmall ? la_small(a, la_class(nsize)) : malloc(nsize);
  if (!osmall && !nsmall)
    return realloc(ptr, nsize);
  if (osmall && nsmall && la_class(osize) == la_class(nsize))
    return ptr;
  void *q = nsmall ? la_small(a, la_class(nsize)) : malloc(nsize);
  if (!q)
    return NULL; /* Lua keeps the old block */
  memcpy(q, ptr, osize < nsize ? osize : nsize);
  if (osmall)
    la_release(a, ptr, la_class(osize));
  else
    free(ptr);
  return q;
}

static void la_destroy(la_state *a) {
  while (a->chunks) {
    la_chunk *k = a->chunks;
    a->chunks = k->next;
    free(k);
  }
  free(a);
}

/* what luaL_newstate sets besides the allocator: a panic function and
 * warnings that start off and are switched by "@on" / "@off" */
static int la_panic(lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  if (msg == NULL)
    msg = "error object is not a string";
  lua_writestringerror("PANIC: unprotected error in call to Lua API (%s)\n",
                       msg);
  return 0;
}

static void warnf_on(void *ud, const char *msg, int tocont);
static void warnf_off(void *ud, const char *msg, int tocont);

static int warn_control(lua_State *L, const char *msg, int tocont) {
  if (tocont || *msg++ != '@')
    return 0;
  if (strcmp(msg, "off") == 0)
    lua_setwarnf(L, warnf_off, L);
  else if (strcmp(msg, "on") == 0)
    lua_setwarnf(L, warnf_on, L);
  return 1;
}

static void warnf_cont(void *ud, const char *msg, int tocont) {
  lua_State *L = ud;
  lua_writestringerror("%s", msg);
  if (tocont) {
    lua_setwarnf(L, warnf_cont, L);
  } else {
    lua_writestringerror("%s", "\n");
    lua_setwarnf(L, warnf_on, L);
  }
}

static void warnf_on(void *ud, const char *msg, int tocont) {
  if (warn_control(ud, msg, tocont))
    return;
  lua_writestringerror("%s", "Lua warning: ");
  warnf_cont(ud, msg, tocont);
}

static void warnf_off(void *ud, const char *msg, int tocont) {
  warn_control(ud, msg, tocont);
}

static lua_State *new_state(la_state **arena) {
  la_state *a = calloc(1, sizeof *a);
  lua_State *L = a ? lua_newstate(la_alloc, a) : NULL;
  if (!L) {
    free(a);
    return NULL;
  }
  lua_atpanic(L, la_panic);
  lua_setwarnf(L, warnf_off, L);
  *arena = a;
  return L;
}

int main(int argc, char **argv) {
  la_state *arena = NULL;
  lua_State *L = new_state(&arena);
  if (L == NULL) {
    cli_message(PROGNAME, "cannot create state: not enough memory");
    return EXIT_FAILURE;
  }
  lua_gc(L, LUA_GCSTOP);
  lua_pushcfunction(L, pmain);
  lua_pushinteger(L, argc);
  lua_pushlightuserdata(L, argv);
  int status = lua_pcall(L, 2, 1, 0);
  int result = lua_toboolean(L, -1);
  cli_report(L, status);
  lua_close(L);
  la_destroy(arena);
  return (result && status == LUA_OK) ? EXIT_SUCCESS : EXIT_FAILURE;
}
