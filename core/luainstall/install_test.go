package luainstall

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
)

// unquote reads a literal made by luaLiteral back, as Lua would.
func unquote(t testing.TB, lit string) []byte {
	t.Helper()
	if len(lit) < 2 || lit[0] != '"' || lit[len(lit)-1] != '"' {
		t.Fatalf("not a quoted literal: %q", lit)
	}
	body := lit[1 : len(lit)-1]
	var out []byte
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case c == '\\':
			if i+4 > len(body) {
				t.Fatalf("short escape at %d in %q", i, lit)
			}
			n, err := strconv.Atoi(body[i+1 : i+4])
			if err != nil || n > 255 {
				t.Fatalf("bad escape %q", body[i:i+4])
			}
			out = append(out, byte(n))
			i += 3
		case c == '"' || c < 0x20 || c >= 0x7F:
			t.Fatalf("raw byte %#x in %q", c, lit)
		default:
			out = append(out, c)
		}
	}
	return out
}

func TestLuaLiteral(t *testing.T) {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	tests := []struct {
		name string
		data []byte
		max  int
	}{
		{"every byte value", all, 4096},
		{"split by the line limit", bytes.Repeat([]byte("ab\"\\\n\x00"), 100), 60},
		{"empty", nil, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []byte
			rest := tt.data
			for len(rest) > 0 {
				lit, n := luaLiteral(rest, tt.max)
				if len(lit) > tt.max {
					t.Fatalf("literal of %d characters, limit %d", len(lit), tt.max)
				}
				if n == 0 {
					t.Fatal("no progress")
				}
				got = append(got, unquote(t, lit)...)
				rest = rest[n:]
			}
			if !bytes.Equal(got, tt.data) {
				t.Fatalf("round trip: %q, want %q", got, tt.data)
			}
		})
	}
}

func FuzzLuaLiteral(f *testing.F) {
	f.Add([]byte("print(\"x\")\r\n\x01\xff"), 40)
	f.Fuzz(func(t *testing.T, data []byte, max int) {
		if max < 8 || max > 1000 {
			return
		}
		lit, n := luaLiteral(data, max)
		if len(lit) > max || n > len(data) || len(data) > 0 && n == 0 {
			t.Fatalf("literal %d chars for limit %d, consumed %d of %d", len(lit), max, n, len(data))
		}
		if got := unquote(t, lit); !bytes.Equal(got, data[:n]) {
			t.Fatalf("round trip %q, want %q", got, data[:n])
		}
	})
}

func TestPrompted(t *testing.T) {
	for in, want := range map[string]bool{
		"> ": true, "x=1\n> ": true, "1\n>> ": true, "x > 1": false, "1\n": false, "": false,
	} {
		if got := prompted(in); got != want {
			t.Errorf("prompted(%q) = %v", in, got)
		}
	}
}

func TestNotREPLErrorSaysNothingWasWritten(t *testing.T) {
	for _, what := range []string{"silence", "MicroPython", "unrecognised"} {
		if msg := (&NotREPLError{What: what, Got: ">>> "}).Error(); !strings.Contains(msg, "nothing was written") || !strings.HasPrefix(msg, "not a NodeMCU REPL") {
			t.Errorf("%s: %q", what, msg)
		}
	}
}
