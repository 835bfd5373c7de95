package install

import (
	"fmt"
	"strings"

	"github.com/gota-dev/gota/core/espimage"
)

// ChipFamily returns the name ESP Web Tools manifests use for chip in
// "chipFamily" ("ESP32", "ESP32-S3", "ESP32-C3", ...).
func ChipFamily(c espimage.Chip) string {
	n := strings.ToUpper(c.String())
	if len(n) > 5 && strings.HasPrefix(n, "ESP32") {
		return "ESP32-" + n[5:]
	}
	return n
}

// ParseChipFamily maps a chipFamily string to a chip.
func ParseChipFamily(s string) (espimage.Chip, error) {
	c, err := espimage.ParseChip(s)
	if err != nil {
		return 0, fmt.Errorf("chipFamily %q is not a chip this tool knows", s)
	}
	return c, nil
}
