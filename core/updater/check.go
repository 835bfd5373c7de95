package updater

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/mod/semver"

	"github.com/gota-dev/gota/core/espimage"
	"github.com/gota-dev/gota/protocol"
)

// CheckOptions relax the host-side checks.
type CheckOptions struct {
	Force          bool // turn every refusal into a warning (the device still verifies)
	AllowDowngrade bool // allow an older semantic version
}

// Relation is how an image compares with the running build.
type Relation string

// Relations Check reports ("" when it cannot tell).
const (
	RelationUpgrade   Relation = "upgrade"         // newer semantic version
	RelationSameBuild Relation = "same build"      // identical appended digest
	RelationOlder     Relation = "older"           // older semantic version
	RelationDifferent Relation = "different build" // neither newer nor older; digests differ
	// RelationSameVersion: the same version string, and the device
	// reports no digest (NodeMCU's otaupgrade.info), so whether the
	// content differs is unknown.
	RelationSameVersion Relation = "same version"
)

// Plan is the outcome of Check: what Flash will do.
type Plan struct {
	Target   string   // label of the partition the image will be written to ("" when the device does not say)
	Relation Relation // "" when unknown
	Warnings []string // e.g. "version string equals the running build's"
	Size     int      // image length in bytes
	SHA256   [32]byte // digest of the whole image as sent
	Image    *espimage.Image
}

// RefusalKind says which check refused an image, so that a user interface
// can offer the override that fits (a flag, a button).
type RefusalKind int

// Kinds of refusal.
const (
	RefusedImage     RefusalKind = iota // not an app for this device and slot (CheckOptions.Force overrides)
	RefusedOnTrial                      // the running build waits to be accepted or rolled back (Force overrides)
	RefusedSameBuild                    // the image is the running build (Force overrides)
	RefusedDowngrade                    // older semantic version (AllowDowngrade or Force overrides)
)

// Refusal is one reason Check refuses an image.
type Refusal struct {
	Kind   RefusalKind
	Reason string // e.g. "image is for esp32s2, device is esp32"
}

// RefusedError is why Check refuses an image.
type RefusedError struct {
	Refusals []Refusal
}

// Error joins the reasons with "; ".
func (e *RefusedError) Error() string { return strings.Join(e.Reasons(), "; ") }

// Reasons lists the reasons one by one.
func (e *RefusedError) Reasons() []string {
	r := make([]string, len(e.Refusals))
	for i, f := range e.Refusals {
		r[i] = f.Reason
	}
	return r
}

// Has reports whether one of the refusals is of kind k.
func (e *RefusedError) Has(k RefusalKind) bool {
	for _, f := range e.Refusals {
		if f.Kind == k {
			return true
		}
	}
	return false
}

// Is makes errors.Is(err, ErrRefused) true.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// Check decides, before a byte is sent, whether image may be flashed to
// the device described by info: app image with valid checksum and digest,
// chip and revision, fits the target slot, running build confirmed, and how
// it compares with the running build (same digest refused, older semantic
// version refused unless AllowDowngrade). With Force every refusal becomes
// a warning.
func Check(info *DeviceInfo, image []byte, opt CheckOptions) (*Plan, error) {
	plan := &Plan{Size: len(image), SHA256: sha256.Sum256(image)}
	c := &checker{info: info, plan: plan}
	c.check(image, opt)
	if len(c.refusals) == 0 {
		return plan, nil
	}
	if opt.Force {
		for _, r := range c.refusals {
			plan.Warnings = append(plan.Warnings, "forced: "+r.Reason)
		}
		return plan, nil
	}
	return plan, &RefusedError{Refusals: c.refusals}
}

// checker collects Check's refusals.
type checker struct {
	info     *DeviceInfo
	plan     *Plan
	refusals []Refusal
}

func (c *checker) refuse(k RefusalKind, format string, args ...any) {
	c.refusals = append(c.refusals, Refusal{k, fmt.Sprintf(format, args...)})
}

func (c *checker) warn(format string, args ...any) {
	c.plan.Warnings = append(c.plan.Warnings, fmt.Sprintf(format, args...))
}

// check runs the checks in order; it stops early when the image is not an
// app at all.
func (c *checker) check(image []byte, opt CheckOptions) {
	info, plan := c.info, c.plan
	target := nextUpdate(info)
	if target != nil {
		plan.Target = target.Label
	} else {
		c.warn("the device does not say which partition the update goes to; it decides")
	}

	img, err := espimage.Parse(image)
	if err != nil {
		c.refuse(RefusedImage, "image: %v", err)
		return
	}
	plan.Image = img
	if img.App == nil {
		c.refuse(RefusedImage, "image is not an app (no app descriptor; a bootloader?)")
		return
	}
	if info.Chip != "" && img.Chip.String() != info.Chip {
		c.refuse(RefusedImage, "image is for %s, device is %s", img.Chip, info.Chip)
	}
	if info.Chip != "" && info.ChipRev > 0 {
		if r := int(img.MinChipRevFull); r > info.ChipRev {
			c.refuse(RefusedImage, "image needs chip revision v%d.%d or later, device is v%d.%d", r/100, r%100, info.ChipRev/100, info.ChipRev%100)
		}
		if r := int(img.MaxChipRevFull); r != 0 && r != 0xFFFF && info.ChipRev > r {
			c.refuse(RefusedImage, "image supports chip revisions up to v%d.%d, device is v%d.%d", r/100, r%100, info.ChipRev/100, info.ChipRev%100)
		}
	}
	if target != nil && target.Size > 0 && len(image) > int(target.Size) {
		c.refuse(RefusedImage, "image %s does not fit %s (%s)", human(len(image)), target.Label, human(int(target.Size)))
	}
	// LoadAddresses: the device's esp_ota_end does not check where RAM
	// segments load, its bootloader does; refuse here what would be
	// written, accepted and then never boot.
	vo := espimage.VerifyOptions{RequireApp: true, LoadAddresses: true}
	if target != nil {
		vo.PartitionOffset = target.Offset
	}
	if err := img.Verify(vo); err != nil {
		c.refuse(RefusedImage, "image: %v", err)
	}

	running := info.Find(info.Running)
	if running != nil && running.State == protocol.OTATesting {
		c.refuse(RefusedOnTrial, "device is running an unconfirmed build (%s is on trial): accept or roll back first", running.Label)
	}
	if running == nil || running.Name == "" && running.SHA256 == "" {
		return
	}
	digest := ""
	if img.HashAppended {
		digest = hex.EncodeToString(img.Digest[:])
	}
	newV, oldV := img.App.Version, running.Version
	switch {
	case digest != "" && strings.EqualFold(digest, running.SHA256):
		plan.Relation = RelationSameBuild
		c.refuse(RefusedSameBuild, "image is the build already running in %s (sha256 %s…)", running.Label, digest[:16])
	case older(newV, oldV):
		plan.Relation = RelationOlder
		if !opt.AllowDowngrade {
			c.refuse(RefusedDowngrade, "image version %s is older than the running %s", newV, oldV)
		} else {
			c.warn("downgrade from %s to %s", oldV, newV)
		}
	case newer(newV, oldV):
		plan.Relation = RelationUpgrade
	case running.SHA256 == "" && newV == oldV:
		// The device does not report the running build's digest
		// (NodeMCU's otaupgrade.info): the content may or may not differ.
		plan.Relation = RelationSameVersion
		if newV != "" {
			c.warn("version string %q equals the running build's; the device reports no digest, so whether the content differs is unknown", newV)
		}
	default:
		plan.Relation = RelationDifferent
		if newV == oldV && newV != "" {
			c.warn("version string %q equals the running build's; the content differs", newV)
		}
	}
	if running.Name != "" && img.App.ProjectName != running.Name {
		c.warn("project %q replaces %q", img.App.ProjectName, running.Name)
	}
}

// canonicalVersion returns v as golang.org/x/mod/semver wants it ("v"
// prefix; "1.2" means v1.2.0), or "" when v is not a semantic version
// (a git hash, "37d69ca").
func canonicalVersion(v string) string {
	v = strings.TrimSpace(v)
	if !strings.HasPrefix(v, "v") {
		v = "v" + v
	}
	if !semver.IsValid(v) {
		return ""
	}
	return v
}

func older(newV, oldV string) bool {
	n, o := canonicalVersion(newV), canonicalVersion(oldV)
	return n != "" && o != "" && semver.Compare(n, o) < 0
}

func newer(newV, oldV string) bool {
	n, o := canonicalVersion(newV), canonicalVersion(oldV)
	return n != "" && o != "" && semver.Compare(n, o) > 0
}

// nextUpdate is esp_ota_get_next_update_partition(NULL) on the reported
// table: the OTA slot after the running one, wrapping; the first slot when
// running from factory. Without subtypes (the Lua agent) it guesses only
// when there are exactly two app partitions.
func nextUpdate(info *DeviceInfo) *Partition {
	var slots []*Partition
	unknown := 0
	for i := range info.Partitions {
		p := &info.Partitions[i]
		if p.Subtype >= 0x10 && p.Subtype < 0x20 {
			slots = append(slots, p)
		}
		if p.Subtype < 0 {
			unknown++
		}
	}
	if len(slots) > 0 {
		sort.SliceStable(slots, func(i, j int) bool { return slots[i].Subtype < slots[j].Subtype })
		for i, p := range slots {
			if p.Label == info.Running {
				return slots[(i+1)%len(slots)]
			}
		}
		return slots[0]
	}
	if unknown == 2 && len(info.Partitions) == 2 {
		for i := range info.Partitions {
			if info.Partitions[i].Label != info.Running {
				return &info.Partitions[i]
			}
		}
	}
	return nil
}

// human formats a size as "1.25 MiB" or "316.5 KiB".
func human(n int) string {
	f, unit := float64(n)/(1<<20), "MiB"
	if n < 1<<20 {
		f, unit = float64(n)/(1<<10), "KiB"
	}
	s := strconv.FormatFloat(f, 'f', 2, 64)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s + " " + unit
}
