-- The scenario scripts, run with --small through the lgrad binary: each
-- exits 0 and prints its metric.  (The full runs' figures are in README.)
local bin = os.getenv("LGRAD_BIN") or "build/lgrad"

local function run(script, ...)
  local cmd = table.concat({bin, "scripts/" .. script, "--small", ...}, " ")
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local ok, how, code = p:close()
  return out, ok, how, code
end

local function number_after(out, label)
  return tonumber(out:match(label .. ":? ([%d.]+)"))
end

describe("scenario scripts (--small)", function()
  it("fmnist_mlp prints the test accuracy", function()
    local out, ok = run("fmnist_mlp.lua")
    assert.is_true(ok, out)
    local acc = number_after(out, "test accuracy")
    assert.is_not_nil(acc, out)
    -- 600 images and 2 epochs: well above chance (0.1)
    assert.is_true(acc > 0.3 and acc <= 1, out)
    assert.is_truthy(out:find("epoch 2/2", 1, true), out)
  end)

  it("fmnist_cnn prints the test accuracy", function()
    local out, ok = run("fmnist_cnn.lua")
    assert.is_true(ok, out)
    local acc = number_after(out, "test accuracy")
    assert.is_not_nil(acc, out)
    assert.is_true(acc >= 0 and acc <= 1, out)
    assert.is_truthy(out:find("BatchNorm2d", 1, true), out)
    assert.is_truthy(out:find("Dropout", 1, true), out)
  end)

  it("text_classify prints accuracy and the majority baseline", function()
    local out, ok = run("text_classify.lua")
    assert.is_true(ok, out)
    local acc = number_after(out, "test accuracy")
    local base = tonumber(out:match("majority baseline %([%a-]+%): ([%d.]+)"))
    assert.is_not_nil(acc, out)
    assert.is_not_nil(base, out)
    assert.is_true(acc >= 0 and acc <= 1 and base > 0 and base <= 1, out)
  end)

  it("recommend_mf prints the RMSE and the noise floor", function()
    local out, ok = run("recommend_mf.lua")
    assert.is_true(ok, out)
    local rmse = number_after(out, "test RMSE")
    local floor = tonumber(out:match("noise floor %(the true model%): RMSE "
                                     .. "([%d.]+)"))
    assert.is_not_nil(rmse, out)
    assert.is_not_nil(floor, out)
    assert.is_true(floor > 0.3 and floor < 0.7, out)
    assert.is_true(rmse > 0, out)
  end)

  it("demo runs the MLP and prints the test accuracy", function()
    local out, ok = run("demo.lua", "--epochs", "1")
    assert.is_true(ok, out)
    assert.is_not_nil(number_after(out, "test accuracy"), out)
    assert.is_truthy(out:find("epoch 1/1", 1, true), out)
  end)

  it("a wrong option is an error with the list of options", function()
    local out, ok, how, code = run("fmnist_mlp.lua", "--nope", "1")
    assert.is_nil(ok)
    assert.are.equal("exit", how)
    assert.are.equal(2, code)
    assert.is_truthy(out:find("unknown argument --nope", 1, true), out)
  end)
end)
