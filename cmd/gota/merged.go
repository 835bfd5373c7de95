package main

import (
	"fmt"
	"io"

	"github.com/gota-dev/gota/core/install"
)

// appOfMerged returns the app part when image is a merged image (an OTA
// update can only replace the app), saying so on w; other images come
// back unchanged.
func appOfMerged(w io.Writer, name string, image []byte) ([]byte, error) {
	p, err := install.SplitMerged(name, image)
	if err != nil {
		return image, nil
	}
	a := p.App()
	if a == nil {
		return nil, fmt.Errorf("%s is a merged image without a valid app part; use gota install to write it through the ROM loader", name)
	}
	fmt.Fprintf(w, "%s is a merged image: flashing its app part (%s at 0x%x in the image, %d bytes) over the air; bootloader and partition table stay as they are\n",
		name, a.Label, a.Offset, len(a.Data))
	return a.Data, nil
}

// mergedPart is one part of a merged image in image info --json.
type mergedPart struct {
	Offset uint32 `json:"offset"`
	Size   int    `json:"size"`
	Kind   string `json:"kind"`
	Label  string `json:"label,omitempty"`
	What   string `json:"what"`
	Error  string `json:"error,omitempty"`
}

// inspectMerged describes a merged image; ok is false when b is not one.
func inspectMerged(rec *imageRecord, b []byte) (*install.Plan, bool) {
	p, err := install.SplitMerged(rec.File, b)
	if err != nil {
		return nil, false
	}
	rec.Valid = true
	for _, pt := range p.Parts {
		mp := mergedPart{Offset: pt.Offset, Size: len(pt.Data), Kind: pt.Kind.String(), Label: pt.Label, What: pt.Describe()}
		if pt.Err != nil {
			mp.Error = pt.Err.Error()
		}
		rec.Merged = append(rec.Merged, mp)
	}
	if c, ok := p.Chip(); ok {
		rec.MergedChip = c.String()
		if err := p.Check(install.Target{Chip: c}); err != nil {
			rec.Valid = false
			rec.Error = err.Error()
		}
	}
	return p, true
}

func printMerged(w io.Writer, rec imageRecord) {
	fmt.Fprintf(w, "%s: merged %s image (written at flash offset 0x0)\n", rec.File, rec.MergedChip)
	for _, m := range rec.Merged {
		label := m.Label
		if label == "" {
			label = "-"
		}
		fmt.Fprintf(w, "  0x%06x  %-10s %8d bytes  %s\n", m.Offset, label, m.Size, m.What)
	}
	if rec.Valid {
		fmt.Fprintf(w, "  verdict     valid\n\n")
	} else {
		fmt.Fprintf(w, "  verdict     INVALID: %s\n\n", rec.Error)
	}
}
