package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Type is the message type byte. Requests go host to device; the reply to
// a request has the request's type with bit 7 set (or is an Error) and
// echoes its seq.
type Type uint8

// Message types (SPEC.md, "Messages").
const (
	TypeHello    Type = 0x01 // handshake
	TypeInfo     Type = 0x02 // read OTA state
	TypeStatus   Type = 0x03 // transfer held by the agent (resume)
	TypeBegin    Type = 0x04 // commence
	TypeData     Type = 0x05 // image bytes; answered by Ack frames
	TypeEnd      Type = 0x06 // verify, complete, optionally reboot
	TypeAccept   Type = 0x07 // mark running build valid
	TypeRollback Type = 0x08 // mark invalid and reboot (success = READY)
	TypeReboot   Type = 0x09 // restart
	TypeAbort    Type = 0x0A // forget the transfer in progress
	TypeBaud     Type = 0x0B // change line rate
	TypePing     Type = 0x0C // echo

	TypeReady Type = 0x40 // device: agent started (after boot or attach)
	TypeLog   Type = 0x41 // device: log text carried in a frame
	TypeError Type = 0x7F // device: request failed

	// ReplyBit marks a reply; TypeAck is the reply type of Data.
	ReplyBit Type = 0x80
	TypeAck  Type = TypeData | ReplyBit
)

// Reply returns the type of the reply to t.
func (t Type) Reply() Type { return t | ReplyBit }

var typeNames = map[Type]string{
	TypeHello: "HELLO", TypeInfo: "INFO", TypeStatus: "STATUS", TypeBegin: "BEGIN",
	TypeData: "DATA", TypeEnd: "END", TypeAccept: "ACCEPT", TypeRollback: "ROLLBACK",
	TypeReboot: "REBOOT", TypeAbort: "ABORT", TypeBaud: "BAUD", TypePing: "PING",
	TypeReady: "READY", TypeLog: "LOG", TypeError: "ERROR",
}

func (t Type) String() string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	if t&ReplyBit != 0 {
		if n, ok := typeNames[t&^ReplyBit]; ok {
			if t == TypeAck {
				return "ACK"
			}
			return n + "_R"
		}
	}
	return fmt.Sprintf("0x%02X", uint8(t))
}

// Capability bits exchanged in HELLO.
const (
	CapDeflate uint32 = 1 << 0 // DATA frames may carry DEFLATE payloads
	CapResume  uint32 = 1 << 1 // STATUS and BEGIN resume
	CapBaud    uint32 = 1 << 2 // BAUD request
	CapSHA256  uint32 = 1 << 3 // agent checks the announced SHA-256 at END
	CapReorder uint32 = 1 << 4 // agent keeps DATA frames that arrive after a gap
	CapDelta   uint32 = 1 << 5 // DEFLATE frames may use the running build as dictionary
	// CapWireWindow: the window counts DATA frames' bytes on the line
	// (SPEC.md 6.8), not image bytes.
	CapWireWindow uint32 = 1 << 6
)

// Frame flag bits.
const (
	FlagDeflate uint8 = 1 << 0 // DATA: payload after the offset is raw DEFLATE
	FlagGap     uint8 = 1 << 1 // ACK: a frame beyond the expected offset was dropped
	FlagDelta   uint8 = 1 << 2 // DATA (with FlagDeflate): the dictionary is the running build (DeltaDict)
)

// READY reasons.
const (
	ReadyAttach = 0 // a connection was attached (the agent was already running)
	ReadyBoot   = 1 // the device (re)booted
)

// BEGIN flags.
const (
	BeginResume uint8 = 1 << 0 // continue a transfer of the same image if held
)

// END flags.
const (
	EndReboot uint8 = 1 << 0 // reboot after a successful complete
)

// STATUS states.
const (
	StatusIdle      = 0 // no transfer held
	StatusReceiving = 1 // a transfer is in progress
	StatusFailed    = 2 // the transfer held failed (error sent); BEGIN again
)

// ErrShort reports a payload shorter than its message needs.
var ErrShort = errors.New("payload too short")

func short(t Type, n, want int) error {
	return fmt.Errorf("%v payload is %d bytes, need %d: %w", t, n, want, ErrShort)
}

// Hello is the HELLO request (host) and its reply (agent), same layout:
// version u8, caps u32, max payload u16, window u32, then the agent name
// (reply only; empty from the host).
type Hello struct {
	Version    uint8
	Caps       uint32
	MaxPayload uint16
	Window     uint32
	Agent      string
}

// Encode returns the payload.
func (m Hello) Encode() []byte {
	b := []byte{m.Version}
	b = binary.LittleEndian.AppendUint32(b, m.Caps)
	b = binary.LittleEndian.AppendUint16(b, m.MaxPayload)
	b = binary.LittleEndian.AppendUint32(b, m.Window)
	return append(b, m.Agent...)
}

// DecodeHello parses a HELLO or HELLO_R payload.
func DecodeHello(p []byte) (Hello, error) {
	if len(p) < 11 {
		return Hello{}, short(TypeHello, len(p), 11)
	}
	return Hello{
		Version:    p[0],
		Caps:       binary.LittleEndian.Uint32(p[1:]),
		MaxPayload: binary.LittleEndian.Uint16(p[5:]),
		Window:     binary.LittleEndian.Uint32(p[7:]),
		Agent:      string(p[11:]),
	}, nil
}

// Ready is the READY announcement: version u8, reason u8, agent name.
type Ready struct {
	Version uint8
	Reason  uint8
	Agent   string
}

// Encode returns the payload.
func (m Ready) Encode() []byte { return append([]byte{m.Version, m.Reason}, m.Agent...) }

// DecodeReady parses a READY payload.
func DecodeReady(p []byte) (Ready, error) {
	if len(p) < 2 {
		return Ready{}, short(TypeReady, len(p), 2)
	}
	return Ready{Version: p[0], Reason: p[1], Agent: string(p[2:])}, nil
}

// Begin is the BEGIN request: size u32 (0 = unknown), SHA-256 [32] (all
// zero = not announced), flags u8.
type Begin struct {
	Size   uint32
	SHA256 [32]byte
	Flags  uint8
}

// Encode returns the payload.
func (m Begin) Encode() []byte {
	b := binary.LittleEndian.AppendUint32(nil, m.Size)
	b = append(b, m.SHA256[:]...)
	return append(b, m.Flags)
}

// DecodeBegin parses a BEGIN payload.
func DecodeBegin(p []byte) (Begin, error) {
	if len(p) < 37 {
		return Begin{}, short(TypeBegin, len(p), 37)
	}
	m := Begin{Size: binary.LittleEndian.Uint32(p), Flags: p[36]}
	copy(m.SHA256[:], p[4:36])
	return m, nil
}

// BeginReply is BEGIN_R: offset u32 (where the host continues; 0 for a
// fresh transfer), then the target partition label.
type BeginReply struct {
	Offset uint32
	Label  string
}

// Encode returns the payload.
func (m BeginReply) Encode() []byte {
	return append(binary.LittleEndian.AppendUint32(nil, m.Offset), m.Label...)
}

// DecodeBeginReply parses a BEGIN_R payload.
func DecodeBeginReply(p []byte) (BeginReply, error) {
	if len(p) < 4 {
		return BeginReply{}, short(TypeBegin.Reply(), len(p), 4)
	}
	return BeginReply{Offset: binary.LittleEndian.Uint32(p), Label: string(p[4:])}, nil
}

// Status is STATUS_R: state u8, size u32, received u32, written u32,
// SHA-256 [32] of the image the transfer is for.
type Status struct {
	State    uint8
	Size     uint32
	Received uint32
	Written  uint32
	SHA256   [32]byte
}

// Encode returns the payload.
func (m Status) Encode() []byte {
	b := []byte{m.State}
	b = binary.LittleEndian.AppendUint32(b, m.Size)
	b = binary.LittleEndian.AppendUint32(b, m.Received)
	b = binary.LittleEndian.AppendUint32(b, m.Written)
	return append(b, m.SHA256[:]...)
}

// DecodeStatus parses a STATUS_R payload.
func DecodeStatus(p []byte) (Status, error) {
	if len(p) < 45 {
		return Status{}, short(TypeStatus.Reply(), len(p), 45)
	}
	m := Status{
		State:    p[0],
		Size:     binary.LittleEndian.Uint32(p[1:]),
		Received: binary.LittleEndian.Uint32(p[5:]),
		Written:  binary.LittleEndian.Uint32(p[9:]),
	}
	copy(m.SHA256[:], p[13:45])
	return m, nil
}

// Data is a DATA payload: offset u32 (image offset of the first plain
// byte), then the bytes (raw DEFLATE when the frame has FlagDeflate).
type Data struct {
	Offset uint32
	Bytes  []byte
}

// Encode returns the payload.
func (m Data) Encode() []byte {
	return append(binary.LittleEndian.AppendUint32(make([]byte, 0, 4+len(m.Bytes)), m.Offset), m.Bytes...)
}

// DecodeData parses a DATA payload; Bytes aliases p.
func DecodeData(p []byte) (Data, error) {
	if len(p) < 4 {
		return Data{}, short(TypeData, len(p), 4)
	}
	return Data{Offset: binary.LittleEndian.Uint32(p), Bytes: p[4:]}, nil
}

// Ack is an ACK payload: received u32 (every image byte below it has been
// accepted), written u32 (every byte below it is in flash).
type Ack struct {
	Received uint32
	Written  uint32
	// GapAt is the offset of the DATA frame that raised a GAP ACK, when
	// HasGapAt (optional third field, SPEC.md 6.2): a GAP raised by a
	// frame the host sent after a resend proves the resend was lost.
	GapAt    uint32
	HasGapAt bool
}

// Encode returns the payload.
func (m Ack) Encode() []byte {
	b := binary.LittleEndian.AppendUint32(nil, m.Received)
	b = binary.LittleEndian.AppendUint32(b, m.Written)
	if m.HasGapAt {
		b = binary.LittleEndian.AppendUint32(b, m.GapAt)
	}
	return b
}

// DecodeAck parses an ACK payload.
func DecodeAck(p []byte) (Ack, error) {
	if len(p) < 8 {
		return Ack{}, short(TypeAck, len(p), 8)
	}
	a := Ack{Received: binary.LittleEndian.Uint32(p), Written: binary.LittleEndian.Uint32(p[4:])}
	if len(p) >= 12 {
		a.GapAt, a.HasGapAt = binary.LittleEndian.Uint32(p[8:]), true
	}
	return a, nil
}

// EncodeU32 returns a 4-byte little-endian payload (BAUD and BAUD_R).
func EncodeU32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }

// DecodeU32 parses a 4-byte little-endian payload.
func DecodeU32(t Type, p []byte) (uint32, error) {
	if len(p) < 4 {
		return 0, short(t, len(p), 4)
	}
	return binary.LittleEndian.Uint32(p), nil
}

// Error is an ERROR payload: the request type u8, the esp_err_t code u32
// (0 when the failure is not an ESP-IDF one), and a UTF-8 message (for
// OTA calls, NodeMCU otaupgrade's message).
type Error struct {
	Request Type
	Code    uint32
	Message string
}

// Encode returns the payload.
func (e *Error) Encode() []byte {
	b := binary.LittleEndian.AppendUint32([]byte{byte(e.Request)}, e.Code)
	return append(b, e.Message...)
}

// DecodeError parses an ERROR payload.
func DecodeError(p []byte) (*Error, error) {
	if len(p) < 5 {
		return nil, short(TypeError, len(p), 5)
	}
	return &Error{Request: Type(p[0]), Code: binary.LittleEndian.Uint32(p[1:]), Message: string(p[5:])}, nil
}

func (e *Error) Error() string {
	if e.Code == 0 {
		return fmt.Sprintf("device: %s (%v)", e.Message, e.Request)
	}
	name := ErrName(e.Code)
	return fmt.Sprintf("device: %s (%s 0x%X, %v)", e.Message, name, e.Code, e.Request)
}

// ErrName returns the ESP-IDF name of an esp_err_t, or "ESP_ERR".
func ErrName(code uint32) string {
	switch code {
	case 0x101:
		return "ESP_ERR_NO_MEM"
	case 0x102:
		return "ESP_ERR_INVALID_ARG"
	case 0x103:
		return "ESP_ERR_INVALID_STATE"
	case 0x104:
		return "ESP_ERR_INVALID_SIZE"
	case 0x105:
		return "ESP_ERR_NOT_FOUND"
	case 0x106:
		return "ESP_ERR_NOT_SUPPORTED"
	case 0x107:
		return "ESP_ERR_TIMEOUT"
	case 0x2002:
		return "ESP_ERR_IMAGE_INVALID"
	case 0x1501:
		return "ESP_ERR_OTA_PARTITION_CONFLICT"
	case 0x1502:
		return "ESP_ERR_OTA_SELECT_INFO_INVALID"
	case 0x1503:
		return "ESP_ERR_OTA_VALIDATE_FAILED"
	case 0x1504:
		return "ESP_ERR_OTA_SMALL_SEC_VER"
	case 0x1505:
		return "ESP_ERR_OTA_ROLLBACK_FAILED"
	case 0x1506:
		return "ESP_ERR_OTA_ROLLBACK_INVALID_STATE"
	case 0x6001:
		return "ESP_ERR_FLASH_OP_FAIL"
	case 0xFFFFFFFF:
		return "ESP_FAIL"
	}
	return "ESP_ERR"
}
