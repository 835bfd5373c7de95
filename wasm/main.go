//go:build js && wasm

// Command wasm is Gota's browser entry point: it mounts the Vugu
// interface of package web on #app and runs its render loop. The update
// session inside is the same core/updater code the CLI runs, over Web
// Serial (package webserial) instead of a host serial port.
//
// Build: GOOS=js GOARCH=wasm go build -o dist/main.wasm ./wasm
package main

import (
	"log"
	"syscall/js"

	"github.com/gota-dev/gota/web"
	"github.com/vugu/vugu"
	"github.com/vugu/vugu/domrender"
)

func main() {
	renderer, err := domrender.New("#app")
	if err != nil {
		log.Fatalf("gota: mount the interface: %v", err)
	}
	defer renderer.Release()

	buildEnv, err := vugu.NewBuildEnv(renderer.EventEnv())
	if err != nil {
		log.Fatalf("gota: %v", err)
	}
	root := &web.Root{}
	first := true
	for ok := true; ok; ok = renderer.EventWait() {
		if err := renderer.Render(buildEnv.RunBuild(root)); err != nil {
			log.Fatalf("gota: render: %v", err)
		}
		if first {
			// Tells index.html (and the browser tests) that the page is live.
			js.Global().Get("document").Get("documentElement").Call("setAttribute", "data-gota-ready", "1")
			first = false
		}
	}
}
