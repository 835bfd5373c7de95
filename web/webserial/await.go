//go:build js && wasm

package webserial

import (
	"errors"
	"fmt"
	"syscall/js"
)

// Await blocks the calling goroutine until the JavaScript promise p
// settles. It must not run on the goroutine that services a JavaScript
// callback (the promise could never settle). Both callbacks are released
// as soon as either runs, so nothing leaks per call.
func Await(p js.Value) (js.Value, error) {
	type result struct {
		v   js.Value
		err error
	}
	done := make(chan result, 1)
	var onOK, onErr js.Func
	onOK = js.FuncOf(func(this js.Value, args []js.Value) any {
		v := js.Undefined()
		if len(args) > 0 {
			v = args[0]
		}
		done <- result{v: v}
		return nil
	})
	onErr = js.FuncOf(func(this js.Value, args []js.Value) any {
		v := js.Undefined()
		if len(args) > 0 {
			v = args[0]
		}
		done <- result{err: jsError(v)}
		return nil
	})
	p.Call("then", onOK, onErr)
	r := <-done
	onOK.Release()
	onErr.Release()
	return r.v, r.err
}

// jsError turns a rejected promise's reason into a Go error carrying the
// DOMException name ("NetworkError", "NotFoundError", ...) and message.
func jsError(v js.Value) error {
	if v.Type() == js.TypeObject {
		name, msg := v.Get("name"), v.Get("message")
		if name.Type() == js.TypeString && msg.Type() == js.TypeString {
			return &DOMError{Name: name.String(), Message: msg.String()}
		}
	}
	if v.Type() == js.TypeUndefined || v.Type() == js.TypeNull {
		return errors.New("promise rejected without a reason")
	}
	return fmt.Errorf("promise rejected: %s", js.Global().Call("String", v).String())
}

// DOMError is a JavaScript exception (usually a DOMException) raised by
// the browser's serial API.
type DOMError struct {
	Name    string // e.g. "NotFoundError" when the picker was cancelled
	Message string
}

func (e *DOMError) Error() string { return e.Name + ": " + e.Message }
