package gen

import (
	"context"
	"time"
)

// Pacer spaces events evenly at a fixed rate. It sleeps only once it is at
// least a millisecond ahead of schedule, so high rates cost few timer
// wake-ups (bursts last at most about a millisecond). After falling more
// than a second behind (a slow consumer), it forgets the backlog instead of
// bursting to catch up. A nil Pacer or a rate of 0 or less never waits.
type Pacer struct {
	interval time.Duration // per event, 0 for unlimited
	start    time.Time     // schedule origin
	n        int64         // events scheduled since start
	timer    *time.Timer
}

// NewPacer returns a pacer for rate events per second.
func NewPacer(rate float64) *Pacer {
	p := &Pacer{}
	if rate > 0 {
		p.interval = max(time.Duration(float64(time.Second)/rate), 1)
	}
	return p
}

// Wait blocks until the next event is due, or ctx is done, whose error it
// then returns.
func (p *Pacer) Wait(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if p == nil || p.interval == 0 {
		return nil
	}
	now := time.Now()
	if p.n == 0 {
		p.start = now
	}
	due := p.start.Add(time.Duration(p.n) * p.interval)
	p.n++
	ahead := due.Sub(now)
	switch {
	case ahead < -time.Second:
		p.start, p.n = now, 1
		return nil
	case ahead < time.Millisecond:
		return nil
	}
	if p.timer == nil {
		p.timer = time.NewTimer(ahead)
	} else {
		p.timer.Reset(ahead)
	}
	select {
	case <-p.timer.C:
		return nil
	case <-ctx.Done():
		p.timer.Stop()
		return ctx.Err()
	}
}
