# Instructions per step (valgrind's callgrind), which do not depend on the
# load of the machine: (run of 3000 steps - run of 1000 steps) / 2000, for
# the scalar-sgd step of workloads.lua and for a + b on small tensors.
# usage: sh scripts/bench/step_instr.sh [BUILD_DIR]
B=${1:-build}
D=$(dirname "$0")
ir() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$B/lgrad" "$@" \
    2>&1 | awk '/Collected/ {print $4}'
}
a=$(ir "$D/workloads.lua" scalar-sgd --threads 1 --steps 1000)
b=$(ir "$D/workloads.lua" scalar-sgd --threads 1 --steps 3000)
echo "scalar-sgd $(( (b - a) / 2000 )) instructions per step"
a=$(ir "$D/step_instr.lua" 1000)
b=$(ir "$D/step_instr.lua" 3000)
echo "a + b $(( (b - a) / 2000 )) instructions per step"
