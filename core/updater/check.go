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
)

// CheckOptions relax the host-side checks.
type CheckOptions struct {
	Force          bool // turn every refusal into a warning (the device still verifies)
	AllowDowngrade bool // allow an older semantic version
}

// Plan is the outcome of Check: what Flash will do.
type Plan struct {
	Target   string   // label of the partition the image will be written to ("" when the device does not say)
	Relation string   // "upgrade", "same build", "older", "different build", "same version" (digest unknown), "" when unknown
	Warnings []string // e.g. "version string equals the running build's"
	Size     int      // image length in bytes
	SHA256   [32]byte // digest of the whole image as sent
	Image    *espimage.Image
}

// RefusedError is why Check refuses an image.
type RefusedError struct {
	// Reason is the whole text for a terminal: every refusal, with its
	// CLI hint (e.g. "use --force to flash it again"), joined by "; ".
	Reason string
	// Reasons lists the refusals one by one without CLI hints, for a
	// user interface that offers its own way to override them.
	Reasons []string
}

func (e *RefusedError) Error() string { return e.Reason }

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
	var refusals, reasons []string
	refuse := func(format string, args ...any) {
		refusals = append(refusals, fmt.Sprintf(format, args...))
		reasons = append(reasons, refusals[len(refusals)-1])
	}
	// refuseHint refuses with a hint for the command line that Reasons
	// leave out.
	refuseHint := func(hint, format string, args ...any) {
		r := fmt.Sprintf(format, args...)
		refusals = append(refusals, r+"; "+hint)
		reasons = append(reasons, r)
	}
	done := func() (*Plan, error) {
		if len(refusals) == 0 {
			return plan, nil
		}
		if opt.Force {
			for _, r := range refusals {
				plan.Warnings = append(plan.Warnings, "forced: "+r)
			}
			return plan, nil
		}
		return plan, &RefusedError{Reason: strings.Join(refusals, "; "), Reasons: reasons}
	}

	target := nextUpdate(info)
	if target != nil {
		plan.Target = target.Label
	} else {
		plan.Warnings = append(plan.Warnings, "the device does not say which partition the update goes to; it decides")
	}

	img, err := espimage.Parse(image)
	if err != nil {
		refuse("image: %v", err)
		return done()
	}
	plan.Image = img
	if img.App == nil {
		refuse("image is not an app (no app descriptor; a bootloader?)")
		return done()
	}
	if info.Chip != "" && img.Chip.String() != info.Chip {
		refuse("image is for %s, device is %s", img.Chip, info.Chip)
	}
	if info.Chip != "" && info.ChipRev > 0 {
		if r := int(img.MinChipRevFull); r > info.ChipRev {
			refuse("image needs chip revision v%d.%d or later, device is v%d.%d", r/100, r%100, info.ChipRev/100, info.ChipRev%100)
		}
		if r := int(img.MaxChipRevFull); r != 0 && r != 0xFFFF && info.ChipRev > r {
			refuse("image supports chip revisions up to v%d.%d, device is v%d.%d", r/100, r%100, info.ChipRev/100, info.ChipRev%100)
		}
	}
	if target != nil && target.Size > 0 && len(image) > int(target.Size) {
		refuse("image %s does not fit %s (%s)", human(len(image)), target.Label, human(int(target.Size)))
	}
	// LoadAddresses: the device's esp_ota_end does not check where RAM
	// segments load, its bootloader does; refuse here what would be
	// written, accepted and then never boot.
	vo := espimage.VerifyOptions{RequireApp: true, LoadAddresses: true}
	if target != nil {
		vo.PartitionOffset = target.Offset
	}
	if err := img.Verify(vo); err != nil {
		refuse("image: %v", err)
	}

	running := info.Find(info.Running)
	if running != nil && running.State == "testing" {
		refuse("device is running an unconfirmed build (%s is on trial): accept or roll back first", running.Label)
	}
	if running == nil || running.Name == "" && running.SHA256 == "" {
		return done()
	}
	digest := ""
	if img.HashAppended {
		digest = hex.EncodeToString(img.Digest[:])
	}
	newV, oldV := img.App.Version, running.Version
	switch {
	case digest != "" && strings.EqualFold(digest, running.SHA256):
		plan.Relation = "same build"
		refuseHint("use --force to flash it again", "image is the build already running in %s (sha256 %s…)", running.Label, digest[:16])
	case older(newV, oldV):
		plan.Relation = "older"
		if !opt.AllowDowngrade {
			refuseHint("use --allow-downgrade", "image version %s is older than the running %s", newV, oldV)
		} else {
			plan.Warnings = append(plan.Warnings, fmt.Sprintf("downgrade from %s to %s", oldV, newV))
		}
	case newer(newV, oldV):
		plan.Relation = "upgrade"
	case running.SHA256 == "" && newV == oldV:
		// The device does not report the running build's digest
		// (NodeMCU's otaupgrade.info): the content may or may not differ.
		plan.Relation = "same version"
		if newV != "" {
			plan.Warnings = append(plan.Warnings, fmt.Sprintf("version string %q equals the running build's; the device reports no digest, so whether the content differs is unknown", newV))
		}
	default:
		plan.Relation = "different build"
		if newV == oldV && newV != "" {
			plan.Warnings = append(plan.Warnings, fmt.Sprintf("version string %q equals the running build's; the content differs", newV))
		}
	}
	if running.Name != "" && img.App.ProjectName != running.Name {
		plan.Warnings = append(plan.Warnings, fmt.Sprintf("project %q replaces %q", img.App.ProjectName, running.Name))
	}
	return done()
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
