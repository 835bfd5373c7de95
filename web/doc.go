// Package web is Gota's browser interface, written with Vugu: connect a
// device over Web Serial (or the virtual ESP32 that `gota serve` runs),
// show its partitions, check and flash an image, accept or roll back a
// build on trial, and show the device's log.
//
// The .vugu files are compiled to Go by `go tool vugugen -s -skip-go-mod
// -skip-main web`; the generated file is 0_components_gen.go. The
// component logic lives in plain Go files so that it builds (and can be
// vetted) on the host too; browser-only calls are in platform_js.go.
package web
