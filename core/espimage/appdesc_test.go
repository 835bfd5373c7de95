package espimage

import (
	"bytes"
	"testing"
)

func TestDecodeAppDesc(t *testing.T) {
	want := &AppDesc{SecureVersion: 7, Version: "1.2.3", ProjectName: "blink", Time: "12:00:00", Date: "Jan  1 2026", IDFVer: "v5.1.3"}
	want.ELFSHA256[0], want.ELFSHA256[31] = 0xAB, 0xCD
	d := make([]byte, AppDescSize)
	if err := encodeAppDesc(d, want); err != nil {
		t.Fatal(err)
	}
	if got := DecodeAppDesc(d); got == nil || *got != *want {
		t.Fatalf("round trip: %+v, want %+v", got, want)
	}
	long := append(bytes.Clone(d), 0xFF, 0xFF) // a partition read: more bytes follow
	if got := DecodeAppDesc(long); got == nil || *got != *want {
		t.Errorf("with bytes after it: %+v", got)
	}
	if got := DecodeAppDesc(d[:AppDescSize-1]); got != nil {
		t.Errorf("short: %+v, want nil", got)
	}
	bad := bytes.Clone(d)
	bad[0] ^= 1
	if got := DecodeAppDesc(bad); got != nil {
		t.Errorf("wrong magic: %+v, want nil", got)
	}
	if got := DecodeAppDesc(bytes.Repeat([]byte{0xFF}, AppDescSize)); got != nil {
		t.Errorf("erased flash: %+v, want nil", got)
	}
}

func FuzzDecodeAppDesc(f *testing.F) {
	d := make([]byte, AppDescSize)
	encodeAppDesc(d, &AppDesc{Version: "1.0", ProjectName: "p"})
	f.Add(d)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		a := DecodeAppDesc(b)
		if a != nil && (len(a.Version) > 32 || len(a.ProjectName) > 32 || len(a.IDFVer) > 32) {
			t.Fatalf("fields longer than their slots: %+v", a)
		}
	})
}
