// Package browsertest drives Gota's web flasher in headless Chromium
// (chromedp): the page built for GOOS=js GOARCH=wasm, served in-process
// with a virtual ESP32 on the same origin, connected through the
// WebSocket-backed SerialPort so that the WebAssembly code takes the same
// path as with a real port. Screenshots of each stage go to
// $GOTA_SCREENSHOTS (default $TMPDIR/gota-screenshots); the tests print
// the folder.
package browsertest
