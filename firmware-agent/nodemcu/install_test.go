package nodemcu

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"strings"
	"sync"
	"testing"

	"github.com/gota-dev/gota/core/luainstall"
	"github.com/gota-dev/gota/core/updater"
)

// userInit is a user's own init.lua on the board before the install.
const userInit = "-- my app\nuserapp = (userapp or 0) + 1\nprint(\"user app started\")\n"

// newREPLRig is a virtual ESP32 with NodeMCU and a file system holding
// only the user's init.lua: no agent, just the REPL.
func newREPLRig(t *testing.T, opt Options) (*rig, *FS) {
	t.Helper()
	fs := NewFS()
	fs.WriteFile("init.lua", []byte(userInit))
	opt.FS = fs
	r := newRigWith(t, opt, nil, nil)
	return r, fs
}

// TestInstallAgentThroughREPL installs gota.lua on a board that has only
// NodeMCU's REPL, on every profile: the files are written and checked,
// the user's init.lua is kept and still runs, the agent answers after
// the restart and takes an update. A second install keeps the user's
// init.lua where it is.
func TestInstallAgentThroughREPL(t *testing.T) {
	for _, prof := range Profiles {
		t.Run(prof.Name, func(t *testing.T) {
			ctx := testContext(t)
			r, fs := newREPLRig(t, prof.Options)
			port := r.attach()
			var steps []string
			res, err := luainstall.Install(ctx, port, luainstall.Options{Agent: AgentScript, Log: func(s string) { steps = append(steps, s) }})
			if err != nil {
				t.Fatalf("Install: %v\nsteps: %q\nfiles: %q", err, steps, fs.Names())
			}
			port.Close()
			t.Logf("%+v; steps %q", res, steps)
			if !res.KeptUserInit || res.Lua != "Lua 5.1" || res.Console != (prof.Options.Firmware == ConsoleFirmware) {
				t.Errorf("result %+v", res)
			}
			for name, want := range map[string]string{"gota.lua": string(AgentScript), "init.lua": luainstall.InitScript, "init-user.lua": userInit} {
				if got, ok := fs.ReadFile(name); !ok || string(got) != want {
					t.Errorf("%s on the board: %d bytes, want %d (present %v)", name, len(got), len(want), ok)
				}
			}
			if names := strings.Join(fs.Names(), " "); strings.Contains(names, ".tmp") {
				t.Errorf("temporary files left: %s", names)
			}
			if got := evalLua(t, r.board, "userapp"); got != "1" {
				t.Errorf("the user's program ran %s times after the restart, want 1", got)
			}
			s, _ := r.connect(ctx)
			if s.Caps().Agent != "gota-lua/1" {
				t.Fatalf("agent %q", s.Caps().Agent)
			}
			img := r.build("9.4.0")
			if err := s.Flash(ctx, img, updater.FlashOptions{}); err != nil {
				t.Fatalf("Flash after install: %v\n%s", err, r.logText())
			}
			info := r.info(ctx, s)
			if info.Running != "app1" || info.Find("app1").Version != "9.4.0" {
				t.Errorf("after the flash: running %s %+v", info.Running, info.Find("app1"))
			}
			// With a file system the digest survives the reboot into the new build.
			if got, want := info.Find("app1").SHA256, fmt.Sprintf("%x", img[len(img)-32:]); got != want {
				t.Errorf("app1 digest after the reboot %q, want %s", got, want)
			}
			s.Close()

			// Again, over the agent's own REPL.
			port2 := r.attach()
			res, err = luainstall.Install(ctx, port2, luainstall.Options{Agent: AgentScript})
			if err != nil {
				t.Fatalf("second Install: %v", err)
			}
			if res.KeptUserInit {
				t.Errorf("second install took its own init.lua for the user's")
			}
			if got, _ := fs.ReadFile("init-user.lua"); string(got) != userInit {
				t.Errorf("init-user.lua changed by the second install: %q", got)
			}
		})
	}
}

// TestInstallRefusesWhatIsNotNodeMCU: garbage, a MicroPython prompt and
// silence each get a clear error, and no file-writing line is sent.
func TestInstallRefusesWhatIsNotNodeMCU(t *testing.T) {
	tests := []struct {
		name string
		port *fakePort
		want string
	}{
		{"garbage", newFakePort(func(in []byte) []byte {
			b := make([]byte, 40)
			rand.New(rand.NewSource(int64(len(in)))).Read(b)
			return bytes.ReplaceAll(b, []byte("\n"), nil)
		}), "not a NodeMCU REPL: it answered"},
		{"MicroPython", newFakePort(func(in []byte) []byte {
			return append(append([]byte(nil), bytes.ReplaceAll(in, []byte("\n"), []byte("\r\n"))...), "Traceback (most recent call last):\r\nNameError: name 'print' isn't defined\r\n>>> "...)
		}), "the board runs MicroPython"},
		{"silence", newFakePort(nil), "the port printed nothing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			_, err := luainstall.Install(ctx, tt.port, luainstall.Options{Agent: AgentScript})
			tt.port.Close()
			var nr *luainstall.NotREPLError
			if !errors.As(err, &nr) || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "nothing was written") {
				t.Fatalf("err = %v, want a NotREPLError containing %q", err, tt.want)
			}
			if w := tt.port.written(); strings.Contains(w, "io.open(") || strings.Contains(w, "__g") {
				t.Errorf("the installer sent file operations to a port that is not NodeMCU: %q", w)
			}
		})
	}
}

// TestInstallNeedsIO: a build without the io module is refused before
// anything is written.
func TestInstallNeedsIO(t *testing.T) {
	ctx := testContext(t)
	r := newRigWith(t, Options{}, nil, []byte("-- REPL only\n"))
	_, err := luainstall.Install(ctx, r.attach(), luainstall.Options{Agent: AgentScript})
	if err == nil || !strings.Contains(err.Error(), "no io module") {
		t.Fatalf("err = %v", err)
	}
}

// fakePort is a serial port whose other end answers each write with
// reply(written) (nil: stays silent).
type fakePort struct {
	reply  func([]byte) []byte
	mu     sync.Mutex
	in     bytes.Buffer // what the installer wrote
	out    chan []byte
	closed chan struct{}
	once   sync.Once
}

func newFakePort(reply func([]byte) []byte) *fakePort {
	return &fakePort{reply: reply, out: make(chan []byte, 64), closed: make(chan struct{})}
}

func (p *fakePort) Write(b []byte) (int, error) {
	p.mu.Lock()
	p.in.Write(b)
	p.mu.Unlock()
	if p.reply != nil {
		select {
		case p.out <- p.reply(b):
		default:
		}
	}
	return len(b), nil
}

func (p *fakePort) Read(b []byte) (int, error) {
	select {
	case r := <-p.out:
		return copy(b, r), nil
	case <-p.closed:
		return 0, io.EOF
	}
}

func (p *fakePort) Close() error { p.once.Do(func() { close(p.closed) }); return nil }

func (p *fakePort) written() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.in.String()
}
