package link

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand"
	"sync"
	"testing"
	"time"
)

// transfer writes data into from and reads len(data) bytes (or until an
// error) from to, returning what arrived and the time it took.
func transfer(t *testing.T, from, to *End, data []byte) ([]byte, time.Duration, error) {
	t.Helper()
	start := time.Now()
	werr := make(chan error, 1)
	go func() {
		_, err := from.Write(data)
		werr <- err
	}()
	got := make([]byte, 0, len(data))
	buf := make([]byte, 4096)
	var rerr error
	for len(got) < len(data) {
		n, err := to.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			rerr = err
			break
		}
	}
	elapsed := time.Since(start)
	if err := <-werr; err != nil && rerr == nil {
		rerr = err
	}
	return got, elapsed, rerr
}

func randomBytes(n int, seed int64) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

func TestPacing(t *testing.T) {
	for _, tc := range []struct {
		baud int
		size int
	}{
		{115200, 4608},    // 0.4 s
		{921600, 36864},   // 0.4 s
		{2000000, 80000},  // 0.4 s
		{4000000, 160000}, // 0.4 s
	} {
		l := New(Config{Baud: tc.baud})
		for _, dir := range []struct {
			name     string
			from, to *End
		}{{"host→device", l.Host(), l.Device()}, {"device→host", l.Device(), l.Host()}} {
			data := randomBytes(tc.size, 1)
			got, elapsed, err := transfer(t, dir.from, dir.to, data)
			if err != nil {
				t.Fatalf("%d baud %s: %v", tc.baud, dir.name, err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("%d baud %s: data changed on a fault-free line", tc.baud, dir.name)
			}
			want := time.Duration(int64(tc.size) * 10 * int64(time.Second) / int64(tc.baud))
			// The line may never beat the baud rate; how much slower it
			// is depends on the machine, so it is only reported.
			if elapsed < want {
				t.Errorf("%d baud %s: %d bytes took %v, faster than the wire allows (%v)", tc.baud, dir.name, tc.size, elapsed, want)
			}
			t.Logf("%7d baud %s: %d bytes in %v, wire time %v, ratio %.3f", tc.baud, dir.name, tc.size, elapsed.Round(time.Millisecond), want, float64(elapsed)/float64(want))
		}
		l.Close()
	}
}

func TestBothDirectionsIndependent(t *testing.T) {
	const baud, size = 1000000, 50000 // 0.5 s each way
	l := New(Config{Baud: baud})
	defer l.Close()
	a, b := randomBytes(size, 1), randomBytes(size, 2)
	var wg sync.WaitGroup
	var gotA, gotB []byte
	var errA, errB error
	start := time.Now()
	overlapped := make(chan bool, 1)
	go func() {
		for {
			st := l.Stats()
			if st.HostToDevice > 0 && st.HostToDevice < size && st.DeviceToHost > 0 && st.DeviceToHost < size {
				overlapped <- true
				return
			}
			if st.HostToDevice == size && st.DeviceToHost == size {
				overlapped <- false
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	wg.Add(2)
	go func() { defer wg.Done(); gotA, _, errA = transfer(t, l.Host(), l.Device(), a) }()
	go func() { defer wg.Done(); gotB, _, errB = transfer(t, l.Device(), l.Host(), b) }()
	wg.Wait()
	elapsed := time.Since(start)
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	if !bytes.Equal(gotA, a) || !bytes.Equal(gotB, b) {
		t.Fatal("data changed")
	}
	// Full duplex: the two directions were under way at the same time.
	if !<-overlapped {
		t.Error("the two directions never carried bytes at the same time")
	}
	t.Logf("full duplex: 2×%d bytes at %d baud in %v (one way: %v)", size, baud, elapsed.Round(time.Millisecond), time.Duration(size*10)*time.Second/baud)
}

func TestBackpressureHostToDevice(t *testing.T) {
	cfg := Config{Baud: 4000000, UART: USB, Receiver: Receiver{RingBuffer: 1024}, HostTxBuffer: 512}
	l := New(cfg)
	defer l.Close()
	data := randomBytes(64<<10, 3)
	written := make(chan int, 1)
	go func() {
		n, _ := l.Host().Write(data)
		written <- n
	}()
	// Nobody reads the device end: the wire fills the device's buffer
	// and the host's transmit buffer, then the writer must block.
	time.Sleep(100 * time.Millisecond) // 40 KB of wire time at 4 Mbaud
	select {
	case n := <-written:
		t.Fatalf("Write of %d bytes returned (%d) although the device read nothing", len(data), n)
	default:
	}
	st := l.Stats()
	if st.HostToDevice != int64(cfg.Receiver.RingBuffer) {
		t.Errorf("wire carried %d bytes, want exactly the device buffer (%d)", st.HostToDevice, cfg.Receiver.RingBuffer)
	}
	// Reading releases it, and nothing was lost.
	got := make([]byte, 0, len(data))
	buf := make([]byte, 1000)
	for len(got) < len(data) {
		n, err := l.Device().Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:n]...)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("data changed under backpressure")
	}
	if n := <-written; n != len(data) {
		t.Fatalf("Write returned %d", n)
	}
}

func TestOverrunDeviceToHost(t *testing.T) {
	l := New(Config{Baud: 4000000, HostRxBuffer: 1000})
	defer l.Close()
	// The device's log output never blocks, even when nobody reads.
	done := make(chan error, 1)
	go func() {
		_, err := l.Device().Write(randomBytes(5000, 4))
		if err == nil {
			err = l.Device().Drain()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("device Write blocked although the host side drops on overrun")
	}
	st := l.Stats()
	if st.Overruns != 4000 || st.DeviceToHost != 5000 {
		t.Errorf("stats %+v, want 4000 overruns of 5000 bytes", st)
	}
}

func TestFaultsReproducible(t *testing.T) {
	data := randomBytes(200000, 5)
	run := func(seed int64) ([]byte, Stats) {
		// USB: flow control, so a slow reader loses nothing and only the
		// seeded faults differ between runs.
		l := New(Config{Baud: 4000000, UART: USB, DropRate: 1e-3, FlipRate: 1e-3, Seed: seed})
		defer l.Close()
		l.Host().Write(data[:1]) // keep one byte so the read below cannot block forever
		go l.Host().Write(data[1:])
		var got []byte
		buf := make([]byte, 4096)
		for {
			st := l.Stats()
			if st.HostToDevice == int64(len(data)) && l.h2d.rx.len() == 0 {
				break
			}
			l.mu.Lock()
			pending := l.h2d.rx.len()
			l.mu.Unlock()
			if pending == 0 {
				time.Sleep(time.Millisecond)
				continue
			}
			n, _ := l.Device().Read(buf)
			got = append(got, buf[:n]...)
		}
		return got, l.Stats()
	}
	got1, st1 := run(7)
	got2, st2 := run(7)
	if !bytes.Equal(got1, got2) || st1 != st2 {
		t.Fatalf("same seed, different faults: %+v vs %+v", st1, st2)
	}
	if st1.Dropped == 0 || st1.Flipped == 0 {
		t.Fatalf("no faults injected: %+v", st1)
	}
	// Expect about 200 of each; 5 sigma either way.
	for name, n := range map[string]int64{"dropped": st1.Dropped, "flipped": st1.Flipped} {
		if n < 130 || n > 270 {
			t.Errorf("%s %d bytes of 200000 at rate 1e-3", name, n)
		}
	}
	if len(got1) != len(data)-int(st1.Dropped) {
		t.Errorf("received %d bytes, want %d - %d dropped", len(got1), len(data), st1.Dropped)
	}
	got3, _ := run(8)
	if bytes.Equal(got1, got3) {
		t.Error("different seeds gave identical faults")
	}
}

func TestDisconnectAfter(t *testing.T) {
	l := New(Config{Baud: 4000000, DisconnectAfter: []int64{30000, 10000}})
	defer l.Close()
	cut := make(chan struct{}, 4)
	l.onCut = func() { cut <- struct{}{} }
	data := randomBytes(50000, 6)

	got, _, err := transfer(t, l.Host(), l.Device(), data)
	if !errors.Is(err, ErrDisconnected) {
		t.Fatalf("err = %v, want ErrDisconnected", err)
	}
	if len(got) > 10000 || !bytes.Equal(got, data[:len(got)]) {
		t.Fatalf("received %d bytes before the cut at 10000", len(got))
	}
	<-cut
	if l.Up() {
		t.Fatal("line up after a cut")
	}
	if _, err := l.Device().Write([]byte("x")); !errors.Is(err, ErrDisconnected) {
		t.Fatalf("Write on a cut line: %v", err)
	}
	l.Reconnect()
	if err := l.WaitUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, _, err = transfer(t, l.Host(), l.Device(), data[:15000])
	if err != nil || !bytes.Equal(got, data[:15000]) {
		t.Fatalf("after reconnect: %d bytes, %v", len(got), err)
	}
	// The second cut at 30000 carried bytes in total.
	_, _, err = transfer(t, l.Host(), l.Device(), data)
	if !errors.Is(err, ErrDisconnected) {
		t.Fatalf("second cut: %v", err)
	}
	if st := l.Stats(); st.Disconnects != 2 || st.HostToDevice != 30000 {
		t.Fatalf("stats %+v, want 2 cuts after 30000 bytes", st)
	}
	l.Reconnect()
	got, _, err = transfer(t, l.Host(), l.Device(), data)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("after the last cut: %d bytes, %v", len(got), err)
	}
}

func TestBaudMismatchGarbles(t *testing.T) {
	l := New(Config{Baud: 115200})
	defer l.Close()
	if err := l.Device().SetBaud(921600); err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("U"), 2000)
	got, _, err := transfer(t, l.Host(), l.Device(), data)
	if err != nil {
		t.Fatal(err)
	}
	if same := bytes.Count(got, []byte("U")); same > 100 {
		t.Fatalf("%d of 2000 bytes survived a 115200/921600 mismatch", same)
	}
	if st := l.Stats(); st.Garbled != 2000 {
		t.Fatalf("garbled %d", st.Garbled)
	}
	l.Host().SetBaud(921600)
	got, _, err = transfer(t, l.Host(), l.Device(), data)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("matching rates: %v", err)
	}
}

// TestUSBHasNoRate: over USB-Serial-JTAG the host's rate is ignored, so
// ends at different rates still carry every byte.
func TestUSBHasNoRate(t *testing.T) {
	l := New(Config{Baud: 115200, UART: USB})
	defer l.Close()
	if err := l.Device().SetBaud(921600); err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("U"), 2000)
	for _, dir := range []struct {
		name     string
		from, to *End
	}{{"host to device", l.Host(), l.Device()}, {"device to host", l.Device(), l.Host()}} {
		got, _, err := transfer(t, dir.from, dir.to, data)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s at 115200/921600: %d of %d bytes intact, %v", dir.name, bytes.Count(got, []byte("U")), len(data), err)
		}
	}
	if st := l.Stats(); st.Garbled != 0 {
		t.Errorf("garbled %d bytes over USB", st.Garbled)
	}
}

// TestSetBaudDrains checks that an acknowledgement written just before a
// rate change still goes out at the old rate, as uart_wait_tx_done
// ensures on the device.
func TestSetBaudDrains(t *testing.T) {
	l := New(Config{Baud: 115200})
	defer l.Close()
	ack := []byte("OK, switching to 921600\n")
	if _, err := l.Device().Write(ack); err != nil {
		t.Fatal(err)
	}
	if err := l.Device().SetBaud(921600); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(ack))
	if _, err := io.ReadFull(l.Host(), got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, ack) {
		t.Fatalf("got %q", got)
	}
}

func TestClose(t *testing.T) {
	l := New(Config{})
	errc := make(chan error, 1)
	go func() {
		_, err := l.Device().Read(make([]byte, 1))
		errc <- err
	}()
	time.Sleep(10 * time.Millisecond)
	l.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
}

// BenchmarkLine reports the line's throughput against its baud rate.
func BenchmarkLine(b *testing.B) {
	const baud = 4000000
	l := New(Config{Baud: baud})
	defer l.Close()
	data := randomBytes(40000, 1)
	buf := make([]byte, 8192)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		go l.Host().Write(data)
		for n := 0; n < len(data); {
			k, err := l.Device().Read(buf)
			if err != nil {
				b.Fatal(err)
			}
			n += k
		}
	}
	b.ReportMetric(float64(b.Elapsed())/float64(b.N)/float64(time.Duration(len(data)*10)*time.Second/baud), "x-wire-time")
}

func TestHangup(t *testing.T) {
	calls := make(chan struct{}, 1)
	l := New(Config{Baud: 2000000, OnDisconnect: func() { calls <- struct{}{} }})
	defer l.Close()
	if l.InitialBaud() != 2000000 {
		t.Fatalf("InitialBaud %d", l.InitialBaud())
	}
	l.Device().SetBaud(115200)
	l.Hangup()
	if l.Up() {
		t.Fatal("up after Hangup")
	}
	if _, err := l.Device().Write([]byte("x")); !errors.Is(err, ErrDisconnected) {
		t.Fatalf("Write after Hangup: %v", err)
	}
	l.Reconnect()
	if st := l.Stats(); st.Disconnects != 0 {
		t.Fatalf("a hangup counted as a cut: %+v", st)
	}
	select {
	case <-calls:
		t.Fatal("OnDisconnect called for a hangup")
	case <-time.After(20 * time.Millisecond):
	}
	// The device keeps its rate across connections.
	if b := l.Device().Baud(); b != 115200 {
		t.Fatalf("device rate %d after reconnect, want 115200", b)
	}
}
