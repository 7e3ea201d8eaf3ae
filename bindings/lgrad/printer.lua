-- lgrad.printer: how the lgrad REPL shows results.  tostring for most
-- values (tensors pretty-print through __tostring); plain tables as
-- constructors, short ones on one line, nested ones indented, with limits
-- on depth and length.  Returns the print function; the program loads it
-- with require("lgrad.printer") and falls back on print without it.
local type, tostring, pairs, getmetatable, pcall =
  type, tostring, pairs, getmetatable, pcall
local concat, sort, fmt = table.concat, table.sort, string.format
local MAXITEMS, MAXDEPTH, WIDTH = 50, 4, 78
local function plain(t)
  local mt = getmetatable(t)
  return not (mt and (mt.__tostring or mt.__name))
end
local function short(v)
  local ok, s = pcall(tostring, v)
  if not ok then return '<' .. type(v) .. '>' end
  if s:find('\n') then
    local last = s:match('([^\n]*%S[^\n]*)\n*$')
    s = last or s:gsub('\n', ' ')
  end
  return s
end
local repr
local function key(k)
  if type(k) == 'string' and k:match('^[%a_][%w_]*$') then return k end
  return '[' .. repr(k, '', 1, {}) .. ']'
end
function repr(v, indent, depth, seen)
  local tv = type(v)
  if tv == 'string' then return fmt('%q', v) end
  if tv ~= 'table' or not plain(v) then return short(v) end
  if seen[v] then return '<cycle>' end
  if depth > MAXDEPTH then return '{...}' end
  seen[v] = true
  local parts, n, inner = {}, #v, indent .. '  '
  for i = 1, math.min(n, MAXITEMS) do
    parts[#parts + 1] = repr(v[i], inner, depth + 1, seen)
  end
  local keys = {}
  for k in pairs(v) do
    if not (math.type(k) == 'integer' and k >= 1 and k <= n) then
      keys[#keys + 1] = k
    end
  end
  sort(keys, function(a, b)
    local ta, tb = type(a), type(b)
    if ta ~= tb then return ta < tb end
    if ta == 'number' or ta == 'string' then return a < b end
    return tostring(a) < tostring(b)
  end)
  local total = math.min(n, MAXITEMS) + #keys
  for i = 1, #keys do
    if #parts >= MAXITEMS then break end
    local k = keys[i]
    parts[#parts + 1] = key(k) .. ' = ' ..
      repr(v[k], inner, depth + 1, seen)
  end
  local more = n + #keys - #parts
  if more > 0 then parts[#parts + 1] = fmt('... (%d more)', more) end
  seen[v] = nil
  if total == 0 then return '{}' end
  local one = '{' .. concat(parts, ', ') .. '}'
  if #one + #indent <= WIDTH and not one:find('\n') then return one end
  -- several items a line, a line each for multi-line ones
  local lines, cur = {}, nil
  for i, part in ipairs(parts) do
    local piece = part .. (i < #parts and ',' or '')
    local multi = piece:find('\n')
    if cur and (multi or #cur + 1 + #piece > WIDTH) then
      lines[#lines + 1] = cur
      cur = nil
    end
    cur = cur and cur .. ' ' .. piece or inner .. piece
    if multi then lines[#lines + 1] = cur; cur = nil end
  end
  lines[#lines + 1] = cur
  return '{\n' .. concat(lines, '\n') .. '\n' .. indent .. '}'
end
return function(...)
  local out = {}
  for i = 1, select('#', ...) do
    local v = select(i, ...)
    if type(v) == 'table' and plain(v) then
      out[i] = repr(v, '', 1, {})
    else
      out[i] = tostring(v)
    end
  end
  io.stdout:write(concat(out, '\t'), '\n')
  io.stdout:flush()
end
