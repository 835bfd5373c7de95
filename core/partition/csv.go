package partition

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"unicode/utf8"
)

// keyword is one name gen_esp32part.py knows for a number; slices keep the
// script's dict order, which its messages and its CSV output follow.
type keyword struct {
	name  string
	value int64
}

func lookupKeyword(v int64, keywords []keyword) string {
	for _, k := range keywords {
		if k.value == v {
			return k.name
		}
	}
	return fmt.Sprintf("%d", v)
}

// CSV writes the table as gen_esp32part.py writes it when converting a
// binary to CSV: two comment lines, then name,type,subtype,offset,size,flags
// with no spaces; offsets in hex, sizes in M or K when they divide evenly,
// names for known types and subtypes, decimal numbers for others. Flag bits
// without a name are not written, as in the script. Names are those of
// IDFNewest; CSVFor picks the release.
func (t *Table) CSV() []byte { return t.CSVFor(IDFNewest) }

// CSVFor is CSV with the keywords gen_esp32part.py of release v knows.
func (t *Table) CSVFor(v IDFVersion) []byte {
	var b strings.Builder
	b.WriteString("# ESP-IDF Partition Table\n")
	b.WriteString("# Name, Type, SubType, Offset, Size, Flags\n")
	for _, p := range t.Partitions {
		b.WriteString(strings.Join([]string{
			p.Name,
			p.TypeNameFor(v),
			p.SubtypeNameFor(v),
			fmt.Sprintf("0x%x", p.Offset),
			FormatSize(p.Size),
			strings.Join(p.FlagNamesFor(v), ":"),
		}, ","))
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

// FormatSize writes a size as gen_esp32part.py does: "1M", "20K", else "0x..".
func FormatSize(n uint32) string {
	switch {
	case n%0x100000 == 0:
		return fmt.Sprintf("%dM", n/0x100000)
	case n%0x400 == 0:
		return fmt.Sprintf("%dK", n/0x400)
	}
	return fmt.Sprintf("0x%x", n)
}

// row is a partition as parsed from CSV, before range checks: the script
// computes with unbounded integers and only fails (with a traceback) when
// packing, so keep wide values until then.
type row struct {
	line    int
	name    string
	typ     int64
	subtype int64
	offset  int64
	hasOff  bool
	size    int64
	flags   uint32
	primary bool // v5.5 bootloader/partition_table "primary"
}

// ParseCSV parses CSV with the rules of IDFNewest's gen_esp32part.py;
// tableOffset is where the table sits (DefaultTableOffset normally). Errors
// name the line and rule. ParseCSVFor picks the release.
//
// It also runs the script's verification (on by default in the script), so
// a returned table is ready to Encode. Differences from the script: no
// environment variable expansion (a line starting with $NAME is refused as
// "unknown variable", as the script does when NAME is unset); a leading
// UTF-8 BOM is ignored; values that do not fit the binary fields, labels
// longer than 16 bytes and input that is not UTF-8 are refused where the
// script would crash or truncate; its warnings (names that look like types
// or subtypes, unknown flags in binaries) are not reported.
func ParseCSV(csv []byte, tableOffset uint32) (*Table, error) {
	return ParseCSVFor(csv, tableOffset, IDFNewest)
}

// ParseCSVFor is ParseCSV with the rules of release v (see IDFVersion).
func ParseCSVFor(csv []byte, tableOffset uint32, v IDFVersion) (*Table, error) {
	v = v.orNewest()
	t, lines, err := parseCSV(csv, tableOffset, v)
	if err != nil {
		return nil, err
	}
	if err := t.verify(tableOffset, v, "Error at ", func(i int) string { return fmt.Sprintf("line %d", lines[i]) }); err != nil {
		return nil, err
	}
	return t, nil
}

// ParseCSVUnverified is ParseCSV without the verification step, like
// gen_esp32part.py --no-verify: offsets are still placed and overlaps in
// file order, syntax and field ranges still refused.
func ParseCSVUnverified(csv []byte, tableOffset uint32) (*Table, error) {
	return ParseCSVUnverifiedFor(csv, tableOffset, IDFNewest)
}

// ParseCSVUnverifiedFor is ParseCSVUnverified with the rules of release v.
func ParseCSVUnverifiedFor(csv []byte, tableOffset uint32, v IDFVersion) (*Table, error) {
	t, _, err := parseCSV(csv, tableOffset, v.orNewest())
	return t, err
}

// parseCSV is the script's from_csv; it returns each partition's line number.
func parseCSV(csv []byte, tableOffset uint32, v IDFVersion) (*Table, []int, error) {
	if !utf8.Valid(csv) {
		return nil, nil, errorf(ErrSyntax, "CSV input is not valid UTF-8")
	}
	text := strings.TrimPrefix(string(csv), "\uFEFF")
	var rows []row
	for i, line := range splitLines(text) {
		lineNo := i + 1
		if name, ok := leadingVariable(line); ok {
			return nil, nil, errorf(ErrSyntax, "Error at line %d: unknown variable '%s'", lineNo, name)
		}
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		r, err := parseRow(line, v, tableOffset)
		if err != nil {
			return nil, nil, &ruleError{rule: ruleOf(err), msg: fmt.Sprintf("Error at line %d: %v", lineNo, err)}
		}
		r.line = lineNo
		rows = append(rows, r)
	}

	// Fix up missing offsets and negative sizes, as from_csv does.
	lastEnd := int64(tableOffset) + TableSectorSize
	for i := range rows {
		e := &rows[i]
		if e.primary {
			continue // v5.5: primary bootloader and table entries sit where they sit
		}
		if e.hasOff && e.offset < lastEnd {
			if i == 0 || e.sameAs(rows[0]) {
				return nil, nil, errorf(ErrOverlap, "CSV Error at line %d: Partitions overlap. Partition sets offset 0x%x. "+
					"But partition table occupies the whole sector 0x%x. Use a free offset 0x%x or higher.",
					e.line, e.offset, tableOffset, lastEnd)
			}
			return nil, nil, errorf(ErrOverlap, "CSV Error at line %d: Partitions overlap. Partition sets offset 0x%x. Previous partition ends 0x%x",
				e.line, e.offset, lastEnd)
		}
		if !e.hasOff {
			pad := offsetAlign(e.typ)
			if lastEnd%pad != 0 {
				lastEnd += pad - lastEnd%pad
			}
			e.offset, e.hasOff = lastEnd, true
		}
		if e.size < 0 {
			e.size = -e.size - e.offset
		}
		lastEnd = e.offset + e.size
		if lastEnd > math.MaxInt64/2 {
			return nil, nil, errorf(ErrRange, "Error at line %d: partition end 0x%x out of range", e.line, lastEnd)
		}
	}

	// Range checks the script leaves to struct.pack.
	t := &Table{}
	for _, e := range rows {
		for _, f := range []struct {
			what     string
			v, limit int64
		}{{"type", e.typ, 0xFF}, {"subtype", e.subtype, 0xFF}, {"offset", e.offset, math.MaxUint32}, {"size", e.size, math.MaxUint32}} {
			if f.v < 0 || f.v > f.limit {
				return nil, nil, errorf(ErrRange, "Error at line %d: %s %d (0x%x) does not fit in 0..0x%x", e.line, f.what, f.v, f.v, f.limit)
			}
		}
		t.Partitions = append(t.Partitions, Partition{
			Name: e.name, Type: Type(e.typ), Subtype: uint8(e.subtype),
			Offset: uint32(e.offset), Size: uint32(e.size), Flags: e.flags,
		})
	}
	lines := make([]int, len(rows))
	for i, e := range rows {
		lines[i] = e.line
	}
	return t, lines, nil
}

func (r row) sameAs(o row) bool {
	// PartitionDefinition.__eq__: name, type, subtype, offset, size.
	return r.name == o.name && r.typ == o.typ && r.subtype == o.subtype &&
		r.hasOff == o.hasOff && r.offset == o.offset && r.size == o.size
}

func ruleOf(err error) error {
	if re, ok := err.(*ruleError); ok {
		return re.rule
	}
	return ErrSyntax
}

// splitLines splits like Python's str.splitlines.
func splitLines(s string) []string {
	var lines []string
	for len(s) > 0 {
		i := strings.IndexFunc(s, isLineBreak)
		if i < 0 {
			lines = append(lines, s)
			break
		}
		lines = append(lines, s[:i])
		r, n := utf8.DecodeRuneInString(s[i:])
		s = s[i+n:]
		if r == '\r' && strings.HasPrefix(s, "\n") {
			s = s[1:]
		}
	}
	return lines
}

func isLineBreak(r rune) bool {
	switch r {
	case '\n', '\r', '\v', '\f', 0x1c, 0x1d, 0x1e, 0x85, 0x2028, 0x2029:
		return true
	}
	return false
}

// leadingVariable mimics the script's check after os.path.expandvars: a
// line that starts with an unexpanded $NAME is an error.
func leadingVariable(line string) (string, bool) {
	if !strings.HasPrefix(line, "$") {
		return "", false
	}
	n := 1
	for n < len(line) && (line[n] == '_' || isAlpha(line[n]) || n > 1 && isDigit(line[n])) {
		n++
	}
	if n == 1 {
		return "", false
	}
	return line[1:n], true
}

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// parseRow is PartitionDefinition.from_csv of release v.
func parseRow(line string, v IDFVersion, tableOffset uint32) (row, error) {
	fields := strings.Split(line+",,,,", ",")
	for i := range fields {
		fields[i] = strings.TrimSpace(fields[i])
	}
	var r row
	var err error
	r.name = fields[0]
	if fields[1] == "" {
		return r, errorf(ErrSyntax, "Field 'type' can't be left empty.")
	}
	if r.typ, err = parseInt(fields[1], typeNamesFor(v)); err != nil {
		return r, err
	}
	if fields[2] == "" {
		if r.typ == int64(TypeApp) {
			return r, errorf(ErrSyntax, "App partition cannot have an empty subtype")
		}
		r.subtype = int64(SubtypeUndef)
	} else {
		var kw []keyword
		if r.typ >= 0 && r.typ <= 0xFF {
			kw = subtypeNamesFor(Type(r.typ), v)
		}
		if r.subtype, err = parseInt(fields[2], kw); err != nil {
			return r, err
		}
	}
	if done, err := r.placeV55(v, tableOffset, fields[4]); done || err != nil {
		if err != nil {
			return r, err
		}
	} else {
		if fields[3] != "" {
			if r.offset, err = parseInt(fields[3], nil); err != nil {
				return r, err
			}
			r.hasOff = true
		}
		if fields[4] == "" {
			return r, errorf(ErrSyntax, "Size field can't be empty")
		}
		if r.size, err = parseInt(fields[4], nil); err != nil {
			return r, err
		}
	}
	for _, flag := range strings.Split(fields[5], ":") {
		known := false
		for _, f := range flagNamesFor(v) {
			if flag == f.name {
				r.flags |= f.bit
				known = true
			}
		}
		if !known && flag != "" {
			return r, errorf(ErrFlags, "CSV flag column contains unknown flag '%s'", flag)
		}
	}
	return r, nil
}

// placeV55 is what v5.5's parse_address and parse_size do for bootloader
// and partition_table entries: a bootloader entry needs
// --primary-bootloader-offset (and a recovery one
// --recovery-bootloader-offset), which gota does not take, so it is
// refused with the script's message; a partition_table entry is 0x1000
// bytes, the primary one at the table offset. done reports that r's
// offset and size are set.
func (r *row) placeV55(v IDFVersion, tableOffset uint32, size string) (done bool, err error) {
	if !v.AtLeast(IDFv55) {
		return false, nil
	}
	switch Type(r.typ) {
	case TypeBootloader:
		if r.subtype == 0x02 {
			return false, errorf(ErrSyntax, "Recovery bootloader offset is not defined. Please use --recovery-bootloader-offset")
		}
		return false, errorf(ErrSyntax, "Primary bootloader offset is not defined. Please use --primary-bootloader-offset")
	case TypePartitionTable:
		if r.subtype != 0x00 {
			return false, nil
		}
		r.offset, r.hasOff, r.size, r.primary = int64(tableOffset), true, TableSectorSize, true
		return true, nil
	}
	return false, nil
}

// parseInt is the script's parse_int: Python's int(v, 0) with k/m
// suffixes (applied recursively, so "1kk" is 1 MiB) and keyword lookup.
func parseInt(v string, keywords []keyword) (int64, error) {
	lower := strings.ToLower(v)
	for _, s := range []struct {
		letter string
		mult   int64
	}{{"k", 1024}, {"m", 1024 * 1024}} {
		if strings.HasSuffix(lower, s.letter) {
			n, err := parseInt(v[:len(v)-1], keywords)
			if err != nil {
				return 0, err
			}
			if n > math.MaxInt64/s.mult || n < math.MinInt64/s.mult {
				return 0, errorf(ErrRange, "Value '%s' out of range", v)
			}
			return n * s.mult, nil
		}
	}
	n, ok, overflow := pyInt(v)
	if overflow {
		return 0, errorf(ErrRange, "Value '%s' out of range", v)
	}
	if ok {
		return n, nil
	}
	if len(keywords) == 0 {
		return 0, errorf(ErrSyntax, "Invalid field value %s", v)
	}
	for _, k := range keywords {
		if k.name == lower {
			return k.value, nil
		}
	}
	names := make([]string, len(keywords))
	for i, k := range keywords {
		names[i] = k.name
	}
	return 0, errorf(ErrSyntax, "Value '%s' is not valid. Known keywords: %s", v, strings.Join(names, ", "))
}

// pyInt parses like Python's int(s, 0): surrounding white space, a sign,
// 0x/0o/0b prefixes, single underscores between digits, and no leading
// zeros on decimal numbers other than zero itself.
func pyInt(s string) (n int64, ok, overflow bool) {
	s = strings.TrimSpace(s)
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	base := int64(10)
	allowLeadingUnderscore := false
	if len(s) >= 2 && s[0] == '0' {
		switch s[1] {
		case 'x', 'X':
			base = 16
		case 'o', 'O':
			base = 8
		case 'b', 'B':
			base = 2
		}
		if base != 10 {
			s = s[2:]
			allowLeadingUnderscore = true
		}
	}
	if s == "" {
		return 0, false, false
	}
	var u uint64
	digits := 0
	prevUnderscore := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' {
			if prevUnderscore || (i == 0 && !allowLeadingUnderscore) || i == len(s)-1 {
				return 0, false, false
			}
			prevUnderscore = true
			continue
		}
		prevUnderscore = false
		d := digitValue(c)
		if d < 0 || int64(d) >= base {
			return 0, false, false
		}
		if base == 10 && digits > 0 && u == 0 && d != 0 {
			return 0, false, false // "07": leading zero
		}
		digits++
		if u > (math.MaxInt64-uint64(d))/uint64(base) {
			overflow = true
			continue // keep validating the syntax
		}
		u = u*uint64(base) + uint64(d)
	}
	if digits == 0 {
		return 0, false, false
	}
	if overflow {
		return 0, true, true
	}
	if neg {
		return -int64(u), true, false
	}
	return int64(u), true, false
}

func digitValue(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'z':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'Z':
		return int(c-'A') + 10
	}
	return -1
}

// Verify applies gen_esp32part.py's checks (alignment, overlaps, names,
// otadata size, below tableOffset+0x1000).
//
// The checks run in the script's order: each partition (offset alignment,
// app size alignment to 4 KiB, readonly otadata/coredump, and here the
// label length), then unique names, then offsets in ascending order (below
// the table's sector, overlaps), then otadata count and size.
//
// Verify applies IDFNewest's rules; VerifyFor picks the release.
func (t *Table) Verify(tableOffset uint32) error { return t.VerifyFor(tableOffset, IDFNewest) }

// VerifyFor is Verify with the rules of release v (see IDFVersion).
func (t *Table) VerifyFor(tableOffset uint32, v IDFVersion) error {
	return t.verify(tableOffset, v.orNewest(), "", func(i int) string {
		return fmt.Sprintf("partition %d (%q)", i, t.Partitions[i].Name)
	})
}

// verify runs the checks; loc names partition i ("line 7" for CSV input)
// and prefix comes before it in messages.
func (t *Table) verify(tableOffset uint32, v IDFVersion, prefix string, loc func(int) string) error {
	fail := func(i int, rule error, format string, args ...any) error {
		return &ruleError{rule: rule, msg: prefix + loc(i) + ": " + fmt.Sprintf(format, args...)}
	}
	for i, p := range t.Partitions {
		if align := offsetAlign(int64(p.Type)); int64(p.Offset)%align != 0 {
			return fail(i, ErrAlign, "Partition %s invalid: Offset 0x%x is not aligned to 0x%x", p.Name, p.Offset, align)
		}
		if align := appSizeAlign(v); p.Type == TypeApp && int64(p.Size)%align != 0 {
			return fail(i, ErrAlign, "Partition %s invalid: Size 0x%x is not aligned to 0x%x", p.Name, p.Size, align)
		}
		readonly := v.AtLeast(IDFv52) && p.Flags&FlagReadonly != 0
		if p.Type == TypeData && (p.Subtype == SubtypeOTAData || p.Subtype == SubtypeCoredump) && readonly {
			return fail(i, ErrFlags, "Partition %s invalid: '%s' partition of type %d and subtype %d is always read-write and cannot be read-only",
				p.Name, p.Name, p.Type, p.Subtype)
		}
		if v.AtLeast(IDFv55) && p.Type == TypeData && p.Subtype == SubtypeNVS && p.Size < nvsRWMinSize && !readonly {
			return fail(i, ErrRange, "Partition %s invalid: '%s' partition of type %d and subtype %d of this size (0x%x) must be flagged as 'readonly' "+
				"(the size of read/write NVS has to be at least 0x%x)", p.Name, p.Name, p.Type, p.Subtype, p.Size, nvsRWMinSize)
		}
		if len(p.Name) > MaxNameLen {
			return fail(i, ErrName, "Partition %s invalid: name is %d bytes, longer than %d", p.Name, len(p.Name), MaxNameLen)
		}
	}

	first := map[string]int{}
	for i, p := range t.Partitions {
		if j, dup := first[p.Name]; dup {
			return fail(i, ErrDuplicate, "Partition names must be unique (%q is also at %s)", p.Name, loc(j))
		}
		first[p.Name] = i
	}

	order := make([]int, len(t.Partitions))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return t.Partitions[order[a]].Offset < t.Partitions[order[b]].Offset })
	minOffset := uint64(tableOffset) + TableSectorSize
	last := -1
	for _, i := range order {
		p := t.Partitions[i]
		primary := v.AtLeast(IDFv55) && p.Subtype == 0x00 && (p.Type == TypeBootloader || p.Type == TypePartitionTable)
		if uint64(p.Offset) < minOffset && !primary {
			return fail(i, ErrBelowTable, "Partition offset 0x%x is below 0x%x", p.Offset, minOffset)
		}
		if last >= 0 {
			l := t.Partitions[last]
			if uint64(p.Offset) < l.End() {
				return fail(i, ErrOverlap, "Partition at 0x%x overlaps 0x%x-0x%x (%s)", p.Offset, l.Offset, l.End()-1, loc(last))
			}
		}
		last = i
	}

	otadata := -1
	for i, p := range t.Partitions {
		if p.Type == TypeData && p.Subtype == SubtypeOTAData {
			if otadata >= 0 {
				return fail(i, ErrOTAData, "Found multiple otadata partitions. Only one partition can be defined with type=\"data\"(1) and subtype=\"ota\"(0).")
			}
			otadata = i
		}
	}
	if otadata >= 0 && t.Partitions[otadata].Size != OTADataSize {
		return fail(otadata, ErrOTAData, "otadata partition must have size = 0x2000")
	}
	if v.AtLeast(IDFv55) {
		tee := -1
		for i, p := range t.Partitions {
			if p.Type == TypeData && p.Subtype == SubtypeTEEOTA {
				if tee >= 0 {
					return fail(i, ErrOTAData, "Found multiple TEE otadata partitions. Only one partition can be defined with type=\"data\"(1) and subtype=\"tee_ota\"(0x90).")
				}
				tee = i
			}
		}
		if tee >= 0 && t.Partitions[tee].Size != OTADataSize {
			return fail(tee, ErrOTAData, "TEE otadata partition must have size = 0x2000")
		}
	}
	return nil
}
