package romloader

// SLIP framing (RFC 1055) as the ROM loader uses it: every packet starts
// and ends with 0xC0; 0xC0 and 0xDB inside are sent as 0xDB 0xDC and
// 0xDB 0xDD (esptool docs/en/advanced-topics/serial-protocol.rst).
const (
	slipEnd    = 0xC0
	slipEsc    = 0xDB
	slipEscEnd = 0xDC
	slipEscEsc = 0xDD
)

// appendSLIP appends p, framed, to dst.
func appendSLIP(dst, p []byte) []byte {
	dst = append(dst, slipEnd)
	for _, c := range p {
		switch c {
		case slipEnd:
			dst = append(dst, slipEsc, slipEscEnd)
		case slipEsc:
			dst = append(dst, slipEsc, slipEscEsc)
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, slipEnd)
}

// slipDecoder splits a byte stream into SLIP frames; bytes outside
// frames (the ROM's boot messages, an app's log) go to text.
type slipDecoder struct {
	inFrame bool
	esc     bool
	frame   []byte
	text    []byte
	bad     int // frames dropped for a bad escape
}

// maxFrame bounds a frame: the largest reply (READ_FLASH data, MD5) is
// far below it, so a longer run is noise and is dropped.
const maxFrame = 0x10000

// feed decodes b and returns the frames completed in it.
func (d *slipDecoder) feed(b []byte) [][]byte {
	var frames [][]byte
	for _, c := range b {
		if !d.inFrame {
			if c == slipEnd {
				d.inFrame, d.esc, d.frame = true, false, d.frame[:0]
				continue
			}
			d.text = append(d.text, c)
			continue
		}
		switch {
		case c == slipEnd:
			if len(d.frame) == 0 {
				continue // back-to-back END bytes: an empty frame or a new start
			}
			frames = append(frames, append([]byte(nil), d.frame...))
			d.inFrame = false
		case d.esc:
			d.esc = false
			switch c {
			case slipEscEnd:
				d.frame = append(d.frame, slipEnd)
			case slipEscEsc:
				d.frame = append(d.frame, slipEsc)
			default:
				d.bad++
				d.inFrame = false
			}
		case c == slipEsc:
			d.esc = true
		default:
			d.frame = append(d.frame, c)
			if len(d.frame) > maxFrame {
				d.bad++
				d.inFrame = false
			}
		}
	}
	return frames
}

// takeText returns and clears the bytes seen outside frames.
func (d *slipDecoder) takeText() []byte {
	t := d.text
	d.text = nil
	return t
}
