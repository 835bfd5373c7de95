package nodemcu

import (
	"strings"
	"testing"

	lua "github.com/yuin/gopher-lua"
)

func luaString(b []byte) lua.LString { return lua.LString(b) }

// luaDo runs Lua code on the rig's board and returns what it returns,
// tostring'ed and joined by ",".
func (r *rig) luaDo(code string) string {
	r.t.Helper()
	var out string
	var err error
	r.board.do(func(v *vm) {
		if v == nil || v.dead {
			out = "<rebooting>"
			return
		}
		top := v.L.GetTop()
		if err = v.L.DoString(code); err != nil {
			return
		}
		var parts []string
		for i := top + 1; i <= v.L.GetTop(); i++ {
			parts = append(parts, v.L.ToStringMeta(v.L.Get(i)).String())
		}
		v.L.SetTop(top)
		out = strings.Join(parts, ",")
	})
	if err != nil {
		r.t.Fatalf("%s: %v", code, err)
	}
	return out
}

// TestOtaupgradeModule checks the harness's otaupgrade against what
// NodeMCU's otaupgrade.c returns and raises, on the virtual device.
func TestOtaupgradeModule(t *testing.T) {
	r := newRigWith(t, Options{}, nil, []byte("-- no agent"))
	img := r.build("9.0.9")
	r.board.do(func(v *vm) { v.L.SetGlobal("img", luaString(img)) })

	steps := []struct{ code, want string }{
		// info(): running, next, table keyed by OTA label; a slot without
		// an otadata entry gets an empty table.
		{`local r, n, t = otaupgrade.info() return r, n, t.app0.state, next(t.app1) == nil, t.app0.secure_version`, "app0,app0,valid,true,0"},
		{`return select(2, pcall(otaupgrade.write, "x"))`, "write not possible, use otaupgrade.commence() first"},
		{`return select(2, pcall(otaupgrade.complete))`, "no upgrade in progress"},
		{`return (pcall(otaupgrade.accept))`, "true"}, // the running valid build: no error
		{`return select(2, pcall(otaupgrade.rollback))`, "no other firmware to roll back to"},
		// A luaL_error raised from Lua code carries the caller's position.
		{`return select(2, pcall(function() otaupgrade.write("x") end))`, "<string>:1: write not possible, use otaupgrade.commence() first"},
		{`otaupgrade.commence() return select(2, pcall(otaupgrade.write, "\0"))`, "not a valid ota image"},
		{`otaupgrade.commence() return select(2, pcall(otaupgrade.complete, 0))`, "empty firmware image"},
		{`otaupgrade.commence() otaupgrade.write(img:sub(1, 1000)) return select(2, pcall(otaupgrade.complete, 0))`, "validation failed"},
		// complete checks its argument after completing (luaL_optint).
		{`otaupgrade.commence() for i = 1, #img, 4096 do otaupgrade.write(img:sub(i, i + 4095)) end
		  return select(2, pcall(otaupgrade.complete, true))`, "bad argument #1 to 'complete' (number expected, got boolean)"},
		{`local r, n, t = otaupgrade.info() return r, n, t.app1.state, t.app1.version`, "app0,app1,new,9.0.9"},
	}
	for _, s := range steps {
		if got := r.luaDo(s.code); got != s.want {
			t.Errorf("%s\n got %q\nwant %q", s.code, got, s.want)
		}
	}
	if got := r.board.LuaErrors(); len(got) > 0 {
		t.Errorf("Lua errors: %q", got)
	}
}
