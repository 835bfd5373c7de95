// Package agent is the device side of the Gota wire protocol: the loop an
// ESP32 application runs on its console to take over-the-air updates. It
// drives a virtual ESP32 (package device) the way a C agent drives ESP-IDF's
// OTA API, and shares the line with the application's log text.
//
// Image data is received into a queue while a writer goroutine writes it to
// flash, so the line keeps moving while the flash erases and programs; the
// window announced in the handshake is the size of that queue.
package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/gota-dev/gota/firmware-agent/device"
	"github.com/gota-dev/gota/firmware-agent/link"
	"github.com/gota-dev/gota/protocol"
)

// Name is the agent name announced in READY and HELLO_R.
const Name = "gota-go/1"

// Defaults for Options.
const (
	DefaultMaxFrame = 4096
	DefaultWindow   = 64 << 10
	DefaultBaud     = 115200
	MinBaud         = 9600
)

// UART is the receive path a real build of this agent has: the ESP-IDF
// component's defaults (CONFIG_UART_ISR_IN_IRAM set, a 16 KiB ring passed
// to uart_driver_install). The ISR keeps filling the ring while a flash
// operation stops every task; the ring must hold what arrives meanwhile.
var UART = link.Receiver{RingBuffer: 16 << 10, ISRInIRAM: true}

// LongestFlashStall is the longest single flash operation during which
// the agent's tasks cannot read: a 64 KiB block erase, 150 ms on typical
// SPI NOR (flash.RealisticTiming).
const LongestFlashStall = 150 * time.Millisecond

// MaxBaud is the highest rate the agent accepts: its ring holds the bytes
// of a LongestFlashStall and 15 % more (an erase that runs long, a reader
// scheduled late), 949,797 baud with a 16 KiB ring; 921600 leaves 18 %.
// Faster, the ring would overrun during a block erase (SPEC.md 6.2). A
// chip whose block erase nears its datasheet maximum (up to about 1 s)
// would overrun even so; an agent that must hold regardless keeps its
// window within its ring, as the ESP-IDF component does.
var MaxBaud = int(int64(UART.RingBuffer) * 10 * int64(time.Second) * 100 / (115 * int64(LongestFlashStall)))

// Timing of the protocol (SPEC.md sections 3 and 7).
var (
	baudCheckTime = 3 * time.Second
	idleRevert    = 5 * time.Second
	baudPoll      = 250 * time.Millisecond
)

// Options tune the agent. The zero value is the full Go agent.
type Options struct {
	MaxFrame      int  // largest payload accepted; 0 = DefaultMaxFrame
	Window        int  // bytes buffered ahead of flash; 0 = DefaultWindow
	NoCompression bool // do not offer DEFLATE
	NoResume      bool // do not offer resume
	NoBaudChange  bool // do not offer baud-rate change
	NoReorder     bool // drop frames after a gap instead of keeping them (plain go-back-N)
	NoDelta       bool // do not offer the running build as DEFLATE dictionary
	// SetBaud is called when the agent switches its line rate (after
	// acknowledging a BAUD request, on revert, and back to 115200 on
	// reboot). nil means the rate is not modelled.
	SetBaud func(baud int) error
	// QuietAttach is for a line on which the app cannot tell that a host
	// opened the port: UART0 behind a USB–UART bridge. Serve then sends
	// no READY (attach) (SPEC.md 4.1); over USB-CDC (DTR) or a pipe it
	// does. Either way the first Serve after New delivers the start-up
	// banner and READY (boot), which the app sends as it starts.
	QuietAttach bool
}

// Agent serves the protocol for one device. Its state (negotiated session,
// transfer in progress, line rate) belongs to the device, not to a
// connection: it survives across Serve calls and ends at a device reboot.
type Agent struct {
	dev  *device.Device
	con  *Console
	opt  Options
	caps uint32

	// handle serialises request handling (two Serve calls may overlap
	// while a connection is being replaced). It is held while device
	// methods run; the reboot hook must not take it.
	handle sync.Mutex

	mu          sync.Mutex // guards the fields below
	hostMax     int        // largest payload the host accepts
	used        uint32     // capabilities in use (host ∩ agent)
	last        lastReply
	xfer        *transfer
	baud        int
	prevBaud    int         // rate before the last switch
	switchAt    time.Time   // when the last switch happened
	checking    bool        // no valid frame yet at the rate switched to
	lastFrame   time.Time   // last valid frame received
	lastDone    time.Time   // last request handled
	busy        int         // requests being handled
	watch       *time.Timer // polls the rate rules while not at DefaultBaud
	lastDataErr time.Time
	started     bool // the start-up READY (boot) went to a Serve's conn
}

// lastReply is the reply cache of SPEC.md 4.2.
type lastReply struct {
	ok    bool
	typ   protocol.Type
	seq   uint8
	frame []byte
}

// New returns an agent for dev, writing its frames through con. It
// registers a reboot hook on dev: after a reboot the agent drops its session
// and announces itself again.
func New(dev *device.Device, con *Console, opt Options) *Agent {
	if opt.MaxFrame <= 0 {
		opt.MaxFrame = DefaultMaxFrame
	}
	opt.MaxFrame = min(max(opt.MaxFrame, protocol.BaseMaxPayload), protocol.LimitMaxPayload)
	if opt.Window <= 0 {
		opt.Window = DefaultWindow
	}
	opt.Window = max(opt.Window, opt.MaxFrame-4)
	a := &Agent{dev: dev, con: con, opt: opt, hostMax: protocol.BaseMaxPayload, baud: DefaultBaud}
	a.caps = protocol.CapSHA256
	if !opt.NoCompression {
		a.caps |= protocol.CapDeflate
		if !opt.NoDelta {
			a.caps |= protocol.CapDelta
		}
	}
	if !opt.NoResume {
		a.caps |= protocol.CapResume
	}
	if !opt.NoBaudChange {
		a.caps |= protocol.CapBaud
	}
	if !opt.NoReorder {
		a.caps |= protocol.CapReorder
	}
	dev.OnReboot(a.rebooted)
	return a
}

// Serve attaches conn to the console, announces the agent (log banner and
// READY: boot on the first Serve, attach later unless Options.QuietAttach)
// and answers requests until ctx is done or reading conn fails. OTA state
// (a transfer in progress) survives across Serve calls so a later session
// can resume it.
func (a *Agent) Serve(ctx context.Context, conn io.ReadWriter) error {
	a.con.attach(conn)
	defer a.con.detach(conn)
	a.mu.Lock()
	started := a.started
	a.started = true
	a.mu.Unlock()
	switch {
	case !started:
		a.announce(protocol.ReadyBoot)
	case !a.opt.QuietAttach:
		a.announce(protocol.ReadyAttach)
	}

	loop := protocol.ReadLoop{Decoder: protocol.NewDecoder(a.opt.MaxFrame, func(f protocol.Frame) { a.handleFrame(f) }, nil)}
	if b, ok := conn.(buffered); ok {
		// Bytes may have arrived while a flash operation kept this loop
		// from reading them (uart_get_buffered_data_len): the line was
		// not idle.
		loop.Buffered = b.Buffered
	}
	err := loop.Run(conn, ctx.Done())
	switch {
	case err == nil:
		return ctx.Err()
	case errors.Is(err, io.EOF):
		return nil
	}
	return err
}

// buffered is a port that can tell how many received bytes wait unread.
type buffered interface{ Buffered() int }

// announce prints the banner and sends READY.
func (a *Agent) announce(reason uint8) {
	fmt.Fprintf(a.con, "gota-agent: ready (%s, protocol %d)\n", Name, protocol.Version)
	a.con.writeFrame(protocol.Frame{Type: protocol.TypeReady,
		Payload: protocol.Ready{Version: protocol.Version, Reason: reason, Agent: Name}.Encode()})
}

// rebooted is the device's reboot hook: everything but the flash is gone.
func (a *Agent) rebooted() {
	a.mu.Lock()
	if a.xfer != nil {
		a.xfer.cancel()
		a.xfer = nil
	}
	a.hostMax = protocol.BaseMaxPayload
	a.used = 0
	a.last = lastReply{}
	if a.watch != nil {
		a.watch.Stop()
		a.watch = nil
	}
	a.checking = false
	changed := a.baud != DefaultBaud
	a.baud = DefaultBaud
	a.mu.Unlock()
	if changed && a.opt.SetBaud != nil {
		a.opt.SetBaud(DefaultBaud)
	}
	a.announce(protocol.ReadyBoot)
}

// send writes a frame and, for replies, remembers it for retries.
func (a *Agent) reply(req protocol.Frame, typ protocol.Type, payload []byte) {
	f := protocol.Frame{Type: typ, Seq: req.Seq, Payload: payload}
	b := f.Encode()
	a.mu.Lock()
	// BAUD is not remembered either: its retry can only be read at the
	// old rate, once the agent has switched back (SPEC.md 4.2), and must
	// switch again.
	if req.Type != protocol.TypeHello && req.Type != protocol.TypeData && req.Type != protocol.TypeBaud {
		a.last = lastReply{ok: true, typ: req.Type, seq: req.Seq, frame: b}
	}
	a.mu.Unlock()
	a.con.writeRaw(b)
}

// fail replies with an ERROR frame built from err.
func (a *Agent) fail(req protocol.Frame, err error) {
	a.reply(req, protocol.TypeError, toProtocolError(req.Type, err).Encode())
}

// toProtocolError converts a device error (esp_err_t and NodeMCU message)
// or any other error into an ERROR payload.
func toProtocolError(t protocol.Type, err error) *protocol.Error {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return &protocol.Error{Request: t, Code: pe.Code, Message: pe.Message}
	}
	var de *device.Error
	if errors.As(err, &de) {
		return &protocol.Error{Request: t, Code: code32(de.Code), Message: de.Error()}
	}
	return &protocol.Error{Request: t, Code: code32(device.ErrFail), Message: err.Error()}
}

// code32 is an esp_err_t as the u32 on the wire (ESP_FAIL, -1, is 0xFFFFFFFF).
func code32(c int) uint32 { return uint32(int32(c)) }

func perr(code int, format string, args ...any) *protocol.Error {
	return &protocol.Error{Code: code32(code), Message: fmt.Sprintf(format, args...)}
}

// handleFrame is called by a Serve loop for every valid frame.
func (a *Agent) handleFrame(f protocol.Frame) {
	a.mu.Lock()
	a.lastFrame = time.Now()
	a.mu.Unlock()
	if f.Type == protocol.TypeData {
		a.data(f)
		return
	}
	if f.Type&protocol.ReplyBit != 0 || f.Type == protocol.TypeReady || f.Type == protocol.TypeLog || f.Type == protocol.TypeError {
		return // not a request: a loop-back or a confused peer
	}
	a.handle.Lock()
	defer a.handle.Unlock()
	a.mu.Lock()
	a.busy++
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.busy--
		a.lastDone = time.Now() // idle time counts from the end of the request
		a.mu.Unlock()
	}()

	a.mu.Lock()
	if a.last.ok && a.last.typ == f.Type && a.last.seq == f.Seq && f.Type != protocol.TypeHello {
		b := a.last.frame
		a.mu.Unlock()
		a.con.writeRaw(b) // a retry: same answer, not executed twice
		return
	}
	a.mu.Unlock()

	switch f.Type {
	case protocol.TypeHello:
		a.hello(f)
	case protocol.TypeInfo:
		a.info(f)
	case protocol.TypeStatus:
		a.status(f)
	case protocol.TypeBegin:
		a.begin(f)
	case protocol.TypeEnd:
		a.end(f)
	case protocol.TypeAccept:
		if err := a.dev.Accept(); err != nil {
			a.fail(f, err)
			return
		}
		a.reply(f, f.Type.Reply(), nil)
	case protocol.TypeRollback:
		a.abortTransfer()
		// On success the device reboots inside Rollback and the reboot
		// hook announces READY: that is the reply (SPEC.md 5.8).
		if err := a.dev.Rollback(); err != nil {
			a.fail(f, err)
		}
	case protocol.TypeReboot:
		a.reply(f, f.Type.Reply(), nil)
		a.abortTransfer()
		if err := a.dev.Reboot(); err != nil {
			fmt.Fprintf(a.con, "gota-agent: reboot: %v\n", err)
		}
	case protocol.TypeAbort:
		a.abortTransfer()
		a.reply(f, f.Type.Reply(), nil)
	case protocol.TypeBaud:
		a.setBaud(f)
	case protocol.TypePing:
		a.reply(f, f.Type.Reply(), f.Payload)
	default:
		a.fail(f, perr(device.ErrNotSupported, "unknown request type 0x%02X", uint8(f.Type)))
	}
}

func (a *Agent) hello(f protocol.Frame) {
	h, err := protocol.DecodeHello(f.Payload)
	if err != nil {
		a.fail(f, perr(device.ErrInvalidArg, "%v", err))
		return
	}
	if h.Version != protocol.Version {
		a.fail(f, perr(device.ErrNotSupported, "protocol version %d not supported (agent speaks %d)", h.Version, protocol.Version))
		return
	}
	a.mu.Lock()
	a.hostMax = min(max(int(h.MaxPayload), protocol.BaseMaxPayload), protocol.LimitMaxPayload)
	a.used = h.Caps & a.caps
	a.last = lastReply{} // a new session: old replies must not answer its seqs
	a.mu.Unlock()
	a.reply(f, f.Type.Reply(), protocol.Hello{
		Version:    protocol.Version,
		Caps:       a.caps,
		MaxPayload: uint16(a.opt.MaxFrame),
		Window:     uint32(a.opt.Window),
		Agent:      Name,
	}.Encode())
}

func (a *Agent) info(f protocol.Frame) {
	req, err := protocol.DecodeInfoRequest(f.Payload)
	if err != nil {
		a.fail(f, perr(device.ErrInvalidArg, "%v", err))
		return
	}
	di, err := a.dev.Info()
	if err != nil {
		a.fail(f, err)
		return
	}
	r := protocol.InfoReply{Chip: di.Chip.String(), ChipRev: int(di.ChipRev), Running: di.Running, Next: di.Next}
	for _, p := range di.Partitions {
		ip := protocol.Partition{Label: p.Label, Subtype: int(p.Subtype), Offset: p.Offset, Size: p.Size, State: p.State, ImageLen: p.ImageLen}
		if p.App != nil {
			ip.Name, ip.Version, ip.Date, ip.Time = p.App.ProjectName, p.App.Version, p.App.Date, p.App.Time
			ip.IDFVersion, ip.SecureVersion = p.App.IDFVer, p.App.SecureVersion
		}
		if p.SHA256 != nil {
			ip.SHA256 = fmt.Sprintf("%x", p.SHA256)
		}
		r.Partitions = append(r.Partitions, ip)
	}
	a.mu.Lock()
	hostMax := a.hostMax
	a.mu.Unlock()
	a.reply(f, f.Type.Reply(), protocol.InfoChunk(r.Encode(), int(req.Offset), req.Limit(hostMax)))
}

func (a *Agent) status(f protocol.Frame) {
	a.mu.Lock()
	x := a.xfer
	a.mu.Unlock()
	st := protocol.Status{State: protocol.StatusIdle}
	if x != nil {
		st = x.status()
	}
	a.reply(f, f.Type.Reply(), st.Encode())
}

// abortTransfer forgets the transfer in progress and waits for its writer
// to stop.
func (a *Agent) abortTransfer() {
	a.mu.Lock()
	x := a.xfer
	a.xfer = nil
	a.mu.Unlock()
	if x != nil {
		x.cancel()
		x.waitStopped()
	}
}

func (a *Agent) begin(f protocol.Frame) {
	b, err := protocol.DecodeBegin(f.Payload)
	if err != nil {
		a.fail(f, perr(device.ErrInvalidArg, "%v", err))
		return
	}
	a.mu.Lock()
	x, used := a.xfer, a.used
	a.mu.Unlock()
	if x != nil && b.Flags&protocol.BeginResume != 0 && a.caps&protocol.CapResume != 0 &&
		b.SHA256 != ([32]byte{}) && b.Size == x.size && b.SHA256 == x.sha {
		if held, ok := x.resume(); ok {
			a.reply(f, f.Type.Reply(), protocol.BeginReply{Offset: held, Label: x.label}.Encode())
			return
		}
	}
	a.abortTransfer()
	if b.Size > 0 {
		err = a.dev.CommenceSequential(int(b.Size))
		var de *device.Error
		if errors.As(err, &de) && de.Code == device.ErrNotSupported {
			err = a.dev.Commence()
		}
	} else {
		err = a.dev.Commence()
	}
	if err != nil {
		a.fail(f, err)
		return
	}
	p, _, ok := a.dev.Target()
	if !ok {
		a.fail(f, perr(device.ErrInvalidState, "ota error: commence left no update in progress"))
		return
	}
	if b.Size > p.Size {
		a.fail(f, perr(device.ErrInvalidSize, "image of %d bytes does not fit %s (%d bytes)", b.Size, p.Name, p.Size))
		return
	}
	x = newTransfer(a, b, p.Name, used)
	a.mu.Lock()
	a.xfer = x
	a.mu.Unlock()
	go x.writer()
	a.reply(f, f.Type.Reply(), protocol.BeginReply{Offset: 0, Label: p.Name}.Encode())
}

func (a *Agent) end(f protocol.Frame) {
	var flags uint8
	if len(f.Payload) > 0 {
		flags = f.Payload[0]
	}
	a.mu.Lock()
	x := a.xfer
	a.mu.Unlock()
	if x == nil {
		// No transfer of ours (SPEC.md 5.6): no BEGIN, or BEGIN refused.
		// The device would report NodeMCU's "ota error" for a commence
		// that failed in esp_ota_begin; an ESP-IDF app has no handle.
		if _, _, ok := a.dev.Target(); !ok {
			a.fail(f, perr(device.ErrInvalidState, device.MsgNoUpgrade))
			return
		}
		if err := a.dev.Complete(false); err != nil {
			a.fail(f, err)
			return
		}
	} else {
		if err := x.finish(); err != nil {
			a.fail(f, err)
			return
		}
		a.mu.Lock()
		if a.xfer == x {
			a.xfer = nil
		}
		a.mu.Unlock()
		if err := a.dev.Complete(false); err != nil {
			a.fail(f, err)
			return
		}
	}
	a.reply(f, f.Type.Reply(), nil)
	if flags&protocol.EndReboot != 0 {
		if err := a.dev.Reboot(); err != nil {
			fmt.Fprintf(a.con, "gota-agent: reboot: %v\n", err)
		}
	}
}

// sendAck sends an ACK for x.
func (a *Agent) sendAck(received, written uint32, flags uint8) {
	a.con.writeFrame(protocol.Frame{Type: protocol.TypeAck, Flags: flags,
		Payload: protocol.Ack{Received: received, Written: written}.Encode()})
}

// sendGap sends a GAP ACK naming the offset of the frame that raised it.
func (a *Agent) sendGap(received, written, at uint32) {
	a.con.writeFrame(protocol.Frame{Type: protocol.TypeAck, Flags: protocol.FlagGap,
		Payload: protocol.Ack{Received: received, Written: written, GapAt: at, HasGapAt: true}.Encode()})
}

// data handles a DATA frame (SPEC.md 6.2). It never blocks on flash.
func (a *Agent) data(f protocol.Frame) {
	d, err := protocol.DecodeData(f.Payload)
	a.mu.Lock()
	x := a.xfer
	a.mu.Unlock()
	if x == nil || err != nil {
		a.mu.Lock()
		quiet := time.Since(a.lastDataErr) < time.Second
		if !quiet {
			a.lastDataErr = time.Now()
		}
		a.mu.Unlock()
		if quiet {
			return
		}
		e := perr(device.ErrInvalidState, "no upgrade in progress")
		if err != nil {
			e = perr(device.ErrInvalidArg, "%v", err)
		}
		e.Request = protocol.TypeData
		a.con.writeFrame(protocol.Frame{Type: protocol.TypeError, Payload: e.Encode()})
		return
	}
	x.receive(d, f.Flags)
}
