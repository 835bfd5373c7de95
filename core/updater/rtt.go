package updater

import (
	"time"

	"github.com/gota-dev/gota/protocol"
)

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

// rtt is the smoothed round trip of small requests without line time,
// rttDefault until measured.
func (s *Session) rtt() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srtt == 0 {
		return rttDefault
	}
	return s.srtt
}

// rtoBase is the part of a timeout that does not depend on the bytes in
// flight: the round trip, with room for scheduling jitter.
func (s *Session) rtoBase() time.Duration { return rtoMin + 3*s.rtt() }
