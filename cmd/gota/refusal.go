package main

import (
	"strings"

	"github.com/gota-dev/gota/core/updater"
)

// refusalHints names the flag that overrides each kind of refusal.
var refusalHints = map[updater.RefusalKind]string{
	updater.RefusedSameBuild: "use --force to flash it again",
	updater.RefusedDowngrade: "use --allow-downgrade",
}

// cliRefusal words Check's refusals for the command line: each reason
// with the flag that overrides it. It unwraps to the *RefusedError.
type cliRefusal struct{ *updater.RefusedError }

func (e cliRefusal) Error() string {
	parts := make([]string, len(e.Refusals))
	for i, r := range e.Refusals {
		parts[i] = r.Reason
		if h, ok := refusalHints[r.Kind]; ok {
			parts[i] += "; " + h
		}
	}
	return strings.Join(parts, "; ")
}

func (e cliRefusal) Unwrap() error { return e.RefusedError }

// wordRefusal returns err, as Check or Flash returned it, with refusals
// worded for the command line.
func wordRefusal(err error) error {
	if r, ok := err.(*updater.RefusedError); ok {
		return cliRefusal{r}
	}
	return err
}
