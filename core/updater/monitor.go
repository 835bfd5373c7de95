package updater

import (
	"context"
	"errors"
	"io"

	"github.com/gota-dev/gota/protocol"
)

// Monitor copies device log lines from p to log until ctx is done or p
// fails. Frames on the line are skipped.
func Monitor(ctx context.Context, p io.Reader, log func(line string)) error {
	lines := &protocol.Lines{Line: log}
	loop := protocol.ReadLoop{
		Decoder: protocol.NewDecoder(hostMaxPayload, func(f protocol.Frame) {
			if f.Type == protocol.TypeLog {
				lines.Write(f.Payload)
			}
		}, func(b []byte) { lines.Write(b) }),
		Quiet: lines.Flush,
	}
	err := loop.Run(p, ctx.Done())
	lines.Flush()
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}
