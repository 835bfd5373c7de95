package nodemcu

import (
	"bytes"
	"crypto/sha256"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/gota-dev/gota/protocol"
)

// TestAgentParsesAsLua51And53 compiles gota.lua with the reference
// compilers: NodeMCU builds use Lua 5.1 or Lua 5.3.
func TestAgentParsesAsLua51And53(t *testing.T) {
	for _, luac := range []string{"luac5.1", "luac5.3"} {
		t.Run(luac, func(t *testing.T) {
			path, err := exec.LookPath(luac)
			if err != nil {
				t.Skipf("%s not installed (Debian package lua%s); cannot check the syntax", luac, strings.TrimPrefix(luac, "luac"))
			}
			out, err := exec.Command(path, "-p", "gota.lua").CombinedOutput()
			if err != nil {
				t.Fatalf("%s -p gota.lua: %v\n%s", luac, err, out)
			}
		})
	}
}

// nodeMCUModules are NodeMCU dev-esp32's C modules. A reference to one of
// them in gota.lua must be to a field the harness provides.
var nodeMCUModules = []string{
	"adc", "bit", "ble", "bthci", "can", "console", "crypto", "dac", "dht", "encoder",
	"eth", "file", "gpio", "http", "httpd", "i2c", "i2s", "ledc", "mdns", "mqtt", "net",
	"node", "otaupgrade", "ow", "pipe", "pulsecnt", "qrcodegen", "rmt", "rtcmem",
	"sigma_delta", "sjson", "sodium", "spi", "struct", "time", "tmr", "touch", "u8g2",
	"uart", "ucg", "wifi", "ws2812",
}

// TestAgentUsesOnlyProvidedModuleFields scans gota.lua for module.field
// and :method( references and fails on any the harness does not provide
// (on either firmware generation). Together with the harness raising on
// missing fields at run time, a passing full-cycle test means the agent
// needs nothing the virtual board lacks.
func TestAgentUsesOnlyProvidedModuleFields(t *testing.T) {
	src := stripLuaComments(string(AgentScript))
	provided := map[string]map[string]bool{}
	for _, fw := range []Firmware{ConsoleFirmware, UARTFirmware, UARTStartFirmware} {
		for mod, fields := range Provided(fw) {
			if provided[mod] == nil {
				provided[mod] = map[string]bool{}
			}
			for _, f := range fields {
				provided[mod][f] = true
			}
		}
	}
	isModule := map[string]bool{}
	for _, m := range nodeMCUModules {
		isModule[m] = true
	}
	used := map[string]bool{}
	for _, m := range regexp.MustCompile(`\b([A-Za-z_]\w*)\.([A-Za-z_]\w*)`).FindAllStringSubmatch(src, -1) {
		mod, field := m[1], m[2]
		if !isModule[mod] {
			continue
		}
		used[mod+"."+field] = true
		if !provided[mod][field] {
			t.Errorf("gota.lua uses %s.%s, which the harness does not provide", mod, field)
		}
	}
	// Method calls: timer and crypto hasher methods, methods of io's
	// file handles (standard Lua), or string methods on strings.
	for _, m := range Provided(ConsoleFirmware)["crypto.hasher"] {
		provided["timer"][m] = true
	}
	stringMethods := map[string]bool{"read": true, "write": true, "close": true, "byte": true, "sub": true, "gsub": true, "find": true, "format": true, "rep": true, "len": true, "match": true, "gmatch": true, "char": true, "lower": true, "upper": true, "reverse": true}
	for _, m := range regexp.MustCompile(`:([A-Za-z_]\w*)\s*\(`).FindAllStringSubmatch(src, -1) {
		name := m[1]
		if !provided["timer"][name] && !stringMethods[name] {
			t.Errorf("gota.lua calls method :%s(), neither a tmr timer method the harness provides nor a string method", name)
		}
	}
	var list []string
	for k := range used {
		list = append(list, k)
	}
	sort.Strings(list)
	if len(list) < 10 {
		t.Errorf("scan found only %v: the pattern no longer matches the source", list)
	}
	t.Logf("module fields used: %s", strings.Join(list, " "))
}

// stripLuaComments removes -- comments (not inside strings; gota.lua has
// no "--" in strings) so prose does not count as a reference.
func stripLuaComments(src string) string {
	var b strings.Builder
	for _, line := range strings.Split(src, "\n") {
		if i := strings.Index(line, "--"); i >= 0 {
			line = line[:i]
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.String()
}

// hostScript is what a host sends in TestAgentOnStockLua: noise, a
// handshake, a whole transfer without waiting for ACKs (the agent handles
// frames in order), a retried request and an unknown one.
func hostScript(image []byte) []byte {
	var in []byte
	add := func(typ protocol.Type, seq uint8, payload []byte) {
		in = protocol.AppendFrame(in, protocol.Frame{Type: typ, Seq: seq, Payload: payload})
	}
	in = append(in, "print('hi')\r\n\x01\x01noise"...)
	add(protocol.TypeHello, 1, protocol.Hello{Version: 1, Caps: 0x0F, MaxPayload: 4096}.Encode())
	add(protocol.TypeInfo, 2, nil)
	sum := sha256.Sum256(image)
	add(protocol.TypeBegin, 3, protocol.Begin{Size: uint32(len(image)), SHA256: sum}.Encode())
	for off := 0; off < len(image); off += 1020 {
		end := min(off+1020, len(image))
		add(protocol.TypeData, 0, protocol.Data{Offset: uint32(off), Bytes: image[off:end]}.Encode())
	}
	add(protocol.TypeEnd, 4, []byte{0})
	add(protocol.TypePing, 5, []byte("ping"))
	add(protocol.TypePing, 5, []byte("ping")) // a retry: same seq
	add(0x33, 6, nil)
	return in
}

// TestAgentOnStockLua runs gota.lua under the reference interpreters with
// stand-ins for the NodeMCU modules (testdata/driver.lua): Lua 5.3 without
// a bit module (gota.lua's native-operator path) and Lua 5.1 with a
// pure-Lua bit module of NodeMCU's semantics. It checks every frame the
// agent sends and the image it writes, and logs the Lua heap the agent
// uses (collectgarbage("count")).
func TestAgentOnStockLua(t *testing.T) {
	tests := []struct {
		lua       string
		imageSize int
		extra     []string
	}{
		{"lua5.3", 316944, nil},
		{"lua5.1", 24 << 10, []string{"pure-bit"}}, // the pure-Lua bit is slow
		// NodeMCU's default build is Lua 5.3 with 32-bit integers; stock
		// lua5.3 has 64-bit ones. fengari's are 32 bits wide.
		{"fengari", 64 << 10, nil},
	}
	for _, tc := range tests {
		t.Run(tc.lua, func(t *testing.T) {
			var cmd []string
			var env []string
			if tc.lua == "fengari" {
				node, err := exec.LookPath("node")
				if err != nil {
					t.Skip("node not installed; cannot run fengari (build.sh deps installs it)")
				}
				dir := fengariDir()
				if _, err := os.Stat(filepath.Join(dir, "fengari")); err != nil {
					t.Skipf("fengari not found in %s (set GOTA_FENGARI_DIR, or run build.sh test, which installs it in .deps)", dir)
				}
				cmd, env = []string{node, "testdata/fengari-run.js"}, append(os.Environ(), "NODE_PATH="+dir)
			} else {
				luaPath, err := exec.LookPath(tc.lua)
				if err != nil {
					t.Skipf("%s not installed; cannot run gota.lua on it", tc.lua)
				}
				cmd = []string{luaPath}
			}
			dir := t.TempDir()
			image := make([]byte, tc.imageSize)
			rand.New(rand.NewSource(1)).Read(image)
			image[0] = 0xE9
			in := filepath.Join(dir, "in")
			if err := os.WriteFile(in, hostScript(image), 0o644); err != nil {
				t.Fatal(err)
			}
			outPath, imgPath := filepath.Join(dir, "out"), filepath.Join(dir, "img")
			args := append(append(cmd[1:], "testdata/driver.lua", "gota.lua", in, outPath, imgPath), tc.extra...)
			c := exec.Command(cmd[0], args...)
			c.Env = env
			report, err := c.CombinedOutput()
			if err != nil {
				t.Fatalf("%s driver.lua: %v\n%s", tc.lua, err, report)
			}
			t.Logf("%s heap (KiB): %s", tc.lua, strings.TrimSpace(string(report)))

			written, err := os.ReadFile(imgPath)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(written, image) {
				t.Fatalf("image written through otaupgrade.write differs (%d bytes, want %d)", len(written), len(image))
			}
			out, err := os.ReadFile(outPath)
			if err != nil {
				t.Fatal(err)
			}
			checkAgentFrames(t, out, len(image))
		})
	}
}

// fengariDir is where the fengari npm package is installed (the
// node_modules directory holding it).
func fengariDir() string {
	if d := os.Getenv("GOTA_FENGARI_DIR"); d != "" {
		return d
	}
	// build.sh deps installs it in the checkout's .deps.
	if d, err := filepath.Abs("../../.deps/node_modules"); err == nil {
		if _, err := os.Stat(filepath.Join(d, "fengari")); err == nil {
			return d
		}
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "gota-fengari", "node_modules")
}

// checkAgentFrames decodes what the agent sent in TestAgentOnStockLua.
func checkAgentFrames(t *testing.T, out []byte, size int) {
	t.Helper()
	var frames []protocol.Frame
	dec := protocol.NewDecoder(protocol.LimitMaxPayload, func(f protocol.Frame) { frames = append(frames, f) }, nil)
	dec.Write(out)
	if st := dec.Stats(); st.BadHeader+st.BadCRC > 0 {
		t.Errorf("agent output has bad frames: %+v", st)
	}
	next := func(want protocol.Type, seq uint8) protocol.Frame {
		t.Helper()
		if len(frames) == 0 {
			t.Fatalf("no more frames, want %v seq %d", want, seq)
		}
		f := frames[0]
		frames = frames[1:]
		if f.Type != want || f.Seq != seq {
			t.Fatalf("frame %v seq %d (payload %q), want %v seq %d", f.Type, f.Seq, f.Payload, want, seq)
		}
		return f
	}
	r, err := protocol.DecodeReady(next(protocol.TypeReady, 0).Payload)
	if err != nil || r.Version != 1 || r.Reason != protocol.ReadyBoot || r.Agent != "gota-lua/1" {
		t.Errorf("READY = %+v, %v", r, err)
	}
	h, err := protocol.DecodeHello(next(protocol.TypeHello.Reply(), 1).Payload)
	if err != nil || h.Version != 1 || h.Caps != protocol.CapResume || h.MaxPayload != 1024 || h.Window != 2040 {
		t.Errorf("HELLO_R = %+v, %v", h, err)
	}
	total, text, err := protocol.DecodeInfoChunk(next(protocol.TypeInfo.Reply(), 2).Payload)
	if err != nil || total != len(text) || !strings.Contains(string(text), "chip=esp32\nchip_rev=301\nrunning=app0\nnext=app0\npart=app0\nstate=valid\nname=led\nversion=1.1\n") {
		t.Errorf("INFO_R total %d text %q, %v", total, text, err)
	}
	br, err := protocol.DecodeBeginReply(next(protocol.TypeBegin.Reply(), 3).Payload)
	if err != nil || br.Offset != 0 || br.Label != "app1" {
		t.Errorf("BEGIN_R = %+v, %v", br, err)
	}
	for off := 0; off < size; off += 1020 {
		a, err := protocol.DecodeAck(next(protocol.TypeAck, 0).Payload)
		want := uint32(min(off+1020, size))
		if err != nil || a.Received != want || a.Written != want {
			t.Fatalf("ACK = %+v, %v; want received = written = %d", a, err, want)
		}
	}
	next(protocol.TypeEnd.Reply(), 4)
	p1 := next(protocol.TypePing.Reply(), 5)
	p2 := next(protocol.TypePing.Reply(), 5)
	if string(p1.Payload) != "ping" || !bytes.Equal(p1.Payload, p2.Payload) {
		t.Errorf("PING_R payloads %q %q", p1.Payload, p2.Payload)
	}
	e, err := protocol.DecodeError(next(protocol.TypeError, 6).Payload)
	if err != nil || e.Code != 0x106 || e.Message != "unknown request type 0x33" {
		t.Errorf("ERROR = %+v, %v", e, err)
	}
	if len(frames) > 0 {
		t.Errorf("unexpected extra frames: %v", frames)
	}
}
