package web

import (
	"fmt"

	"github.com/gota-dev/gota/protocol"
)

// ShortHex abbreviates a digest for tables; the title attribute holds all of it.
func ShortHex(s string) string {
	if len(s) > 16 {
		return s[:16] + "…"
	}
	return s
}

// Bytes formats a size for people.
func Bytes(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// StateText names a partition state for the badge.
func StateText(state protocol.OTAState) string {
	switch state {
	case protocol.OTANone:
		return "no entry"
	case protocol.OTATesting:
		return "testing (on trial)"
	}
	return string(state)
}
