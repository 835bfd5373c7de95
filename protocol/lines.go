package protocol

import "strings"

// Lines turns the log text a Decoder emits into lines: it splits at '\n',
// drops a trailing '\r', and hands each complete line to Line. Incomplete
// text waits for its newline (or Flush).
type Lines struct {
	Line    func(line string)
	partial []byte
}

// maxLine bounds a line held waiting for its newline; longer text is
// passed on in pieces so a device that never prints '\n' is still seen.
const maxLine = 4096

// Write adds log text.
func (l *Lines) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := strings.IndexByte(string(p), '\n')
		if i < 0 {
			l.partial = append(l.partial, p...)
			if len(l.partial) >= maxLine {
				l.Flush()
			}
			break
		}
		l.partial = append(l.partial, p[:i]...)
		p = p[i+1:]
		l.emit()
	}
	return n, nil
}

// Flush passes on a pending incomplete line, if any.
func (l *Lines) Flush() {
	if len(l.partial) > 0 {
		l.emit()
	}
}

func (l *Lines) emit() {
	s := strings.TrimSuffix(string(l.partial), "\r")
	l.partial = l.partial[:0]
	if l.Line != nil {
		l.Line(s)
	}
}
