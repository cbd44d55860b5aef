// Leadership: coordinators campaign in an etcd election; the winner runs
// one term (term.go) until it loses the election key or its session.

package coordinator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/client/v3/concurrency"
)

// errLostLeadership ends a term: a leader-guarded write found that this
// coordinator no longer leads.
var errLostLeadership = errors.New("coordinator: lost leadership")

// campaign runs for leadership until ctx ends; each won term runs a
// scheduler until leadership is lost or ctx ends.
func (c *Coordinator) campaign(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := c.lead(ctx)
		if ctx.Err() != nil {
			return
		}
		c.logger.Warn("leadership term ended", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// lead waits to be elected, then leads until something ends the term.
// Closing the session on the way out revokes its lease, which deletes the
// election key: a standby takes over at once.
func (c *Coordinator) lead(ctx context.Context) error {
	ttl := int((c.cfg.LeaderTTL + time.Second - 1) / time.Second)
	ses, err := concurrency.NewSession(c.cli, concurrency.WithTTL(ttl))
	if err != nil {
		return fmt.Errorf("coordinator: election session: %w", err)
	}
	defer ses.Close()
	el := concurrency.NewElection(ses, c.keys.Election())
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-ses.Done():
			cancel()
		case <-cctx.Done():
		}
	}()
	if err := el.Campaign(cctx, c.addr); err != nil {
		return fmt.Errorf("coordinator: campaign: %w", err)
	}
	c.leader.Store(true)
	c.metrics.leader.Set(1)
	defer func() {
		c.leader.Store(false)
		c.metrics.leader.Set(0)
		c.metrics.clearCluster()
	}()
	c.logger.Info("leading the cluster", "addr", c.addr)
	tm := newTerm(c, ses, el.Key(), el.Rev())
	return tm.run(cctx)
}
