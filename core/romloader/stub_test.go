package romloader

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
)

func TestParseStub(t *testing.T) {
	text, data := []byte{1, 2, 3, 4}, []byte{5, 6}
	good := fmt.Sprintf(`{"entry": 1074434092, "text": %q, "text_start": 1074429952, "data": %q, "data_start": 1073605996, "bss_start": 1073528832}`,
		base64.StdEncoding.EncodeToString(text), base64.StdEncoding.EncodeToString(data))
	s, err := ParseStub([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if s.Entry != 0x400A902C || s.TextStart != 0x400A8000 || s.DataStart != 0x3FFDED6C || !bytes.Equal(s.Text, text) || !bytes.Equal(s.Data, data) {
		t.Errorf("parsed %+v", s)
	}
	for _, tc := range []struct{ in, want string }{
		{`{`, "stub:"},
		{`{"text": "AQID"}`, `"entry" and "text" are required`},
		{`{"entry": 1}`, `"entry" and "text" are required`},
		{`{"entry": 1, "text": "%%%"}`, "text:"},
		{`{"entry": 1, "text": "AQID", "data": "!"}`, "data:"},
	} {
		if _, err := ParseStub([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.in, err, tc.want)
		}
	}
}

func FuzzParseStub(f *testing.F) {
	f.Add([]byte(`{"entry": 1, "text": "AQID", "text_start": 2, "data": "", "data_start": 3}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseStub(b)
		if err == nil && len(s.Text) == 0 {
			t.Fatal("accepted a stub without text")
		}
	})
}
