// Package updater is the host side of an over-the-air update session: it
// talks the Gota wire protocol (package protocol) to a device agent over
// any byte stream, reads the device's OTA state, checks an image against
// it, streams the image with a sliding window, and drives complete,
// accept, rollback and reboot.
//
// It does no I/O of its own beyond the Port it is given and imports
// neither os nor net, so it builds for GOOS=js (the browser uses it over
// Web Serial) as well as for the CLI.
package updater

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/gota-dev/gota/protocol"
)

// DefaultBaud is the line rate an ESP32 console starts at.
const DefaultBaud = 115200

// hostMaxPayload is the largest payload the host accepts.
const hostMaxPayload = protocol.LimitMaxPayload

// Timeouts of SPEC.md 4.2, variables so tests can shorten them.
var (
	idleTimeout      = 100 * time.Millisecond
	lineFlushTimeout = 500 * time.Millisecond
	beginTimeout     = 60 * time.Second
	endTimeout       = 30 * time.Second
	rebootTimeout    = 15 * time.Second
	readyWait        = 3 * time.Second // then HELLO without READY (SPEC.md 4.2)
	helloAttempt     = 500 * time.Millisecond
	helloAttempts    = 14 // 7 s: covers an agent's 5 s return to 115200 after a host crash
	keepaliveEvery   = 2 * time.Second
	rttDefault       = 50 * time.Millisecond // round trip assumed until measured
	rtoMin           = 25 * time.Millisecond
	infoAttempt      = 250 * time.Millisecond // floor of an INFO attempt's timeout
	infoStartMax     = 512                    // INFO_R payload asked for at first
	dataMaxRTOs      = 8
	// flashStall is how long an agent may be silent with the host's
	// bytes safely in its ring: while ESP-IDF erases or programs flash no
	// task runs (a 64 KiB block erase takes 150 ms on typical SPI NOR,
	// and the program window after it up to 8 KiB of pages). A DATA
	// timeout shorter than that resends what was never lost.
	flashStall     = 200 * time.Millisecond
	windowStallMax = 30 * time.Second
	baudRevertWait = 3 * time.Second
	baudSettle     = 20 * time.Millisecond
)

// Port is the host end of the line to the device.
type Port interface {
	io.ReadWriter
	// SetBaud reopens or reconfigures the host side of the line at the
	// given rate. Transports without a rate (pipes) may do nothing. Read
	// must keep working across SetBaud: a Read blocked on the old line
	// continues on the reopened one rather than failing.
	SetBaud(baud int) error
}

// Options configure a Session.
type Options struct {
	// Log receives every line of device log text (text outside frames),
	// without the line terminator. nil discards it.
	Log func(line string)
	// Baud is the rate to switch to after the handshake when the agent
	// offers baud-rate change; 0 stays at the current rate.
	Baud int
	// Compression enables DEFLATE for image data when the agent offers it.
	Compression bool
	// NoResume makes Flash start over even when the device holds part of
	// the same image.
	NoResume bool
	// Timeout is the base request timeout; 0 means 2 s.
	Timeout time.Duration
	// Keepalive is how long the session lets the line idle at a
	// negotiated rate before it PINGs; 0 means 2 s. It must stay below
	// the agent's 5 s return to 115200.
	Keepalive time.Duration
}

// Caps is what the agent announced in its handshake reply.
type Caps struct {
	Version     int    // protocol version
	MaxFrame    int    // largest payload the agent accepts, bytes
	Window      int    // bytes the agent buffers ahead of flash
	Compression bool   // DEFLATE data frames
	Resume      bool   // keeps a partial transfer across sessions
	BaudChange  bool   // BAUD request supported
	SHA256      bool   // agent verifies the announced SHA-256 before complete
	Reorder     bool   // agent keeps frames after a gap: resend only the missing one
	Delta       bool   // DEFLATE frames may use the running build as dictionary
	Agent       string // agent name, e.g. "gota-go/1"
}

// Partition is one app partition as the device reports it.
type Partition struct {
	Label         string `json:"label"`
	Subtype       int    `json:"subtype,omitempty"` // 0 factory, 16.. ota_N, 32 test; -1 unknown
	Offset        uint32 `json:"offset,omitempty"`
	Size          uint32 `json:"size,omitempty"`
	State         string `json:"state"` // "new","testing","valid","invalid","aborted","undefined" or "" (no otadata entry)
	Name          string `json:"name,omitempty"`
	Version       string `json:"version,omitempty"`
	Date          string `json:"date,omitempty"`
	Time          string `json:"time,omitempty"`
	IDFVersion    string `json:"idf_version,omitempty"`
	SecureVersion uint32 `json:"secure_version"`
	SHA256        string `json:"sha256,omitempty"` // hex of the appended digest, "" if unknown
	ImageLen      int    `json:"image_len,omitempty"`
}

// DeviceInfo is the device's OTA state (otaupgrade.info() plus chip).
type DeviceInfo struct {
	Chip       string      // esptool name, e.g. "esp32"
	ChipRev    int         // major*100+minor
	Running    string      // label of the running partition
	Next       string      // label of the partition that boots next
	Partitions []Partition // app partitions, table order
	Agent      string      // agent name and version from the handshake
	Caps       Caps
}

// Find returns the partition with the given label, or nil.
func (d *DeviceInfo) Find(label string) *Partition {
	for i := range d.Partitions {
		if d.Partitions[i].Label == label {
			return &d.Partitions[i]
		}
	}
	return nil
}

// Stats counts what a Session sent.
type Stats struct {
	DataFrames  int // DATA frames written
	DataBytes   int // image bytes carried by them (before compression)
	WireBytes   int // DATA payload bytes on the wire (after compression)
	Rewinds     int // go-back-N rewinds (GAP or timeout)
	Resent      int // frames resent alone after a GAP (agents with Reorder)
	ResumedFrom int // offset the last transfer started at (non-zero: resumed)
	DeltaFrames int // DATA frames compressed against the running build
}

// Errors callers tell apart with errors.Is.
var (
	ErrTimeout = errors.New("no reply from the device")
	ErrClosed  = errors.New("session closed")
	ErrRefused = errors.New("refused") // Check refusals
)

// Session is a connected, handshaken line to a device agent.
type Session struct {
	p   Port
	opt Options

	wmu sync.Mutex // serialises writes to p

	mu      sync.Mutex
	seq     uint8
	waiters map[uint8]waiter
	caps    Caps
	baud    int
	ack     protocol.Ack
	ackGap  bool
	gapAt   int64         // highest GapAt of the GAP ACKs since the stream last looked; -1 none
	ackTick chan struct{} // signalled on every ACK
	dataErr chan *protocol.Error
	ready   chan protocol.Ready
	info    *DeviceInfo
	stats   Stats
	dead    chan struct{}
	deadErr error

	lastWrite time.Time
	inflight  int           // requests waiting for a reply
	srtt      time.Duration // smoothed round trip of small requests, without line time; 0 until measured
	infoMax   int           // INFO_R payload to ask for: shrinks on a noisy line
}

// Connect synchronises with the agent on p (tolerating log text and
// noise), performs the version/capability handshake and, when opt.Baud is
// set and offered, switches the line rate.
func Connect(ctx context.Context, p Port, opt Options) (*Session, error) {
	s := start(p, opt)
	if err := s.handshake(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func start(p Port, opt Options) *Session {
	if opt.Timeout <= 0 {
		opt.Timeout = 2 * time.Second
	}
	if opt.Keepalive <= 0 {
		opt.Keepalive = keepaliveEvery
	}
	s := &Session{
		p: p, opt: opt, baud: DefaultBaud,
		waiters: map[uint8]waiter{},
		ackTick: make(chan struct{}, 1),
		dataErr: make(chan *protocol.Error, 1),
		ready:   make(chan protocol.Ready, 8),
		dead:    make(chan struct{}),
	}
	go s.pump()
	go s.keepalive()
	return s
}

// keepalive PINGs while the line runs at a negotiated rate and nothing
// else is sent: an agent returns to 115200 after 5 s without frames
// (SPEC.md 7), which would strand a session that is merely idle.
func (s *Session) keepalive() {
	t := time.NewTicker(s.opt.Keepalive / 4)
	defer t.Stop()
	for {
		select {
		case <-s.dead:
			return
		case <-t.C:
		}
		s.mu.Lock()
		due := s.baud != DefaultBaud && s.inflight == 0 && time.Since(s.lastWrite) >= s.opt.Keepalive
		s.mu.Unlock()
		if due {
			ctx, cancel := context.WithTimeout(context.Background(), s.opt.Timeout)
			s.requestN(ctx, protocol.TypePing, nil, s.opt.Timeout, 1)
			cancel()
		}
	}
}

// handshake sends HELLO until the agent answers, then applies opt.Baud.
func (s *Session) handshake(ctx context.Context) error {
	var caps uint32 = protocol.CapBaud | protocol.CapSHA256 | protocol.CapReorder
	if s.opt.Compression {
		caps |= protocol.CapDeflate | protocol.CapDelta
	}
	if !s.opt.NoResume {
		caps |= protocol.CapResume
	}
	hello := protocol.Hello{Version: protocol.Version, Caps: caps, MaxPayload: hostMaxPayload}.Encode()
	f, err := s.requestN(ctx, protocol.TypeHello, hello, helloAttempt, helloAttempts)
	if err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	h, err := protocol.DecodeHello(f.Payload)
	if err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	if h.Version != protocol.Version {
		return fmt.Errorf("handshake: agent speaks protocol version %d, host %d", h.Version, protocol.Version)
	}
	use := h.Caps & caps
	s.mu.Lock()
	s.caps = Caps{
		Version:     int(h.Version),
		MaxFrame:    max(int(h.MaxPayload), protocol.BaseMaxPayload),
		Window:      max(int(h.Window), int(h.MaxPayload)-4),
		Compression: use&protocol.CapDeflate != 0,
		Resume:      use&protocol.CapResume != 0,
		BaudChange:  use&protocol.CapBaud != 0,
		SHA256:      use&protocol.CapSHA256 != 0,
		Reorder:     use&protocol.CapReorder != 0,
		Delta:       use&protocol.CapDeflate != 0 && use&protocol.CapDelta != 0,
		Agent:       h.Agent,
	}
	s.mu.Unlock()
	if s.opt.Baud != 0 && s.opt.Baud != s.Baud() && s.caps.BaudChange {
		if err := s.SetBaud(ctx, s.opt.Baud); err != nil {
			s.log(fmt.Sprintf("gota: %v", err))
		}
	}
	return nil
}

// Caps returns the capabilities negotiated with the agent.
func (s *Session) Caps() Caps {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.caps
}

// Baud returns the line rate the session believes the line runs at.
func (s *Session) Baud() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.baud
}

// Stats returns counters of what was sent.
func (s *Session) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// LastInfo returns the device state read last (by Info or Flash), or nil.
func (s *Session) LastInfo() *DeviceInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.info
}

func (s *Session) log(line string) {
	if s.opt.Log != nil {
		s.opt.Log(line)
	}
}

// pump reads the port, splits frames from log text and dispatches them.
func (s *Session) pump() {
	lines := &protocol.Lines{Line: s.log}
	dec := protocol.NewDecoder(hostMaxPayload, s.dispatch, func(b []byte) { lines.Write(b) })
	reads := protocol.ReadChunks(s.p, s.dead)
	idle := time.NewTimer(time.Hour)
	defer idle.Stop()
	flush := time.NewTimer(time.Hour)
	defer flush.Stop()
	for {
		select {
		case c := <-reads:
			if len(c.B) > 0 {
				dec.Write(c.B)
				idle.Reset(idleTimeout)
				flush.Reset(lineFlushTimeout)
			}
			if c.Err != nil {
				lines.Flush()
				s.kill(fmt.Errorf("reading from the device: %w", c.Err))
				return
			}
		case <-idle.C:
			dec.Idle()
		case <-flush.C:
			// A line without its newline after a pause is shown anyway
			// (a prompt, or text cut by a reset).
			lines.Flush()
		case <-s.dead:
			return
		}
	}
}

func (s *Session) kill(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.deadErr == nil {
		s.deadErr = err
		close(s.dead)
	}
}

// dispatch routes a frame from the device.
func (s *Session) dispatch(f protocol.Frame) {
	switch {
	case f.Type == protocol.TypeAck:
		a, err := protocol.DecodeAck(f.Payload)
		if err != nil {
			return
		}
		s.mu.Lock()
		// Counters only grow within a transfer; a smaller value is a
		// stale ACK from before a rewind or a resume.
		if a.Received >= s.ack.Received {
			s.ack.Received = a.Received
		}
		if a.Written >= s.ack.Written {
			s.ack.Written = a.Written
		}
		if f.Flags&protocol.FlagGap != 0 {
			s.ackGap = true
			if a.HasGapAt {
				s.gapAt = max(s.gapAt, int64(a.GapAt))
			}
		}
		s.mu.Unlock()
		select {
		case s.ackTick <- struct{}{}:
		default:
		}
	case f.Type == protocol.TypeReady:
		if r, err := protocol.DecodeReady(f.Payload); err == nil {
			select {
			case s.ready <- r:
			default:
			}
		}
	case f.Type == protocol.TypeLog:
		lines := protocol.Lines{Line: s.log}
		lines.Write(f.Payload)
		lines.Flush()
	case f.Type == protocol.TypeError && f.Seq == 0:
		if e, err := protocol.DecodeError(f.Payload); err == nil {
			select {
			case s.dataErr <- e:
			default:
			}
		}
	case f.Type&protocol.ReplyBit != 0 || f.Type == protocol.TypeError:
		s.mu.Lock()
		w, ok := s.waiters[f.Seq]
		if ok && w.answers(f) {
			delete(s.waiters, f.Seq)
		} else {
			ok = false
		}
		s.mu.Unlock()
		if ok {
			w.ch <- f
		}
	}
}

// replyError returns the device's *protocol.Error when f, the reply to a
// request of type t, is an ERROR, nil for any other reply.
func replyError(t protocol.Type, f protocol.Frame) error {
	if f.Type != protocol.TypeError {
		return nil
	}
	e, err := protocol.DecodeError(f.Payload)
	if err != nil {
		return fmt.Errorf("%v: %w", t, err)
	}
	return e
}

// waiter is a request waiting for its reply.
type waiter struct {
	request protocol.Type
	ch      chan protocol.Frame // capacity 1
}

// answers reports whether f is the reply to w's request. A reply with the
// right seq but for another request type was sent to an earlier host
// (it sat in the port's buffer, or the line delivered it late) and is
// ignored like any late duplicate.
func (w waiter) answers(f protocol.Frame) bool {
	if f.Type == protocol.TypeError {
		e, err := protocol.DecodeError(f.Payload)
		return err != nil || e.Request == w.request
	}
	return f.Type == w.request.Reply()
}

func (s *Session) write(b []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	s.lastWrite = time.Now()
	s.mu.Unlock()
	_, err := s.p.Write(b)
	if err != nil {
		return fmt.Errorf("writing to the device: %w", err)
	}
	return nil
}

func (s *Session) nextSeq() uint8 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	if s.seq == 0 {
		s.seq = 1
	}
	return s.seq
}

// request sends a request and waits for its reply with the default
// retries (SPEC.md 4.2). An ERROR reply is returned as *protocol.Error.
func (s *Session) request(ctx context.Context, t protocol.Type, payload []byte, timeout time.Duration) (protocol.Frame, error) {
	if timeout == 0 {
		timeout = s.opt.Timeout
	}
	return s.requestN(ctx, t, payload, timeout, 4)
}

// requestSlow is request for BEGIN and END, whose work on the agent may
// take up to budget: four attempts whose timeouts double from budget/15,
// so that a request lost on the line costs budget/15, not budget. A retry
// reaching an agent still busy with the request is answered from its
// reply cache once the work is done (SPEC.md 4.2).
func (s *Session) requestSlow(ctx context.Context, t protocol.Type, payload []byte, budget time.Duration) (protocol.Frame, error) {
	first := budget / 15
	return s.requestTimeouts(ctx, t, payload, []time.Duration{first, 2 * first, 4 * first, 8 * first})
}

// requestN is a request with attempts tries of timeout each.
func (s *Session) requestN(ctx context.Context, t protocol.Type, payload []byte, timeout time.Duration, attempts int) (protocol.Frame, error) {
	timeouts := make([]time.Duration, attempts)
	for i := range timeouts {
		timeouts[i] = timeout
	}
	return s.requestTimeouts(ctx, t, payload, timeouts)
}

// requestTimeouts sends a request, waits for its reply up to timeouts[i]
// on attempt i and sends it again (same seq) after each timeout.
func (s *Session) requestTimeouts(ctx context.Context, t protocol.Type, payload []byte, timeouts []time.Duration) (protocol.Frame, error) {
	seq := s.nextSeq()
	ch := make(chan protocol.Frame, 1)
	frame := protocol.Frame{Type: t, Seq: seq, Payload: payload}.Encode()
	s.mu.Lock()
	s.inflight++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.waiters, seq)
		s.inflight--
		s.mu.Unlock()
	}()
	for attempt, timeout := range timeouts {
		s.mu.Lock()
		s.waiters[seq] = waiter{t, ch}
		s.mu.Unlock()
		if err := s.write(frame); err != nil {
			return protocol.Frame{}, err
		}
		sent := time.Now()
		timer := time.NewTimer(timeout)
		select {
		case f := <-ch:
			timer.Stop()
			if attempt == 0 && measuresRTT(t) {
				s.sampleRTT(time.Since(sent) - s.lineTime(len(frame)+len(f.Payload)+protocol.Overhead))
			}
			return f, replyError(t, f)
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return protocol.Frame{}, ctx.Err()
		case <-s.dead:
			timer.Stop()
			return protocol.Frame{}, s.deadErr
		}
	}
	var total time.Duration
	for _, d := range timeouts {
		total += d
	}
	return protocol.Frame{}, fmt.Errorf("%v: %w after %d attempts in %v", t, ErrTimeout, len(timeouts), total)
}

// Info reads the device's OTA state.
func (s *Session) Info(ctx context.Context) (*DeviceInfo, error) {
	var text []byte
	for {
		total, chunk, err := s.infoChunk(ctx, len(text))
		if err != nil {
			return nil, fmt.Errorf("info: %w", err)
		}
		text = append(text, chunk...)
		if len(text) >= total || len(chunk) == 0 {
			break
		}
	}
	r, err := protocol.DecodeInfo(text)
	if err != nil {
		return nil, fmt.Errorf("info: %w", err)
	}
	caps := s.Caps()
	di := &DeviceInfo{Chip: r.Chip, ChipRev: r.ChipRev, Running: r.Running, Next: r.Next, Agent: caps.Agent, Caps: caps}
	for _, p := range r.Partitions {
		di.Partitions = append(di.Partitions, Partition{
			Label: p.Label, Subtype: p.Subtype, Offset: p.Offset, Size: p.Size, State: p.State,
			Name: p.Name, Version: p.Version, Date: p.Date, Time: p.Time, IDFVersion: p.IDFVersion,
			SecureVersion: p.SecureVersion, SHA256: p.SHA256, ImageLen: p.ImageLen,
		})
	}
	s.mu.Lock()
	s.info = di
	s.mu.Unlock()
	return di, nil
}

// infoChunk reads the INFO text from offset off. The reply is the longest
// frame of a session outside DATA, so on a noisy line it asks for smaller
// replies (SPEC.md 5.2) after each pair of lost ones, with timeouts sized
// to the line, and grows them again when replies arrive at once.
func (s *Session) infoChunk(ctx context.Context, off int) (total int, chunk []byte, err error) {
	s.mu.Lock()
	limit := s.infoMax
	s.mu.Unlock()
	if limit == 0 {
		limit = infoStartMax
	}
	// Two tries per size, then half the size; at the smallest size a
	// reply still fails a quarter of the time on a 1e-3 line, so try it
	// longer before giving up.
	const triesPerSize, triesAtMin = 2, 8
	for try := 0; ; try++ {
		req := protocol.InfoRequest{Offset: uint32(off), Max: uint16(min(limit, 65535))}
		timeout := max(infoAttempt, s.rtoBase()+2*s.lineTime(limit+protocol.Overhead))
		tries := triesPerSize
		if limit <= minChunk {
			tries = triesAtMin
		}
		f, err := s.requestN(ctx, protocol.TypeInfo, req.Encode(), timeout, tries)
		if errors.Is(err, ErrTimeout) && limit > minChunk {
			limit = max(limit/2, minChunk)
			continue
		}
		if err != nil {
			return 0, nil, err
		}
		if try == 0 && limit < infoStartMax {
			limit *= 2
		}
		s.mu.Lock()
		s.infoMax = limit
		s.mu.Unlock()
		return protocol.DecodeInfoChunk(f.Payload)
	}
}

// measuresRTT reports whether replies to t measure the round trip: small
// requests the agent answers at once (not BEGIN or END, which erase and
// verify flash).
func measuresRTT(t protocol.Type) bool {
	switch t {
	case protocol.TypeHello, protocol.TypeInfo, protocol.TypeStatus, protocol.TypePing:
		return true
	}
	return false
}

// sampleRTT folds one round trip (line time already subtracted) into the
// smoothed estimate, as TCP does (RFC 6298, alpha 1/8).
func (s *Session) sampleRTT(d time.Duration) {
	d = max(d, 0)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srtt == 0 {
		s.srtt = max(d, time.Millisecond)
		return
	}
	s.srtt = max((7*s.srtt+d)/8, time.Millisecond)
}

// lineTime is how long n bytes take on the line at its rate (8N1: 10
// bits a byte).
func (s *Session) lineTime(n int) time.Duration {
	return time.Duration(int64(n) * 10 * int64(time.Second) / int64(s.Baud()))
}

// rtoBase is the part of a timeout that does not depend on the bytes in
// flight: the round trip, with room for scheduling jitter.
func (s *Session) rtoBase() time.Duration {
	s.mu.Lock()
	rtt := s.srtt
	s.mu.Unlock()
	if rtt == 0 {
		rtt = rttDefault
	}
	return rtoMin + 3*rtt
}

// Ping checks the line with a PING round trip.
func (s *Session) Ping(ctx context.Context) error {
	_, err := s.request(ctx, protocol.TypePing, []byte("gota"), 0)
	return err
}

// SetBaud switches the line rate (SPEC.md 7): the agent acknowledges at the
// old rate, both switch, and a PING must get through at the new one. On
// failure the session goes back to the old rate and reports the error.
func (s *Session) SetBaud(ctx context.Context, baud int) error {
	if !s.Caps().BaudChange {
		return fmt.Errorf("baud %d: the agent does not offer baud-rate change", baud)
	}
	old := s.Baud()
	if _, err := s.request(ctx, protocol.TypeBaud, protocol.EncodeU32(uint32(baud)), 0); err != nil {
		return fmt.Errorf("baud %d: %w", baud, err)
	}
	// Give the agent time to finish sending BAUD_R and switch (its
	// uart_wait_tx_done) before the first byte at the new rate.
	time.Sleep(baudSettle)
	if err := s.p.SetBaud(baud); err != nil {
		return fmt.Errorf("baud %d: port: %w", baud, err)
	}
	s.mu.Lock()
	s.baud = baud
	s.mu.Unlock()
	// Short PING attempts: all of them fit in the agent's 3 s check.
	if _, err := s.requestN(ctx, protocol.TypePing, []byte("baud"), 400*time.Millisecond, 5); err == nil {
		return nil
	} else if ctx.Err() != nil {
		return err
	}
	// The agent reverts on its own when no frame arrives at the new rate.
	s.p.SetBaud(old)
	s.mu.Lock()
	s.baud = old
	s.mu.Unlock()
	select {
	case <-time.After(baudRevertWait):
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := s.Ping(ctx); err != nil {
		return fmt.Errorf("baud %d failed and the line does not answer at %d either: %w", baud, old, err)
	}
	return fmt.Errorf("baud %d: no answer at the new rate; staying at %d", baud, old)
}

// Accept marks the running (or just completed) build valid.
func (s *Session) Accept(ctx context.Context) error {
	if _, err := s.request(ctx, protocol.TypeAccept, nil, 0); err != nil {
		return fmt.Errorf("accept: %w", err)
	}
	return nil
}

// Status asks the agent what transfer it holds (SPEC.md 5.3).
func (s *Session) Status(ctx context.Context) (protocol.Status, error) {
	f, err := s.request(ctx, protocol.TypeStatus, nil, 0)
	if err != nil {
		return protocol.Status{}, fmt.Errorf("status: %w", err)
	}
	return protocol.DecodeStatus(f.Payload)
}

// Abort makes the agent forget a transfer in progress.
func (s *Session) Abort(ctx context.Context) error {
	if _, err := s.request(ctx, protocol.TypeAbort, nil, 0); err != nil {
		return fmt.Errorf("abort: %w", err)
	}
	return nil
}

// Rollback marks the running build invalid and reboots into the previous
// one; it returns once the device is back and handshaken.
func (s *Session) Rollback(ctx context.Context) error {
	// What runs now, read now: LastInfo may predate a reboot, and a wrong
	// "before" would make a lost READY look like a lost ROLLBACK.
	before, err := s.Info(ctx)
	if err != nil {
		return fmt.Errorf("rollback: %w", err)
	}
	const attempts = 3
	for attempt := 1; ; attempt++ {
		if err := s.prepareReboot(ctx); err != nil {
			return fmt.Errorf("rollback: %w", err)
		}
		rebooted, err := s.rollbackOnce(ctx)
		if err != nil {
			return fmt.Errorf("rollback: %w", err)
		}
		if err := s.rejoin(ctx); err != nil {
			return fmt.Errorf("rollback: %w", err)
		}
		if rebooted {
			return nil
		}
		// Neither READY nor ERROR: READY was lost, or ROLLBACK was. The
		// running partition tells which; only a ROLLBACK that never ran
		// is sent again (a second one would roll the device back twice).
		after, err := s.Info(ctx)
		if err != nil {
			return fmt.Errorf("rollback: %w", err)
		}
		if after.Running != before.Running {
			return nil
		}
		if attempt == attempts {
			return fmt.Errorf("rollback: %w: the device still runs %s after %d attempts", ErrTimeout, after.Running, attempts)
		}
	}
}

// rollbackOnce sends ROLLBACK and waits up to readyWait for its outcome:
// READY (boot) is success (SPEC.md 5.8), an ERROR the refusal.
func (s *Session) rollbackOnce(ctx context.Context) (rebooted bool, err error) {
	seq := s.nextSeq()
	ch := make(chan protocol.Frame, 1)
	s.mu.Lock()
	s.waiters[seq] = waiter{protocol.TypeRollback, ch}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.waiters, seq)
		s.mu.Unlock()
	}()
	if err := s.write(protocol.Frame{Type: protocol.TypeRollback, Seq: seq}.Encode()); err != nil {
		return false, err
	}
	timer := time.NewTimer(readyWait)
	defer timer.Stop()
	for {
		select {
		case f := <-ch:
			if err := replyError(protocol.TypeRollback, f); err != nil {
				return false, err
			}
			// ROLLBACK_R: READY follows.
		case r := <-s.ready:
			if r.Reason == protocol.ReadyBoot {
				return true, nil
			}
		case <-timer.C:
			return false, nil
		case <-ctx.Done():
			return false, ctx.Err()
		case <-s.dead:
			return false, s.deadErr
		}
	}
}

// Reboot restarts the device and handshakes again.
func (s *Session) Reboot(ctx context.Context) error {
	if err := s.prepareReboot(ctx); err != nil {
		return fmt.Errorf("reboot: %w", err)
	}
	if _, err := s.request(ctx, protocol.TypeReboot, nil, 0); err != nil {
		return fmt.Errorf("reboot: %w", err)
	}
	if err := s.waitReboot(ctx); err != nil {
		return fmt.Errorf("reboot: %w", err)
	}
	return nil
}

// prepareReboot brings the line back to the boot rate before a request
// that reboots the device, so the host never has to chase the device's
// rate change (a reopened port could miss the READY), and forgets old
// READY announcements.
func (s *Session) prepareReboot(ctx context.Context) error {
	if s.Baud() != DefaultBaud {
		if err := s.SetBaud(ctx, DefaultBaud); err != nil {
			return err
		}
	}
	for {
		select {
		case <-s.ready:
		default:
			return nil
		}
	}
}

// waitReboot waits for READY after a reboot and handshakes again. READY
// is sent once, so on a noisy line it can be lost: after readyWait the
// host stops waiting for it and looks for the agent with HELLO (the
// device has rebooted by then).
func (s *Session) waitReboot(ctx context.Context) error {
	timer := time.NewTimer(rebootTimeout)
	defer timer.Stop()
	probe := time.NewTimer(readyWait)
	defer probe.Stop()
	for {
		select {
		case r := <-s.ready:
			if r.Reason == protocol.ReadyBoot {
				return s.rejoin(ctx)
			}
		case <-probe.C:
			if err := s.rejoin(ctx); err == nil || ctx.Err() != nil {
				return err
			}
		case <-timer.C:
			return fmt.Errorf("%w: the device did not announce itself within %v after the reboot", ErrTimeout, rebootTimeout)
		case <-ctx.Done():
			return ctx.Err()
		case <-s.dead:
			return s.deadErr
		}
	}
}

// rejoin handshakes again after a reboot (the agent forgot the session).
func (s *Session) rejoin(ctx context.Context) error {
	s.mu.Lock()
	s.baud = DefaultBaud
	s.mu.Unlock()
	if err := s.handshake(ctx); err != nil {
		return fmt.Errorf("after reboot: %w", err)
	}
	return nil
}

// Close returns the line to 115200 baud if the session changed it (so the
// next host finds the agent at the boot rate) and stops the session. It
// does not close the Port, but a Read may still be pending on it: close
// or discard the Port afterwards rather than handing it to a new Session.
func (s *Session) Close() error {
	select {
	case <-s.dead:
		return nil
	default:
	}
	if s.Baud() != DefaultBaud {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		s.SetBaud(ctx, DefaultBaud)
		cancel()
	}
	s.kill(ErrClosed)
	return nil
}

// Monitor copies device log lines from p to log until ctx is done or p
// fails. Frames on the line are skipped.
func Monitor(ctx context.Context, p io.Reader, log func(line string)) error {
	lines := &protocol.Lines{Line: log}
	dec := protocol.NewDecoder(hostMaxPayload, func(f protocol.Frame) {
		if f.Type == protocol.TypeLog {
			lines.Write(f.Payload)
		}
	}, func(b []byte) { lines.Write(b) })
	stop := make(chan struct{})
	defer close(stop)
	reads := protocol.ReadChunks(p, stop)
	idle := time.NewTimer(time.Hour)
	defer idle.Stop()
	for {
		select {
		case <-ctx.Done():
			lines.Flush()
			return nil
		case c := <-reads:
			dec.Write(c.B)
			idle.Reset(idleTimeout)
			if c.Err != nil {
				lines.Flush()
				if errors.Is(c.Err, io.EOF) {
					return nil
				}
				return c.Err
			}
		case <-idle.C:
			dec.Idle()
			lines.Flush()
		}
	}
}
