package partition

import (
	"fmt"
	"strconv"
	"strings"
)

// IDFVersion is an ESP-IDF release. The CSV rules of gen_esp32part.py
// changed between releases; every rule that did names the first release
// that has it (read from components/partition_table/gen_esp32part.py at
// each tag):
//
//	v5.1.4  data subtype "littlefs" (0x83) (v5.1.3 does not know it)
//	v5.2    flag "readonly" (bit 1); otadata and coredump cannot be
//	        read-only (format version 1.3)
//	v5.3    app sizes aligned to 4 KiB without secure boot (before, only
//	        --secure asked for it, which gota does not offer)
//	v5.4    types "bootloader" (2) and "partition_table" (3), each with
//	        subtype "ota" (1), 4 KiB offset alignment
//	v5.5    subtypes "primary"/"recovery" of those types, app subtypes
//	        "tee_0"/"tee_1" and data subtype "tee_ota" (one, 0x2000 bytes),
//	        read/write NVS of at least 0x3000 bytes (format version 1.5)
//
// The second-stage bootloader never reads the CSV rules; the virtual
// device's tools follow IDFv513, the version NodeMCU dev-esp32 pins.
type IDFVersion struct{ Major, Minor, Patch int }

// Versions with rules of their own.
var (
	IDFv513 = IDFVersion{5, 1, 3}
	IDFv514 = IDFVersion{5, 1, 4}
	IDFv52  = IDFVersion{5, 2, 0}
	IDFv53  = IDFVersion{5, 3, 0}
	IDFv54  = IDFVersion{5, 4, 0}
	IDFv55  = IDFVersion{5, 5, 0}
	// IDFNewest is the newest release whose rules this package knows:
	// the default.
	IDFNewest = IDFv55
)

func (v IDFVersion) String() string {
	if v.Patch == 0 {
		return fmt.Sprintf("v%d.%d", v.Major, v.Minor)
	}
	return fmt.Sprintf("v%d.%d.%d", v.Major, v.Minor, v.Patch)
}

// AtLeast reports whether v is o or later.
func (v IDFVersion) AtLeast(o IDFVersion) bool {
	if v.Major != o.Major {
		return v.Major > o.Major
	}
	if v.Minor != o.Minor {
		return v.Minor > o.Minor
	}
	return v.Patch >= o.Patch
}

func (v IDFVersion) orNewest() IDFVersion {
	if v == (IDFVersion{}) {
		return IDFNewest
	}
	return v
}

// ParseIDFVersion reads "v5.1.3", "5.2" or "v5.5.1". It refuses versions
// before v5.1.3 and after the newest minor release it knows, whose rules
// it cannot vouch for.
func ParseIDFVersion(s string) (IDFVersion, error) {
	t := strings.TrimPrefix(strings.TrimSpace(s), "v")
	parts := strings.Split(t, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return IDFVersion{}, fmt.Errorf("ESP-IDF version %q: want vMAJOR.MINOR[.PATCH], e.g. v5.1.3", s)
	}
	var n [3]int
	for i, p := range parts {
		x, err := strconv.Atoi(p)
		if err != nil || x < 0 {
			return IDFVersion{}, fmt.Errorf("ESP-IDF version %q: %q is not a number", s, p)
		}
		n[i] = x
	}
	v := IDFVersion{n[0], n[1], n[2]}
	if !v.AtLeast(IDFv513) || v.Major > IDFNewest.Major || v.Major == IDFNewest.Major && v.Minor > IDFNewest.Minor {
		return IDFVersion{}, fmt.Errorf("ESP-IDF version %s: gota knows gen_esp32part.py's rules from %s to %s.x", v, IDFv513, IDFNewest)
	}
	return v, nil
}

// Types added in v5.4.
const (
	TypeBootloader     Type = 0x02
	TypePartitionTable Type = 0x03
)

// SubtypeTEEOTA is data/tee_ota (v5.5).
const SubtypeTEEOTA uint8 = 0x90

// nvsRWMinSize is NVS_RW_MIN_PARTITION_SIZE (v5.5).
const nvsRWMinSize = 0x3000

func typeNamesFor(v IDFVersion) []keyword {
	k := []keyword{{"app", 0x00}, {"data", 0x01}}
	if v.AtLeast(IDFv54) {
		k = []keyword{{"bootloader", 0x02}, {"partition_table", 0x03}, {"app", 0x00}, {"data", 0x01}}
	}
	return k
}

// subtypeNamesFor returns the SUBTYPES keywords of type t in the
// script's dict order.
func subtypeNamesFor(t Type, v IDFVersion) []keyword {
	switch t {
	case TypeApp:
		k := []keyword{{"factory", 0x00}, {"test", 0x20}}
		for n := 0; n < 16; n++ {
			k = append(k, keyword{fmt.Sprintf("ota_%d", n), int64(SubtypeOTA0) + int64(n)})
		}
		if v.AtLeast(IDFv55) {
			k = append(k, keyword{"tee_0", 0x30}, keyword{"tee_1", 0x31})
		}
		return k
	case TypeData:
		k := []keyword{
			{"ota", 0x00}, {"phy", 0x01}, {"nvs", 0x02}, {"coredump", 0x03},
			{"nvs_keys", 0x04}, {"efuse", 0x05}, {"undefined", 0x06},
			{"esphttpd", 0x80}, {"fat", 0x81}, {"spiffs", 0x82},
		}
		if v.AtLeast(IDFv514) {
			k = append(k, keyword{"littlefs", 0x83})
		}
		if v.AtLeast(IDFv55) {
			k = append(k, keyword{"tee_ota", 0x90})
		}
		return k
	case TypeBootloader:
		switch {
		case v.AtLeast(IDFv55):
			return []keyword{{"primary", 0x00}, {"ota", 0x01}, {"recovery", 0x02}}
		case v.AtLeast(IDFv54):
			return []keyword{{"ota", 0x01}}
		}
	case TypePartitionTable:
		switch {
		case v.AtLeast(IDFv55):
			return []keyword{{"primary", 0x00}, {"ota", 0x01}}
		case v.AtLeast(IDFv54):
			return []keyword{{"ota", 0x01}}
		}
	}
	return nil
}

type flagName struct {
	name string
	bit  uint32
}

func flagNamesFor(v IDFVersion) []flagName {
	if v.AtLeast(IDFv52) {
		return []flagName{{"encrypted", FlagEncrypted}, {"readonly", FlagReadonly}}
	}
	return []flagName{{"encrypted", FlagEncrypted}}
}

// offsetAlign is get_alignment_offset_for_type: 64 KiB for apps, 4 KiB
// for the rest (bootloader and partition_table entries from v5.4).
func offsetAlign(t int64) int64 {
	if t == int64(TypeApp) {
		return 0x10000
	}
	return 0x1000
}

// appSizeAlign is get_alignment_size_for_type for an app without secure
// boot: the minimum erase size from v5.3; before, none.
func appSizeAlign(v IDFVersion) int64 {
	if v.AtLeast(IDFv53) {
		return 0x1000
	}
	return 1
}
