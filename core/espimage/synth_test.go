package espimage

import (
	"bytes"
	"testing"
)

func TestSynth(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    SynthOptions
	}{
		{"small patterned", SynthOptions{Version: "1.0.0"}},
		{"1 MiB random", SynthOptions{Version: "random-1", ProjectName: "gota-bench", Size: 1 << 20, Seed: 1}},
		{"64 KiB patterned", SynthOptions{Version: "v2", Size: 64 << 10}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Synth(tc.o)
			if err != nil {
				t.Fatal(err)
			}
			if tc.o.Size > 0 && (len(b) > tc.o.Size || len(b) < tc.o.Size-16) {
				t.Errorf("%d bytes, want about %d", len(b), tc.o.Size)
			}
			img, err := Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			if err := img.Verify(VerifyOptions{RequireApp: true, PartitionOffset: 0x10000, LoadAddresses: true}); err != nil {
				t.Errorf("not a valid app: %v", err)
			}
			if img.App.Version != tc.o.Version || img.Chip != ChipESP32 || !img.HashAppended {
				t.Errorf("app %+v chip %v hash %v", img.App, img.Chip, img.HashAppended)
			}
			again, _ := Synth(tc.o)
			if !bytes.Equal(b, again) {
				t.Error("the same options built another image")
			}
		})
	}
	if _, err := Synth(SynthOptions{Version: "x", Size: 100}); err == nil {
		t.Error("a 100-byte image was built")
	}
}
