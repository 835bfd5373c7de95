package nodemcu

import (
	"sort"
	"strings"
	"sync"

	lua "github.com/yuin/gopher-lua"
)

// FS is a board's SPIFFS file system: flat file names, contents kept
// across reboots (they live in flash). NodeMCU dev-esp32 mounts it with
// base path "" (user_main.c), reads it through Lua's standard io module
// (since a2ba49e3, 2021-10-20) and the file module (list, exists,
// remove, rename, fsinfo), and runs "@init.lua" from it at boot
// (CONFIG_LUA_INIT_STRING).
type FS struct {
	mu    sync.Mutex
	files map[string][]byte
}

// NewFS returns an empty file system.
func NewFS() *FS { return &FS{files: map[string][]byte{}} }

// fsName maps a Lua path to a file name: SPIFFS has no directories and
// "/x" and "x" are the same file.
func fsName(p string) string { return strings.TrimPrefix(p, "/") }

// ReadFile returns a copy of a file's content.
func (fs *FS) ReadFile(name string) ([]byte, bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	b, ok := fs.files[fsName(name)]
	return append([]byte(nil), b...), ok
}

// WriteFile replaces a file's content.
func (fs *FS) WriteFile(name string, data []byte) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.files[fsName(name)] = append([]byte(nil), data...)
}

// Names lists the files, sorted.
func (fs *FS) Names() []string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	var names []string
	for n := range fs.files {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (fs *FS) remove(name string) {
	fs.mu.Lock()
	delete(fs.files, fsName(name))
	fs.mu.Unlock()
}

// rename is POSIX rename on SPIFFS: it fails when the target exists.
func (fs *FS) rename(from, to string) bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	b, ok := fs.files[fsName(from)]
	if _, exists := fs.files[fsName(to)]; !ok || exists {
		return false
	}
	delete(fs.files, fsName(from))
	fs.files[fsName(to)] = b
	return true
}

func (fs *FS) appendTo(name string, p []byte) {
	fs.mu.Lock()
	fs.files[fsName(name)] = append(fs.files[fsName(name)], p...)
	fs.mu.Unlock()
}

// fileModule is file.c's list, exists, remove, rename and fsinfo.
func (v *vm) fileModule() module {
	fs := v.b.opt.FS
	return module{funcs: map[string]lua.LGFunction{
		"exists": func(L *lua.LState) int {
			_, ok := fs.ReadFile(checkString(L, 1, "exists"))
			L.Push(lua.LBool(ok))
			return 1
		},
		"remove": func(L *lua.LState) int {
			fs.remove(checkString(L, 1, "remove"))
			return 0
		},
		"rename": func(L *lua.LState) int {
			L.Push(lua.LBool(fs.rename(checkString(L, 1, "rename"), checkString(L, 2, "rename"))))
			return 1
		},
		"list": func(L *lua.LState) int {
			t := L.NewTable()
			for _, n := range fs.Names() {
				b, _ := fs.ReadFile(n)
				t.RawSetString(n, lua.LNumber(len(b)))
			}
			L.Push(t)
			return 1
		},
		"fsinfo": func(L *lua.LState) int {
			used := 0
			for _, n := range fs.Names() {
				b, _ := fs.ReadFile(n)
				used += len(b)
			}
			const total = 0x70000 // partitions.csv's SPIFFS partition, less SPIFFS overhead
			L.Push(lua.LNumber(max(total-used, 0)))
			L.Push(lua.LNumber(used))
			L.Push(lua.LNumber(total))
			return 3
		},
	}}
}

const fileHandleType = "io.file"

// luaFile is an open io file: reads see the content at open time plus
// what this handle wrote; writes go through to the file system at once.
type luaFile struct {
	name   string
	data   []byte
	pos    int
	write  bool
	closed bool
}

// openIO installs the io library (open, and handles with read, write,
// close) and dofile/loadfile on the file system.
func (v *vm) openIO() {
	L := v.L
	lib := ioLib{fs: v.b.opt.FS}
	mt := L.NewTypeMetatable(fileHandleType)
	idx := L.NewTable()
	for k, f := range map[string]lua.LGFunction{"read": lib.read, "write": lib.write, "close": lib.close} {
		idx.RawSetString(k, L.NewFunction(f))
	}
	mt.RawSetString("__index", idx)
	io := L.NewTable()
	io.RawSetString("open", L.NewFunction(lib.open))
	L.SetGlobal("io", io)
	L.SetGlobal("dofile", L.NewFunction(lib.dofile))
	L.SetGlobal("loadfile", L.NewFunction(lib.loadfile))
}

// ioLib is the io library and dofile/loadfile on one file system.
type ioLib struct{ fs *FS }

// file returns the open handle that is argument 1 of fname.
func (ioLib) file(L *lua.LState, fname string) *luaFile {
	if ud, ok := L.Get(1).(*lua.LUserData); ok {
		if f, ok := ud.Value.(*luaFile); ok {
			if f.closed {
				raise(L, "attempt to use a closed file")
			}
			return f
		}
	}
	typeError(L, 1, fname, "FILE*")
	return nil
}

// read is file:read(n | "a" | "l"), with Lua 5.1's "*" prefixes.
func (lib ioLib) read(L *lua.LState) int {
	f := lib.file(L, "read")
	rest := f.data[f.pos:]
	if n, ok := L.Get(2).(lua.LNumber); ok {
		if len(rest) == 0 && n > 0 {
			L.Push(lua.LNil)
			return 1
		}
		k := min(int(n), len(rest))
		f.pos += k
		L.Push(lua.LString(rest[:k]))
		return 1
	}
	format := "l"
	if s, ok := L.Get(2).(lua.LString); ok {
		format = strings.TrimPrefix(string(s), "*")
	}
	switch {
	case strings.HasPrefix(format, "a"):
		f.pos = len(f.data)
		L.Push(lua.LString(rest))
	case strings.HasPrefix(format, "l"):
		if len(rest) == 0 {
			L.Push(lua.LNil)
			return 1
		}
		line, _, found := strings.Cut(string(rest), "\n")
		f.pos += len(line)
		if found {
			f.pos++
		}
		L.Push(lua.LString(line))
	default:
		argError(L, 2, "read", "invalid format")
	}
	return 1
}

// write is file:write(...): it goes through to the file system at once.
func (lib ioLib) write(L *lua.LState) int {
	f := lib.file(L, "write")
	if !f.write {
		L.Push(lua.LNil)
		L.Push(lua.LString("Bad file descriptor"))
		return 2
	}
	for i := 2; i <= L.GetTop(); i++ {
		s := checkString(L, i, "write")
		f.data = append(f.data, s...)
		lib.fs.appendTo(f.name, []byte(s))
	}
	L.Push(L.Get(1))
	return 1
}

func (lib ioLib) close(L *lua.LState) int {
	lib.file(L, "close").closed = true
	L.Push(lua.LTrue)
	return 1
}

// open is io.open(name [, mode]): modes r, w, a, each with b and +.
func (lib ioLib) open(L *lua.LState) int {
	name := checkString(L, 1, "open")
	mode := "r"
	if L.GetTop() >= 2 {
		mode = checkString(L, 2, "open")
	}
	f := &luaFile{name: fsName(name)}
	switch strings.TrimRight(mode, "b+") {
	case "r":
		b, ok := lib.fs.ReadFile(name)
		if !ok {
			L.Push(lua.LNil)
			L.Push(lua.LString(name + ": No such file or directory"))
			L.Push(lua.LNumber(2))
			return 3
		}
		f.data, f.write = b, strings.Contains(mode, "+")
	case "w":
		lib.fs.WriteFile(name, nil)
		f.write = true
	case "a":
		b, _ := lib.fs.ReadFile(name)
		lib.fs.WriteFile(name, b)
		f.data, f.pos, f.write = b, len(b), true
	default:
		argError(L, 2, "open", "invalid mode")
	}
	ud := L.NewUserData()
	ud.Value = f
	L.SetMetatable(ud, L.GetTypeMetatable(fileHandleType))
	L.Push(ud)
	return 1
}

// load compiles the file name, raising Lua errors as NodeMCU does.
func (lib ioLib) load(L *lua.LState, name string) *lua.LFunction {
	b, ok := lib.fs.ReadFile(name)
	if !ok {
		raise(L, "cannot open %s", name)
	}
	fn, err := L.Load(strings.NewReader(string(b)), "@"+fsName(name))
	if err != nil {
		raise(L, "%s", err.Error())
	}
	return fn
}

func (lib ioLib) dofile(L *lua.LState) int {
	fn := lib.load(L, checkString(L, 1, "dofile"))
	top := L.GetTop()
	L.Push(fn)
	L.Call(0, lua.MultRet)
	return L.GetTop() - top
}

func (lib ioLib) loadfile(L *lua.LState) int {
	L.Push(lib.load(L, checkString(L, 1, "loadfile")))
	return 1
}
