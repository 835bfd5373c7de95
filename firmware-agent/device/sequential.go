package device

// CommenceSequential is esp_ota_begin(image_size) with
// OTA_WITH_SEQUENTIAL_WRITES, the mode NodeMCU does not use but the Go
// agent does: instead of erasing the whole target partition up front
// (seconds on a real chip), each sector is erased just before its first
// write, so erasing overlaps with receiving. size must fit the partition.
//
// API CONTRACT (stub; to be implemented by the lead once the device lands).
func (d *Device) CommenceSequential(size int) error { panic("TODO") }
