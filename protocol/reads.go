package protocol

import "io"

// Chunk is what one Read of a line returned.
type Chunk struct {
	B   []byte
	Err error
}

// ReadChunks reads r on its own goroutine and delivers every Read's
// bytes and error on the returned channel, so a loop can select on the
// line alongside its timers. It stops after a Read fails (that chunk is
// delivered) or when stop is closed; a Read already blocked then still
// returns, into a fresh buffer nobody reads.
func ReadChunks(r io.Reader, stop <-chan struct{}) <-chan Chunk {
	reads := make(chan Chunk, 4)
	go func() {
		for {
			buf := make([]byte, 4096)
			n, err := r.Read(buf)
			select {
			case reads <- Chunk{buf[:n], err}:
			case <-stop:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return reads
}
