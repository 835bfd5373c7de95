package updater

import (
	"context"
	"errors"
	"fmt"

	"github.com/gota-dev/gota/protocol"
)

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
	di := &DeviceInfo{Chip: r.Chip, ChipRev: r.ChipRev, Running: r.Running, Next: r.Next, Partitions: r.Partitions, Agent: caps.Agent, Caps: caps}
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
