package nodemcu

import (
	"errors"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/gota-dev/gota/firmware-agent/device"
)

// otaModule is otaupgrade.c backed by the virtual device.
func (v *vm) otaModule() module {
	o := otaLib{v}
	return module{funcs: map[string]lua.LGFunction{
		"commence": o.commence, "write": o.write, "complete": o.complete,
		"accept": o.accept, "rollback": o.rollback, "info": o.info,
	}}
}

// otaLib is the otaupgrade module of one board.
type otaLib struct{ v *vm }

// device returns the board's device, raising NodeMCU's error when the
// board runs no app that has OTA partitions.
func (o otaLib) device(L *lua.LState) *device.Device {
	if o.v.b.dev == nil {
		raise(L, "no OTA partition available")
	}
	return o.v.b.dev
}

// fail raises NodeMCU's message for err, or fallback.
func (otaLib) fail(L *lua.LState, err error, fallback string) {
	var de *device.Error
	if errors.As(err, &de) && de.Message != "" {
		raise(L, "%s", de.Message)
	}
	raise(L, "%s", fallback)
}

// busy runs f with the board marked busy (a flash operation: the console
// does not run).
func (o otaLib) busy(f func() error) error {
	o.v.b.setBusy(true)
	defer o.v.b.setBusy(false)
	return f()
}

func (o otaLib) commence(L *lua.LState) int {
	dev := o.device(L)
	if err := o.busy(dev.Commence); err != nil {
		o.fail(L, err, "ota error")
	}
	return 0
}

func (o otaLib) write(L *lua.LState) int {
	data := checkString(L, 1, "write")
	dev := o.device(L)
	if err := o.busy(func() error { return dev.Write([]byte(data)) }); err != nil {
		o.fail(L, err, "ota error")
	}
	return 0
}

// complete is otaupgrade.complete([reboot]): otaupgrade.c ends the OTA and
// sets the boot partition before it looks at its argument.
func (o otaLib) complete(L *lua.LState) int {
	dev := o.device(L)
	if err := o.busy(func() error { return dev.Complete(false) }); err != nil {
		o.fail(L, err, "ota error")
	}
	if optInteger(L, 1, "complete", 0) != 0 {
		dev.Reboot()
		o.v.die(L)
	}
	return 0
}

func (o otaLib) accept(L *lua.LState) int {
	if err := o.device(L).Accept(); err != nil {
		raise(L, "firmware accept failed")
	}
	return 0
}

// rollback reboots the chip on success, so it does not return then.
func (o otaLib) rollback(L *lua.LState) int {
	if err := o.device(L).Rollback(); err != nil {
		o.fail(L, err, "ota error")
	}
	o.v.die(L)
	return 0
}

// info is otaupgrade.info(): running and next labels (nil when none), and
// a table of the OTA slots with their state and app description.
func (o otaLib) info(L *lua.LState) int {
	info, err := o.device(L).Info()
	if err != nil {
		o.fail(L, err, "ota error")
	}
	for _, label := range []string{info.Running, info.Next} {
		if label == "" {
			L.Push(lua.LNil)
		} else {
			L.Push(lua.LString(label))
		}
	}
	t := L.NewTable()
	for _, p := range info.Partitions {
		// ESP_PARTITION_SUBTYPE_APP_OTA_MIN..OTA_MAX (0x10..0x20)
		if p.Subtype < 0x10 || p.Subtype > 0x20 {
			continue
		}
		pt := L.NewTable()
		if p.State != "" {
			pt.RawSetString("state", lua.LString(p.State))
			if p.App != nil {
				pt.RawSetString("name", lua.LString(p.App.ProjectName))
				pt.RawSetString("version", lua.LString(p.App.Version))
				pt.RawSetString("secure_version", lua.LNumber(p.App.SecureVersion))
				pt.RawSetString("date", lua.LString(p.App.Date))
				pt.RawSetString("time", lua.LString(p.App.Time))
				pt.RawSetString("idf_version", lua.LString(p.App.IDFVer))
			}
		}
		t.RawSetString(p.Label, pt)
	}
	L.Push(t)
	return 3
}

// bitModule is bit.c with NodeMCU's 32-bit lua_Integer. Arguments outside
// the int32 range raise an error: on the chip their conversion is
// undefined behaviour, so the agent must never pass one.
func bitModule() module {
	toBit := func(L *lua.LState, n int, fname string) int32 {
		f := checkNumber(L, n, fname)
		if f != float64(int64(f)) || f < -2147483648 || f > 2147483647 {
			argError(L, n, fname, "not a 32-bit signed integer (NodeMCU's lua_Integer)")
		}
		return int32(f)
	}
	shift := func(L *lua.LState, fname string) uint {
		s := checkNumber(L, 2, fname)
		if s < 0 || s > 31 {
			argError(L, 2, fname, "shift count out of 0..31")
		}
		return uint(s)
	}
	push := func(L *lua.LState, x int32) int { L.Push(lua.LNumber(x)); return 1 }
	variadic := func(name string, op func(a, b int32) int32) lua.LGFunction {
		return func(L *lua.LState) int {
			w := toBit(L, 1, name)
			for i := 2; i <= L.GetTop(); i++ {
				w = op(w, toBit(L, i, name))
			}
			return push(L, w)
		}
	}
	return module{funcs: map[string]lua.LGFunction{
		"bnot": func(L *lua.LState) int { return push(L, ^toBit(L, 1, "bnot")) },
		"band": variadic("band", func(a, b int32) int32 { return a & b }),
		"bor":  variadic("bor", func(a, b int32) int32 { return a | b }),
		"bxor": variadic("bxor", func(a, b int32) int32 { return a ^ b }),
		"lshift": func(L *lua.LState) int {
			x := toBit(L, 1, "lshift")
			return push(L, x<<shift(L, "lshift"))
		},
		"rshift": func(L *lua.LState) int {
			x := toBit(L, 1, "rshift")
			return push(L, int32(uint32(x)>>shift(L, "rshift")))
		},
		"arshift": func(L *lua.LState) int {
			x := toBit(L, 1, "arshift")
			return push(L, x>>shift(L, "arshift"))
		},
		"bit": func(L *lua.LState) int {
			n := toBit(L, 1, "bit")
			if n < 0 || n > 31 {
				argError(L, 1, "bit", "bit position out of 0..31")
			}
			return push(L, int32(uint32(1)<<uint(n)))
		},
		"isset": func(L *lua.LState) int {
			x, pos := toBit(L, 1, "isset"), toBit(L, 2, "isset")
			L.Push(lua.LBool(pos >= 0 && pos < 32 && uint32(x)&(1<<uint(pos)) != 0))
			return 1
		},
		"isclear": func(L *lua.LState) int {
			x, pos := toBit(L, 1, "isclear"), toBit(L, 2, "isclear")
			L.Push(lua.LBool(!(pos >= 0 && pos < 32 && uint32(x)&(1<<uint(pos)) != 0)))
			return 1
		},
	}}
}

// Timer modes (tmr.c).
const (
	alarmSingle = 0
	alarmAuto   = 1
	alarmSemi   = 2
	modeOff     = 3

	maxTimeout = 6870947 // ms, tmr.c's MAX_TIMEOUT
)

const timerType = "tmr.timer"

// timer is a tmr.create() object.
type timer struct {
	v        *vm
	ud       *lua.LUserData
	cb       *lua.LFunction
	interval time.Duration
	mode     int
	idle     bool
	t        *time.Timer
	gen      int // bumps on every (re)start so stale expiries are ignored
}

func (v *vm) tmrModule() module {
	return module{
		funcs: map[string]lua.LGFunction{
			"create": func(L *lua.LState) int {
				t := &timer{v: v, mode: modeOff, idle: true}
				ud := L.NewUserData()
				ud.Value = t
				t.ud = ud
				L.SetMetatable(ud, L.GetTypeMetatable(timerType))
				L.Push(ud)
				return 1
			},
		},
		consts: map[string]int{"ALARM_SINGLE": alarmSingle, "ALARM_SEMI": alarmSemi, "ALARM_AUTO": alarmAuto},
	}
}

func timerMethods(v *vm) map[string]lua.LGFunction {
	register := func(L *lua.LState) int {
		t := checkTimer(L, "register")
		ms := checkInteger(L, 2, "register")
		if ms <= 0 || ms > maxTimeout {
			argError(L, 2, "register", "Range: 1-6870947")
		}
		mode := checkInteger(L, 3, "register")
		if mode != alarmSingle && mode != alarmSemi && mode != alarmAuto {
			argError(L, 3, "register", "Invalid mode")
		}
		fn, ok := L.Get(4).(*lua.LFunction)
		if !ok {
			typeError(L, 4, "register", "function")
		}
		t.stopTimer()
		t.cb, t.mode, t.idle = fn, int(mode), true
		t.interval = time.Duration(ms) * time.Millisecond
		return 0
	}
	start := func(L *lua.LState) int {
		t := checkTimer(L, "start")
		if t.cb == nil {
			raise(L, "timer not registered")
		}
		if !t.idle {
			L.Push(lua.LFalse)
			return 1
		}
		t.idle = false
		t.schedule()
		L.Push(lua.LTrue)
		return 1
	}
	stop := func(L *lua.LState) int {
		t := checkTimer(L, "stop")
		if !t.idle && t.mode != modeOff {
			t.idle = true
			t.stopTimer()
			L.Push(lua.LTrue)
		} else {
			L.Push(lua.LFalse)
		}
		return 1
	}
	unregister := func(L *lua.LState) int {
		t := checkTimer(L, "unregister")
		t.stopTimer()
		t.cb, t.mode, t.idle = nil, modeOff, true
		return 0
	}
	return map[string]lua.LGFunction{
		"register": register,
		"alarm": func(L *lua.LState) int {
			register(L)
			return start(L)
		},
		"start":      start,
		"stop":       stop,
		"unregister": unregister,
		"interval": func(L *lua.LState) int {
			t := checkTimer(L, "interval")
			ms := checkInteger(L, 2, "interval")
			if ms <= 0 || ms > maxTimeout {
				argError(L, 2, "interval", "Range: 1-6870947")
			}
			if t.mode != modeOff {
				t.interval = time.Duration(ms) * time.Millisecond
				if !t.idle {
					t.schedule() // xTimerChangePeriod restarts a running timer
				}
			}
			return 0
		},
		"state": func(L *lua.LState) int {
			t := checkTimer(L, "state")
			if t.mode == modeOff {
				L.Push(lua.LNil)
				return 1
			}
			L.Push(lua.LBool(!t.idle))
			L.Push(lua.LNumber(t.mode))
			return 2
		},
	}
}

func timerMethodNames() []string {
	var names []string
	for k := range timerMethods(nil) {
		names = append(names, k)
	}
	return names
}

func (v *vm) openTimerType() {
	L := v.L
	mt := L.NewTypeMetatable(timerType)
	methods := L.NewTable()
	for k, f := range timerMethods(v) {
		methods.RawSetString(k, L.NewFunction(f))
	}
	methodsMT := L.NewTable()
	methodsMT.RawSetString("__index", L.NewFunction(func(L *lua.LState) int {
		raise(L, "timer method %s is not provided by the Gota NodeMCU harness", L.ToStringMeta(L.Get(2)).String())
		return 0
	}))
	L.SetMetatable(methods, methodsMT)
	mt.RawSetString("__index", methods)
}

func checkTimer(L *lua.LState, fname string) *timer {
	ud, ok := L.Get(1).(*lua.LUserData)
	if ok {
		if t, ok := ud.Value.(*timer); ok {
			return t
		}
	}
	typeError(L, 1, fname, timerType)
	return nil
}

// schedule (re)arms the Go timer; its expiry is posted to the Lua
// goroutine.
func (t *timer) schedule() {
	t.stopTimer()
	t.gen++
	gen := t.gen
	v := t.v
	v.timers[t] = true
	t.t = time.AfterFunc(t.interval, func() {
		v.b.post(func() { t.fire(gen) })
	})
}

func (t *timer) stopTimer() {
	if t.t != nil {
		t.t.Stop()
		t.t = nil
	}
	t.gen++
	if t.v != nil && t.v.timers != nil {
		delete(t.v.timers, t)
	}
}

// fire is tmr.c's alarm_timer_task.
func (t *timer) fire(gen int) {
	v := t.v
	if v.dead || gen != t.gen || t.cb == nil || t.idle {
		return
	}
	cb := t.cb
	switch t.mode {
	case alarmSingle:
		t.cb, t.mode, t.idle = nil, modeOff, true
		delete(v.timers, t)
	case alarmSemi:
		t.idle = true
		delete(v.timers, t)
	case alarmAuto:
		t.schedule()
	}
	v.call(cb, t.ud)
}
