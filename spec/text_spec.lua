-- lg.data.text_corpus, CharTokenizer and lm_batches (bindings/lgrad/text.lua)
local lg = require "lgrad"

local FORTUNES = "/usr/share/games/fortunes"

local function err_of(fn, ...)
  local ok, e = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return tostring(e)
end

describe("text_corpus", function()
  it("concatenates the extension-less fortune files sorted by name", function()
    local text = lg.data.text_corpus("fortunes")
    assert.is_true(#text > 2000000 and #text < 4000000, "size " .. #text)
    -- the first file by name is "art", the last of fortunes-min is
    -- "riddles": both are in the text, in that order, whole
    local function read(name)
      local f = assert(io.open(FORTUNES .. "/" .. name, "rb"))
      local s = f:read("a")
      f:close()
      return s
    end
    local art = read("art")
    assert.equals(art, text:sub(1, #art))
    local riddles = read("riddles")
    local at = text:find(riddles, 1, true)
    assert.is_truthy(at)
    local lit = read("literature")
    assert.is_true(text:find(lit, 1, true) < at)
    -- no .dat index file is in it (they hold NUL bytes)
    assert.is_nil(text:find("\0", 1, true))
  end)

  it("reads any directory given as dir, skipping names with a dot", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert.is_true(os.execute("mkdir " .. dir))
    local function write(name, s)
      local f = assert(io.open(dir .. "/" .. name, "wb"))
      f:write(s)
      f:close()
    end
    write("b", "second ")
    write("a", "first ")
    write("a.dat", "skipped")
    assert.is_true(os.execute("mkdir " .. dir .. "/c"))
    assert.equals("first second ",
                  lg.data.text_corpus("fortunes", { dir = dir }))
    os.execute("rm -r " .. dir)
  end)

  it("gives clear errors for an unknown name or a missing directory", function()
    assert.matches('text_corpus: unknown corpus "shakespeare" %(known: fortunes%)',
                   err_of(lg.data.text_corpus, "shakespeare"))
    assert.matches("text_corpus: the name must be a string",
                   err_of(lg.data.text_corpus, 3))
    local e = err_of(lg.data.text_corpus, "fortunes", { dir = "/no/such/dir" })
    assert.matches('text_corpus: cannot read "fortunes": /no/such/dir: ', e, 1, true)
    assert.matches("fortunes%-min", e)
  end)
end)

describe("CharTokenizer", function()
  it("maps bytes to 1-based ids in byte order and back", function()
    local tok = lg.data.CharTokenizer("hello, world")
    assert.equals(9, tok.vocab_size)
    assert.equals(" ,dehlorw", tok.chars)
    local ids = tok:encode("hello")
    assert.equals("int64", ids:dtype())
    assert.same({ 5, 4, 6, 6, 7 }, ids:totable())
    assert.equals("hello", tok:decode(ids))
    assert.equals("low", tok:decode({ 6, 7, 9 }))
    assert.equals("world", tok:decode(tok:encode("hello, world"):narrow(1, 8, 5)))
    assert.equals("CharTokenizer(vocab_size=9)", tostring(tok))
  end)

  it("round-trips every byte, NUL and high bytes too", function()
    local all = {}
    for b = 255, 0, -1 do all[#all + 1] = string.char(b) end
    local s = table.concat(all)
    local tok = lg.data.CharTokenizer(s)
    assert.equals(256, tok.vocab_size)
    local ids = tok:encode(s)
    assert.equals(256, ids[1])
    assert.equals(1, ids[256])
    assert.equals(s, tok:decode(ids))
  end)

  it("round-trips the fortunes corpus", function()
    local text = lg.data.text_corpus("fortunes")
    local tok = lg.data.CharTokenizer(text)
    assert.is_true(tok.vocab_size > 90 and tok.vocab_size < 200)
    local ids = tok:encode(text)
    assert.equals(#text, ids:numel())
    assert.equals(1, ids:min():item())
    assert.equals(tok.vocab_size, ids:max():item())
    assert.equals(text, tok:decode(ids))
  end)

  it("rejects what it cannot encode or decode", function()
    local tok = lg.data.CharTokenizer("abc")
    assert.matches("encode: byte 122 at position 2 is not in the vocabulary",
                   err_of(tok.encode, tok, "az"))
    assert.matches("decode: id 4 at position 1 is outside 1..3",
                   err_of(tok.decode, tok, { 4 }))
    assert.matches("decode: id 0 at position 2", err_of(tok.decode, tok, { 1, 0 }))
    assert.matches("decode: ids must be int64",
                   err_of(tok.decode, tok, lg.tensor({ 1.0 })))
    assert.matches("decode: ids must be 1%-d %(got %[1,1%]%)",
                   err_of(tok.decode, tok, lg.ones({ 1, 1 }, { dtype = lg.int64 })))
    assert.matches("CharTokenizer: text is empty", err_of(lg.data.CharTokenizer, ""))
    assert.matches("CharTokenizer: text must be a string",
                   err_of(lg.data.CharTokenizer, 5))
  end)
end)

describe("lm_batches", function()
  it("gives windows of the ids with targets shifted by one", function()
    local ids = lg.range(1, 50) * 3 -- ids[i] = 3 i
    local x, y = lg.data.lm_batches(ids, { block_size = 7, batch_size = 5,
                                           generator = lg.Generator(4) })
    assert.same({ 5, 7 }, x:shape())
    assert.same({ 5, 7 }, y:shape())
    assert.equals("int64", x:dtype())
    local xs, ys = x:totable(), y:totable()
    for b = 1, 5 do
      local start = xs[b][1] // 3
      assert.is_true(start >= 1 and start + 7 <= 50)
      for t = 1, 7 do
        assert.equals(3 * (start + t - 1), xs[b][t])
        assert.equals(3 * (start + t), ys[b][t])
      end
    end
    -- the same generator seed gives the same batch
    local x2 = lg.data.lm_batches(ids, { block_size = 7, batch_size = 5,
                                         generator = lg.Generator(4) })
    assert.is_true(x:eq(x2):all():item())
  end)

  it("reaches every start, the last one too", function()
    local ids = lg.range(1, 6)
    local seen = {}
    local g = lg.Generator(1)
    for _ = 1, 50 do
      local x = lg.data.lm_batches(ids, { block_size = 3, batch_size = 4, generator = g })
      for _, row in ipairs(x:totable()) do seen[row[1]] = true end
    end
    assert.same({ true, true, true }, seen)
  end)

  it("rejects bad arguments", function()
    local ids = lg.range(1, 10)
    assert.matches("lm_batches: 10 ids are too few for block_size 10",
                   err_of(lg.data.lm_batches, ids, { block_size = 10, batch_size = 1 }))
    assert.matches("lm_batches: ids must be a 1%-d int64 tensor, got float32",
                   err_of(lg.data.lm_batches, lg.zeros(10), { block_size = 2, batch_size = 1 }))
    assert.matches("lm_batches: block_size must be a positive integer",
                   err_of(lg.data.lm_batches, ids, { block_size = 0, batch_size = 1 }))
    assert.matches("lm_batches: batch_size must be a positive integer",
                   err_of(lg.data.lm_batches, ids, { block_size = 2 }))
    assert.matches("lm_batches: options",
                   err_of(lg.data.lm_batches, ids))
  end)
end)
