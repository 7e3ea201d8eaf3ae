--- lgrad.text: text corpora, a byte-level tokenizer and language-model
-- batches (exposed through lg.data).
--
--   local text = lg.data.text_corpus("fortunes")     -- ~2.5 MB of English
--   local tok = lg.data.CharTokenizer(text)
--   local ids = tok:encode(text)                     -- int64, ids 1..V
--   local x, y = lg.data.lm_batches(ids, {block_size = 64, batch_size = 32})
--   print(tok:decode(x[1]))                          -- a window of text
--
-- lm_batches draws batch_size random windows of block_size ids; y is x
-- shifted by one position (the next byte to predict at every position).

local lg = require "lgrad"

local M = {}

local text_c = lg._text

-- the corpora Debian ships: name -> directory and package
local CORPORA = {
  fortunes = { dir = "/usr/share/games/fortunes",
               packages = "fortunes fortunes-min" },
}

local function corpus_names()
  local names = {}
  for k in pairs(CORPORA) do names[#names + 1] = k end
  table.sort(names)
  return table.concat(names, ", ")
end

--- The text of a corpus as one string of bytes.  "fortunes": every
-- regular file without an extension in /usr/share/games/fortunes, sorted
-- by name and concatenated.  opts.dir reads another directory the same way.
function M.text_corpus(name, opts)
  if type(name) ~= "string" then
    error("text_corpus: the name must be a string (one of " ..
          corpus_names() .. "), got " .. type(name), 2)
  end
  local c = CORPORA[name]
  if not c then
    error(("text_corpus: unknown corpus %q (known: %s)"):format(
      name, corpus_names()), 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("text_corpus: options must be a table, got " .. type(opts), 2)
  end
  local dir = opts and opts.dir or c.dir
  if type(dir) ~= "string" then
    error("text_corpus: dir must be a string, got " .. type(dir), 2)
  end
  local files, msg = text_c.list_files(dir)
  if not files then
    error(("text_corpus: cannot read %q: %s (install Debian's %s)"):format(
      name, msg, c.packages), 2)
  end
  if #files == 0 then
    error(("text_corpus: %s has no files of %q (install Debian's %s)")
      :format(dir, name, c.packages), 2)
  end
  local parts = {}
  for i, f in ipairs(files) do
    local path = dir .. "/" .. f
    local h, err = io.open(path, "rb")
    if not h then error("text_corpus: " .. err, 2) end
    parts[i] = h:read("a")
    h:close()
  end
  return table.concat(parts)
end

---------------------------------------------------------------------------
-- CharTokenizer: one id per distinct byte of the text, 1..vocab_size in
-- byte order.

local CharTokenizer = {}
CharTokenizer.__index = CharTokenizer

function M.CharTokenizer(text)
  if type(text) ~= "string" then
    error("CharTokenizer: text must be a string, got " .. type(text), 2)
  end
  if #text == 0 then error("CharTokenizer: text is empty", 2) end
  local seen = {}
  -- scanning in chunks keeps string.byte's results off the C stack limit
  for i = 1, #text, 4096 do
    for _, b in ipairs({ text:byte(i, math.min(i + 4095, #text)) }) do
      seen[b] = true
    end
  end
  local chars, lut = {}, {}
  for b = 0, 255 do
    if seen[b] then
      chars[#chars + 1] = string.char(b)
      lut[b + 1] = string.pack("<I2", #chars)
    else
      lut[b + 1] = "\0\0"
    end
  end
  local self = setmetatable({}, CharTokenizer)
  self.chars = table.concat(chars)
  self.vocab_size = #chars
  self._lut = table.concat(lut)
  return self
end

--- ids (int64, 1-based) of the bytes of s; a byte outside the
-- vocabulary is an error
function CharTokenizer:encode(s)
  if type(s) ~= "string" then
    error("CharTokenizer:encode: expected a string, got " .. type(s), 2)
  end
  return text_c.encode(s, self._lut)
end

--- the string of a 1-d int64 tensor (or a list) of ids
function CharTokenizer:decode(ids)
  if type(ids) == "table" and not lg.is_tensor(ids) then
    ids = lg.tensor(ids, { dtype = lg.int64 })
  end
  if not lg.is_tensor(ids) then
    error("CharTokenizer:decode: expected a tensor or a list of ids, got " ..
          type(ids), 2)
  end
  return text_c.decode(ids, self.chars)
end

function CharTokenizer:__tostring()
  return ("CharTokenizer(vocab_size=%d)"):format(self.vocab_size)
end

M.CharTokenizer_class = CharTokenizer

---------------------------------------------------------------------------
-- language-model batches

--- x, y: (batch_size, block_size) int64 windows of ids at random starts,
-- y[b][t] = ids[start_b + t] following x[b][t] = ids[start_b + t - 1].
-- opts: block_size, batch_size (required), generator.
function M.lm_batches(ids, opts)
  if not lg.is_tensor(ids) or ids:dim() ~= 1 or ids:dtype() ~= "int64" then
    error("lm_batches: ids must be a 1-d int64 tensor" ..
          (lg.is_tensor(ids) and (", got " .. ids:dtype() .. " [" ..
           table.concat(ids:shape(), ",") .. "]") or
           ", got " .. type(ids)), 2)
  end
  if type(opts) ~= "table" then
    error("lm_batches: options {block_size, batch_size} are required", 2)
  end
  local T, B = opts.block_size, opts.batch_size
  if math.type(T) ~= "integer" or T < 1 then
    error("lm_batches: block_size must be a positive integer", 2)
  end
  if math.type(B) ~= "integer" or B < 1 then
    error("lm_batches: batch_size must be a positive integer", 2)
  end
  local n = ids:numel()
  if n < T + 1 then
    error(("lm_batches: %d ids are too few for block_size %d (need %d)")
      :format(n, T, T + 1), 2)
  end
  local starts = lg.randint(1, n - T, { B }, { generator = opts.generator })
  local offs = lg.range(0, T - 1)
  local idx = (starts:view(B, 1) + offs:view(1, T)):flatten()
  local x = ids:index_select(1, idx):view(B, T)
  local y = ids:index_select(1, idx + 1):view(B, T)
  return x, y
end

return M
