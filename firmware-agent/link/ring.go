package link

// ring is a fixed-size byte FIFO.
type ring struct {
	b    []byte
	r, n int
}

func newRing(size int) ring { return ring{b: make([]byte, size)} }

func (q *ring) len() int  { return q.n }
func (q *ring) free() int { return len(q.b) - q.n }
func (q *ring) reset()    { q.r, q.n = 0, 0 }

func (q *ring) read(p []byte) int {
	n := 0
	for n < len(p) && q.n > 0 {
		end := q.r + q.n
		if end > len(q.b) {
			end = len(q.b)
		}
		k := copy(p[n:], q.b[q.r:end])
		n += k
		q.r = (q.r + k) % len(q.b)
		q.n -= k
	}
	return n
}

func (q *ring) write(p []byte) int {
	n := 0
	for n < len(p) && q.free() > 0 {
		w := (q.r + q.n) % len(q.b)
		end := len(q.b)
		if w < q.r {
			end = q.r
		}
		k := copy(q.b[w:end], p[n:])
		n += k
		q.n += k
	}
	return n
}

func (q *ring) writeByte(c byte) {
	q.b[(q.r+q.n)%len(q.b)] = c
	q.n++
}
