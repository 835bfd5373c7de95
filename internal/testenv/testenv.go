// Package testenv decides what a test does when something it needs from
// outside Go (shared test files, Chromium, Lua, Node) is missing: on a
// developer's machine it skips, on CI (CI=true) the run fails, so that a
// CI run never passes by skipping what it was meant to check.
package testenv

import (
	"fmt"
	"os"
	"testing"
)

// OnCI reports whether the tests run on CI (the environment has CI=true,
// as GitHub Actions, GitLab CI and .ci/run set it).
func OnCI() bool { return os.Getenv("CI") == "true" }

// Missing ends tb for want of something outside Go, described by format
// and args: it skips, or on CI fails.
func Missing(tb testing.TB, format string, args ...any) {
	tb.Helper()
	msg := fmt.Sprintf(format, args...)
	if OnCI() {
		tb.Fatalf("%s (CI=true: a missing requirement fails the run)", msg)
		return
	}
	tb.Skip(msg)
}
