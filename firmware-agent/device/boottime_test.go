package device

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gota-dev/gota/core/espimage"
	"github.com/gota-dev/gota/core/partition"
	"github.com/gota-dev/gota/firmware-agent/flash"
	"github.com/gota-dev/gota/internal/shareddata"
)

// stamped is one "I (NNN) tag: text" line of a boot log.
type stamped struct {
	ms   int64
	text string // "tag: text"
}

var stampRE = regexp.MustCompile(`^[IWE] \((\d+)\) (.*)$`)

func stamps(t *testing.T, log string) []stamped {
	t.Helper()
	var out []stamped
	for _, l := range strings.Split(log, "\n") {
		m := stampRE.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		ms, err := strconv.ParseInt(m[1], 10, 64)
		must(t, err)
		out = append(out, stamped{ms, m[2]})
	}
	if len(out) == 0 {
		t.Fatalf("no timestamped lines in %q", log)
	}
	return out
}

// at returns the timestamp of the first line that starts with prefix.
func at(t *testing.T, ss []stamped, prefix string) int64 {
	t.Helper()
	for _, s := range ss {
		if strings.HasPrefix(s.text, prefix) {
			return s.ms
		}
	}
	t.Fatalf("no line %q", prefix)
	return 0
}

// realLog is a published ESP32 boot log (40 MHz DIO): the segments of
// its app and the timestamps it shows. The package doc cites each.
type realLog struct {
	name     string
	table    []partition.Partition
	app      espimage.AppDesc
	segments []struct {
		load uint32 // vaddr
		size int
	}
	// Timestamps of the real log, 0 where not compared.
	banner, seg0, loaded, appMain int64
	tolerance                     int64 // percent
}

type seg = struct {
	load uint32
	size int
}

var (
	nvs     = partition.Partition{Name: "nvs", Type: partition.TypeData, Subtype: partition.SubtypeNVS, Offset: 0x9000, Size: 0x6000}
	otaData = partition.Partition{Name: "otadata", Type: partition.TypeData, Subtype: partition.SubtypeOTAData, Offset: 0xD000, Size: 0x2000}
	phyInit = partition.Partition{Name: "phy_init", Type: partition.TypeData, Subtype: partition.SubtypePHY, Offset: 0xF000, Size: 0x1000}
	factory = partition.Partition{Name: "factory", Type: partition.TypeApp, Subtype: partition.SubtypeFactory, Offset: 0x10000, Size: 0x100000}
)

var realLogs = []realLog{
	{
		// ESP-IDF v5.1.4, ESP32 v3.0, espressif/esp-self-reflasher
		// boot_swap_embedded_example (see the package doc).
		name: "v5.1.4 boot_swap_embedded",
		table: []partition.Partition{
			{Name: "nvs", Type: partition.TypeData, Subtype: partition.SubtypeNVS, Offset: 0x9000, Size: 0x4000},
			otaData, phyInit,
			{Name: "factory", Type: partition.TypeApp, Subtype: partition.SubtypeFactory, Offset: 0x10000, Size: 0x200000},
			{Name: "ota_0", Type: partition.TypeApp, Subtype: partition.SubtypeOTA0, Offset: 0x210000, Size: 0x180000},
		},
		app:      espimage.AppDesc{ProjectName: "boot_swap_embedded", Version: "87e50ff-dirty", Date: "Nov 30 2024", Time: "18:53:41", IDFVer: "v5.1.4"},
		segments: []seg{{0x3f400020, 1149424}, {0x3ffb0000, 8484}, {0x40080000, 21716}, {0x400d0020, 79992}, {0x400854d4, 29248}},
		banner:   29, seg0: 114, loaded: 600, appMain: 739, tolerance: 3,
	},
	{
		// ESP-IDF v5.1, ESP32 v3.0, http-client-test (see the package doc).
		name:     "v5.1 http-client-test",
		table:    []partition.Partition{nvs, phyInit, factory},
		app:      espimage.AppDesc{ProjectName: "http-client-test", Version: "1", Date: "Jul 16 2023", Time: "18:11:06", IDFVer: "v5.1"},
		segments: []seg{{0x3f400020, 233952}, {0x3ffb0000, 14340}, {0x40080000, 13828}, {0x400d0020, 659220}, {0x40083604, 73776}},
		banner:   29, seg0: 94, loaded: 481, appMain: 619, tolerance: 3,
	},
	{
		// ESP-IDF v6.0.2, ESP32 v3.1 (bootloader part only: the v6 app
		// logs other lines).
		name:     "v6.0.2 lab 5.3",
		table:    []partition.Partition{nvs, phyInit, factory},
		segments: []seg{{0x3f400020, 107944}, {0x3ffb0000, 17704}, {0x40080000, 5400}, {0x400d0020, 549360}, {0x40081518, 82160}, {0x50000000, 40}},
		// Not the version modelled: a looser bound.
		seg0: 79, loaded: 377, tolerance: 5,
	},
}

// imageLike builds an app image with the segment sizes and kinds of a
// real one; flash-mapped segments get the address their data lands on.
func imageLike(t *testing.T, segs []seg, app *espimage.AppDesc, partOff uint32) []byte {
	t.Helper()
	var ss []espimage.Segment
	off := partOff + espimage.HeaderSize
	for i, s := range segs {
		off += espimage.SegmentHeaderSize
		load := s.load
		if espimage.ChipESP32.MappedRegion(load) != "" {
			load = load&^(espimage.MMUPageSize-1) | off%espimage.MMUPageSize
		}
		data := make([]byte, s.size)
		for j := range data {
			data[j] = byte(i + j*13)
		}
		ss = append(ss, espimage.Segment{LoadAddr: load, Data: data})
		off += uint32(s.size)
	}
	b, err := espimage.Build(espimage.Header{
		SPIMode: 2, FlashSize: 2, Entry: 0x400813a4, WPPin: 0xEE, Chip: espimage.ChipESP32, HashAppended: true,
	}, ss, app)
	must(t, err)
	return b
}

// TestBootTimeMatchesRealLogs boots images laid out like those of real
// boot logs and compares the modelled timestamps with the real ones.
func TestBootTimeMatchesRealLogs(t *testing.T) {
	for _, rl := range realLogs {
		t.Run(rl.name, func(t *testing.T) {
			table := &partition.Table{Partitions: rl.table}
			content, err := Build(CreateOptions{Table: table, App: imageLike(t, rl.segments, &rl.app, 0x10000)})
			must(t, err)
			var log bytes.Buffer
			_, err = Open(Config{Flash: flash.FromBytes(content), Log: &log})
			must(t, err)
			ss := stamps(t, log.String())
			// Within the tolerance, or 2 ms for short spans.
			near := func(what string, got, want int64) {
				t.Helper()
				tol := max(want*rl.tolerance/100, 2)
				if got < want-tol || got > want+tol {
					t.Errorf("%s: model %d ms, real log %d ms (tolerance %d ms)", what, got, want, tol)
				}
			}
			seg0 := at(t, ss, "esp_image: segment 0:")
			loaded := at(t, ss, "boot: Loaded app")
			near("segment 0 to Loaded app", loaded-seg0, rl.loaded-rl.seg0)
			t.Logf("model: segment 0 at %d ms, Loaded app at %d ms, app_main at %d ms", seg0, loaded, at(t, ss, "main_task: Calling app_main()"))
			if rl.banner != 0 {
				near("banner", at(t, ss, "boot: ESP-IDF"), rl.banner)
				near("segment 0", seg0, rl.seg0)
				near("Loaded app", loaded, rl.loaded)
				near("app_main", at(t, ss, "main_task: Calling app_main()"), rl.appMain)
			}
		})
	}
}

// TestBootLogTimestamps checks that the log's timestamps never go back,
// that app_main is where BootTime says, and the figures the package doc
// gives for the LEDController image.
func TestBootLogTimestamps(t *testing.T) {
	v11 := shareddata.File(t, "esp32-ledcontroller-v1.1.bin")
	content, err := Build(CreateOptions{App: v11})
	must(t, err)
	var log bytes.Buffer
	d, err := Open(Config{Flash: flash.FromBytes(content), Log: &log})
	must(t, err)
	check := func(boot string) []stamped {
		ss := stamps(t, log.String())
		for i := 1; i < len(ss); i++ {
			if ss[i].ms < ss[i-1].ms {
				t.Errorf("%s: %q at %d ms after %q at %d ms", boot, ss[i].text, ss[i].ms, ss[i-1].text, ss[i-1].ms)
			}
		}
		// app_main runs once its line is in the UART's FIFO: at most a
		// line's time after the line's timestamp.
		if got, bt := at(t, ss, "main_task: Calling app_main()"), d.BootTime(); bt < time.Duration(got)*time.Millisecond || bt > time.Duration(got+8)*time.Millisecond {
			t.Errorf("%s: app_main logged at %d ms, BootTime %v", boot, got, bt)
		}
		return ss
	}
	// The package doc's figures (first boot: otadata is blank, so the
	// bootloader also logs "Set actual ota_seq").
	ss := check("power-on")
	for _, c := range []struct {
		line string
		ms   int64
	}{
		{"boot: ESP-IDF v5.1.3 2nd stage bootloader", 29},
		{"esp_image: segment 0:", 113},
		{"boot: Loaded app from partition at offset 0x10000", 252},
		{"main_task: Calling app_main()", 400},
	} {
		if got := at(t, ss, c.line); got != c.ms {
			t.Errorf("%q at %d ms, the package doc says %d", c.line, got, c.ms)
		}
	}
	log.Reset()
	must(t, d.Reboot())
	ss = check("reboot")
	if got, want := at(t, ss, "main_task: Calling app_main()"), int64(389); got != want {
		t.Errorf("reboot: app_main at %d ms, the package doc says %d", got, want)
	}

	// With flash.RealisticTiming the first boot's otadata write costs a
	// sector erase.
	fl := flash.FromBytes(content)
	fl.SetTiming(flash.RealisticTiming)
	log.Reset()
	d, err = Open(Config{Flash: fl, Log: &log, InstantBoot: true})
	must(t, err)
	ss = check("power-on, realistic flash")
	if got, want := at(t, ss, "main_task: Calling app_main()"), int64(440); got != want {
		t.Errorf("power-on with realistic flash timing: app_main at %d ms, the package doc says %d", got, want)
	}
}

// stampedWriter records when each line arrives.
type stampedWriter struct {
	mu    sync.Mutex
	start time.Time
	buf   []byte
	lines []arrival
}

type arrival struct {
	line string
	at   time.Duration
}

func (w *stampedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Since(w.start)
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		w.lines = append(w.lines, arrival{string(w.buf[:i]), now})
		w.buf = w.buf[i+1:]
	}
}

// TestBootTakesModelledTime boots with a flash that has a timing model:
// Open and Reboot take at least the modelled boot time, and no line
// arrives before the time it claims. (Lower bounds only: a loaded
// machine may be slower.)
func TestBootTakesModelledTime(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for two boots")
	}
	img := synthApp(t, "v1")
	content, err := Build(CreateOptions{App: img, Table: smallTable(false, 2), FlashSize: 4 << 20})
	must(t, err)
	fl := flash.FromBytes(content)
	fl.SetTiming(flash.Timing{SectorErase: time.Millisecond, BlockErase: time.Millisecond, PageProgram: time.Microsecond})
	w := &stampedWriter{start: time.Now()}
	d, err := Open(Config{Flash: fl, Log: w})
	must(t, err)
	took := time.Since(w.start)
	if bt := d.BootTime(); bt < 200*time.Millisecond || took < bt {
		t.Errorf("power-on boot took %v, modelled %v (want at least 200 ms, and the wall time at least the model)", took, bt)
	}
	start := time.Now()
	must(t, d.Reboot())
	if took, bt := time.Since(start), d.BootTime(); took < bt {
		t.Errorf("reboot took %v, modelled %v", took, bt)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, a := range w.lines {
		m := stampRE.FindStringSubmatch(a.line)
		if m == nil {
			continue
		}
		ms, _ := strconv.ParseInt(m[1], 10, 64)
		if n < 100 && a.at < time.Duration(ms)*time.Millisecond {
			// A reboot's lines count from its own reset, later than
			// w.start: the bound holds for both boots.
			t.Errorf("%q arrived %v after start, before the %d ms it claims", a.line, a.at, ms)
		}
		n++
	}
	if n < 40 {
		t.Errorf("only %d timestamped lines", n)
	}
}

// TestInstantBootSameLog: InstantBoot and a zero flash timing change how
// long a boot takes, not what it logs.
func TestInstantBootSameLog(t *testing.T) {
	img := synthApp(t, "v1")
	content, err := Build(CreateOptions{App: img, Table: smallTable(false, 2), FlashSize: 4 << 20})
	must(t, err)
	boot := func(timing flash.Timing, instant bool) (string, time.Duration) {
		fl := flash.FromBytes(content)
		fl.SetTiming(timing)
		var log bytes.Buffer
		d, err := Open(Config{Flash: fl, Log: &log, InstantBoot: instant})
		must(t, err)
		return log.String(), d.BootTime()
	}
	// The bootloader's otadata write costs what the flash timing says.
	timing := flash.Timing{SectorErase: time.Millisecond, PageProgram: time.Microsecond}
	logInstant, btInstant := boot(timing, true)
	logReal, btReal := boot(timing, false)
	if logInstant != logReal || btInstant != btReal {
		t.Errorf("instant and realtime boots differ: %v vs %v\n%s\n---\n%s", btInstant, btReal, logInstant, logReal)
	}
	logZero, btZero := boot(flash.Timing{}, false)
	if btZero > btReal || btReal-btZero > time.Millisecond+time.Microsecond {
		t.Errorf("zero-timing boot modelled %v, realtime %v: want it shorter by no more than the otadata write (the UART may hide it)", btZero, btReal)
	}
	if strings.Count(logZero, "\n") != strings.Count(logReal, "\n") {
		t.Error("zero-timing boot logs other lines")
	}
	if btZero < 150*time.Millisecond {
		t.Errorf("modelled boot %v: too short for an ESP32", btZero)
	}
}

func TestFlashConfig(t *testing.T) {
	for _, c := range []struct {
		fc       flashConfig
		rate     int64
		mode     string
		speed    string
		clockDiv int
	}{
		{defaultFlashConfig, 10e6, "DIO", "40MHz", 2},
		{flashConfig{mode: 0, speed: 0xF}, 40e6, "QIO", "80MHz", 1},
		{flashConfig{mode: 3, speed: 2}, 5e6, "DOUT", "20MHz", 4},
		{flashConfig{mode: 4, speed: 1}, 80000000 / 3 / 8, "FAST_READ", "26MHz", 3},
		{flashConfig{mode: 9, speed: 0}, 0, "unknown(9)", "40MHz", 2},
	} {
		if got := c.fc.bytesPerSecond(); got != c.rate {
			t.Errorf("%+v: %d B/s, want %d", c.fc, got, c.rate)
		}
		h := c.fc.header()
		if h.SPIModeName() != c.mode || h.SPISpeedName() != c.speed || c.fc.clockDiv() != c.clockDiv {
			t.Errorf("%+v: %s %s div %d", c.fc, h.SPIModeName(), h.SPISpeedName(), c.fc.clockDiv())
		}
	}
}

// TestBootFlashSpeed: the bootloader's header sets the SPI mode and clock
// the log shows and the model reads the image with.
func TestBootFlashSpeed(t *testing.T) {
	v11 := shareddata.File(t, "esp32-ledcontroller-v1.1.bin")
	boot := func(bootloader []byte) (string, time.Duration) {
		content, err := Build(CreateOptions{App: v11})
		must(t, err)
		if bootloader != nil {
			copy(content[BootloaderOffset(espimage.ChipESP32):], bootloader)
		}
		var log bytes.Buffer
		d, err := Open(Config{Flash: flash.FromBytes(content), Log: &log})
		must(t, err)
		return log.String(), d.BootTime()
	}
	logDIO, dio := boot(nil)
	// A bootloader header for QIO at 80 MHz, 4 MB.
	logQIO, qio := boot([]byte{espimage.Magic, 1, 0, 2<<4 | 0xF})
	for _, want := range []string{"mode:DIO, clock div:2\n", "boot.esp32: SPI Speed      : 40MHz\n", "boot.esp32: SPI Mode       : DIO\n", "spi_flash: flash io: dio\n"} {
		if !strings.Contains(logDIO, want) {
			t.Errorf("default log lacks %q", want)
		}
	}
	for _, want := range []string{"mode:QIO, clock div:1\n", "boot.esp32: SPI Speed      : 80MHz\n", "boot.esp32: SPI Mode       : QIO\n", "spi_flash: flash io: qio\n"} {
		if !strings.Contains(logQIO, want) {
			t.Errorf("QIO 80 MHz log lacks %q", want)
		}
	}
	// 316944 bytes read at 40 MB/s instead of 10 MB/s: about 24 ms less.
	if d := dio - qio; d < 20*time.Millisecond || d > 30*time.Millisecond {
		t.Errorf("QIO 80 MHz boots %v faster than DIO 40 MHz (%v vs %v), want about 24 ms", d, qio, dio)
	}
}

// TestBootWritesWhereTheBootloaderDoes: on blank otadata the bootloader
// writes the initial entry after loading the app and before it says so;
// the erase shows between the two lines.
func TestBootWritesWhereTheBootloaderDoes(t *testing.T) {
	content, err := Build(CreateOptions{App: synthApp(t, "v1"), Table: smallTable(false, 2), FlashSize: 4 << 20})
	must(t, err)
	fl := flash.FromBytes(content)
	fl.SetTiming(flash.Timing{SectorErase: 300 * time.Millisecond, PageProgram: time.Millisecond})
	var log bytes.Buffer
	_, err = Open(Config{Flash: fl, Log: &log, InstantBoot: true})
	must(t, err)
	ss := stamps(t, log.String())
	seg0, loaded, set := at(t, ss, "esp_image: segment 0:"), at(t, ss, "boot: Loaded app"), at(t, ss, "boot: Set actual ota_seq=1")
	if loaded-seg0 > 100 || set-loaded < 301 {
		t.Errorf("segment 0 at %d ms, Loaded app at %d, Set actual ota_seq at %d: want the 301 ms write between the last two", seg0, loaded, set)
	}
}
