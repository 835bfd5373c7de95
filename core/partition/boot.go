package partition

import (
	"bytes"
	"crypto/md5"
	"encoding/binary"
)

// MaxEntries is ESP_PARTITION_TABLE_MAX_ENTRIES: the records that fit in
// MaxTableSize.
const MaxEntries = MaxTableSize / EntrySize

// DecodeAsBootloader reads a binary table the way the second-stage
// bootloader does: esp_partition_table_verify (ESP-IDF v5.1.3,
// bootloader_support/src/flash_partitions.c) followed by
// bootloader_utility_load_partition_table. Unlike Decode (which follows
// gen_esp32part.py) it
//
//   - ends the table at the first record whose magic is 0xFFFF and whose
//     type and subtype are 0xFF, whatever the rest of the record holds;
//   - refuses a partition whose offset or end lies past chipSize, the
//     flash size the bootloader's own image header declares
//     (update_flash_config, bootloader_flash_config_esp32.c);
//   - refuses a table with no terminator among the MaxEntries records;
//   - takes any label bytes and flags as they are.
//
// Error texts are the lines ESP-IDF logs under the "flash_parts" tag. b
// must hold MaxTableSize bytes (the bootloader maps that much).
func DecodeAsBootloader(b []byte, chipSize uint32) (*Table, error) {
	t := &Table{}
	for i := 0; i < MaxEntries; i++ {
		o := i * EntrySize
		if o+EntrySize > len(b) {
			break
		}
		rec := b[o : o+EntrySize]
		magic := binary.LittleEndian.Uint16(rec)
		switch {
		case magic == Magic:
			off := binary.LittleEndian.Uint32(rec[4:])
			size := binary.LittleEndian.Uint32(rec[8:])
			// uint32 arithmetic, as in C: an end that wraps passes.
			if off > chipSize || off+size > chipSize {
				return nil, errorf(ErrRange, "partition %d invalid - offset 0x%x size 0x%x exceeds flash chip size 0x%x",
					i, off, size, chipSize)
			}
			label := rec[12:28]
			if n := bytes.IndexByte(label, 0); n >= 0 {
				label = label[:n]
			}
			t.Partitions = append(t.Partitions, Partition{
				Name: string(label), Type: Type(rec[2]), Subtype: rec[3],
				Offset: off, Size: size, Flags: binary.LittleEndian.Uint32(rec[28:]),
			})
		case magic == MD5Magic:
			if t.HasMD5 {
				return nil, errorf(ErrMD5, "Only one MD5 checksum is allowed")
			}
			sum := md5.Sum(b[:o])
			if !bytes.Equal(rec[16:], sum[:]) {
				return nil, errorf(ErrMD5, "Incorrect MD5 checksum")
			}
			t.HasMD5 = true
		case magic == 0xFFFF && rec[2] == 0xFF && rec[3] == 0xFF:
			return t, nil
		default:
			return nil, errorf(ErrMagic, "partition %d invalid magic number 0x%x", i, magic)
		}
	}
	return nil, errorf(ErrLength, "partition table has no terminating entry, not valid")
}
