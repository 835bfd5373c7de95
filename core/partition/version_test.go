package partition

import (
	"errors"
	"strings"
	"testing"
)

// TestCSVRulesByVersion checks each gen_esp32part.py rule that changed
// between releases against the release that introduced it (see
// IDFVersion): before it, the old behaviour, from it on, the new one.
func TestCSVRulesByVersion(t *testing.T) {
	v513, v514, v52, v53, v54, v55 := IDFv513, IDFv514, IDFv52, IDFv53, IDFv54, IDFv55
	cases := []struct {
		rule string
		csv  string
		v    IDFVersion
		want string // describe() of the table, or "" when refused
		err  error
		msg  string
	}{
		{"littlefs unknown in v5.1.3", "fs,data,littlefs,,64K\n", v513, "", ErrSyntax,
			"Error at line 1: Value 'littlefs' is not valid. Known keywords: ota, phy, nvs, coredump, nvs_keys, efuse, undefined, esphttpd, fat, spiffs"},
		{"littlefs from v5.1.4", "fs,data,littlefs,,64K\n", v514, "fs 1 131 0x9000 0x10000 0", nil, ""},
		{"readonly unknown in v5.1.3", "n,data,nvs,,16K,readonly\n", v513, "", ErrFlags,
			"Error at line 1: CSV flag column contains unknown flag 'readonly'"},
		{"readonly from v5.2", "n,data,nvs,,16K,readonly\n", v52, "n 1 2 0x9000 0x4000 2", nil, ""},
		{"readonly otadata refused from v5.2", "otadata,data,ota,,8K,readonly\n", v52, "", ErrFlags,
			"'otadata' partition of type 1 and subtype 0 is always read-write and cannot be read-only"},
		{"app size free before v5.3", "a,app,factory,,0x10800\n", v52, "a 0 0 0x10000 0x10800 0", nil, ""},
		{"app size 4 KiB from v5.3", "a,app,factory,,0x10800\n", v53, "", ErrAlign,
			"Error at line 1: Partition a invalid: Size 0x10800 is not aligned to 0x1000"},
		{"bootloader type unknown before v5.4", "b,bootloader,ota,,4K\n", v53, "", ErrSyntax,
			"Value 'bootloader' is not valid. Known keywords: app, data"},
		{"bootloader ota from v5.4", "b,bootloader,ota,,4K\n", v54, "b 2 1 0x9000 0x1000 0", nil, ""},
		{"bootloader needs --primary-bootloader-offset from v5.5", "b,bootloader,ota,,4K\n", v55, "", ErrSyntax,
			"Primary bootloader offset is not defined. Please use --primary-bootloader-offset"},
		{"partition_table primary unknown in v5.4", "pt,partition_table,primary,,\n", v54, "", ErrSyntax,
			"Value 'primary' is not valid. Known keywords: ota"},
		{"partition_table primary sits at the table from v5.5", "pt,partition_table,primary,,\nnvs,data,nvs,,16K\n", v55,
			"pt 3 0 0x8000 0x1000 0;nvs 1 2 0x9000 0x4000 0", nil, ""},
		{"small NVS fine before v5.5", "nvs,data,nvs,,8K\n", v54, "nvs 1 2 0x9000 0x2000 0", nil, ""},
		{"small read/write NVS refused from v5.5", "nvs,data,nvs,,8K\n", v55, "", ErrRange,
			"'nvs' partition of type 1 and subtype 2 of this size (0x2000) must be flagged as 'readonly' (the size of read/write NVS has to be at least 0x3000)"},
		{"small readonly NVS fine in v5.5", "nvs,data,nvs,,8K,readonly\n", v55, "nvs 1 2 0x9000 0x2000 2", nil, ""},
		{"tee_0 unknown before v5.5", "t,app,tee_0,,64K\n", v54, "", ErrSyntax, "Value 'tee_0' is not valid"},
		{"tee_0 from v5.5", "t,app,tee_0,,64K\n", v55, "t 0 48 0x10000 0x10000 0", nil, ""},
		{"tee_ota size from v5.5", "to,data,tee_ota,,4K\n", v55, "", ErrOTAData, "TEE otadata partition must have size = 0x2000"},
	}
	for _, c := range cases {
		t.Run(c.rule, func(t *testing.T) {
			tb, err := ParseCSVFor([]byte(c.csv), DefaultTableOffset, c.v)
			if c.want != "" {
				if err != nil {
					t.Fatalf("%s: %v", c.v, err)
				}
				if got := describe(tb); got != c.want {
					t.Errorf("%s: got %s, want %s", c.v, got, c.want)
				}
				return
			}
			if !errors.Is(err, c.err) || !strings.Contains(err.Error(), c.msg) {
				t.Errorf("%s: error %v, want %q wrapping %v", c.v, err, c.msg, c.err)
			}
		})
	}
}

// TestCSVNamesByVersion: a binary converted to CSV uses the names the
// chosen release knows; v5.1.3's script drops the readonly flag (it
// knows only "encrypted") and writes littlefs as a number.
func TestCSVNamesByVersion(t *testing.T) {
	tb := &Table{Partitions: []Partition{
		{Name: "fs", Type: TypeData, Subtype: SubtypeLittleFS, Offset: 0x10000, Size: 0x10000, Flags: FlagReadonly | FlagEncrypted},
	}}
	for _, c := range []struct {
		v    IDFVersion
		want string
	}{
		{IDFv513, "fs,data,131,0x10000,64K,encrypted\n"},
		{IDFv514, "fs,data,littlefs,0x10000,64K,encrypted\n"},
		{IDFv52, "fs,data,littlefs,0x10000,64K,encrypted:readonly\n"},
		{IDFNewest, "fs,data,littlefs,0x10000,64K,encrypted:readonly\n"},
	} {
		if got := string(tb.CSVFor(c.v)); !strings.HasSuffix(got, "\n"+c.want) {
			t.Errorf("%s: %q, want last line %q", c.v, got, c.want)
		}
	}
}

func TestParseIDFVersion(t *testing.T) {
	for _, c := range []struct {
		in   string
		want IDFVersion
		err  string
	}{
		{"v5.1.3", IDFv513, ""},
		{"5.2", IDFv52, ""},
		{"v5.5.4", IDFVersion{5, 5, 4}, ""},
		{"v5.1.2", IDFVersion{}, "gota knows gen_esp32part.py's rules from v5.1.3 to v5.5.x"},
		{"v5.6", IDFVersion{}, "from v5.1.3 to v5.5.x"},
		{"v6.0", IDFVersion{}, "from v5.1.3 to v5.5.x"},
		{"5", IDFVersion{}, "want vMAJOR.MINOR[.PATCH]"},
		{"v5.x", IDFVersion{}, `"x" is not a number`},
	} {
		got, err := ParseIDFVersion(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: %v, want error containing %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q: %v %v, want %v", c.in, got, err, c.want)
		}
	}
	if v523 := (IDFVersion{5, 2, 3}); !v523.AtLeast(IDFv514) || IDFv513.AtLeast(IDFv514) {
		t.Error("AtLeast orders versions wrongly")
	}
}
