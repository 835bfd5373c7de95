// Package shareddata locates the shared real ESP32 test files, which live
// outside the repository in ../shared/testdata/esp32 and are never copied in.
package shareddata

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/gota-dev/gota/internal/testenv"
)

// Dir returns the directory holding the shared ESP32 test vectors, or
// skips the test when it is missing (fails it on CI, see testenv).
// GOTA_TESTDATA overrides the location.
func Dir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("GOTA_TESTDATA"); d != "" {
		return d
	}
	root, err := moduleRoot()
	if err != nil {
		testenv.Missing(t, "shared test data: %v", err)
	}
	d := filepath.Join(root, "..", "shared", "testdata", "esp32")
	if _, err := os.Stat(filepath.Join(d, "expected.jsonl")); err != nil {
		testenv.Missing(t, "shared ESP32 test data not found at %s (set GOTA_TESTDATA): %v", d, err)
	}
	return d
}

// File returns the contents of a named file from Dir.
func File(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(Dir(t), name))
	if err != nil {
		t.Fatalf("shared test data: %v", err)
	}
	return b
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", os.ErrNotExist
		}
		dir = parent
	}
}
