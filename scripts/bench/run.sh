#!/bin/sh
# make bench: installs PyTorch (the reference) when root and missing, builds
# the direct-sgemm reference, then runs the side-by-side table.
B=${1:-build}
cd "$(dirname "$0")/../.."
if ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch python3-numpy
  else
    echo "bench: PyTorch is missing (apt-get install python3-torch); its column will say so"
  fi
fi
cc -O2 scripts/bench/sgemm.c -o "$B/sgemm_bench" -lopenblas || exit 1
exec "$B/lgrad" scripts/bench/run.lua "$B" "${BENCH_REPS:-3}"
