// Rebuild: filling a new concrete index, then swapping the alias to it.

package indexer

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Rebuild creates the concrete index newIndex (which must be named
// "<alias>-<suffix>"), lets fill index into it through the Writer it is
// given (typically every committed result, one IndexResult each), and, if
// fill succeeds, points the alias at newIndex alone with SwapAlias. It
// returns the indices the alias pointed at before, which it keeps. If fill
// fails, the alias is unchanged and newIndex is left for inspection.
//
// Results indexed through the alias while a rebuild runs go to the old
// index: pause indexing, or index them again after the swap.
func (ix *Indexer) Rebuild(ctx context.Context, newIndex string, fill func(ctx context.Context, w *Writer) error) ([]string, error) {
	if err := checkIndexName(newIndex); err != nil {
		return nil, fmt.Errorf("indexer: rebuild into %q: %w", newIndex, err)
	}
	if !strings.HasPrefix(newIndex, ix.cfg.Alias+"-") {
		return nil, fmt.Errorf("indexer: rebuild into %q: the name must start with %q", newIndex, ix.cfg.Alias+"-")
	}
	if err := ix.Setup(ctx); err != nil {
		return nil, err
	}
	if err := ix.createIndex(ctx, newIndex, time.Now().Add(ix.cfg.RetryTimeout), false); err != nil {
		return nil, err
	}
	ix.logger.Info("rebuild: index created", "index", newIndex, "alias", ix.cfg.Alias)
	if err := fill(ctx, &Writer{ix: ix, index: newIndex}); err != nil {
		return nil, fmt.Errorf("indexer: rebuild into %s (alias %s unchanged): %w", newIndex, ix.cfg.Alias, err)
	}
	return ix.SwapAlias(ctx, newIndex)
}
