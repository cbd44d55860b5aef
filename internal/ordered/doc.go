// Package ordered runs a bounded number of fetches at a time and hands
// their results over in order: the shape of reading many objects from a
// store, a few at once, and folding them in a fixed order.
//
// The worker reads a task's data files this way, and the coordinator the
// partials it merges:
//
//	total := aggregate.NewPartial()
//	err := ordered.Fetch(ctx, len(keys), 8,
//		func(ctx context.Context, i int) (*aggregate.Partial, error) {
//			return readPartial(ctx, store, keys[i]) // up to 8 at once
//		},
//		func(i int, p *aggregate.Partial) error {
//			total.Merge(p) // in key order, one at a time
//			return nil
//		})
//
// A result holds its slot until use returns, so memory stays bounded by
// the limit however slow use is; the first error in order ends the run,
// and Fetch returns only once every fetch it started has returned.
package ordered
