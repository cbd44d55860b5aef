package indexer

import (
	"context"
	"fmt"

	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/results"
)

// Name names the indexer as a publisher of committed results.
func (ix *Indexer) Name() string { return "elasticsearch" }

// Publish indexes the result committed in out (meta is its _SUCCESS): it
// reads the result back, indexes it, and keeps rejected documents as dead
// letters in out. Rejections are an error. With Name it makes the indexer
// a coordinator.Publisher.
func (ix *Indexer) Publish(ctx context.Context, out lake.Store, _ results.Meta) error {
	rows, meta, err := results.ReadResult(ctx, out)
	if err != nil {
		return err
	}
	rep, err := ix.IndexResult(ctx, rows, meta, out)
	if err != nil {
		return err
	}
	if rep.Rejected > 0 {
		return fmt.Errorf("%d of %d documents rejected by Elasticsearch (dead letters in %s)", rep.Rejected, len(rows), out.URI())
	}
	return nil
}
