//go:build js && wasm

package web

import (
	"errors"
	"fmt"
	"syscall/js"

	"github.com/gota-dev/gota/wasm/webserial"
	"github.com/vugu/vugu"
	vjs "github.com/vugu/vugu/js"
)

func init() { webserial.Trace = trace }

func serialSupported() bool { return webserial.Supported() }

// virtualAvailable asks web/static/virtual-serial.js whether the server
// runs a virtual device.
func virtualAvailable() bool {
	gv := js.Global().Get("gotaVirtual")
	if !gv.Truthy() {
		return false
	}
	v, err := webserial.Await(gv.Call("available"))
	return err == nil && v.Truthy()
}

func requestSerialPort() func() (any, error) {
	wait := webserial.RequestPort()
	return func() (any, error) {
		v, err := wait()
		if err != nil {
			return nil, err
		}
		return v, nil
	}
}

func virtualPort() (any, error) {
	gv := js.Global().Get("gotaVirtual")
	if !gv.Truthy() {
		return nil, errors.New("virtual-serial.js is not loaded")
	}
	return gv.Call("port"), nil
}

type jsPort struct{ *webserial.Port }

func (p jsPort) Describe() string {
	if s := p.Info(); s != "" {
		return fmt.Sprintf("%s at %d baud", s, p.Baud())
	}
	return fmt.Sprintf("serial port at %d baud", p.Baud())
}

func openPort(handle any, baud int, lost func()) (Port, error) {
	v, ok := handle.(js.Value)
	if !ok {
		return nil, fmt.Errorf("not a serial port: %T", handle)
	}
	p, err := webserial.Open(v, baud, lost)
	if err != nil {
		return nil, err
	}
	return jsPort{p}, nil
}

// readFile reads a File object's bytes.
func readFile(f js.Value) (string, []byte, error) {
	name := f.Get("name").String()
	buf, err := webserial.Await(f.Call("arrayBuffer"))
	if err != nil {
		return name, nil, fmt.Errorf("read %s: %w", name, err)
	}
	arr := js.Global().Get("Uint8Array").New(buf)
	b := make([]byte, arr.Get("byteLength").Int())
	js.CopyBytesToGo(b, arr)
	return name, b, nil
}

func firstFile(files js.Value) func() (string, []byte, error) {
	if !files.Truthy() || files.Get("length").Int() == 0 {
		return nil
	}
	f := files.Index(0)
	return func() (string, []byte, error) { return readFile(f) }
}

func droppedFile(e vugu.DOMEvent) func() (string, []byte, error) {
	ev := js.Value(e.JSEvent())
	dt := ev.Get("dataTransfer")
	if !dt.Truthy() {
		return nil
	}
	return firstFile(dt.Get("files"))
}

func pickedFile(e vugu.DOMEvent) func() (string, []byte, error) {
	t := js.Value(e.JSEventTarget())
	read := firstFile(t.Get("files"))
	// Clear the input so choosing the same file again fires change.
	t.Set("value", "")
	return read
}

// download offers text as a file.
func download(name, text string) {
	blob := js.Global().Get("Blob").New([]any{text}, map[string]any{"type": "text/plain"})
	url := js.Global().Get("URL").Call("createObjectURL", blob)
	a := js.Global().Get("document").Call("createElement", "a")
	a.Set("href", url)
	a.Set("download", name)
	js.Global().Get("document").Get("body").Call("appendChild", a)
	a.Call("click")
	a.Call("remove")
	js.Global().Get("URL").Call("revokeObjectURL", url)
}

var _ = vjs.Value{}

// trace records a timing line in window.gotaTrace (read by the benchmarks).
func trace(s string) {
	t := js.Global().Get("gotaTrace")
	if !t.Truthy() {
		t = js.Global().Get("Array").New()
		js.Global().Set("gotaTrace", t)
	}
	t.Call("push", s)
	if n := t.Length(); n > 500 {
		t.Call("splice", 0, n-500) // keep the newest entries
	}
}
