--- lgrad.plot: line and scatter charts written as SVG (lg.plot).
--
--   lg.plot.line{x = {1, 2, 3}, y = {0.9, 0.5, 0.4}, title = "loss",
--                xlabel = "epoch", ylabel = "loss", path = "loss.svg"}
--   lg.plot.line{series = {{"train", xs, ys}, {"val", xs, vs}},
--                logy = true, path = "curves.svg"}
--   lg.plot.scatter{series = {{name = "trials", x = lrs, y = losses}},
--                   logx = true, path = "sweep.svg"}
--   lg.plot.history(history, "history.svg")      -- lg.train.fit's history
--   lg.plot.lr_find(lg.exp.lr_find(...), "lr.svg") -- suggestion marked
--   lg.plot.sweep(lg.exp.sweep{...}, {x = "lr", path = "sweep.svg"})
--
-- Every function returns the SVG text and writes it to `path` when one is
-- given.  Charts have a frame, ticks at "nice" values (1, 2 or 5 times a
-- power of ten; decades on log scales), grid lines, axis labels, a title
-- and a legend when there is more than one series or a series is named.
-- Points that are not finite (or not positive on a log axis) are left
-- out, breaking the line.  Common options: title, xlabel, ylabel, logx,
-- logy, xmin, xmax, ymin, ymax, width (640), height (400), legend
-- (true/false), markers = {{x = v, label = "..."}...} (dashed vertical
-- lines), points = {{x, y, label = "..."}...} (highlighted points),
-- xticks, yticks = {{value, label}...} (ticks of one's own).

local M = {}

local fmt = string.format
local inf = math.huge

local PALETTE = { "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
  "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf" }

local XML_ESCAPES = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;",
  ["\""] = "&quot;", ["'"] = "&#39;" }

--- Text made safe for SVG (XML): & < > " ' escaped, control characters
-- other than tab and newline dropped.
function M.escape(s)
  s = tostring(s):gsub("[%z\1-\8\11\12\14-\31]", "")
  return (s:gsub("[&<>\"']", XML_ESCAPES))
end
local esc = M.escape

local function finite(v)
  return type(v) == "number" and v == v and v ~= inf and v ~= -inf
end

-- the largest double: limits and ticks stay within it
local MAXD = 1.7976931348623157e308

-- b - a without overflow, halved (a range of -1e308 .. 1e308 is finite)
local function half_span(a, b)
  return b * 0.5 - a * 0.5
end

---------------------------------------------------------------------------
-- ticks

-- a number as a tick label: as few digits as the step needs
local function tick_label(v, step)
  local a = math.abs(v)
  if a ~= 0 and (a >= 1e5 or a < 1e-4) then
    -- enough digits to tell ticks a step apart
    local digits = math.floor(math.log(a, 10)) - math.floor(math.log(step,
      10)) + 1
    local p = math.min(math.max(3, digits), 17)
    local s = fmt("%." .. p .. "g", v):gsub("e%+?(%-?)0*(%d)", "e%1%2")
    return s
  end
  if a == 0 and step < 1e-4 then return "0" end
  local decimals = math.max(0, -math.floor(math.log(step, 10) + 1e-9))
  local s = fmt("%." .. math.min(decimals, 20) .. "f", v)
  return (s:gsub("^%-(0[%.0]*)$", "%1"))
end

-- 10^k as a tick label: 0.01 .. 1000 written out, 1e-3 style beyond
local function decade_label(k)
  if k >= -2 and k <= 3 then
    local s = fmt("%." .. math.max(0, -k) .. "f", 10.0 ^ k)
    return s
  end
  return fmt("1e%d", k)
end

-- a value on a log axis that is not a power of ten: 2e-3, 0.05, 500
local function log_label(v)
  local k = math.floor(math.log(v, 10) + 1e-9)
  local m = math.floor(v / 10.0 ^ k + 0.5)
  if k >= -2 and k <= 3 then
    return fmt("%." .. math.max(0, -k) .. "f", m * 10.0 ^ k)
  end
  return fmt("%de%d", m, k)
end

--- "Nice" ticks for a linear axis over [lo, hi]: returns the tick values,
-- their labels, and the axis limits widened to the outer ticks (Heckbert's
-- nice numbers: steps of 1, 2 or 5 times a power of ten, about n ticks;
-- whole steps when `integer`).
-- lo and hi are finite numbers (either order); n (6 by default, at most
-- 1000) a finite number.  Limits and ticks stay within the doubles.
function M.nice_ticks(lo, hi, n, integer)
  if not finite(lo) or not finite(hi) then
    error(fmt("plot.nice_ticks: lo and hi must be finite numbers (got %s "
      .. "and %s)", tostring(lo), tostring(hi)), 2)
  end
  if n ~= nil and not finite(n) then
    error(fmt("plot.nice_ticks: n must be a finite number (got %s)",
      tostring(n)), 2)
  end
  local m = math.min(math.max(1, (n or 6) - 1), 999)
  lo, hi = lo + 0.0, hi + 0.0
  if lo > hi then lo, hi = hi, lo end
  if lo == hi then
    local d = lo == 0 and 1 or math.abs(lo) * 0.1
    lo, hi = math.max(lo - d, -MAXD), math.min(hi + d, MAXD)
  end
  local raw = math.min(half_span(lo, hi) / m * 2, MAXD)
  local step
  if raw > 0 then
    local e = 10.0 ^ math.floor(math.log(raw, 10))
    local f = raw / e
    if e == 0 or f ~= f then step = raw
    elseif f < 1.5 then step = e
    elseif f < 3 then step = 2 * e
    elseif f < 7 then step = 5 * e
    else step = 10 * e end
    if step == inf then step = e end
  end
  if integer and step and step < 1 then step = 1 end
  if not step or step <= 0 or lo == hi then
    -- no step between two doubles this close: the ends themselves
    local values, labels = { lo }, { fmt("%.3g", lo) }
    if hi ~= lo then values[2], labels[2] = hi, fmt("%.3g", hi) end
    return values, labels, lo, hi
  end
  -- ticks at k * step, k from k0 to k1 (the limits: within the doubles)
  local k0 = math.floor(lo / step + 1e-9) + 0.0
  local k1 = math.ceil(hi / step - 1e-9) + 0.0
  local first = math.max(k0 * step, -MAXD)
  local last = math.min(k1 * step, MAXD)
  local values, labels = {}, {}
  for i = 0, math.min(k1 - k0, 3 * m + 3) do
    local v = (k0 + i) * step
    if math.abs(v) < step * 1e-9 then v = 0 end
    -- steps below the spacing of doubles this large give repeats
    if v >= -MAXD and v <= MAXD and v ~= values[#values] then
      values[#values + 1] = v
      labels[#labels + 1] = tick_label(v, step)
    end
  end
  return values, labels, first, last
end

--- Ticks for a log axis over [lo, hi] (both positive): the powers of ten
-- inside (every second or third one over many decades), with 2 and 5
-- times them when the range is short.  Returns values and labels.
function M.log_ticks(lo, hi)
  if not finite(lo) or not finite(hi) or lo <= 0 or hi <= 0 then
    error(fmt("plot.log_ticks: lo and hi must be positive finite numbers "
      .. "(got %s and %s)", tostring(lo), tostring(hi)), 2)
  end
  lo, hi = lo + 0.0, hi + 0.0
  if lo > hi then lo, hi = hi, lo end
  local k0 = math.ceil(math.log(lo, 10) - 1e-9)
  local k1 = math.floor(math.log(hi, 10) + 1e-9)
  local values, labels = {}, {}
  local ndec = k1 - k0 + 1
  if ndec >= 3 then
    local every = ndec > 16 and math.max(4, math.ceil(ndec / 12))
      or ndec > 10 and 2 or 1
    for k = k0, k1 do
      if (k - k0) % every == 0 then
        values[#values + 1] = 10.0 ^ k
        labels[#labels + 1] = decade_label(k)
      end
    end
    return values, labels
  end
  -- less than three decades: 1, 2, 5 times the powers of ten
  for k = k0 - 1, k1 + 1 do
    for _, m in ipairs { 1, 2, 5 } do
      local v = m * 10.0 ^ k
      if v > 0 and v < inf and v >= lo * (1 - 1e-9)
          and v <= hi * (1 + 1e-9) then
        values[#values + 1] = v
        labels[#labels + 1] = m == 1 and decade_label(k) or log_label(v)
      end
    end
  end
  if #values < 2 then
    local vs, ls = M.nice_ticks(lo, hi, 4)
    values, labels = {}, {}
    for i, v in ipairs(vs) do
      if v >= lo and v <= hi then
        values[#values + 1] = v
        labels[#labels + 1] = ls[i]
      end
    end
  end
  return values, labels
end

---------------------------------------------------------------------------
-- series

local function as_list(v, what)
  if type(v) == "table" then
    -- a copy: # is asked once (a table's __len may say anything)
    local n = #v
    if math.type(n) ~= "integer" or n < 0 or n > (1 << 24) then
      error(fmt("plot: %s has a length (#) of %s, not a list's of at most "
        .. "2^24 points", what, tostring(n)), 4)
    end
    local t = {}
    for i = 1, n do t[i] = v[i] end
    return t
  end
  if type(v) == "userdata" and type(v.totable) == "function" then
    local t = v:totable()
    if type(t[1]) == "table" then
      error("plot: " .. what .. " must be 1-d", 4)
    end
    return t
  end
  error("plot: " .. what .. " must be a list of numbers or a 1-d tensor", 4)
end

-- the series of an options table, each {name, x, y}
local function series_of(o)
  local list = {}
  if o.series ~= nil then
    if type(o.series) ~= "table" then
      error("plot: series must be a list of {name, x, y}", 3)
    end
    for i, s in ipairs(o.series) do
      if type(s) ~= "table" then
        error(fmt("plot: series %d must be {name, x, y}", i), 3)
      end
      local name = s.name or s[1]
      local x, y = s.x or s[2], s.y or s[3]
      if y == nil and x ~= nil then x, y = nil, x end
      y = as_list(y, fmt("series %d's y", i))
      if x ~= nil then x = as_list(x, fmt("series %d's x", i)) end
      list[i] = { name = name ~= nil and tostring(name) or nil, x = x, y = y,
        color = s.color }
    end
  else
    if o.y == nil then error("plot: give y (and x) or series", 3) end
    local y = as_list(o.y, "y")
    local x = o.x ~= nil and as_list(o.x, "x") or nil
    list[1] = { name = o.name, x = x, y = y }
  end
  if #list == 0 then error("plot: no series", 3) end
  for i, s in ipairs(list) do
    if s.x == nil then
      s.x = {}
      for j = 1, #s.y do s.x[j] = j end
    end
    if #s.x ~= #s.y then
      error(fmt("plot: series %d has %d x values and %d y values", i, #s.x,
        #s.y), 3)
    end
    s.color = s.color or PALETTE[(i - 1) % #PALETTE + 1]
  end
  return list
end

local function usable(v, log)
  return finite(v) and (not log or v > 0)
end

-- the data range of one axis over every series (and extra values)
local function data_range(list, key, log, extra)
  local lo, hi = inf, -inf
  for _, s in ipairs(list) do
    for j = 1, #s[key] do
      local v, w = s.x[j], s.y[j]
      if usable(v, key == "x" and log) and usable(w, key == "y" and log) then
        local u = s[key][j]
        if u < lo then lo = u end
        if u > hi then hi = u end
      end
    end
  end
  for _, v in ipairs(extra or {}) do
    if usable(v, log) then
      if v < lo then lo = v end
      if v > hi then hi = v end
    end
  end
  if lo > hi then lo, hi = log and 1 or 0, log and 10 or 1 end
  return lo, hi
end

-- true when every x value of every series is a whole number
local function whole_x(list)
  for _, s in ipairs(list) do
    for _, v in ipairs(s.x) do
      if finite(v) and v ~= math.floor(v) then return false end
    end
  end
  return true
end

-- An axis: limits, ticks and the map from data to pixels.  a: lo, hi
-- (the data), log, fixed_lo, fixed_hi (given limits), p0, p1 (pixels),
-- integer (whole ticks), pad (room around the data instead of limits on
-- the outer ticks: points must not sit on the frame), ticks (given as
-- {{value, label}...}).
local function make_axis(a)
  -- floats: integers such as math.maxinteger * 2 would wrap around
  local lo, hi = (a.fixed_lo or a.lo) + 0.0, (a.fixed_hi or a.hi) + 0.0
  local fixed_lo = a.fixed_lo and a.fixed_lo + 0.0
  local fixed_hi = a.fixed_hi and a.fixed_hi + 0.0
  local p0, p1 = a.p0, a.p1
  local ax = { log = a.log }
  local values, labels
  if a.log then
    if lo == hi then lo, hi = lo / 2, hi * 2 end
    -- a little room beyond the data, in log space, within the positive
    -- doubles (10^-323.3 is the smallest)
    local l0, l1 = math.log(lo, 10), math.log(hi, 10)
    local pad = (l1 - l0) * (a.pad and 0.06 or 0.03)
    if not fixed_lo then l0 = l0 - pad end
    if not fixed_hi then l1 = l1 + pad end
    l0 = math.min(math.max(l0, -323.3), 308.25)
    l1 = math.min(math.max(l1, -323.3), 308.25)
    if l1 == l0 then l0, l1 = l0 - 0.5, l1 + 0.5 end
    ax.lo, ax.hi = 10.0 ^ l0, 10.0 ^ l1
    values, labels = M.log_ticks(ax.lo, ax.hi)
    ax.map = function(v)
      return p0 + (math.log(v, 10) - l0) / (l1 - l0) * (p1 - p0)
    end
  else
    if a.pad and lo < hi then
      local pad = half_span(lo, hi) * 0.12
      if not fixed_lo then lo = math.max(lo - pad, -MAXD) end
      if not fixed_hi then hi = math.min(hi + pad, MAXD) end
    end
    local first, last
    values, labels, first, last = M.nice_ticks(lo, hi, nil, a.integer)
    if a.pad then first, last = lo, hi end
    ax.lo = fixed_lo or first
    ax.hi = fixed_hi or last
    if ax.lo == ax.hi then
      local d = math.max(1, math.abs(ax.lo) * 0.1)
      ax.lo, ax.hi = math.max(ax.lo - d, -MAXD), math.min(ax.hi + d, MAXD)
    end
    local l0, span = ax.lo, ax.hi - ax.lo
    if span == inf or span == -inf then
      -- in halves: the span of -1e308 .. 1e308 overflows
      local h0, hspan = ax.lo * 0.5, half_span(ax.lo, ax.hi)
      ax.map = function(v) return p0 + (v * 0.5 - h0) / hspan * (p1 - p0) end
    else
      ax.map = function(v) return p0 + (v - l0) / span * (p1 - p0) end
    end
  end
  if a.ticks then
    values, labels = {}, {}
    for i, t in ipairs(a.ticks) do
      if type(t) ~= "table" or type(t[1]) ~= "number" then
        error(fmt("plot: %s %d must be {value, label}", a.ticks_name, i), 4)
      end
      values[i], labels[i] = t[1], tostring(t[2] or t[1])
    end
  end
  ax.ticks, ax.labels = {}, {}
  local eps = 2e-9 * math.abs(half_span(ax.lo, ax.hi))
  for i, v in ipairs(values) do
    if v >= ax.lo - eps and v <= ax.hi + eps then
      ax.ticks[#ax.ticks + 1] = v
      ax.labels[#ax.labels + 1] = labels[i]
    end
  end
  return ax
end

---------------------------------------------------------------------------
-- drawing

-- a pixel coordinate; a point far outside fixed limits (clipped) stays a
-- number SVG reads
local function num(v)
  if v ~= v then v = 0 end
  return fmt("%.2f", math.min(math.max(v, -1e6), 1e6))
end

-- a chart into the box (x0, y0, w, h) of an SVG being built in `out`
local function panel(out, o, list, kind, box)
  local x0, y0, w, h = box[1], box[2], box[3], box[4]
  local left, right = x0 + 64, x0 + w - 28
  local top = y0 + (o.title and 34 or 14)
  local bottom = y0 + h - (o.xlabel and 46 or 30)
  local extra_x, extra_y = {}, {}
  for _, m in ipairs(o.markers or {}) do extra_x[#extra_x + 1] = m.x end
  for _, p in ipairs(o.points or {}) do
    extra_x[#extra_x + 1] = p.x or p[1]
    extra_y[#extra_y + 1] = p.y or p[2]
  end
  local xlo, xhi = data_range(list, "x", o.logx, extra_x)
  local ylo, yhi = data_range(list, "y", o.logy, extra_y)
  local ax = make_axis { lo = xlo, hi = xhi, log = o.logx,
    fixed_lo = o.xmin, fixed_hi = o.xmax, p0 = left, p1 = right,
    integer = whole_x(list), pad = kind == "scatter", ticks = o.xticks,
    ticks_name = "xticks" }
  local ay = make_axis { lo = ylo, hi = yhi, log = o.logy,
    fixed_lo = o.ymin, fixed_hi = o.ymax, p0 = bottom, p1 = top,
    pad = kind == "scatter", ticks = o.yticks, ticks_name = "yticks" }
  local add = function(s) out[#out + 1] = s end
  if o.title then
    add(fmt('<text class="title" x="%s" y="%s" text-anchor="middle" '
      .. 'font-size="15" font-weight="bold">%s</text>',
      num((left + right) / 2), num(y0 + 22), esc(o.title)))
  end
  -- grid, ticks and labels
  add('<g class="axes">')
  add(fmt('<g class="xticks">'))
  for i, v in ipairs(ax.ticks) do
    local px = ax.map(v)
    add(fmt('<line class="grid" x1="%s" y1="%s" x2="%s" y2="%s" '
      .. 'stroke="#e5e5e5"/>', num(px), num(top), num(px), num(bottom)))
    add(fmt('<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#333"/>',
      num(px), num(bottom), num(px), num(bottom + 5)))
    add(fmt('<text class="tick" x="%s" y="%s" text-anchor="middle">%s'
      .. '</text>', num(px), num(bottom + 18), esc(ax.labels[i])))
  end
  add('</g>')
  add('<g class="yticks">')
  for i, v in ipairs(ay.ticks) do
    local py = ay.map(v)
    add(fmt('<line class="grid" x1="%s" y1="%s" x2="%s" y2="%s" '
      .. 'stroke="#e5e5e5"/>', num(left), num(py), num(right), num(py)))
    add(fmt('<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#333"/>',
      num(left - 5), num(py), num(left), num(py)))
    add(fmt('<text class="tick" x="%s" y="%s" text-anchor="end">%s</text>',
      num(left - 8), num(py + 4), esc(ay.labels[i])))
  end
  add('</g>')
  add(fmt('<rect class="frame" x="%s" y="%s" width="%s" height="%s" '
    .. 'fill="none" stroke="#333"/>', num(left), num(top),
    num(right - left), num(bottom - top)))
  add('</g>')
  if o.xlabel then
    add(fmt('<text class="xlabel" x="%s" y="%s" text-anchor="middle">%s'
      .. '</text>', num((left + right) / 2), num(y0 + h - 10),
      esc(o.xlabel)))
  end
  if o.ylabel then
    local cx, cy = x0 + 16, (top + bottom) / 2
    add(fmt('<text class="ylabel" x="%s" y="%s" text-anchor="middle" '
      .. 'transform="rotate(-90 %s %s)">%s</text>', num(cx), num(cy),
      num(cx), num(cy), esc(o.ylabel)))
  end

  -- the series, clipped to the frame (a curve may leave a fixed range)
  out.clips = (out.clips or 0) + 1
  local clip = "clip" .. out.clips
  add(fmt('<clipPath id="%s"><rect x="%s" y="%s" width="%s" height="%s"/>'
    .. '</clipPath>', clip, num(left), num(top), num(right - left),
    num(bottom - top)))
  add(fmt('<g clip-path="url(#%s)">', clip))
  for _, s in ipairs(list) do
    add(fmt('<g class="series"%s>', s.name
      and fmt(' data-name="%s"', esc(s.name)) or ""))
    if kind == "line" then
      local d, pen = {}, false
      for j = 1, #s.y do
        local xv, yv = s.x[j], s.y[j]
        if usable(xv, o.logx) and usable(yv, o.logy) then
          d[#d + 1] = (pen and "L" or "M") .. num(ax.map(xv)) .. " "
            .. num(ay.map(yv))
          pen = true
        else
          pen = false
        end
      end
      add(fmt('<path class="line" d="%s" fill="none" stroke="%s" '
        .. 'stroke-width="2" stroke-linejoin="round"/>',
        table.concat(d, " "), s.color))
    else
      for j = 1, #s.y do
        local xv, yv = s.x[j], s.y[j]
        if usable(xv, o.logx) and usable(yv, o.logy) then
          add(fmt('<circle cx="%s" cy="%s" r="3.5" fill="%s" '
            .. 'fill-opacity="0.8"/>', num(ax.map(xv)), num(ay.map(yv)),
            s.color))
        end
      end
    end
    add('</g>')
  end

  -- markers (dashed vertical lines) and highlighted points; their labels
  -- go into the legend
  local extra = {}
  for _, m in ipairs(o.markers or {}) do
    if usable(m.x, o.logx) then
      local px = ax.map(m.x)
      local color = m.color or "#d62728"
      add(fmt('<line class="marker" x1="%s" y1="%s" x2="%s" y2="%s" '
        .. 'stroke="%s" stroke-dasharray="6 4" stroke-width="1.5"/>',
        num(px), num(top), num(px), num(bottom), color))
      if m.label then
        extra[#extra + 1] = { name = m.label, color = color, mark = "dash" }
      end
    end
  end
  for _, p in ipairs(o.points or {}) do
    local xv, yv = p.x or p[1], p.y or p[2]
    if usable(xv, o.logx) and usable(yv, o.logy) then
      local color = p.color or "#d62728"
      add(fmt('<circle class="point" cx="%s" cy="%s" r="5.5" fill="none" '
        .. 'stroke="%s" stroke-width="2.5"/>', num(ax.map(xv)),
        num(ay.map(yv)), color))
      if p.label then
        extra[#extra + 1] = { name = p.label, color = color, mark = "ring" }
      end
    end
  end
  add('</g>')

  -- the legend: named series, then labelled markers and points
  local entries = {}
  local named = false
  for _, s in ipairs(list) do if s.name then named = true end end
  if o.legend ~= false and named and (#list > 1 or o.legend) then
    for _, s in ipairs(list) do
      entries[#entries + 1] = { name = s.name or "", color = s.color,
        mark = kind == "line" and "line" or "dot" }
    end
  end
  if o.legend ~= false then
    for _, e in ipairs(extra) do entries[#entries + 1] = e end
  end
  if #entries > 0 then
    local longest = 0
    for _, e in ipairs(entries) do longest = math.max(longest, #e.name) end
    local lw = 34 + 7 * longest
    local lh = 8 + 18 * #entries
    -- the corner whose box covers the fewest points
    local best, lx, ly = inf, nil, nil
    for _, c in ipairs { { right - lw - 8, top + 8 },
      { right - lw - 8, bottom - lh - 8 }, { left + 8, top + 8 },
      { left + 8, bottom - lh - 8 } } do
      local n = 0
      local function count(px, py)
        if px >= c[1] - 4 and px <= c[1] + lw + 4 and py >= c[2] - 4
            and py <= c[2] + lh + 4 then
          n = n + 1
        end
      end
      for _, s in ipairs(list) do
        local qx, qy
        for j = 1, #s.y do
          local xv, yv = s.x[j], s.y[j]
          if usable(xv, o.logx) and usable(yv, o.logy) then
            local px, py = ax.map(xv), ay.map(yv)
            count(px, py)
            if kind == "line" and qx then
              -- points along the segment from the previous vertex
              for t = 1, 7 do
                count(qx + (px - qx) * t / 8, qy + (py - qy) * t / 8)
              end
            end
            qx, qy = px, py
          else
            qx = nil
          end
        end
      end
      if n < best then best, lx, ly = n, c[1], c[2] end
    end
    add(fmt('<g class="legend"><rect x="%s" y="%s" width="%s" height="%s" '
      .. 'fill="white" fill-opacity="0.85" stroke="#ccc"/>', num(lx),
      num(ly), num(lw), num(lh)))
    for i, e in ipairs(entries) do
      local cy = ly + 4 + 18 * i - 5
      add('<g class="legend-entry">')
      if e.mark == "line" or e.mark == "dash" then
        add(fmt('<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" '
          .. 'stroke-width="2"%s/>', num(lx + 6), num(cy), num(lx + 24),
          num(cy), e.color, e.mark == "dash"
            and ' stroke-dasharray="4 3"' or ""))
      elseif e.mark == "ring" then
        add(fmt('<circle cx="%s" cy="%s" r="4.5" fill="none" stroke="%s" '
          .. 'stroke-width="2"/>', num(lx + 15), num(cy), e.color))
      else
        add(fmt('<circle cx="%s" cy="%s" r="4" fill="%s"/>', num(lx + 15),
          num(cy), e.color))
      end
      add(fmt('<text x="%s" y="%s">%s</text>', num(lx + 30), num(cy + 4),
        esc(e.name)))
      add('</g>')
    end
    add('</g>')
  end
end

local function svg_open(w, h)
  return { fmt('<svg xmlns="http://www.w3.org/2000/svg" width="%d" '
    .. 'height="%d" viewBox="0 0 %d %d" font-family="Helvetica, Arial, '
    .. 'sans-serif" font-size="12">', w, h, w, h),
    fmt('<rect width="%d" height="%d" fill="white"/>', w, h) }
end

local function finish(out, path)
  out[#out + 1] = "</svg>\n"
  local text = table.concat(out, "\n")
  if path then
    local f, err = io.open(path, "w")
    if not f then error("plot: " .. err, 3) end
    f:write(text)
    f:close()
  end
  return text
end

local chart_keys = {}
for _, k in ipairs { "x", "y", "name", "series", "title", "xlabel", "ylabel",
  "logx", "logy", "xmin", "xmax", "ymin", "ymax", "width", "height",
  "xticks", "yticks",
  "legend", "markers", "points", "path" } do
  chart_keys[k] = true
end

local function chart(o, kind)
  if type(o) ~= "table" then
    error("plot." .. kind .. ": expected one table of options", 3)
  end
  for k in pairs(o) do
    if not chart_keys[k] then
      error(fmt("plot.%s: unknown option '%s'", kind, tostring(k)), 3)
    end
  end
  for _, k in ipairs { "xmin", "xmax", "ymin", "ymax" } do
    local v = o[k]
    if v ~= nil then
      if not finite(v) then
        error(fmt("plot.%s: %s must be a finite number (got %s)", kind, k,
          tostring(v)), 3)
      end
      if v <= 0 and o[k:sub(1, 1) == "x" and "logx" or "logy"] then
        error(fmt("plot.%s: %s must be positive on a log axis (got %s)",
          kind, k, tostring(v)), 3)
      end
    end
  end
  for _, k in ipairs { "width", "height" } do
    local v = o[k]
    if v ~= nil and (not finite(v) or v < 1 or v > 1e6
        or v ~= math.floor(v)) then
      error(fmt("plot.%s: %s must be a whole number of pixels, 1 to 1e6 "
        .. "(got %s)", kind, k, tostring(v)), 3)
    end
  end
  for _, k in ipairs { "markers", "points", "xticks", "yticks" } do
    local v = o[k]
    if v ~= nil then
      if type(v) ~= "table" then
        error(fmt("plot.%s: %s must be a list of tables (got %s)", kind, k,
          type(v)), 3)
      end
      for i, e in ipairs(v) do
        if type(e) ~= "table" then
          error(fmt("plot.%s: %s[%d] must be a table (got %s)", kind, k, i,
            type(e)), 3)
        end
      end
    end
  end
  local list = series_of(o)
  local w, h = o.width or 640, o.height or 400
  local out = svg_open(w, h)
  panel(out, o, list, kind, { 0, 0, w, h })
  return finish(out, o.path)
end

--- A line chart; see the top of this file for the options.
function M.line(o) return chart(o, "line") end

--- A scatter chart (points, no lines); options as line.
function M.scatter(o) return chart(o, "scatter") end

local history_skip = { lr = true, time = true, loss = true, val_loss = true }

--- The curves of lg.train.fit's history: training and validation loss on
-- the left, the metrics (accuracy...) on the right when there are any.
-- opts: title, metrics_title, logy (of the loss), width, height.
function M.history(history, path, opts)
  if type(history) ~= "table" or type(history.loss) ~= "table" then
    error("plot.history: expects fit's history (a table with loss)", 2)
  end
  opts = opts or {}
  local loss = as_list(history.loss, "history.loss")
  local epochs = {}
  for i = 1, #loss do epochs[i] = i end
  local losses = { { name = "training loss", x = epochs, y = loss } }
  if type(history.val_loss) == "table" and #history.val_loss > 0 then
    losses[2] = { name = "validation loss", x = epochs,
      y = history.val_loss }
  end
  local names = {}
  for k, v in pairs(history) do
    if not history_skip[k] and type(v) == "table" and #v > 0 then
      names[#names + 1] = k
    end
  end
  table.sort(names)
  local metrics = {}
  for _, k in ipairs(names) do
    local ys = {}
    for i = 1, #epochs do ys[i] = history[k][i] end
    metrics[#metrics + 1] = { name = k, x = epochs, y = ys }
  end
  local w = opts.width or (#metrics > 0 and 960 or 640)
  local h = opts.height or 400
  local out = svg_open(w, h)
  local pw = #metrics > 0 and w / 2 or w
  panel(out, { title = opts.title or "loss", xlabel = "epoch",
    ylabel = "loss", logy = opts.logy, legend = true },
    series_of { series = losses }, "line", { 0, 0, pw, h })
  if #metrics > 0 then
    panel(out, { title = opts.metrics_title or "metrics", xlabel = "epoch",
      ylabel = #metrics == 1 and metrics[1].name or "value", legend = true },
      series_of { series = metrics }, "line", { pw, 0, w - pw, h })
  end
  return finish(out, path)
end

--- The curve of lg.exp.lr_find (smoothed loss against the rate, log
-- scale) with the suggested rate marked, and the steepest-descent rate.
-- opts: title, width, height, raw (also draw the raw losses).
function M.lr_find(r, path, opts)
  if type(r) ~= "table" or type(r.lrs) ~= "table" then
    error("plot.lr_find: expects the result of lg.exp.lr_find", 2)
  end
  opts = opts or {}
  local series = {}
  if opts.raw and r.raw_losses then
    series[#series + 1] = { name = "loss (raw)", x = r.lrs, y = r.raw_losses,
      color = "#c7c7c7" }
  end
  series[#series + 1] = { name = "loss (smoothed)", x = r.lrs, y = r.losses,
    color = "#1f77b4" }
  -- the vertical range: the smoothed curve up to its minimum, so the
  -- divergence at the end (clipped) does not flatten the rest
  local lo, hi = inf, -inf
  for i, v in ipairs(r.losses) do
    if finite(v) and i <= (r.index_min or #r.losses) then
      lo, hi = math.min(lo, v), math.max(hi, v)
    end
  end
  local markers, points = {}, {}
  if r.suggestion then
    markers[1] = { x = r.suggestion, label = fmt("suggestion %.3g "
      .. "(minimum / 10)", r.suggestion), color = "#d62728" }
  end
  if r.suggestion_steepest and r.index_steepest then
    points[1] = { x = r.suggestion_steepest,
      y = r.losses[r.index_steepest], color = "#2ca02c",
      label = fmt("steepest %.3g", r.suggestion_steepest) }
  end
  if r.lr_min and r.index_min then
    points[#points + 1] = { x = r.lr_min, y = r.losses[r.index_min],
      color = "#9467bd", label = fmt("minimum %.3g", r.lr_min) }
  end
  local pad = half_span(lo, hi) * 0.2
  return chart({ series = series, logx = true, title = opts.title
    or "learning-rate range test", xlabel = "learning rate",
    ylabel = "loss", markers = markers, points = points,
    ymin = lo < hi and math.max(lo - pad, -MAXD) or nil,
    ymax = lo < hi and math.min(hi + 2 * pad, MAXD) or nil,
    width = opts.width, height = opts.height, legend = #series > 1 or nil,
    path = path }, "line")
end

--- The trials of lg.exp.sweep: the metric against one hyperparameter, one
-- series per value of another (`by`).  opts: x (the hyperparameter; the
-- first name by default), y (the metric; the sweep's), by, logx, logy,
-- categorical (the x values evenly spaced and labelled as they are; the
-- default when they are not all numbers, or include 0 on logx), title,
-- path.
function M.sweep(res, opts)
  if type(res) ~= "table" or type(res.results) ~= "table" then
    error("plot.sweep: expects the result of lg.exp.sweep", 2)
  end
  opts = opts or {}
  local first = res.results[1]
  local xname = opts.x
  if xname == nil and first then
    local names = {}
    for k in pairs(first.config) do names[#names + 1] = k end
    table.sort(names)
    xname = names[1]
  end
  local yname = opts.y or res.metric or "loss"
  -- the x values, and whether to space them evenly
  local xs, seen = {}, {}
  local categorical = opts.categorical
  for _, r in ipairs(res.results) do
    local v = r.config[xname]
    if v ~= nil and not seen[v] then
      seen[v] = true
      xs[#xs + 1] = v
      if type(v) ~= "number" or (opts.logx and v <= 0) then
        if categorical == nil then categorical = true end
      end
    end
  end
  local pos, xticks = {}, nil
  if categorical then
    table.sort(xs, function(a, b)
      if type(a) == "number" and type(b) == "number" then return a < b end
      return tostring(a) < tostring(b)
    end)
    xticks = {}
    for i, v in ipairs(xs) do
      pos[v] = i
      xticks[i] = { i, type(v) == "number" and fmt("%g", v) or tostring(v) }
    end
  end
  local function xof(v)
    if categorical then return pos[v] end
    return v
  end
  local groups, order = {}, {}
  for _, r in ipairs(res.results) do
    if r.ok and r.metrics and type(r.metrics[yname]) == "number" then
      local key = opts.by and tostring(r.config[opts.by]) or ""
      if not groups[key] then
        groups[key] = { name = opts.by and (opts.by .. " = " .. key) or nil,
          x = {}, y = {} }
        order[#order + 1] = key
      end
      local g = groups[key]
      g.x[#g.x + 1] = xof(r.config[xname])
      g.y[#g.y + 1] = r.metrics[yname]
    end
  end
  if #order == 0 then
    error("plot.sweep: no successful trial reported " .. tostring(yname), 2)
  end
  local series = {}
  for i, k in ipairs(order) do series[i] = groups[k] end
  local points
  if res.best and res.best.config[xname] ~= nil then
    points = { { x = xof(res.best.config[xname]),
      y = res.best.metrics[yname], label = "best" } }
  end
  return chart({ series = series, logx = opts.logx and not categorical,
    logy = opts.logy, xticks = xticks,
    xmin = categorical and 0.5 or nil,
    xmax = categorical and #xs + 0.5 or nil,
    title = opts.title or ("sweep: " .. yname), xlabel = xname,
    ylabel = yname, points = points, path = opts.path,
    width = opts.width, height = opts.height }, "scatter")
end

---------------------------------------------------------------------------
-- heat maps

-- a value in [-1, 1] as a color: blue (-1), white (0), red (1); or, with
-- sequential, [0, 1] from white to black
local function heat_color(v, sequential)
  if v ~= v then return "#888888" end
  if sequential then
    local c = math.floor(255 * (1 - math.max(0, math.min(1, v))) + 0.5)
    return fmt("#%02x%02x%02x", c, c, c)
  end
  v = math.max(-1, math.min(1, v))
  local r, g, b
  if v >= 0 then
    r, g, b = 255, 255 * (1 - v), 255 * (1 - v)
  else
    r, g, b = 255 * (1 + v), 255 * (1 + v), 255
  end
  return fmt("#%02x%02x%02x", math.floor(r + 0.5), math.floor(g + 0.5),
    math.floor(b + 0.5))
end

local heat_keys = { panels = true, title = true, columns = true,
  cell = true, path = true }

--- Heat maps in a grid: panels = {{title = "...", data = t, sequential =
-- false}...} where data is a 2-d tensor or a table of rows.  Diverging
-- panels (the default) color each value over the panel's largest
-- magnitude, blue negative, red positive; sequential ones scale min..max
-- from white to black (for images).  Options: title, columns (4), cell
-- (pixels per value, 5), path.
function M.heatmap(o)
  if type(o) ~= "table" or type(o.panels) ~= "table" or #o.panels == 0 then
    error("plot.heatmap: expected {panels = {{title, data}...}}", 2)
  end
  for k in pairs(o) do
    if not heat_keys[k] then
      error("plot.heatmap: unknown option '" .. tostring(k) .. "'", 2)
    end
  end
  local rows_of = {}
  local maxh, maxw = 0, 0
  for i, pnl in ipairs(o.panels) do
    local d = type(pnl) == "table" and pnl.data
    if type(d) == "userdata" and d.totable then
      if d:dim() ~= 2 then
        error(fmt("plot.heatmap: panel %d: data must be 2-d (got %d-d)", i,
          d:dim()), 2)
      end
      d = d:double():totable()
    end
    if type(d) ~= "table" or type(d[1]) ~= "table" then
      error(fmt("plot.heatmap: panel %d: data must be a 2-d tensor or a "
        .. "table of rows", i), 2)
    end
    rows_of[i] = d
    maxh, maxw = math.max(maxh, #d), math.max(maxw, #d[1])
  end
  local cols = o.columns or 4
  local cell = o.cell or 5
  if math.type(cols) ~= "integer" or cols < 1 or math.type(cell) ~= "integer"
      or cell < 1 or cell > 1000 then
    error("plot.heatmap: columns and cell must be positive integers "
      .. "(cell at most 1000)", 2)
  end
  local n = #o.panels
  cols = math.min(cols, n)
  local nrows = (n + cols - 1) // cols
  local pw, ph = maxw * cell, maxh * cell
  local top = o.title and 30 or 8
  local gap, label = 12, 18
  local W = cols * (pw + gap) + gap
  local H = top + nrows * (ph + label + gap)
  local out = svg_open(W, H)
  if o.title then
    out[#out + 1] = fmt('<text x="%d" y="20" text-anchor="middle" '
      .. 'font-size="14">%s</text>', W // 2, esc(o.title))
  end
  for i, pnl in ipairs(o.panels) do
    local d = rows_of[i]
    local c, r = (i - 1) % cols, (i - 1) // cols
    local x0 = gap + c * (pw + gap)
    local y0 = top + r * (ph + label + gap) + label
    local lo, hi, mag = inf, -inf, 0
    for _, row in ipairs(d) do
      for _, v in ipairs(row) do
        if finite(v) then
          lo, hi = math.min(lo, v), math.max(hi, v)
          mag = math.max(mag, math.abs(v))
        end
      end
    end
    if pnl.title then
      out[#out + 1] = fmt('<text x="%d" y="%d" text-anchor="middle">%s'
        .. '</text>', x0 + pw // 2, y0 - 5, esc(pnl.title))
    end
    for yi, row in ipairs(d) do
      for xi, v in ipairs(row) do
        local t
        if pnl.sequential then
          t = hi > lo and (v - lo) / (hi - lo) or 0
        else
          t = mag > 0 and v / mag or 0
        end
        out[#out + 1] = fmt('<rect x="%d" y="%d" width="%d" height="%d" '
          .. 'fill="%s"/>', x0 + (xi - 1) * cell, y0 + (yi - 1) * cell, cell,
          cell, heat_color(t, pnl.sequential))
      end
    end
    out[#out + 1] = fmt('<rect x="%d" y="%d" width="%d" height="%d" '
      .. 'fill="none" stroke="#444"/>', x0, y0, #d[1] * cell, #d * cell)
  end
  return finish(out, o.path)
end

return M
