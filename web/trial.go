package web

import (
	"strings"

	"github.com/gota-dev/gota/core/updater"
)

// What the page offers for the running build: accept (on trial), roll
// back (whenever another slot holds a bootable build), and how it names
// builds when the device reports no digest (NodeMCU's agent).

// Previous returns the partition a rollback would boot: another OTA slot
// holding a build (its descriptor or length is known) whose otadata entry
// the bootloader would use (esp_ota_check_rollback_is_possible: an entry
// that is neither invalid nor aborted). Digests play no part: NodeMCU's
// agent reports none.
func (c *Root) Previous() *updater.Partition {
	if c.Info == nil {
		return nil
	}
	for i := range c.Info.Partitions {
		p := &c.Info.Partitions[i]
		if p.Label == c.Info.Running || p.ImageLen == 0 && p.Version == "" && p.Name == "" {
			continue
		}
		switch p.State {
		case "", "invalid", "aborted":
			continue
		}
		return p
	}
	return nil
}

// Final reports whether the running build stays without an accept: the
// bootloader has no rollback support (state undefined), yet another build
// could be rolled back to.
func (c *Root) Final() bool {
	r := c.Running()
	return r != nil && r.State == "undefined" && c.Previous() != nil
}

// describeBuild names a slot's build by what is known of it: "app1
// (1.2.0, 3f2a…)", without empty fields.
func describeBuild(p *updater.Partition) string {
	var parts []string
	for _, s := range []string{p.Version, ShortHex(p.SHA256)} {
		if s != "" {
			parts = append(parts, s)
		}
	}
	if len(parts) == 0 {
		return p.Label
	}
	return p.Label + " (" + strings.Join(parts, ", ") + ")"
}

// AcceptText labels the accept button.
func (c *Root) AcceptText() string {
	r := c.Running()
	if r == nil {
		return "Accept"
	}
	return "Accept: keep " + describeBuild(r) + " for good"
}

// RollbackText labels the rollback button.
func (c *Root) RollbackText() string {
	p := c.Previous()
	if p == nil {
		return "Roll back (no other build to return to)"
	}
	return "Roll back: mark the running build invalid and reboot into " + describeBuild(p)
}

// DigestText is a digest for a table cell: "unknown" when the device
// does not report it.
func DigestText(s string) string {
	if s == "" {
		return "unknown"
	}
	return ShortHex(s)
}
