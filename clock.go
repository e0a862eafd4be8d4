package connmgr

import "time"

// epochRefresh bounds how long callStart derives the wall clock from the
// monotonic clock before it reads the wall clock again.
const epochRefresh = time.Second

// callStart is the time a call starts, by the Manager's clock. With the
// real clock and no observer it reads only the monotonic clock, half the
// cost of time.Now (which reads the wall clock as well): the result is
// the last epoch, a time.Now at most epochRefresh old, plus the monotonic
// time since it. Durations and comparisons between such times use the
// monotonic reading and are exact; only the wall clock reading may lag a
// step of the system clock (NTP) by up to epochRefresh. An observer is
// shown call and attempt start times (span timestamps), so with one the
// wall clock is read every time.
func (m *Manager) callStart() time.Time {
	if !m.realClock || len(m.observers) > 0 {
		return m.now()
	}
	if e := m.epoch.Load(); e != nil {
		if d := time.Since(*e); d >= 0 && d < epochRefresh {
			return e.Add(d)
		}
	}
	now := time.Now()
	m.epoch.Store(&now)
	return now
}
