//go:build !(js && wasm)

package web

import (
	"errors"

	"github.com/vugu/vugu"
)

// The page only runs in a browser; these stand-ins let the package build
// (and be vetted) on the host.

var errNoBrowser = errors.New("not running in a browser")

func serialSupported() bool  { return false }
func virtualAvailable() bool { return false }
func requestSerialPort() func() (any, error) {
	return func() (any, error) { return nil, errNoBrowser }
}
func virtualPort() (any, error) { return nil, errNoBrowser }
func openPort(handle any, baud int, lost func()) (Port, error) {
	return nil, errNoBrowser
}
func droppedFile(e vugu.DOMEvent) func() (string, []byte, error) { return nil }
func pickedFile(e vugu.DOMEvent) func() (string, []byte, error)  { return nil }
func download(name, text string)                                 {}
func trace(s string)                                             {}
func cachedImage(digestHex string) []byte                        { return nil }
func storeImage(digestHex string, image []byte)                  {}

func fetchURL(u string) ([]byte, error) { return nil, errNoBrowser }
func inputValue(id string) string       { return "" }

func resolveURL(base, path string) string { return path }
