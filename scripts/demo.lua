-- What `make demo` runs: a multilayer perceptron learns Fashion-MNIST with
-- lg.train.fit (a progress bar on a terminal), then the test accuracy is
-- printed.  The same code path as scripts/fmnist_mlp.lua, whose options it
-- takes (--small for a seconds-long run, --epochs N).
local dir = arg and arg[0] and arg[0]:match("^(.*)/") or "scripts"
print("lgrad demo: a 784-256-10 MLP on Fashion-MNIST (Adam, cosine "
  .. "schedule); about a minute on 2 cores")
dofile(dir .. "/fmnist_mlp.lua")
