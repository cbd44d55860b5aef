package icetable

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"

	"github.com/dataco/clickstream/internal/lake"
)

// Defaults of PublisherOptions.
const (
	// DefaultCommitInterval spaces a Publisher's table commits. Every
	// commit reads and writes the table's metadata, which grows with the
	// snapshots kept: a commit per lake commit of every Kafka partition
	// would make the metadata, and each commit, large (Iceberg's Kafka
	// Connect sink commits every 5 minutes by default).
	DefaultCommitInterval = 30 * time.Second
	// DefaultSnapshotRetention is how long a Publisher keeps snapshots of
	// the events table for time travel.
	DefaultSnapshotRetention = 24 * time.Hour
	// expireEvery is how many table commits a Publisher makes between two
	// expiries of old snapshots.
	expireEvery = 100
	// retainLast is how many snapshots an expiry keeps at least.
	retainLast = 10
	// fullEvery: one publication in fullEvery lists every manifest of the
	// lake; the others follow the sources' watermark records.
	fullEvery = 20
)

// publishRetryDelay is how long a Publisher waits after a failed
// publication before it tries again without being notified.
const publishRetryDelay = 2 * time.Second

// PublisherOptions configure a Publisher.
type PublisherOptions struct {
	// CommitInterval is the least time between two table commits; lake
	// commits made meanwhile wait for the next one. 0: publish as soon as
	// notified.
	CommitInterval time.Duration
	// SnapshotRetention: snapshots older than this are expired
	// (ExpireSnapshots). 0: none.
	SnapshotRetention time.Duration
	Log               *slog.Logger
	// Published, if not nil, is called after every publication attempt
	// with what it added or its error.
	Published func(Published, error)
}

// Publisher keeps a lake's events and rejected tables up to date from one
// process (EnsureEvents and EnsureRejected create them): a
// writer calls Notify after each lake commit, and a background goroutine
// publishes what is pending, coalescing the lake commits that arrive
// meanwhile into its next table commit. It publishes once when started, so
// a process that resumes publishes what a crashed predecessor committed to
// the lake but not to the table.
type Publisher struct {
	cat   catalog.Catalog
	store lake.Store
	opts  PublisherOptions

	kick    chan struct{}
	cancel  context.CancelFunc
	done    chan struct{}
	close   sync.Once
	commits int // table commits since the last expiry; loop's own
	runs    int // publications so far; loop's own
}

// StartPublisher starts publishing store to its events table in cat. Close
// stops it.
func StartPublisher(cat catalog.Catalog, store lake.Store, opts PublisherOptions) *Publisher {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Published == nil {
		opts.Published = func(Published, error) {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Publisher{cat: cat, store: store, opts: opts,
		kick: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{})}
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
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.kick:
		case <-retry.C:
		}
		start := time.Now()
		if _, err := p.publish(ctx); err != nil {
			retry.Reset(publishRetryDelay)
		}
		// Space the commits: what lands meanwhile waits for the next.
		if wait := p.opts.CommitInterval - time.Since(start); wait > 0 {
			if sleepCtx(ctx, wait) != nil {
				return
			}
		}
	}
}

func (p *Publisher) publish(ctx context.Context) (Published, error) {
	// The first publication and every fullEvery-th list every manifest
	// (a crashed predecessor's commits, commits whose watermark record
	// was not written); the others follow the watermark records.
	find := followWatermarks
	if p.runs%fullEvery == 0 {
		find = listAll
	}
	p.runs++
	return p.publishWith(ctx, find)
}

func (p *Publisher) publishWith(ctx context.Context, find int) (Published, error) {
	pub, err := publish(ctx, p.cat, p.store, EventsTable, dataFiles, find)
	if err == nil {
		// The dead letters of the same commits, into their own table.
		var rej Published
		rej, err = publish(ctx, p.cat, p.store, RejectedTable, rejectedFiles, find)
		pub.Retries += rej.Retries
	}
	if err != nil && ctx.Err() != nil {
		err = nil // stopped by Close, which publishes what remains
	}
	p.opts.Published(pub, err)
	switch {
	case err != nil:
		p.opts.Log.Warn("publishing the lake to its Iceberg table failed; retrying", "table", EventsTable, "err", err)
	case pub.Manifests > 0:
		p.opts.Log.Debug("published to the Iceberg table", "table", EventsTable, "commits", pub.Manifests,
			"files", pub.Files, "events", pub.Events, "snapshot", pub.Snapshot, "retries", pub.Retries)
		if p.commits++; p.commits >= expireEvery && p.opts.SnapshotRetention > 0 {
			p.commits = 0
			if err := ExpireSnapshots(ctx, p.cat, EventsTable, p.opts.SnapshotRetention); err != nil && ctx.Err() == nil {
				p.opts.Log.Warn("expiring old snapshots failed", "table", EventsTable, "err", err)
			}
		}
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
		_, err = p.publishWith(ctx, listAll)
	})
	return err
}

// ExpireSnapshots expires the snapshots of a table older than retention,
// keeping at least the last few. Of the events table it deletes no file:
// the files compaction replaced are still the lake's, which its manifests
// name and clickstream's jobs read (vacuum judges those); of other tables
// it deletes the files only expired snapshots used.
func ExpireSnapshots(ctx context.Context, cat catalog.Catalog, name string, retention time.Duration) error {
	tbl, err := cat.LoadTable(ctx, Ident(name))
	if err != nil {
		return fmt.Errorf("icetable: expire %s: %w", name, err)
	}
	tx := tbl.NewTransaction()
	if err := tx.ExpireSnapshots(table.WithOlderThan(retention), table.WithRetainLast(retainLast),
		table.WithPostCommit(name != EventsTable)); err != nil {
		return fmt.Errorf("icetable: expire %s: %w", name, err)
	}
	if _, err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("icetable: expire %s: %w", name, err)
	}
	return nil
}

// ExpireTables expires the snapshots older than retention of every table
// the catalog has (ExpireSnapshots).
func ExpireTables(ctx context.Context, cat catalog.Catalog, retention time.Duration) error {
	var errs []error
	for _, name := range []string{EventsTable, RejectedTable, AggregatesTable} {
		switch ok, err := cat.CheckTableExists(ctx, Ident(name)); {
		case err != nil:
			errs = append(errs, fmt.Errorf("icetable: expire %s: %w", name, err))
		case ok:
			errs = append(errs, ExpireSnapshots(ctx, cat, name, retention))
		}
	}
	return errors.Join(errs...)
}
