// fengari-run.js runs a Lua script on fengari, a Lua 5.3 interpreter in
// JavaScript whose integers are 32 bits wide, as on NodeMCU's default
// Lua 5.3 builds (CONFIG_LUA_NUMBER_INT64 off):
//   node fengari-run.js SCRIPT ARG...
// fengari has no io.open and no collectgarbage; a minimal io.open (read, write, close on whole
// files) is provided so that testdata/driver.lua runs unchanged.
"use strict";
const fs = require("fs");
const { lua, lauxlib, lualib, to_luastring } = require("fengari");

const [script, ...args] = process.argv.slice(2);
const L = lauxlib.luaL_newstate();
lualib.luaL_openlibs(L);

lua.lua_newtable(L);
args.forEach((a, i) => {
  lua.lua_pushstring(L, to_luastring(a));
  lua.lua_rawseti(L, -2, i + 1);
});
lua.lua_setglobal(L, to_luastring("arg"));

lua.lua_pushcfunction(L, (L) => {
  const p = lua.lua_tojsstring(L, 1);
  let b;
  try {
    b = fs.readFileSync(p);
  } catch (e) {
    lua.lua_pushnil(L);
    return 1;
  }
  lua.lua_pushstring(L, new Uint8Array(b));
  return 1;
});
lua.lua_setglobal(L, to_luastring("__fs_read"));

lua.lua_pushcfunction(L, (L) => {
  const p = lua.lua_tojsstring(L, 1);
  const d = Buffer.from(lua.lua_tolstring(L, 2));
  if (lua.lua_toboolean(L, 3)) fs.writeFileSync(p, d);
  else fs.appendFileSync(p, d);
  return 0;
});
lua.lua_setglobal(L, to_luastring("__fs_write"));

// fengari has no garbage collector control (lua_gc): memory figures are 0.
const prelude = `
collectgarbage = function() return 0 end
io.open = function(p, mode)
  mode = mode or "r"
  if mode:find("r") then
    local s = __fs_read(p)
    if not s then return nil, p .. ": No such file or directory" end
    local pos = 1
    return {
      read = function(self, n)
        if pos > #s then return nil end
        local e = (type(n) == "number") and (pos + n - 1) or #s
        local r = s:sub(pos, e)
        pos = e + 1
        return r
      end,
      close = function() end,
    }
  end
  __fs_write(p, "", true)
  return {
    write = function(self, ...)
      for i = 1, select("#", ...) do __fs_write(p, tostring((select(i, ...)))) end
      return self
    end,
    close = function() end,
  }
end
`;
function check(status) {
  if (status !== lua.LUA_OK) {
    process.stderr.write("fengari: " + lua.lua_tojsstring(L, -1) + "\n");
    process.exit(1);
  }
}
check(lauxlib.luaL_dostring(L, to_luastring(prelude)));
check(lauxlib.luaL_loadbuffer(L, new Uint8Array(fs.readFileSync(script)), null, to_luastring("@" + script)));
check(lua.lua_pcall(L, 0, 0, 0));
