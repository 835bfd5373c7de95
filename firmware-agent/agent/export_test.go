package agent

import "time"

// SetRateTimers shortens the baud-rate rules for tests and returns a
// function restoring them.
func SetRateTimers(check, idle time.Duration) (restore func()) {
	oc, oi := baudCheckTime, idleRevert
	baudCheckTime, idleRevert = check, idle
	return func() { baudCheckTime, idleRevert = oc, oi }
}
