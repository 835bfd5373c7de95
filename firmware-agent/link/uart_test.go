package link

import (
	"bytes"
	"testing"
	"time"
)

// waitCarried waits until the wire has carried n bytes host to device.
func waitCarried(t *testing.T, l *Line, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for l.Stats().HostToDevice < n {
		if time.Now().After(deadline) {
			t.Fatalf("the wire carried %d of %d bytes", l.Stats().HostToDevice, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// readAvailable reads what the device end holds, stopping after quiet.
func readAvailable(t *testing.T, e *End, want int) []byte {
	t.Helper()
	got := make([]byte, 0, want)
	buf := make([]byte, 4096)
	for len(got) < want {
		done := make(chan int, 1)
		go func() { n, _ := e.Read(buf); done <- n }()
		select {
		case n := <-done:
			got = append(got, buf[:n]...)
		case <-time.After(300 * time.Millisecond):
			e.l.Disconnect() // unblock the pending Read
			<-done
			return got
		}
	}
	return got
}

// TestFlashOperationOverrunsFIFO writes while a flash operation keeps the
// device's UART ISR from running: each table row says how many bytes
// arrive before and during the operation, and what survives.
func TestFlashOperationOverrunsFIFO(t *testing.T) {
	for _, tc := range []struct {
		name           string
		uart           UART
		iram           bool
		before, during int
		wantLost       int64
	}{
		{"bridge, ISR not in IRAM: the FIFO keeps 128", Bridge, false, 0, 1000, 1000 - FIFOSize},
		{"bridge, bytes before the operation are safe", Bridge, false, 500, 200, 200 - FIFOSize},
		{"bridge, ISR in IRAM: the ring takes all", Bridge, true, 0, 1000, 0},
		{"usb: flow-controlled, nothing lost", USB, false, 0, 1000, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := New(Config{Baud: 115200, UART: tc.uart, Receiver: Receiver{RingBuffer: 4096, ISRInIRAM: tc.iram}})
			defer l.Close()
			data := randomBytes(tc.before+tc.during, 9)
			if _, err := l.Host().Write(data[:tc.before]); err != nil {
				t.Fatal(err)
			}
			waitCarried(t, l, int64(tc.before))
			g := l.FlashGuard()
			g.Start(time.Minute) // ended by End below
			read := make(chan int, 1)
			go func() {
				n, _ := l.Device().Read(make([]byte, 1))
				read <- n
			}()
			if _, err := l.Host().Write(data[tc.before:]); err != nil {
				t.Fatal(err)
			}
			if tc.uart == Bridge {
				waitCarried(t, l, int64(len(data)))
			} else {
				time.Sleep(150 * time.Millisecond) // longer than 1000 bytes' wire time
			}
			select {
			case <-read:
				t.Fatal("the device read during a flash operation, when no task runs")
			default:
			}
			g.End()
			<-read
			got := append(data[:1:1], readAvailable(t, l.Device(), len(data)-1)...)
			st := l.Stats()
			if st.DeviceOverruns != tc.wantLost {
				t.Errorf("DeviceOverruns = %d, want %d", st.DeviceOverruns, tc.wantLost)
			}
			kept := len(data) - int(tc.wantLost)
			if want := data[:kept]; !bytes.Equal(got, want) {
				t.Errorf("device received %d bytes, want the first %d of %d unchanged", len(got), kept, len(data))
			}
		})
	}
}

// TestBridgeRingFull: a device that does not read keeps its ring and the
// FIFO; the host is never held back and the rest is lost.
func TestBridgeRingFull(t *testing.T) {
	l := New(Config{Baud: 2000000, Receiver: Receiver{RingBuffer: 1024}})
	defer l.Close()
	data := randomBytes(10000, 4)
	done := make(chan error, 1)
	go func() {
		_, err := l.Host().Write(data)
		if err == nil {
			err = l.Host().Drain()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the host was held back by a bridge device that does not read")
	}
	waitCarried(t, l, int64(len(data)))
	if got, want := l.Stats().DeviceOverruns, int64(len(data)-1024-FIFOSize); got != want {
		t.Errorf("DeviceOverruns = %d, want %d", got, want)
	}
	got := readAvailable(t, l.Device(), len(data))
	if !bytes.Equal(got, data[:1024+FIFOSize]) {
		t.Errorf("device kept %d bytes, want the first %d", len(got), 1024+FIFOSize)
	}
}

// TestIdleGapsGetNoCredit writes after short idle gaps: bytes written
// after a gap must take their full wire time from the moment they were
// written, however short the gap.
func TestIdleGapsGetNoCredit(t *testing.T) {
	const baud, burst = 9600, 40 // 41.7 ms a burst
	wire := time.Duration(burst*10) * time.Second / baud
	for _, gap := range []time.Duration{0, 500 * time.Microsecond, 2 * time.Millisecond, 4 * time.Millisecond, 8 * time.Millisecond} {
		for _, dir := range []string{"host→device", "device→host"} {
			l := New(Config{Baud: baud})
			from, to := l.Host(), l.Device()
			if dir == "device→host" {
				from, to = to, from
			}
			if _, _, err := transfer(t, from, to, []byte{1}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(gap)
			_, elapsed, err := transfer(t, from, to, randomBytes(burst, 2))
			l.Close()
			if err != nil {
				t.Fatal(err)
			}
			if elapsed < wire {
				t.Errorf("%s after a %v gap: %d bytes arrived in %v, faster than their wire time %v", dir, gap, burst, elapsed, wire)
			}
		}
	}
}

// TestInstallDriver keeps what the old ring held and takes the new
// receiver's settings.
func TestInstallDriver(t *testing.T) {
	l := New(Config{Baud: 921600})
	defer l.Close()
	if got := l.Driver(); got != DefaultReceiver {
		t.Errorf("driver before install = %+v, want %+v", got, DefaultReceiver)
	}
	data := randomBytes(300, 3)
	l.Host().Write(data)
	waitCarried(t, l, 300)
	want := Receiver{RingBuffer: 16 << 10, ISRInIRAM: true}
	l.Device().InstallDriver(want)
	l.Host().InstallDriver(Receiver{RingBuffer: 1}) // the host has no driver: ignored
	if got := l.Driver(); got != want {
		t.Errorf("driver = %+v, want %+v", got, want)
	}
	if got := readAvailable(t, l.Device(), 300); !bytes.Equal(got, data) {
		t.Errorf("after install the device read %d bytes, want the %d waiting", len(got), len(data))
	}
}

func TestParseUART(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want UART
		err  bool
	}{{"bridge", Bridge, false}, {"usb", USB, false}, {"", Bridge, false}, {"rs485", 0, true}} {
		got, err := ParseUART(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseUART(%q) = %v, %v", tc.in, got, err)
		}
		if err == nil && tc.in != "" && got.String() != tc.in {
			t.Errorf("%v.String() = %q", got, got.String())
		}
	}
}

// TestLateEndKeepsModelledWindow: the ISR is off for the duration the
// flash announced, not until a late End; bytes arriving after it reach
// the ring although tasks still wait.
func TestLateEndKeepsModelledWindow(t *testing.T) {
	l := New(Config{Baud: 115200, Receiver: Receiver{RingBuffer: 4096}})
	defer l.Close()
	g := l.FlashGuard()
	g.Start(5 * time.Millisecond) // 57 bytes' wire time: the FIFO holds them
	data := randomBytes(600, 11)
	if _, err := l.Host().Write(data); err != nil {
		t.Fatal(err)
	}
	waitCarried(t, l, int64(len(data))) // 52 ms, long after the window
	g.End()
	if got := readAvailable(t, l.Device(), len(data)); !bytes.Equal(got, data) {
		t.Errorf("device read %d of %d bytes (overruns %d)", len(got), len(data), l.Stats().DeviceOverruns)
	}
}
