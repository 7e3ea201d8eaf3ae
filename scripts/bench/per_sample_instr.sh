# Instructions per call (valgrind's callgrind, one thread), which do not
# depend on the load of the machine: (run of 3 calls - setup run) / 3, for
# a plain forward and backward, lg.privacy.per_sample_grads and a DP-SGD
# step's gradient work, on the MLP and the CNN of per_sample_instr.lua.
# usage: sh scripts/bench/per_sample_instr.sh [BUILD_DIR]
B=${1:-build}
D=$(dirname "$0")
ir() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$B/lgrad" \
    "$D/per_sample_instr.lua" "$@" 2>&1 | awk '/Collected/ {print $4}'
}
for model in mlp cnn; do
  base=$(ir none "$model")
  for what in plain per_sample dp; do
    n=$(ir "$what" "$model")
    echo "$model $what $(( (n - base) / 3 )) instructions per call"
  done
done
