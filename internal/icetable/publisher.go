package icetable

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/apache/iceberg-go/catalog"

	"github.com/dataco/clickstream/internal/lake"
)

// publishRetryDelay is how long a Publisher waits after a failed
// publication before it tries again without being notified.
const publishRetryDelay = 2 * time.Second

// Publisher keeps a lake's events table up to date from one process: a
// writer calls Notify after each lake commit, and a background goroutine
// publishes what is pending, coalescing commits that arrive while it
// works into its next table commit. It publishes once when started, so a
// process that resumes publishes what a crashed predecessor committed to
// the lake but not to the table.
type Publisher struct {
	cat       catalog.Catalog
	store     lake.Store
	log       *slog.Logger
	published func(Published, error)

	kick   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
	close  sync.Once
}

// StartPublisher starts publishing store to its events table in cat.
// published, if not nil, is called after every publication attempt with
// what it added or its error. Close stops it.
func StartPublisher(cat catalog.Catalog, store lake.Store, log *slog.Logger, published func(Published, error)) *Publisher {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if published == nil {
		published = func(Published, error) {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Publisher{
		cat: cat, store: store, log: log, published: published,
		kick: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{}),
	}
	p.Notify()
	go p.loop(ctx)
	return p
}

// Notify tells the publisher that the lake has a new commit.
func (p *Publisher) Notify() {
	select {
	case p.kick <- struct{}{}:
	default: // a publication is already due: it will see this commit
	}
}

func (p *Publisher) loop(ctx context.Context) {
	defer close(p.done)
	retry := time.NewTimer(0)
	<-retry.C
	for {
		select {
		case <-ctx.Done():
			retry.Stop()
			return
		case <-p.kick:
		case <-retry.C:
		}
		if _, err := p.publish(ctx); err != nil && ctx.Err() == nil {
			retry.Reset(publishRetryDelay)
		}
	}
}

func (p *Publisher) publish(ctx context.Context) (Published, error) {
	pub, err := Publish(ctx, p.cat, p.store)
	p.published(pub, err)
	switch {
	case err != nil && ctx.Err() == nil:
		p.log.Warn("publishing the lake to its Iceberg table failed; retrying", "table", EventsTable, "err", err)
	case pub.Manifests > 0:
		p.log.Debug("published to the Iceberg table", "table", EventsTable, "commits", pub.Manifests,
			"files", pub.Files, "events", pub.Events, "snapshot", pub.Snapshot, "retries", pub.Retries)
	}
	return pub, err
}

// Close stops the background publisher, then publishes whatever is still
// pending within ctx, so that the table holds every commit made before
// Close. It returns that last publication's error.
func (p *Publisher) Close(ctx context.Context) error {
	var err error
	p.close.Do(func() {
		p.cancel()
		<-p.done
		_, err = p.publish(ctx)
	})
	return err
}
