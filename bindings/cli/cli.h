/*
 * cli/cli.h -- what the lgrad binary's driver (main.c) and its REPL (repl.c)
 * share.  Not part of the library.
 */
#ifndef LGRAD_CLI_H
#define LGRAD_CLI_H

#include <lua.h>

extern lua_State *cli_L;          /* for signal handlers and completion */
extern const char *cli_progname; /* prefix of error reports; NULL in the REPL */

void cli_message(const char *pname, const char *msg);
/* prints the error object on top of the stack (if any) and pops it */
int cli_report(lua_State *L, int status);
/* lua_pcall with a traceback and Ctrl-C turned into an error */
int cli_docall(lua_State *L, int narg, int nres);
void cli_print_version(void);
/* the read-eval-print loop until end of input */
void cli_repl(lua_State *L);

#endif
