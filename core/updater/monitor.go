package updater

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/gota-dev/gota/protocol"
)

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
