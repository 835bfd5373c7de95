//go:build !(js && wasm)

package main

import (
	"fmt"
	"os"
)

// main explains how to build the real entry point, so that
// `go build ./...` on the host still succeeds.
func main() {
	fmt.Fprintln(os.Stderr, "wasm: build with GOOS=js GOARCH=wasm go build -o dist/main.wasm ./wasm")
	os.Exit(2)
}
