// Command wasm is Gota's browser entry point (GOOS=js GOARCH=wasm only):
// it mounts the Vugu interface of package web and runs its render loop.
package main
