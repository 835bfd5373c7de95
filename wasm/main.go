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
	"time"

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
	var renders int
	var rendering time.Duration
	for ok := true; ok; ok = renderer.EventWait() {
		start := time.Now()
		if err := renderer.Render(buildEnv.RunBuild(root)); err != nil {
			log.Fatalf("gota: render: %v", err)
		}
		// Render statistics for the benchmarks: the render runs on the
		// same thread as the serial I/O.
		renders++
		rendering += time.Since(start)
		js.Global().Set("gotaRenders", renders)
		js.Global().Set("gotaRenderMS", rendering.Milliseconds())
		if first {
			// Tells index.html (and the browser tests) that the page is live.
			js.Global().Get("document").Get("documentElement").Call("setAttribute", "data-gota-ready", "1")
			first = false
		}
	}
}
