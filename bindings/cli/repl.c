/*
 * cli/repl.c -- the lgrad binary's REPL: readline editing, history in
 * ~/.lgrad_history, multi-line input, tab completion of lgrad's names, and
 * results shown by the printer in bindings/lgrad/printer.lua.  Modeled on
 * the REPL of Lua 5.4's lua.c.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <readline/history.h>
#include <readline/readline.h>

#include "../../runtime/lgrad.h"
#include "../binding.h"
#include "cli.h"

#define PROMPT1 "> "
#define PROMPT2 ">> "
#define MAXINPUT 4096
#define HISTORY_MAX 1000
#define EOFMARK "<eof>"

/* ---- the REPL: reading lines ---- */

static int use_readline;   /* stdin is a terminal */
static char *history_path; /* NULL: no history file */
static volatile sig_atomic_t got_sigint, got_sigwinch;
static char *rl_result;
static int rl_finished;

static void on_line(char *line) {
  rl_result = line;
  rl_finished = 1;
  rl_callback_handler_remove();
}

static void prompt_sigint(int sig) {
  (void)sig;
  got_sigint = 1;
}

static void prompt_sigwinch(int sig) {
  (void)sig;
  got_sigwinch = 1;
}

/* Reads one line with readline's callback interface, so that Ctrl-C at
 * the prompt abandons the line instead of killing the process.  Returns
 * 1 with *line (malloc'd), 0 at end of input, 2 when interrupted. */
static int read_tty_line(const char *prompt, char **line) {
  struct sigaction sa, old_int, old_winch;
  memset(&sa, 0, sizeof sa);
  sigemptyset(&sa.sa_mask);
  sa.sa_handler = prompt_sigint; /* no SA_RESTART: select sees EINTR */
  sigaction(SIGINT, &sa, &old_int);
  sa.sa_handler = prompt_sigwinch;
  sigaction(SIGWINCH, &sa, &old_winch);
  got_sigint = 0;
  rl_finished = 0;
  rl_result = NULL;
  rl_callback_handler_install(prompt, on_line);
  int result = 0;
  while (!rl_finished) {
    fd_set fds;
    FD_ZERO(&fds);
    FD_SET(fileno(rl_instream), &fds);
    int r = select(fileno(rl_instream) + 1, &fds, NULL, NULL, NULL);
    if (r < 0 && errno == EINTR) {
      if (got_sigwinch) {
        got_sigwinch = 0;
        rl_resize_terminal();
      }
      if (got_sigint) {
        rl_free_line_state();
        rl_callback_sigcleanup();
        rl_cleanup_after_signal();
        rl_callback_handler_remove();
        fputs("\n", stdout);
        fflush(stdout);
        result = 2;
        break;
      }
      continue;
    }
    if (r < 0) {
      rl_callback_handler_remove();
      break;
    }
    rl_callback_read_char();
  }
  sigaction(SIGINT, &old_int, NULL);
  sigaction(SIGWINCH, &old_winch, NULL);
  if (result == 2)
    return 2;
  *line = rl_result;
  return rl_result != NULL;
}

static const char *get_prompt(lua_State *L, int firstline) {
  if (lua_getglobal(L, firstline ? "_PROMPT" : "_PROMPT2") == LUA_TNIL)
    return firstline ? PROMPT1 : PROMPT2;
  const char *p = luaL_tolstring(L, -1, NULL);
  lua_remove(L, -2);
  return p;
}

/* Pushes the next line without its newline; 0 at end of input, 2 after a
 * Ctrl-C (an empty line is pushed). */
static int pushline(lua_State *L, int firstline) {
  const char *prompt = get_prompt(L, firstline);
  char *b = NULL;
  int st;
  if (use_readline) {
    st = read_tty_line(prompt, &b);
  } else {
    static char buffer[MAXINPUT];
    fputs(prompt, stdout);
    fflush(stdout);
    st = fgets(buffer, sizeof buffer, stdin) != NULL;
    b = buffer;
  }
  lua_pop(L, 1); /* the prompt */
  if (st == 0)
    return 0;
  if (st == 2) {
    lua_pushliteral(L, "");
    return 2;
  }
  size_t l = strlen(b);
  if (l > 0 && b[l - 1] == '\n')
    b[--l] = '\0';
  if (firstline && b[0] == '=')
    lua_pushfstring(L, "return %s", b + 1);
  else
    lua_pushlstring(L, b, l);
  if (use_readline)
    free(b);
  return 1;
}

static void saveline(const char *line) {
  if (!use_readline || !line[0])
    return;
  HIST_ENTRY *last = history_length > 0
                         ? history_get(history_base + history_length - 1)
                         : NULL;
  if (last && !strcmp(last->line, line))
    return; /* no consecutive duplicates */
  add_history(line);
  if (history_path)
    append_history(1, history_path);
}

/* a syntax error at the end of the chunk means more input is needed */
static int incomplete(lua_State *L, int status) {
  if (status == LUA_ERRSYNTAX) {
    size_t lmsg, lmark = sizeof(EOFMARK) - 1;
    const char *msg = lua_tolstring(L, -1, &lmsg);
    if (lmsg >= lmark && !strcmp(msg + lmsg - lmark, EOFMARK)) {
      lua_pop(L, 1);
      return 1;
    }
  }
  return 0;
}

/* compiles "return <input>" (with a final ';' when `semicolon`):
 * LUA_OK with the function pushed, 1 when the expression is incomplete,
 * or another status with nothing pushed */
static int load_expression(lua_State *L, const char *input, int semicolon) {
  const char *code =
      lua_pushfstring(L, semicolon ? "return %s;" : "return %s", input);
  int status = luaL_loadbuffer(L, code, strlen(code), "=stdin");
  lua_remove(L, -2);
  if (status == LUA_OK)
    return LUA_OK;
  if (incomplete(L, status))
    return 1;
  lua_pop(L, 1);
  return status;
}

/* Compiles the input at stack index 1, reading continuation lines while
 * it is incomplete.  It is tried first as an expression, so that its
 * value prints ("1 +" continues as an expression), then as a statement.
 * Returns LUA_OK with the function pushed, an error status with the
 * message, or -2 when Ctrl-C abandoned the input. */
static int compile_input(lua_State *L) {
  int as_expr = 1;
  for (;;) {
    size_t len;
    const char *input = lua_tolstring(L, 1, &len);
    int status;
    if (as_expr) {
      status = load_expression(L, input, 1);
      if (status != LUA_OK)
        status = load_expression(L, input, 0);
      if (status == LUA_OK) {
        saveline(input);
        return LUA_OK;
      }
      if (status != 1)
        as_expr = 0; /* not an expression: try it as a statement */
    }
    if (!as_expr) {
      status = luaL_loadbuffer(L, input, len, "=stdin");
      if (!incomplete(L, status)) {
        saveline(input);
        return status;
      }
    }
    int st = pushline(L, 0);
    if (st == 0) { /* end of input inside a chunk: report why */
      saveline(input);
      return luaL_loadbuffer(L, input, len, "=stdin");
    }
    if (st == 2)
      return -2;
    lua_pushliteral(L, "\n");
    lua_insert(L, -2);
    lua_concat(L, 3);
  }
}

/* Reads a complete chunk and compiles it: LUA_OK with the function on the
 * stack, an error status with the message, -1 at end of input, or -2
 * when the input was abandoned. */
static int loadline(lua_State *L) {
  lua_settop(L, 0);
  int st = pushline(L, 1);
  if (st == 0)
    return -1;
  if (st == 2)
    return -2;
  int status = compile_input(L);
  if (status == -2) {
    lua_settop(L, 0);
    return -2;
  }
  lua_remove(L, 1); /* the input */
  return status;
}

/* ---- the REPL: printing values ---- */

/* the printer is bindings/lgrad/printer.lua (require "lgrad.printer") */
static int printer_ref = LUA_NOREF;

static void l_print(lua_State *L) {
  int n = lua_gettop(L);
  if (n == 0)
    return;
  luaL_checkstack(L, LUA_MINSTACK, "too many results to print");
  lua_rawgeti(L, LUA_REGISTRYINDEX, printer_ref);
  if (!lua_isfunction(L, -1)) { /* fall back on print */
    lua_pop(L, 1);
    lua_getglobal(L, "print");
  }
  lua_insert(L, 1);
  if (lua_pcall(L, n, 0, 0) != LUA_OK)
    cli_message(cli_progname, lua_pushfstring(L, "error calling 'print' (%s)",
                                        lua_tostring(L, -1)));
}

/* ---- the REPL: completion ---- */

static const char *const keywords[] = {
    "and",      "break",  "do",   "else", "elseif", "end",   "false", "for",
    "function", "goto",   "if",   "in",   "local",  "nil",   "not",   "or",
    "repeat",   "return", "then", "true", "until",  "while", NULL};

static int is_identifier(const char *s, size_t n) {
  if (n == 0 || !(s[0] == '_' || ((s[0] | 32) >= 'a' && (s[0] | 32) <= 'z')))
    return 0;
  for (size_t i = 1; i < n; i++)
    if (!(s[i] == '_' || (s[i] >= '0' && s[i] <= '9') ||
          ((s[i] | 32) >= 'a' && (s[i] | 32) <= 'z')))
      return 0;
  return 1;
}

/* adds to the set at `set` every string key of the table at `tbl` that
 * starts with `part` (functions only when `methods`), as base..key */
static void add_keys(lua_State *L, int set, int tbl, const char *base,
                     const char *part, int methods) {
  size_t lpart = strlen(part);
  tbl = lua_absindex(L, tbl);
  lua_pushnil(L);
  while (lua_next(L, tbl)) {
    size_t lk;
    if (lua_type(L, -2) == LUA_TSTRING) {
      const char *k = lua_tolstring(L, -2, &lk);
      int isfn = lua_type(L, -1) == LUA_TFUNCTION;
      if (!isfn && luaL_getmetafield(L, -1, "__call") != LUA_TNIL) {
        isfn = 1; /* a callable table: a class such as nn.Linear */
        lua_pop(L, 1);
      }
      if (is_identifier(k, lk) && !strncmp(k, part, lpart) &&
          (!methods || isfn) && (lpart > 0 || k[0] != '_') &&
          (strncmp(k, "__", 2) || !strncmp(part, "__", 2))) {
        lua_pushfstring(L, "%s%s%s", base, k, isfn ? "(" : "");
        lua_pushboolean(L, 1);
        lua_rawset(L, set);
      }
    }
    lua_pop(L, 1);
  }
}

/* tensor fields that its __index computes rather than looks up */
static const char *const tensor_properties[] = {"grad", "requires_grad",
                                                "is_leaf", "grad_fn", NULL};

/* the fields of the value on top (left in place): its own keys when a
 * table, then the __index tables up the metatable chain; when __index is
 * a function, the tables among its upvalues (where C bindings keep their
 * methods) */
static void add_fields(lua_State *L, int set, const char *base,
                       const char *part, int methods) {
  int top = lua_gettop(L);
  if (!methods && luaL_testudata(L, top, LGL_TENSOR)) {
    for (int i = 0; tensor_properties[i]; i++)
      if (!strncmp(tensor_properties[i], part, strlen(part))) {
        lua_pushfstring(L, "%s%s", base, tensor_properties[i]);
        lua_pushboolean(L, 1);
        lua_rawset(L, set);
      }
  }
  if (!methods) {
    /* lgrad's Lua submodules load on first use: offer those present */
    static const char *const lazy[][2] = {
        {"nn", "nn"},     {"data", "data"},         {"train", "train"},
        {"plot", "plot"}, {"experiment", "exp"}, {NULL, NULL}};
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_getfield(L, -1, "lgrad");
    int is_lg = lua_rawequal(L, -1, top);
    lua_getglobal(L, "package");
    for (int i = 0; is_lg && lazy[i][0]; i++) {
      if (strncmp(lazy[i][0], part, strlen(part)) ||
          lua_getfield(L, -1, "searchpath") != LUA_TFUNCTION) {
        lua_settop(L, top + 3);
        continue;
      }
      lua_pushfstring(L, "lgrad.%s", lazy[i][1]);
      lua_getfield(L, -3, "path");
      lua_call(L, 2, 1);
      if (lua_isstring(L, -1)) {
        lua_pushfstring(L, "%s%s", base, lazy[i][0]);
        lua_pushboolean(L, 1);
        lua_rawset(L, set);
      }
      lua_settop(L, top + 3);
    }
    lua_settop(L, top);
  }
  lua_pushvalue(L, top);
  for (int depth = 0; depth < 8; depth++) {
    int cur = lua_gettop(L);
    if (lua_type(L, cur) == LUA_TTABLE)
      add_keys(L, set, cur, base, part, methods);
    if (!lua_getmetatable(L, cur))
      break;
    lua_getfield(L, cur + 1, "__index");
    if (lua_type(L, -1) == LUA_TTABLE) {
      lua_replace(L, cur);
      lua_settop(L, cur);
      continue;
    }
    if (lua_type(L, -1) == LUA_TFUNCTION && lua_type(L, cur) != LUA_TTABLE) {
      int fn = lua_gettop(L);
      for (int n = 1; n <= 8 && lua_getupvalue(L, fn, n); n++) {
        if (lua_type(L, -1) == LUA_TTABLE)
          add_keys(L, set, -1, base, part, methods);
        lua_pop(L, 1);
      }
    }
    break;
  }
  lua_settop(L, top);
}

/* completion candidates for text (arg 1): a table of strings */
static int l_candidates(lua_State *L) {
  const char *text = luaL_checkstring(L, 1);
  lua_newtable(L);
  int set = lua_gettop(L);
  const char *dot = strrchr(text, '.'), *colon = strrchr(text, ':');
  const char *sep = dot > colon ? dot : colon;
  if (!sep) {
    lua_pushglobaltable(L);
    add_fields(L, set, "", text, 0);
    lua_settop(L, set);
    size_t n = strlen(text);
    for (int i = 0; keywords[i]; i++)
      if (n > 0 && !strncmp(keywords[i], text, n)) {
        lua_pushstring(L, keywords[i]);
        lua_pushboolean(L, 1);
        lua_rawset(L, set);
      }
    return 1;
  }
  /* resolve the chain of names before the separator */
  lua_pushglobaltable(L);
  const char *p = text;
  while (p < sep) {
    const char *q = p;
    while (q < sep && *q != '.' && *q != ':')
      q++;
    int t = lua_type(L, -1);
    if ((q < sep && *q == ':') || !is_identifier(p, (size_t)(q - p)) ||
        (t != LUA_TTABLE && t != LUA_TUSERDATA)) {
      lua_settop(L, set); /* not a plain a.b.c chain of tables */
      return 1;
    }
    lua_pushlstring(L, p, (size_t)(q - p));
    lua_gettable(L, -2);
    lua_remove(L, -2);
    p = q + 1;
  }
  if (lua_isnil(L, -1)) {
    lua_settop(L, set);
    return 1;
  }
  lua_pushlstring(L, text, (size_t)(sep - text) + 1);
  const char *base = lua_tostring(L, -1);
  lua_insert(L, -2);
  add_fields(L, set, base, sep + 1, *sep == ':');
  lua_settop(L, set);
  return 1;
}

static char **candidates;
static int ncandidates, next_candidate;

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void collect_candidates(const char *text) {
  lua_State *L = cli_L;
  for (int i = next_candidate; i < ncandidates; i++)
    free(candidates[i]);
  free(candidates);
  candidates = NULL;
  ncandidates = next_candidate = 0;
  int top = lua_gettop(L);
  lua_pushcfunction(L, l_candidates);
  lua_pushstring(L, text);
  if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_istable(L, -1)) {
    int n = 0;
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      n++;
      lua_pop(L, 1);
    }
    candidates = malloc((size_t)(n > 0 ? n : 1) * sizeof *candidates);
    lua_pushnil(L);
    while (candidates && lua_next(L, -2)) {
      char *s = strdup(lua_tostring(L, -2));
      if (s)
        candidates[ncandidates++] = s;
      lua_pop(L, 1);
    }
    if (candidates)
      qsort(candidates, (size_t)ncandidates, sizeof *candidates, cmp_str);
  }
  lua_settop(L, top);
}

static char *candidate_generator(const char *text, int state) {
  if (state == 0)
    collect_candidates(text);
  if (next_candidate < ncandidates)
    return candidates[next_candidate++]; /* readline frees it */
  return NULL;
}

static char **complete(const char *text, int start, int end) {
  (void)start;
  (void)end;
  rl_attempted_completion_over = 1; /* never fall back on file names */
  rl_completion_append_character = '\0';
  return rl_completion_matches(text, candidate_generator);
}

/* ---- the REPL ---- */

static void repl_init(lua_State *L) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "lgrad.printer");
  if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_isfunction(L, -1))
    printer_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  else
    lua_pop(L, 1); /* no printer: results go through print */
  use_readline = isatty(STDIN_FILENO);
  if (!use_readline)
    return;
  rl_readline_name = "lgrad";
  rl_attempted_completion_function = complete;
  rl_basic_word_break_characters = " \t\n\"\\'><=;+-*/%^~#{}()[],&|";
  rl_completer_word_break_characters = rl_basic_word_break_characters;
  rl_catch_signals = 0;
  rl_catch_sigwinch = 0;
  stifle_history(HISTORY_MAX);
  const char *path = getenv("LGRAD_HISTORY");
  if (!path) {
    const char *home = getenv("HOME");
    if (home && *home) {
      size_t n = strlen(home) + sizeof "/.lgrad_history";
      if ((history_path = malloc(n)))
        snprintf(history_path, n, "%s/.lgrad_history", home);
    }
  } else if (*path) {
    history_path = strdup(path);
  }
  if (history_path && read_history(history_path) != 0) {
    /* append_history needs the file to exist */
    if (write_history(history_path) != 0) {
      free(history_path);
      history_path = NULL;
    }
  }
}

static void repl_done(void) {
  if (history_path) {
    history_truncate_file(history_path, HISTORY_MAX);
    free(history_path);
    history_path = NULL;
  }
  for (int i = next_candidate; i < ncandidates; i++)
    free(candidates[i]);
  free(candidates);
  candidates = NULL;
  ncandidates = next_candidate = 0;
}

void cli_repl(lua_State *L) {
  const char *oldprogname = cli_progname;
  cli_progname = NULL; /* errors print as lua's REPL prints them */
  cli_L = L;
  repl_init(L);
  int status;
  while ((status = loadline(L)) != -1) {
    if (status == -2)
      continue; /* Ctrl-C: a fresh prompt */
    if (status == LUA_OK)
      status = cli_docall(L, 0, LUA_MULTRET);
    if (status == LUA_OK)
      l_print(L);
    else
      cli_report(L, status);
  }
  lua_settop(L, 0);
  fputs("\n", stdout);
  fflush(stdout);
  repl_done();
  cli_progname = oldprogname;
}

