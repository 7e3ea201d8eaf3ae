-- lg.plot: SVG charts, checked by their structure (elements, tick labels,
-- legend entries, escaping) rather than by pixels.
local lg = require "lgrad"
local plot = require "lgrad.plot"

-- the elements of an SVG text, checked to nest properly: returns a list of
-- {name, attrs, text} in document order
local function parse(svg)
  local elems, stack = {}, {}
  local pos = 1
  while true do
    local s, e, close, name, attrs, selfclose =
      svg:find("<(/?)([%w:%-]+)(.-)(/?)>", pos)
    if not s then break end
    local between = svg:sub(pos, s - 1)
    assert.is_nil(between:find("[<>]"), "stray bracket: " .. between)
    if #stack > 0 and between:find("%S") then
      local top = stack[#stack]
      top.text = (top.text or "") .. between
    end
    if close == "/" then
      local open = table.remove(stack)
      assert.is_not_nil(open, "closing " .. name .. " without opening")
      assert.equals(open.name, name)
    else
      local el = { name = name, attrs = {}, parent = stack[#stack] }
      for k, v in attrs:gmatch("([%w:%-]+)=\"([^\"]*)\"") do el.attrs[k] = v end
      elems[#elems + 1] = el
      if selfclose ~= "/" then stack[#stack + 1] = el end
    end
    pos = e + 1
  end
  assert.equals(0, #stack, "unclosed elements")
  return elems
end

local function select(elems, name, class)
  local out = {}
  for _, el in ipairs(elems) do
    if el.name == name and (class == nil or el.attrs.class == class) then
      out[#out + 1] = el
    end
  end
  return out
end

-- the texts of <text class="tick"> elements, in order
local function tick_labels(elems)
  local out = {}
  for _, el in ipairs(select(elems, "text", "tick")) do
    out[#out + 1] = el.text
  end
  return out
end

local function contains(list, v)
  for _, x in ipairs(list) do if x == v then return true end end
  return false
end

-- the texts inside <g class="legend">
local function legend_texts(elems)
  local out = {}
  for _, el in ipairs(elems) do
    local p = el.parent
    while p and p.attrs.class ~= "legend" do p = p.parent end
    if p and el.name == "text" then out[#out + 1] = el.text end
  end
  return out
end

describe("lg.plot.nice_ticks", function()
  it("steps by 1, 2 or 5 times a power of ten", function()
    local _, v, l, lo, hi
    v, l, lo, hi = plot.nice_ticks(0, 1)
    assert.same({ "0.0", "0.2", "0.4", "0.6", "0.8", "1.0" }, l)
    assert.equals(0, lo)
    assert.equals(1, hi)
    assert.equals(6, #v)
    _, l, lo, hi = plot.nice_ticks(0.13, 9.7)
    assert.same({ "0", "2", "4", "6", "8", "10" }, l)
    assert.equals(0, lo)
    assert.equals(10, hi)
    _, l = plot.nice_ticks(-3, 47)
    assert.same({ "-10", "0", "10", "20", "30", "40", "50" }, l)
    _, l = plot.nice_ticks(1, 4, nil, true) -- whole steps
    assert.same({ "1", "2", "3", "4" }, l)
    _, l = plot.nice_ticks(2.2, 2.2) -- one value: a range around it
    assert.is_true(#l >= 2)
  end)

  it("puts decades on log axes", function()
    local _, v, l
    v, l = plot.log_ticks(1e-7, 10)
    assert.equals("1e-7", l[1])
    assert.is_true(contains(l, "1e-3"))
    assert.is_true(contains(l, "0.01"))
    assert.is_true(contains(l, "10"))
    assert.equals(1e-7, v[1])
    _, l = plot.log_ticks(0.05, 1.2) -- a short range: 1, 2, 5 steps
    assert.same({ "0.05", "0.1", "0.2", "0.5", "1" }, l)
    _, l = plot.log_ticks(1e-30, 1e10) -- many decades: every fourth
    assert.same({ "1e-30", "1e-26", "1e-22", "1e-18", "1e-14", "1e-10",
      "1e-6", "0.01", "100", "1e6", "1e10" }, l)
  end)
end)

describe("lg.plot.line", function()
  local tmp = os.tmpname()
  teardown(function() os.remove(tmp) end)

  it("writes an SVG with one path per series, ticks and a legend",
    function()
      local xs, a, b = {}, {}, {}
      for i = 1, 20 do
        xs[i] = i
        a[i] = 1 / i
        b[i] = 1.5 / i
      end
      local svg = plot.line { series = { { "train", xs, a },
        { name = "val", x = xs, y = b } }, title = "losses",
        xlabel = "epoch", ylabel = "loss", path = tmp }
      local f = assert(io.open(tmp))
      assert.equals(svg, f:read("a"))
      f:close()
      assert.is_truthy(svg:find("^<svg xmlns=\"http://www.w3.org/2000/svg\""))
      local el = parse(svg)
      assert.equals("svg", el[1].name)
      local paths = select(el, "path", "line")
      assert.equals(2, #paths)
      assert.not_equals(paths[1].attrs.stroke, paths[2].attrs.stroke)
      -- 20 points each: one move and 19 lines
      local _, moves = paths[1].attrs.d:gsub("M", "")
      local _, lines = paths[1].attrs.d:gsub("L", "")
      assert.equals(1, moves)
      assert.equals(19, lines)
      assert.same({ "train", "val" }, legend_texts(el))
      assert.equals("losses", select(el, "text", "title")[1].text)
      assert.equals("epoch", select(el, "text", "xlabel")[1].text)
      assert.equals("loss", select(el, "text", "ylabel")[1].text)
      local ticks = tick_labels(el)
      for _, want in ipairs { "0", "5", "10", "15", "20", "0.0", "0.4",
        "1.0", "1.6" } do
        assert.is_true(contains(ticks, want), "tick " .. want)
      end
    end)

  it("takes x and y (or y alone, and tensors)", function()
    local el = parse(plot.line { y = lg.tensor { 3, 1, 2 } })
    assert.equals(1, #select(el, "path", "line"))
    assert.equals(0, #select(el, "g", "legend")) -- one unnamed series
    assert.same({ "1", "2", "3" }, { table.unpack(tick_labels(el), 1, 3) })
  end)

  it("breaks the line at values that are not finite", function()
    local el = parse(plot.line { x = { 1, 2, 3, 4, 5 },
      y = { 1, 2, 0 / 0, 4, 5 } })
    local d = select(el, "path", "line")[1].attrs.d
    local _, moves = d:gsub("M", "")
    assert.equals(2, moves)
  end)

  it("draws log scales with decade ticks like 1e-3", function()
    local xs, ys = {}, {}
    for i = 1, 60 do
      xs[i] = 10 ^ (-7 + i * 0.1)
      ys[i] = 2 + math.sin(i / 10)
    end
    local el = parse(plot.line { x = xs, y = ys, logx = true })
    local ticks = tick_labels(el)
    for _, want in ipairs { "1e-6", "1e-5", "1e-4", "1e-3", "0.01",
      "0.1" } do
      assert.is_true(contains(ticks, want), "tick " .. want)
    end
    -- the ticks of the x axis are evenly spaced on a log axis
    local xt = {}
    for _, e in ipairs(el) do
      if e.name == "text" and e.attrs.class == "tick"
          and e.attrs["text-anchor"] == "middle" then
        xt[#xt + 1] = tonumber(e.attrs.x)
      end
    end
    for i = 3, #xt do
      assert.is_true(math.abs((xt[i] - xt[i - 1]) - (xt[2] - xt[1])) < 0.02)
    end
    -- a log y axis leaves out values that are not positive
    local el2 = parse(plot.line { y = { 1, 0, 100, -1, 1e4 }, logy = true })
    local ticks2 = tick_labels(el2)
    assert.is_true(contains(ticks2, "100"))
    assert.is_true(contains(ticks2, "1e4"))
  end)

  it("escapes text for XML", function()
    local svg = plot.line { series = { { "a<b & \"c\"", { 1, 2 }, { 1, 2 } },
      { "d>'e'", { 1, 2 }, { 2, 1 } } }, title = "x < y & z" }
    assert.is_nil(svg:find("x < y", 1, true))
    assert.is_truthy(svg:find("x &lt; y &amp; z", 1, true))
    local el = parse(svg)
    assert.same({ "a&lt;b &amp; &quot;c&quot;", "d&gt;&#39;e&#39;" },
      legend_texts(el))
    assert.equals("a&lt;b&gt;", plot.escape("a<b>\1"))
  end)

  it("rejects bad input", function()
    assert.has_error(function() plot.line { x = { 1, 2 }, y = { 1 } } end,
      "plot: series 1 has 2 x values and 1 y values")
    assert.has_error(function() plot.line {} end,
      "plot: give y (and x) or series")
    assert.has_error(function() plot.line { y = { 1 }, colour = "red" } end,
      "plot.line: unknown option 'colour'")
  end)
end)

describe("lg.plot.scatter", function()
  it("draws one group of circles per series", function()
    local el = parse(plot.scatter { series = {
      { "a", { 1, 2, 3 }, { 1, 4, 9 } }, { "b", { 1, 2 }, { 2, 3 } } },
      logx = true })
    local groups = select(el, "g", "series")
    assert.equals(2, #groups)
    assert.equals("a", groups[1].attrs["data-name"])
    -- five points, and a dot for each legend entry
    assert.equals(5 + 2, #select(el, "circle"))
    assert.equals(0, #select(el, "path", "line"))
    assert.same({ "a", "b" }, legend_texts(el))
  end)
end)

describe("lg.plot views", function()
  it("draws fit's history: loss curves and metrics side by side",
    function()
      local h = { loss = { 1, 0.6, 0.5 }, val_loss = { 0.9, 0.7, 0.65 },
        accuracy = { 0.6, 0.7, 0.75 }, lr = { 0.1, 0.1, 0.1 },
        time = { 1, 1, 1 } }
      local el = parse(plot.history(h))
      assert.equals(3, #select(el, "path", "line"))
      assert.equals(2, #select(el, "rect", "frame"))
      local legend = legend_texts(el)
      assert.same({ "training loss", "validation loss", "accuracy" }, legend)
      local titles = select(el, "text", "title")
      assert.equals("loss", titles[1].text)
      assert.equals("metrics", titles[2].text)
    end)

  it("marks lr_find's suggestion on a log axis", function()
    local r = { lrs = {}, losses = {} }
    for i = 1, 50 do
      r.lrs[i] = 10 ^ (-6 + i * 0.12)
      r.losses[i] = 2 - math.exp(-((i - 35) / 8) ^ 2)
    end
    for k, v in pairs(require("lgrad.exp").suggest(r.lrs, r.losses)) do
      r[k] = v
    end
    local el = parse(plot.lr_find(r))
    local marker = select(el, "line", "marker")
    assert.equals(1, #marker)
    assert.equals(marker[1].attrs.x1, marker[1].attrs.x2)
    local legend = legend_texts(el)
    assert.is_truthy(legend[1]:find("^suggestion "))
    assert.is_true(contains(tick_labels(el), "1e-4"))
    assert.equals(2, #select(el, "circle", "point"))
  end)

  it("shows a sweep's metric against a hyperparameter", function()
    local res = { metric = "loss", results = {
      { ok = true, config = { lr = 0.01, wd = 0 }, metrics = { loss = 1 } },
      { ok = true, config = { lr = 0.1, wd = 0 }, metrics = { loss = 0.5 } },
      { ok = false, config = { lr = 1, wd = 0 }, error = "diverged" },
      { ok = true, config = { lr = 0.1, wd = 1 }, metrics = { loss = 0.7 } },
    } }
    res.best = { config = res.results[2].config,
      metrics = res.results[2].metrics }
    local el = parse(plot.sweep(res, { x = "lr", by = "wd", logx = true }))
    assert.equals(2, #select(el, "g", "series"))
    assert.same({ "wd = 0", "wd = 1", "best" }, legend_texts(el))
    assert.equals("lr", select(el, "text", "xlabel")[1].text)
    -- 0 on a log axis: the values are spaced evenly and labelled
    local el2 = parse(plot.sweep(res, { x = "wd", logx = true }))
    local ticks = tick_labels(el2)
    assert.equals("0", ticks[1])
    assert.equals("1", ticks[2])
  end)
end)
