-- driver.lua runs gota.lua under a stock Lua interpreter (lua5.1, lua5.3)
-- with minimal stand-ins for NodeMCU's modules, feeds it the bytes of
-- IN (what a host sends), and writes what the agent sends to OUT and the
-- image it wrote through otaupgrade.write to IMG. It reports Lua memory:
--   usage: lua driver.lua AGENT IN OUT IMG [pure-bit]
-- With "pure-bit" (Lua 5.1, which has no bit library) a pure-Lua bit
-- module with NodeMCU's 32-bit signed semantics is provided; without it
-- on Lua 5.3 there is no bit module and gota.lua uses native operators.

local agent, inpath, outpath, imgpath, purebit = arg[1], arg[2], arg[3], arg[4], arg[5]

if purebit == "pure-bit" then
  local floor = math.floor
  local function tou(x)
    assert(x == floor(x) and x >= -2147483648 and x <= 2147483647, "bit: argument out of int32 range: " .. tostring(x))
    if x < 0 then x = x + 4294967296 end
    return x
  end
  local function tos(x) if x >= 2147483648 then x = x - 4294967296 end return x end
  local function op(f)
    return function(a, b)
      a, b = tou(a), tou(b)
      local r, p = 0, 1
      for _ = 1, 32 do
        local x, y = a % 2, b % 2
        if f(x, y) then r = r + p end
        a, b, p = (a - x) / 2, (b - y) / 2, p * 2
      end
      return tos(r)
    end
  end
  bit = {
    band = op(function(x, y) return x == 1 and y == 1 end),
    bor = op(function(x, y) return x == 1 or y == 1 end),
    bxor = op(function(x, y) return x ~= y end),
    rshift = function(a, n) return tos(floor(tou(a) / 2 ^ n)) end,
    lshift = function(a, n) return tos((tou(a) * 2 ^ n) % 4294967296) end,
  }
else
  bit = nil
end

local out = assert(io.open(outpath, "wb"))
local img
-- peak: heap including garbage the collector has not reclaimed yet (with
-- stock GC settings); live: heap after a full collection, sampled after
-- every callback (the agent holds nothing between callbacks that it does
-- not need).
local peak, live, samples = 0, 0, 0
local function sample()
  local kb = collectgarbage("count")
  if kb > peak then peak = kb end
  samples = samples + 1
  if samples % 8 == 0 then
    collectgarbage("collect")
    kb = collectgarbage("count")
    if kb > live then live = kb end
  end
end

local cb, need = nil, 0
local modes = {}
console = {
  INTERACTIVE = 1, NONINTERACTIVE = 0,
  write = function(...) for i = 1, select("#", ...) do out:write((select(i, ...))) end end,
  on = function(method, n, f)
    assert(method == "data")
    need, cb = n, f
  end,
  mode = function(m) modes[#modes + 1] = m end,
}
local timer_mt = { __index = {
  alarm = function() return true end, stop = function() return true end, unregister = function() end,
} }
tmr = { ALARM_SINGLE = 0, ALARM_AUTO = 1, ALARM_SEMI = 2, create = function() return setmetatable({}, timer_mt) end }
node = { restart = function() end, heap = function() return 100000 end,
  info = function(g) return { chip_model = "esp32", chip_major_rev = 3, chip_minor_rev = 1 } end }
uart = { PARITY_NONE = 0, STOPBITS_1 = 1, setup = function(id, baud) return baud end, write = function() end, on = function() end }
local written, running, state = 0, "app0", {}
otaupgrade = {
  commence = function() img = assert(io.open(imgpath, "wb")) written = 0 end,
  write = function(s)
    if not img then error("write not possible, use otaupgrade.commence() first") end
    if written == 0 and s:byte(1) ~= 0xE9 then error("not a valid ota image") end
    img:write(s)
    written = written + #s
  end,
  complete = function(r)
    assert(type(r) == "number", "bad argument #1 to 'complete' (number expected)")
    if not img then error("no upgrade in progress") end
    img:close() img = nil
    state.app1 = "new"
  end,
  accept = function() end,
  rollback = function() error("no other firmware to roll back to") end,
  info = function()
    return running, running, {
      app0 = { state = "valid", name = "led", version = "1.1", secure_version = 0, date = "Jan  1 2026", time = "00:00:00", idf_version = "v5.1.3" },
      app1 = state.app1 and { state = state.app1 } or {},
    }
  end,
}

collectgarbage("collect")
local base0 = collectgarbage("count")
dofile(agent)
collectgarbage("collect")
local loaded = collectgarbage("count")
assert(cb, "gota.lua registered no console callback")

-- Feed the host's bytes the way serial_common.c does: the callback gets
-- need bytes at a time (every byte when need is 0).
local f = assert(io.open(inpath, "rb"))
local held, nheld = {}, 0
while true do
  local block = f:read(4096)
  if not block then break end
  for i = 1, #block do
    nheld = nheld + 1
    held[nheld] = block:sub(i, i)
    local want = need
    if want < 1 then want = 1 end
    if nheld >= want then
      local chunk = table.concat(held, "", 1, nheld)
      for k = 1, nheld do held[k] = nil end
      nheld = 0
      cb(chunk)
      sample()
    end
  end
end
f:close()
out:close()
collectgarbage("collect")
io.write(string.format("base=%.1f loaded=%.1f agent=%.1f live_peak=%.1f (agent+%.1f) gc_peak=%.1f after=%.1f callbacks=%d modes=%s\n",
  base0, loaded, loaded - base0, live, live - loaded, peak, collectgarbage("count"), samples, table.concat(modes, ",")))
