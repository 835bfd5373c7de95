package link

import "testing"

func TestSignals(t *testing.T) {
	l := New(Config{})
	defer l.Close()
	var seen []Signals
	l.WatchSignals(func(s Signals) { seen = append(seen, s) })
	steps := []Signals{{DTR: false, RTS: true}, {DTR: true, RTS: false}, {}}
	for _, s := range steps {
		l.SetSignals(s)
		if l.Signals() != s {
			t.Fatalf("Signals() = %+v after SetSignals(%+v)", l.Signals(), s)
		}
	}
	l.Disconnect()
	l.SetSignals(Signals{RTS: true})
	if len(seen) != 4 || seen[1] != steps[1] || seen[3] != (Signals{RTS: true}) {
		t.Errorf("watcher saw %+v", seen)
	}
}
