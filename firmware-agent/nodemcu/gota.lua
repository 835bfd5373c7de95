-- gota.lua: the Gota over-the-air update agent for NodeMCU (dev-esp32).
--
-- Speaks the Gota wire protocol, version 1 (protocol/SPEC.md), on the
-- console. It takes the console from the Lua interpreter (so no frame byte
-- ever reaches it) and offers a REPL of its own in its place: text typed
-- outside a session is echoed and run line by line; while frames arrive
-- (and for 5 s after the last one) other input is ignored. Drives the
-- otaupgrade module exactly as it documents: commence, write, complete,
-- accept, rollback, info.
--
-- Runs on Lua 5.1 (with the bit module) and Lua 5.3 builds, on firmware
-- with the console module (2024 and later) and on older firmware where
-- uart.on serves the console. Memory: one frame (at most MAX_PAYLOAD + 11
-- bytes) is held at a time, never the image.
--
-- Start it from init.lua:  dofile("gota.lua")
-- Stop it (the console goes back to NodeMCU's own interpreter):  gota.stop()
-- Optional settings, before dofile:
--   gota_config = { max_payload = 1024, quiet_ms = 5000 }

local cfg = gota_config or {}
local VERSION = 1
local AGENT = "gota-lua/1"
local MAX_PAYLOAD = cfg.max_payload or 1024 -- largest payload accepted (advertised in HELLO_R)
if MAX_PAYLOAD < 256 then MAX_PAYLOAD = 256 elseif MAX_PAYLOAD > 4096 then MAX_PAYLOAD = 4096 end
local WINDOW = MAX_PAYLOAD - 4 -- one DATA frame in flight: each is written before the next is read
local FRAME_PAYLOAD = MAX_PAYLOAD - 4
local BASE_MAX = 256           -- what the host accepts before HELLO
local CHUNK = 255              -- largest console/uart callback chunk (uart.on's limit)
local TICK_MS = 100            -- idle rule (SPEC 3.6) granularity
local QUIET_TICKS = math.floor((cfg.quiet_ms or 5000) / TICK_MS) -- session ends after this long without frames
local BAUD_CHECK_MS = 3000     -- SPEC 7.3
-- Fastest rate offered: NodeMCU's console path costs Lua tens of
-- microseconds per received byte (one task post each) behind a 256-byte
-- ring, and its ISR stops during flash operations (README.md, "Speed").
local MAX_BAUD = cfg.max_baud or 230400

-- Message types and flags (SPEC section 5).
local T_HELLO, T_INFO, T_STATUS, T_BEGIN, T_DATA, T_END = 1, 2, 3, 4, 5, 6
local T_ACCEPT, T_ROLLBACK, T_REBOOT, T_ABORT, T_BAUD, T_PING = 7, 8, 9, 10, 11, 12
local T_READY, T_ERROR, REPLY = 0x40, 0x7F, 0x80
local CAP_RESUME, CAP_BAUD = 2, 4
local FLAG_GAP = 2
-- ESP-IDF error codes; ESP_FAIL (0xFFFFFFFF) is -1 so that it stays a
-- 32-bit signed integer for the bit module.
local E_NO_MEM, E_INVALID_ARG, E_INVALID_STATE, E_INVALID_SIZE = 0x101, 0x102, 0x103, 0x104
local E_NOT_FOUND, E_NOT_SUPPORTED, E_FAIL = 0x105, 0x106, -1

local byte, char, sub, find = string.byte, string.char, string.sub, string.find

-- Bitwise operations: Lua 5.3 operators (compiled from a string so Lua 5.1
-- can parse this file; right for 32-bit and 64-bit integers), else
-- NodeMCU's bit module (32-bit signed values). A Lua 5.1 build without
-- bit cannot run the agent: say so and leave the console to the REPL.
local band, bor, bxor, rshift, lshift
local native = _VERSION ~= "Lua 5.1" and load
if native then
  band, bor, bxor, rshift, lshift = load([[
    local M = 0xFFFFFFFF
    return function(a, b) return a & b & M end,
           function(a, b) return (a | b) & M end,
           function(a, b) return (a ~ b) & M end,
           function(a, n) return (a & M) >> n end,
           function(a, n) return (a << n) & M end
  ]])()
elseif bit then
  band, bor, bxor, rshift, lshift = bit.band, bit.bor, bit.bxor, bit.rshift, bit.lshift
else
  print("gota.lua: not started: this Lua 5.1 build has no bit module (enable CONFIG_NODEMCU_CMODULE_BIT, or use a Lua 5.3 build)")
  return
end

local ALL = band(-1, -1)              -- 32 one bits, in this build's representation
local POLY = band(-306674912, ALL)    -- 0xEDB88320

-- CRC-32/IEEE (zlib), table-driven.
local crcT = {}
for i = 0, 255 do
  local c = i
  for _ = 1, 8 do
    if band(c, 1) == 1 then c = bxor(rshift(c, 1), POLY) else c = rshift(c, 1) end
  end
  crcT[i] = c
end

local crc32
if native then
  -- The same loop with native operators: no function call per operation.
  crc32 = load([[
    local T, byte = ...
    return function(s, i, j)
      local c = 0xFFFFFFFF
      for k = i, j do c = T[(c ~ byte(s, k)) & 255] ~ ((c >> 8) & 0xFFFFFF) end
      return (c ~ 0xFFFFFFFF) & 0xFFFFFFFF
    end
  ]])(crcT, byte)
else
  crc32 = function(s, i, j)
    local c = ALL
    for k = i, j do
      c = bxor(crcT[band(bxor(c, byte(s, k)), 255)], rshift(c, 8))
    end
    return bxor(c, ALL)
  end
end

-- CRC-8/SMBUS (poly 0x07), over the 5 header bytes.
local function crc8(s, i, j)
  local c = 0
  for k = i, j do
    c = bxor(c, byte(s, k))
    for _ = 1, 8 do
      if band(c, 128) ~= 0 then c = band(bxor(lshift(c, 1), 7), 255) else c = band(lshift(c, 1), 255) end
    end
  end
  return c
end

local function u16(x) return char(band(x, 255), band(rshift(x, 8), 255)) end
local function u32(x)
  return char(band(x, 255), band(rshift(x, 8), 255), band(rshift(x, 16), 255), band(rshift(x, 24), 255))
end
local function u16at(s, i) return byte(s, i) + 256 * byte(s, i + 1) end
local function u32at(s, i)
  return byte(s, i) + 256 * byte(s, i + 1) + 65536 * byte(s, i + 2) + 16777216 * byte(s, i + 3)
end

-- Console access: the console module where it exists (dev-esp32 since
-- PR #3666, late 2024), else uart 0 (earlier firmware).
local use_console = console ~= nil
local out
if use_console then
  -- console.write takes a numeric string ("7") for a byte value: write
  -- such strings byte by byte.
  local write = console.write
  out = function(s)
    if tonumber(s) then write(byte(s, 1, #s)) else write(s) end
  end
else
  out = function(s) uart.write(0, s) end
end

-- Protocol state: it belongs to this boot, not to a connection.
local host_max = BASE_MAX
local caps = CAP_RESUME
-- BAUD only where uart.setup may change the console's rate: with the
-- console module it raises for UART 0 and nothing else changes the rate.
if not use_console and uart and uart.setup then caps = caps + CAP_BAUD end
-- The console's rate after boot (CONFIG_ESP_CONSOLE_UART_BAUDRATE,
-- normally 115200): uart.getconfig tells on the uart firmware; with the
-- console module nothing does, so gota_config.baud may say it.
local DEFAULT_BAUD = cfg.baud or 115200
if not use_console and uart and uart.getconfig then
  local okc, r = pcall(uart.getconfig, 0)
  if okc and type(r) == "number" and r > 0 then DEFAULT_BAUD = r end
end
local baud = DEFAULT_BAUD
local rate_known = cfg.baud ~= nil or not use_console
-- Two frames in flight where the console's input path holds the second
-- while Lua checks and writes the first: at up to 115200 baud on a rate
-- that cannot change (the console module), FIFO + ring + task queue
-- (about 480 bytes) take the ~70 bytes that arrive during a frame's CRC
-- and otaupgrade.write, and Lua keeps up with the line on average
-- (README.md, "Speed"). Where BAUD may raise the rate, one frame.
if use_console and DEFAULT_BAUD <= 115200 and not cfg.one_frame then WINDOW = 2 * FRAME_PAYLOAD end
local last_type, last_seq, last_reply -- SPEC 4.2 reply cache
local xfer                            -- transfer: state, size, sha, received, written, label, err
local ZERO32 = string.rep("\0", 32)

local function frame(typ, flags, seq, payload)
  local n = #payload
  local hdr = char(typ, flags, seq, band(n, 255), rshift(n, 8))
  local body = hdr .. char(crc8(hdr, 1, 5)) .. payload
  return "\1" .. body .. u32(crc32(body, 1, #body))
end

local function send(typ, flags, seq, payload)
  local f = frame(typ, flags, seq, payload)
  out(f)
  return f
end

-- NodeMCU otaupgrade messages and their esp_err_t (SPEC section 8).
local CODES = {
  ["no OTA partition available"] = E_NOT_FOUND,
  ["out of memory"] = E_NO_MEM,
  ["can't overrite running firmware"] = 0x1501,
  ["ota data partition invalid"] = 0x1502,
  ["can't upgrade from unconfirmed firmware"] = 0x1506,
  ["write not possible, use otaupgrade.commence() first"] = E_INVALID_STATE,
  ["not a valid ota image"] = 0x1503,
  ["no upgrade in progress"] = E_INVALID_STATE,
  ["empty firmware image"] = E_INVALID_SIZE,
  ["validation failed"] = 0x1503,
  ["firmware accept failed"] = E_INVALID_STATE,
  ["no other firmware to roll back to"] = 0x1505,
  ["ota error"] = E_FAIL,
}

-- ota calls an otaupgrade function; on failure it returns nil, code, message
-- (luaL_error adds no position when the caller is pcall itself).
local function ota(fn, ...)
  local ok, a, b, c = pcall(fn, ...)
  if ok then return true, a, b, c end
  local msg = tostring(a):gsub("^[^:\n]*:%d+: ", "")
  return nil, CODES[msg] or 0, msg
end

local function error_payload(req, code, msg)
  return char(req) .. u32(code) .. sub(msg, 1, host_max - 5)
end

-- reply answers request (typ, seq) and remembers the answer.
local function reply(typ, seq, rtyp, payload)
  last_type, last_seq = typ, seq
  last_reply = send(rtyp, 0, seq, payload)
end

local function fail(typ, seq, code, msg)
  reply(typ, seq, T_ERROR, error_payload(typ, code, msg))
end

-- Timers: one ticking during a session (idle rule, quiet time, DATA
-- error rate limit), one for the baud check, one for restarts after a
-- reply has left.
local ticker, baud_timer, restart_timer = tmr.create(), tmr.create(), tmr.create()
local ticks, quiet, rx_seen, last_data_err = 0, 0, false, -100
local since_frame = 0 -- ticks since the last valid frame (SPEC 7.5)
local chunk = CHUNK   -- largest callback chunk at the current rate

-- chunk_for keeps a callback chunk within half an idle tick of line time,
-- so that while bytes flow at least one callback arrives every tick and
-- the idle rule (a tick with no callback) only fires on a silent line.
local function chunk_for(rate)
  local n = math.floor(rate * TICK_MS / 20000) -- rate/10 bytes/s, half a tick
  if n < 1 then n = 1 elseif n > CHUNK then n = CHUNK end
  return n
end
-- An unknown rate may be as low as 9600 (SPEC 7): size chunks for that.
chunk = chunk_for(rate_known and baud or 9600)

-- egc: Lua 5.1 builds start with node.egc ALWAYS (a full collection
-- before every allocation, lua.c); during a session the agent collects on
-- allocation failure only, and restores NodeMCU's start-up mode after.
local egc = _VERSION == "Lua 5.1" and node.egc
local function relax_gc(on)
  if not egc or cfg.egc == false then return end
  if on then pcall(egc.setmode, egc.ON_ALLOC_FAILURE) else pcall(egc.setmode, egc.ALWAYS, 4096) end
end

local function restart_soon()
  restart_timer:alarm(100, tmr.ALARM_SINGLE, function() node.restart() end)
end

-- Receiving (SPEC section 3). buf holds the undecided bytes: empty, or a
-- candidate starting with SOF. The callback is re-registered to deliver
-- exactly the bytes the candidate still needs (at most CHUNK), or single
-- bytes while hunting for SOF.
local buf = ""
local session = false -- a frame arrived recently: other input is not for the REPL
local stopped = false
local cur_n
local held = false  -- the console may hold bytes for us (we asked for more than 1)
local stale = false -- bytes it holds are from a session that ended: not REPL text
local on_data -- forward

local function listen(n)
  if stopped then return end
  if n > chunk then n = chunk end
  if n > 1 then held = true end
  if n == cur_n then return end
  if use_console then console.on("data", n, on_data) else uart.on("data", n, on_data, 0) end
  cur_n = n
end

local scan -- forward

local set_baud -- forward

local function tick()
  ticks = ticks + 1
  since_frame = since_frame + 1
  if baud ~= DEFAULT_BAUD and since_frame >= QUIET_TICKS then
    -- SPEC 7.5: 5 s without a valid frame at another rate: back to 115200.
    set_baud(DEFAULT_BAUD)
  end
  if rx_seen then
    rx_seen, quiet = false, 0
  else
    quiet = quiet + 1
  end
  if #buf > 0 then
    if quiet > 0 then
      -- Idle rule: a candidate got no byte for a tick. Reject it: drop
      -- its SOF and rescan. Bytes of it still held by the console arrive
      -- with the next byte and are rescanned too.
      buf = sub(buf, 2)
      scan()
    end
  elseif since_frame >= QUIET_TICKS and baud == DEFAULT_BAUD then
    -- The session ends 5 s after the last valid frame, however much
    -- else (typing, noise) arrived meanwhile.
    ticker:stop()
    session, stale = false, held
    relax_gc(false)
    listen(1)
  end
end

local function start_session()
  if not session then
    session, quiet = true, 0
    relax_gc(true)
    ticker:alarm(TICK_MS, tmr.ALARM_AUTO, tick)
  end
end

-- The REPL in place of NodeMCU's: echo, backspace, lines run as Lua,
-- "=expr" prints values, an incomplete statement continues on the next
-- line (prompt ">> ").
local line, pending, last_nl = {}, nil, 0
local loadstr = loadstring or load
local unpack = table.unpack or unpack

local function pack(...) return select("#", ...), { ... } end

local function run_line(src)
  if pending then src = pending .. "\n" .. src end
  local code = src
  if sub(code, 1, 1) == "=" then code = "return " .. sub(code, 2) end
  local f, err = loadstr(code, "=stdin")
  if not f then
    if find(err, "<eof>", 1, true) or find(err, "EOF", 1, true) then
      pending = src -- incomplete: wait for more
    else
      pending = nil
      print(err)
    end
    return
  end
  pending = nil
  local n, res = pack(pcall(f))
  if not res[1] then print(res[2])
  elseif n > 1 then print(unpack(res, 2, n)) end
end

local function repl_text(s)
  for i = 1, #s do
    local c = byte(s, i)
    if (c == 10 and last_nl == 13) or (c == 13 and last_nl == 10) then
      last_nl = 0 -- second half of CR LF or LF CR
    elseif c == 13 or c == 10 then
      last_nl = c
      out("\n")
      if #line > 0 then
        local src = table.concat(line)
        line = {}
        run_line(src)
        if stopped then return end
      end
      out(pending and ">> " or "> ")
    else
      last_nl = 0
      if c == 8 or c == 127 then
        if #line > 0 then
          line[#line] = nil
          out("\8 \8")
        end
      elseif #line < 255 then
        line[#line + 1] = char(c)
        out(char(c))
      end
    end
  end
end

-- Request handlers. p is the payload.
local handlers = {}

local function too_short(typ, seq, p, want, what)
  if #p >= want then return false end
  fail(typ, seq, E_INVALID_ARG, string.format("%s payload is %d bytes, need %d", what, #p, want))
  return true
end

handlers[T_HELLO] = function(seq, flags, p)
  if too_short(T_HELLO, seq, p, 11, "HELLO") then return end
  local v = byte(p, 1)
  if v ~= VERSION then
    return fail(T_HELLO, seq, E_NOT_SUPPORTED, "protocol version " .. v .. " not supported")
  end
  local m = u16at(p, 6)
  if m < BASE_MAX then m = BASE_MAX end
  host_max = m
  -- HELLO is always executed and clears the saved reply (SPEC 4.2).
  last_type, last_seq, last_reply = nil, nil, nil
  send(T_HELLO + REPLY, 0, seq,
    char(VERSION) .. u32(caps) .. u16(MAX_PAYLOAD) .. u32(WINDOW) .. AGENT)
end

local function clean(v) return (tostring(v):gsub("[\r\n]", " ")) end

-- Digests of the images this agent wrote, by slot label: the image's
-- appended SHA-256 (its last 32 bytes, which otaupgrade.complete() has
-- checked against the content). otaupgrade.info() has no digests; these
-- are kept in the file DIGESTS where the firmware has io (SPIFFS), so they
-- survive the reboot into the new build.
local DIGESTS = "gota.sha"
local digests = {}
local function hex(s) return (s:gsub(".", function(c) return string.format("%02x", byte(c)) end)) end
if io and io.open then
  local f = io.open(DIGESTS, "r")
  if f then
    for label, d in (f:read("*a") or ""):gmatch("([^=\n]+)=(%x+)\n") do digests[label] = d end
    f:close()
  end
end
local function remember(label, digest)
  digests[label] = digest
  if not (io and io.open) then return end
  pcall(function()
    local f = io.open(DIGESTS, "w")
    if not f then return end
    for l, d in pairs(digests) do f:write(l, "=", d, "\n") end
    f:close()
  end)
end

local function info_text()
  local ok, running, nextp, parts = ota(otaupgrade.info)
  if not ok then return nil, running, nextp end
  local t = {}
  -- node.info("hw") names the chip where the firmware has it; without it
  -- the host copes.
  local okhw, hw = pcall(node.info, "hw")
  if okhw and type(hw) == "table" and hw.chip_model then
    t[#t + 1] = "chip=" .. clean(hw.chip_model)
    if hw.chip_major_rev then t[#t + 1] = "chip_rev=" .. (hw.chip_major_rev * 100 + (hw.chip_minor_rev or 0)) end
  end
  if running then t[#t + 1] = "running=" .. clean(running) end
  if nextp then t[#t + 1] = "next=" .. clean(nextp) end
  local labels = {}
  for label in pairs(parts) do labels[#labels + 1] = label end
  table.sort(labels)
  for _, label in ipairs(labels) do
    local part = parts[label]
    t[#t + 1] = "part=" .. clean(label)
    for _, k in ipairs({ "state", "name", "version", "date", "time", "idf_version", "secure_version" }) do
      if part[k] ~= nil then t[#t + 1] = k .. "=" .. clean(part[k]) end
    end
    local d = digests[label]
    if d and part.state ~= nil then t[#t + 1] = "sha256=" .. d end
  end
  return table.concat(t, "\n") .. "\n", labels, running
end

handlers[T_INFO] = function(seq, flags, p)
  local text, code, msg = info_text()
  if not text then return fail(T_INFO, seq, code, msg) end
  local off, lim = 0, host_max
  if #p >= 4 then off = u32at(p, 1) end
  -- optional max u16: the host wants short replies on a noisy line
  if #p >= 6 then
    local m = u16at(p, 5)
    if m > 0 then lim = math.min(host_max, math.max(m, 64)) end
  end
  reply(T_INFO, seq, T_INFO + REPLY, u32(#text) .. sub(text, off + 1, off + lim - 4))
end

handlers[T_STATUS] = function(seq, flags, p)
  local x = xfer
  if not x then
    return reply(T_STATUS, seq, T_STATUS + REPLY, char(0) .. u32(0) .. u32(0) .. u32(0) .. ZERO32)
  end
  reply(T_STATUS, seq, T_STATUS + REPLY, char(x.state) .. u32(x.size) .. u32(x.received) .. u32(x.written) .. x.sha)
end

-- next_label guesses the partition commence() writes: the OTA slot after
-- the running one (labels in sorted order), the first from factory.
local function next_label()
  local text, labels, running = info_text()
  if not text or #labels == 0 then return "" end
  for i, label in ipairs(labels) do
    if label == running then return labels[i % #labels + 1] end
  end
  return labels[1]
end

handlers[T_BEGIN] = function(seq, flags, p)
  if too_short(T_BEGIN, seq, p, 37, "BEGIN") then return end
  local size, sha, bflags = u32at(p, 1), sub(p, 5, 36), byte(p, 37)
  local x = xfer
  if band(bflags, 1) == 1 and x and x.state == 1 and x.size == size and sha ~= ZERO32 and x.sha == sha then
    return reply(T_BEGIN, seq, T_BEGIN + REPLY, u32(x.written) .. x.label)
  end
  xfer = nil
  local label = next_label()
  local ok, code, msg = ota(otaupgrade.commence)
  if not ok then return fail(T_BEGIN, seq, code, msg) end
  xfer = { state = 1, size = size, sha = sha, received = 0, written = 0, label = label, tail = "" }
  digests[label] = nil
  -- With the crypto module the whole image is hashed, so END can check it
  -- against BEGIN's SHA-256 before otaupgrade.complete().
  if crypto and crypto.new_hash and sha ~= ZERO32 then
    local okh, h = pcall(crypto.new_hash, "SHA256")
    if okh then xfer.hash = h end
  end
  reply(T_BEGIN, seq, T_BEGIN + REPLY, u32(0) .. label)
end

local function ack(flags)
  send(T_DATA + REPLY, flags, 0, u32(xfer.received) .. u32(xfer.written))
end

handlers[T_DATA] = function(seq, flags, p)
  local x = xfer
  if not x or x.state ~= 1 then
    if not x and ticks - last_data_err >= 10 then -- at most once a second
      last_data_err = ticks
      send(T_ERROR, 0, 0, error_payload(T_DATA, E_INVALID_STATE, "no upgrade in progress"))
    end
    return -- a failed transfer drops further DATA
  end
  if #p < 4 then return end
  local off, n = u32at(p, 1), #p - 4
  if band(flags, 1) ~= 0 then -- DEFLATE was not offered
    if ticks - last_data_err >= 10 then
      last_data_err = ticks
      send(T_ERROR, 0, 0, error_payload(T_DATA, E_NOT_SUPPORTED, "DEFLATE not offered"))
    end
    return
  end
  if off == x.received and n <= FRAME_PAYLOAD then
    if n > 0 then
      local data = sub(p, 5)
      local ok, code, msg = ota(otaupgrade.write, data)
      if not ok then
        x.state, x.err = 2, error_payload(T_DATA, code, msg)
        send(T_ERROR, 0, 0, x.err)
        return
      end
      if off == 0 then x.hashed_app = byte(data, 24) == 1 end -- esp_image_header_t.hash_appended
      if n >= 32 then x.tail = sub(data, -32) else x.tail = sub(x.tail .. data, -32) end
      if x.hash then x.hash:update(data) end
    end
    x.received = x.received + n
    x.written = x.received
    ack(0)
  elseif off + n <= x.received then
    ack(0) -- duplicate
  elseif x.gap_at ~= x.received then
    x.gap_at = x.received
    ack(FLAG_GAP)
  end
end

handlers[T_END] = function(seq, flags, p)
  local reboot = #p >= 1 and band(byte(p, 1), 1) == 1
  local x = xfer
  if x and x.state == 2 then
    return reply(T_END, seq, T_ERROR, x.err)
  end
  if x and x.size > 0 and x.received ~= x.size then
    return fail(T_END, seq, E_INVALID_SIZE, "received " .. x.received .. " of " .. x.size .. " bytes")
  end
  xfer = nil
  if x and x.hash and x.hash:finalize() ~= x.sha then
    return fail(T_END, seq, 0x1503, "image SHA-256 differs from the one BEGIN announced")
  end
  -- complete(0): complete(1) would reboot before the reply leaves.
  local ok, code, msg = ota(otaupgrade.complete, 0)
  if not ok then return fail(T_END, seq, code, msg) end
  if x and x.hashed_app and #x.tail == 32 then
    -- complete() made the slot it wrote the next boot partition.
    local okn, _, nextp = ota(otaupgrade.info)
    remember(okn and nextp or x.label, hex(x.tail))
  end
  reply(T_END, seq, T_END + REPLY, "")
  if reboot then restart_soon() end
end

handlers[T_ACCEPT] = function(seq, flags, p)
  local ok, code, msg = ota(otaupgrade.accept)
  if not ok then return fail(T_ACCEPT, seq, code, msg) end
  reply(T_ACCEPT, seq, T_ACCEPT + REPLY, "")
end

handlers[T_ROLLBACK] = function(seq, flags, p)
  -- On success the chip reboots inside rollback(); READY (boot) answers.
  local ok, code, msg = ota(otaupgrade.rollback)
  if not ok then return fail(T_ROLLBACK, seq, code, msg) end
  reply(T_ROLLBACK, seq, T_ROLLBACK + REPLY, "")
end

handlers[T_REBOOT] = function(seq, flags, p)
  reply(T_REBOOT, seq, T_REBOOT + REPLY, "")
  restart_soon()
end

handlers[T_ABORT] = function(seq, flags, p)
  xfer = nil -- otaupgrade has no abort; the next BEGIN commences afresh
  reply(T_ABORT, seq, T_ABORT + REPLY, "")
end

handlers[T_PING] = function(seq, flags, p)
  reply(T_PING, seq, T_PING + REPLY, p)
end

local baud_pending = false

set_baud = function(rate)
  uart.setup(0, rate, 8, uart.PARITY_NONE, uart.STOPBITS_1, 1)
  baud, chunk = rate, chunk_for(rate)
end

handlers[T_BAUD] = function(seq, flags, p)
  if too_short(T_BAUD, seq, p, 4, "BAUD") then return end
  local rate = u32at(p, 1)
  if rate < 9600 or rate > MAX_BAUD then
    return fail(T_BAUD, seq, E_INVALID_ARG, "baud " .. rate .. " out of 9600.." .. MAX_BAUD .. " (NodeMCU's console reads byte by byte)")
  end
  -- BAUD is always executed and not remembered (SPEC 4.2).
  local f = send(T_BAUD + REPLY, 0, seq, u32(rate))
  local old = baud
  -- Switch once BAUD_R has left the UART: uart.write returns when the
  -- frame is in the TX FIFO, which then needs its line time (plus a
  -- margin); the host waits 20 ms (SPEC 7) before it sends at the new
  -- rate. Then expect a valid frame within 3 s or switch back.
  local wait = math.floor(#f * 10000 / old) + 3
  baud_timer:alarm(wait, tmr.ALARM_SINGLE, function()
    set_baud(rate)
    baud_pending = true
    baud_timer:alarm(BAUD_CHECK_MS, tmr.ALARM_SINGLE, function()
      if baud_pending then
        baud_pending = false
        set_baud(old)
      end
    end)
  end)
end
if band(caps, CAP_BAUD) == 0 then handlers[T_BAUD] = nil end

local function handle(typ, flags, seq, p)
  baud_pending, since_frame = false, 0
  if typ ~= T_DATA and typ ~= T_HELLO and typ ~= T_BAUD and typ == last_type and seq == last_seq and last_reply then
    return out(last_reply) -- a retried request: answer again, do not redo it
  end
  local h = handlers[typ]
  if h then return h(seq, flags, p) end
  if typ >= REPLY then
    return fail(typ, seq, E_INVALID_ARG, string.format("type 0x%02X is not a request", typ))
  end
  fail(typ, seq, E_NOT_SUPPORTED, string.format("unknown request type 0x%02X", typ))
end

-- scan decodes as many frames as buf holds and asks for the bytes the
-- next step needs. Bytes outside frames go to the REPL unless a session
-- is on.
scan = function()
  while not stopped do
    if #buf == 0 then return listen(1) end
    if byte(buf, 1) ~= 1 then
      local i = find(buf, "\1", 1, true)
      local text = buf
      if i then text = sub(buf, 1, i - 1) end
      buf = i and sub(buf, i) or ""
      if not session then repl_text(text) end
    else
      start_session()
      if #buf < 7 then return listen(7 - #buf) end
      local len = u16at(buf, 5)
      if len > MAX_PAYLOAD or crc8(buf, 2, 6) ~= byte(buf, 7) then
        buf = sub(buf, 2) -- bad header: drop SOF, rescan
      else
        local total = 11 + len
        if #buf < total then return listen(total - #buf) end
        if u32(crc32(buf, 2, 7 + len)) == sub(buf, 8 + len, total) then
          local typ, flags, seq = byte(buf, 2, 4)
          local p = sub(buf, 8, 7 + len)
          buf = sub(buf, total + 1)
          handle(typ, flags, seq, p)
        else
          buf = sub(buf, 2) -- bad CRC: drop SOF, rescan
        end
      end
    end
  end
end

on_data = function(data)
  rx_seen, held = true, false
  if stale then
    -- The first delivery after a session: all but its last byte were
    -- held from the session (a cut frame); only the last byte is new.
    stale = false
    data = sub(data, -1)
  end
  if #buf == 0 and #data == 1 and data ~= "\1" then -- typing
    if not session then repl_text(data) end
    return
  end
  buf = buf .. data
  local ok, err = pcall(scan)
  if not ok then
    buf = ""
    print("gota.lua: internal error: " .. tostring(err))
    pcall(listen, 1)
  end
end

gota = {
  -- stop gives the console back to NodeMCU's interpreter.
  stop = function()
    stopped = true
    ticker:unregister()
    if use_console then
      console.on("data", 0, nil)
      console.mode(console.INTERACTIVE)
    else
      uart.on("data")
    end
    relax_gc(false)
    cur_n, buf, session = nil, "", false
  end,
  -- frame(type, flags, seq, payload) encodes a frame, for tools.
  frame = frame,
}

-- Start-up. The data callback is registered before the REPL is made
-- non-interactive, so a failure leaves NodeMCU's own REPL working.
local function take_console()
  if not use_console then
    -- dev-esp32 from 2024-05-12 until the console module feeds uart.on
    -- callbacks only once uart.start(0) has allocated the line buffer (it
    -- returns false for the console all the same); on older firmware the
    -- call fails harmlessly (the console driver is installed).
    pcall(uart.start, 0)
  end
  listen(1) -- uart.on(..., 0) also stops the REPL on the uart firmware
  if use_console then console.mode(console.NONINTERACTIVE) end
end
local ok, err = pcall(take_console)
if not ok then
  stopped = true
  pcall(gota.stop)
  print("gota.lua: not started: " .. tostring(err))
  return
end
print(AGENT .. " OTA agent on the console; this REPL is the agent's (gota.stop() returns to NodeMCU's)")
send(T_READY, 0, 0, char(VERSION, 1) .. AGENT)
