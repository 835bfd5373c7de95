package install

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/gota-dev/gota/core/espimage"
)

// Manifest is an ESP Web Tools manifest.json: a firmware with one build
// per chip family, each a list of parts (path relative to the manifest,
// flash offset).
type Manifest struct {
	Name    string  `json:"name"`
	Version string  `json:"version"`
	Builds  []Build `json:"builds"`
	// NewInstallPromptErase asks the user whether to erase on a new install.
	NewInstallPromptErase bool `json:"new_install_prompt_erase"`
}

// Build is the firmware for one chip family.
type Build struct {
	ChipFamily string         `json:"chipFamily"`
	Parts      []ManifestPart `json:"parts"`
}

// ManifestPart is one file of a build.
type ManifestPart struct {
	Path   string     `json:"path"`
	Offset jsonOffset `json:"offset"`
}

// jsonOffset accepts a number (as ESP Web Tools documents) or a string
// such as "0x1000" (as some hand-written manifests have).
type jsonOffset uint32

func (o *jsonOffset) UnmarshalJSON(b []byte) error {
	s := string(bytes.TrimSpace(b))
	if strings.HasPrefix(s, `"`) {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	}
	n, err := ParseOffset(s)
	if err != nil {
		return err
	}
	*o = jsonOffset(n)
	return nil
}

// LooksLikeManifest reports whether b is JSON text rather than a binary.
func LooksLikeManifest(b []byte) bool {
	b = bytes.TrimLeft(b, " \t\r\n\ufeff")
	return len(b) > 0 && b[0] == '{'
}

// ParseManifest decodes and checks a manifest: it needs builds, each with
// a chipFamily and parts with a path.
func ParseManifest(b []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if len(m.Builds) == 0 {
		return nil, fmt.Errorf("manifest: \"builds\" is missing or empty")
	}
	for i, bd := range m.Builds {
		if bd.ChipFamily == "" {
			return nil, fmt.Errorf("manifest: builds[%d]: \"chipFamily\" is missing", i)
		}
		if len(bd.Parts) == 0 {
			return nil, fmt.Errorf("manifest: builds[%d] (%s): \"parts\" is missing or empty", i, bd.ChipFamily)
		}
		for j, p := range bd.Parts {
			if p.Path == "" {
				return nil, fmt.Errorf("manifest: builds[%d] (%s): parts[%d]: \"path\" is missing", i, bd.ChipFamily, j)
			}
		}
	}
	return &m, nil
}

// Build returns the build for chip, or an error wrapping ErrNoBuild that
// lists the families the manifest has.
func (m *Manifest) Build(chip espimage.Chip) (*Build, error) {
	var have []string
	for i, bd := range m.Builds {
		if c, err := ParseChipFamily(bd.ChipFamily); err == nil && c == chip {
			return &m.Builds[i], nil
		}
		have = append(have, bd.ChipFamily)
	}
	return nil, fmt.Errorf("manifest %q has builds for %s, none for the %s on the port: %w",
		m.Name, strings.Join(have, ", "), ChipFamily(chip), ErrNoBuild)
}

// Plan fetches the build's parts with load (a file read in the CLI, a
// fetch relative to the manifest URL in the browser) and plans them.
func (b *Build) Plan(load func(path string) ([]byte, error)) (*Plan, error) {
	var parts []Part
	for _, mp := range b.Parts {
		data, err := load(mp.Path)
		if err != nil {
			return nil, fmt.Errorf("manifest part %s: %w", mp.Path, err)
		}
		parts = append(parts, Classify(mp.Path, uint32(mp.Offset), data))
	}
	return FromParts("manifest", parts), nil
}
