-- make bench: every workload of ../shared/bench/WORKLOADS.md in lgrad and,
-- in the same run, in PyTorch (peers/torch_bench.py, Debian's python3-torch),
-- several repetitions each; prints and writes a markdown table of medians
-- and ratios.  Usage: lgrad run.lua BUILD_DIR [reps] [out.md]
local build = arg[1] or "build"
local reps = tonumber(arg[2]) or 3
local out_path = arg[3] or "scripts/bench/RESULTS.md"
local threads = tonumber(os.getenv("LGRAD_BENCH_THREADS") or "2")
local peer = os.getenv("TORCH_BENCH") or "../shared/bench/peers/torch_bench.py"
local python = os.getenv("PYTHON") or "/usr/bin/python3"
local lgrad = build .. "/lgrad"

-- lgrad names OpenBLAS's kernels from the CPU's features when it loads it
-- (see runtime/core/blas.c); doing it here first puts OPENBLAS_CORETYPE in the
-- environment, so the PyTorch runs and the sgemm reference use the same
-- kernels as lgrad.
local lg = require "lgrad"
lg.get_num_threads()

local function sh(cmd)
  local p = io.popen(cmd .. " 2>/dev/null")
  local s = p:read("a")
  local ok = p:close()
  return ok and s or nil, s
end

local function field(line, k)
  local v = line and line:match('"' .. k .. '":%s*([%-%d%.eE+]+)')
  return v and tonumber(v)
end

local function median(t)
  if #t == 0 then return nil end
  table.sort(t)
  local n = #t
  return n % 2 == 1 and t[(n + 1) // 2] or (t[n // 2] + t[n // 2 + 1]) / 2
end

local have_torch = sh(python .. " -c 'import torch' && echo yes") == "yes\n"
local f = io.open(peer)
if f then f:close() else have_torch = false end

-- run cmd reps times; collect metric and the extra fields
local function runs(cmd, extra)
  local vals, ext = {}, {}
  for _ = 1, reps do
    local line = sh(cmd)
    local v = field(line, "value")
    if v then
      vals[#vals + 1] = v
      for _, k in ipairs(extra or {}) do
        ext[k] = ext[k] or {}
        ext[k][#ext[k] + 1] = field(line, k)
      end
    end
  end
  local m = {}
  for k, t in pairs(ext) do m[k] = median(t) end
  return median(vals), m
end

local rows = {}
local function row(name, unit, higher, lg_v, pt_v, note)
  local ratio
  if lg_v and pt_v then
    ratio = higher and lg_v / pt_v or pt_v / lg_v
  end
  rows[#rows + 1] = {name, unit, lg_v, pt_v, ratio, note or ""}
end

local workloads = {
  {"scalar-sgd", "steps/s", true, {"w", "b"}},
  {"mlp-fmnist", "s/epoch", false, {"test_acc"}},
  {"wide-mlp", "GFLOP/s", true, {}},
  {"cnn-fmnist", "steps/s", true, {}},
  -- described in scripts/bench/WORKLOADS.md; its peer lives in the repo
  {"dlrm-sparse", "steps/s", true, {"cpu_ms", "median_ms", "min_ms"},
   "scripts/bench/peers/dlrm_torch.py"},
}
for _, w in ipairs(workloads) do
  local name, unit, higher, extra = w[1], w[2], w[3], w[4]
  local peer_script = w[5] or peer
  local lv, lx = runs(("%s scripts/bench/workloads.lua %s --threads %d")
                      :format(lgrad, name, threads), extra)
  local pv, px
  if have_torch then
    pv, px = runs(("%s %s %s --threads %d"):format(python, peer_script, name,
                                                  threads), extra)
  end
  local note = {}
  if name == "mlp-fmnist" and lx.test_acc then
    note[#note + 1] = ("test acc %.3f vs %s"):format(lx.test_acc,
      px and px.test_acc and ("%.3f"):format(px.test_acc) or "n/a")
  end
  if name == "scalar-sgd" and lx.w then
    note[#note + 1] = ("w %.3f b %.3f"):format(lx.w, lx.b)
  end
  if name == "dlrm-sparse" and lx.cpu_ms then
    for _, k in ipairs({"median_ms", "min_ms", "cpu_ms"}) do
      note[#note + 1] = ("%s %.1f vs %s"):format(k, lx[k],
        px and px[k] and ("%.1f"):format(px[k]) or "n/a")
    end
  end
  if not have_torch then note[#note + 1] = "PyTorch side missing" end
  row(name, unit, higher, lv, pv, table.concat(note, "; "))
  io.stderr:write(("bench: %s lgrad %s, PyTorch %s\n"):format(name,
    tostring(lv), tostring(pv)))
end

-- ddp-wide-mlp: 2 ranks of 1 thread under mpirun (lg.dist.DDP) against
-- PyTorch DDP over gloo, and against lgrad's one process of 2 threads
do
  local mpirun = sh("command -v mpirun")
  local lv, lx, pv
  if mpirun and mpirun ~= "" then
    local root = sh("id -u") == "0\n" and "--allow-run-as-root " or ""
    lv, lx = runs(("timeout 600 mpirun -np 2 --oversubscribe %s%s --threads 1 "
      .. "scripts/bench/ddp_wide_mlp.lua"):format(root, lgrad),
      { "backward_ms", "backward_ms_no_comm", "wait_ms" })
  end
  if have_torch then
    pv = runs(("%s %s ddp-wide-mlp --threads %d"):format(python, peer,
      threads))
  end
  local one = runs(("%s scripts/bench/workloads.lua wide-mlp --threads %d")
    :format(lgrad, threads))
  row("ddp-wide-mlp", "GFLOP/s", true, lv, pv, ("lgrad one process of %d "
    .. "threads %s GFLOP/s (%s); backward %s ms, %s ms without "
    .. "communication"):format(threads, one and ("%.1f"):format(one) or "n/a",
    lv and one and ("%.2fx"):format(lv / one) or "n/a",
    lx and lx.backward_ms and ("%.0f"):format(lx.backward_ms) or "n/a",
    lx and lx.backward_ms_no_comm
      and ("%.0f"):format(lx.backward_ms_no_comm) or "n/a"))
  io.stderr:write(("bench: ddp-wide-mlp lgrad %s, PyTorch %s\n")
    :format(tostring(lv), tostring(pv)))
end

-- startup: the runtime loaded and one tiny op, as a whole process
local function startup(cmd)
  local times, mems = {}, {}
  for _ = 1, reps do
    local t0 = lg.clock()
    local out = sh(cmd)
    local dt = lg.clock() - t0
    local kb = out and tonumber((out:match("(%d+)%s*$")))
    if kb then
      times[#times + 1] = dt
      mems[#mems + 1] = kb / 1024
    end
  end
  return median(times), median(mems)
end
local hwm = [[io.open("/proc/self/status"):read("a"):match("VmHWM:%s*(%d+)")]]
local lt, lm = startup(("%s -e 'local t = lg.ones(2) + 1; print(%s)'")
                       :format(lgrad, hwm))
local pt, pm
if have_torch then
  pt, pm = startup(python .. [[ -c "import torch; t = torch.ones(2) + 1; ]] ..
    [[import re; print(re.search(r'VmHWM:\s*(\d+)', ]] ..
    [[open('/proc/self/status').read()).group(1))"]])
end
row("startup", "s", false, lt, pt)
row("startup peak memory", "MB", false, lm, pm)

-- references: one direct sgemm, matmul from Lua, one small op
local sg = {}
for _ = 1, reps do
  sg[#sg + 1] = tonumber((sh(("%s/sgemm_bench %d"):format(build, threads))))
end
local sgemm = median(sg)
local mm = runs(("%s scripts/bench/workloads.lua matmul --threads %d")
                :format(lgrad, threads))
local so = runs(("%s scripts/bench/workloads.lua small-op --threads %d")
                :format(lgrad, threads))

local function fmt(v)
  if not v then return "missing" end
  if v >= 100 then return ("%.0f"):format(v) end
  if v >= 1 then return ("%.2f"):format(v) end
  return ("%.3f"):format(v)
end

local lines = {}
local function add(s) lines[#lines + 1] = s end
local uname = sh("uname -srm") or "?"
local cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2") or "?"
add(("Machine: %s, %s cores, %s; %d threads; medians of %d runs; %s; " ..
     "OPENBLAS_CORETYPE=%s for every side.")
    :format(cpu:gsub("^%s+", ""):gsub("\n", ""), (sh("nproc") or "?"):gsub("\n", ""),
            uname:gsub("\n", ""), threads, reps, os.date("!%Y-%m-%d"),
            os.getenv("OPENBLAS_CORETYPE") or "unset"))
add("")
add("| workload | unit | lgrad | PyTorch | ratio (lgrad advantage) | notes |")
add("| --- | --- | --- | --- | --- | --- |")
for _, r in ipairs(rows) do
  add(("| %s | %s | %s | %s | %s | %s |"):format(r[1], r[2], fmt(r[3]),
      fmt(r[4]), r[5] and ("%.2fx"):format(r[5]) or "n/a", r[6]))
end
add("")
add(("Direct `cblas_sgemm` 1024^3: %s GFLOP/s. lgrad matmul 1024^3 from Lua: " ..
     "%s GFLOP/s (%s of direct). wide-mlp: %s of one large sgemm's rate. " ..
     "One small op from Lua (`a + b`, 4 floats): %s us.")
    :format(fmt(sgemm), fmt(mm), sgemm and mm and ("%.0f%%"):format(100 * mm / sgemm) or "n/a",
            sgemm and rows[3][3] and ("%.0f%%"):format(100 * rows[3][3] / sgemm) or "n/a",
            fmt(so)))
local text = table.concat(lines, "\n") .. "\n"
io.write(text)
local o = io.open(out_path, "w")
if o then o:write(text) o:close() end
