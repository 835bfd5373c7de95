//go:build js && wasm

package web

import (
	"errors"
	"fmt"
	"syscall/js"

	"github.com/gota-dev/gota/web/webserial"
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
	b, err := arrayBufferOf(f)
	if err != nil {
		return name, nil, fmt.Errorf("read %s: %w", name, err)
	}
	return name, b, nil
}

// arrayBufferOf copies the bytes of v.arrayBuffer() (a File, Blob or
// Response) into Go.
func arrayBufferOf(v js.Value) ([]byte, error) {
	buf, err := webserial.Await(v.Call("arrayBuffer"))
	if err != nil {
		return nil, err
	}
	arr := js.Global().Get("Uint8Array").New(buf)
	b := make([]byte, arr.Get("byteLength").Int())
	js.CopyBytesToGo(b, arr)
	return b, nil
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

// imageCacheName is the Cache Storage bucket of images flashed from the
// page, keyed by their appended SHA-256: when a device runs one of them,
// the next update goes as deltas against it (protocol DELTA).
const (
	imageCacheName  = "gota-images"
	imageCachePath  = "/gota-image/"
	maxCachedImages = 16
)

// openImageCache opens the page's image cache; ok is false where the
// Cache API is missing (an insecure origin).
func openImageCache() (js.Value, bool) {
	caches := js.Global().Get("caches")
	if !caches.Truthy() {
		return js.Value{}, false
	}
	c, err := webserial.Await(caches.Call("open", imageCacheName))
	return c, err == nil
}

// cachedImage returns the image stored under digestHex, or nil.
func cachedImage(digestHex string) []byte {
	c, ok := openImageCache()
	if !ok || digestHex == "" {
		return nil
	}
	resp, err := webserial.Await(c.Call("match", imageCachePath+digestHex))
	if err != nil || !resp.Truthy() {
		return nil
	}
	b, err := arrayBufferOf(resp)
	if err != nil {
		return nil
	}
	return b
}

// storeImage keeps image under digestHex, dropping the oldest entries
// beyond maxCachedImages. Failures only cost a later delta.
func storeImage(digestHex string, image []byte) {
	c, ok := openImageCache()
	if !ok {
		return
	}
	arr := js.Global().Get("Uint8Array").New(len(image))
	js.CopyBytesToJS(arr, image)
	resp := js.Global().Get("Response").New(arr)
	if _, err := webserial.Await(c.Call("put", imageCachePath+digestHex, resp)); err != nil {
		return
	}
	keys, err := webserial.Await(c.Call("keys"))
	if err != nil {
		return
	}
	for i := 0; i < keys.Length()-maxCachedImages; i++ {
		webserial.Await(c.Call("delete", keys.Index(i)))
	}
}

// fetchURL GETs u (relative to the page) and returns the body.
func fetchURL(u string) ([]byte, error) {
	resp, err := webserial.Await(js.Global().Call("fetch", u))
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", u, err)
	}
	if !resp.Get("ok").Bool() {
		return nil, fmt.Errorf("fetch %s: HTTP %d %s", u, resp.Get("status").Int(), resp.Get("statusText").String())
	}
	return arrayBufferOf(resp)
}

// inputValue reads the value of the input element with id.
func inputValue(id string) string {
	el := js.Global().Get("document").Call("getElementById", id)
	if !el.Truthy() {
		return ""
	}
	return el.Get("value").String()
}

// resolveURL resolves a manifest part's path against the manifest's
// address with the browser's URL (net/url would add 90 KB gzipped to the
// page).
func resolveURL(base, path string) (s string) {
	defer func() {
		if recover() != nil { // the URL constructor threw: not a URL
			s = path
		}
	}()
	return js.Global().Get("URL").New(path, base).Get("href").String()
}
