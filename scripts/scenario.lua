-- Shared by the scenario scripts: command-line options and the small-run
-- switch.  Loaded with dofile from the scripts' own directory.
--
--   local S = dofile((arg[0]:match("^(.*)/") or ".") .. "/scenario.lua")
--   local o = S.options(arg, {epochs = 10, lr = 1e-3})
--
-- "--name value" sets o.name (numbers converted); "--small" (or the
-- environment variable LGRAD_SMALL=1) sets o.small, for the reduced runs
-- CI makes.  Unknown names are errors, so a typo does not pass unnoticed.
local S = {}

function S.options(argv, defaults)
  local o = {}
  for k, v in pairs(defaults) do o[k] = v end
  o.small = os.getenv("LGRAD_SMALL") == "1"
  local i = 1
  while argv and argv[i] do
    local a = argv[i]
    local k = a:match("^%-%-([%w_]+)$")
    if a == "--small" then
      o.small = true
    elseif k and defaults[k] ~= nil and argv[i + 1] then
      local v = argv[i + 1]
      o[k] = type(defaults[k]) == "number" and tonumber(v) or v
      if o[k] == nil then error("--" .. k .. " needs a number, got " .. v) end
      i = i + 1
    else
      local names = {}
      for name in pairs(defaults) do names[#names + 1] = "--" .. name end
      table.sort(names)
      io.stderr:write("unknown argument ", a, "\noptions: --small ",
        table.concat(names, " "), "\n")
      os.exit(2)
    end
    i = i + 1
  end
  return o
end

--- Fashion-MNIST as images for a CNN: (N, 1, 28, 28) standardized with the
-- training set's mean and standard deviation; o.ntrain, o.ntest limit the
-- counts.  Returns xtr, ytr, xte, yte.
function S.fmnist_images(lg, o)
  local xtr, ytr = lg.data.fashion_mnist("train", { n = o.ntrain })
  local xte, yte = lg.data.fashion_mnist("test", { n = o.ntest })
  local mean, std = xtr:mean():item(), xtr:std():item()
  return ((xtr - mean) / std):unsqueeze(2), ytr,
    ((xte - mean) / std):unsqueeze(2), yte
end

return S
