package main

import (
	"errors"
	"testing"

	"github.com/gota-dev/gota/core/updater"
)

func TestWordRefusal(t *testing.T) {
	for _, tc := range []struct {
		refusals []updater.Refusal
		want     string
	}{
		{[]updater.Refusal{{Kind: updater.RefusedSameBuild, Reason: "image is the build already running in app0"}},
			"image is the build already running in app0; use --force to flash it again"},
		{[]updater.Refusal{{Kind: updater.RefusedDowngrade, Reason: "image version v0.9 is older than the running 1.0.0"}},
			"image version v0.9 is older than the running 1.0.0; use --allow-downgrade"},
		{[]updater.Refusal{{Kind: updater.RefusedImage, Reason: "image is for esp32s2, device is esp32"}, {Kind: updater.RefusedOnTrial, Reason: "on trial"}},
			"image is for esp32s2, device is esp32; on trial"},
	} {
		err := wordRefusal(&updater.RefusedError{Refusals: tc.refusals})
		if got := err.Error(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
		if !errors.Is(err, updater.ErrRefused) {
			t.Errorf("%v: not ErrRefused", err)
		}
	}
	if err := errors.New("other"); wordRefusal(err) != err {
		t.Error("wordRefusal changed an error that is not a refusal")
	}
}
