package cagent

/*
#include "host.h"
*/
import "C"

import (
	"time"
	"unsafe"

	"github.com/gota-dev/gota/core/partition"
	"github.com/gota-dev/gota/firmware-agent/device"
)

// The host ESP-IDF's partition and OTA calls (esp_host.c), on the device.

//export goPartitions
func goPartitions(h C.uintptr_t, out *C.esp_partition_t, max C.int) C.int {
	a := agentOf(h)
	parts := unsafe.Slice(out, int(max))
	n := 0
	for _, p := range a.dev.Table().Partitions {
		if n == len(parts) {
			break
		}
		cp := &parts[n]
		*cp = C.esp_partition_t{}
		cp._type = C.esp_partition_type_t(p.Type)
		cp.subtype = C.esp_partition_subtype_t(p.Subtype)
		cp.address = C.uint32_t(p.Offset)
		cp.size = C.uint32_t(p.Size)
		cp.erase_size = 4096
		for i := 0; i < len(p.Name) && i < 16; i++ {
			cp.label[i] = C.char(p.Name[i])
		}
		n++
	}
	return C.int(n)
}

// index returns the table index of the partition named label, or -1.
func (a *Agent) index(label string) C.int {
	for i, p := range a.dev.Table().Partitions {
		if p.Name == label && i < C.HOST_MAX_PARTS {
			return C.int(i)
		}
	}
	return -1
}

func (a *Agent) part(i C.int) *partition.Partition {
	ps := a.dev.Table().Partitions
	if i < 0 || int(i) >= len(ps) {
		return nil
	}
	return &ps[i]
}

//export goRunning
func goRunning(h C.uintptr_t) C.int {
	a := agentOf(h)
	if p := a.dev.Running(); p != nil {
		return a.index(p.Name)
	}
	return -1
}

//export goBoot
func goBoot(h C.uintptr_t) C.int {
	a := agentOf(h)
	info, err := a.deviceInfo()
	if err != nil {
		return -1
	}
	return a.index(info.Next)
}

// goNextUpdate is esp_ota_get_next_update_partition(NULL): the OTA slot
// after the running one, in subtype order, wrapping (esp_ota_ops.c).
//
//export goNextUpdate
func goNextUpdate(h C.uintptr_t) C.int {
	a := agentOf(h)
	run := a.dev.Running()
	var first, after *partition.Partition
	seen := false
	for sub := partition.SubtypeOTA0; sub < partition.SubtypeTest; sub++ {
		for i := range a.dev.Table().Partitions {
			p := &a.dev.Table().Partitions[i]
			if p.Type != partition.TypeApp || p.Subtype != sub {
				continue
			}
			if first == nil {
				first = p
			}
			if run != nil && p.Name == run.Name {
				seen = true
			} else if seen && after == nil {
				after = p
			}
		}
	}
	if after == nil {
		after = first
	}
	if after == nil {
		return -1
	}
	return a.index(after.Name)
}

//export goOtaBegin
func goOtaBegin(h C.uintptr_t, idx C.int, sequential C.int) C.int {
	a := agentOf(h)
	a.changed()
	p := a.part(idx)
	if p == nil {
		return C.int(device.ErrNotFound)
	}
	var err error
	if sequential != 0 {
		err = a.dev.CommenceSequential(int(p.Size))
	} else {
		err = a.dev.Commence()
	}
	if err != nil {
		return code(err)
	}
	if t, _, ok := a.dev.Target(); !ok || t.Name != p.Name {
		return C.int(device.ErrInvalidArg)
	}
	a.mu.Lock()
	a.target = p.Name
	a.mu.Unlock()
	return 0
}

//export goOtaWrite
func goOtaWrite(h C.uintptr_t, buf *C.uint8_t, n C.int) C.int {
	a := agentOf(h)
	a.changed()
	return code(a.dev.Write(bytesOf(buf, n)))
}

//export goOtaEnd
func goOtaEnd(h C.uintptr_t) C.int {
	a := agentOf(h)
	a.changed()
	if err := a.dev.Complete(false); err != nil {
		return code(err)
	}
	a.mu.Lock()
	a.ended = a.target
	a.mu.Unlock()
	return 0
}

//export goOtaSetBoot
func goOtaSetBoot(h C.uintptr_t, idx C.int) C.int {
	a := agentOf(h)
	p := a.part(idx)
	a.mu.Lock()
	defer a.mu.Unlock()
	if p == nil || p.Name != a.ended {
		return C.int(device.ErrNotSupported)
	}
	return 0
}

//export goAccept
func goAccept(h C.uintptr_t) C.int {
	a := agentOf(h)
	a.changed()
	return code(a.dev.Accept())
}

//export goRollback
func goRollback(h C.uintptr_t) C.int {
	a := agentOf(h)
	a.changed()
	return code(a.dev.Rollback())
}

//export goRestart
func goRestart(h C.uintptr_t) {
	a := agentOf(h)
	a.changed()
	a.dev.Reboot()
}

//export goFlashRead
func goFlashRead(h C.uintptr_t, addr C.uint32_t, buf *C.uint8_t, n C.int) C.int {
	if _, err := agentOf(h).dev.Flash().ReadAt(bytesOf(buf, n), int64(addr)); err != nil {
		return C.int(device.ErrFlashOpFail)
	}
	return 0
}

// deviceInfo returns the device's partition states and images. One INFO
// request asks for them per partition and per key; the device verifies
// every image each time, so a snapshot serves for infoTTL unless an OTA
// call or a reboot changed the flash.
func (a *Agent) deviceInfo() (device.Info, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.info != nil && time.Since(a.infoAt) < infoTTL {
		return *a.info, nil
	}
	info, err := a.dev.Info()
	if err != nil {
		return info, err
	}
	a.info, a.infoAt = &info, time.Now()
	return info, nil
}

const infoTTL = 250 * time.Millisecond

// changed drops the snapshot of deviceInfo.
func (a *Agent) changed() {
	a.mu.Lock()
	a.info = nil
	a.mu.Unlock()
}

// partInfo returns the device's view of partition idx.
func (a *Agent) partInfo(idx C.int) (device.PartitionInfo, bool) {
	p := a.part(idx)
	info, err := a.deviceInfo()
	if p == nil || err != nil {
		return device.PartitionInfo{}, false
	}
	for _, pi := range info.Partitions {
		if pi.Label == p.Name {
			return pi, true
		}
	}
	return device.PartitionInfo{}, false
}

var states = map[string]uint32{"new": 0, "testing": 1, "valid": 2, "invalid": 3, "aborted": 4, "undefined": 0xFFFFFFFF}

//export goState
func goState(h C.uintptr_t, idx C.int, st *C.uint32_t) C.int {
	pi, ok := agentOf(h).partInfo(idx)
	if !ok {
		return C.int(device.ErrInvalidArg)
	}
	s, ok := states[pi.State]
	if !ok {
		return C.int(device.ErrNotFound)
	}
	*st = C.uint32_t(s)
	return 0
}

//export goVerify
func goVerify(h C.uintptr_t, idx C.int, length *C.uint32_t, digest *C.uint8_t, appended *C.int) C.int {
	pi, ok := agentOf(h).partInfo(idx)
	if !ok {
		return C.int(device.ErrInvalidArg)
	}
	if pi.ImageLen == 0 {
		return C.int(device.ErrImageInvalid)
	}
	*length = C.uint32_t(pi.ImageLen)
	*appended = 0
	if pi.SHA256 != nil {
		copy(bytesOf(digest, 32), pi.SHA256)
		*appended = 1
	}
	return 0
}

var chipModels = map[string]int{"esp32": 1, "esp32s2": 2, "esp32s3": 9, "esp32c3": 5, "esp32c2": 12, "esp32c6": 13, "esp32h2": 16}

//export goChip
func goChip(h C.uintptr_t, model *C.int, rev *C.int) {
	chip, r := agentOf(h).dev.Chip()
	*model = C.int(chipModels[chip.String()])
	*rev = C.int(r)
}
