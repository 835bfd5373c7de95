package protocol

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
)

// InfoReply is the device state carried by INFO_R, encoded as text lines
// "key=value\n" (SPEC.md, "INFO"): easy to print from Lua or C. Keys the
// reader does not know are ignored; "part" starts a new partition and the
// keys after it describe that partition.
type InfoReply struct {
	Chip       string // esptool name, e.g. "esp32"
	ChipRev    int
	Running    string
	Next       string
	Partitions []Partition
}

// Partition is one app partition as a device reports it in INFO_R. The
// host (core/updater) and the page show it as it is; the JSON names are
// those of `gota info --json`.
type Partition struct {
	Label         string   `json:"label"`
	Subtype       int      `json:"subtype,omitempty"` // 0 factory, 16.. ota_N, 32 test; -1 not reported (the Lua agent)
	Offset        uint32   `json:"offset,omitempty"`
	Size          uint32   `json:"size,omitempty"`
	State         OTAState `json:"state"`
	Name          string   `json:"name,omitempty"`
	Version       string   `json:"version,omitempty"`
	Date          string   `json:"date,omitempty"`
	Time          string   `json:"time,omitempty"`
	IDFVersion    string   `json:"idf_version,omitempty"`
	SecureVersion uint32   `json:"secure_version"`
	SHA256        string   `json:"sha256,omitempty"` // lower-case hex of the appended digest, "" if unknown
	ImageLen      int      `json:"image_len,omitempty"`
}

// OTAState is an app partition's otadata state (esp_ota_img_states_t) by
// the name NodeMCU's otaupgrade.info() gives it.
type OTAState string

// OTA states. OTANone is a partition without an otadata entry (never
// selected, or the factory app).
const (
	OTANone      OTAState = ""
	OTANew       OTAState = "new"
	OTATesting   OTAState = "testing" // ESP_OTA_IMG_PENDING_VERIFY: on trial until accepted
	OTAValid     OTAState = "valid"
	OTAInvalid   OTAState = "invalid"
	OTAAborted   OTAState = "aborted"
	OTAUndefined OTAState = "undefined"
)

// lineSafe keeps a value on its line (bytes, not runes: values may be any
// bytes a device printed).
var lineSafe = strings.NewReplacer("\n", " ", "\r", " ")

// Encode returns the text form.
func (m *InfoReply) Encode() []byte {
	var b bytes.Buffer
	kv := func(k, v string) {
		if v == "" {
			return
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(lineSafe.Replace(v))
		b.WriteByte('\n')
	}
	kv("chip", m.Chip)
	kv("chip_rev", strconv.Itoa(m.ChipRev))
	kv("running", m.Running)
	kv("next", m.Next)
	for _, p := range m.Partitions {
		kv("part", p.Label)
		if p.Subtype >= 0 {
			kv("subtype", strconv.Itoa(p.Subtype))
		}
		kv("offset", strconv.FormatUint(uint64(p.Offset), 10))
		kv("size", strconv.FormatUint(uint64(p.Size), 10))
		kv("state", string(p.State))
		kv("name", p.Name)
		kv("version", p.Version)
		kv("date", p.Date)
		kv("time", p.Time)
		kv("idf_version", p.IDFVersion)
		if p.Name != "" || p.SecureVersion != 0 {
			kv("secure_version", strconv.FormatUint(uint64(p.SecureVersion), 10))
		}
		kv("sha256", p.SHA256)
		if p.ImageLen > 0 {
			kv("image_len", strconv.Itoa(p.ImageLen))
		}
	}
	return b.Bytes()
}

// DecodeInfo parses the text form. Numbers that do not parse are errors
// naming the line; unknown keys are skipped.
func DecodeInfo(text []byte) (*InfoReply, error) {
	m := &InfoReply{}
	var cur *Partition
	// Lines end at '\n'; a '\r' ends one too (CRLF from a C agent's printf).
	lines := strings.FieldsFunc(string(text), func(r rune) bool { return r == '\n' || r == '\r' })
	for i, line := range lines {
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("info line %d %q: no '='", i+1, line)
		}
		num := func() (uint64, error) {
			n, err := strconv.ParseUint(v, 0, 32)
			if err != nil {
				return 0, fmt.Errorf("info line %d: %s=%q is not a number", i+1, k, v)
			}
			return n, nil
		}
		if k == "part" {
			if v == "" {
				return nil, fmt.Errorf("info line %d: part with no label", i+1)
			}
			m.Partitions = append(m.Partitions, Partition{Label: v, Subtype: -1})
			cur = &m.Partitions[len(m.Partitions)-1]
			continue
		}
		if cur == nil {
			switch k {
			case "chip":
				m.Chip = v
			case "chip_rev":
				n, err := num()
				if err != nil {
					return nil, err
				}
				m.ChipRev = int(n)
			case "running":
				m.Running = v
			case "next":
				m.Next = v
			}
			continue
		}
		var err error
		var n uint64
		switch k {
		case "subtype", "offset", "size", "secure_version", "image_len":
			if n, err = num(); err != nil {
				return nil, err
			}
		}
		switch k {
		case "subtype":
			cur.Subtype = int(n)
		case "offset":
			cur.Offset = uint32(n)
		case "size":
			cur.Size = uint32(n)
		case "secure_version":
			cur.SecureVersion = uint32(n)
		case "image_len":
			cur.ImageLen = int(n)
		case "state":
			cur.State = OTAState(v)
		case "name":
			cur.Name = v
		case "version":
			cur.Version = v
		case "date":
			cur.Date = v
		case "time":
			cur.Time = v
		case "idf_version":
			cur.IDFVersion = v
		case "sha256":
			cur.SHA256 = v
		}
	}
	return m, nil
}

// InfoChunk builds an INFO_R payload: total length u32, then text from
// offset, at most max-4 bytes of it.
func InfoChunk(text []byte, offset, max int) []byte {
	offset = min(offset, len(text))
	end := min(len(text), offset+max-4)
	return append(binary.LittleEndian.AppendUint32(nil, uint32(len(text))), text[offset:end]...)
}

// DecodeInfoChunk splits an INFO_R payload into the total text length and
// the chunk.
func DecodeInfoChunk(p []byte) (total int, chunk []byte, err error) {
	if len(p) < 4 {
		return 0, nil, short(TypeInfo.Reply(), len(p), 4)
	}
	return int(binary.LittleEndian.Uint32(p)), p[4:], nil
}

// InfoRequest is an INFO payload: the offset of the text wanted and,
// optionally, the largest INFO_R payload the host wants in this reply
// (SPEC.md 5.2). A host on a noisy line asks for small replies: a long
// frame is rarely received intact.
type InfoRequest struct {
	Offset uint32
	Max    uint16 // 0: up to the host's max_payload
}

// MinInfoMax is the smallest reply limit an agent honours; smaller values
// of InfoRequest.Max are raised to it so a reply always carries text.
const MinInfoMax = 64

// Encode returns the INFO payload: empty for the first chunk without a
// limit, else offset u32 and, when set, max u16.
func (r InfoRequest) Encode() []byte {
	if r.Offset == 0 && r.Max == 0 {
		return nil
	}
	b := binary.LittleEndian.AppendUint32(nil, r.Offset)
	if r.Max != 0 {
		b = binary.LittleEndian.AppendUint16(b, r.Max)
	}
	return b
}

// DecodeInfoRequest parses an INFO payload. Empty means offset 0 without
// a limit; a payload of 1 to 3 bytes is too short.
func DecodeInfoRequest(p []byte) (InfoRequest, error) {
	var r InfoRequest
	if len(p) == 0 {
		return r, nil
	}
	if len(p) < 4 {
		return r, short(TypeInfo, len(p), 4)
	}
	r.Offset = binary.LittleEndian.Uint32(p)
	if len(p) >= 6 {
		r.Max = binary.LittleEndian.Uint16(p[4:])
	}
	return r, nil
}

// Limit returns the largest INFO_R payload to send for this request to a
// host that accepts hostMax bytes.
func (r InfoRequest) Limit(hostMax int) int {
	if r.Max == 0 {
		return hostMax
	}
	return min(hostMax, max(int(r.Max), MinInfoMax))
}
