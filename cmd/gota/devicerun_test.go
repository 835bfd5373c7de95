package main

import (
	"io"
	"strings"
	"testing"

	"github.com/gota-dev/gota/firmware-agent/link"
)

func TestDeviceRunFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"f.bin"}, "--pty LINK and/or --listen"},
		{[]string{"f.bin", "--pty", "x", "--drop-rate", "2"}, "--drop-rate 2"},
		{[]string{"f.bin", "--pty", "x", "--disconnect-after", "10,zz"}, `value 2 "zz"`},
		{[]string{"f.bin", "--pty", "x", "--agent", "python"}, `--agent "python": unknown agent`},
		{[]string{"f.bin", "--pty", "x", "--baud", "0"}, "--baud 0"},
		{[]string{"f.bin", "--pty", "x", "--boot", "usb"}, `--boot "usb": want flash or download`},
		{[]string{"f.bin", "--pty", "x", "--reset", "jtag"}, `--reset "jtag"`},
		{[]string{"f.bin", "--pty", "x", "--chip", "esp8266"}, `chip "esp8266": want one of esp32, esp32s2, esp32s3, esp32c3`},
	} {
		_, err := parseDeviceRun(io.Discard, tc.args)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err %v, want it to mention %q", tc.args, err, tc.want)
		}
	}
	o, err := parseDeviceRun(io.Discard, []string{"--pty", "x", "f.bin", "--disconnect-after", "100,50", "--baud", "2000000"})
	if err != nil {
		t.Fatal(err)
	}
	if o.flashPath != "f.bin" || len(o.line.DisconnectAfter) != 2 || o.line.Baud != 2000000 {
		t.Fatalf("parsed %+v", o)
	}
	for _, c := range []struct {
		args []string
		want link.UART
	}{
		{[]string{"--pty", "x", "f.bin", "--reset", "usb-jtag"}, link.USB},
		{[]string{"--pty", "x", "f.bin", "--reset", "usb-jtag", "--uart", "bridge"}, link.Bridge},
		{[]string{"--pty", "x", "f.bin"}, link.Bridge},
	} {
		o, err := parseDeviceRun(io.Discard, c.args)
		if err != nil || o.line.UART != c.want {
			t.Errorf("%q: UART %v (%v), want %v", c.args, o.line.UART, err, c.want)
		}
	}
}
