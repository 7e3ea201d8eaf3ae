-- scripts/char_gpt.lua --small through the lgrad binary (under make
-- sanitize, the sanitizer build's): it trains, its validation loss falls
-- from the uniform guess, and it prints a sample.  The full run's figures
-- and the PyTorch peer's are in README.md.
local h = require "helpers"
local bin = os.getenv("LGRAD_BIN") or "build/lgrad"

local function run(...)
  local cmd = table.concat({"timeout", "600", h.quote(bin),
                            "scripts/char_gpt.lua", "--small", ...}, " ")
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  return out, ok
end

describe("char_gpt --small", function()
  it("trains, evaluates every interval and samples", function()
    local out, ok = run()
    assert.is_true(ok, out)
    local vocab = tonumber(out:match("vocabulary (%d+)"))
    assert.is_not_nil(vocab, out)
    local first = tonumber(out:match("step    0: train loss [%d.]+, val loss ([%d.]+)"))
    local last = tonumber(out:match("step   40: train loss [%d.]+, val loss ([%d.]+)"))
    assert.is_not_nil(first, out)
    assert.is_not_nil(last, out)
    -- an untrained model guesses about uniformly: log(vocab)
    assert.is_true(math.abs(first - math.log(vocab)) < 0.3, out)
    assert.is_true(last < first - 0.2, out)
    assert.is_not_nil(out:match("final: val loss ([%d.]+)"), out)
    local sample = out:match("top%-k 10%):\n(.*)\n$")
    assert.is_not_nil(sample, out)
    assert.are.equal(40, #sample)
  end)

  it("gives the same run for the same seed", function()
    local a = run("--steps", "5")
    local b = run("--steps", "5")
    assert.are.equal(a:gsub("%(.-s%)", ""):gsub("training [%d.]+ s", ""),
                     b:gsub("%(.-s%)", ""):gsub("training [%d.]+ s", ""))
  end)
end)
