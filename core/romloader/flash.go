package romloader

import (
	"bytes"
	"compress/zlib"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Block sizes of FLASH_DATA/FLASH_DEFL_DATA (esptool FLASH_WRITE_SIZE):
// the ROM takes 1 KiB, the stub 16 KiB.
const (
	romBlockSize  = 0x400
	stubBlockSize = 0x4000
)

// writeAttempts is esptool's WRITE_BLOCK_ATTEMPTS.
const writeAttempts = 3

// ChangeBaud switches the loader and the port to baud (CHANGE_BAUDRATE:
// new rate, and the old one for the stub, 0 for the ROM). The reply
// comes at the old rate.
func (c *Client) ChangeBaud(ctx context.Context, baud int) error {
	old := 0
	if c.stub {
		old = c.baud
	}
	b := make([]byte, 8)
	le.PutUint32(b, uint32(baud))
	le.PutUint32(b[4:], uint32(old))
	if _, err := c.command(ctx, opChangeBaudrate, b, 0, defaultTimeout); err != nil {
		return fmt.Errorf("change rate to %d: %w", baud, err)
	}
	if err := c.port.SetBaud(baud); err != nil {
		return fmt.Errorf("change rate to %d: %w", baud, err)
	}
	c.baud = baud
	c.opt.Sleep(50 * time.Millisecond) // esptool: get rid of what arrives during the switch
	c.flushInput()
	return nil
}

// Progress reports bytes of uncompressed data written so far.
type Progress func(done, total int)

// WriteFlash writes data at offset compressed (FLASH_DEFL_*), then checks
// the written range's MD5 against data. The ROM erases the range (rounded
// up to 1 KiB blocks, whole 4 KiB sectors) at FLASH_DEFL_BEGIN.
func (c *Client) WriteFlash(ctx context.Context, offset uint32, data []byte, progress Progress) error {
	var z bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&z, zlib.BestCompression)
	zw.Write(data)
	zw.Close()
	comp := z.Bytes()

	bs := romBlockSize
	if c.stub {
		bs = stubBlockSize
	}
	blocks := (len(comp) + bs - 1) / bs
	writeSize := uint32(len(data))
	timeout := defaultTimeout
	if !c.stub {
		// The ROM wants the size rounded up to whole blocks and erases it
		// before it answers.
		writeSize = uint32((len(data) + bs - 1) / bs * bs)
		timeout = timeoutPerMB(eraseRegionPerMB, int(writeSize))
	}
	params := le.AppendUint32(nil, writeSize)
	params = le.AppendUint32(params, uint32(blocks))
	params = le.AppendUint32(params, uint32(bs))
	params = le.AppendUint32(params, offset)
	if !c.stub && c.info != nil && c.info.def.encryptedBegin {
		params = le.AppendUint32(params, 0) // not encrypted
	}
	if _, err := c.commandRetry(ctx, opFlashDeflBegin, params, 0, timeout); err != nil {
		return fmt.Errorf("begin write at 0x%x (%d bytes): %w", offset, len(data), err)
	}
	inflated := blockOutputs(comp, bs)
	for seq := 0; seq < blocks; seq++ {
		blk := comp[seq*bs : min((seq+1)*bs, len(comp))]
		// The ROM inflates and writes each block before it answers
		// (esptool: ERASE_WRITE_TIMEOUT_PER_MB of what it inflates to).
		to := timeoutPerMB(eraseWritePerMB, inflated[seq])
		if err := c.writeBlock(ctx, seq, blk, to); err != nil {
			return fmt.Errorf("write at 0x%x, block %d of %d: %w", offset, seq+1, blocks, err)
		}
		if progress != nil {
			progress(min(len(data), (seq+1)*len(data)/blocks), len(data))
		}
	}
	if c.stub {
		// The stub writes behind its replies; FLASH_BEGIN(0, 0) and
		// FLASH_DEFL_END(stay) make it finish (esptool write_flash).
		if err := c.finishStubWrite(ctx); err != nil {
			return err
		}
	}
	return c.VerifyMD5(ctx, offset, data)
}

// writeBlock sends one compressed block, retrying line errors.
func (c *Client) writeBlock(ctx context.Context, seq int, blk []byte, timeout time.Duration) error {
	payload := le.AppendUint32(nil, uint32(len(blk)))
	payload = le.AppendUint32(payload, uint32(seq))
	payload = le.AppendUint32(payload, 0)
	payload = le.AppendUint32(payload, 0)
	payload = append(payload, blk...)
	var err error
	for attempt := 0; attempt < writeAttempts; attempt++ {
		_, err = c.command(ctx, opFlashDeflData, payload, checksum(blk), timeout)
		if err == nil {
			return nil
		}
		var se *StatusError
		if errors.As(err, &se) && !se.Retryable() {
			return err
		}
		if ctx.Err() != nil {
			return err
		}
	}
	return err
}

// blockOutputs returns, for each block of bs bytes of the zlib stream
// comp, how many bytes inflate from it (esptool-js tracks the same with
// pako's Inflate). flate reads a flate.Reader byte by byte, so the
// count of compressed bytes consumed is exact to a few bytes of lookahead.
func blockOutputs(comp []byte, bs int) []int {
	out := make([]int, (len(comp)+bs-1)/bs)
	cr := &countingReader{r: bytes.NewReader(comp)}
	zr, err := zlib.NewReader(cr)
	if err != nil || len(out) == 0 {
		return out
	}
	buf := make([]byte, 512)
	for {
		n, err := zr.Read(buf)
		k := min(max(cr.n-1, 0)/bs, len(out)-1)
		out[k] += n
		if err != nil {
			return out
		}
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r *bytes.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func (c *countingReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.n++
	}
	return b, err
}

func (c *Client) finishStubWrite(ctx context.Context) error {
	begin := make([]byte, 16)
	le.PutUint32(begin[8:], stubBlockSize)
	if _, err := c.command(ctx, opFlashBegin, begin, 0, defaultTimeout); err != nil {
		return fmt.Errorf("finish write: %w", err)
	}
	if _, err := c.command(ctx, opFlashDeflEnd, le.AppendUint32(nil, 1), 0, defaultTimeout); err != nil {
		return fmt.Errorf("finish write: %w", err)
	}
	return nil
}

// MD5Error says the flash does not hold what was written.
type MD5Error struct {
	Offset      uint32
	Size        int
	Flash, Want string
}

func (e *MD5Error) Error() string {
	return fmt.Sprintf("verify 0x%x..0x%x: flash MD5 %s, data MD5 %s", e.Offset, e.Offset+uint32(e.Size), e.Flash, e.Want)
}

// FlashMD5 returns the MD5 of size bytes of flash at offset
// (SPI_FLASH_MD5; the ROM answers 32 hex digits, the stub 16 bytes).
func (c *Client) FlashMD5(ctx context.Context, offset uint32, size int) (string, error) {
	b := le.AppendUint32(nil, offset)
	b = le.AppendUint32(b, uint32(size))
	b = le.AppendUint32(b, 0)
	b = le.AppendUint32(b, 0)
	r, err := c.commandRetry(ctx, opSPIFlashMD5, b, 0, timeoutPerMB(md5PerMB, size))
	if err != nil {
		return "", fmt.Errorf("MD5 of 0x%x..0x%x: %w", offset, offset+uint32(size), err)
	}
	switch len(r.data) {
	case 32:
		return string(bytes.ToLower(r.data)), nil
	case 16:
		return hex.EncodeToString(r.data), nil
	}
	return "", fmt.Errorf("MD5 of 0x%x: reply has %d bytes, want 32 hex digits or 16 bytes", offset, len(r.data))
}

// VerifyMD5 compares the flash's MD5 of the range with data's.
func (c *Client) VerifyMD5(ctx context.Context, offset uint32, data []byte) error {
	got, err := c.FlashMD5(ctx, offset, len(data))
	if err != nil {
		return err
	}
	sum := md5.Sum(data)
	if want := hex.EncodeToString(sum[:]); got != want {
		return &MD5Error{Offset: offset, Size: len(data), Flash: got, Want: want}
	}
	return nil
}

// EraseFlash erases the whole flash of size bytes. The stub has
// ERASE_FLASH; the ROM has no erase command, but FLASH_BEGIN erases the
// range it is given before it answers, so a FLASH_BEGIN over the whole
// flash with no data blocks erases it.
func (c *Client) EraseFlash(ctx context.Context, size int) error {
	if c.stub {
		if _, err := c.command(ctx, opEraseFlash, nil, 0, 120*time.Second); err != nil {
			return fmt.Errorf("erase flash: %w", err)
		}
		return nil
	}
	return c.EraseRegion(ctx, 0, size)
}

// EraseRegion erases size bytes at offset (sector multiples).
func (c *Client) EraseRegion(ctx context.Context, offset uint32, size int) error {
	if offset%0x1000 != 0 || size%0x1000 != 0 {
		return fmt.Errorf("erase 0x%x+0x%x: offset and size must be multiples of 0x1000", offset, size)
	}
	to := timeoutPerMB(eraseRegionPerMB, size)
	if c.stub {
		b := le.AppendUint32(le.AppendUint32(nil, offset), uint32(size))
		if _, err := c.command(ctx, opEraseRegion, b, 0, to); err != nil {
			return fmt.Errorf("erase 0x%x+0x%x: %w", offset, size, err)
		}
		return nil
	}
	b := le.AppendUint32(nil, uint32(size))
	b = le.AppendUint32(b, 0)
	b = le.AppendUint32(b, romBlockSize)
	b = le.AppendUint32(b, offset)
	if c.info != nil && c.info.def.encryptedBegin {
		b = le.AppendUint32(b, 0)
	}
	if _, err := c.command(ctx, opFlashBegin, b, 0, to); err != nil {
		return fmt.Errorf("erase 0x%x+0x%x: %w", offset, size, err)
	}
	return nil
}

// Baud is the current line rate.
func (c *Client) Baud() int { return c.baud }

// Info returns what Detect found, or nil.
func (c *Client) Info() *ChipInfo { return c.info }

// CanReset reports whether the client drives DTR/RTS.
func (c *Client) CanReset() bool { return c.opt.Signals != nil }

// RunApp leaves the loader into the flash boot without a reset line:
// FLASH_BEGIN of nothing, then FLASH_END asking to run user code (esptool
// ESPLoader.run). The ROM may jump before its reply leaves, so a missing
// reply is not an error.
func (c *Client) RunApp(ctx context.Context) error {
	b := make([]byte, 16, 20)
	le.PutUint32(b[8:], romBlockSize)
	if !c.stub && c.info != nil && c.info.def.encryptedBegin {
		b = append(b, 0, 0, 0, 0)
	}
	if _, err := c.command(ctx, opFlashBegin, b, 0, defaultTimeout); err != nil {
		return fmt.Errorf("run the app: %w", err)
	}
	_, err := c.command(ctx, opFlashEnd, le.AppendUint32(nil, 1), 0, 500*time.Millisecond)
	if err != nil && !errors.Is(err, ErrTimeout) {
		return fmt.Errorf("run the app: %w", err)
	}
	return nil
}
