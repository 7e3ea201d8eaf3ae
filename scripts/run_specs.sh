#!/bin/sh
# Runs every spec file with busted under Lua 5.4, one process per file so a
# crash is counted against its file, and ends with "N passed, N failed".
# Usage: run_specs.sh BUILD_DIR [spec files...]
B=${1:-build}; shift
top=$(cd "$(dirname "$0")/.." && pwd)
export LUA_PATH="$top/bindings/?.lua;$top/spec/?.lua;;"
export LUA_CPATH="$top/$B/?.so;;"
export LGRAD_BIN="$top/$B/lgrad"
export LGRAD_BUILD="$top/$B"
files=${*:-$(ls "$top"/spec/*_spec.lua)}
pass=0; fail=0
out=$(mktemp); trap 'rm -f "$out"' EXIT
for f in $files; do
  if [ -n "$VALGRIND" ]; then
    runner="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite lua5.4"
  else
    runner="lua5.4"
  fi
  (cd "$top" && $runner /usr/bin/busted -o TAP "$f") > "$out" 2>&1
  rc=$?
  p=$(grep -c '^ok ' "$out"); n=$(grep -c '^not ok ' "$out")
  if [ "$n" -gt 0 ] || { [ $rc -ne 0 ] && [ "$n" -eq 0 ]; }; then
    grep -v '^ok ' "$out"
  fi
  if [ $rc -ne 0 ] && [ "$n" -eq 0 ]; then
    echo "# $f: exited with status $rc"; n=1
  fi
  printf '%-40s %4d passed %4d failed\n' "$(basename "$f")" "$p" "$n"
  pass=$((pass + p)); fail=$((fail + n))
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
