-- einsum over one or two operands, reduced to permute, sum, reshape and
-- one batched matmul, so it is differentiable and uses BLAS.
--   lg.einsum("ij,jk->ik", a, b)   lg.einsum("bij,bjk->bik", a, b)
--   lg.einsum("i,i->", u, v)       lg.einsum("ij->ji", a)
--   lg.einsum("ii->i", a) is not supported (repeated labels in one operand).
local lg = require "lgrad"

local function labels(s, where)
  local t = {}
  for c in s:gmatch(".") do
    if not c:match("%a") then
      error("einsum: bad label '" .. c .. "' in " .. where, 3)
    end
    t[#t + 1] = c
  end
  return t
end

local function index_of(list)
  local pos = {}
  for i, c in ipairs(list) do
    if pos[c] then
      error("einsum: repeated label '" .. c .. "' in one operand is not " ..
            "supported", 4)
    end
    pos[c] = i
  end
  return pos
end

-- sums away the labels of x not in keep; returns the tensor and its labels
local function sum_out(x, ls, keep)
  local out = {}
  for i = #ls, 1, -1 do
    if not keep[ls[i]] then
      x = x:sum(i)
    end
  end
  for _, c in ipairs(ls) do
    if keep[c] then out[#out + 1] = c end
  end
  return x, out
end

local function permute_to(x, ls, order)
  local pos = index_of(ls)
  local p = {}
  for i, c in ipairs(order) do p[i] = pos[c] end
  if #p == 0 then return x end
  return x:permute(p)
end

local function einsum(spec, a, b)
  if type(spec) ~= "string" then
    error("einsum: the first argument must be a string like 'ij,jk->ik'", 2)
  end
  spec = spec:gsub("%s", "")
  local lhs, rhs = spec:match("^(.-)%->(.*)$")
  if not lhs then lhs = spec end
  local ins = {}
  for part in (lhs .. ","):gmatch("([^,]*),") do ins[#ins + 1] = part end
  if #ins ~= (b and 2 or 1) then
    error("einsum: the spec names " .. #ins .. " operands, " ..
          (b and 2 or 1) .. " given", 2)
  end
  local la = labels(ins[1], "the first operand")
  local lb = b and labels(ins[2], "the second operand") or nil
  index_of(la)
  if lb then index_of(lb) end
  if not lg.is_tensor(a) or (lb and not lg.is_tensor(b)) then
    error("einsum: operands must be tensors", 2)
  end
  if #la ~= a:dim() then
    error(("einsum: operand 1 has %d dims, its labels name %d"):format(
      a:dim(), #la), 2)
  end
  if lb and #lb ~= b:dim() then
    error(("einsum: operand 2 has %d dims, its labels name %d"):format(
      b:dim(), #lb), 2)
  end
  local out
  if rhs then
    out = labels(rhs, "the output")
    index_of(out)
  else -- implicit output: labels seen once, in alphabetical order
    local count = {}
    for _, c in ipairs(la) do count[c] = (count[c] or 0) + 1 end
    for _, c in ipairs(lb or {}) do count[c] = (count[c] or 0) + 1 end
    out = {}
    for c, k in pairs(count) do if k == 1 then out[#out + 1] = c end end
    table.sort(out)
  end
  local in_out = {}
  for _, c in ipairs(out) do in_out[c] = true end
  if not lb then
    local x, ls = sum_out(a, la, in_out)
    for _, c in ipairs(out) do
      if not index_of(ls)[c] then
        error("einsum: output label '" .. c .. "' not in the input", 2)
      end
    end
    return permute_to(x, ls, out)
  end
  local in_a, in_b = {}, {}
  for _, c in ipairs(la) do in_a[c] = true end
  for _, c in ipairs(lb) do in_b[c] = true end
  for _, c in ipairs(out) do
    if not in_a[c] and not in_b[c] then
      error("einsum: output label '" .. c .. "' not in the inputs", 2)
    end
  end
  -- labels only in one operand and not in the output are summed first
  local keep_a, keep_b = {}, {}
  for c in pairs(in_a) do keep_a[c] = in_out[c] or in_b[c] end
  for c in pairs(in_b) do keep_b[c] = in_out[c] or in_a[c] end
  a, la = sum_out(a, la, keep_a)
  b, lb = sum_out(b, lb, keep_b)
  local pa, pb = index_of(la), index_of(lb)
  local batch, left, right, contract = {}, {}, {}, {}
  for _, c in ipairs(la) do
    if pb[c] then
      if in_out[c] then batch[#batch + 1] = c else contract[#contract + 1] = c end
    else
      left[#left + 1] = c
    end
  end
  for _, c in ipairs(lb) do
    if not pa[c] then right[#right + 1] = c end
  end
  local size = {}
  local sa, sb = a:shape(), b:shape()
  for c, i in pairs(pa) do size[c] = sa[i] end
  for c, i in pairs(pb) do
    if size[c] and size[c] ~= sb[i] then
      error(("einsum: label '%s' has size %d in operand 1 and %d in " ..
             "operand 2"):format(c, size[c], sb[i]), 2)
    end
    size[c] = sb[i]
  end
  local function prod(list)
    local p = 1
    for _, c in ipairs(list) do p = p * size[c] end
    return p
  end
  local order_a, order_b = {}, {}
  for _, g in ipairs({batch, left, contract}) do
    for _, c in ipairs(g) do order_a[#order_a + 1] = c end
  end
  for _, g in ipairs({batch, contract, right}) do
    for _, c in ipairs(g) do order_b[#order_b + 1] = c end
  end
  local A = permute_to(a, la, order_a):reshape(prod(batch), prod(left),
                                               prod(contract))
  local B = permute_to(b, lb, order_b):reshape(prod(batch), prod(contract),
                                               prod(right))
  local C = A:matmul(B)
  local shape, cl = {}, {}
  for _, g in ipairs({batch, left, right}) do
    for _, c in ipairs(g) do
      shape[#shape + 1] = size[c]
      cl[#cl + 1] = c
    end
  end
  C = C:reshape(shape)
  return permute_to(C, cl, out)
end

return einsum
