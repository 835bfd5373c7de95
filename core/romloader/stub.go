package romloader

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Stub is a flasher stub: a small program the ROM loads into RAM and
// starts; it speaks the same protocol faster (16 KiB blocks, writes
// behind its replies) and adds ERASE_FLASH, ERASE_REGION and READ_FLASH.
//
// Gota ships no stub. It loads the JSON files published with esptool and
// esptool-js at run time: esptool-js 0.7.0's lib/targets/stub_flasher/*.json
// are esp-flasher-stub v1.2.2 (the ESP32 text segment's SHA-256 equals that
// of esptool's targets/stub_flasher/2/esp32.json, whose README states the
// binaries are dual licensed Apache-2.0 or MIT, sources at
// github.com/espressif/esp-flasher-stub/releases/tag/v1.2.2). The licence
// would allow shipping them; the project's rule is not to commit fetched
// binaries, so they stay in the npm package.
type Stub struct {
	Entry     uint32
	TextStart uint32
	DataStart uint32
	Text      []byte
	Data      []byte
}

// stubJSON is the published format: base64 segments and addresses.
type stubJSON struct {
	Entry     *uint32 `json:"entry"`
	Text      string  `json:"text"`
	TextStart uint32  `json:"text_start"`
	Data      string  `json:"data"`
	DataStart uint32  `json:"data_start"`
}

// ParseStub decodes a stub JSON file.
func ParseStub(b []byte) (*Stub, error) {
	var j stubJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("stub: %w", err)
	}
	if j.Entry == nil || j.Text == "" {
		return nil, errors.New(`stub: "entry" and "text" are required`)
	}
	s := &Stub{Entry: *j.Entry, TextStart: j.TextStart, DataStart: j.DataStart}
	var err error
	if s.Text, err = base64.StdEncoding.DecodeString(j.Text); err != nil {
		return nil, fmt.Errorf("stub: text: %w", err)
	}
	if s.Data, err = base64.StdEncoding.DecodeString(j.Data); err != nil {
		return nil, fmt.Errorf("stub: data: %w", err)
	}
	return s, nil
}

// ramBlock is esptool's ESP_RAM_BLOCK, the MEM_DATA block size.
const ramBlock = 0x1800

// RunStub uploads s with MEM_BEGIN/MEM_DATA, starts it with MEM_END and
// waits for its "OHAI" greeting (serial-protocol.rst, "Initialization").
func (c *Client) RunStub(ctx context.Context, s *Stub) error {
	if c.stub {
		return nil
	}
	for _, seg := range []struct {
		addr uint32
		data []byte
	}{{s.TextStart, s.Text}, {s.DataStart, s.Data}} {
		if len(seg.data) == 0 {
			continue
		}
		if err := c.memLoad(ctx, seg.addr, seg.data); err != nil {
			return fmt.Errorf("upload stub: %w", err)
		}
	}
	// The ROM may jump before its MEM_END reply leaves (esptool
	// mem_finish): a lost reply is no error, OHAI decides.
	end := le.AppendUint32(le.AppendUint32(nil, 0), s.Entry)
	if _, err := c.command(ctx, opMemEnd, end, 0, 200*time.Millisecond); err != nil && !errors.Is(err, ErrTimeout) {
		return fmt.Errorf("start stub: %w", err)
	}
	deadline := time.Now().Add(defaultTimeout)
	for time.Now().Before(deadline) {
		f, err := c.readFrame(ctx, time.Until(deadline))
		if err != nil {
			break
		}
		if bytes.Equal(f, []byte("OHAI")) {
			c.stub, c.statusLen = true, 2
			return nil
		}
	}
	return errors.New("start stub: no OHAI greeting; the stub does not run (chip and stub file may not match)")
}

func (c *Client) memLoad(ctx context.Context, addr uint32, data []byte) error {
	blocks := (len(data) + ramBlock - 1) / ramBlock
	begin := le.AppendUint32(nil, uint32(len(data)))
	begin = le.AppendUint32(begin, uint32(blocks))
	begin = le.AppendUint32(begin, ramBlock)
	begin = le.AppendUint32(begin, addr)
	if _, err := c.command(ctx, opMemBegin, begin, 0, defaultTimeout); err != nil {
		return err
	}
	for seq := 0; seq < blocks; seq++ {
		blk := data[seq*ramBlock : min((seq+1)*ramBlock, len(data))]
		p := le.AppendUint32(nil, uint32(len(blk)))
		p = le.AppendUint32(p, uint32(seq))
		p = le.AppendUint32(p, 0)
		p = le.AppendUint32(p, 0)
		p = append(p, blk...)
		if _, err := c.command(ctx, opMemData, p, checksum(blk), defaultTimeout); err != nil {
			return err
		}
	}
	return nil
}

// ReadFlash reads size bytes at offset through the stub's READ_FLASH:
// the stub sends sector-sized frames, the host acknowledges the running
// total after each, and a final frame carries the MD5 of all of it. The
// ROM of the ESP32 family has no flash read (esptool read_flash_slow is
// ESP8266 only).
func (c *Client) ReadFlash(ctx context.Context, offset uint32, size int, progress Progress) ([]byte, error) {
	if !c.stub {
		return nil, errors.New("read flash: the ROM loader cannot read flash; a flasher stub is needed (give --stub)")
	}
	const sector, inflight = 0x1000, 64
	b := le.AppendUint32(nil, offset)
	b = le.AppendUint32(b, uint32(size))
	b = le.AppendUint32(b, sector)
	b = le.AppendUint32(b, inflight)
	if _, err := c.command(ctx, opReadFlash, b, 0, defaultTimeout); err != nil {
		return nil, fmt.Errorf("read flash 0x%x+0x%x: %w", offset, size, err)
	}
	data := make([]byte, 0, size)
	for len(data) < size {
		f, err := c.readFrame(ctx, defaultTimeout)
		if err != nil {
			return nil, fmt.Errorf("read flash at 0x%x: %w", offset+uint32(len(data)), err)
		}
		data = append(data, f...)
		if len(data) < size && len(f) < sector {
			return nil, fmt.Errorf("read flash at 0x%x: a %d-byte frame where %d were due", offset+uint32(len(data)), len(f), sector)
		}
		if _, err := c.port.Write(appendSLIP(nil, le.AppendUint32(nil, uint32(len(data))))); err != nil {
			return nil, fmt.Errorf("read flash: acknowledge: %w", err)
		}
		if progress != nil {
			progress(len(data), size)
		}
	}
	if len(data) > size {
		return nil, fmt.Errorf("read flash: %d bytes where %d were asked for", len(data), size)
	}
	sum, err := c.readFrame(ctx, defaultTimeout)
	if err != nil {
		return nil, fmt.Errorf("read flash: digest: %w", err)
	}
	if want := md5.Sum(data); !bytes.Equal(sum, want[:]) {
		return nil, fmt.Errorf("read flash: MD5 %x sent, %x computed over the data", sum, want)
	}
	return data, nil
}
