package protocol

import (
	"encoding/hex"
	"os"
	"strings"
	"testing"
)

// TestSpecExample decodes every hex frame in SPEC.md's example exchange, so
// the document cannot drift from the code.
func TestSpecExample(t *testing.T) {
	doc, err := os.ReadFile("SPEC.md")
	if err != nil {
		t.Fatal(err)
	}
	_, ex, ok := strings.Cut(string(doc), "## 9. Example exchange")
	if !ok {
		t.Fatal("SPEC.md has no example section")
	}
	n := 0
	for _, line := range strings.Split(ex, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || (f[0] != "H→D" && f[0] != "D→H") || f[2] != "01" {
			continue
		}
		name := f[1]
		b, err := hex.DecodeString(strings.Join(f[2:], ""))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var got []Frame
		var text []byte
		d := NewDecoder(LimitMaxPayload, func(fr Frame) { got = append(got, fr) }, func(p []byte) { text = append(text, p...) })
		d.Write(b)
		if len(got) != 1 || len(text) != 0 || d.Pending() {
			t.Errorf("%s: %d frames, text %q, pending %v", name, len(got), text, d.Pending())
			continue
		}
		if got[0].Type.String() != name {
			t.Errorf("%s: decodes as %v", name, got[0].Type)
		}
		n++
	}
	if n < 10 {
		t.Errorf("only %d example frames found", n)
	}
}
